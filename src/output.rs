//! Writing results: output directories, trajectory and marginal CSV files, JSON summaries.
//!
//! CSV columns of `trajectory.csv`: `step,beta,loss,kl,neg_elbo`, then `m1..mK`, `q11,q12,…`
//! (k ≤ l), `sigma1..sigmaK`, `w1..wK`. `marginals.csv`: `step,beta,s,q,pi,pi_beta` (pi_beta
//! empty where not computable).

use crate::error::{Error, Result};
use crate::train::{MarginalSnapshot, Record, RunResult};
use std::fmt::Write as _;
use std::path::Path;

/// A number for a CSV file or a message: as `{}` prints it (shortest digits that read back
/// as the same f64), but in exponent form below 1e-5 or from 1e16 in magnitude, where `{}`
/// would print hundreds of zeros (5e-324, not 0.000…005).
pub fn num(v: f64) -> String {
    let a = v.abs();
    if v.is_finite() && a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Creates `dir` (and parents), with an error naming it when that fails.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: exists and is not a directory; give a directory path",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create directory", e))?;
    // probe writability now rather than after a long computation
    let probe = dir.join(".annealvi-write-test");
    std::fs::write(&probe, b"").map_err(|e| Error::io(dir, "write into directory", e))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Writes `text` to `path` atomically: into a temporary file beside it, then renamed over
/// `path`. A failed or interrupted write (full disk, SIGKILL) leaves `path` as it was (absent
/// or the previous complete version), never a truncated file; the temporary is removed on
/// failure.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        f.sync_data()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, "write", e));
    }
    Ok(())
}

/// The header of `trajectory.csv` for K components.
pub fn trajectory_header(k: usize) -> String {
    let mut h = String::from("step,beta,loss,kl,neg_elbo");
    for i in 1..=k {
        let _ = write!(h, ",m{i}");
    }
    for i in 1..=k {
        for j in i..=k {
            let _ = write!(h, ",q{i}{j}");
        }
    }
    for i in 1..=k {
        let _ = write!(h, ",sigma{i}");
    }
    for i in 1..=k {
        let _ = write!(h, ",w{i}");
    }
    h
}

/// One CSV row of a record (no newline).
pub fn trajectory_row(r: &Record) -> String {
    let mut s = format!("{},{},{},{},{}", r.step, r.beta, r.loss, r.kl, r.neg_elbo);
    for v in r
        .stats
        .m
        .iter()
        .chain(&r.stats.q)
        .chain(&r.stats.sigma)
        .chain(&r.stats.w)
    {
        let _ = write!(s, ",{v}");
    }
    s
}

/// The whole `trajectory.csv`.
pub fn trajectory_csv(k: usize, records: &[Record]) -> String {
    let mut s = trajectory_header(k);
    s.push('\n');
    for r in records {
        s.push_str(&trajectory_row(r));
        s.push('\n');
    }
    s
}

/// The whole `marginals.csv`.
pub fn marginals_csv(snaps: &[MarginalSnapshot]) -> String {
    let mut s = String::from("step,beta,s,q,pi,pi_beta\n");
    marginals_rows(&mut s, "", snaps);
    s
}

/// Appends the rows of `marginals.csv` to `out`, each starting with `prefix`.
pub fn marginals_rows(out: &mut String, prefix: &str, snaps: &[MarginalSnapshot]) {
    for m in snaps {
        for i in 0..m.s.len() {
            let pb = m
                .target_tempered
                .as_ref()
                .map(|v| v[i].to_string())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{prefix}{},{},{},{},{},{}",
                m.step, m.beta, m.s[i], m.q[i], m.target[i], pb
            );
        }
    }
}

/// The JSON summary of a run; `anneal_steps`: the step at which an adaptive schedule reached
/// β = 1 (written only when `Some`).
pub fn summary_json(
    res: &RunResult,
    seed: u64,
    wall_seconds: f64,
    final_kl: f64,
    anneal_steps: Option<usize>,
) -> String {
    let mut v = serde_json::to_value(res).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(map) = &mut v {
        let stats = map.remove("stats");
        if let Some(serde_json::Value::Object(st)) = stats {
            for (k, val) in st {
                map.insert(k, val);
            }
        }
        map.insert("seed".into(), seed.into());
        map.insert("wall_seconds".into(), json_num(wall_seconds));
        map.insert("kl".into(), json_num(final_kl));
        map.insert("light_mode_mass".into(), json_num(res.light_mode_mass));
        if let Some(step) = anneal_steps {
            map.insert("anneal_steps".into(), step.into());
        }
    }
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// A JSON number, or null for NaN/∞.
pub fn json_num(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}
