//! `merge`: sweep shards of one configuration combined into one directory, each run's line
//! copied byte for byte; either a new sweep (`--out`, built in a temporary directory and
//! renamed into place) or the runs not yet held added to an existing one (`--into`).

use super::{
    Cell, LOCK, META, RunKey, RunLine, RunPlan, Shard, SweepConfig, has_runs, key_of, lock_dir,
    meta_config, read_runs_raw, write_cells,
};
use crate::error::{Error, Result};
use crate::output;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What `merge` did.
#[derive(Clone, Debug, Default)]
pub struct MergeReport {
    /// Distinct runs in the merged sweep.
    pub runs: usize,
    /// Runs added by this merge: all of them for a new sweep, those not held before for
    /// [`merge_into`].
    pub added: usize,
    /// Things worth a warning: an incomplete shard set, shards of different counts N, a shard
    /// that lacks some of its runs, lines outside the grid (ignored), incomplete cells.
    pub warnings: Vec<String>,
    /// What was tidied up: temporaries left by an interrupted merge or write.
    pub notes: Vec<String>,
}

/// The shard "K/N" recorded in the first line of a sweep.toml, if any.
fn meta_shard(text: &str) -> Option<Shard> {
    let first = text.lines().next()?;
    Shard::parse(first.strip_prefix("# shard ")?).ok()
}

/// A run line as read: the run and its line as written (without its newline).
type Line = (RunLine, String);

/// The shard directories as read: their common configuration, their shards and their runs.
struct Shards {
    /// The configuration part of their sweep.toml.
    config: String,
    /// Each directory, its shard (if its sweep.toml records one) and its runs.
    dirs: Vec<(PathBuf, Option<Shard>, Vec<Line>)>,
}

fn read_shards(dirs: &[PathBuf]) -> Result<Shards> {
    if dirs.is_empty() {
        return Err(Error::Invalid(
            "merge needs at least one sweep directory".into(),
        ));
    }
    let mut config: Option<(String, PathBuf)> = None;
    let mut out = Vec::new();
    for d in dirs {
        let p = d.join(META);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read", e))?;
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
        let runs = read_runs_raw(&d.join("runs.jsonl"), false)?;
        out.push((d.clone(), meta_shard(&text), runs));
    }
    Ok(Shards {
        config: config.map(|c| c.0).unwrap_or_default(),
        dirs: out,
    })
}

