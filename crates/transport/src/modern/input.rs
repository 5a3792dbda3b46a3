//! Multi-round-trip requests (MRTR) toward a 2026-07-28 upstream: when a result is an
//! `InputRequiredResult`, each embedded request (`sampling/createMessage`,
//! `elicitation/create`, `roots/list`) goes to the caller through the session's
//! [`ServerRequestHandler`] as an ordinary server-to-client request attributed exactly to the
//! request's [`RequestOptions::requester`], and the request is retried with `inputResponses` and
//! the server's own `requestState`, for a bounded number of rounds.
//!
//! A request made for no client (the hub's own) gets the `InputRequiredResult` back unchanged.

use std::sync::Arc;

use futures::future::join_all;
use indexmap::IndexMap;
use mcp_hub_protocol::{ErrorCode, ErrorObject, RawValue, Request, RequestId, methods};
use serde_json::{Map, Value};

use super::ModernMeta;
use crate::engine::Engine;
use crate::{Attribution, RequestError, RequestOptions, ServerRequestHandler};

/// Input rounds one request may take before the hub gives up on the server.
pub(crate) const MAX_INPUT_ROUNDS: usize = 8;

/// What a modern session needs beyond its engine.
pub(crate) struct ModernClient {
    pub(crate) meta: ModernMeta,
    pub(crate) handler: Arc<dyn ServerRequestHandler>,
    /// The session's listener (`subscriptions/listen`), when the server has anything to
    /// announce; `resources/subscribe` and `unsubscribe` change what it listens for.
    pub(crate) listen: Option<Arc<super::listen::Listen>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct InputRequired {
    result_type: Option<String>,
    #[serde(default)]
    input_requests: IndexMap<String, Embedded>,
    request_state: Option<Value>,
}

#[derive(serde::Deserialize)]
struct Embedded {
    method: String,
    params: Option<Box<RawValue>>,
}

/// Sends `method` and answers the server's input requests through the caller until it
/// completes (or the rounds run out).
pub(crate) async fn request(
    engine: &Engine,
    client: &ModernClient,
    method: &str,
    params: Option<Box<RawValue>>,
    options: RequestOptions,
) -> Result<Box<RawValue>, RequestError> {
    if method == methods::RESOURCES_SUBSCRIBE || method == methods::RESOURCES_UNSUBSCRIBE {
        return subscribe(client, method, params.as_deref()).await;
    }
    let mut params = params;
    let mut round = 0;
    loop {
        let sent = client
            .meta
            .apply_for(params.clone(), options.client_features);
        let result = engine.request(method, sent, options.clone(), true).await?;
        let Some(requester) = options.requester else {
            return Ok(result);
        };
        if !result.get().contains("input_required") {
            return Ok(result);
        }
        let Ok(asked) = serde_json::from_str::<InputRequired>(result.get()) else {
            return Ok(result);
        };
        if asked.result_type.as_deref() != Some("input_required") {
            return Ok(result);
        }
        if round == MAX_INPUT_ROUNDS {
            return Err(RequestError::Rpc(ErrorObject::new(
                ErrorCode::INTERNAL_ERROR,
                format!("the server still asked for input after {MAX_INPUT_ROUNDS} rounds"),
            )));
        }
        // The caller answers all of a round's requests at once, as a modern client would.
        let count = asked.input_requests.len();
        let answers = join_all(asked.input_requests.into_iter().map(|(key, ask)| {
            let handler = client.handler.clone();
            async move {
                let req = Request {
                    id: RequestId::from(mcp_hub_protocol::modern::input_request_id(
                        round, count, &key,
                    )),
                    method: ask.method,
                    params: ask.params,
                };
                (
                    key,
                    handler.handle(req, Attribution::Exact(requester)).await,
                )
            }
        }))
        .await;
        let mut responses = Map::new();
        for (key, answer) in answers {
            let answer = answer.map_err(RequestError::Rpc)?;
            let value: Value = serde_json::from_str(answer.get()).map_err(|e| {
                RequestError::Rpc(ErrorObject::new(
                    ErrorCode::INTERNAL_ERROR,
                    format!("unreadable answer to input request {key:?}: {e}"),
                ))
            })?;
            responses.insert(key, value);
        }
        params = Some(retry_params(
            params.as_deref(),
            responses,
            asked.request_state,
        )?);
        round += 1;
    }
}

/// The era has no `resources/subscribe`: the URI joins (or leaves) the listen filter, and the
/// answer is the handshake era's empty result.
async fn subscribe(
    client: &ModernClient,
    method: &str,
    params: Option<&RawValue>,
) -> Result<Box<RawValue>, RequestError> {
    #[derive(serde::Deserialize)]
    struct Params {
        uri: String,
    }
    let uri = params
        .and_then(|p| serde_json::from_str::<Params>(p.get()).ok())
        .ok_or_else(|| {
            RequestError::Rpc(ErrorObject::new(
                ErrorCode::INVALID_PARAMS,
                format!("Invalid params: {method} needs a string `uri`"),
            ))
        })?
        .uri;
    let Some(listen) = &client.listen else {
        return Err(RequestError::Rpc(ErrorObject::new(
            ErrorCode::METHOD_NOT_FOUND,
            "Method not found: the server announces no resource updates",
        )));
    };
    if !listen
        .subscribe(&uri, method == methods::RESOURCES_SUBSCRIBE)
        .await
    {
        return Err(RequestError::Rpc(ErrorObject::new(
            ErrorCode::METHOD_NOT_FOUND,
            "Method not found: the server refuses subscriptions/listen",
        )));
    }
    Ok(mcp_hub_protocol::empty_object())
}

/// The original params with `inputResponses` and the server's `requestState` (replacing those of
/// an earlier round).
fn retry_params(
    params: Option<&RawValue>,
    responses: Map<String, Value>,
    state: Option<Value>,
) -> Result<Box<RawValue>, RequestError> {
    let bad = |e: serde_json::Error| {
        RequestError::Rpc(ErrorObject::new(
            ErrorCode::INVALID_PARAMS,
            format!("Invalid params: {e}"),
        ))
    };
    let mut top: IndexMap<String, Box<RawValue>> = match params {
        Some(p) => serde_json::from_str(p.get()).map_err(bad)?,
        None => IndexMap::new(),
    };
    top.insert(
        "inputResponses".into(),
        mcp_hub_protocol::to_raw(&Value::Object(responses)).map_err(bad)?,
    );
    match state {
        Some(s) => {
            top.insert(
                "requestState".into(),
                mcp_hub_protocol::to_raw(&s).map_err(bad)?,
            );
        }
        None => {
            top.shift_remove("requestState");
        }
    }
    serde_json::value::to_raw_value(&top).map_err(bad)
}
