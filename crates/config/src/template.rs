//! The placeholder grammar: scanning a string for `${…}`, the `$${` escape and the legacy bare
//! `$VAR` argument form. Pure: every lookup and command goes through [`Lookup`].

use crate::error::CommandError;

/// How deep placeholders may nest (`${cmd: … ${env:X} …}` is depth 2), as in the Node hub.
pub(crate) const MAX_DEPTH: usize = 10;

/// Why one placeholder could not be expanded; turned into a [`crate::ConfigError`] by the caller,
/// who knows the server and the field.
#[derive(Debug)]
pub(crate) enum Fail {
    /// `${NAME}`, `${env:NAME}` or bare `$NAME` with no value anywhere.
    Var(String),
    /// `${input:ID}` with no value anywhere (carries `input:ID`).
    Input(String),
    /// A `${cmd: …}` failed; `template` is its text as written.
    Cmd {
        template: String,
        error: CommandError,
    },
    /// Malformed placeholder.
    Syntax(String),
    /// Resolution stopped because of an error that was already reported elsewhere (a failing
    /// sibling env value); nothing more to say here.
    Abort,
}

/// Where values come from while expanding one field.
pub(crate) trait Lookup {
    /// A variable (`env:` already stripped). `Ok(None)` when it is defined nowhere.
    fn var(&mut self, name: &str) -> Result<Option<String>, Fail>;
    /// A VS Code input id (without the `input:` prefix).
    fn input(&mut self, id: &str) -> Result<Option<String>, Fail>;
    /// Runs a command whose own placeholders are already resolved.
    fn command(&mut self, command: &str) -> Result<String, CommandError>;
}

/// Expands `template`, collecting failures in `fails`.
///
/// With `fail_fast`, expansion stops at the first failure (so no further command runs); without
/// it, every failure is collected and failed placeholders expand to nothing.
pub(crate) fn expand(
    template: &str,
    lookup: &mut dyn Lookup,
    fail_fast: bool,
    fails: &mut Vec<Fail>,
) -> String {
    Expander {
        lookup,
        fail_fast,
        fails,
    }
    .expand(template, 0)
}

struct Expander<'a> {
    lookup: &'a mut dyn Lookup,
    fail_fast: bool,
    fails: &'a mut Vec<Fail>,
}

