//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9728 §5.1).

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The auth scheme as sent (compare case-insensitively).
    pub scheme: String,
    /// `name=value` parameters; names lower-cased, quoted values unescaped.
    pub params: Vec<(String, String)>,
    /// A token68 instead of parameters (e.g. `Negotiate abc==`).
    pub token68: Option<String>,
}

impl Challenge {
    /// A parameter's value (the first one if repeated).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a `Bearer` (or `DPoP`, RFC 9449 §7.1: same parameters) challenge asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The challenge used the `DPoP` scheme.
    pub dpop: bool,
    /// `scope`, split on spaces.
    pub scope: Option<Vec<String>>,
    /// `resource_metadata`: where the Protected Resource Metadata is (RFC 9728).
    pub resource_metadata: Option<String>,
    /// `error` (`invalid_token`, `insufficient_scope`, …).
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

impl BearerChallenge {
    /// The first `Bearer` challenge of a header value, else the first `DPoP` one.
    pub fn parse(header: &str) -> Option<BearerChallenge> {
        let challenges = parse_challenges(header);
        let challenge = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
            .or_else(|| {
                challenges
                    .iter()
                    .find(|c| c.scheme.eq_ignore_ascii_case("dpop"))
            })?;
        let scope = challenge.param("scope").map(split_scope);
        Some(BearerChallenge {
            dpop: challenge.scheme.eq_ignore_ascii_case("dpop"),
            scope: scope.filter(|s| !s.is_empty()),
            resource_metadata: challenge
                .param("resource_metadata")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            error: challenge.param("error").map(str::to_owned),
            error_description: challenge.param("error_description").map(str::to_owned),
        })
    }

    /// Whether this is a step-up challenge (RFC 6750 `insufficient_scope`).
    pub fn is_insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// Splits a space-separated scope string, dropping empty items and duplicates (order kept).
pub fn split_scope(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// Parses every challenge of a `WWW-Authenticate` value. Malformed parts are skipped rather than
/// failing the whole header: a server's odd syntax must not hide a usable `Bearer` challenge.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Cursor {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip(|b| b == b',' || is_ws(b));
        if p.at_end() {
            return out;
        }
        let Some(scheme) = p.token() else {
            // Not a token: skip to the next comma and try again.
            p.skip(|b| b != b',');
            continue;
        };
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
            token68: None,
        };
        p.skip(is_ws);
        parse_params(&mut p, &mut challenge);
        out.push(challenge);
    }
}

fn parse_params(p: &mut Cursor<'_>, challenge: &mut Challenge) {
    loop {
        p.skip(|b| b == b',' || is_ws(b));
        let start = p.i;
        let Some(name) = p.token68_or_token() else {
            return;
        };
        p.skip(is_ws);
        if p.peek() != Some(b'=') {
            // A bare token: the next challenge's scheme.
            p.i = start;
            return;
        }
        // `name=` followed by more `=`, a comma or the end is a token68 (base64 padding).
        let after_eq = p.i + 1;
        let next = p.s.get(after_eq).copied();
        if challenge.params.is_empty()
            && challenge.token68.is_none()
            && matches!(next, None | Some(b'=') | Some(b','))
        {
            p.i = after_eq;
            let mut t = name;
            t.push('=');
            while p.peek() == Some(b'=') {
                t.push('=');
                p.i += 1;
            }
            challenge.token68 = Some(t);
            return;
        }
        p.i = after_eq;
        p.skip(is_ws);
        let value = if p.peek() == Some(b'"') {
            p.quoted()
        } else {
            p.token().unwrap_or_default()
        };
        challenge.params.push((name.to_ascii_lowercase(), value));
        p.skip(is_ws);
        match p.peek() {
            Some(b',') => continue,
            None => return,
            // Junk after a value: skip to the next comma.
            Some(_) => p.skip(|b| b != b','),
        }
    }
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }

    fn take(&mut self, f: impl Fn(u8) -> bool) -> Option<String> {
        let start = self.i;
        self.skip(f);
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn token(&mut self) -> Option<String> {
        self.take(is_tchar)
    }

    /// A token, also accepting the `/` that token68 allows (so `Negotiate a/b==` parses).
    fn token68_or_token(&mut self) -> Option<String> {
        self.take(|b| is_tchar(b) || b == b'/')
    }

    /// A quoted-string starting at the opening quote; an unterminated one runs to the end.
    fn quoted(&mut self) -> String {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_quoted_params() {
        let c = BearerChallenge::parse(
            r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="files:read files:write""#,
        )
        .unwrap();
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            c.scope,
            Some(vec!["files:read".to_owned(), "files:write".to_owned()])
        );
        assert_eq!(c.error, None);
        assert!(!c.is_insufficient_scope());
    }

    #[test]
    fn insufficient_scope_with_escapes_and_odd_spacing() {
        let c = BearerChallenge::parse(
            "bearer   error = \"insufficient_scope\" ,scope=\"a  b a\", error_description=\"say \\\"hi\\\"\"",
        )
        .unwrap();
        assert!(c.is_insufficient_scope());
        assert_eq!(c.scope, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(c.error_description.as_deref(), Some("say \"hi\""));
    }

    #[test]
    fn several_challenges_pick_bearer() {
        let all = parse_challenges(
            r#"Basic realm="hub", charset="UTF-8", Negotiate abc/def==, Bearer realm="x", error=invalid_token"#,
        );
        let schemes: Vec<_> = all.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "Negotiate", "Bearer"]);
        assert_eq!(all[0].param("charset"), Some("UTF-8"));
        assert_eq!(all[1].token68.as_deref(), Some("abc/def=="));
        assert_eq!(all[2].param("error"), Some("invalid_token"));
        let bearer = BearerChallenge::parse(
            r#"Basic realm="hub", Bearer scope="mcp", resource_metadata="http://127.0.0.1/x""#,
        )
        .unwrap();
        assert_eq!(bearer.scope, Some(vec!["mcp".to_owned()]));
        assert_eq!(
            bearer.resource_metadata.as_deref(),
            Some("http://127.0.0.1/x")
        );
    }

    #[test]
    fn bare_scheme_and_no_bearer() {
        assert_eq!(BearerChallenge::parse("Bearer"), Some(Default::default()));
        assert_eq!(BearerChallenge::parse(r#"Basic realm="a""#), None);
        assert_eq!(BearerChallenge::parse(""), None);
        // Commas inside quoted strings do not split challenges.
        let c = BearerChallenge::parse(r#"Bearer error_description="a, b=c", scope="s""#).unwrap();
        assert_eq!(c.error_description.as_deref(), Some("a, b=c"));
        assert_eq!(c.scope, Some(vec!["s".to_owned()]));
    }

    #[test]
    fn malformed_input_does_not_panic() {
        for h in [
            "\"",
            "Bearer scope=\"unterminated",
            "Bearer ===",
            ",,, ,",
            "Bearer a=b c d=e",
            "Bearer =x",
            "\u{e9}t\u{e9} Bearer",
        ] {
            let _ = parse_challenges(h);
            let _ = BearerChallenge::parse(h);
        }
        let c = BearerChallenge::parse("Bearer scope=\"unterminated").unwrap();
        assert_eq!(c.scope, Some(vec!["unterminated".to_owned()]));
    }
}
