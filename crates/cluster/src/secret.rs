use subtle::ConstantTimeEq as _;

use crate::ClusterError;

/// The secret shared by the replicas of a cluster. Its `Debug` never shows it; it is compared
/// in constant time.
#[derive(Clone)]
pub struct SharedSecret(String);

impl SharedSecret {
    /// Wraps a secret; refuses one shorter than 16 bytes (guessable) or one that cannot travel
    /// in an HTTP header (visible ASCII only).
    pub fn new(secret: impl Into<String>) -> Result<SharedSecret, ClusterError> {
        let s = secret.into();
        if s.len() < 16 {
            return Err(ClusterError::Config(
                "the cluster secret must be at least 16 characters".into(),
            ));
        }
        if !s.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ClusterError::Config(
                "the cluster secret may contain only visible ASCII characters".into(),
            ));
        }
        Ok(SharedSecret(s))
    }

    /// The secret itself, to put in a forwarded request's header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is the secret (constant time).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// `n` random bytes from the OS, as hex.
pub(crate) fn random_hex(n: usize) -> Result<String, ClusterError> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| ClusterError::Random(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_checked_and_hidden() {
        assert!(SharedSecret::new("short").is_err());
        assert!(SharedSecret::new("sixteen chars ok!").is_err(), "a space");
        let s = SharedSecret::new("0123456789abcdef-xyz").unwrap();
        assert!(s.matches(b"0123456789abcdef-xyz"));
        assert!(!s.matches(b"0123456789abcdef-xy"));
        assert!(!s.matches(b""));
        assert!(!format!("{s:?}").contains("0123"));
        assert_eq!(random_hex(16).unwrap().len(), 32);
    }
}
