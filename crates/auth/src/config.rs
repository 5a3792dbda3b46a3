//! The per-server OAuth settings (the `oauth` object of a server's configuration entry).

use serde::Deserialize;

/// OAuth settings of one remote server, from the `oauth` object of its configuration entry.
/// Every key is optional; with none of them the hub discovers and registers by itself.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// A client id registered beforehand with the server's authorization server. Takes
    /// precedence over client ID metadata documents and dynamic registration.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The secret of `client_id`, for confidential clients (`client_secret_basic` or
    /// `client_secret_post`, whichever the authorization server supports).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes to request when the server's challenge names none (instead of all the scopes
    /// its metadata lists). Accepts an array or a space-separated string.
    #[serde(default, deserialize_with = "scopes")]
    pub scopes: Option<Vec<String>>,
    /// An `https` URL (with a path) serving this hub's Client ID Metadata Document; used as the
    /// client id where the authorization server supports such documents.
    #[serde(default)]
    pub client_metadata_url: Option<String>,
    /// The server's URL as written in its config entry (placeholders unresolved): the key under
    /// which the Node `mcp-hub` saved its login, for importing it. Not part of the `oauth` object.
    #[serde(skip)]
    pub config_url: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("scopes", &self.scopes)
            .field("client_metadata_url", &self.client_metadata_url)
            .field("config_url", &self.config_url)
            .finish()
    }
}

fn scopes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scopes {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Scopes>::deserialize(d)? {
        None => None,
        Some(Scopes::List(l)) => Some(l),
        Some(Scopes::Text(t)) => Some(crate::challenge::split_scope(&t)),
    }
    .map(|l| l.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>())
    .filter(|l| !l.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_redacts_secret() {
        let c: ClientConfig = serde_json::from_str(
            r#"{"client_id":"abc","client_secret":"s3cr3t","scopes":"read write","client_metadata_url":"https://x.example/cimd.json"}"#,
        )
        .unwrap();
        assert_eq!(c.scopes, Some(vec!["read".to_owned(), "write".to_owned()]));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        let c: ClientConfig = serde_json::from_str(r#"{"scopes":["a","b"]}"#).unwrap();
        assert_eq!(c.scopes, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(
            serde_json::from_str::<ClientConfig>("{}").unwrap(),
            ClientConfig::default()
        );
        assert!(serde_json::from_str::<ClientConfig>(r#"{"clientId":"x"}"#).is_err());
    }
}
