//! The figures read at scrape time: per tool and server from the registry, sessions and streams
//! from the session table, encoded by a `prometheus-client` collector.

use std::collections::BTreeMap;

use mcp_hub_registry::{
    CallSnapshot, ErrorKind, HistogramSnapshot, LATENCY_BOUNDS, Observation, ServerSnapshot,
    ServerStatus,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry as PromRegistry, Unit};

/// The tool label of calls to names no server lists.
pub(crate) const UNKNOWN_TOOL: &str = "__unknown__";

const STATUSES: [ServerStatus; 5] = [
    ServerStatus::Connecting,
    ServerStatus::Connected,
    ServerStatus::Disconnected,
    ServerStatus::Unauthorized,
    ServerStatus::Disabled,
];

/// Everything a scrape reads, gathered before encoding.
#[derive(Debug, Default)]
pub(crate) struct Census {
    pub(crate) observation: Observation,
    pub(crate) servers: Vec<ServerSnapshot>,
    /// Live `/mcp` sessions by `(era, transport)`.
    pub(crate) sessions: BTreeMap<(&'static str, &'static str), u64>,
    /// SSE streams of MCP sessions with a client attached.
    pub(crate) mcp_streams: u64,
    /// Clients of `/api/events`.
    pub(crate) event_clients: u64,
    /// Items of the merged catalogue: tools, resources, templates, prompts.
    pub(crate) catalog: [u64; 4],
}

pub(crate) fn render(out: &mut String, census: Census) {
    let mut reg = PromRegistry::with_prefix("mcp_hub");
    reg.register_collector(Box::new(census));
    let _ = prometheus_client::encoding::prometheus_text::encode(out, &reg);
}

/// One metric of the collector: a descriptor, then one sample per label set.
fn family<'a>(
    enc: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    help: &str,
    unit: Option<&'a Unit>,
    ty: MetricType,
) -> Result<MetricEncoder<'a>, std::fmt::Error> {
    enc.encode_descriptor(name, help, unit, ty)
}

fn histogram(m: &mut MetricEncoder<'_>, h: &HistogramSnapshot) -> std::fmt::Result {
    let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
        .iter()
        .copied()
        .zip(h.buckets.iter().copied())
        .collect();
    m.encode_histogram::<NoLabelSet>(h.sum_secs(), h.count(), &buckets, None)
}

struct Counter(u64);