/// Warnings about the shard set: a shard K/N missing, shards of different N.
fn shard_set_warnings(shards: &[Option<Shard>], warnings: &mut Vec<String>) {
    if !shards.iter().all(Option::is_some) {
        return;
    }
    let counts: BTreeSet<usize> = shards.iter().flatten().map(|s| s.count).collect();
    if counts.len() > 1 {
        warnings.push(format!(
            "the shards split the grid in different numbers of parts (N = {}): some runs may \
             be missing",
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

/// The grid of a sweep.toml's configuration: its cells and number of seeds. The configuration
/// is read without validation, so that a GPU sweep can be merged by a build without the GPU
/// engines.
struct Grid {
    cfg: SweepConfig,
    cells: Vec<Cell>,
    cell_keys: HashSet<(u64, u64)>,
}

impl Grid {
    fn of(config: &str) -> std::result::Result<Grid, String> {
        let cfg: SweepConfig = toml::from_str(config).map_err(|e| e.to_string())?;
        let cells = cfg.cells();
        let cell_keys = cells
            .iter()
            .map(|c| (c.beta_i.to_bits(), c.t0.to_bits()))
            .collect();
        Ok(Grid {
            cfg,
            cells,
            cell_keys,
        })
    }

    fn contains(&self, k: &RunKey) -> bool {
        k.2 < self.cfg.grid.seeds && self.cell_keys.contains(&(k.0, k.1))
    }

    /// The keys of the runs of `shard`.
    fn shard_keys(&self, shard: Shard) -> HashSet<RunKey> {
        RunPlan::new(&self.cfg, Some(shard), &HashSet::new())
            .mine
            .iter()
            .map(|r| {
                let c = self.cells[r.cell];
                (c.beta_i.to_bits(), c.t0.to_bits(), r.seed)
            })
            .collect()
    }
}

fn describe(l: &RunLine) -> String {
    format!("β_i = {}, t0 = {}, seed {}", l.beta_i, l.t0, l.seed)
}

/// Checks each directory's lines against the grid (lines outside it are dropped, with a
/// warning) and each shard against its share of the grid (a warning when some of its runs are
/// missing). Without a readable grid, nothing is dropped and a warning says so.
fn check_grid(grid: &Option<Grid>, shards: &mut Shards, warnings: &mut Vec<String>) {
    let Some(grid) = grid else {
        return;
    };
    let mut dropped = 0usize;
    let mut example: Option<String> = None;
    for (dir, shard, runs) in &mut shards.dirs {
        runs.retain(|(l, _)| {
            let keep = grid.contains(&key_of(l));
            if !keep {
                dropped += 1;
                example.get_or_insert_with(|| {
                    format!("{} in {}", describe(l), dir.join("runs.jsonl").display())
                });
            }
            keep
        });
        if let Some(sh) = shard {
            let want = grid.shard_keys(*sh);
            let have: HashSet<RunKey> = runs
                .iter()
                .map(|(l, _)| key_of(l))
                .filter(|k| want.contains(k))
                .collect();
            if have.len() < want.len() {
                warnings.push(format!(
                    "shard {}/{} ({}) holds {} of its {} runs: it is incomplete (interrupted, \
                     or its runs.jsonl was truncated); resume it with --shard {}/{} --resume \
                     and merge again",
                    sh.index,
                    sh.count,
                    dir.display(),
                    have.len(),
                    want.len(),
                    sh.index,
                    sh.count
                ));
            }
        }
        if torn(&dir.join("runs.jsonl")) {
            warnings.push(format!(
                "{} ends with a torn line (no newline: a sweep was killed while writing it); \
                 that line is left out",
                dir.join("runs.jsonl").display()
            ));
        }
    }
    if dropped > 0 {
        warnings.push(format!(
            "ignored {dropped} line{} whose run is not in the grid of the sweep's configuration \
             (a cell not in the grid, or a seed index ≥ grid.seeds = {}), e.g. {}",
            if dropped > 1 { "s" } else { "" },
            grid.cfg.grid.seeds,
            example.unwrap_or_default()
        ));
    }
}

/// Whether the file at `p` is not empty and does not end with a newline.
fn torn(p: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(p) else {
        return false;
    };
    let mut b = [0u8; 1];
    f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut b).is_ok() && b[0] != b'\n'
}

/// A warning for the grid's cells with fewer runs than `grid.seeds`, if any.
fn incomplete_cells(grid: &Option<Grid>, runs: &[&Line], warnings: &mut Vec<String>) {
    let Some(grid) = grid else {
        return;
    };
    let mut n: HashMap<(u64, u64), usize> = HashMap::new();
    for (l, _) in runs {
        *n.entry((l.beta_i.to_bits(), l.t0.to_bits())).or_default() += 1;
    }
    let seeds = grid.cfg.grid.seeds;
    let short: Vec<(Cell, usize)> = grid
        .cells
        .iter()
        .map(|c| {
            (
                *c,
                n.get(&(c.beta_i.to_bits(), c.t0.to_bits()))
                    .copied()
                    .unwrap_or(0),
            )
        })
        .filter(|(_, k)| *k < seeds)
        .collect();
    if short.is_empty() {
        return;
    }
    let shown: Vec<String> = short
        .iter()
        .take(4)
        .map(|(c, k)| format!("β_i = {}, t0 = {}: {k}", c.beta_i, c.t0))
        .collect();
    warnings.push(format!(
        "{} of {} cells have fewer than grid.seeds = {seeds} runs ({}{}): the merged sweep is \
         incomplete",
        short.len(),
        grid.cells.len(),
        shown.join("; "),
        if short.len() > shown.len() {
            "; …"
        } else {
            ""
        }
    ));
}

/// The lines in the order of a merged runs.jsonl: by (β_i, t0, seed).
fn sorted_text(lines: &mut [&Line]) -> String {
    lines.sort_by(|(a, _), (b, _)| {
        (a.beta_i, a.t0, a.seed)
            .partial_cmp(&(b.beta_i, b.t0, b.seed))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut text = String::new();
    for (_, raw) in lines.iter() {
        text.push_str(raw);
        text.push('\n');
    }
    text
}

/// The name of the temporary directory in which a merge into `name` is built: a hidden
/// sibling of the output directory, `.<name>.merging.<pid>`.
fn merging_prefix(name: &str) -> String {
    format!(".{name}.merging.")
}

/// Whether `name` is a temporary of [`output::write_text`] for one of a sweep's files
/// (`.runs.jsonl.tmp<pid>`, `.cells.csv.tmp<pid>`, `.sweep.toml.tmp<pid>`).
fn is_write_temporary(name: &str) -> bool {
    ["runs.jsonl", "cells.csv", META].iter().any(|f| {
        name.strip_prefix('.')
            .and_then(|n| n.strip_prefix(f))
            .and_then(|n| n.strip_prefix(".tmp"))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Removes what interrupted merges and writes left behind in and beside sweep directory
/// `dir`: temporary files of its runs.jsonl, cells.csv or sweep.toml inside it, and the
/// temporary directories `.<name>.merging.*` of merges into it, beside it (each only once its
/// own lock is free). Call it holding the lock of `dir`: every process that writes there holds
/// that lock, so the temporaries found are stale. Returns one note per thing removed.
pub(super) fn clean_stale(dir: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if is_write_temporary(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                if std::fs::remove_file(e.path()).is_ok() {
                    notes.push(format!(
                        "removed {} ({size} bytes), a temporary file left by an interrupted \
                         write",
                        e.path().display()
                    ));
                }
            }
        }
    }
    let Ok(abs) = std::fs::canonicalize(dir) else {
        return notes;
    };
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return notes;
    };
    let prefix = merging_prefix(&name.to_string_lossy());
    if let Ok(entries) = std::fs::read_dir(parent) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if !n.starts_with(&prefix) || !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            // a merge still building it holds its lock
            let Ok(_held) = lock_dir(&e.path()) else {
                continue;
            };
            if std::fs::remove_dir_all(e.path()).is_ok() {
                notes.push(format!(
                    "removed {}, the temporary directory of an interrupted merge",
                    e.path().display()
                ));
            }
        }
    }
    notes
}

/// Merges shard directories into a new sweep directory `out` (runs.jsonl sorted by cell and
/// seed, each line copied byte for byte; cells.csv; sweep.toml). Refuses shards whose
/// configurations differ and an `out` that already holds runs (see [`merge_into`] to add to
/// it); drops duplicate runs and lines whose run is not in the grid; warns when the shards do
/// not make a whole set (a shard K/N missing, shards of different N, a shard lacking some of
/// its runs) and when cells have fewer runs than the grid's seeds.
///
/// The sweep is built in a temporary directory beside `out` (`.<name>.merging.<pid>`), then
/// renamed onto `out` when `out` is absent or empty; when `out` holds other files, its three
/// files are renamed into it one by one, runs.jsonl last, so that an interrupted merge leaves
/// either no runs or the whole merge. Stale temporaries of earlier interrupted merges are
/// removed first ([`MergeReport::notes`]).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<MergeReport> {
    let holds_sweep = |d: &Path| has_runs(d);
    let refuse = |d: &Path| {
        Error::Invalid(format!(
            "{} already holds a sweep; merge --out writes a new sweep (choose another --out), \
             merge --into {} adds the shards' runs that it does not hold yet",
            d.display(),
            d.display()
        ))
    };
    // a cells.csv that no merge wrote (no sweep.toml beside it) is someone else's file
    let foreign = |d: &Path| {
        if d.join("cells.csv").exists() && !d.join(META).exists() {
            return Err(Error::Invalid(format!(
                "{} holds a cells.csv but no sweep.toml: it is not a sweep, and merge would \
                 overwrite that file; choose another --out",
                d.display()
            )));
        }
        Ok(())
    };
    if holds_sweep(out) {
        return Err(refuse(out));
    }
    foreign(out)?;
    let mut shards = read_shards(dirs)?;
    output::ensure_dir(out)?;
    let lock = lock_dir(out)?;
    // again under the lock; a sweep.toml without runs (a merge interrupted before its last
    // rename) holds nothing to protect and is replaced
    if holds_sweep(out) {
        return Err(refuse(out));
    }
    foreign(out)?;
    let notes = clean_stale(out);
    let abs = std::fs::canonicalize(out).map_err(|e| Error::io(out, "resolve", e))?;
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(Error::Invalid(format!(
            "{}: --out must name a directory with a parent",
            out.display()
        )));
    };
    let mut warnings = Vec::new();
    shard_set_warnings(
        &shards.dirs.iter().map(|d| d.1).collect::<Vec<_>>(),
        &mut warnings,
    );
    let grid = grid_or_warn(&shards.config, &mut warnings);
    check_grid(&grid, &mut shards, &mut warnings);
    let mut runs: BTreeMap<RunKey, &Line> = BTreeMap::new();
    for (_, _, lines) in &shards.dirs {
        for l in lines {
            runs.entry(key_of(&l.0)).or_insert(l);
        }
    }
    let mut lines: Vec<&Line> = runs.into_values().collect();
    incomplete_cells(&grid, &lines, &mut warnings);
    let text = sorted_text(&mut lines);
    let all: Vec<RunLine> = lines.iter().map(|(l, _)| l.clone()).collect();

    let tmp = parent.join(format!(
        "{}{}",
        merging_prefix(&name.to_string_lossy()),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, "create directory", e))?;
    let built = (|| {
        // held until the end: renamed onto `out`, it is the lock of `out`
        let tmp_lock = lock_dir(&tmp)?;
        write_cells(&tmp, &all)?;
        output::write_text(&tmp.join(META), &(shards.config.clone() + "\n"))?;
        output::write_text(&tmp.join("runs.jsonl"), &text)?;
        install(&tmp, &abs, out)?;
        Ok(tmp_lock)
    })();
    let _tmp_lock = match built {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    drop(lock);
    Ok(MergeReport {
        runs: all.len(),
        added: all.len(),
        warnings,
        notes,
    })
}

/// Moves the sweep built in `tmp` to `abs` (the resolved `out`): the whole directory in one
/// rename when `abs` holds nothing but its lock, else file by file, runs.jsonl last.
fn install(tmp: &Path, abs: &Path, out: &Path) -> Result<()> {
    let others = std::fs::read_dir(abs)
        .map_err(|e| Error::io(out, "read directory", e))?
        .flatten()
        .any(|e| e.file_name() != LOCK);
    // the lock of `out` goes: `tmp` has its own, held, which becomes `out`'s. A process that
    // opens `out`'s lock in between makes `out` non-empty and the rename fail. (Where a lock
    // file in use cannot be removed, Windows, the files are moved one by one.)
    if !others && std::fs::remove_file(abs.join(LOCK)).is_ok() {
        let renamed = std::fs::rename(tmp, abs).or_else(|e| {
            // where a directory cannot be renamed over an empty one (Windows)
            if std::fs::remove_dir(abs).is_ok() {
                std::fs::rename(tmp, abs)
            } else {
                Err(e)
            }
        });
        return renamed.map_err(|e| {
            Error::Invalid(format!(
                "cannot rename the merged sweep onto {}: {e} (did another process write into                  it meanwhile?); nothing was written there, merge again",
                out.display()
            ))
        });
    }
    // sweep.toml first: a cells.csv never stands without it (see `foreign` in `merge`)
    for f in [META, "cells.csv", "runs.jsonl"] {
        std::fs::rename(tmp.join(f), abs.join(f))
            .map_err(|e| Error::io(&abs.join(f), "rename", e))?;
    }
    let _ = std::fs::remove_dir_all(tmp);
    Ok(())
}

/// The grid of `config`, or `None` with a warning that lines cannot be checked against it.
fn grid_or_warn(config: &str, warnings: &mut Vec<String>) -> Option<Grid> {
    match Grid::of(config) {
        Ok(g) => Some(g),
        Err(e) => {
            warnings.push(format!(
                "cannot read the grid of the sweep's configuration ({e}); runs are not checked \
                 against it"
            ));
            None
        }
    }
}

/// Adds to the sweep in `into` the runs of the shard directories `dirs` that it does not hold
/// yet (by run key), each line copied byte for byte; rewrites its runs.jsonl (sorted by cell
/// and seed, through a temporary file renamed over it) and its cells.csv. `into` must hold a
/// sweep (sweep.toml, not a shard) of the shards' configuration; it is locked meanwhile.
/// Merging the same shards again adds nothing. Warnings as for [`merge`]; lines of `into`
/// outside the grid are dropped too.
pub fn merge_into(dirs: &[PathBuf], into: &Path) -> Result<MergeReport> {
    let meta_path = into.join(META);
    let meta = match std::fs::read_to_string(&meta_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(format!(
                "{} holds no sweep (no {META}); merge --into adds to an existing sweep: write a \
                 new one with --out",
                into.display()
            )));
        }
        Err(e) => return Err(Error::io(&meta_path, "read", e)),
    };
    if let Some(sh) = meta_shard(&meta) {
        return Err(Error::Invalid(format!(
            "{} is shard {}/{} of a sweep; merge --into adds to a whole sweep (merge the shards \
             into a new one with --out)",
            into.display(),
            sh.index,
            sh.count
        )));
    }
    let mut shards = read_shards(dirs)?;
    if meta_config(&meta) != shards.config {
        return Err(Error::Invalid(format!(
            "{} holds a sweep of another configuration than {}; refusing to merge",
            into.display(),
            dirs[0].display()
        )));
    }
    let _lock = lock_dir(into)?;
    let notes = clean_stale(into);
    let runs_path = into.join("runs.jsonl");
    let held = read_runs_raw(&runs_path, false)?;
    // (no check of the shard set: `into` may hold the other shards' runs already; the
    // check of the cells says what is missing)
    let mut warnings = Vec::new();
    let grid = grid_or_warn(&shards.config, &mut warnings);
    // `into`'s own runs first: they are kept as they are
    shards.dirs.insert(0, (into.to_path_buf(), None, held));
    check_grid(&grid, &mut shards, &mut warnings);
    let held_keys: HashSet<RunKey> = shards.dirs[0].2.iter().map(|(l, _)| key_of(l)).collect();
    let mut runs: BTreeMap<RunKey, &Line> = BTreeMap::new();
    for (_, _, lines) in &shards.dirs {
        for l in lines {
            runs.entry(key_of(&l.0)).or_insert(l);
        }
    }
    let added = runs.keys().filter(|k| !held_keys.contains(k)).count();
    let mut lines: Vec<&Line> = runs.into_values().collect();
    incomplete_cells(&grid, &lines, &mut warnings);
    let text = sorted_text(&mut lines);
    let all: Vec<RunLine> = lines.iter().map(|(l, _)| l.clone()).collect();
    let unchanged = std::fs::read(&runs_path).is_ok_and(|old| old == text.as_bytes());
    if !unchanged {
        output::write_text(&runs_path, &text)?;
    }
    write_cells(into, &all)?;
    Ok(MergeReport {
        runs: all.len(),
        added,
        warnings,
        notes,
    })
}
