//! A sweep directory on disk: runs.jsonl (its lines, reading with repair of a torn last
//! line), sweep.toml (the configuration and shard it holds) and the lock of one writer at a
//! time.

use super::{Cell, Shard, SweepConfig};
use crate::error::{Error, Result};
use crate::family::gmm::Stats;
use crate::metrics::{Outcome, OutcomeKind};
use crate::train::RunResult;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// A finished run, one line of runs.jsonl.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunLine {
    /// β_i of the cell.
    pub beta_i: f64,
    /// t0 of the cell.
    pub t0: f64,
    /// Seed index.
    pub seed: usize,
    /// covered / collapsed / partial / diverged.
    pub outcome: OutcomeKind,
    /// For collapses: the mode (0 = heavy for the bimodal target).
    pub mode: Option<usize>,
    /// For divergences: the step.
    pub diverged_step: Option<usize>,
    /// Steps run.
    pub steps: usize,
    /// Student mass on the lighter mode (null if diverged).
    pub light_mode_mass: Option<f64>,
    /// Final m_k.
    pub m: Vec<f64>,
    /// Final σ_k.
    pub sigma: Vec<f64>,
    /// Final q_kl (k ≤ l).
    pub q: Vec<f64>,
    /// Final w_k.
    pub w: Vec<f64>,
    /// Flow students: |light-mode mass − true light weight| (Monte Carlo; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_weight_error: Option<f64>,
    /// Flow students: importance-sampling ESS / N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ess_fraction: Option<f64>,
    /// Flow students: Monte-Carlo KL(q‖π) in nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Wall time of the run in seconds.
    pub wall_seconds: f64,
}

/// A runs.jsonl line from a run's result (mixture statistics or flow statistics).
pub fn run_line(
    cell: Cell,
    seed: usize,
    res: RunResult<()>,
    gmm: Option<Stats>,
    flow: Option<crate::family::realnvp::FlowStats>,
    wall_seconds: f64,
) -> RunLine {
    {
        let finite = |v: f64| v.is_finite().then_some(v);
        let (mode, diverged_step) = match &res.outcome {
            Outcome::Collapsed { mode, .. } => (Some(*mode), None),
            Outcome::Diverged { step } => (None, Some(*step)),
            _ => (None, None),
        };
        let gmm = gmm.unwrap_or(Stats {
            m: Vec::new(),
            q: Vec::new(),
            sigma: Vec::new(),
            w: Vec::new(),
        });
        RunLine {
            beta_i: cell.beta_i,
            t0: cell.t0,
            seed,
            outcome: res.outcome.kind(),
            mode,
            diverged_step,
            steps: res.final_step,
            light_mode_mass: finite(res.light_mode_mass),
            m: gmm.m,
            sigma: gmm.sigma,
            q: gmm.q,
            w: gmm.w,
            mode_weight_error: flow.as_ref().and_then(|f| finite(f.mode_weight_error)),
            ess_fraction: flow.as_ref().and_then(|f| finite(f.ess_fraction)),
            kl: flow.as_ref().and_then(|f| finite(f.kl)),
            wall_seconds,
        }
    }
}

/// Identity of a run across files: (β_i bits, t0 bits, seed).
pub type RunKey = (u64, u64, usize);

pub(super) fn key_of(line: &RunLine) -> RunKey {
    (line.beta_i.to_bits(), line.t0.to_bits(), line.seed)
}

/// Reads runs.jsonl. A last line without its newline, or that is not valid JSON, is torn: it is
/// dropped and, when `repair` is set, cut from the file. A malformed line elsewhere is an error.
pub fn read_runs(path: &Path, repair: bool) -> Result<Vec<RunLine>> {
    Ok(read_runs_raw(path, repair)?
        .into_iter()
        .map(|(l, _)| l)
        .collect())
}

/// As [`read_runs`], with each run's line as written (without its newline), so that it can be
/// copied bit for bit.
pub fn read_runs_raw(path: &Path, repair: bool) -> Result<Vec<(RunLine, String)>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    let mut lines = Vec::new();
    let mut good_len = 0usize;
    let mut pos = 0usize;
    while pos < text.len() {
        let end = text[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i);
        let Some(end) = end else { break }; // torn: no newline
        let slice = &text[pos..end];
        if !slice.iter().all(|b| b.is_ascii_whitespace()) {
            match serde_json::from_slice::<RunLine>(slice) {
                Ok(l) => lines.push((l, String::from_utf8_lossy(slice).into_owned())),
                Err(e) => {
                    if end + 1 >= text.len() {
                        break; // torn last line
                    }
                    return Err(Error::Invalid(format!(
                        "{}: malformed line at byte {pos}: {e}",
                        path.display()
                    )));
                }
            }
        }
        pos = end + 1;
        good_len = pos;
    }
    if good_len < text.len() && repair {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, "open", e))?;
        f.set_len(good_len as u64)
            .map_err(|e| Error::io(path, "truncate", e))?;
    }
    Ok(lines)
}

pub(super) const META: &str = "sweep.toml";

/// The lock file of a sweep directory (held while a sweep or a merge writes into it).
pub const LOCK: &str = ".annealvi.lock";

/// Takes the exclusive lock of directory `dir` (an advisory lock on `dir/.annealvi.lock`:
/// `flock` on Unix, `LockFileEx` on Windows), released when the returned file is dropped or
/// the process ends, however it ends. Refuses, without waiting, when another process holds it.
pub fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let p = dir.join(LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(&p, "open the lock file", e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Invalid(format!(
            "{} is in use by another annealvi sweep or merge (it holds the lock {}); wait for it \
             to finish, or choose another --out",
            dir.display(),
            p.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&p, "lock", e)),
    }
}

/// Whether `dir/runs.jsonl` exists and is not empty.
pub(super) fn has_runs(dir: &Path) -> bool {
    std::fs::metadata(dir.join("runs.jsonl")).is_ok_and(|m| m.len() > 0)
}

pub(super) fn meta_text(cfg: &SweepConfig, shard: Option<Shard>) -> String {
    let mut s = String::new();
    if let Some(sh) = shard {
        let _ = writeln!(s, "# shard {}/{}", sh.index, sh.count);
    }
    s.push_str(&toml::to_string(cfg).unwrap_or_default());
    s
}

/// The configuration part of a sweep.toml (comment lines such as the shard removed).
pub(super) fn meta_config(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}
