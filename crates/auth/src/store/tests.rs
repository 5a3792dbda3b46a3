use super::*;
use std::os::unix::fs::PermissionsExt as _;

fn tokens(server: &str, at: &str, updated_at: u64) -> StoredTokens {
    StoredTokens {
        server_url: server.into(),
        issuer: "https://as.example".into(),
        client_id: "c".into(),
        resource: server.into(),
        token_endpoint: "https://as.example/token".into(),
        token_endpoint_auth_method: "none".into(),
        access_token: Secret::new(at),
        token_type: "Bearer".into(),
        refresh_token: None,
        expires_at: Some(100),
        scope: None,
        obtained_at: 1,
        updated_at,
    }
}

#[tokio::test]
async fn writes_0600_atomically_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/oauth-tokens.json");
    let store = Store::load(path.clone()).unwrap();
    store
        .put_tokens(tokens("https://a/mcp", "t1", 1))
        .await
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["oauth-tokens.json"]);
    let again = Store::load(path.clone()).unwrap();
    assert_eq!(
        again.read(|d| d
            .tokens_for("https://a/mcp")
            .map(|t| t.access_token.clone())),
        Some(Secret::new("t1"))
    );
}

#[tokio::test]
async fn an_unusable_path_is_an_empty_store_that_says_why_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the store's directory should be.
    std::fs::write(dir.path().join("mcp-hub"), "not a directory").unwrap();
    let path = dir.path().join("mcp-hub/oauth-tokens.json");
    let store = Store::load(path.clone()).expect("loading never fails on the path");
    assert!(store.read(|d| d.tokens.is_empty()));
    let why = store.unusable().expect("unusable").to_string();
    assert!(why.contains("oauth-tokens.json"), "{why}");
    assert!(
        store
            .put_tokens(tokens("https://a/mcp", "t", 1))
            .await
            .is_err()
    );
    assert!(store.unusable().is_some());
    // Once the path works, so does the store.
    std::fs::remove_file(dir.path().join("mcp-hub")).unwrap();
    store
        .put_tokens(tokens("https://a/mcp", "t", 2))
        .await
        .unwrap();
    assert!(store.unusable().is_none());
    assert!(path.exists());
}

#[tokio::test]
async fn merges_with_another_writer_and_respects_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oauth-tokens.json");
    let a = Store::load(path.clone()).unwrap();
    let b = Store::load(path.clone()).unwrap();
    a.put_tokens(tokens("https://a/mcp", "a1", 10))
        .await
        .unwrap();
    b.put_tokens(tokens("https://b/mcp", "b1", 11))
        .await
        .unwrap();
    // b's write kept a's entry, and b now sees it.
    let on_disk = Store::load(path.clone()).unwrap();
    assert!(on_disk.read(|d| d.tokens_for("https://a/mcp").is_some()));
    assert!(b.read(|d| d.tokens_for("https://a/mcp").is_some()));
    // A newer entry from the other writer wins over an older one.
    b.put_tokens(tokens("https://a/mcp", "a2", 20))
        .await
        .unwrap();
    a.put_tokens(tokens("https://b/mcp", "b0", 5))
        .await
        .unwrap();
    let on_disk = Store::load(path.clone()).unwrap();
    assert_eq!(
        on_disk.read(|d| d.tokens_for("https://a/mcp").unwrap().access_token.clone()),
        Secret::new("a2")
    );
    assert_eq!(
        on_disk.read(|d| d.tokens_for("https://b/mcp").unwrap().access_token.clone()),
        Secret::new("b1")
    );
    // A deletion is not undone by the copy still on disk.
    a.remove_tokens("https://b/mcp", 30).await.unwrap();
    let on_disk = Store::load(path).unwrap();
    assert!(on_disk.read(|d| d.tokens_for("https://b/mcp").is_none()));
}

#[tokio::test]
async fn node_hub_file_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("oauth-storage.json");
    let content = br#"{"https://x/mcp":{"clientInfo":null,"tokens":null,"codeVerifier":null}}"#;
    std::fs::write(&node, content).unwrap();
    let store = Store::load(node.clone()).unwrap();
    assert_eq!(store.path(), dir.path().join("oauth-tokens.json"));
    store
        .put_tokens(tokens("https://a/mcp", "t", 1))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&node).unwrap(), content);
    // Our own format at that path is used as is.
    std::fs::write(&node, br#"{"version":1}"#).unwrap();
    assert_eq!(Store::load(node.clone()).unwrap().path(), node);
}

#[test]
fn corrupt_file_is_moved_aside_and_loose_mode_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oauth-tokens.json");
    std::fs::write(&path, b"{not json").unwrap();
    let store = Store::load(path.clone()).unwrap();
    assert!(store.read(|d| d.tokens.is_empty()));
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    std::fs::write(&path, b"{}").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    Store::load(path.clone()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
