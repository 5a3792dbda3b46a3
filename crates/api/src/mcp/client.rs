//! Requests from upstream servers to the hub as their client (sampling, elicitation, roots):
//! re-issued, with hub ids, to the downstream session whose call caused them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use mcp_hub_protocol::methods as m;
use mcp_hub_protocol::{ErrorCode, ErrorObject, Message, RawValue, Request, RequestId};
use mcp_hub_registry::ClientRequestHandler;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::session::Session;
use super::stream::EventStream;
use super::{Inner, lock};

/// How long a client may take to answer (a human may be filling in an elicitation form).
const CLIENT_ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

pub(crate) struct Forwarder {
    inner: Weak<Inner>,
}

impl Forwarder {
    pub(crate) fn new(inner: &Arc<Inner>) -> Forwarder {
        Forwarder {
            inner: Arc::downgrade(inner),
        }
    }
}

fn unsupported(method: &str) -> ErrorObject {
    ErrorObject::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("Client does not support {method}"),
    )
}

/// Whether the session declared what this request needs (the capability, and for elicitation
/// the mode, for sampling with tools `sampling.tools`).
fn check_capability(session: &Session, request: &Request) -> Result<(), ErrorObject> {
    let params: Value = request
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or(Value::Null);
    match request.method.as_str() {
        m::SAMPLING_CREATE_MESSAGE => {
            let cap = session
                .capability("sampling")
                .ok_or_else(|| unsupported(&request.method))?;
            if params.get("tools").is_some() && cap.get("tools").is_none() {
                return Err(ErrorObject::new(
                    ErrorCode::INVALID_PARAMS,
                    "Client does not support tool use in sampling",
                ));
            }
        }
        m::ELICITATION_CREATE => {
            let cap = session
                .capability("elicitation")
                .ok_or_else(|| unsupported(&request.method))?;
            let mode = params.get("mode").and_then(Value::as_str).unwrap_or("form");
            let declared = cap.as_object().map(|o| o.is_empty()).unwrap_or(true);
            let ok = match mode {
                // `{}` means form only.
                "form" => declared || cap.get("form").is_some(),
                other => cap.get(other).is_some(),
            };
            if !ok {
                return Err(ErrorObject::new(
                    ErrorCode::INVALID_PARAMS,
                    format!("Client does not support {mode} mode elicitation"),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

#[async_trait::async_trait]
impl ClientRequestHandler for Forwarder {
    async fn handle(
        &self,
        server: &str,
        request: Request,
        caller: Option<u64>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let Some(inner) = self.inner.upgrade() else {
            return Err(unsupported(&request.method));
        };
        let target = caller.and_then(|c| lock(&inner.callers).get(&c).cloned());
        match request.method.as_str() {
            m::PING => return Ok(mcp_hub_protocol::empty_object()),
            m::ROOTS_LIST => {
                // Servers often ask right after connecting, when no client call is involved:
                // the hub itself exposes no roots.
                if target
                    .as_ref()
                    .is_none_or(|(s, _)| s.capability("roots").is_none())
                {
                    return mcp_hub_protocol::to_raw(&json!({"roots": []}))
                        .map_err(|e| ErrorObject::new(ErrorCode::INTERNAL_ERROR, e.to_string()));
                }
            }
            m::SAMPLING_CREATE_MESSAGE | m::ELICITATION_CREATE => {}
            other => {
                return Err(ErrorObject::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("Method not found: {other}"),
                ));
            }
        }
        let Some((session, stream)) = target else {
            tracing::debug!(target: "mcp_hub::api", server, method = %request.method, "server-to-client request without a downstream caller");
            return Err(unsupported(&request.method));
        };
        check_capability(&session, &request)?;
        inner.ask_client(&session, &stream, request).await
    }
}

/// Removes a forwarded request that is abandoned (the upstream cancelled it, it timed out, the
/// session ended) and tells the client so.
struct Pending {
    session: Arc<Session>,
    stream: Arc<EventStream>,
    id: RequestId,
    answered: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.session.lock().pending.remove(&self.id);
        if !self.session.cancel.is_cancelled() {
            let params = json!({"requestId": self.id.to_value(), "reason": "The server cancelled the request"});
            self.stream
                .push(&Message::notification(m::CANCELLED, Some(&params)));
        }
    }
}

impl Inner {
    async fn ask_client(
        &self,
        session: &Arc<Session>,
        origin: &Arc<EventStream>,
        request: Request,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let (tx, rx) = oneshot::channel();
        let id = session.register_pending(tx);
        if request.method == m::ELICITATION_CREATE
            && let Some(eid) = request
                .params
                .as_deref()
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .filter(|p| p.get("mode").and_then(Value::as_str) == Some("url"))
                .and_then(|p| {
                    p.get("elicitationId")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
        {
            let mut map = lock(&self.elicitations);
            // Bounded: completions that never come must not grow the map forever.
            if map.len() >= 1024 {
                map.clear();
            }
            map.insert(eid, session.id.clone());
        }
        // The originating POST stream if the client still reads it, else the GET stream.
        let stream = if origin.is_attached() || session.legacy {
            origin.clone()
        } else {
            session
                .lock()
                .get_stream
                .clone()
                .filter(|g| g.is_attached())
                .unwrap_or_else(|| origin.clone())
        };
        let out = Message::Request(Request {
            id: id.clone(),
            method: request.method,
            params: request.params,
        });
        let mut pending = Pending {
            session: session.clone(),
            stream: stream.clone(),
            id,
            answered: false,
        };
        if !stream.push(&out) {
            return Err(ErrorObject::new(
                ErrorCode::INTERNAL_ERROR,
                "The client's stream is closed",
            ));
        }
        let r = tokio::select! {
            r = rx => r,
            _ = tokio::time::sleep(CLIENT_ANSWER_TIMEOUT) => {
                return Err(ErrorObject::new(ErrorCode::REQUEST_TIMEOUT, "The client did not answer in time"));
            }
            _ = session.cancel.cancelled() => {
                return Err(ErrorObject::new(ErrorCode::INTERNAL_ERROR, "The client session ended"));
            }
        };
        pending.answered = true;
        r.unwrap_or_else(|_| {
            Err(ErrorObject::new(
                ErrorCode::INTERNAL_ERROR,
                "The client session ended",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use mcp_hub_protocol::ProtocolVersion;
    use tokio_util::sync::CancellationToken;

    use super::*;

    fn session(caps: Value) -> Arc<Session> {
        let s = Session::new(
            "s".into(),
            false,
            ProtocolVersion::LATEST,
            &CancellationToken::new(),
        );
        s.lock().client_caps = caps.as_object().cloned().unwrap();
        s
    }

    fn req(method: &str, params: Value) -> Request {
        Request {
            id: 1.into(),
            method: method.into(),
            params: mcp_hub_protocol::to_raw(&params).ok(),
        }
    }

    #[test]
    fn capabilities_gate_forwarding() {
        let s = session(json!({"sampling": {}, "elicitation": {}}));
        assert!(check_capability(&s, &req(m::SAMPLING_CREATE_MESSAGE, json!({}))).is_ok());
        assert!(
            check_capability(&s, &req(m::SAMPLING_CREATE_MESSAGE, json!({"tools": []}))).is_err()
        );
        assert!(check_capability(&s, &req(m::ELICITATION_CREATE, json!({"message": "x"}))).is_ok());
        assert!(check_capability(&s, &req(m::ELICITATION_CREATE, json!({"mode": "url"}))).is_err());
        let s = session(json!({"elicitation": {"url": {}}}));
        assert!(check_capability(&s, &req(m::ELICITATION_CREATE, json!({"mode": "url"}))).is_ok());
        assert!(check_capability(&s, &req(m::ELICITATION_CREATE, json!({}))).is_err());
        let e = check_capability(&s, &req(m::SAMPLING_CREATE_MESSAGE, json!({}))).unwrap_err();
        assert_eq!(e.code, -32601);
    }
}
