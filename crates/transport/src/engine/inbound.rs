//! Inbound dispatch (the reader task): responses to their pending requests, progress by token,
//! notifications and server-to-client requests to the client that caused them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mcp_hub_protocol::types::CancelledParams;
use mcp_hub_protocol::{
    ErrorCode, ErrorObject, Message, Notification, RawValue, Request, RequestId, methods,
};
use tokio::sync::mpsc;

use super::attribution::Need;
use super::{Engine, Outcome, is_session_level};
use crate::wire::Inbound;
use crate::{Attribution, RequestError, ServerRequestHandler};

impl crate::wire::Resolver for Engine {
    fn resolve_response(&self, msg: Message) {
        match msg {
            Message::Response(r) => self.resolve(&r.id, Ok(r.result)),
            Message::Error(e) => match e.id {
                Some(id) => self.resolve(&id, Err(RequestError::Rpc(e.error))),
                None => self.resolve_anonymous(e.error),
            },
            // The wires hand over nothing else.
            Message::Notification(_) | Message::Request(_) => {}
        }
    }
}

impl Engine {
    pub(super) fn dispatch(
        self: &Arc<Self>,
        inbound: Inbound,
        notifications: &mpsc::Sender<Notification>,
        handler: &Arc<dyn ServerRequestHandler>,
    ) {
        let Inbound { msg, origin } = inbound;
        match msg {
            Message::Notification(n) => self.on_notification(n, origin.as_ref(), notifications),
            Message::Request(r) => self.on_request(r, origin.as_ref(), handler),
            answer @ (Message::Response(_) | Message::Error(_)) => {
                crate::wire::Resolver::resolve_response(&**self, answer);
            }
        }
    }

    fn resolve(&self, id: &RequestId, outcome: Outcome) {
        let Some(n) = self.our_id(id) else {
            tracing::debug!(server = %self.name, %id, "response with an id the hub never sent");
            return;
        };
        let slot = {
            let mut st = self.lock();
            let slot = st.pending.remove(&n);
            match slot.as_ref() {
                Some(s) => {
                    if let Some(p) = &s.progress {
                        st.progress.remove(&p.token);
                    }
                }
                // An answer to a request given up on: the server is done with it.
                None => st.bury(n),
            }
            slot
        };
        match slot {
            Some(slot) => {
                let _ = slot.tx.send(outcome);
            }
            None => {
                tracing::debug!(server = %self.name, %id, "response for a request no longer pending")
            }
        }
    }

    /// An error response without id (the server could not parse what it got). It can only be
    /// attributed when a single request is pending.
    fn resolve_anonymous(&self, error: ErrorObject) {
        let only = {
            let st = self.lock();
            (st.pending.len() == 1).then(|| st.pending.keys().next().copied())
        };
        match only.flatten() {
            Some(id) => self.resolve(&RequestId::Number(id), Err(RequestError::Rpc(error))),
            None => tracing::warn!(
                server = %self.name,
                code = error.code,
                message = %error.message,
                "upstream sent an error response without id"
            ),
        }
    }

    /// Our ids are numbers; a string that spells one of them is accepted too, as some servers
    /// stringify ids.
    pub(super) fn our_id(&self, id: &RequestId) -> Option<i64> {
        match id {
            RequestId::Number(n) => Some(*n),
            RequestId::String(s) => {
                let n = s.parse::<i64>().ok()?;
                tracing::debug!(server = %self.name, id = %s, "accepting a string-typed response id");
                Some(n)
            }
        }
    }

    fn on_notification(
        &self,
        n: Notification,
        origin: Option<&RequestId>,
        notifications: &mpsc::Sender<Notification>,
    ) {
        match n.method.as_str() {
            methods::PROGRESS => return self.on_progress(n),
            methods::CANCELLED => return self.on_cancelled(&n),
            mcp_hub_protocol::modern::methods::SUBSCRIPTIONS_ACKNOWLEDGED => {
                return self.on_acknowledged(n);
            }
            m if is_session_level(m) => return self.publish(n, notifications),
            _ => {}
        }
        let (attribution, related) = {
            let mut st = self.lock();
            let (a, id) = self.attribute(&mut st, origin, Need::Related);
            let related = id
                .and_then(|id| st.pending.get(&id))
                .and_then(|s| s.related.clone());
            (a, related)
        };
        if let Some(tx) = related {
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(n) {
                self.lock()
                    .dropped_related
                    .note(&self.name, "request notifications");
            }
            return;
        }
        if n.method != methods::LOGGING_MESSAGE {
            // Other notifications carry their own routing (an elicitation id) or are dropped
            // by the session's consumer.
            return self.publish(n, notifications);
        }
        let why = attribution
            .refusal()
            .unwrap_or("its call takes no notifications");
        // Caused by no client's call: the consumer may still give it to a client that cannot be
        // anybody else's (the only one there is).
        let publish = matches!(
            attribution,
            Attribution::Unattributed | Attribution::Internal
        );
        self.log_upstream(&n, why, publish);
        if publish {
            self.publish(n, notifications);
        }
    }

