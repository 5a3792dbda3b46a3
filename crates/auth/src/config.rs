//! The per-server settings: the `oauth` object (the interactive authorization code flow) and the
//! `auth` object (which grant obtains tokens, and DPoP).

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::AuthError;
use crate::secret::Secret;

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

/// How the hub obtains tokens for one server: the `auth` object of its configuration entry.
/// Without one, the interactive authorization code flow (with the `oauth` settings) is used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// The grant.
    pub grant: Grant,
    /// Whether tokens are bound to the hub's DPoP key (RFC 9449).
    pub dpop: DpopMode,
}

/// The OAuth grant the hub uses toward a server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Grant {
    /// `authorization_code`: a user approves in a browser (PKCE, the `oauth` settings).
    #[default]
    AuthorizationCode,
    /// `client_credentials` (OAuth 2.1 §4.2, SEP-1046): the hub is the client and the resource
    /// owner; no user.
    ClientCredentials {
        /// How the hub authenticates at the token endpoint.
        client: ClientAuth,
        /// Scopes to request (else the challenge's, else the resource's).
        scopes: Option<Vec<String>>,
    },
    /// `jwt_bearer` (RFC 7523 §2.1, workload identity federation, SEP-1933): a JWT issued to
    /// the workload by its platform is exchanged for an access token.
    JwtBearer {
        /// How the hub identifies itself (usually a client id without a secret).
        client: ClientAuth,
        /// The workload's JWT.
        assertion: Source,
        /// Scopes to request.
        scopes: Option<Vec<String>>,
    },
    /// `enterprise_managed` (SEP-990): the user's ID token from the enterprise identity provider
    /// is exchanged there for an ID-JAG (RFC 8693), which the server's authorization server
    /// exchanges for an access token (RFC 7523).
    EnterpriseManaged {
        /// The hub's client at the server's authorization server.
        client: ClientAuth,
        /// The identity provider's token endpoint.
        idp_token_endpoint: String,
        /// The hub's client at the identity provider.
        idp_client: Option<ClientAuth>,
        /// The user's ID token.
        id_token: Source,
        /// Scopes to request.
        scopes: Option<Vec<String>>,
    },
}

impl Grant {
    /// The configuration name of the grant.
    pub fn name(&self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization_code",
            Grant::ClientCredentials { .. } => "client_credentials",
            Grant::JwtBearer { .. } => "jwt_bearer",
            Grant::EnterpriseManaged { .. } => "enterprise_managed",
        }
    }

    /// Whether the grant needs a user in a browser.
    pub fn is_interactive(&self) -> bool {
        matches!(self, Grant::AuthorizationCode)
    }
}

/// A client id and how it authenticates at a token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// The client id.
    pub client_id: String,
    /// The credential.
    pub credential: Credential,
}

/// A client's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A public client (`none`).
    None,
    /// `client_secret_basic` or `client_secret_post`, whichever the server supports.
    Secret(Secret),
    /// `private_key_jwt` (RFC 7523 §2.2): a JWT signed with this PEM key.
    PrivateKey {
        /// The PKCS#8 (or PKCS#1 RSA) PEM key.
        key: Source,
        /// The JWS algorithm, when the key allows several (RSA: `RS256` or `PS256`).
        algorithm: Option<String>,
    },
}

/// A secret value given inline (usually through a placeholder) or read from a file at each use
/// (for credentials a platform rotates, such as projected service account tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The value itself.
    Value(Secret),
    /// An absolute path to a file holding it (surrounding whitespace ignored).
    File(PathBuf),
}

impl Source {
    /// The current value.
    pub(crate) async fn read(&self) -> Result<Secret, AuthError> {
        match self {
            Source::Value(v) => Ok(v.clone()),
            Source::File(path) => {
                let text = tokio::fs::read_to_string(path).await.map_err(|e| {
                    AuthError::Invalid(format!("cannot read {}: {}", path.display(), e.kind()))
                })?;
                let value = text.trim();
                if value.is_empty() {
                    return Err(AuthError::Invalid(format!("{} is empty", path.display())));
                }
                Ok(Secret::new(value))
            }
        }
    }
}

