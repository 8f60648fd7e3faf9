//! A sweep directory on disk: runs.jsonl (its lines, reading with repair of a torn last
//! line), sweep.toml (the configuration and shard it holds) and the lock of one writer at a
//! time.
//!
//! Numbers in runs.jsonl are lossless: a finite f64 is a JSON number that reads back as the
//! same bits; JSON has no infinities or NaN, so those are strings — `"inf"`, `"-inf"`, `"NaN"`
//! (the canonical quiet NaN) or `"NaN:0x…"` (the 16 hex digits of any other NaN). A `null`
//! written by earlier versions for a non-finite value reads as NaN.

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
    #[serde(with = "lossless")]
    pub beta_i: f64,
    /// t0 of the cell.
    #[serde(with = "lossless")]
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
    #[serde(with = "lossless::option")]
    pub light_mode_mass: Option<f64>,
    /// Final m_k.
    #[serde(with = "lossless::vec")]
    pub m: Vec<f64>,
    /// Final σ_k.
    #[serde(with = "lossless::vec")]
    pub sigma: Vec<f64>,
    /// Final q_kl (k ≤ l).
    #[serde(with = "lossless::vec")]
    pub q: Vec<f64>,
    /// Final w_k.
    #[serde(with = "lossless::vec")]
    pub w: Vec<f64>,
    /// Flow students: |light-mode mass − true light weight| (Monte Carlo; absent otherwise).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "lossless::option"
    )]
    pub mode_weight_error: Option<f64>,
    /// Flow students: importance-sampling ESS / N.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "lossless::option"
    )]
    pub ess_fraction: Option<f64>,
    /// Flow students: Monte-Carlo KL(q‖π) in nats.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "lossless::option"
    )]
    pub kl: Option<f64>,
    /// Benchmark targets (flow students): |ln Z estimate − ln Z| (see
    /// [`BenchmarkMetrics`](crate::target::BenchmarkMetrics)).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "lossless::option"
    )]
    pub log_z_error: Option<f64>,
    /// GMM40 (flow students): the modes holding ≥ 1% of the samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modes_covered: Option<usize>,
    /// GMM40 (flow students): entropic mode coverage, in [0, 1].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "lossless::option"
    )]
    pub emc: Option<f64>,
    /// Adaptive schedules (`[run.schedule] kind = "adaptive"`): the first step at which β was
    /// 1 (absent for the other schedules, whose end is the cell's t0, and for a run stopped
    /// before β reached 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anneal_steps: Option<usize>,
    /// Wall time of the run in seconds.
    #[serde(with = "lossless")]
    pub wall_seconds: f64,
}

impl RunLine {
    /// The line as written to runs.jsonl (without its newline).
    pub fn to_json(&self) -> String {
        // every field serialises (numbers are lossless, see the module docs)
        serde_json::to_string(self).expect("a run line always serialises")
    }

    /// Parses one runs.jsonl line.
    pub fn from_json(line: &[u8]) -> std::result::Result<Self, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// Lossless f64 in JSON (module docs): `#[serde(with = "lossless")]` on an f64,
/// `lossless::vec` on a `Vec<f64>`, `lossless::option` on an `Option<f64>` (None ↔ null).
mod lossless {
    use serde::de::{self, Deserializer, Visitor};
    use serde::ser::{SerializeSeq, Serializer};
    use serde::{Deserialize, Serialize};
    use std::fmt;

    /// One f64, serialised losslessly.
    #[derive(Clone, Copy)]
    pub struct F(pub f64);

    impl Serialize for F {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let v = self.0;
            if v.is_finite() {
                s.serialize_f64(v)
            } else if v == f64::INFINITY {
                s.serialize_str("inf")
            } else if v == f64::NEG_INFINITY {
                s.serialize_str("-inf")
            } else if v.to_bits() == f64::NAN.to_bits() {
                s.serialize_str("NaN")
            } else {
                s.serialize_str(&format!("NaN:0x{:016x}", v.to_bits()))
            }
        }
    }

    struct FVisitor;

