//! Which runs a sweep does: shards K/N (round-robin over the run list).

use crate::error::{Error, Result};

/// A shard K/N (1-based K).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// K ∈ [1, N].
    pub index: usize,
    /// N ≥ 1.
    pub count: usize,
}

impl Shard {
    /// Parses "K/N".
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || Error::config("--shard", s, "K/N with 1 ≤ K ≤ N, e.g. 3/8");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { index: k, count: n })
    }
    /// Whether run number `i` (position in the full run list) belongs to this shard.
    pub fn contains(&self, i: usize) -> bool {
        i % self.count == self.index - 1
    }
}