impl EncodeMetric for Counter {
    fn encode(&self, mut m: MetricEncoder<'_>) -> std::fmt::Result {
        m.encode_counter::<NoLabelSet, _, u64>(&self.0, None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

impl Census {
    /// `(server, tool, figures)` of every tool called, and the unknown names' row.
    fn tools(&self) -> impl Iterator<Item = (&str, &str, &CallSnapshot)> {
        self.observation
            .servers
            .iter()
            .flat_map(|s| {
                s.tools
                    .iter()
                    .map(move |(t, c)| (s.server.as_str(), &**t, c))
            })
            .chain(std::iter::once((
                "",
                UNKNOWN_TOOL,
                &self.observation.unknown,
            )))
    }

    fn encode_tools(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let seconds = Unit::Seconds;
        let mut m = family(
            enc,
            "tool_calls",
            "Tool calls finished, by server and tool (tool=\"__unknown__\": names no server lists)",
            None,
            MetricType::Counter,
        )?;
        for (server, tool, c) in self.tools() {
            let l = [("server", server), ("tool", tool)];
            Counter(c.calls).encode(m.encode_family(&l)?)?;
        }
        let mut m = family(
            enc,
            "tool_errors",
            "Failed tool calls, by server, tool and kind (tool_error, jsonrpc_error, timeout, upstream_down, cancelled, other)",
            None,
            MetricType::Counter,
        )?;
        for (server, tool, c) in self.tools() {
            for (k, n) in ErrorKind::ALL.iter().zip(c.errors) {
                let l = [("server", server), ("tool", tool), ("kind", k.as_str())];
                Counter(n).encode(m.encode_family(&l)?)?;
            }
        }
        let mut m = family(
            enc,
            "tool_calls_in_flight",
            "Tool calls being served now, by server and tool",
            None,
            MetricType::Gauge,
        )?;
        for (server, tool, c) in self.tools() {
            let l = [("server", server), ("tool", tool)];
            m.encode_family(&l)?.encode_gauge(&c.in_flight)?;
        }
        let mut m = family(
            enc,
            "tool_call_duration",
            "The hub's whole handling of a tool call (routing, the upstream's part, result rewriting), by server and tool",
            Some(&seconds),
            MetricType::Histogram,
        )?;
        for (server, tool, c) in self.tools() {
            let l = [("server", server), ("tool", tool)];
            histogram(&mut m.encode_family(&l)?, &c.total)?;
        }
        let mut m = family(
            enc,
            "tool_upstream_duration",
            "The upstream's part of a tool call (request written to answer read), by server and tool",
            Some(&seconds),
            MetricType::Histogram,
        )?;
        for (server, tool, c) in self.tools() {
            if server.is_empty() {
                continue; // unknown names never reach a server
            }
            let l = [("server", server), ("tool", tool)];
            histogram(&mut m.encode_family(&l)?, &c.upstream)?;
        }
        Ok(())
    }

    fn encode_servers(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut m = family(
            enc,
            "server_status",
            "Each server's status: 1 for the current one, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.servers {
            for st in STATUSES {
                let l = [("server", s.name.as_str()), ("status", st.as_str())];
                m.encode_family(&l)?
                    .encode_gauge(&i64::from(s.status == st))?;
            }
        }
        let mut m = family(
            enc,
            "server_restarts",
            "Restarts of each server after a failure",
            None,
            MetricType::Counter,
        )?;
        for s in &self.servers {
            let l = [("server", s.name.as_str())];
            Counter(u64::from(s.restarts)).encode(m.encode_family(&l)?)?;
        }
        let seconds = Unit::Seconds;
        let mut m = family(
            enc,
            "server_last_connect_duration",
            "How long each server's last successful connect took (start or connect, initialize, listing)",
            Some(&seconds),
            MetricType::Gauge,
        )?;
        for o in &self.observation.servers {
            if let Some(d) = o.last_connect {
                let l = [("server", o.server.as_str())];
                m.encode_family(&l)?.encode_gauge(&d.as_secs_f64())?;
            }
        }
        let mut m = family(
            enc,
            "server_catalog_items",
            "Items each server lists, by list (tools, resources, resourceTemplates, prompts)",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.servers {
            let lists = [
                ("tools", &s.tools),
                ("resources", &s.resources),
                ("resourceTemplates", &s.resource_templates),
                ("prompts", &s.prompts),
            ];
            for (list, items) in lists {
                let l = [("server", s.name.as_str()), ("list", list)];
                m.encode_family(&l)?.encode_gauge(&(items.len() as u64))?;
            }
        }
        let bytes = Unit::Bytes;
        let mut m = family(
            enc,
            "server_routed",
            "Bytes of routed requests' params sent to each server (direction=\"out\") and of their results (direction=\"in\")",
            Some(&bytes),
            MetricType::Counter,
        )?;
        for o in &self.observation.servers {
            for (dir, n) in [("out", o.bytes_out), ("in", o.bytes_in)] {
                let l = [("server", o.server.as_str()), ("direction", dir)];
                Counter(n).encode(m.encode_family(&l)?)?;
            }
        }
        Ok(())
    }

    fn encode_downstream(&self, enc: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let mut m = family(
            enc,
            "sessions",
            "Live downstream MCP sessions, by protocol era and transport",
            None,
            MetricType::Gauge,
        )?;
        for ((era, transport), n) in &self.sessions {
            let l = [("era", *era), ("transport", *transport)];
            m.encode_family(&l)?.encode_gauge(n)?;
        }
        let mut m = family(
            enc,
            "open_streams",
            "Open server-sent event streams, by kind (mcp: a session's stream with a client attached; events: /api/events)",
            None,
            MetricType::Gauge,
        )?;
        for (kind, n) in [("mcp", self.mcp_streams), ("events", self.event_clients)] {
            let l = [("kind", kind)];
            m.encode_family(&l)?.encode_gauge(&n)?;
        }
        let mut m = family(
            enc,
            "catalog_items",
            "Items of the merged catalogue clients see, by list",
            None,
            MetricType::Gauge,
        )?;
        let names = ["tools", "resources", "resourceTemplates", "prompts"];
        for (list, n) in names.iter().zip(self.catalog) {
            let l = [("list", *list)];
            m.encode_family(&l)?.encode_gauge(&n)?;
        }
        Ok(())
    }
}

impl Collector for Census {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        self.encode_tools(&mut enc)?;
        self.encode_servers(&mut enc)?;
        self.encode_downstream(&mut enc)
    }
}
