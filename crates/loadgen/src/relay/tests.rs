use super::*;
use crate::http::{Conn, collect, parse_url};
use serde_json::json;

/// A stdio server that answers `initialize`, then holds requests in pairs and answers each
/// pair in reverse order, echoing the params: answers come back in another order than
/// their requests went out.
const REVERSING_SERVER: &str = r#"
import json, sys
held = []
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    if m["method"] == "initialize":
        print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": {"protocolVersion": "2025-11-25"}}), flush=True)
        continue
    held.append(m)
    if len(held) == 2:
        for r in reversed(held):
            print(json.dumps({"jsonrpc": "2.0", "id": r["id"], "result": r["params"]}), flush=True)
        held = []
"#;

#[test]
fn an_id_is_swapped_where_it_stands_and_nothing_else_moves() {
    let text = br#"{"jsonrpc":"2.0","id":"a\"b","method":"x","params":{"id":7}}"#;
    let head: Head<'_> = serde_json::from_slice(text).unwrap();
    let out = swap_id(text, head.id.unwrap(), b"42");
    assert_eq!(
        out,
        br#"{"jsonrpc":"2.0","id":42,"method":"x","params":{"id":7}}"#
    );
}

/// A Streamable HTTP server on an ephemeral port (printed first): `initialize` gets a session,
/// every other request must carry it and its params come back as the result, as JSON or, when
/// the params ask for it, as an SSE stream with a request of the server's own (same id) before the
/// answer. The first
/// request of a pair is held until the second has been answered.
const HTTP_SERVER: &str = r#"
import json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
second_done = threading.Event()
count = [0]
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def reply(self, code, body=b"", ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        m = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if m.get("method") == "initialize":
            r = {"jsonrpc": "2.0", "id": m["id"], "result": {"protocolVersion": "2025-11-25"}}
            return self.reply(200, json.dumps(r).encode(), extra=[("Mcp-Session-Id", "s1")])
        if self.headers.get("Mcp-Session-Id") != "s1" or self.headers.get("Mcp-Protocol-Version") != "2025-11-25":
            return self.reply(400)
        if "id" not in m:
            return self.reply(202)
        with lock:
            count[0] += 1
            first = count[0] % 2 == 1
        if first:
            second_done.wait(5)
        r = json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": m["params"]})
        if m["params"].get("sse"):
            note = json.dumps({"jsonrpc": "2.0", "id": m["id"], "method": "ping"})
            body = ("event: message\ndata: " + note + "\n\nevent: message\ndata: " + r + "\n\n").encode()
            self.reply(200, body, "text/event-stream")
        else:
            self.reply(200, r.encode())
        if not first:
            second_done.set()
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// Two clients, each on its own connection, both send `tools/call` with id 1 at once through
/// a relay in front of `upstream`; returns each one's (id, params echoed) as they saw them.
async fn same_id_twice(
    upstream: UpstreamSpec,
    params: [&'static str; 2],
) -> [(serde_json::Value, serde_json::Value); 2] {
    let upstream = Upstream::start(upstream).await.unwrap();
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let server = tokio::spawn(upstream.run(listener));
    let call = |params: &'static str| {
        let url = url.clone();
        async move {
            let (target, path) = parse_url(&url).await.unwrap();
            let mut conn = Conn::new(target);
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
            let resp = conn
                .send(
                    Method::POST,
                    &path,
                    &[(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    Bytes::from(body),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let v: serde_json::Value =
                serde_json::from_slice(&collect(resp.into_body()).await.unwrap()).unwrap();
            (v["id"].clone(), v["result"].clone())
        }
    };
    let (a, b) = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        tokio::join!(call(params[0]), call(params[1]))
    })
    .await
    .expect("each POST is answered");
    server.abort();
    [a, b]
}

#[tokio::test]
async fn two_clients_with_the_same_id_each_get_their_own_answer() {
    let command = ["python3", "-c", REVERSING_SERVER]
        .map(String::from)
        .to_vec();
    let [a, b] = same_id_twice(
        UpstreamSpec::Command(command),
        [r#"{"text":"first"}"#, r#"{"text":"second"}"#],
    )
    .await;
    assert_eq!(a, (json!(1), json!({"text": "first"})));
    assert_eq!(b, (json!(1), json!({"text": "second"})));
}

#[tokio::test]
async fn over_an_http_upstream_too_answered_as_json_or_as_a_stream() {
    let mut server = tokio::process::Command::new("python3")
        .args(["-c", HTTP_SERVER])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut port = String::new();
    tokio::io::AsyncBufReadExt::read_line(
        &mut tokio::io::BufReader::new(server.stdout.take().unwrap()),
        &mut port,
    )
    .await
    .unwrap();
    let url = format!("http://127.0.0.1:{}/mcp", port.trim());
    let [a, b] = same_id_twice(
        UpstreamSpec::Url(url),
        [r#"{"text":"first","sse":true}"#, r#"{"text":"second"}"#],
    )
    .await;
    assert_eq!(a, (json!(1), json!({"text": "first", "sse": true})));
    assert_eq!(b, (json!(1), json!({"text": "second"})));
    let _ = server.kill().await;
}
