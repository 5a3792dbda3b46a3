use std::sync::Arc;
use std::time::Duration;

use mcp_hub_protocol::{ErrorCode, ErrorObject, RawValue, Request};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::*;
use crate::{Attribution, HttpSpec, TransportSpec};

struct Refuse;

#[async_trait::async_trait]
impl ServerRequestHandler for Refuse {
    async fn handle(
        &self,
        request: Request,
        _attribution: Attribution,
    ) -> Result<Box<RawValue>, ErrorObject> {
        Err(ErrorObject::new(
            ErrorCode::METHOD_NOT_FOUND,
            request.method,
        ))
    }
}

/// The workspace fixture over HTTP in one era, killed when dropped.
struct Fixture {
    _child: tokio::process::Child,
    url: url::Url,
}

async fn fixture(era: &str) -> Option<Fixture> {
    let Some(bin) = mcp_hub_fixture::built_binary() else {
        eprintln!("skipping: the fixture is not built (cargo build -p mcp-hub-fixture)");
        return None;
    };
    let mut child = tokio::process::Command::new(bin)
        .args(["--http", "0", "--era", era, "--name", "modern-fx"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the fixture");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the fixture announces its port")
        .unwrap()
        .unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect(&line);
    Some(Fixture {
        _child: child,
        url: format!("http://{addr}/mcp").parse().unwrap(),
    })
}

fn spec(url: &url::Url) -> HttpSpec {
    HttpSpec {
        name: "fx".into(),
        url: url.clone(),
        headers: Vec::new(),
        auth: None,
    }
}

fn options() -> SessionOptions {
    let mut o = SessionOptions::default();
    o.capabilities
        .insert("elicitation".into(), json!({"form": {}}));
    o
}

async fn connect(url: &url::Url) -> (ClientSession, NotificationStream) {
    ClientSession::connect(TransportSpec::Http(spec(url)), options(), Arc::new(Refuse))
        .await
        .expect("connects")
}

async fn call(session: &ClientSession, params: Value) -> Value {
    let raw = session
        .request(
            methods::TOOLS_CALL,
            Some(mcp_hub_protocol::to_raw(&params).unwrap()),
            RequestOptions::default(),
        )
        .await
        .expect("tools/call answers");
    serde_json::from_str(raw.get()).unwrap()
}

#[tokio::test]
async fn a_modern_only_server_is_used_statelessly() {
    let Some(fx) = fixture("modern").await else {
        return;
    };
    let (session, _n) = connect(&fx.url).await;
    assert!(session.is_modern());
    assert_eq!(session.protocol_version(), MODERN_PROTOCOL_VERSION);
    assert_eq!(session.initialize_result().server_info.name, "modern-fx");
    assert!(
        session
            .initialize_result()
            .capabilities
            .contains_key("tools")
    );

    let raw = session
        .request(methods::TOOLS_LIST, None, RequestOptions::default())
        .await
        .unwrap();
    let tools: Value = serde_json::from_str(raw.get()).unwrap();
    assert!(
        tools["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo")
    );

    // The fixture checks `_meta` and every standard header: a call that passes them all.
    let v = call(
        &session,
        json!({"name": "echo", "arguments": {"message": "héllo stateless"}}),
    )
    .await;
    assert_eq!(v["content"][0]["text"], "héllo stateless", "{v}");

    // An input request is the call's answer in this era.
    let v = call(
        &session,
        json!({"name": "test_streaming_elicitation", "arguments": {}}),
    )
    .await;
    assert_eq!(v["resultType"], "input_required", "{v}");
    assert_eq!(
        v["inputRequests"]["confirm"]["method"],
        methods::ELICITATION_CREATE
    );

    // Refusals are the request's own error, not a broken connection.
    let err = session
        .request(
            "logging/setLevel",
            Some(mcp_hub_protocol::to_raw(&json!({"level": "debug"})).unwrap()),
            RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RequestError::Rpc(e) if e.code == ErrorCode::METHOD_NOT_FOUND.0),
        "{err:?}"
    );
    assert!(session.is_open());
    session.close().await;
}