    impl<'de> Visitor<'de> for FVisitor {
        type Value = F;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, \"inf\", \"-inf\", \"NaN\", \"NaN:0x<16 hex digits>\" or null")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<F, E> {
            Ok(F(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<F, E> {
            Ok(F(v as f64))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<F, E> {
            Ok(F(v as f64))
        }
        fn visit_unit<E: de::Error>(self) -> Result<F, E> {
            // earlier versions wrote non-finite numbers as null
            Ok(F(f64::NAN))
        }
        fn visit_none<E: de::Error>(self) -> Result<F, E> {
            Ok(F(f64::NAN))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<F, E> {
            match v {
                "inf" => Ok(F(f64::INFINITY)),
                "-inf" => Ok(F(f64::NEG_INFINITY)),
                "NaN" => Ok(F(f64::NAN)),
                _ => v
                    .strip_prefix("NaN:0x")
                    .filter(|h| h.len() == 16)
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .map(f64::from_bits)
                    .filter(|x| x.is_nan())
                    .map(F)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self)),
            }
        }
    }

    impl<'de> Deserialize<'de> for F {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F, D::Error> {
            d.deserialize_any(FVisitor)
        }
    }

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        F(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        F::deserialize(d).map(|f| f.0)
    }

    pub mod vec {
        use super::*;
        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for &x in v {
                seq.serialize_element(&F(x))?;
            }
            seq.end()
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Ok(Vec::<F>::deserialize(d)?.into_iter().map(|f| f.0).collect())
        }
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(x) => F(*x).serialize(s),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            Ok(Option::<F>::deserialize(d)?.map(|f| f.0))
        }
    }
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
        let bench = flow.as_ref().and_then(|f| f.benchmark.as_ref());
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
            log_z_error: bench.and_then(|b| finite(b.log_z_error)),
            modes_covered: bench.and_then(|b| b.modes_covered),
            emc: bench.and_then(|b| b.emc.and_then(finite)),
            anneal_steps: None,
            wall_seconds,
        }
    }
}

/// Identity of a run across files: (β_i bits, t0 bits, seed).
pub type RunKey = (u64, u64, usize);

pub(super) fn key_of(line: &RunLine) -> RunKey {
    (line.beta_i.to_bits(), line.t0.to_bits(), line.seed)
}

/// The longest runs.jsonl line read (bytes): far above any run's line (a few hundred bytes
/// per mixture component), so that a damaged or foreign file cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// Reads runs.jsonl. A last line without its newline is torn (a write cut short by a kill):
/// it is dropped and, when `repair` is set, cut from the file. Any other line that is not a
/// run (malformed, or longer than [`MAX_LINE_BYTES`]) is an error naming its line number, as
/// is a path that is not a regular file (a device, a FIFO, a directory).
pub fn read_runs(path: &Path, repair: bool) -> Result<Vec<RunLine>> {
    Ok(read_runs_raw(path, repair)?
        .into_iter()
        .map(|(l, _)| l)
        .collect())
}

/// As [`read_runs`], with each run's line as written (without its newline), so that it can be
/// copied bit for bit.
pub fn read_runs_raw(path: &Path, repair: bool) -> Result<Vec<(RunLine, String)>> {
    use std::io::{BufRead, Read};
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{}: not a regular file; runs.jsonl must be a file written by annealvi",
            path.display()
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, "open", e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut lines = Vec::new();
    let mut good_len = 0u64;
    let mut buf = Vec::new();
    for number in 1.. {
        buf.clear();
        let n = reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, "read", e))?;
        if n == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            if n > MAX_LINE_BYTES {
                return Err(Error::Invalid(format!(
                    "{}: line {number} is longer than {MAX_LINE_BYTES} bytes; this is not a \
                     runs.jsonl written by annealvi",
                    path.display()
                )));
            }
            // a last line without its newline: torn, unless more follows (impossible here:
            // read_until stops only at a newline, the limit or the end)
            break;
        }
        let slice = &buf[..buf.len() - 1];
        if !slice.iter().all(|b| b.is_ascii_whitespace()) {
            match RunLine::from_json(slice) {
                Ok(l) => lines.push((l, String::from_utf8_lossy(slice).into_owned())),
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "{}: malformed line {number} (at byte {good_len}): {e}; every complete \
                         line of runs.jsonl must be a run — move the file away or remove the line",
                        path.display()
                    )));
                }
            }
        }
        good_len += n as u64;
    }
    if good_len < meta.len() && repair {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, "open", e))?;
        f.set_len(good_len)
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
