//! Logins the Node `mcp-hub` saved in `oauth-storage.json` carry over: converted into this
//! hub's store (0600) when it has nothing for a server, refreshable, and the Node file untouched.

use std::os::unix::fs::PermissionsExt as _;

use url::Url;

use super::fake::{FakeConfig, start_fake};
use super::{call_mcp, manager};
use crate::ClientConfig;

/// The Node hub's storage with one real login for `url` (as the Node hub writes it: plaintext,
/// 0644, keyed by the URL from the config, an empty entry for another server).
fn node_storage(dir: &tempfile::TempDir, url: &Url) -> std::path::PathBuf {
    let path = dir.path().join("node/oauth-storage.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let content = serde_json::json!({
        "https://unused.example/mcp": {"clientInfo": null, "tokens": null, "codeVerifier": null},
        url.as_str(): {
            "clientInfo": {
                "client_id": "node-client",
                "redirect_uris": ["http://localhost:37373/api/oauth/callback?server_name=remote"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "client_name": "MCP Hub"
            },
            "tokens": {"access_token": "node-at", "token_type": "Bearer", "expires_in": 3600,
                       "refresh_token": "node-rt"},
            "codeVerifier": "node-verifier"
        }
    });
    std::fs::write(&path, serde_json::to_string_pretty(&content).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

#[tokio::test]
async fn a_node_hub_login_is_imported_refreshed_and_kept_private() {
    let fake = start_fake(FakeConfig::default()).await;
    {
        let mut st = fake.st();
        st.access.insert("node-at".into(), None);
        st.refresh.insert("node-rt".into());
    }
    let url = fake.mcp_url();
    let dir = tempfile::tempdir().unwrap();
    let node = node_storage(&dir, &url);
    let node_before = std::fs::read(&node).unwrap();
    let ours = dir.path().join("mcp-hub/oauth-tokens.json");

    let m = manager(&dir);
    m.import_node_storage(node.clone());
    let config = ClientConfig {
        config_url: Some(url.to_string()),
        ..ClientConfig::default()
    };
    let hook = m.hook("remote", &url, config);
    let auth = hook.authorization().await.unwrap();
    assert_eq!(
        auth.as_deref(),
        Some("Bearer node-at"),
        "no re-authorization"
    );
    assert_eq!(call_mcp(&url, auth.as_deref()).await.0, 200);

    // Converted into our store, readable by the user only; the Node file is left as it was.
    let mode = std::fs::metadata(&ours).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&ours).unwrap()).unwrap();
    let t = &stored["tokens"][0];
    assert_eq!(t["access_token"], "node-at");
    assert_eq!(t["client_id"], "node-client");
    assert_eq!(
        t["token_endpoint"],
        format!("{}/token", fake.issuer()),
        "found by discovery"
    );
    assert_eq!(std::fs::read(&node).unwrap(), node_before);
    let node_mode = std::fs::metadata(&node).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        node_mode, 0o644,
        "the Node hub's file is not ours to change"
    );

    // The server stops accepting the token: the imported refresh token gets a new one.
    fake.st().access.remove("node-at");
    let (status, challenge) = call_mcp(&url, auth.as_deref()).await;
    assert_eq!(status, 401);
    assert!(hook.on_unauthorized(&challenge).await.unwrap(), "refreshed");
    assert_eq!(fake.st().grants, ["refresh_token"]);
    let fresh = hook.authorization().await.unwrap().unwrap();
    assert_ne!(fresh, "Bearer node-at");
    assert_eq!(call_mcp(&url, Some(&fresh)).await.0, 200);

    // After a restart our own store is used; the Node file is not consulted again.
    let m2 = manager(&dir);
    m2.import_node_storage(node.clone());
    let hook2 = m2.hook("remote", &url, ClientConfig::default());
    assert_eq!(
        hook2.authorization().await.unwrap().as_deref(),
        Some(fresh.as_str())
    );

    // A server the Node hub has no login for stays unauthorized.
    let other: Url = format!("{}/other/mcp", fake.base).parse().unwrap();
    let hook3 = m2.hook("other", &other, ClientConfig::default());
    assert_eq!(hook3.authorization().await.unwrap(), None);
}