#[tokio::test]
async fn a_dual_era_server_keeps_the_handshake() {
    let Some(fx) = fixture("dual").await else {
        return;
    };
    let (session, _n) = connect(&fx.url).await;
    assert!(!session.is_modern());
    assert_eq!(
        session.protocol_version(),
        mcp_hub_protocol::LATEST_PROTOCOL_VERSION
    );
    assert!(handshake_servers().contains(&http_key(&spec(&fx.url))));
    session.close().await;
}

#[tokio::test]
async fn a_handshake_server_is_remembered_and_a_changed_one_is_probed_again() {
    let Some(legacy) = fixture("legacy").await else {
        return;
    };
    let (session, _n) = connect(&legacy.url).await;
    assert!(!session.is_modern());
    assert!(handshake_servers().contains(&http_key(&spec(&legacy.url))));
    session.close().await;

    // The same endpoint, now modern-only (remembered as handshake first): the refused
    // `initialize` sends the hub back to the probe.
    let Some(modern) = fixture("modern").await else {
        return;
    };
    remember_handshake(&http_key(&spec(&modern.url)));
    let (session, _n) = connect(&modern.url).await;
    assert!(session.is_modern());
    assert!(!handshake_servers().contains(&http_key(&spec(&modern.url))));
    session.close().await;
}

#[test]
fn meta_joins_what_the_caller_sent() {
    let meta = ModernMeta::new(&options());
    let params = RawValue::from_string(
        r#"{"name":"t","_meta":{"progressToken":7,"io.modelcontextprotocol/protocolVersion":"1900-01-01"},"arguments":{"a":[1, 2]}}"#
            .into(),
    )
    .unwrap();
    let out = meta.apply(Some(params)).unwrap();
    let v: Value = serde_json::from_str(out.get()).unwrap();
    assert_eq!(v["_meta"]["progressToken"], 7);
    assert_eq!(v["_meta"][meta::PROTOCOL_VERSION], MODERN_PROTOCOL_VERSION);
    assert_eq!(v["_meta"][meta::CLIENT_INFO]["name"], "mcp-hub");
    assert_eq!(
        v["_meta"][meta::CLIENT_CAPABILITIES]["elicitation"],
        json!({"form": {}})
    );
    assert!(
        out.get().contains(r#""arguments":{"a":[1, 2]}"#),
        "untouched: {}",
        out.get()
    );

    let v: Value = serde_json::from_str(meta.apply(None).unwrap().get()).unwrap();
    assert_eq!(v["_meta"][meta::PROTOCOL_VERSION], MODERN_PROTOCOL_VERSION);

    // For a caller that declared no elicitation, the server is not told the hub can elicit.
    let declared = crate::ClientFeatures {
        sampling: true,
        elicitation: false,
        roots: false,
    };
    let v: Value =
        serde_json::from_str(meta.apply_for(None, Some(declared)).unwrap().get()).unwrap();
    assert!(
        v["_meta"][meta::CLIENT_CAPABILITIES]
            .get("elicitation")
            .is_none(),
        "{v}"
    );
}

/// Answers elicitations, recording whom each was attributed to.
struct Confirm(std::sync::Mutex<Vec<(String, Attribution)>>);

#[async_trait::async_trait]
impl ServerRequestHandler for Confirm {
    async fn handle(
        &self,
        request: Request,
        attribution: Attribution,
    ) -> Result<Box<RawValue>, ErrorObject> {
        self.0
            .lock()
            .unwrap()
            .push((request.method.clone(), attribution));
        let r = crate::Attribution::deliverable(&attribution).expect("exact");
        Ok(mcp_hub_protocol::to_raw(
            &json!({"action": "accept", "content": {"ok": true, "caller": r.call}}),
        )
        .unwrap())
    }
}

#[tokio::test]
async fn input_requests_go_to_the_requester_and_the_call_is_retried() {
    let Some(fx) = fixture("modern").await else {
        return;
    };
    let handler = Arc::new(Confirm(Default::default()));
    let (session, _n) = ClientSession::connect(
        TransportSpec::Http(spec(&fx.url)),
        options(),
        handler.clone(),
    )
    .await
    .unwrap();
    let requester = crate::Requester {
        session: 4,
        call: 17,
        features: crate::ClientFeatures::ALL,
    };
    let params = json!({"name": "test_streaming_elicitation", "arguments": {}});
    let raw = session
        .request(
            methods::TOOLS_CALL,
            Some(mcp_hub_protocol::to_raw(&params).unwrap()),
            RequestOptions {
                requester: Some(requester),
                ..RequestOptions::default()
            },
        )
        .await
        .unwrap();
    let v: Value = serde_json::from_str(raw.get()).unwrap();
    assert_eq!(v["resultType"], "complete", "{v}");
    let text = v["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Confirmed:")
            && text.contains("\"caller\":17")
            && text.contains("(state confirm-"),
        "{text}"
    );
    let seen = handler.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(
            methods::ELICITATION_CREATE.to_owned(),
            Attribution::Exact(requester)
        )]
    );
    session.close().await;
}

