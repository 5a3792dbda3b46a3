//! An HDR-style latency histogram: log-bucketed with linear sub-buckets, so every recorded value
//! lands in a bucket whose width is at most 1/128 of the value (under 0.8 % error) from 1 ns to
//! `u64::MAX` ns, in a fixed 57 KiB table. Recording is an index computation and an increment.

/// Values below this are counted exactly; above it each power of two is split into `HALF` slots.
const SUB: u64 = 256;
const HALF: u64 = SUB / 2;
/// log2(SUB).
const SUB_BITS: u32 = 8;
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * HALF) as usize;

/// A histogram of nanosecond values.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = msb - (SUB_BITS - 1);
    let top = v >> shift; // in [HALF, SUB)
    (SUB + u64::from(msb - SUB_BITS) * HALF + (top - HALF)) as usize
}

/// The largest value that maps to bucket `i`.
fn highest_in(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let k = i - SUB;
    let msb = k / HALF + u64::from(SUB_BITS);
    let top = k % HALF + HALF;
    let shift = msb - u64::from(SUB_BITS - 1);
    let low = top << shift;
    low.saturating_add((1u64 << shift) - 1)
}

impl Histogram {
    pub(crate) fn record(&mut self, nanos: u64) {
        self.counts[index(nanos)] += 1;
        self.count += 1;
        self.sum += u128::from(nanos);
        self.min = self.min.min(nanos);
        self.max = self.max.max(nanos);
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    pub(crate) fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min }
    }

    pub(crate) fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0..=1): the highest value equivalent to the bucket holding
    /// the `ceil(q * count)`-th smallest recording, clamped to the exact min and max.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return highest_in(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        // Every bucket starts right after the previous one ends, and is narrow relative to its
        // values.
        let mut prev = highest_in(0);
        for i in 1..BUCKETS {
            let hi = highest_in(i);
            let lo = prev + 1;
            assert!(hi >= lo, "bucket {i}");
            assert_eq!(index(lo), i, "low edge of {i}");
            assert_eq!(index(hi), i, "high edge of {i}");
            assert!(
                (hi - lo) as f64 <= lo as f64 / HALF as f64,
                "bucket {i} too wide"
            );
            if hi == u64::MAX {
                assert_eq!(i, BUCKETS - 1);
                return;
            }
            prev = hi;
        }
        panic!("the table does not reach u64::MAX");
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.min(), 1000);
        assert_eq!(h.max(), 100_000_000);
        for (q, want) in [
            (0.5, 50_000_000.0),
            (0.9, 90_000_000.0),
            (0.99, 99_000_000.0),
        ] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.01, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), 100_000_000);
        assert!((h.mean() - 50_000_500.0).abs() < 1.0);
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(5);
        b.record(7_000);
        b.record(9);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.min(), 5);
        assert_eq!(a.max(), 7_000);
        assert_eq!(a.quantile(0.5), 9);
    }

    #[test]
    fn empty_is_zero() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.99), 0);
        assert_eq!(h.min(), 0);
        assert_eq!(h.mean(), 0.0);
    }
}
