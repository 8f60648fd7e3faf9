//! `annealvi figure 4 --from DIR`: Figure 4 drawn from the runs of a RealNVP sweep that are
//! finished so far (a sweep built up in pieces, e.g. over several short GPU jobs).
//!
//! A cell is *finished* when all `grid.seeds` of its runs are in DIR/runs.jsonl; only finished
//! cells are coloured, unfinished ones are crossed out and the 0.5 isoline is drawn only along
//! β_i columns whose cells are all finished. The title states the fraction of runs done.

use super::{Grid, isoline_t0};
use crate::config::FamilyKind;
use crate::error::{Error, Result};
use crate::output;
use crate::plot::heatmap;
use crate::sweep::{
    Cell, CellStats, Device, RunLine, RunSpec, SweepConfig, aggregate, read_runs, write_cells,
};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

/// How much of a sweep is finished.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepProgress {
    /// Runs in DIR/runs.jsonl that belong to the grid (each counted once).
    pub runs_done: usize,
    /// Runs of the whole grid.
    pub runs_planned: usize,
    /// Training steps of the finished runs (their planned length).
    pub steps_done: u64,
    /// Training steps of the whole grid.
    pub steps_planned: u64,
    /// Cells with all their runs finished.
    pub cells_done: usize,
    /// Cells of the grid (the no-annealing cell included).
    pub cells_planned: usize,
}

impl SweepProgress {
    /// Finished runs / planned runs.
    pub fn fraction(&self) -> f64 {
        self.runs_done as f64 / self.runs_planned.max(1) as f64
    }
}

/// Reads DIR/sweep.toml (any engine: drawing needs none) and DIR/runs.jsonl.
fn load(dir: &Path) -> Result<(SweepConfig, Vec<RunLine>)> {
    let meta = dir.join("sweep.toml");
    let text = std::fs::read_to_string(&meta).map_err(|e| Error::io(&meta, "read", e))?;
    let mut cfg: SweepConfig = toml::from_str(&text).map_err(|e| Error::Parse {
        source_name: meta.display().to_string(),
        message: e.to_string(),
    })?;
    cfg.grid.device = Device::Cpu;
    cfg.validate()?;
    if cfg.run.student.family != FamilyKind::Realnvp {
        return Err(Error::config(
            "--from",
            dir.display(),
            "a sweep directory of a RealNVP student (run.student.family = \"realnvp\")",
        ));
    }
    Ok((cfg, read_runs(&dir.join("runs.jsonl"), false)?))
}

