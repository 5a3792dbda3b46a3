//! Reading a route's JSON body: required strings, tool arguments, `request_options`.

use std::time::Duration;

use mcp_hub_registry::RequestOptions;
use serde_json::{Map, Value};

use super::reply::Failure;

/// Upper bound of `request_options.timeout`, so a typo cannot park a request for years.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A required string field. Missing, `null` and `""` give the Node hub's message; another
/// type is reported as such.
pub(super) fn required_str<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    missing: &str,
) -> Result<&'a str, Failure> {
    match body.get(field) {
        None | Some(Value::Null) => Err(Failure::validation(missing, field)),
        Some(Value::String(s)) if s.is_empty() => Err(Failure::validation(missing, field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Failure::validation(
            format!("Invalid {field}: expected a string"),
            field,
        )),
    }
}

/// `arguments` of a tool call or prompt: an object; missing or `null` is `{}`, and so is `[]`
/// (an empty Lua table, as mcphub.nvim may encode it).
pub(super) fn arguments(body: &Map<String, Value>) -> Result<Value, Failure> {
    match body.get("arguments") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(Value::Array(a)) if a.is_empty() => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(other) => Err(Failure::validation(
            "Invalid arguments: expected an object",
            "arguments",
        )
        .with("args", other.clone())),
    }
}

fn millis(v: &Value, field: &str) -> Result<Option<Duration>, Failure> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(_) if n.as_u64().is_some_and(|ms| ms > 0) => Ok(Some(
                Duration::from_millis(n.as_u64().unwrap_or_default()).min(MAX_TIMEOUT),
            )),
            Some(ms) if ms.is_finite() && ms > 0.0 => {
                // Clamped before converting: `from_secs_f64` panics on huge values.
                let secs = (ms / 1000.0).min(MAX_TIMEOUT.as_secs_f64());
                Ok(Some(Duration::from_secs_f64(secs)))
            }
            _ => Err(Failure::validation(
                format!("Invalid {field}: expected a positive number of milliseconds"),
                field,
            )),
        },
        _ => Err(Failure::validation(
            format!("Invalid {field}: expected a positive number of milliseconds"),
            field,
        )),
    }
}

/// `request_options` as the Node hub passes them to the TypeScript SDK: `timeout` and
/// `maxTotalTimeout` in milliseconds, `resetTimeoutOnProgress`.
pub(super) fn request_options(body: &Map<String, Value>) -> Result<RequestOptions, Failure> {
    let mut opts = RequestOptions::default();
    let m = match body.get("request_options") {
        None | Some(Value::Null) => return Ok(opts),
        Some(Value::Array(a)) if a.is_empty() => return Ok(opts),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(Failure::validation(
                "Invalid request_options: expected an object",
                "request_options",
            ));
        }
    };
    if let Some(t) = m.get("timeout") {
        opts.timeout = millis(t, "request_options.timeout")?;
    }
    if let Some(t) = m.get("maxTotalTimeout") {
        opts.max_total_timeout = millis(t, "request_options.maxTotalTimeout")?;
    }
    if let Some(Value::Bool(b)) = m.get("resetTimeoutOnProgress") {
        opts.reset_timeout_on_progress = *b;
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn required_strings() {
        let b = obj(json!({"a": "x", "n": null, "e": "", "num": 5}));
        assert_eq!(required_str(&b, "a", "m").unwrap(), "x");
        for f in ["n", "e", "missing"] {
            let e = required_str(&b, f, "Missing it").unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.message, "Missing it");
            assert_eq!(e.data["field"], f);
        }
        let e = required_str(&b, "num", "m").unwrap_err();
        assert_eq!(e.message, "Invalid num: expected a string");
    }

    #[test]
    fn arguments_accept_objects_and_empty_lua_tables() {
        assert_eq!(arguments(&obj(json!({}))).unwrap(), json!({}));
        assert_eq!(
            arguments(&obj(json!({"arguments": null}))).unwrap(),
            json!({})
        );
        assert_eq!(
            arguments(&obj(json!({"arguments": []}))).unwrap(),
            json!({})
        );
        assert_eq!(
            arguments(&obj(json!({"arguments": {"a": 1}}))).unwrap(),
            json!({"a": 1})
        );
        for bad in [json!("str"), json!([1]), json!(3)] {
            let e = arguments(&obj(json!({ "arguments": bad }))).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.data["args"], bad);
        }
    }

    #[test]
    fn request_options_in_milliseconds() {
        let o = request_options(&obj(json!({"request_options": {"timeout": 1500, "resetTimeoutOnProgress": true, "maxTotalTimeout": 60000}}))).unwrap();
        assert_eq!(o.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(o.max_total_timeout, Some(Duration::from_secs(60)));
        assert!(o.reset_timeout_on_progress);
        let o = request_options(&obj(json!({"request_options": []}))).unwrap();
        assert_eq!(o.timeout, None);
        let o = request_options(&obj(json!({"request_options": {"timeout": 1e30}}))).unwrap();
        assert_eq!(o.timeout, Some(MAX_TIMEOUT));
        for bad in [
            json!({"timeout": -1}),
            json!({"timeout": 0}),
            json!({"timeout": "10"}),
            json!("x"),
        ] {
            let e = request_options(&obj(json!({ "request_options": bad }))).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
