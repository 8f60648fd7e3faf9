//! `annealvi figure adaptive`: a tiny study (the four kinds of problem at toy sizes: the
//! statistics engine with the optimal schedule, a bimodal flow, GMM40 and Many Well with small
//! flows, budgets of tens of steps) runs in seconds, writes one CSV row per problem, budget and
//! schedule with sane values, picks each schedule's β_i on the pilot, gives the same numbers on
//! 1 and 2 threads, and refuses bad specs by field.

use annealvi::figure::{
    ADAPTIVE_CSV_HEADER, AdaptiveProblem, AdaptiveSpec, Headline, figure_adaptive,
    figure_adaptive_with,
};
use annealvi::sweep::SweepConfig;

const GM: &str = "\
[grid]
extra_steps = 20
[run]
seed = 3
[run.target]
d = 32
r = 3.0
w_star = 0.8
[run.student]
simulation = \"statistics\"
sigma0 = \"schedule\"
[run.objective]
samples = 8
[run.optim]
lr = 0.05
[run.schedule]
every = 5
samples = 16
[run.record]
every = 0
";

const FLOW: &str = "\
[grid]
extra_steps = 10
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
[run.objective]
samples = 16
[run.optim]
kind = \"adam\"
lr = 0.002
[run.schedule]
every = 5
samples = 16
[run.record]
every = 0
";

fn benchmark(kind: &str, d: usize) -> SweepConfig {
    let text = FLOW
        .replace(
            "d = 4\nr = 3.0\nw_star = 0.8\ndirection = \"diagonal\"",
            &format!("kind = \"{kind}\"\nd = {d}"),
        )
        .replace("lr = 0.002", "lr = 0.001");
    toml::from_str(&text).unwrap()
}

fn problem(name: &str, config: SweepConfig, headline: Headline, optimal: bool) -> AdaptiveProblem {
    AdaptiveProblem {
        name: name.into(),
        title: name.into(),
        config,
        budgets: vec![30.0],
        seeds: 4,
        pilot_seeds: 2,
        beta_i: vec![0.1, 0.3],
        headline,
        optimal,
    }
}

fn spec() -> AdaptiveSpec {
    let mut gm = problem("gm", toml::from_str(GM).unwrap(), Headline::Collapse, true);
    gm.budgets = vec![30.0, 60.0];
    gm.seeds = 8;
    AdaptiveSpec {
        problems: vec![
            gm,
            problem(
                "flow",
                toml::from_str(FLOW).unwrap(),
                Headline::Collapse,
                false,
            ),
            problem(
                "gmm40",
                benchmark("gmm40", 2),
                Headline::ModesCovered,
                false,
            ),
            problem(
                "many_well",
                benchmark("many_well", 4),
                Headline::LogZError,
                false,
            ),
        ],
        segments: 2,
        ics: 200,
    }
}

fn temp(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("annealvi-adaptive-{tag}-{}", std::process::id()))
}

