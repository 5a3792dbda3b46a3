//! A latency histogram of fixed buckets kept in atomics: observing is a handful of relaxed
//! atomic adds, never a lock or an allocation, and readers (a scrape, `/api/servers`) copy it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (a last, unbounded bucket follows). From 250 µs (a
/// call the hub answers from memory) to a minute (a long-running tool).
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    60.0,
];

const BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// Bounds in microseconds, so observing compares integers.
const BOUNDS_MICROS: [u64; 16] = {
    let mut out = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (LATENCY_BOUNDS[i] * 1_000_000.0) as u64;
        i += 1;
    }
    out
};

/// Counts of durations per bucket (not cumulative), their sum and their number.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_MICROS.partition_point(|&b| b < micros);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = [0u64; BUCKETS];
        for (out, b) in buckets.iter_mut().zip(&self.buckets) {
            *out = b.load(Ordering::Relaxed);
        }
        HistogramSnapshot {
            buckets,
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

/// A copy of a latency histogram at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Counts per bucket of [`LATENCY_BOUNDS`] (the last is everything above), not cumulative.
    pub buckets: [u64; BUCKETS],
    /// Sum of the observed durations, in microseconds.
    pub sum_micros: u64,
}

impl HistogramSnapshot {
    /// How many durations were observed.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Sum of the observed durations, in seconds.
    pub fn sum_secs(&self) -> f64 {
        self.sum_micros as f64 / 1_000_000.0
    }

    /// Adds another histogram's counts (a server's figures are the sum of its tools').
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_micros += other.sum_micros;
    }

    /// The `q` quantile in seconds, interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does; `None` when nothing was observed. A quantile in the last,
    /// unbounded bucket is reported as its lower bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { LATENCY_BOUNDS[i - 1] };
                let Some(&upper) = LATENCY_BOUNDS.get(i) else {
                    return Some(lower);
                };
                let into = (rank - below as f64) / n as f64;
                return Some(lower + (upper - lower) * into);
            }
            below += n;
        }
        LATENCY_BOUNDS.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_upper_bound_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(250)); // exactly the first bound
        h.observe(Duration::from_micros(251));
        h.observe(Duration::from_secs(120)); // past every bound
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[BUCKETS - 1], 1);
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum_micros, 250 + 251 + 120_000_000);
    }

    #[test]
    fn quantiles_interpolate_like_prometheus() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().quantile(0.5), None);
        // 100 calls between 5 and 10 ms: the median is half way through that bucket.
        for _ in 0..100 {
            h.observe(Duration::from_millis(7));
        }
        let s = h.snapshot();
        let p50 = s.quantile(0.5).unwrap();
        assert!((p50 - 0.0075).abs() < 1e-9, "{p50}");
        let p99 = s.quantile(0.99).unwrap();
        assert!(p99 > 0.009 && p99 <= 0.01, "{p99}");
        // One slow call among them moves p99 into a later bucket only if it is in the top 1 %.
        h.observe(Duration::from_secs(3));
        let s = h.snapshot();
        assert!(s.quantile(0.5).unwrap() < 0.01);
        assert!(s.quantile(1.0).unwrap() > 2.5);
    }

    #[test]
    fn merging_adds() {
        let (a, b) = (Histogram::default(), Histogram::default());
        a.observe(Duration::from_millis(1));
        b.observe(Duration::from_millis(1));
        b.observe(Duration::from_millis(30));
        let mut s = a.snapshot();
        s.merge(&b.snapshot());
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum_micros, 32_000);
    }
}
