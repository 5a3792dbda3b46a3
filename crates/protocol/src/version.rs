/// The newest handshake-era revision, which the hub offers first on both sides.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// The first stateless ("modern") revision (see [`crate::modern`]).
pub const MODERN_PROTOCOL_VERSION: &str = "2026-07-28";

/// Handshake-era revisions the hub speaks, newest first.
pub const SUPPORTED_PROTOCOL_VERSIONS: &[&str] =
    &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// A protocol revision the hub speaks, ordered by date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// 2024-11-05: HTTP+SSE era.
    V2024_11_05,
    /// 2025-03-26: Streamable HTTP, batching.
    V2025_03_26,
    /// 2025-06-18: structured output, elicitation, `MCP-Protocol-Version` header.
    V2025_06_18,
    /// 2025-11-25: icons, URL elicitation, tasks, SSE polling.
    V2025_11_25,
}

impl ProtocolVersion {
    /// Parses a supported revision string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "2024-11-05" => ProtocolVersion::V2024_11_05,
            "2025-03-26" => ProtocolVersion::V2025_03_26,
            "2025-06-18" => ProtocolVersion::V2025_06_18,
            "2025-11-25" => ProtocolVersion::V2025_11_25,
            _ => return None,
        })
    }

    /// The revision string.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2024_11_05 => "2024-11-05",
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
        }
    }

    /// The newest revision.
    pub const LATEST: ProtocolVersion = ProtocolVersion::V2025_11_25;
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Server-side negotiation: the client's requested version if the hub speaks it, else the latest.
///
/// ```
/// use mcp_hub_protocol::{negotiate_version, ProtocolVersion};
/// assert_eq!(negotiate_version("2025-06-18"), ProtocolVersion::V2025_06_18);
/// assert_eq!(negotiate_version("1999-01-01"), ProtocolVersion::V2025_11_25);
/// ```
pub fn negotiate_version(requested: &str) -> ProtocolVersion {
    ProtocolVersion::parse(requested).unwrap_or(ProtocolVersion::LATEST)
}
