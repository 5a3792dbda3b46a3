//! Forwards the hub's own log lines (tracing events) to `/api/events` as `log` events, as the Node
//! hub does, so editor plugins can show them.

use mcp_hub_api::HubEvent;
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
#[derive(Debug, Clone)]
pub struct HubLogLayer {
    tx: broadcast::Sender<HubEvent>,
}

impl Default for HubLogLayer {
    fn default() -> Self {
        HubLogLayer {
            tx: broadcast::channel(512).0,
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
}

struct Fields {
    message: String,
    data: Map<String, Value>,
    code: Option<String>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "code" => self.code = Some(value),
            name => {
                self.data.insert(name.to_owned(), Value::String(value));
            }
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

/// The message as a log view shows it: editor plugins show `message` alone, so a line about one
/// server names it there (as the Node hub's lines do), and a child's stderr line reads
/// `<server> stderr: <line>` as in the Node hub.
fn shown_message(target: &str, message: String, data: &Map<String, Value>) -> String {
    let Some(server) = data.get("server").and_then(Value::as_str) else {
        return message;
    };
    if target == "mcp_hub::upstream" {
        format!("{server} stderr: {message}")
    } else if message.contains(server) {
        message
    } else {
        format!("'{server}': {message}")
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
            code: None,
        };
        event.record(&mut f);
        let level = match level {
            Level::ERROR => "error",
            Level::WARN => "warn",
            _ => "info",
        };
        let message = shown_message(event.metadata().target(), f.message, &f.data);
        let _ = self.tx.send(HubEvent::Log {
            level,
            message,
            data: f.data,
            code: f.code,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn lines_name_their_server_and_carry_their_code() {
        let layer = HubLogLayer::new();
        let mut rx = layer.sender().subscribe();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(
                server = "fs",
                code = "CONNECTION_ERROR",
                "Failed to connect to \"fs\" MCP server: boom"
            );
            tracing::info!(server = "fs", pid = 7, "started upstream process");
            tracing::info!(target: "mcp_hub::upstream", server = "fs", "listening on stdio");
            tracing::debug!(server = "fs", "not forwarded");
            tracing::warn!("no server here");
        });
        let mut got = Vec::new();
        while let Ok(HubEvent::Log {
            level,
            message,
            data,
            code,
        }) = rx.try_recv()
        {
            got.push((level, message, data, code));
        }
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].0, "error");
        assert_eq!(got[0].1, "Failed to connect to \"fs\" MCP server: boom");
        assert_eq!(got[0].3.as_deref(), Some("CONNECTION_ERROR"));
        assert!(!got[0].2.contains_key("code"), "the code is not data");
        assert_eq!(got[1].1, "'fs': started upstream process");
        assert_eq!(got[1].2["pid"], "7");
        assert_eq!(got[1].3, None);
        assert_eq!(got[2].1, "fs stderr: listening on stdio");
        assert_eq!((got[3].0, got[3].1.as_str()), ("warn", "no server here"));
    }
}
