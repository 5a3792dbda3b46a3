//! Forwards the hub's own log lines (tracing events) to `/api/events` as `log` events, as the Node
//! hub does, so editor plugins can show them.

use mcp_hub_api::HubEvent;
use mcp_hub_config::Redactor;
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// A `tracing` layer that turns events at `info` and above into `log` events. Install it in the
/// program's subscriber and hand [`HubLogLayer::sender`] to [`HubBuilder::log_events`].
///
/// [`HubBuilder::log_events`]: crate::HubBuilder::log_events
///
/// Messages and fields are scrubbed with the layer's [`Redactor`]: hand the same one to
/// [`HubBuilder::redactor`] so what the servers' placeholders resolve to never reaches a client,
/// and wrap the program's other log writers with it.
///
/// [`HubBuilder::redactor`]: crate::HubBuilder::redactor
#[derive(Debug, Clone)]
pub struct HubLogLayer {
    tx: broadcast::Sender<HubEvent>,
    redactor: Redactor,
}

impl Default for HubLogLayer {
    fn default() -> Self {
        HubLogLayer {
            tx: broadcast::channel(512).0,
            redactor: Redactor::new(),
        }
    }
}

impl HubLogLayer {
    /// A new layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The channel the hub reads log events from.
    pub fn sender(&self) -> broadcast::Sender<HubEvent> {
        self.tx.clone()
    }

    /// The redactor that scrubs this layer's events (shared with clones).
    pub fn redactor(&self) -> Redactor {
        self.redactor.clone()
    }
}

struct Fields {
    message: String,
    data: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.data
                .insert(field.name().to_owned(), Value::String(value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}");
        if field.name() == "message" {
            self.message = v;
        } else {
            self.data.insert(field.name().to_owned(), Value::String(v));
        }
    }
}

impl<S: Subscriber> Layer<S> for HubLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::INFO || self.tx.receiver_count() == 0 {
            return;
        }
        let mut f = Fields {
            message: String::new(),
            data: Map::new(),
        };
        event.record(&mut f);
        let level = match level {
            Level::ERROR => "error",
            Level::WARN => "warn",
            _ => "info",
        };
        let mut data = f.data;
        for v in data.values_mut() {
            if let Value::String(text) = v {
                *text = self.redactor.redact_string(std::mem::take(text));
            }
        }
        let _ = self.tx.send(HubEvent::Log {
            level,
            message: self.redactor.redact_string(f.message),
            data,
        });
    }
}
