//! The stateless 2026-07-28 revision toward upstreams: which era a server speaks (the
//! `server/discover` probe, remembered per server) and sessions that carry the modern `_meta`
//! (protocol version, client info, client capabilities) on every request.
//!
//! A server that also speaks a handshake version is used in the handshake era: only that era
//! has server-to-client requests on the caller's own stream, which the hub's routing of
//! sampling, elicitation and roots to the client that caused them relies on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use indexmap::IndexMap;
use mcp_hub_protocol::modern::{codes, meta};
use mcp_hub_protocol::types::{Implementation, InitializeResult};
use mcp_hub_protocol::{MODERN_PROTOCOL_VERSION, RawValue, SUPPORTED_PROTOCOL_VERSIONS, methods};
use serde_json::{Map, Value};

use crate::engine::Engine;
use crate::wire::WireParts;
use crate::{
    ClientSession, HttpSpec, NotificationStream, RequestError, RequestOptions,
    ServerRequestHandler, SessionOptions, TransportError,
};

pub(crate) mod http;
pub(crate) mod input;
pub(crate) mod jsonseq;
pub(crate) mod listen;
pub(crate) mod params;

/// Servers found to speak the handshake era, by endpoint. Only that era is remembered: a modern
/// session needs `server/discover` anyway (it is where capabilities come from), so the probe
/// costs it nothing, while a handshake server is spared a failing probe on every reconnection.
/// A remembered server that later refuses `initialize` with a 2026-07-28 error is forgotten and
/// probed again.
const MAX_REMEMBERED: usize = 1024;

fn handshake_servers() -> std::sync::MutexGuard<'static, HashSet<String>> {
    static KNOWN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    KNOWN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn remember_handshake(key: &str) {
    let mut known = handshake_servers();
    if known.len() >= MAX_REMEMBERED {
        known.clear();
    }
    known.insert(key.to_owned());
}

/// Forgets what was learnt about `key`: the next connection probes again.
pub(crate) fn forget(key: &str) {
    handshake_servers().remove(key);
}

/// The era key of an HTTP endpoint.
pub(crate) fn http_key(spec: &HttpSpec) -> String {
    spec.url.as_str().to_owned()
}

/// The `_meta` members every modern request carries.
#[derive(Debug, Clone)]
pub(crate) struct ModernMeta {
    members: Vec<(&'static str, Value)>,
}

impl ModernMeta {
    pub(crate) fn new(options: &SessionOptions) -> ModernMeta {
        let info = serde_json::to_value(&options.client_info).unwrap_or(Value::Null);
        ModernMeta {
            members: vec![
                (meta::PROTOCOL_VERSION, Value::from(MODERN_PROTOCOL_VERSION)),
                (meta::CLIENT_INFO, info),
                (
                    meta::CLIENT_CAPABILITIES,
                    Value::Object(options.capabilities.clone()),
                ),
            ],
        }
    }

    /// `params` with the modern members in its `_meta` (created when absent). The caller's
    /// other `_meta` members (a progress token, a downstream client's own keys) are kept; the
    /// three the hub speaks for are its own. Only the top level is parsed: the rest stays the
    /// raw text it arrived as.
    pub(crate) fn apply(&self, params: Option<Box<RawValue>>) -> Option<Box<RawValue>> {
        self.apply_for(params, None)
    }

