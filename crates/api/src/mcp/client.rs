//! Requests from upstream servers to the hub as their client (sampling, elicitation, roots):
//! re-issued, with hub ids, to the downstream session whose call caused them, and answered by
//! the hub itself (with an error, or the configured roots) when that session cannot be named.
//! A request never reaches a client that did not cause it: see the transport's `Attribution`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use mcp_hub_protocol::methods as m;
use mcp_hub_protocol::{ErrorCode, ErrorObject, Message, RawValue, Request, RequestId};
use mcp_hub_registry::{Attribution, ClientRequestHandler};
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
        attribution: Attribution,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let Some(inner) = self.inner.upgrade() else {
            return Err(unsupported(&request.method));
        };
        match request.method.as_str() {
            m::PING => return Ok(mcp_hub_protocol::empty_object()),
            m::ROOTS_LIST | m::SAMPLING_CREATE_MESSAGE | m::ELICITATION_CREATE => {}
            other => {
                return Err(ErrorObject::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    format!("Method not found: {other}"),
                ));
            }
        }
        // Caused by no client's call: it can only be the one client there is, if there is one.
        let nobodys = matches!(
            attribution,
            Attribution::Unattributed | Attribution::Internal
        );
        if let Some(r) = attribution.deliverable()
            && let Some(answer) = inner
                .stateless_client_request(server, r.call, &request)
                .await
        {
            return answer;
        }
        if nobodys
            && inner.session_count() == 0
            && let Some(call) = inner.only_stateless_call_to(server)
            && let Some(answer) = inner.stateless_client_request(server, call, &request).await
        {
            return answer;
        }
        let target = match attribution.deliverable() {
            Some(r) => inner.target_of(r.call, r.session),
            // …and only if that client's profile shows the server.
            None if nobodys => inner
                .only_session()
                .filter(|(s, _)| inner.sees_server(s, server)),
            None => None,
        };
        let Some((session, stream)) = target else {
            let why = match attribution.refusal() {
                Some(why) if !nobodys || inner.session_count() != 1 => why,
                _ => "the client has no open stream to receive it",
            };
            return inner.answer_itself(server, &request, why);
        };
        if let Err(e) = check_capability(&session, &request) {
            if request.method == m::ROOTS_LIST {
                return inner.answer_itself(
                    server,
                    &request,
                    "the client that caused it did not declare roots",
                );
            }
            return Err(e);
        }
        inner.ask_client(&session, &stream, request).await
    }
}

impl Inner {
    /// The session and stream a request for downstream call `call` of session `session` goes
    /// to: the call's own stream while it runs, else the session's GET (or legacy) stream.
    fn target_of(&self, call: u64, session: u64) -> Option<(Arc<Session>, Arc<EventStream>)> {
        if let Some((s, stream, _)) = lock(&self.callers).get(&call).cloned() {
            return Some((s, stream));
        }
        let s = lock(&self.sessions)
            .values()
            .find(|s| s.key == session)
            .cloned()?;
        let stream = s.lock().get_stream.clone()?;
        Some((s, stream))
    }

    /// The one initialized session, when there is exactly one.
    fn only_session(&self) -> Option<(Arc<Session>, Arc<EventStream>)> {
        let mut initialized = lock(&self.sessions)
            .values()
            .filter(|s| s.lock().initialized)
            .cloned()
            .collect::<Vec<_>>();
        let s = match initialized.len() {
            1 => initialized.pop()?,
            _ => return None,
        };
        let stream = s.lock().get_stream.clone()?;
        Some((s, stream))
    }

    fn session_count(&self) -> usize {
        lock(&self.sessions)
            .values()
            .filter(|s| s.lock().initialized)
            .count()
    }

    /// Answers a server's request without asking any client, because no client can be named
    /// (or the one that can does not support it): the configured roots for `roots/list`, an
    /// error otherwise. Never another client's answer.
    fn answer_itself(
        &self,
        server: &str,
        request: &Request,
        why: &str,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let method = request.method.as_str();
        self.registry.note_unattributed_request(server);
        if method == m::ROOTS_LIST
            && let Some(roots) = self.registry.configured_roots(server)
        {
            tracing::warn!(target: "mcp_hub::api", server, method, "answering with the configured roots: {why}");
            let roots: Vec<Value> = roots.into_iter().map(|uri| json!({ "uri": uri })).collect();
            return mcp_hub_protocol::to_raw(&json!({ "roots": roots }))
                .map_err(|e| ErrorObject::new(ErrorCode::INTERNAL_ERROR, e.to_string()));
        }
        tracing::warn!(target: "mcp_hub::api", server, method, "refusing a server-to-client request: {why}");
        let hint = if method == m::ROOTS_LIST {
            "give the server `roots` in the hub's config, or `isolation: \"session\"`"
        } else {
            "set `isolation: \"session\"` for this server to give each client its own connection"
        };
        Err(ErrorObject::new(
            ErrorCode::INTERNAL_ERROR,
            format!("mcp-hub cannot forward {method}: {why}; {hint}"),
        ))
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
