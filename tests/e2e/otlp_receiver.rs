//! A minimal OTLP/HTTP receiver on loopback: decodes each `POST /v1/traces` body as an
//! `ExportTraceServiceRequest` (the opentelemetry-proto types) and keeps the spans.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// A received span with the service that sent it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) service: String,
    pub(crate) span: Span,
}

impl Received {
    pub(crate) fn attr(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(|v| match v {
                AnyValue::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            })
    }

    pub(crate) fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub(crate) fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    pub(crate) fn parent_span_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The receiver; its thread ends with the test process.
pub(crate) struct Receiver {
    pub(crate) port: u16,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve(conn, &sink));
            }
        });
        Receiver { port, spans }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until `f` finds what it looks for among the spans received so far.
    pub(crate) fn wait<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&[Received]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans.lock().expect("spans").clone();
            if let Some(t) = f(&spans) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not see what was expected; it has {spans:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Serves one keep-alive connection: each request's body is decoded and answered 200.
fn serve(conn: TcpStream, sink: &Mutex<Vec<Received>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut out = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    // Bounded: a connection serves at most this many requests.
    for _ in 0..10_000 {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len.min(16 << 20)];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if line.starts_with("POST /v1/traces")
            && let Ok(req) = ExportTraceServiceRequest::decode(body.as_slice())
        {
            let mut got = Vec::new();
            for rs in req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                    .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                    .map(|v| match v {
                        AnyValue::StringValue(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        got.push(Received {
                            service: service.clone(),
                            span,
                        });
                    }
                }
            }
            sink.lock().expect("spans").extend(got);
        }
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if out.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
}
