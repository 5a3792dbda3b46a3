//! Forwards the hub's own log lines (tracing events) to `/api/events` as `log` events, as the Node
//! hub does, so editor plugins can show them.
//!
//! At most a burst and then a steady rate of lines are forwarded: log events share the hub's
//! event channel with state and subscription events, which a flood of log lines would push out
//! (a lagging reader loses the oldest). What is held back is counted and reported in the next
//! line that goes through.

use std::sync::{Arc, Mutex};
use std::time::Instant;

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
    budget: Arc<Mutex<Budget>>,
}

/// Log events forwarded: a burst, then a steady rate per second.
const BURST: f64 = 256.0;
const PER_SEC: f64 = 100.0;

#[derive(Debug)]
struct Budget {
    tokens: f64,
    refilled: Instant,
    held_back: u64,
}

impl Budget {
    /// Whether one more event may go; the count held back before it when it may.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        let earned = now.duration_since(self.refilled).as_secs_f64() * PER_SEC;
        self.tokens = (self.tokens + earned).min(BURST);
        self.refilled = now;
        if self.tokens < 1.0 {
            self.held_back += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(std::mem::take(&mut self.held_back))
    }
}

impl Default for HubLogLayer {
    fn default() -> Self {
        HubLogLayer {
            tx: broadcast::channel(512).0,
            redactor: Redactor::new(),
            budget: Arc::new(Mutex::new(Budget {
                tokens: BURST,
                refilled: Instant::now(),
                held_back: 0,
            })),
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
        // Upstream log messages the registry forwards to /api/events itself (in the Node hub's
        // shape): their hub-log line must not arrive a second time.
        if event.metadata().target() == mcp_hub_transport::UPSTREAM_LOG_TARGET {
            return;
        }
        let held_back = {
            let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
            match b.admit(Instant::now()) {
                Some(n) => n,
                None => return,
            }
        };
        if held_back > 0 {
            let mut data = Map::new();
            data.insert("dropped".into(), Value::from(held_back));
            let _ = self.tx.send(HubEvent::Log {
                level: "warn",
                message: format!("{held_back} log lines were not sent to /api/events (too many)"),
                data,
                code: None,
            });
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
        let mut data = f.data;
        for v in data.values_mut() {
            if let Value::String(text) = v {
                *text = self.redactor.redact_string(std::mem::take(text));
            }
        }
        let message = shown_message(
            event.metadata().target(),
            self.redactor.redact_string(f.message),
            &data,
        );
        let _ = self.tx.send(HubEvent::Log {
            level,
            message,
            data,
            code: f.code,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn a_flood_of_log_lines_is_held_back_and_counted() {
        let t0 = Instant::now();
        let mut b = Budget {
            tokens: BURST,
            refilled: t0,
            held_back: 0,
        };
        let sent = (0..10_000).filter(|_| b.admit(t0).is_some()).count();
        assert_eq!(sent, BURST as usize);
        assert_eq!(
            b.admit(t0 + Duration::from_secs(1)),
            Some(10_000 - BURST as u64)
        );
        assert_eq!(b.admit(t0 + Duration::from_secs(1)), Some(0));
    }

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