/// Figure 4 from the finished runs of the sweep in `dir`: `out/fig4.{png,svg}` (P(collapse)),
/// `out/fig4_light_mass.{png,svg}`, `out/cells.csv` (every cell with runs, finished or not) and
/// `out/progress.csv` (`beta_i,t0,done,planned` per cell of the grid). Returns the progress.
pub fn figure4_from(dir: &Path, out: &Path) -> Result<SweepProgress> {
    let (cfg, lines) = load(dir)?;
    let cells = cfg.cells();
    let seeds = cfg.grid.seeds;
    let index: BTreeMap<(u64, u64), usize> = cells
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.beta_i.to_bits(), c.t0.to_bits()), i))
        .collect();
    // the grid's runs, each once
    let mut seen = HashSet::new();
    let mut runs = Vec::new();
    let mut specs = Vec::new();
    for l in lines {
        if let Some(&cell) = index.get(&(l.beta_i.to_bits(), l.t0.to_bits()))
            && l.seed < seeds
            && seen.insert((cell, l.seed))
        {
            specs.push(RunSpec { cell, seed: l.seed });
            runs.push(l);
        }
    }
    let mut done = vec![0usize; cells.len()];
    for s in &specs {
        done[s.cell] += 1;
    }
    let finished = |c: &Cell| {
        index
            .get(&(c.beta_i.to_bits(), c.t0.to_bits()))
            .is_some_and(|&i| done[i] >= seeds)
    };
    let progress = SweepProgress {
        runs_done: runs.len(),
        runs_planned: cells.len() * seeds,
        steps_done: cfg.total_steps(&specs, &cells),
        steps_planned: cfg.total_steps(&cfg.runs(), &cells),
        cells_done: done.iter().filter(|&&n| n >= seeds).count(),
        cells_planned: cells.len(),
    };
    output::ensure_dir(out)?;
    let mut csv = String::from("beta_i,t0,done,planned\n");
    for (c, n) in cells.iter().zip(&done) {
        let _ = writeln!(csv, "{},{},{n},{seeds}", c.beta_i, c.t0);
    }
    output::write_text(&out.join("progress.csv"), &csv)?;
    write_cells(out, &runs)?;

    let stats: Vec<CellStats> = aggregate(&runs)
        .into_iter()
        .filter(|s| finished(&s.cell))
        .collect();
    let stat = |b: f64, t: f64| stats.iter().find(|s| s.cell.beta_i == b && s.cell.t0 == t);
    let grid = Grid::of(&cells);
    let (xs, ys) = (&grid.xs, &grid.ys);
    // a cross over each unfinished annealed cell (NaN points break the polyline)
    let step = |v: &[f64]| match v.len() {
        0 | 1 => 2.0,
        n => (v[n - 1] / v[0]).powf(1.0 / (n - 1) as f64),
    };
    let (hx, hy) = (step(xs).powf(0.3), step(ys).powf(0.3));
    let mut crosses = Vec::new();
    for c in cells.iter().filter(|c| c.t0 > 0.0 && !finished(c)) {
        let (b, t) = (c.beta_i, c.t0);
        crosses.extend([(b / hx, t / hy), (b * hx, t * hy), (f64::NAN, f64::NAN)]);
        crosses.extend([(b / hx, t * hy), (b * hx, t / hy), (f64::NAN, f64::NAN)]);
    }
    let mark = |v: &mut Vec<(String, Vec<(f64, f64)>)>| {
        if !crosses.is_empty() {
            v.push(("unfinished cell".into(), crosses.clone()));
        }
    };
    // the isoline only along columns that are complete
    let complete_cols: Vec<CellStats> = stats
        .iter()
        .filter(|s| {
            s.cell.t0 > 0.0
                && cells
                    .iter()
                    .filter(|c| c.t0 > 0.0 && c.beta_i == s.cell.beta_i)
                    .all(&finished)
        })
        .cloned()
        .collect();
    let d = cfg.run.target.d;
    let head = format!(
        "RealNVP, d = {d}, {seeds} runs/cell: {}/{} runs done ({:.0}%)",
        progress.runs_done,
        progress.runs_planned,
        100.0 * progress.fraction()
    );
    let no_anneal = match cells.iter().find(|c| c.t0 == 0.0) {
        Some(c) => match stat(c.beta_i, c.t0) {
            Some(s) => format!("; no annealing: {:.2}", s.p_collapse()),
            None => "; no annealing: unfinished".into(),
        },
        None => String::new(),
    };
    let iso = isoline_t0(&complete_cols, 0.5);
    let mut isolines = Vec::new();
    if !iso.is_empty() {
        isolines.push(("P = 0.5 (RealNVP runs)".to_string(), iso));
    }
    mark(&mut isolines);
    let hm = grid.heatmap(
        format!("{head}{no_anneal}"),
        "Adam steps",
        grid.values(&stats, |s| s.p_collapse()),
        isolines,
    );
    heatmap(&hm, out, "fig4")?;
    let light = 1.0 - cfg.run.target.w_star;
    let mut isolines = Vec::new();
    mark(&mut isolines);
    let hm = grid.heatmap(
        format!("{head}: mean light-mode mass / (1 − w*)"),
        "Adam steps",
        grid.values(&stats, |s| s.mean_light_mass / light),
        isolines,
    );
    heatmap(&hm, out, "fig4_light_mass")?;
    Ok(progress)
}