/// A scripted 2026-07-28-only server: `server/discover` lists only the modern version and
/// declares list changes; `listen` answers `subscriptions/listen`.
async fn scripted(
    listen: fn(&Value) -> crate::http_client::testing::Reply,
) -> crate::http_client::testing::FakeServer {
    use crate::http_client::testing::{FakeServer, Reply};
    FakeServer::start("/mcp", move |seen| {
        let body = seen.json();
        let id = body["id"].clone();
        match body["method"].as_str().unwrap_or_default() {
            "server/discover" => Reply::json(
                200,
                &json!({"jsonrpc": "2.0", "id": id, "result": {
                    "supportedVersions": ["2026-07-28"], "resultType": "complete",
                    "capabilities": {"tools": {"listChanged": true}, "resources": {}},
                    "ttlMs": 0, "cacheScope": "private"}})
                .to_string(),
            ),
            "subscriptions/listen" => listen(&body),
            _ => Reply::json(
                200,
                &json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete"}})
                    .to_string(),
            ),
        }
    })
    .await
}

/// A server that does not listen: a subscription through the session is refused at once
/// (not after waiting for an acknowledgement), and is not kept.
#[tokio::test]
async fn a_server_that_refuses_to_listen_refuses_subscriptions() {
    use crate::http_client::testing::Reply;
    let server = scripted(|body| {
        Reply::json(
            404,
            &json!({"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32601, "message": "Method not found"}})
                .to_string(),
        )
    })
    .await;
    let (session, _n) = connect(&server.url).await;
    assert!(session.is_modern());
    let params = RawValue::from_string(r#"{"uri":"test://watched"}"#.into()).unwrap();
    let started = std::time::Instant::now();
    let e = session
        .request(
            mcp_hub_protocol::methods::RESOURCES_SUBSCRIBE,
            Some(params),
            crate::RequestOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, crate::RequestError::Rpc(o) if o.code == -32601),
        "{e:?}"
    );
    assert!(
        started.elapsed() < listen::REFILTER_WAIT,
        "answered without waiting"
    );
    session.close().await;
}

/// A listen stream sent as newline-delimited JSON under `application/json` (as the
/// conformance suite's reference server does): its list changes reach the session's
/// notification stream, and its acknowledgement does not.
#[tokio::test]
async fn a_listen_stream_in_newline_delimited_json_is_heard() {
    use crate::http_client::testing::Reply;
    let server = scripted(|body| {
        let id = body["id"].to_string();
        let tag = format!(r#"{{"io.modelcontextprotocol/subscriptionId":{id}}}"#);
        Reply::json(
            200,
            &format!(
                "{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/subscriptions/acknowledged\",\"params\":{{\"_meta\":{tag},\"notifications\":{{\"toolsListChanged\":true}}}}}}\n\
                 {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\",\"params\":{{\"_meta\":{tag}}}}}\n"
            ),
        )
    })
    .await;
    let (session, mut notes) = connect(&server.url).await;
    let n = tokio::time::timeout(Duration::from_secs(10), notes.recv())
        .await
        .expect("a notification")
        .expect("open");
    assert_eq!(n.method, "notifications/tools/list_changed");
    let seen = server.seen();
    let listen = seen
        .iter()
        .find(|s| s.json()["method"] == "subscriptions/listen")
        .expect("the hub listened");
    assert_eq!(
        listen.json()["params"]["notifications"],
        json!({"toolsListChanged": true})
    );
    assert_eq!(listen.header("mcp-method"), Some("subscriptions/listen"));
    session.close().await;
}