    /// Like [`apply`](Self::apply), with the client capabilities narrowed to what the caller
    /// declared (see [`crate::RequestOptions::client_features`]).
    pub(crate) fn apply_for(
        &self,
        params: Option<Box<RawValue>>,
        declared: Option<crate::ClientFeatures>,
    ) -> Option<Box<RawValue>> {
        let mut top: IndexMap<String, Box<RawValue>> = match params.as_deref() {
            None => IndexMap::new(),
            Some(p) => match serde_json::from_str(p.get()) {
                Ok(t) => t,
                // Not an object: the server will refuse it; do not hide what was sent.
                Err(_) => return params,
            },
        };
        let mut m: Map<String, Value> = top
            .get("_meta")
            .and_then(|v| serde_json::from_str(v.get()).ok())
            .unwrap_or_default();
        for (k, v) in &self.members {
            let mut v = v.clone();
            if *k == meta::CLIENT_CAPABILITIES
                && let (Some(d), Value::Object(caps)) = (declared, &mut v)
            {
                if !d.sampling {
                    caps.remove("sampling");
                }
                if !d.elicitation {
                    caps.remove("elicitation");
                }
            }
            m.insert((*k).to_owned(), v);
        }
        top.insert("_meta".into(), mcp_hub_protocol::to_raw(&m).ok()?);
        serde_json::value::to_raw_value(&top).ok().or(params)
    }
}

/// What `server/discover` answered, as far as the hub needs it.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DiscoverResult {
    #[serde(default)]
    supported_versions: Vec<String>,
    #[serde(default)]
    capabilities: Map<String, Value>,
    instructions: Option<String>,
    #[serde(rename = "_meta", default)]
    meta: Map<String, Value>,
}

/// The outcome of the probe.
enum Probe {
    Handshake,
    Modern(Box<InitializeResult>),
}

/// Opens a 2026-07-28 session to `spec` if the server speaks only that era. `Ok(None)` means
/// "use the handshake era" (a handshake or dual-era server, or one that could not be probed:
/// the handshake attempt then reports why, exactly as before).
pub(crate) async fn try_http(
    spec: &HttpSpec,
    options: &SessionOptions,
    handler: &Arc<dyn ServerRequestHandler>,
) -> Result<Option<(ClientSession, NotificationStream)>, TransportError> {
    let key = http_key(spec);
    if handshake_servers().contains(&key) {
        return Ok(None);
    }
    let Ok(parts) = http::open(spec, options) else {
        return Ok(None);
    };
    match adopt(parts, options, handler.clone(), &spec.name).await? {
        Some(session) => Ok(Some(session)),
        None => {
            remember_handshake(&key);
            Ok(None)
        }
    }
}

/// Sends `server/discover` over `parts` and, if the server is modern-only, returns the session
/// on that same wire; otherwise closes it.
pub(crate) async fn adopt(
    parts: WireParts,
    options: &SessionOptions,
    handler: Arc<dyn ServerRequestHandler>,
    name: &str,
) -> Result<Option<(ClientSession, NotificationStream)>, TransportError> {
    let (engine, notifications) = Engine::start(
        parts,
        handler.clone(),
        name,
        options.request_timeout,
        options.abandoned_grace,
    );
    match discover(&engine, options).await {
        Ok(Some(session)) => Ok(Some((session.into_session(engine, handler), notifications))),
        Ok(None) => {
            engine.close().await;
            Ok(None)
        }
        Err(e) => {
            engine.close().await;
            Err(e)
        }
    }
}

/// A modern session's beginnings: what `server/discover` said, and the `_meta` to send.
pub(crate) struct Discovered {
    init: InitializeResult,
    meta: ModernMeta,
}

impl Discovered {
    pub(crate) fn into_session(
        self,
        engine: Arc<Engine>,
        handler: Arc<dyn ServerRequestHandler>,
    ) -> ClientSession {
        tracing::debug!(upstream = %self.init.server_info.name,
            "upstream speaks only 2026-07-28: stateless session");
        let listen = listen::Listen::new(&self.init.capabilities);
        if let Some(l) = &listen {
            tokio::spawn(listen::run(engine.clone(), l.clone(), self.meta.clone()));
        }
        let client = input::ModernClient {
            meta: self.meta,
            handler,
            listen,
        };
        ClientSession::new_modern(engine, self.init, client)
    }
}

