//! Which runs a sweep does: shards K/N (round-robin over the run list) and the runs of a
//! shard not yet recorded in runs.jsonl ([`RunPlan`]).

use super::{Cell, RunKey, RunSpec, SweepConfig, key_of, read_runs};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::Path;

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

/// The runs of a sweep, those of one shard of it, and those of them not recorded yet: what
/// [`super::run_sweep`] runs and what `annealvi sweep --dry-run` counts (one definition, so
/// that the two cannot disagree).
#[derive(Clone, Debug)]
pub struct RunPlan {
    /// The grid's cells ([`SweepConfig::cells`]).
    pub cells: Vec<Cell>,
    /// Every run of the grid ([`SweepConfig::runs`]).
    pub all: Vec<RunSpec>,
    /// The runs of the shard (every run without one), in run-list order.
    pub mine: Vec<RunSpec>,
    /// The runs of `mine` not recorded yet, in run-list order.
    pub missing: Vec<RunSpec>,
}

impl RunPlan {
    /// The plan of `cfg` for `shard`, given the keys of the runs already recorded (`done`,
    /// e.g. [`recorded_runs`]).
    pub fn new(cfg: &SweepConfig, shard: Option<Shard>, done: &HashSet<RunKey>) -> Self {
        let cells = cfg.cells();
        let all = cfg.runs();
        let mine: Vec<RunSpec> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| shard.is_none_or(|s| s.contains(*i)))
            .map(|(_, r)| *r)
            .collect();
        let missing = mine
            .iter()
            .filter(|r| {
                let c = cells[r.cell];
                !done.contains(&(c.beta_i.to_bits(), c.t0.to_bits(), r.seed))
            })
            .copied()
            .collect();
        RunPlan {
            cells,
            all,
            mine,
            missing,
        }
    }
}

/// The keys of the runs recorded in the runs.jsonl at `path` (none if it does not exist);
/// `repair` as for [`read_runs`].
pub fn recorded_runs(path: &Path, repair: bool) -> Result<HashSet<RunKey>> {
    Ok(read_runs(path, repair)?.iter().map(key_of).collect())
}
