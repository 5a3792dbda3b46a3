//! The stateless revision 2026-07-28 ("modern"): what a request must carry (`_meta`, the
//! `MCP-Protocol-Version`/`Mcp-Method`/`Mcp-Name` headers), the errors for what it lacks, and
//! the members every result gains (`resultType`, caching hints, `serverInfo`).
//!
//! Pure functions over the envelope: the hub's `/mcp` and the fixture server both use them, so
//! the two cannot drift apart on a wire rule. Nothing here knows HTTP types; headers are read
//! through a closure and statuses are plain numbers.

use serde_json::{Map, Value, json};

use crate::object::{Member, RawObject};
use crate::{ErrorCode, ErrorObject, RawValue, Request};

/// Modern revisions spoken, newest first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

/// `_meta` keys of the modern revision.
pub mod meta {
    /// The request's protocol version (required).
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The client's capabilities (required).
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// The client's name and version (should).
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// The least severe log level the client wants for this request.
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    /// The server's name and version, on results.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// The listen request a notification on a `subscriptions/listen` stream belongs to.
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
}

/// Modern methods and notifications that the handshake era does not have.
pub mod methods {
    /// Opens a stream of list changes and resource updates.
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
    /// First message on a listen stream.
    pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
}

/// Error codes of the spec-reserved range -32020..-32099.
pub mod codes {
    use crate::ErrorCode;
    /// A standard header is missing or disagrees with the body.
    pub const HEADER_MISMATCH: ErrorCode = ErrorCode(-32020);
    /// The request needs a client capability the client did not declare.
    pub const MISSING_CLIENT_CAPABILITY: ErrorCode = ErrorCode(-32021);
    /// The requested version is not spoken here.
    pub const UNSUPPORTED_PROTOCOL_VERSION: ErrorCode = ErrorCode(-32022);
}

/// The id the hub gives an input request of a 2026-07-28 server's `InputRequiredResult` when
/// it asks its own client: the round, how many requests the round has, and the server's key.
/// A 2026-07-28 client of the hub gets them back under the server's own keys, all at once.
pub fn input_request_id(round: usize, count: usize, key: &str) -> String {
    format!("input-{round}-{count}-{key}")
}

/// What [`input_request_id`] put in an id: `(round, count, key)`.
pub fn parse_input_request_id(id: &str) -> Option<(usize, usize, &str)> {
    let mut parts = id.strip_prefix("input-")?.splitn(3, '-');
    let round = parts.next()?.parse().ok()?;
    let count = parts.next()?.parse().ok()?;
    let key = parts.next()?;
    (!key.is_empty()).then_some((round, count, key))
}

/// Handshake-era methods a modern request may not use (a 404 with -32601 on HTTP).
pub const REMOVED_METHODS: &[&str] = &[
    crate::methods::INITIALIZE,
    crate::methods::PING,
    crate::methods::LOGGING_SET_LEVEL,
    crate::methods::RESOURCES_SUBSCRIBE,
    crate::methods::RESOURCES_UNSUBSCRIBE,
];

#[cfg(test)]
#[test]
fn input_request_ids_round_trip() {
    let id = input_request_id(2, 3, "user-name");
    assert_eq!(parse_input_request_id(&id), Some((2, 3, "user-name")));
    assert_eq!(parse_input_request_id("input-1-x"), None);
    assert_eq!(parse_input_request_id("s-1"), None);
}

/// Whether `v` is a modern revision spoken here.
pub fn is_modern_version(v: &str) -> bool {
    MODERN_VERSIONS.contains(&v)
}

/// The protocol version a request's `_meta` names, if any: how a dual-era endpoint tells a
/// modern request from a handshake-era one. Reads only `params._meta`.
pub fn declared_version(params: Option<&RawValue>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct P {
        #[serde(rename = "_meta")]
        meta: Option<M>,
    }
    #[derive(serde::Deserialize)]
    struct M {
        #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
        version: Option<Value>,
    }
    let p: P = serde_json::from_str(params?.get()).ok()?;
    match p.meta?.version? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// What a modern request declared about itself in `_meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMeta {
    /// The protocol version.
    pub version: String,
    /// The client's capabilities.
    pub capabilities: Map<String, Value>,
    /// The client's name, when given.
    pub client_name: Option<String>,
    /// The requested log level, when given.
    pub log_level: Option<String>,
}

