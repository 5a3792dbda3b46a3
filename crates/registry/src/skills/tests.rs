use super::*;

const BODY: &str = "---\nname: pdf-processing\ndescription: Extract PDFs\nmetadata:\n  version: \"2.1.0\"\n---\n\nBody.\n";

fn digest_of(text: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(text.as_bytes())))
}

fn entry(body: &str) -> Value {
    json!({
        "uri": "skill://pdf-processing/SKILL.md",
        "frontmatter": {"name": "pdf-processing", "description": "Extract PDFs", "metadata": {"version": "2.1.0"}},
        "resources": [
            {"uri": "skill://pdf-processing/SKILL.md", "digest": digest_of(body), "size": body.len()},
            {"uri": "skill://pdf-processing/FORMS.md", "digest": digest_of("forms"), "size": 5}
        ]
    })
}

fn expected_for(entry: &Value, uri: &str) -> Expected {
    let mut index = SkillIndex::default();
    let server: Arc<str> = Arc::from("s");
    index.remember(&server, entry, &|u: &str| u.to_owned());
    index.files[&(server, uri.to_owned())].clone()
}

fn read(uri: &str, text: &str) -> Value {
    json!({"contents": [{"uri": uri, "mimeType": "text/markdown", "text": text}]})
}

#[test]
fn matching_content_passes() {
    let uri = "skill://pdf-processing/SKILL.md";
    let e = expected_for(&entry(BODY), uri);
    assert_eq!(verify(&e, uri, &read(uri, BODY)), Ok(()));
    let forms = "skill://pdf-processing/FORMS.md";
    let e = expected_for(&entry(BODY), forms);
    assert_eq!(verify(&e, forms, &read(forms, "forms")), Ok(()));
    // The same bytes as a base64 blob.
    let blob = json!({"contents": [{"uri": forms, "blob": "Zm9ybXM="}]});
    assert_eq!(verify(&e, forms, &blob), Ok(()));
}

#[test]
fn each_kind_of_tampering_is_caught() {
    let uri = "skill://pdf-processing/SKILL.md";
    let e = expected_for(&entry(BODY), uri);
    // Same length, different bytes: only the digest can tell.
    let swapped = BODY.replace("Body.", "Evil.");
    let why = verify(&e, uri, &read(uri, &swapped)).unwrap_err();
    assert!(why.contains("digest mismatch"), "{why}");
    let longer = format!("{BODY}more");
    let why = verify(&e, uri, &read(uri, &longer)).unwrap_err();
    assert!(why.contains("size mismatch"), "{why}");
    // Digest and size describe the served file, but its frontmatter is not the entry's.
    let lying = BODY.replace("Extract PDFs", "Steal keys!!");
    let e = expected_for(
        &{
            let mut en = entry(&lying);
            en["frontmatter"]["description"] = json!("Extract PDFs");
            en
        },
        uri,
    );
    let why = verify(&e, uri, &read(uri, &lying)).unwrap_err();
    assert!(
        why.contains("frontmatter mismatch") && why.contains("description"),
        "{why}"
    );
}

#[test]
fn dynamic_skills_still_get_their_frontmatter_checked() {
    let uri = "skill://pdf-processing/SKILL.md";
    let mut en = entry(BODY);
    en["resources"] = json!("dynamic");
    let e = expected_for(&en, uri);
    assert_eq!((e.digest.as_deref(), e.size), (None, None));
    assert_eq!(verify(&e, uri, &read(uri, BODY)), Ok(()));
    let lying = BODY.replace("Extract PDFs", "Something else");
    assert!(verify(&e, uri, &read(uri, &lying)).is_err());
}

#[test]
fn invalid_entries_are_not_remembered() {
    let mut index = SkillIndex::default();
    let s: Arc<str> = Arc::from("s");
    for bad in [
        json!({"uri": "skill://x/SKILL.md", "frontmatter": {"name": "x"}, "resources": []}),
        json!({"uri": "skill://x/SKILL.md", "frontmatter": {"name": "x", "description": "d"}}),
        json!({"uri": "skill://x/SKILL.md", "frontmatter": {"name": "x", "description": "d"}, "resources": "static"}),
        json!({"uri": "skill://x/SKILL.md", "frontmatter": {"name": "x", "description": "d"}, "resources": [{"uri": "skill://x/SKILL.md", "size": 1}]}),
        json!({"frontmatter": {"name": "x", "description": "d"}, "resources": "dynamic"}),
    ] {
        index.remember(&s, &bad, &|u: &str| u.to_owned());
        assert!(index.files.is_empty(), "{bad}");
    }
}

#[test]
fn frontmatter_is_parsed_as_yaml_not_as_lines() {
    let fm =
        frontmatter("---\nname: a\ndescription: >\n  folded\n  text\nlist: [1, two]\n---\nbody")
            .unwrap();
    assert_eq!(
        Value::Object(fm),
        json!({"name": "a", "description": "folded text\n", "list": [1, "two"]})
    );
    assert!(frontmatter("no frontmatter").is_err());
    assert!(frontmatter("---\nname: a\n").is_err(), "unclosed");
    assert!(
        frontmatter("---\n- a list\n---\n").is_err(),
        "not a mapping"
    );
    assert!(
        frontmatter("---\nname: [unclosed\n---\n").is_err(),
        "bad YAML"
    );
}

#[test]
fn a_read_result_without_the_file_fails_closed() {
    let uri = "skill://pdf-processing/SKILL.md";
    let e = expected_for(&entry(BODY), uri);
    assert!(verify(&e, uri, &json!({})).is_err());
    let two = json!({"contents": [{"uri": "a", "text": BODY}, {"uri": "b", "text": BODY}]});
    assert!(verify(&e, uri, &two).is_err());
    let neither = json!({"contents": [{"uri": uri}]});
    assert!(verify(&e, uri, &neither).is_err());
}
