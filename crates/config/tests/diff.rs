use mcp_hub_config::{Config, ConfigDiff, load_from_strs};
use serde_json::json;

use crate::common::config;

fn one(entry: &str) -> Config {
    config(&format!(r#"{{"mcpServers": {{"s": {entry}}}}}"#))
}

fn fields(old: &str, new: &str) -> Vec<String> {
    let diff = ConfigDiff::between(&one(old), &one(new));
    diff.details
        .get("s")
        .map(|c| c.modified_fields.clone())
        .unwrap_or_default()
}

#[test]
fn credentials_are_significant_but_never_shown() {
    let old = r#"{"url": "https://h/", "auth": {"type": "client_credentials", "client_id": "a", "client_secret": "old-s3cret"}}"#;
    let new = r#"{"url": "https://h/", "auth": {"type": "client_credentials", "client_id": "a", "client_secret": "new-s3cret"}}"#;
    let diff = ConfigDiff::between(&one(old), &one(new));
    assert_eq!(diff.modified, ["s"]);
    assert_eq!(diff.details["s"].modified_fields, ["auth"]);
    let text = diff.to_json().to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert_eq!(
        diff.to_json()["details"]["s"]["newValues"]["auth"]["client_id"],
        "a"
    );
    assert_eq!(
        fields(
            r#"{"url": "https://h/", "oauth": {"clientSecret": "x1"}}"#,
            r#"{"url": "https://h/", "oauth": {"clientSecret": "x2"}}"#
        ),
        ["oauth"]
    );
}

#[test]
fn significant_fields_follow_the_node_hub() {
    let base = r#"{"command": "x"}"#;
    let cases: &[(&str, &str)] = &[
        (r#"{"command": "y"}"#, "command"),
        (r#"{"command": "x", "args": ["a"]}"#, "args"),
        (r#"{"command": "x", "env": {"A": "1"}}"#, "env"),
        (r#"{"command": "x", "disabled": true}"#, "disabled"),
        (r#"{"command": "x", "name": "X"}"#, "name"),
        (r#"{"command": "x", "cwd": "/w"}"#, "cwd"),
        (r#"{"command": "x", "dev": {"cwd": "/w"}}"#, "dev"),
        (r#"{"command": "x", "prefix": "p"}"#, "prefix"),
        (r#"{"command": "x", "prefix": false}"#, "prefix"),
        (r#"{"command": "x", "timeout": 5}"#, "timeout"),
    ];
    for (new, field) in cases {
        assert_eq!(fields(base, new), [*field], "{new}");
    }
    let remote = r#"{"url": "https://h/"}"#;
    assert_eq!(fields(remote, r#"{"url": "https://h/2"}"#), ["url"]);
    assert_eq!(
        fields(remote, r#"{"url": "https://h/", "headers": {"A": "b"}}"#),
        ["headers"]
    );
    assert_eq!(
        fields(remote, r#"{"url": "https://h/", "type": "sse"}"#),
        ["type"]
    );
    // Switching kind changes both defining fields.
    assert_eq!(fields(base, remote), ["command", "url"]);
}

#[test]
fn insignificant_and_equivalent_changes() {
    let base = r#"{"command": "x"}"#;
    for same in [
        r#"{"command": "x", "description": "new words"}"#,
        r#"{"command": "x", "autoApprove": ["t"]}"#,
        r#"{"command": "x", "disabled": false}"#,
        r#"{"command": "x", "args": []}"#,
        r#"{"command": "x", "env": {}}"#,
        r#"{"command": "x", "prefix": true}"#,
        r#"{"command": "x", "type": "stdio"}"#,
        r#"{"command": "x", "cwd": null}"#,
    ] {
        assert!(fields(base, same).is_empty(), "{same}");
    }
    let remote = r#"{"url": "https://h/", "type": "http"}"#;
    assert!(
        fields(
            remote,
            r#"{"url": "https://h/", "type": "streamable-http"}"#
        )
        .is_empty()
    );
    assert!(
        fields(
            r#"{"command": "x", "env": {"A": "1", "B": "2"}}"#,
            r#"{"command": "x", "env": {"B": "2", "A": "1"}}"#
        )
        .is_empty()
    );
}

#[test]
fn metadata_changes_are_flagged_separately() {
    let diff = ConfigDiff::between(
        &one(r#"{"command": "x", "description": "a"}"#),
        &one(r#"{"command": "x", "description": "b"}"#),
    );
    assert_eq!(diff.unchanged, ["s"]);
    assert_eq!(diff.metadata_changed, ["s"]);
    assert!(!diff.is_significant());
}

#[test]
fn config_source_move_is_significant() {
    let a = load_from_strs([("/a.json", r#"{"mcpServers": {"s": {"command": "x"}}}"#)]).unwrap();
    let b = load_from_strs([("/b.json", r#"{"mcpServers": {"s": {"command": "x"}}}"#)]).unwrap();
    let diff = ConfigDiff::between(&a, &b);
    assert_eq!(diff.details["s"].modified_fields, ["config_source"]);
    assert_eq!(
        diff.details["s"].old_values["config_source"],
        json!("/a.json")
    );
}

#[test]
fn node_changes_shape() {
    let old = config(
        r#"{"mcpServers": {"keep": {"command": "k"}, "gone": {"command": "g"},
            "mod": {"command": "m", "env": {"A": "${SECRET}"}}}}"#,
    );
    let new = config(
        r#"{"mcpServers": {"new": {"command": "n"}, "keep": {"command": "k"},
            "mod": {"command": "m", "env": {"A": "${OTHER}"}, "disabled": true}}}"#,
    );
    let diff = ConfigDiff::between(&old, &new);
    assert!(diff.is_significant());
    assert_eq!(
        diff.to_json(),
        json!({
            "added": ["new"],
            "removed": ["gone"],
            "modified": ["mod"],
            "unchanged": ["keep"],
            "details": {"mod": {
                "modifiedFields": ["env", "disabled"],
                "oldValues": {"env": {"A": "${SECRET}"}},
                "newValues": {"env": {"A": "${OTHER}"}, "disabled": true}
            }}
        })
    );
    assert!(!diff.details["mod"].only_disabled_changed());
}

#[test]
fn only_disabled_changed() {
    let diff = ConfigDiff::between(
        &one(r#"{"command": "x"}"#),
        &one(r#"{"command": "x", "disabled": true}"#),
    );
    assert!(diff.details["s"].only_disabled_changed());
}

#[test]
fn identical_configs_have_no_changes() {
    let c = config(r#"{"mcpServers": {"a": {"command": "x"}, "b": {"url": "https://h/"}}}"#);
    let diff = ConfigDiff::between(&c, &c);
    assert_eq!(diff.unchanged, ["a", "b"]);
    assert!(!diff.is_significant());
    let empty = ConfigDiff::between(&Config::default(), &c);
    assert_eq!(empty.added, ["a", "b"]);
}

#[test]
fn in_memory_disable_is_seen_by_the_diff() {
    let old = one(r#"{"command": "x"}"#);
    let mut new = old.clone();
    new.servers["s"].set_disabled(true);
    assert!(new.servers["s"].disabled);
    let diff = ConfigDiff::between(&old, &new);
    assert!(diff.details["s"].only_disabled_changed());
    assert_eq!(diff.details["s"].new_values["disabled"], json!(true));
}
