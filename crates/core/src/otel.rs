//! OTLP export of the hub's spans (HTTP/protobuf), when an endpoint is configured: the
//! OpenTelemetry SDK's batch processor and OTLP exporter, sending with the hub's own HTTP
//! client (rustls/ring; no second client stack). The registry records spans through the
//! OpenTelemetry API and knows nothing of this.
//!
//! The batch processor runs on a thread of its own and drops spans when its queue is full, so
//! a collector that is slow or down never slows a call; an export waits at most
//! [`EXPORT_TIMEOUT`].

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, SdkTracerProvider};

use crate::CoreError;

/// Longest an export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The standard variables that configure an endpoint.
const ENV_ENDPOINTS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Whether the environment configures an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, non-empty).
#[must_use]
pub fn endpoint_in_env() -> bool {
    ENV_ENDPOINTS
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// The traces URL of a base endpoint given like `OTEL_EXPORTER_OTLP_ENDPOINT`: `/v1/traces`
/// is appended unless the URL already ends with it.
fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The process's exporter, once a hub installed one.
static INSTALLED: std::sync::Mutex<Option<Otel>> = std::sync::Mutex::new(None);

/// Installs the exporter unless one is already installed (see [`Otel::install`]).
pub(crate) fn install(endpoint: Option<&str>) -> Result<(), CoreError> {
    let mut slot = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if slot.is_none() {
        *slot = Otel::install(endpoint)?;
    }
    Ok(())
}

/// Flushes and removes the installed exporter, if any. Blocking (bounded by the export
/// timeout).
pub(crate) fn shutdown() {
    let otel = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(otel) = otel {
        otel.shutdown();
    }
}

/// An installed exporter; [`Otel::shutdown`] flushes what is queued.
#[derive(Debug)]
pub(crate) struct Otel {
    provider: SdkTracerProvider,
}

impl Otel {
    /// Installs the exporter as the global tracer provider and turns span recording on.
    /// `endpoint` (from `--otlp-endpoint`) wins over the environment; without either there is
    /// nothing to install.
    pub(crate) fn install(endpoint: Option<&str>) -> Result<Option<Otel>, CoreError> {
        if endpoint.is_none() && !endpoint_in_env() {
            return Ok(None);
        }
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| CoreError::Otlp(format!("no async runtime: {e}")))?;
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(HubClient { rt });
        if let Some(e) = endpoint {
            let url = traces_url(e);
            url::Url::parse(&url)
                .map_err(|err| CoreError::Otlp(format!("invalid OTLP endpoint {e:?}: {err}")))?;
            builder = builder.with_endpoint(url);
        }
        let exporter = builder
            .build()
            .map_err(|e| CoreError::Otlp(e.to_string()))?;
        // The SDK's resource detectors read OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the
        // hub names itself only when they do not.
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none_or(|s| s.is_empty()) {
            resource = resource.with_service_name("mcp-hub");
        }
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_id_generator(HubIds)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        mcp_hub_registry::trace::set_recording(true);
        Ok(Some(Otel { provider }))
    }

    /// Stops recording and exports what is queued (bounded by the export timeout). Blocking:
    /// call it off the async runtime's worker threads.
    pub(crate) fn shutdown(self) {
        mcp_hub_registry::trace::set_recording(false);
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!("OTLP exporter shutdown: {e}");
        }
    }
}

/// The ids the registry chose for the span being started (the ones its `traceparent` carried
/// upstream), or new random ones.
#[derive(Debug)]
struct HubIds;

impl IdGenerator for HubIds {
    fn new_trace_id(&self) -> TraceId {
        // Asked only for a span without a parent, after `new_span_id` (which took the pending
        // ids): a root span's trace id is then the one the registry stashed.
        mcp_hub_registry::trace::take_root_trace_id().map_or_else(
            || TraceId::from_bytes(mcp_hub_registry::trace::random_trace_id()),
            TraceId::from_bytes,
        )
    }

    fn new_span_id(&self) -> SpanId {
        SpanId::from_bytes(
            mcp_hub_registry::trace::take_span_id()
                .unwrap_or_else(mcp_hub_registry::trace::span_id),
        )
    }
}

/// The SDK's HTTP client: the hub's own, driven on the hub's runtime (the batch processor's
/// thread has none).
#[derive(Debug)]
struct HubClient {
    rt: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for HubClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let task = self.rt.spawn(async move {
            let (parts, body) = request.into_parts();
            let request = http::Request::from_parts(parts, Full::new(body));
            mcp_hub_transport::HttpClient::shared()
                .send_with_limit(request, EXPORT_TIMEOUT, 64 * 1024)
                .await
        });
        let (parts, body) = task.await??;
        Ok(http::Response::from_parts(parts, body))
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
