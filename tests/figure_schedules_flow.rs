//! `annealvi figure schedules-flow`: on a tiny flow (d = 4, 2 couplings of width 8, a budget of
//! 12 steps, 3 runs per schedule) the study runs in seconds, writes sane rows, picks the pilot's
//! best β_i, gives the same numbers on 1 and 2 threads, and refuses bad specs by field.

use annealvi::figure::{FlowSchedulesSpec, figure_schedules_flow_with, rescale_shape};
use annealvi::sweep::SweepConfig;

const FLOW: &str = "\
[grid]
extra_steps = 20

[run]
seed = 5

[run.target]
d = 4
r = 3.0
w_star = 0.8
direction = \"diagonal\"

[run.student]
family = \"realnvp\"

[run.student.realnvp]
layers = 2
depth = 1
width = 8
sigma0 = \"schedule\"
scale_bound = 3.0
eval_samples = 200
collapse_threshold = 0.05

[run.objective]
estimator = \"full\"
samples = 16

[run.optim]
kind = \"adam\"
lr = 0.002
";

const SHAPE: [(f64, f64); 4] = [(0.0, 0.2), (0.5, 0.22), (0.9, 0.25), (1.0, 1.0)];

fn spec() -> FlowSchedulesSpec {
    FlowSchedulesSpec {
        budgets: vec![12.0],
        runs: 3,
        pilot_runs: 2,
        pilot_beta_i: vec![0.1, 0.4],
        gm_budget: 1000.0,
        segments: 3,
    }
}

#[test]
fn rescaled_shape_has_whole_increasing_steps_and_ends_at_one() {
    let k = rescale_shape(&SHAPE, 12.0);
    assert_eq!(k, vec![(0.0, 0.2), (6.0, 0.22), (11.0, 0.25), (12.0, 1.0)]);
    // a budget too short for every knot keeps the first and the end at β = 1
    let k = rescale_shape(&SHAPE, 1.0);
    assert_eq!(k, vec![(0.0, 0.2), (1.0, 1.0)]);
    assert!(
        rescale_shape(&SHAPE, 500.0)
            .windows(2)
            .all(|w| w[0].0 < w[1].0)
    );
}

#[test]
fn tiny_flow_study_writes_sane_rows_whatever_the_threads() {
    let cfg: SweepConfig = toml::from_str(FLOW).unwrap();
    cfg.validate().unwrap();
    let run = |threads: usize, tag: &str| {
        let out = std::env::temp_dir().join(format!(
            "annealvi-schedules-flow-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&out);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let rows = pool
            .install(|| figure_schedules_flow_with(&out, &cfg, &SHAPE, &spec()))
            .unwrap();
        let csv = std::fs::read_to_string(out.join("schedules_flow.csv")).unwrap();
        assert!(out.join("fig_schedules_flow.png").exists());
        assert!(out.join("schedules_flow_shape.csv").exists());
        let _ = std::fs::remove_dir_all(&out);
        (rows, csv)
    };
    let (rows, csv) = run(1, "a");
    // 2 shapes × 2 pilot β_i, then the 3 main schedules
    assert_eq!(rows.len(), 7, "{rows:?}");
    assert_eq!(csv.lines().count(), 8);
    let pilot: Vec<_> = rows.iter().filter(|r| r.pilot).collect();
    let main: Vec<_> = rows.iter().filter(|r| !r.pilot).collect();
    assert_eq!((pilot.len(), main.len()), (4, 3));
    assert!(pilot.iter().all(|r| r.n == 2 && r.collapsed <= 2));
    let shapes: Vec<&str> = main.iter().map(|r| r.shape).collect();
    assert_eq!(shapes, ["optimal_gm", "exponential", "linear_temperature"]);
    assert_eq!(main[0].beta0, 0.2);
    for r in &main {
        assert!(r.n == 3 && r.collapsed <= 3);
        assert!((0.0..=1.0).contains(&r.p()));
    }
    // each one-parameter shape runs the β_i with the fewest pilot collapses (first on ties)
    for m in &main[1..] {
        let mine: Vec<_> = pilot.iter().filter(|r| r.shape == m.shape).collect();
        let fewest = mine.iter().map(|r| r.collapsed).min().unwrap();
        let first = mine.iter().find(|r| r.collapsed == fewest).unwrap();
        assert_eq!(m.beta0, first.beta0, "{}", m.shape);
    }
    let fe = |a: &annealvi::figure::FlowScheduleRow, b: &annealvi::figure::FlowScheduleRow| {
        annealvi::metrics::fisher_exact(a.collapsed, a.n, b.collapsed, b.n)
    };
    assert_eq!(main[0].fisher_vs_exponential, Some(fe(main[0], main[1])));
    assert_eq!(main[0].fisher_vs_linear, Some(fe(main[0], main[2])));
    assert_eq!(main[1].fisher_vs_exponential, None);
    // the same numbers on two threads
    let (rows2, csv2) = run(2, "b");
    assert_eq!(rows, rows2);
    assert_eq!(csv, csv2);
}

#[test]
fn bad_specs_are_refused_by_field() {
    let cfg: SweepConfig = toml::from_str(FLOW).unwrap();
    let out = std::env::temp_dir().join(format!(
        "annealvi-schedules-flow-bad-{}",
        std::process::id()
    ));
    let bad = |s: FlowSchedulesSpec, shape: &[(f64, f64)], field: &str| {
        let e = figure_schedules_flow_with(&out, &cfg, shape, &s)
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{e}");
    };
    bad(
        FlowSchedulesSpec {
            budgets: vec![],
            ..spec()
        },
        &SHAPE,
        "budgets",
    );
    bad(FlowSchedulesSpec { runs: 0, ..spec() }, &SHAPE, "runs");
    bad(
        FlowSchedulesSpec {
            pilot_beta_i: vec![1.5],
            ..spec()
        },
        &SHAPE,
        "pilot_beta_i",
    );
    bad(spec(), &[(0.0, 0.2), (1.0, 0.5)], "shape");
    assert!(!out.exists());
}