    /// A 2026-07-28 listen stream's acknowledgement names its listen request in
    /// `_meta.subscriptionId`: it goes to that request (the hub's own listener) on every wire,
    /// never to a client.
    fn on_acknowledged(&self, n: Notification) {
        #[derive(serde::Deserialize)]
        struct Params {
            #[serde(rename = "_meta")]
            meta: serde_json::Map<String, serde_json::Value>,
        }
        let id = n
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Params>(p.get()).ok())
            .and_then(|p| {
                RequestId::from_value(
                    p.meta
                        .get(mcp_hub_protocol::modern::meta::SUBSCRIPTION_ID)?,
                )
            })
            .and_then(|id| self.our_id(&id));
        let related =
            id.and_then(|id| self.lock().pending.get(&id).and_then(|s| s.related.clone()));
        match related {
            Some(tx) => {
                let _ = tx.try_send(n);
            }
            None => {
                tracing::debug!(server = %self.name, "a listen acknowledgement for no listen request")
            }
        }
    }

    fn publish(&self, n: Notification, notifications: &mpsc::Sender<Notification>) {
        if let Err(mpsc::error::TrySendError::Full(_)) = notifications.try_send(n) {
            self.lock()
                .dropped_session
                .note(&self.name, "session notifications");
        }
    }

    fn on_progress(&self, n: Notification) {
        let Some(raw) = n.params.as_deref() else {
            return;
        };
        let Ok(mut params) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(raw.get())
        else {
            tracing::debug!(server = %self.name, "malformed progress notification dropped");
            return;
        };
        let Some(token) = params
            .get("progressToken")
            .and_then(|t| serde_json::from_str::<String>(t.get()).ok())
        else {
            tracing::debug!(server = %self.name, "progress for a token the hub never sent");
            return;
        };
        let target = {
            let st = self.lock();
            st.progress
                .get(token.as_str())
                .and_then(|id| st.pending.get(id))
                .and_then(|s| {
                    let p = s.progress.as_ref()?;
                    Some((p.heard.clone(), s.related.clone(), p.original.clone()))
                })
        };
        let Some((heard, related, original)) = target else {
            tracing::debug!(server = %self.name, %token, "progress for an unknown or finished request dropped");
            return;
        };
        heard.notify_one();
        let Some(tx) = related else {
            return;
        };
        params.insert("progressToken".to_owned(), original);
        let Ok(params) = mcp_hub_protocol::to_raw(&params) else {
            return;
        };
        let n = Notification {
            method: n.method,
            params: Some(params),
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(n) {
            self.lock()
                .dropped_related
                .note(&self.name, "progress notifications");
        }
    }

    fn on_cancelled(&self, n: &Notification) {
        let Ok(p) = n.params_as::<CancelledParams>() else {
            return;
        };
        let task = self.lock().server_requests.remove(&p.request_id);
        match task {
            Some((_, task)) => {
                tracing::debug!(server = %self.name, id = %p.request_id, "upstream cancelled its request");
                task.abort();
            }
            None => tracing::debug!(
                server = %self.name,
                id = %p.request_id,
                "cancellation for no request in progress"
            ),
        }
    }

    fn on_request(
        self: &Arc<Self>,
        req: Request,
        origin: Option<&RequestId>,
        handler: &Arc<dyn ServerRequestHandler>,
    ) {
        if req.method == methods::PING {
            self.queue_reply(Message::response(req.id, mcp_hub_protocol::empty_object()));
            return;
        }
        let Ok(permit) = self.server_request_slots.clone().try_acquire_owned() else {
            tracing::warn!(server = %self.name, method = %req.method, "too many server requests in progress; refusing one");
            self.queue_reply(Message::error(
                Some(req.id),
                ErrorObject::new(
                    ErrorCode::INTERNAL_ERROR,
                    "the client is busy; too many requests in progress",
                ),
            ));
            return;
        };
        let mut st = self.lock();
        if st.closed {
            return;
        }
        let (attribution, _) = self.attribute(&mut st, origin, Need::Answer(&req.method));
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let id = req.id.clone();
        let engine = self.clone();
        let handler = handler.clone();
        let task = tokio::spawn(async move {
            let id = req.id.clone();
            let outcome = handler.handle(req, attribution).await;
            {
                let mut st = engine.lock();
                if st
                    .server_requests
                    .get(&id)
                    .is_some_and(|(g, _)| *g == generation)
                {
                    st.server_requests.remove(&id);
                }
            }
            let reply = match outcome {
                Ok(result) => Message::response(id, result),
                Err(error) => Message::error(Some(id), error),
            };
            if let Err(e) = engine.wire.send(reply).await {
                tracing::debug!(server = %engine.name, error = %e, "could not answer a server request");
            }
            drop(permit);
        });
        if let Some((_, old)) = st
            .server_requests
            .insert(id.clone(), (generation, task.abort_handle()))
        {
            tracing::warn!(server = %self.name, %id, "upstream reused the id of a request still in progress");
            old.abort();
        }
    }
}
