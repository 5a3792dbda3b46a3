//! Scrubbing resolved values out of text.
//!
//! Config errors never contain a resolved value by construction, but the hub's other messages
//! can: a resolved `url` or `command` travels into connection errors (from hyper, from the OS,
//! from an upstream's error page), and those reach logs, `/api/events`, the `error` of a server
//! and REST error bodies. A [`Redactor`] remembers what placeholders resolved to
//! ([`ResolvedServer::secrets`](crate::ResolvedServer::secrets)) and replaces every occurrence
//! in a message, in the forms a value takes once it is inside a URL or a JSON string.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

/// What a scrubbed value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Values shorter than this are not scrubbed: replacing `1` or `on` in every message would make
/// the messages unreadable, and a secret that short protects nothing.
pub const MIN_SECRET_LEN: usize = 4;

/// How many distinct values a redactor remembers; the oldest is forgotten first (a `${cmd:}`
/// that mints a new token at every reconnect must not grow the set without bound).
const MAX_VALUES: usize = 512;

/// A shared, growing set of values to scrub from text. Clones share the set.
///
/// ```
/// use mcp_hub_config::Redactor;
///
/// let r = Redactor::new();
/// r.add(["s3cr3t value"]);
/// assert_eq!(r.redact("GET /x?k=s3cr3t%20value failed"), "GET /x?k=[redacted] failed");
/// assert_eq!(r.redact("nothing to hide"), "nothing to hide");
/// ```
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<RwLock<Set>>,
}

#[derive(Default)]
struct Set {
    /// The values as added, oldest first.
    values: VecDeque<String>,
    /// Every form of every value, longest first (so a value containing another is replaced
    /// whole).
    forms: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.read().values.len();
        f.debug_struct("Redactor")
            .field("values", &format_args!("<{n} hidden>"))
            .finish()
    }
}

impl Redactor {
    /// An empty redactor.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Set> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers more values to scrub. Values shorter than [`MIN_SECRET_LEN`] are ignored.
    pub fn add<I, S>(&self, values: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let new: Vec<String> = values
            .into_iter()
            .map(|v| v.as_ref().to_owned())
            .filter(|v| v.chars().count() >= MIN_SECRET_LEN)
            .collect();
        if new.is_empty() || new.iter().all(|v| self.read().values.contains(v)) {
            return;
        }
        let mut set = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for v in new {
            if let Some(at) = set.values.iter().position(|x| *x == v) {
                // Seen again: it is current, keep it longest.
                set.values.remove(at);
            }
            set.values.push_back(v);
        }
        while set.values.len() > MAX_VALUES {
            set.values.pop_front();
        }
        let mut forms: Vec<String> = set.values.iter().flat_map(|v| forms_of(v)).collect();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        set.forms = forms;
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.read().values.is_empty()
    }

    /// `text` with every remembered value (and its URL- and JSON-escaped forms) replaced by
    /// [`REDACTED`]. Borrows when there is nothing to replace.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let set = self.read();
        let mut out: Cow<'t, str> = Cow::Borrowed(text);
        for form in &set.forms {
            if out.contains(form.as_str()) {
                out = Cow::Owned(out.replace(form.as_str(), REDACTED));
            }
        }
        out
    }

    /// [`redact`](Self::redact) for an owned string.
    pub fn redact_string(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => s,
        }
    }
}

/// The forms a value takes in messages: as is, percent-encoded the ways the `url` crate encodes a
/// path, a query and userinfo, fully percent-encoded, form-encoded, and escaped inside a JSON
/// string.
fn forms_of(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_owned()];
    for set in [
        Encode::Query,
        Encode::Path,
        Encode::Userinfo,
        Encode::Component,
        Encode::Form,
    ] {
        forms.push(percent_encode(value, set));
    }
    if let Ok(json) = serde_json::to_string(value) {
        forms.push(json[1..json.len() - 1].to_owned());
    }
    forms.sort();
    forms.dedup();
    forms
}

#[derive(Clone, Copy)]
enum Encode {
    /// The WHATWG special-query set (what `url` does to `?…` of http(s) URLs).
    Query,
    /// The WHATWG path set.
    Path,
    /// The WHATWG userinfo set.
    Userinfo,
    /// Everything but the RFC 3986 unreserved characters.
    Component,
    /// `application/x-www-form-urlencoded` (space as `+`).
    Form,
}

fn percent_encode(value: &str, set: Encode) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        let keep = match set {
            Encode::Component => b.is_ascii_alphanumeric() || b"-._~".contains(&b),
            Encode::Form => b.is_ascii_alphanumeric() || b"*-._".contains(&b),
            _ => {
                let query = b.is_ascii_graphic() && !b"\"#<>'".contains(&b);
                match set {
                    Encode::Query => query,
                    Encode::Path => (query || b == b'\'') && !b"?`{}".contains(&b),
                    _ => (query || b == b'\'') && !b"?`{}/:;=@[\\]^|".contains(&b),
                }
            }
        };
        if keep {
            out.push(char::from(b));
        } else if b == b' ' && matches!(set, Encode::Form) {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A URL without credentials, query or fragment, for messages: `https://u:p@h/x?k=v` shows as
/// `https://…@h/x?…`.
///
/// ```
/// assert_eq!(mcp_hub_config::redact_url("https://u:p@h/x?k=v#f"), "https://…@h/x?…");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (mut visible, hidden) = (rest[..end].to_owned(), end < rest.len());
    let authority_end = visible.find('/').unwrap_or(visible.len());
    if let Some(at) = visible[..authority_end].rfind('@') {
        visible.replace_range(..=at, "…@");
    }
    let tail = if hidden { "?…" } else { "" };
    if scheme.is_empty() {
        format!("{visible}{tail}")
    } else {
        format!("{scheme}://{visible}{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_scrubbed() {
        let r = Redactor::new();
        r.add(["p@ss w/\"rd"]);
        for text in [
            "p@ss w/\"rd",
            "http://u:p%40ss%20w%2F%22rd@h/",
            "http://h/p@ss%20w/%22rd",
            "http://h/?k=p@ss%20w/%22rd",
            "k=p%40ss+w%2F%22rd",
            r#"{"msg":"p@ss w/\"rd"}"#,
        ] {
            let out = r.redact(text);
            assert!(out.contains(REDACTED), "{text} -> {out}");
            assert!(!out.contains("ss w") && !out.contains("ss%20w") && !out.contains("ss+w"));
        }
    }

    #[test]
    fn short_values_are_ignored_and_longest_wins() {
        let r = Redactor::new();
        r.add(["1", "abc", "token", "token-extended"]);
        assert_eq!(r.redact("1 abc token-extended"), "1 abc [redacted]");
        assert_eq!(r.redact("a token"), "a [redacted]");
        assert!(matches!(r.redact("nothing"), Cow::Borrowed(_)));
    }

    #[test]
    fn the_set_is_bounded_and_shared() {
        let r = Redactor::new();
        let clone = r.clone();
        for i in 0..(MAX_VALUES + 10) {
            r.add([format!("value-{i:05}")]);
        }
        assert_eq!(
            clone.redact("value-00000"),
            "value-00000",
            "the oldest is forgotten"
        );
        assert_eq!(clone.redact("value-00521"), REDACTED);
        assert!(format!("{r:?}").contains("hidden"));
    }
}