impl Expander<'_> {
    fn stopped(&self) -> bool {
        self.fail_fast && !self.fails.is_empty()
    }

    fn expand(&mut self, text: &str, depth: usize) -> String {
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut literal_from = 0;
        let mut i = 0;
        while i < bytes.len() && !self.stopped() {
            if bytes[i] != b'$' {
                i += 1;
                continue;
            }
            if bytes[i..].starts_with(b"$${") {
                out.push_str(&text[literal_from..i]);
                out.push_str("${");
                i += 3;
                literal_from = i;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'{') {
                if let Some(close) = matching_brace(bytes, i + 2) {
                    out.push_str(&text[literal_from..i]);
                    let value = self.placeholder(&text[i + 2..close], depth + 1);
                    out.push_str(&value);
                    i = close + 1;
                    literal_from = i;
                } else {
                    // Unterminated: the `${` stays literal and scanning goes on after it.
                    i += 2;
                }
                continue;
            }
            i += 1;
        }
        out.push_str(&text[literal_from..]);
        out
    }

    /// Expands the body of one `${…}`.
    fn placeholder(&mut self, body: &str, depth: usize) -> String {
        if depth > MAX_DEPTH {
            self.fails.push(Fail::Syntax(format!(
                "placeholders are nested more than {MAX_DEPTH} deep"
            )));
            return String::new();
        }
        let before = self.fails.len();
        // The kind of a placeholder is decided by its text as written, before inner resolution,
        // so a variable's value can never turn into a command.
        if let Some(raw_command) = body.strip_prefix("cmd:") {
            let command = self.expand(raw_command, depth);
            if self.fails.len() > before {
                return String::new();
            }
            let command = command.trim();
            if command.is_empty() {
                self.fails
                    .push(Fail::Syntax("`${cmd:}` has no command".into()));
                return String::new();
            }
            return match self.lookup.command(command) {
                Ok(out) => out.trim().to_owned(),
                Err(error) => {
                    self.fails.push(Fail::Cmd {
                        template: raw_command.trim().to_owned(),
                        error,
                    });
                    String::new()
                }
            };
        }
        let name = self.expand(body, depth);
        if self.fails.len() > before {
            return String::new();
        }
        let name = name.trim();
        // Errors name the variable as written: a name built from other placeholders
        // (`${a${B}}`) would otherwise carry B's value, which may be a secret, into the message.
        let written = body.trim();
        let shown = |resolved: &str| {
            if written.contains("${") {
                written.to_owned()
            } else {
                resolved.to_owned()
            }
        };
        let found = if let Some(id) = name.strip_prefix("input:") {
            if id.is_empty() {
                Err(Fail::Syntax("`${input:}` has no id".into()))
            } else {
                self.lookup
                    .input(id)
                    .and_then(|v| v.ok_or_else(|| Fail::Input(shown(name))))
            }
        } else {
            let var = name.strip_prefix("env:").unwrap_or(name).trim();
            if var.is_empty() {
                Err(Fail::Syntax("empty placeholder `${}`".into()))
            } else {
                self.lookup
                    .var(var)
                    .and_then(|v| v.ok_or_else(|| Fail::Var(shown(var))))
            }
        };
        found.unwrap_or_else(|fail| {
            self.fails.push(fail);
            String::new()
        })
    }
}

/// Index of the `}` closing a placeholder whose body starts at `from`.
///
/// Every `{` inside the body counts, not only `${`, so shell code such as
/// `${cmd: awk '{print $1}' f}` keeps its braces.
fn matching_brace(bytes: &[u8], from: usize) -> Option<usize> {
    let mut depth = 1usize;
    for (offset, &b) in bytes[from..].iter().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(from + offset);
                }
            }
            _ => {}
        }
    }
    None
}