impl RequestMeta {
    /// Whether the client declared a top-level capability (`sampling`, `elicitation`, `roots`).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.get(name).is_some_and(Value::is_object)
    }
}

/// A request the modern rules refuse: the HTTP status and the JSON-RPC error to answer with.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// 400, or 404 for an unknown method.
    pub status: u16,
    /// The error (answered with the request's id).
    pub error: ErrorObject,
}

impl Rejection {
    fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            status,
            error: ErrorObject::new(code, message),
        }
    }
}

/// The `-32022` error for a version not spoken here.
pub fn unsupported_version(requested: &str, supported: &[&str]) -> ErrorObject {
    ErrorObject::with_data(
        codes::UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
        &json!({"supported": supported, "requested": requested}),
    )
}

/// The `-32021` error for a capability the client did not declare (`sampling`, …).
pub fn missing_capability(capability: &str) -> ErrorObject {
    ErrorObject::with_data(
        codes::MISSING_CLIENT_CAPABILITY,
        format!("Missing required client capability: {capability}"),
        &json!({"requiredCapabilities": {capability: {}}}),
    )
}

/// The 404 answer to a method not served in the modern era.
pub fn method_not_found(method: &str) -> Rejection {
    Rejection::new(
        404,
        ErrorCode::METHOD_NOT_FOUND,
        format!("Method not found: {method}"),
    )
}

/// Reads a request header by lower-case name (HTTP only).
pub type HeaderLookup<'a, 'h> = &'a dyn Fn(&str) -> Option<&'h str>;

/// Reads and checks a modern request's `_meta`: present, with a protocol version and client
/// capabilities (-32602 otherwise), and a version in `supported` (-32022 otherwise). With
/// `headers` (HTTP), the standard headers must be present and agree with the body (-32020);
/// this is checked before the version, so that a header naming a spoken version cannot hide a
/// body that names another. `supported` is what `-32022` lists (a dual-era server lists its
/// handshake versions too).
pub fn check_request<'h>(
    req: &Request,
    headers: Option<HeaderLookup<'_, 'h>>,
    supported: &[&str],
) -> Result<RequestMeta, Rejection> {
    check_params(req, &request_params(req)?, headers, supported)
}

/// A modern request's `params` as an object (none is an empty one): what [`check_params`]
/// checks and what the request then works with, parsed once.
pub fn request_params(req: &Request) -> Result<Map<String, Value>, Rejection> {
    match req.params.as_deref() {
        None => Ok(Map::new()),
        Some(p) => match serde_json::from_str(p.get()) {
            Ok(Value::Object(o)) => Ok(o),
            _ => Err(Rejection::new(
                400,
                ErrorCode::INVALID_PARAMS,
                "Invalid params: expected an object",
            )),
        },
    }
}

