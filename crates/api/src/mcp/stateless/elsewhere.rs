//! Cluster mode and MRTR (`docs/SCALE-OUT.md`): a parked call lives in the memory of the
//! replica that parked it, sealed under that process's key, so its retry must be served there.
//! A replica stamps its id, in clear, beside the seal of every `requestState` it issues
//! (`<replica id>:<seal>`). A retry that reaches another replica is forwarded to the parking
//! one through the same code path and with the same secret as a session's request; one whose
//! replica is gone is answered as an expired state is, and the client restarts the call.
//!
//! The stamp is outside the seal: altering it only sends the retry to a replica whose key does
//! not open the seal. A single hub (no cluster) stamps nothing and checks nothing here.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::BodyExt as _;
use mcp_hub_protocol::{ErrorCode, ErrorObject, Request};
use serde_json::Value;

use super::error_response;
use crate::body::{Body, BodyError, RequestBody};
use crate::mcp::Inner;
use crate::mcp::forward::forward;

/// Between the replica id and the seal (neither hex nor base64url uses it).
const SEPARATOR: char = ':';

/// `sealed`, stamped with the replica that parked its call.
pub(crate) fn stamp(replica: &str, sealed: String) -> String {
    format!("{replica}{SEPARATOR}{sealed}")
}

/// The replica a `requestState` names (none for a single hub's state), and its seal.
pub(crate) fn split(state: &str) -> (Option<&str>, &str) {
    match state.split_once(SEPARATOR) {
        Some((replica, seal)) => (Some(replica), seal),
        None => (None, state),
    }
}

/// The HTTP request a stateless retry came in, kept to forward it unchanged.
pub(crate) struct Incoming<'a> {
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a Bytes,
    /// Another replica forwarded it here: it is served here, whatever it names.
    pub(crate) forwarded: bool,
}

impl Inner {
    /// A retry (`requestState`) whose call another live replica parked is forwarded there, and
    /// `Some` is its answer (or a 503 when membership cannot be read). `None`: served here: no
    /// cluster, not a retry, parked here, or its replica is gone (then the local resumption
    /// answers "expired").
    pub(crate) async fn route_parked(
        &self,
        req: &Request,
        http: Incoming<'_>,
    ) -> Option<http::Response<Body>> {
        let cluster = self.cluster.get()?;
        if http.forwarded {
            return None;
        }
        // Cheap test first: most stateless requests are not retries.
        let raw = req.params.as_ref()?.get();
        if !raw.contains("\"requestState\"") {
            return None;
        }
        let params: serde_json::Map<String, Value> = serde_json::from_str(raw).ok()?;
        let state = params.get("requestState")?.as_str()?;
        let owner = split(state).0?;
        if owner == cluster.replica_id() {
            return None;
        }
        let addr = match cluster.replica_addr(owner).await {
            Ok(Some(addr)) => addr,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(target: "mcp_hub::cluster", "replica membership unavailable: {e}");
                return Some(error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &req.id,
                    ErrorObject::new(
                        ErrorCode::SERVER_ERROR,
                        "Service Unavailable: the cluster's membership cannot be read",
                    ),
                ));
            }
        };
        let mut out = http::Request::builder()
            .method(Method::POST)
            .uri(http.uri.clone())
            .body(
                http_body_util::Full::new(http.body.clone())
                    .map_err(|never: std::convert::Infallible| -> BodyError { match never {} })
                    .boxed_unsync(),
            )
            .ok()?;
        *out.headers_mut() = http.headers.clone();
        let out: http::Request<RequestBody> = out;
        // Given back (`Ok`) when it refused the connection: it died within its TTL, and the
        // call with it.
        forward(cluster.as_ref(), &self.pool, &addr, out, &self.shutdown)
            .await
            .err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_and_split() {
        let s = stamp("0a1b", "cGF5bG9hZA.dGFn".into());
        assert_eq!(split(&s), (Some("0a1b"), "cGF5bG9hZA.dGFn"));
        assert_eq!(split("cGF5bG9hZA.dGFn"), (None, "cGF5bG9hZA.dGFn"));
    }
}