/// Probes an open engine: `Some` when the server speaks only 2026-07-28.
pub(crate) async fn discover(
    engine: &Engine,
    options: &SessionOptions,
) -> Result<Option<Discovered>, TransportError> {
    let meta = ModernMeta::new(options);
    Ok(match probe(engine, &meta, options).await? {
        Probe::Modern(init) => Some(Discovered { init: *init, meta }),
        Probe::Handshake => None,
    })
}

async fn probe(
    engine: &Engine,
    meta: &ModernMeta,
    options: &SessionOptions,
) -> Result<Probe, TransportError> {
    let request = RequestOptions {
        timeout: Some(options.initialize_timeout),
        ..RequestOptions::default()
    };
    let mut answer = engine
        .request(
            methods::SERVER_DISCOVER,
            meta.apply(None),
            request.clone(),
            false,
        )
        .await;
    // A refusal of the version we sent that lists it anyway: try once more, as the spec asks of
    // a client whose first choice is rejected (the version is the only one we speak).
    if let Err(RequestError::Rpc(e)) = &answer
        && e.code == codes::UNSUPPORTED_PROTOCOL_VERSION.0
        && e.data
            .as_deref()
            .is_some_and(|d| d.get().contains(MODERN_PROTOCOL_VERSION))
    {
        answer = engine
            .request(methods::SERVER_DISCOVER, meta.apply(None), request, false)
            .await;
    }
    let raw = match answer {
        Ok(raw) => raw,
        Err(RequestError::Rpc(e)) if e.code == codes::UNSUPPORTED_PROTOCOL_VERSION.0 => {
            // It knows the era's errors but not our version: use what it lists, if we can.
            let supported: Vec<String> = e
                .data
                .as_deref()
                .and_then(|d| serde_json::from_str::<Value>(d.get()).ok())
                .and_then(|d| serde_json::from_value(d["supported"].clone()).ok())
                .unwrap_or_default();
            return if speaks_handshake(&supported) {
                Ok(Probe::Handshake)
            } else {
                Err(TransportError::UnsupportedVersion(supported.join(", ")))
            };
        }
        Err(RequestError::Rpc(e))
            if e.code == codes::HEADER_MISMATCH.0
                || e.code == codes::MISSING_CLIENT_CAPABILITY.0 =>
        {
            return Err(TransportError::Initialize(format!(
                "server/discover refused ({}): {}",
                e.code, e.message
            )));
        }
        // Unknown method, bad params, an HTTP refusal without a modern error, silence: the
        // handshake era. The fallback never hangs on one specific error code.
        Err(e) => {
            tracing::debug!(error = %e, "server/discover failed: trying initialize");
            return Ok(Probe::Handshake);
        }
    };
    let Ok(found) = serde_json::from_str::<DiscoverResult>(raw.get()) else {
        return Ok(Probe::Handshake);
    };
    // A result without `supportedVersions` is not a discover result: some handshake servers
    // (the conformance suite's client scenarios among them) answer every method they do not
    // know with `{}`. Only a server that lists its versions is of the new era.
    if found.supported_versions.is_empty() || speaks_handshake(&found.supported_versions) {
        return Ok(Probe::Handshake);
    }
    if !found
        .supported_versions
        .iter()
        .any(|v| v == MODERN_PROTOCOL_VERSION)
    {
        return Err(TransportError::UnsupportedVersion(
            found.supported_versions.join(", "),
        ));
    }
    let server_info: Implementation = found
        .meta
        .get(meta::SERVER_INFO)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    Ok(Probe::Modern(Box::new(InitializeResult {
        protocol_version: MODERN_PROTOCOL_VERSION.to_owned(),
        capabilities: found.capabilities,
        server_info,
        instructions: found.instructions,
        extra: Map::new(),
    })))
}

fn speaks_handshake(versions: &[String]) -> bool {
    versions
        .iter()
        .any(|v| SUPPORTED_PROTOCOL_VERSIONS.contains(&v.as_str()))
}

#[cfg(test)]
mod tests;
