//! Signed envelopes for what replicas publish to each other (events, commands, server
//! statuses): `<hex HMAC-SHA256>.<JSON>`, keyed from the cluster's shared secret. Whoever can
//! write to Redis but does not know the secret cannot make a replica apply a command or relay an
//! event; a message from a cluster with another secret sharing the namespace is ignored too.

use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::SharedSecret;

/// What the secret is bent into before it signs anything, so the MAC key is not the header
/// value forwarded requests carry.
const LABEL: &[u8] = b"mcp-hub-cluster/pubsub/v1";

/// Larger messages are neither sent nor read (a catalogue event of a huge server is the largest
/// thing replicas publish).
pub(crate) const MAX_MESSAGE: usize = 8 << 20;

pub(crate) struct Sealer {
    key: hmac::Key,
}

/// What every sealed message holds besides its body.
#[derive(Serialize, Deserialize)]
pub(crate) struct Envelope<'a> {
    /// The replica that wrote it.
    pub replica: String,
    /// `event`, `command` or `status`.
    pub kind: String,
    /// Random, to recognise a replayed command.
    pub id: String,
    /// When it was written, unix milliseconds.
    pub at: u64,
    #[serde(borrow)]
    pub body: &'a RawValue,
}

impl Sealer {
    pub(crate) fn new(secret: &SharedSecret) -> Sealer {
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
        let derived = hmac::sign(&root, LABEL);
        Sealer {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// `<mac>.<json>`.
    pub(crate) fn seal(&self, json: &str) -> String {
        let tag = hmac::sign(&self.key, json.as_bytes());
        let mut out = String::with_capacity(65 + json.len());
        for b in tag.as_ref() {
            out.push_str(&format!("{b:02x}"));
        }
        out.push('.');
        out.push_str(json);
        out
    }

    /// The JSON of a message sealed with this cluster's key, else `None`.
    pub(crate) fn open<'a>(&self, raw: &'a str) -> Option<&'a str> {
        if raw.len() > MAX_MESSAGE {
            return None;
        }
        let (mac, json) = raw.split_once('.')?;
        if mac.len() != 64 {
            return None;
        }
        let mut tag = [0u8; 32];
        for (i, t) in tag.iter_mut().enumerate() {
            *t = u8::from_str_radix(mac.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        hmac::verify(&self.key, json.as_bytes(), &tag).ok()?;
        Some(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_clusters_seal_opens() {
        let s = Sealer::new(&SharedSecret::new("0123456789abcdef-one").unwrap());
        let other = Sealer::new(&SharedSecret::new("0123456789abcdef-two").unwrap());
        let sealed = s.seal(r#"{"a":1}"#);
        assert_eq!(s.open(&sealed), Some(r#"{"a":1}"#));
        assert_eq!(other.open(&sealed), None);
        let tampered = sealed.replace(r#""a":1"#, r#""a":2"#);
        assert_eq!(s.open(&tampered), None);
        for junk in [
            "",
            ".",
            "zz.{}",
            "{\"a\":1}",
            &"é".repeat(40),
            &format!("{}.", "0".repeat(64)),
        ] {
            assert_eq!(s.open(junk), None, "{junk:?}");
        }
        // Not a char boundary inside the MAC: refused, not a panic.
        let odd = format!("{}é.{{}}", "0".repeat(62));
        assert_eq!(s.open(&odd), None);
    }
}
