/// Separator between a server's prefix and an upstream name, as in the Node `mcp-hub`.
pub const NAMESPACE_SEPARATOR: &str = "__";

/// The Node hub's server id: every character outside `[A-Za-z0-9]` becomes `_`.
///
/// ```
/// assert_eq!(mcp_hub_registry::default_server_id("my.server-2"), "my_server_2");
/// ```
pub fn default_server_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Makes a tool or prompt name valid under the 2025-11-25 rules (1-128 chars of
/// `[A-Za-z0-9_.-]`): other characters become `_`, and an over-long name is cut and given a
/// short stable hash suffix so two long names stay distinct.
pub(crate) fn sanitize_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    if s.len() > 128 {
        let hash = fnv1a(name.as_bytes());
        s.truncate(119);
        s.push('-');
        s.push_str(&format!("{:08x}", hash as u32));
    }
    s
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_names_are_valid() {
        for n in ["a b", "", "ü", &"x".repeat(300), "ok.name-1"] {
            let s = sanitize_name(n);
            assert!(
                mcp_hub_protocol::types::is_valid_tool_name(&s),
                "{n:?} -> {s:?}"
            );
        }
        assert_eq!(sanitize_name("ok.name-1"), "ok.name-1");
        assert_ne!(
            sanitize_name(&format!("{}a", "x".repeat(300))),
            sanitize_name(&format!("{}b", "x".repeat(300)))
        );
    }
}