/// DPoP (RFC 9449): whether the hub binds its tokens to its own key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DpopMode {
    /// `"auto"` (default): when the authorization server lists `ES256` in
    /// `dpop_signing_alg_values_supported`.
    #[default]
    Auto,
    /// `true`: always send proofs, whatever the metadata says.
    Always,
    /// `false`: never.
    Never,
}

/// The `auth` object as written; checked per grant in [`AuthConfig::from_json`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    dpop: Option<Value>,
    #[serde(default, deserialize_with = "scopes")]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    private_key: Option<String>,
    #[serde(default)]
    private_key_file: Option<String>,
    #[serde(default)]
    signing_algorithm: Option<String>,
    #[serde(default)]
    assertion: Option<String>,
    #[serde(default)]
    assertion_file: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    id_token_file: Option<String>,
    #[serde(default)]
    idp_token_endpoint: Option<String>,
    #[serde(default)]
    idp_client_id: Option<String>,
    #[serde(default)]
    idp_client_secret: Option<String>,
}

fn bad(msg: impl Into<String>) -> AuthError {
    AuthError::Invalid(format!("invalid `auth`: {}", msg.into()))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// `value` or `<value>_file`: exactly one of them.
fn source(
    name: &str,
    value: Option<String>,
    file: Option<String>,
) -> Result<Option<Source>, AuthError> {
    match (non_empty(value), non_empty(file)) {
        (Some(_), Some(_)) => Err(bad(format!("give `{name}` or `{name}_file`, not both"))),
        (Some(v), None) => Ok(Some(Source::Value(Secret::new(v)))),
        (None, Some(f)) => {
            let path = PathBuf::from(f.trim());
            if !path.is_absolute() {
                return Err(bad(format!("`{name}_file` must be an absolute path")));
            }
            Ok(Some(Source::File(path)))
        }
        (None, None) => Ok(None),
    }
}

impl AuthConfig {
    /// Reads an `auth` object (placeholders already resolved). Errors name the key, never a
    /// value.
    pub fn from_json(value: &Value) -> Result<AuthConfig, AuthError> {
        let raw: RawAuth = serde_json::from_value(value.clone()).map_err(|e| {
            // serde's message names the unknown field or the wrong type, not the value.
            bad(e.to_string())
        })?;
        let dpop = match &raw.dpop {
            None | Some(Value::Null) => DpopMode::Auto,
            Some(Value::Bool(true)) => DpopMode::Always,
            Some(Value::Bool(false)) => DpopMode::Never,
            Some(Value::String(s)) if s == "auto" => DpopMode::Auto,
            Some(_) => return Err(bad("`dpop` must be true, false or \"auto\"")),
        };
        let kind = raw
            .kind
            .clone()
            .unwrap_or_else(|| "authorization_code".into());
        let client_id = non_empty(raw.client_id.clone());
        let key = source(
            "private_key",
            raw.private_key.clone(),
            raw.private_key_file.clone(),
        )?;
        let secret = non_empty(raw.client_secret.clone()).map(Secret::new);
        let client = |required: bool| -> Result<Option<ClientAuth>, AuthError> {
            let credential = match (&secret, &key) {
                (Some(_), Some(_)) => {
                    return Err(bad("give `client_secret` or `private_key`, not both"));
                }
                (Some(s), None) => Credential::Secret(s.clone()),
                (None, Some(k)) => Credential::PrivateKey {
                    key: k.clone(),
                    algorithm: non_empty(raw.signing_algorithm.clone()),
                },
                (None, None) => Credential::None,
            };
            match &client_id {
                Some(id) => Ok(Some(ClientAuth {
                    client_id: id.clone(),
                    credential,
                })),
                None if required || credential != Credential::None => {
                    Err(bad(format!("type `{kind}` needs `client_id`")))
                }
                None => Ok(None),
            }
        };
        let unused = |keys: &[(&str, bool)]| -> Result<(), AuthError> {
            match keys.iter().find(|(_, present)| *present) {
                Some((k, _)) => Err(bad(format!("`{k}` is not used with type `{kind}`"))),
                None => Ok(()),
            }
        };
        let assertion = source(
            "assertion",
            raw.assertion.clone(),
            raw.assertion_file.clone(),
        )?;
        let id_token = source("id_token", raw.id_token.clone(), raw.id_token_file.clone())?;
        let idp = [
            ("idp_token_endpoint", raw.idp_token_endpoint.is_some()),
            ("idp_client_id", raw.idp_client_id.is_some()),
            ("idp_client_secret", raw.idp_client_secret.is_some()),
        ];
        if raw.signing_algorithm.is_some() && key.is_none() {
            return Err(bad(
                "`signing_algorithm` needs `private_key` or `private_key_file`",
            ));
        }
        let grant = match kind.as_str() {
            "authorization_code" => {
                unused(&[
                    ("client_id", raw.client_id.is_some()),
                    ("client_secret", raw.client_secret.is_some()),
                    ("private_key", key.is_some()),
                    ("scopes", raw.scopes.is_some()),
                    ("assertion", assertion.is_some()),
                    ("id_token", id_token.is_some()),
                ])
                .map_err(|e| {
                    AuthError::Invalid(format!(
                        "{e} (the interactive flow takes its settings from `oauth`)"
                    ))
                })?;
                unused(&idp)?;
                Grant::AuthorizationCode
            }
            "client_credentials" => {
                unused(&[
                    ("assertion", assertion.is_some()),
                    ("id_token", id_token.is_some()),
                ])?;
                unused(&idp)?;
                let client = client(true)?.ok_or_else(|| bad("missing `client_id`"))?;
                if client.credential == Credential::None {
                    return Err(bad(
                        "type `client_credentials` needs `client_secret` or `private_key`",
                    ));
                }
                Grant::ClientCredentials {
                    client,
                    scopes: raw.scopes.clone(),
                }
            }
            "jwt_bearer" => {
                unused(&[("id_token", id_token.is_some())])?;
                unused(&idp)?;
                Grant::JwtBearer {
                    client: client(false)?.unwrap_or(ClientAuth {
                        client_id: String::new(),
                        credential: Credential::None,
                    }),
                    assertion: assertion.ok_or_else(|| {
                        bad("type `jwt_bearer` needs `assertion` or `assertion_file`")
                    })?,
                    scopes: raw.scopes.clone(),
                }
            }
            "enterprise_managed" => {
                unused(&[("assertion", assertion.is_some())])?;
                let endpoint = non_empty(raw.idp_token_endpoint.clone())
                    .ok_or_else(|| bad("type `enterprise_managed` needs `idp_token_endpoint`"))?;
                let parsed = url::Url::parse(&endpoint)
                    .map_err(|_| bad("`idp_token_endpoint` is not a URL"))?;
                crate::urls::check_url(&parsed, None)?;
                let idp_client = match non_empty(raw.idp_client_id.clone()) {
                    Some(id) => Some(ClientAuth {
                        client_id: id,
                        credential: non_empty(raw.idp_client_secret.clone())
                            .map_or(Credential::None, |s| Credential::Secret(Secret::new(s))),
                    }),
                    None if raw.idp_client_secret.is_some() => {
                        return Err(bad("`idp_client_secret` needs `idp_client_id`"));
                    }
                    None => None,
                };
                Grant::EnterpriseManaged {
                    client: client(true)?.ok_or_else(|| bad("missing `client_id`"))?,
                    idp_token_endpoint: endpoint,
                    idp_client,
                    id_token: id_token.ok_or_else(|| {
                        bad("type `enterprise_managed` needs `id_token` or `id_token_file`")
                    })?,
                    scopes: raw.scopes.clone(),
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown type {other:?} (authorization_code, client_credentials, jwt_bearer \
                     or enterprise_managed)"
                )));
            }
        };
        Ok(AuthConfig { grant, dpop })
    }
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