/// [`check_request`] of a request whose `params` were already parsed ([`request_params`]).
pub fn check_params<'h>(
    req: &Request,
    params: &Map<String, Value>,
    headers: Option<HeaderLookup<'_, 'h>>,
    supported: &[&str],
) -> Result<RequestMeta, Rejection> {
    let invalid = |what: &str| {
        Rejection::new(
            400,
            ErrorCode::INVALID_PARAMS,
            format!("Invalid params: _meta must carry {what}"),
        )
    };
    let Some(Value::Object(m)) = params.get("_meta") else {
        return Err(invalid(meta::PROTOCOL_VERSION));
    };
    let Some(Value::String(version)) = m.get(meta::PROTOCOL_VERSION) else {
        return Err(invalid(meta::PROTOCOL_VERSION));
    };
    let Some(Value::Object(capabilities)) = m.get(meta::CLIENT_CAPABILITIES) else {
        return Err(invalid(meta::CLIENT_CAPABILITIES));
    };
    if let Some(header) = headers {
        check_headers(req, params, version, header)?;
    }
    if !supported.contains(&version.as_str()) || !is_modern_version(version) {
        return Err(Rejection {
            status: 400,
            error: unsupported_version(version, supported),
        });
    }
    Ok(RequestMeta {
        version: version.clone(),
        capabilities: capabilities.clone(),
        client_name: m
            .get(meta::CLIENT_INFO)
            .and_then(|i| i.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        log_level: m
            .get(meta::LOG_LEVEL)
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

fn check_headers<'h>(
    req: &Request,
    params: &Map<String, Value>,
    version: &str,
    header: HeaderLookup<'_, 'h>,
) -> Result<(), Rejection> {
    let mismatch = |name: &str, want: &str, got: Option<String>| {
        let message = match got {
            None => format!("Header mismatch: the {name} header is required (expected {want:?})"),
            Some(g) => format!("Header mismatch: {name} is {g:?} but the body says {want:?}"),
        };
        Err(Rejection::new(400, codes::HEADER_MISMATCH, message))
    };
    let read = |name: &str| header(name).map(decode_header_value);
    match read("mcp-protocol-version") {
        Some(v) if v == version => {}
        got => return mismatch("MCP-Protocol-Version", version, got),
    }
    match read("mcp-method") {
        Some(m) if m == req.method => {}
        got => return mismatch("Mcp-Method", &req.method, got),
    }
    let name_key = match req.method.as_str() {
        crate::methods::TOOLS_CALL | crate::methods::PROMPTS_GET => "name",
        crate::methods::RESOURCES_READ => "uri",
        _ => return Ok(()),
    };
    if let Some(want) = params.get(name_key).and_then(Value::as_str) {
        match read("mcp-name") {
            Some(n) if n == want => {}
            got => return mismatch("Mcp-Name", want, got),
        }
    }
    Ok(())
}

/// A header value as sent: values that are not header-safe travel as `=?base64?<b64>?=`.
pub fn decode_header_value(v: &str) -> String {
    let v = v.trim();
    if let Some(b64) = v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
        && let Some(bytes) = base64_decode(b64)
        && let Ok(s) = String::from_utf8(bytes)
    {
        return s;
    }
    v.to_owned()
}

/// A value as a header carries it: printable ASCII without leading or trailing whitespace goes
/// as is, anything else as `=?base64?<b64>?=` (the inverse of [`decode_header_value`]).
pub fn encode_header_value(v: &str) -> String {
    let looks_encoded = v.starts_with("=?base64?") && v.ends_with("?=");
    let safe = v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !looks_encoded;
    if safe {
        return v.to_owned();
    }
    use base64::Engine as _;
    format!(
        "=?base64?{}?=",
        base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
    )
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let e = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    e.decode(s).ok()
}

/// What a modern result gains besides what it already has. Members the result already carries
/// are kept (an upstream's own `resultType` or caching hints win).
#[derive(Debug, Clone, Default)]
pub struct Decoration<'a> {
    /// `ttlMs` and `cacheScope`, for lists, `resources/read` and `server/discover`.
    pub cache: Option<(u64, &'a str)>,
    /// `_meta[serverInfo]`, as JSON.
    pub server_info: Option<&'a RawValue>,
}

/// Adds `resultType: "complete"` (when absent) and `decoration` to a result object, touching
/// only its top level (and `_meta`'s): member values stay the raw text they arrived as, so
/// decorating a large list costs one scan and one copy. A result that is not an object is
/// returned unchanged.
pub fn decorate_result(result: &RawValue, decoration: &Decoration<'_>) -> Box<RawValue> {
    let Some(top) = RawObject::parse(result) else {
        return result.to_owned();
    };
    let mut edits: Vec<(&str, Member<'_>)> = Vec::with_capacity(4);
    if !top.contains("resultType") {
        edits.push(("resultType", Member::Str("complete")));
    }
    if let Some((ttl, scope)) = decoration.cache {
        if !top.contains("ttlMs") {
            edits.push(("ttlMs", Member::U64(ttl)));
        }
        if !top.contains("cacheScope") {
            edits.push(("cacheScope", Member::Str(scope)));
        }
    }
    let meta_with_info;
    if let Some(info) = decoration.server_info {
        // A `_meta` that is not an object is replaced by one holding only the server's info.
        let meta = top.get("_meta").and_then(RawObject::parse);
        if !meta.as_ref().is_some_and(|m| m.contains(meta::SERVER_INFO)) {
            meta_with_info = match meta {
                Some(m) => m.with_raw(meta::SERVER_INFO, info),
                None => {
                    let empty = crate::empty_object();
                    RawObject::parse(&empty)
                        .map_or_else(crate::empty_object, |e| e.with_raw(meta::SERVER_INFO, info))
                }
            };
            edits.push(("_meta", Member::Raw(&meta_with_info)));
        }
    }
    if edits.is_empty() {
        return result.to_owned();
    }
    top.edited(&edits)
}

/// The `resultType` of a result: absent means `"complete"` (older servers).
pub fn result_type(result: &RawValue) -> String {
    #[derive(serde::Deserialize)]
    struct R {
        #[serde(rename = "resultType")]
        result_type: Option<String>,
    }
    serde_json::from_str::<R>(result.get())
        .ok()
        .and_then(|r| r.result_type)
        .unwrap_or_else(|| "complete".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, RequestId};

    fn req(method: &str, params: Value) -> Request {
        Request {
            id: RequestId::from(7),
            method: method.into(),
            params: Some(crate::to_raw(&params).unwrap()),
        }
    }

    fn good_meta() -> Value {
        json!({meta::PROTOCOL_VERSION: "2026-07-28", meta::CLIENT_CAPABILITIES: {}})
    }

    #[test]
    fn meta_is_required_and_read() {
        let r = req("tools/list", json!({}));
        let e = check_request(&r, None, MODERN_VERSIONS).unwrap_err();
        assert_eq!((e.status, e.error.code), (400, -32602));
        let r = req(
            "tools/list",
            json!({"_meta": {meta::PROTOCOL_VERSION: "2026-07-28"}}),
        );
        assert_eq!(
            check_request(&r, None, MODERN_VERSIONS)
                .unwrap_err()
                .error
                .code,
            -32602
        );
        let r = req(
            "tools/list",
            json!({"_meta": {meta::PROTOCOL_VERSION: "2026-07-28", meta::CLIENT_CAPABILITIES: {"sampling": {}}, meta::LOG_LEVEL: "info"}}),
        );
        let m = check_request(&r, None, MODERN_VERSIONS).unwrap();
        assert!(m.has_capability("sampling") && !m.has_capability("roots"));
        assert_eq!(m.log_level.as_deref(), Some("info"));
    }

    #[test]
    fn unsupported_version_lists_what_is_spoken() {
        let r = req(
            "server/discover",
            json!({"_meta": {meta::PROTOCOL_VERSION: "v9", meta::CLIENT_CAPABILITIES: {}}}),
        );
        let e = check_request(&r, None, &["2026-07-28", "2025-11-25"]).unwrap_err();
        assert_eq!((e.status, e.error.code), (400, -32022));
        assert_eq!(
            e.error.data.unwrap().get(),
            r#"{"supported":["2026-07-28","2025-11-25"],"requested":"v9"}"#
        );
        // A handshake version in `_meta` is not a modern request.
        let r = req(
            "tools/list",
            json!({"_meta": {meta::PROTOCOL_VERSION: "2025-11-25", meta::CLIENT_CAPABILITIES: {}}}),
        );
        let e = check_request(&r, None, &["2026-07-28", "2025-11-25"]).unwrap_err();
        assert_eq!(e.error.code, -32022);
    }

    #[test]
    fn headers_must_agree_with_the_body() {
        let r = req("tools/call", json!({"name": "echo", "_meta": good_meta()}));
        let all = |n: &str| match n {
            "mcp-protocol-version" => Some("2026-07-28"),
            "mcp-method" => Some("tools/call"),
            "mcp-name" => Some("=?base64?ZWNobw==?="),
            _ => None,
        };
        assert!(check_request(&r, Some(&all), MODERN_VERSIONS).is_ok());
        let wrong_name = |n: &str| {
            if n == "mcp-name" {
                Some("other")
            } else {
                all(n)
            }
        };
        let e = check_request(&r, Some(&wrong_name), MODERN_VERSIONS).unwrap_err();
        assert_eq!((e.status, e.error.code), (400, -32020));
        let no_method = |n: &str| if n == "mcp-method" { None } else { all(n) };
        assert_eq!(
            check_request(&r, Some(&no_method), MODERN_VERSIONS)
                .unwrap_err()
                .error
                .code,
            -32020
        );
        // Header and body disagree on the version: a mismatch, not an unsupported version.
        let r = req(
            "server/discover",
            json!({"_meta": {meta::PROTOCOL_VERSION: "v9", meta::CLIENT_CAPABILITIES: {}}}),
        );
        let h = |n: &str| match n {
            "mcp-protocol-version" => Some("2026-07-28"),
            "mcp-method" => Some("server/discover"),
            _ => None,
        };
        assert_eq!(
            check_request(&r, Some(&h), MODERN_VERSIONS)
                .unwrap_err()
                .error
                .code,
            -32020
        );
    }

    #[test]
    fn declared_version_reads_only_meta() {
        let r = req("tools/list", json!({"_meta": good_meta()}));
        assert_eq!(
            declared_version(r.params.as_deref()).as_deref(),
            Some("2026-07-28")
        );
        let r = req("initialize", json!({"protocolVersion": "2025-11-25"}));
        assert_eq!(declared_version(r.params.as_deref()), None);
        assert_eq!(declared_version(None), None);
    }

    #[test]
    fn decoration_keeps_members_and_order() {
        let result = RawValue::from_string(
            r#"{"tools":[{"name":"a","inputSchema":{"type":"object"}}],"_meta":{"x":1}}"#.into(),
        )
        .unwrap();
        let info = RawValue::from_string(r#"{"name":"hub","version":"1"}"#.into()).unwrap();
        let d = Decoration {
            cache: Some((0, "private")),
            server_info: Some(&info),
        };
        let out = decorate_result(&result, &d);
        assert_eq!(
            out.get(),
            r#"{"tools":[{"name":"a","inputSchema":{"type":"object"}}],"_meta":{"x":1,"io.modelcontextprotocol/serverInfo":{"name":"hub","version":"1"}},"resultType":"complete","ttlMs":0,"cacheScope":"private"}"#
        );
        assert_eq!(result_type(&out), "complete");
        let ir = RawValue::from_string(r#"{"resultType":"input_required"}"#.into()).unwrap();
        assert_eq!(decorate_result(&ir, &Decoration::default()).get(), ir.get());
        assert_eq!(result_type(&ir), "input_required");
        let _ = Message::response(RequestId::from(1), out);
    }

    #[test]
    fn decoration_keeps_what_the_result_already_has() {
        let info = RawValue::from_string(r#"{"name":"hub"}"#.into()).unwrap();
        let d = Decoration {
            cache: Some((5, "public")),
            server_info: Some(&info),
        };
        let deco = |s: &str| {
            decorate_result(&RawValue::from_string(s.into()).unwrap(), &d)
                .get()
                .to_owned()
        };
        // The upstream's own hints and server info win; nothing is added twice.
        let own = r#"{"ttlMs":9,"resultType":"complete","cacheScope":"private","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"up"}}}"#;
        assert_eq!(deco(own), own);
        // A `_meta` that is not an object gives way to one holding the server's info.
        assert_eq!(
            deco(r#"{"_meta":"odd","x":1}"#),
            r#"{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"hub"}},"x":1,"resultType":"complete","ttlMs":5,"cacheScope":"public"}"#
        );
        // A key given twice is decorated as a parser reads it: its last value, in its first place.
        assert_eq!(
            deco(r#"{"resultType":"input_required","a":1,"resultType":"complete"}"#),
            r#"{"resultType":"complete","a":1,"ttlMs":5,"cacheScope":"public","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"hub"}}}"#
        );
        // Not an object: unchanged.
        assert_eq!(deco("[1]"), "[1]");
    }

    #[test]
    fn base64_header_values() {
        assert_eq!(decode_header_value("=?base64?aMOpbGxv?="), "héllo");
        assert_eq!(decode_header_value("plain"), "plain");
        assert_eq!(decode_header_value("=?base64?***?="), "=?base64?***?=");
        for v in ["echo", "héllo", " padded ", "a\nb", "=?base64?x?="] {
            assert_eq!(decode_header_value(&encode_header_value(v)), v);
        }
        assert_eq!(encode_header_value("fx__echo"), "fx__echo");
    }
}