/// The CSV without its wall-time columns (the last three), which differ between runs.
fn without_times(csv: &str) -> String {
    csv.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            f[..f.len() - 3].join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn tiny_study_writes_sane_rows_whatever_the_threads() {
    let spec = spec();
    let run = |threads: usize, tag: &str| {
        let out = temp(tag);
        let _ = std::fs::remove_dir_all(&out);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let rep = pool.install(|| figure_adaptive_with(&out, &spec)).unwrap();
        let csv = std::fs::read_to_string(out.join("adaptive.csv")).unwrap();
        let pilot = std::fs::read_to_string(out.join("adaptive_pilot.csv")).unwrap();
        assert!(out.join("fig_adaptive.png").exists());
        assert!(out.join("fig_adaptive.svg").exists());
        let _ = std::fs::remove_dir_all(&out);
        (rep, csv, pilot)
    };
    let (rep, csv, pilot) = run(1, "a");
    // rows: gm 2 budgets × 5 schedules (with the optimal), the others 1 budget × 4
    assert_eq!(rep.rows.len(), 10 + 3 * 4);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], ADAPTIVE_CSV_HEADER);
    assert_eq!(lines.len(), 1 + rep.rows.len());
    let columns = ADAPTIVE_CSV_HEADER.split(',').count();
    assert!(lines.iter().all(|l| l.split(',').count() == columns));
    // pilot: 5 budgets in all × 3 schedules × 2 β_i, one chosen per (problem, budget, schedule)
    assert_eq!(rep.pilot.len(), 5 * 3 * 2);
    assert_eq!(pilot.lines().count(), 1 + rep.pilot.len());
    for r in &rep.rows {
        let expected: &[&str] = if r.problem == "gm" {
            &[
                "none",
                "exponential",
                "linear_temperature",
                "adaptive",
                "optimal",
            ]
        } else {
            &["none", "exponential", "linear_temperature", "adaptive"]
        };
        assert!(expected.contains(&r.schedule), "{r:?}");
        assert!(
            r.low <= r.value && r.value <= r.high || r.low.is_nan(),
            "{r:?}"
        );
        assert_eq!(r.p_vs_exponential.is_none(), r.schedule == "exponential");
        if let Some(p) = r.p_vs_exponential {
            assert!((0.0..=1.0).contains(&p), "{r:?}");
        }
        assert_eq!(
            r.steps,
            r.budget as usize + if r.problem == "gm" { 20 } else { 10 }
        );
        match r.headline {
            Headline::Collapse => {
                assert!((0.0..=1.0).contains(&r.value));
                assert!(r.better + r.worse <= r.n);
            }
            Headline::ModesCovered => {
                assert!((0.0..=40.0).contains(&r.value), "{r:?}");
                assert!(r.emc.0 >= 0.0 && r.emc.0 <= 1.0, "{r:?}");
                assert!(r.log_z_error.0 >= 0.0);
            }
            Headline::LogZError => {
                assert!(r.value >= 0.0 && r.wells_covered >= 1.0 && r.wells_covered <= 4.0);
            }
        }
        // adaptive costs B/k = 16/5 extra evaluations per step and reaches β = 1 by the budget
        if r.schedule == "adaptive" {
            assert_eq!(r.extra_evals_per_step, 16.0 / 5.0);
            assert!(r.beta_one_median.unwrap() <= r.budget);
            assert!(r.pilot_time_vs_exponential.unwrap() > 0.0);
        } else {
            assert_eq!(r.extra_evals_per_step, 0.0);
            assert!(r.beta_one_median.is_none());
        }
        // a piloted schedule runs the β_i its pilot chose
        if let Some(c) = rep.pilot.iter().find(|c| {
            c.problem == r.problem && c.budget == r.budget && c.schedule == r.schedule && c.chosen
        }) {
            assert_eq!(c.beta_i, r.beta0);
            let mine: Vec<_> = rep
                .pilot
                .iter()
                .filter(|d| {
                    d.problem == r.problem && d.budget == r.budget && d.schedule == r.schedule
                })
                .collect();
            assert_eq!(mine.iter().filter(|d| d.chosen).count(), 1);
            let lower = r.headline != Headline::ModesCovered;
            assert!(mine.iter().all(|d| if lower {
                d.score >= c.score
            } else {
                d.score <= c.score
            }));
        }
    }
    // the same numbers on two threads
    let (rep2, csv2, _) = run(2, "b");
    assert_eq!(without_times(&csv), without_times(&csv2));
    for (a, b) in rep.rows.iter().zip(&rep2.rows) {
        assert_eq!((a.value, a.p_vs_exponential), (b.value, b.p_vs_exponential));
    }
}

#[test]
fn bad_specs_are_refused_by_field() {
    let out = temp("bad");
    let bad = |s: AdaptiveSpec, field: &str| {
        let e = figure_adaptive_with(&out, &s).unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    };
    let mut s = spec();
    s.problems[1].seeds = 0;
    bad(s, "flow.seeds");
    let mut s = spec();
    s.problems[0].budgets = vec![];
    bad(s, "gm.budgets");
    let mut s = spec();
    s.problems[2].beta_i = vec![0.1, 1.5];
    bad(s, "gmm40.beta_i");
    let mut s = spec();
    s.problems[1].optimal = true;
    bad(s, "flow.optimal");
    let mut s = spec();
    s.ics = 0;
    bad(s, "ics");
    bad(
        AdaptiveSpec {
            problems: vec![],
            segments: 2,
            ics: 200,
        },
        "problems",
    );
    // --seeds 0: refused before anything is written
    let e = figure_adaptive(&out, true, Some(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--seeds") && e.contains("at least 1"), "{e}");
    assert!(!out.exists());
}
