//! `merge`: sweep shards of one configuration combined into one directory, each run's line
//! copied byte for byte.

use super::{
    META, RunKey, RunLine, Shard, has_runs, key_of, lock_dir, meta_config, read_runs_raw,
    write_cells,
};
use crate::error::{Error, Result};
use crate::output;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// What `merge` did.
#[derive(Clone, Debug, Default)]
pub struct MergeReport {
    /// Distinct runs written.
    pub runs: usize,
    /// Things worth a warning: an incomplete shard set, shards of different counts N.
    pub warnings: Vec<String>,
}

/// The shard "K/N" recorded in the first line of a sweep.toml, if any.
fn meta_shard(text: &str) -> Option<Shard> {
    let first = text.lines().next()?;
    Shard::parse(first.strip_prefix("# shard ")?).ok()
}

/// Merges shard directories into `out` (runs.jsonl sorted by cell and seed, each line copied
/// byte for byte; cells.csv; sweep.toml). Refuses shards whose configurations differ and an
/// `out` that already holds a sweep; drops duplicate runs; warns when the shards do not make a
/// whole set (a shard K/N missing, or shards of different N).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<MergeReport> {
    if dirs.is_empty() {
        return Err(Error::Invalid(
            "merge needs at least one sweep directory".into(),
        ));
    }
    if out.join(META).exists() || has_runs(out) {
        return Err(Error::Invalid(format!(
            "{} already holds a sweep; merge writes into a new or empty directory (choose \
             another --out)",
            out.display()
        )));
    }
    let mut config: Option<(String, PathBuf)> = None;
    let mut runs: BTreeMap<RunKey, (RunLine, String)> = BTreeMap::new();
    let mut shards: Vec<Option<Shard>> = Vec::new();
    for d in dirs {
        let p = d.join(META);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read", e))?;
        shards.push(meta_shard(&text));
        let c = meta_config(&text);
        match &config {
            None => config = Some((c, d.clone())),
            Some((first, fd)) if *first != c => {
                return Err(Error::Invalid(format!(
                    "{} and {} are sweeps of different configurations; refusing to merge",
                    fd.display(),
                    d.display()
                )));
            }
            _ => {}
        }
        for r in read_runs_raw(&d.join("runs.jsonl"), false)? {
            runs.entry(key_of(&r.0)).or_insert(r);
        }
    }
    let mut warnings = Vec::new();
    if shards.iter().all(Option::is_some) {
        let counts: std::collections::BTreeSet<usize> =
            shards.iter().flatten().map(|s| s.count).collect();
        if counts.len() > 1 {
            warnings.push(format!(
                "the shards split the grid in different numbers of parts (N = {}): some runs \
                 may be missing",
                counts
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else if let Some(&n) = counts.iter().next() {
            let have: HashSet<usize> = shards.iter().flatten().map(|s| s.index).collect();
            let missing: Vec<String> = (1..=n)
                .filter(|k| !have.contains(k))
                .map(|k| format!("{k}/{n}"))
                .collect();
            if !missing.is_empty() {
                warnings.push(format!(
                    "incomplete shard set: shard{} {} not given; the merged sweep lacks their runs",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", ")
                ));
            }
        }
    }
    output::ensure_dir(out)?;
    let _lock = lock_dir(out)?;
    let (cfg_text, _) = config.unwrap_or_default();
    let mut lines: Vec<&(RunLine, String)> = runs.values().collect();
    lines.sort_by(|(a, _), (b, _)| {
        (a.beta_i, a.t0, a.seed)
            .partial_cmp(&(b.beta_i, b.t0, b.seed))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut text = String::new();
    for (_, raw) in &lines {
        text.push_str(raw);
        text.push('\n');
    }
    output::write_text(&out.join("runs.jsonl"), &text)?;
    let all: Vec<RunLine> = lines.into_iter().map(|(l, _)| l.clone()).collect();
    write_cells(out, &all)?;
    // last: a directory with sweep.toml is a finished merge
    output::write_text(&out.join(META), &(cfg_text + "\n"))?;
    Ok(MergeReport {
        runs: all.len(),
        warnings,
    })
}
