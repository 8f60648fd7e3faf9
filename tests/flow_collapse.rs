//! The RealNVP student collapses without annealing and a slow schedule prevents it, on the
//! quick Figure 4 preset (configs/fig4-quick.toml: d = 16, 4 couplings, width 32, Adam).
//!
//! Seeds are fixed, so the counts are deterministic; the assertions still leave a statistical
//! margin (a one-sided Fisher exact test at level 0.01, plus bounds on each count), so that a
//! change of random streams that keeps the physics passes, and a change that breaks it (no
//! collapse at β = 1, or annealing that does not help) fails.

use annealvi::figure::FIG4_QUICK;
use annealvi::sweep::{Axis, SweepConfig, SweepOptions, aggregate, read_runs, run_sweep};

/// One-sided Fisher exact p-value for "group A collapses more often than group B":
/// P(X ≥ a) under the hypergeometric law with margins (n_a, n_b, a + b).
fn fisher_one_sided(a: usize, n_a: usize, b: usize, n_b: usize) -> f64 {
    let ln_choose =
        |n: usize, k: usize| -> f64 { (1..=k).map(|i| ((n - k + i) as f64 / i as f64).ln()).sum() };
    let k = a + b;
    let n = n_a + n_b;
    let total = ln_choose(n, k);
    (a..=k.min(n_a))
        .filter(|&x| k - x <= n_b)
        .map(|x| (ln_choose(n_a, x) + ln_choose(n_b, k - x) - total).exp())
        .sum()
}

#[test]
fn fisher_test_is_right_on_known_tables() {
    // 8/8 vs 0/8: 1 / C(16, 8)
    assert!((fisher_one_sided(8, 8, 0, 8) - 1.0 / 12870.0).abs() < 1e-12);
    // equal groups give a large p
    assert!(fisher_one_sided(4, 8, 4, 8) > 0.5);
}

#[test]
fn annealing_prevents_the_flows_collapse() {
    let mut cfg: SweepConfig = toml::from_str(FIG4_QUICK).unwrap();
    cfg.grid.beta_i = Axis::List(vec![0.1]);
    cfg.grid.t0 = Axis::List(vec![1000.0]);
    cfg.grid.no_annealing = true;
    cfg.grid.seeds = 8;
    cfg.validate().unwrap();
    let out = std::env::temp_dir().join(format!("annealvi-flow-collapse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = SweepOptions {
        out: out.clone(),
        resume: false,
        shard: None,
        max_runs: None,
        budget: None,
    };
    run_sweep(&cfg, &opts).unwrap();
    let cells = aggregate(&read_runs(&out.join("runs.jsonl"), false).unwrap());
    let _ = std::fs::remove_dir_all(&out);
    let plain = cells.iter().find(|c| c.cell.t0 == 0.0).unwrap();
    let slow = cells.iter().find(|c| c.cell.t0 == 1000.0).unwrap();
    eprintln!(
        "no annealing: {}/{} collapsed (light mass {:.3}); beta_i = 0.1, t0 = 1000: {}/{} (light mass {:.3})",
        plain.collapsed,
        plain.n,
        plain.mean_light_mass,
        slow.collapsed,
        slow.n,
        slow.mean_light_mass
    );
    assert_eq!(plain.diverged + slow.diverged, 0);
    // no annealing collapses in a clearly non-zero fraction of runs
    assert!(plain.collapsed >= 5, "{plain:?}");
    // the slow schedule reduces it, significantly
    assert!(slow.collapsed <= 2, "{slow:?}");
    let p = fisher_one_sided(plain.collapsed, plain.n, slow.collapsed, slow.n);
    assert!(p < 0.01, "Fisher one-sided p = {p}");
    // covered flows put a sizeable mass on the light mode (true value 0.2)
    assert!(slow.mean_light_mass > 0.1, "{slow:?}");
    // flow metrics are present
    assert!(slow.mean_ess_fraction > 0.0 && slow.mean_ess_fraction <= 1.0);
    assert!(slow.mean_kl.is_finite() && plain.mean_mode_weight_error > 0.15);
}