/// What a whole `args` element of the legacy bare form means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LegacyArg<'a> {
    /// `$NAME`: the value of `NAME`.
    Var(&'a str),
    /// `$$NAME`, `$$$NAME`…: the same text with one `$` fewer, unresolved.
    Literal(&'a str),
}

/// Recognises an argument that is exactly `$` + identifier (or more `$`s + identifier).
pub(crate) fn legacy_arg(arg: &str) -> Option<LegacyArg<'_>> {
    let name = arg.trim_start_matches('$');
    let dollars = arg.len() - name.len();
    if dollars == 0 || !is_identifier(name) {
        return None;
    }
    Some(if dollars == 1 {
        LegacyArg::Var(name)
    } else {
        LegacyArg::Literal(&arg[1..])
    })
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Escapes `text` so that placeholder resolution gives it back unchanged: every `${` becomes
/// `$${`.
///
/// ```
/// use mcp_hub_config::escape;
///
/// assert_eq!(escape("cost: ${price}"), "cost: $${price}");
/// assert_eq!(escape("no placeholders"), "no placeholders");
/// ```
pub fn escape(text: &str) -> String {
    text.replace("${", "$${")
}

/// Like [`escape`], for an element of `args`, where a whole `$NAME` is also special (the legacy
/// bare form): such an element gets one more `$`.
///
/// ```
/// use mcp_hub_config::escape_arg;
///
/// assert_eq!(escape_arg("$HOME"), "$$HOME");
/// assert_eq!(escape_arg("--home=${HOME}"), "--home=$${HOME}");
/// ```
pub fn escape_arg(arg: &str) -> String {
    if legacy_arg(arg).is_some() {
        format!("${arg}")
    } else {
        escape(arg)
    }
}

/// Whether `text` contains anything resolution would change: a `${` (placeholder or escape).
/// Bare `$VAR` in `args` is checked separately.
pub(crate) fn has_placeholder(text: &str) -> bool {
    text.contains("${")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A lookup over a map, recording commands; `fail:` commands fail.
    #[derive(Default)]
    pub(crate) struct MapLookup {
        pub vars: HashMap<String, String>,
        pub commands: Vec<String>,
    }

    impl MapLookup {
        pub(crate) fn with(vars: &[(&str, &str)]) -> Self {
            MapLookup {
                vars: vars
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                commands: Vec::new(),
            }
        }
    }

    impl Lookup for MapLookup {
        fn var(&mut self, name: &str) -> Result<Option<String>, Fail> {
            Ok(self.vars.get(name).cloned())
        }
        fn input(&mut self, id: &str) -> Result<Option<String>, Fail> {
            Ok(self.vars.get(&format!("input:{id}")).cloned())
        }
        fn command(&mut self, command: &str) -> Result<String, CommandError> {
            self.commands.push(command.to_owned());
            match command.strip_prefix("fail") {
                Some(_) => Err(CommandError::Failed {
                    status: "exit status: 1".into(),
                    stderr: "boom".into(),
                }),
                None => Ok(format!("  out({command})\n")),
            }
        }
    }

    pub(crate) fn run(template: &str, lookup: &mut MapLookup) -> Result<String, Vec<Fail>> {
        let mut fails = Vec::new();
        let out = expand(template, lookup, false, &mut fails);
        if fails.is_empty() {
            Ok(out)
        } else {
            Err(fails)
        }
    }

    fn ok(template: &str, vars: &[(&str, &str)]) -> String {
        run(template, &mut MapLookup::with(vars)).unwrap_or_else(|f| panic!("{template}: {f:?}"))
    }

    #[test]
    fn variables_in_both_spellings() {
        let vars = [("A", "1"), ("B", "two")];
        assert_eq!(ok("x${A}y${env:B}z", &vars), "x1ytwoz");
        assert_eq!(ok("${ A }", &vars), "1");
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        for t in ["", "plain", "$", "$$", "$A", "a$", "{}", "}${", "100$ {x}"] {
            assert_eq!(ok(t, &[]), t);
        }
    }

    #[test]
    fn escape_gives_a_literal() {
        assert_eq!(ok("$${A}", &[("A", "1")]), "${A}");
        // Only `$${` is special: the first `$` is literal, the rest is an escape.
        assert_eq!(ok("$$${A}", &[("A", "1")]), "$${A}");
        assert_eq!(ok("$$ ${A}", &[("A", "1")]), "$$ 1");
        assert_eq!(ok("a$${b", &[]), "a${b");
    }

    #[test]
    fn unterminated_stays_literal_and_later_placeholders_resolve() {
        assert_eq!(ok("${A", &[("A", "1")]), "${A");
        assert_eq!(ok("${X ${A}", &[("A", "1")]), "${X 1");
    }

    #[test]
    fn unknown_variable_is_an_error_naming_it() {
        let fails = run("a ${NOPE} ${input:key}", &mut MapLookup::default()).unwrap_err();
        assert!(matches!(&fails[0], Fail::Var(v) if v == "NOPE"));
        assert!(matches!(&fails[1], Fail::Input(v) if v == "input:key"));
    }

    #[test]
    fn a_nested_name_is_reported_as_written_not_resolved() {
        let fails = run("${a${B}}", &mut MapLookup::with(&[("B", "s3cret")])).unwrap_err();
        assert!(
            matches!(&fails[0], Fail::Var(v) if v == "a${B}"),
            "{fails:?}"
        );
    }

    #[test]
    fn inputs_are_looked_up_with_their_prefix() {
        assert_eq!(ok("${input:api-key}", &[("input:api-key", "k")]), "k");
    }

    #[test]
    fn command_output_is_trimmed_and_inner_placeholders_resolve_first() {
        let mut lookup = MapLookup::with(&[("ITEM", "db/pass")]);
        let out = run("pw=${cmd: op read ${env:ITEM} }", &mut lookup).unwrap();
        assert_eq!(out, "pw=out(op read db/pass)");
        assert_eq!(lookup.commands, ["op read db/pass"]);
    }

    #[test]
    fn braces_inside_a_command_are_balanced() {
        let mut lookup = MapLookup::default();
        run("${cmd: awk '{print $1}' f}", &mut lookup).unwrap();
        assert_eq!(lookup.commands, ["awk '{print $1}' f"]);
    }

    #[test]
    fn escape_inside_a_command_reaches_the_shell() {
        let mut lookup = MapLookup::default();
        run("${cmd: echo $${HOME}}", &mut lookup).unwrap();
        assert_eq!(lookup.commands, ["echo ${HOME}"]);
    }

    #[test]
    fn failing_command_reports_the_raw_template() {
        let mut lookup = MapLookup::with(&[("S", "secret")]);
        let fails = run("${cmd: fail ${S}}", &mut lookup).unwrap_err();
        match &fails[0] {
            Fail::Cmd { template, .. } => assert_eq!(template, "fail ${S}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn values_are_not_rescanned_and_cannot_become_commands() {
        let mut lookup = MapLookup::with(&[("A", "${B}"), ("B", "no"), ("N", "cmd: rm")]);
        assert_eq!(run("${A}", &mut lookup).unwrap(), "${B}");
        let fails = run("${${N}}", &mut lookup).unwrap_err();
        // Not run, and reported as written (the value it resolved to stays out of the error).
        assert!(
            matches!(&fails[0], Fail::Var(v) if v == "${N}"),
            "{fails:?}"
        );
        assert!(lookup.commands.is_empty());
    }

    #[test]
    fn nested_names_resolve_inner_first() {
        assert_eq!(ok("${${WHICH}}", &[("WHICH", "A"), ("A", "1")]), "1");
    }

    #[test]
    fn malformed_placeholders() {
        for t in ["${}", "${env:}", "${cmd:}", "${cmd:   }", "${input:}"] {
            let fails = run(t, &mut MapLookup::default()).unwrap_err();
            assert!(matches!(fails[0], Fail::Syntax(_)), "{t}");
        }
        let deep = format!("{}A{}", "${".repeat(12), "}".repeat(12));
        let fails = run(&deep, &mut MapLookup::default()).unwrap_err();
        assert!(matches!(&fails[0], Fail::Syntax(m) if m.contains("nested")));
    }

    #[test]
    fn fail_fast_stops_before_later_commands() {
        let mut lookup = MapLookup::default();
        let mut fails = Vec::new();
        expand("${NOPE} ${cmd: expensive}", &mut lookup, true, &mut fails);
        assert_eq!(fails.len(), 1);
        assert!(lookup.commands.is_empty());
        let mut fails = Vec::new();
        expand("${NOPE} ${ALSO}", &mut lookup, false, &mut fails);
        assert_eq!(fails.len(), 2);
    }

    #[test]
    fn legacy_args() {
        assert_eq!(legacy_arg("$HOME"), Some(LegacyArg::Var("HOME")));
        assert_eq!(legacy_arg("$$HOME"), Some(LegacyArg::Literal("$HOME")));
        assert_eq!(legacy_arg("$$$X_1"), Some(LegacyArg::Literal("$$X_1")));
        for not in ["${HOME}", "$HOME/x", "--x=$HOME", "$", "$1A", "HOME"] {
            assert_eq!(legacy_arg(not), None, "{not}");
        }
    }

    #[test]
    fn escape_helpers() {
        assert_eq!(escape("$${"), "$$${");
        assert_eq!(ok(&escape("$${"), &[]), "$${");
        assert_eq!(escape_arg("$X"), "$$X");
        assert_eq!(escape_arg("plain"), "plain");
    }
}
