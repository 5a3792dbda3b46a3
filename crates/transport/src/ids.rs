//! Maps keyed by numbers the hub makes itself (request ids, call and stream counters), and by
//! names from its own configuration (the HTTP pool's upstream authorities).
//!
//! `std`'s default hasher (SipHash) resists flooding by chosen keys, which these keys cannot be:
//! no client or server picks them. On the call path it cost ~4,000 instructions per
//! `tools/call` over the few maps every call passes through; a multiplicative hash of the number
//! costs a few.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by a hub-made number (never by what a client or server chose).
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of an integer key; other input is folded in byte by byte (FNV-1a), which
/// the integer keys never need.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_spread_and_round_trip() {
        let mut m: IdMap<u64, u64> = IdMap::default();
        for i in 0..10_000u64 {
            m.insert(i, i * 2);
        }
        assert_eq!(m.len(), 10_000);
        assert!((0..10_000u64).all(|i| m.get(&i) == Some(&(i * 2))));
        // Sequential keys land in distinct high bits (what the table's control bytes use).
        let top = |n: u64| {
            let mut h = IdHasher::default();
            h.write_u64(n);
            h.finish() >> 57
        };
        let distinct: std::collections::HashSet<u64> = (0..128).map(top).collect();
        assert!(distinct.len() > 64, "{}", distinct.len());
    }
}
