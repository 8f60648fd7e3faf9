//! `annealvi figure schedules`: on a tiny model (d = 32, budgets 100 and 200, 20 paired seeds)
//! the study runs in seconds and writes one sane CSV row per budget and shape, and McNemar's
//! exact p-value is right on known cases.

use annealvi::figure::{SCHEDULE_SHAPES, SchedulesSpec, figure_schedules_with};
use annealvi::metrics::mcnemar_exact;
use annealvi::sweep::SweepConfig;

const MODEL: &str = "\
[grid]
extra_steps = 100

[run]
seed = 11

[run.target]
d = 32
r = 3.0
w_star = 0.8

[run.student]
sigma0 = \"schedule\"

[run.objective]
engine = \"statistics\"
estimator = \"full\"
samples = 32

[run.optim]
lr = 0.05
";

#[test]
fn mcnemar_exact_p_values() {
    // no discordant pair, or as many each way: no evidence
    assert_eq!(mcnemar_exact(0, 0), 1.0);
    assert_eq!(mcnemar_exact(4, 4), 1.0);
    // 0 vs 9: 2 · 2⁻⁹
    assert!((mcnemar_exact(0, 9) - 2.0 / 512.0).abs() < 1e-15);
    // 1 vs 9: 2 · (1 + 10) / 2¹⁰, symmetric in its arguments
    assert!((mcnemar_exact(1, 9) - 22.0 / 1024.0).abs() < 1e-15);
    assert_eq!(mcnemar_exact(9, 1), mcnemar_exact(1, 9));
    // 2 vs 8: 2 · (1 + 10 + 45) / 1024
    assert!((mcnemar_exact(2, 8) - 112.0 / 1024.0).abs() < 1e-15);
    // 30 vs 10 (2 · Σ_{i ≤ 10} C(40, i) / 2⁴⁰ = 0.0022214...)
    assert!((mcnemar_exact(30, 10) - 0.002_221_433_773_229_364).abs() < 1e-12);
    // many pairs: no overflow, a p-value in [0, 1]
    let p = mcnemar_exact(600, 500);
    assert!(p > 0.0 && p < 0.01, "{p}");
    assert!((0.0..1e-300).contains(&mcnemar_exact(0, 1100)));
}

#[test]
fn tiny_study_writes_sane_rows() {
    let out = std::env::temp_dir().join(format!("annealvi-schedules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let cfg: SweepConfig = toml::from_str(MODEL).unwrap();
    cfg.validate().unwrap();
    let spec = SchedulesSpec {
        budgets: vec![100.0, 200.0],
        seeds: 20,
        ics: 300,
        segments: 3,
    };
    let start = std::time::Instant::now();
    let rows = figure_schedules_with(&out, &cfg, &spec).unwrap();
    assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    assert_eq!(rows.len(), 6);
    let csv = std::fs::read_to_string(out.join("schedules.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        head[..10],
        [
            "T",
            "shape",
            "beta0",
            "p_pred",
            "n",
            "collapsed",
            "p_sgd",
            "ci_low",
            "ci_high",
            "only_this"
        ]
    );
    let col = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let body: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert_eq!(body.len(), 6);
    for (i, r) in body.iter().enumerate() {
        let f = |name: &str| r[col(name)].parse::<f64>().unwrap();
        assert_eq!(f("T"), spec.budgets[i / 3]);
        assert_eq!(r[col("shape")], SCHEDULE_SHAPES[i % 3]);
        assert_eq!(f("n"), 20.0);
        let (p, lo, hi) = (f("p_sgd"), f("ci_low"), f("ci_high"));
        assert!(
            (0.0..=1.0).contains(&p) && lo <= p && p <= hi && hi <= 1.0,
            "{r:?}"
        );
        assert!((0.0..=1.0).contains(&f("p_pred")), "{r:?}");
        assert!(f("beta0") > 0.0 && f("beta0") < 1.0, "{r:?}");
        assert_eq!(f("collapsed") / 20.0, p);
        let m = &r[col("mcnemar_p")];
        if r[col("shape")] == "exponential" {
            assert!(m.is_empty());
            assert_eq!((f("only_this"), f("only_exponential")), (0.0, 0.0));
        } else {
            let m: f64 = m.parse().unwrap();
            assert!((0.0..=1.0).contains(&m));
        }
    }
    for f in [
        "schedules_knots.csv",
        "fig_schedules.png",
        "fig_schedules.svg",
        "fig_schedules_beta.png",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
