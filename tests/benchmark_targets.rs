//! The benchmark targets GMM40 and Many Well: log-densities and gradients against finite
//! differences, exact normalisers against direct integration, exact samplers against the
//! metrics, short flow runs from the command line, and the configuration's errors.

mod common;

use annealvi::config::Config;
use annealvi::run::Trainer;
use annealvi::seed::{Purpose, stream};
use annealvi::target::benchmark::{GMM40_MEANS, GMM40_SEED, gmm40, gmm40_draw};
use annealvi::target::{Benchmark, LogDensity, ManyWell};

/// Central differences of `p` at `x` against its gradient.
fn check_gradient(p: &dyn LogDensity, x: &[f64], tol: f64) {
    let mut g = vec![0.0; x.len()];
    let lp = p.grad_log_density(x, &mut g);
    assert!((lp - p.log_density(x)).abs() < 1e-12);
    for i in 0..x.len() {
        let h = 1e-5;
        let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
        xp[i] += h;
        xm[i] -= h;
        let fd = (p.log_density(&xp) - p.log_density(&xm)) / (2.0 * h);
        assert!(
            (g[i] - fd).abs() < tol * (1.0 + fd.abs()),
            "coordinate {i}: {} vs {fd}",
            g[i]
        );
    }
}

#[test]
fn log_densities_and_gradients_match_finite_differences() {
    let mw = ManyWell::new(32);
    for k in 0..5 {
        let x: Vec<f64> = (0..32)
            .map(|i| ((i * 5 + k * 11) as f64 * 0.61).sin() * 2.2)
            .collect();
        check_gradient(&mw, &x, 1e-6);
        // the sum of the copies' double wells
        let want: f64 = (0..16)
            .map(|c| {
                let (a, b) = (x[2 * c], x[2 * c + 1]);
                -a.powi(4) + 6.0 * a * a + 0.5 * a - 0.5 * b * b
            })
            .sum();
        assert!((mw.log_density(&x) - want).abs() < 1e-10);
    }
    let g = gmm40();
    for k in 0..5 {
        // near a mean, between two, and far out
        let m = GMM40_MEANS[k * 7];
        let x = [m[0] + 0.3 * k as f64, m[1] - 0.7];
        check_gradient(&g, &x, 1e-6);
        // the density by hand
        let want: f64 = GMM40_MEANS
            .iter()
            .map(|m| {
                let r2 = (x[0] - m[0]).powi(2) + (x[1] - m[1]).powi(2);
                (-0.5 * r2).exp() / (2.0 * std::f64::consts::PI) / 40.0
            })
            .sum();
        assert!((g.log_density(&x) - want.ln()).abs() < 1e-10);
    }
}

#[test]
fn many_well_normaliser_matches_a_direct_2d_integration_of_one_copy() {
    let mw = ManyWell::new(2);
    // Riemann sum on [−5, 5] × [−10, 10], step 0.01 (the integrand is smooth and negligible
    // at the edges, so the sum converges faster than any power of the step)
    let h = 0.01;
    let (nx, ny) = (1000, 2000);
    let mut sum = 0.0;
    let mut right = 0.0;
    for i in 0..=nx {
        let a = -5.0 + h * i as f64;
        for j in 0..=ny {
            let b = -10.0 + h * j as f64;
            let v = mw.log_density(&[a, b]).exp();
            sum += v;
            if a > 0.0 {
                right += v;
            } else if a == 0.0 {
                right += 0.5 * v;
            }
        }
    }
    let want = (sum * h * h).ln();
    assert!(
        (mw.log_z_copy() - want).abs() < 1e-9,
        "{} vs {want}",
        mw.log_z_copy()
    );
    assert!((mw.right_well_mass() - right / sum).abs() < 1e-9);
    assert_eq!(mw.log_normalizer(), Some(mw.log_z_copy()));
    // d = 32: sixteen copies; the literature's value 164.6957
    let m32 = ManyWell::new(32);
    assert!((m32.log_z() - 16.0 * mw.log_z_copy()).abs() < 1e-9);
    assert!((m32.log_z() - 164.6957).abs() < 1e-4, "{}", m32.log_z());
}

#[test]
fn gmm40_means_are_the_documented_draw_and_the_mixture_is_normalised() {
    let draw = gmm40_draw(GMM40_SEED);
    assert_eq!(draw.len(), 40);
    for (a, b) in draw.iter().zip(&GMM40_MEANS) {
        assert_eq!(a, b);
        assert!(b.iter().all(|v| v.abs() <= 40.0));
    }
    let g = gmm40();
    assert_eq!(g.dim(), 2);
    assert_eq!(g.log_normalizer(), Some(0.0));
    // ∫ π over [−50, 50]² by a Riemann sum of step 0.25 (exact to rounding for unit Gaussians)
    let h = 0.25;
    let n = 400;
    let mut sum = 0.0;
    for i in 0..=n {
        for j in 0..=n {
            let x = [-50.0 + h * i as f64, -50.0 + h * j as f64];
            sum += g.log_density(&x).exp();
        }
    }
    assert!((sum * h * h - 1.0).abs() < 1e-9, "{}", sum * h * h);
}

#[test]
fn exact_samples_give_full_coverage_exact_well_masses_and_unit_ess() {
    let mut rng = stream(11, 0, Purpose::Eval);
    let n = 20_000;

    let g = Benchmark::Gmm40(gmm40());
    let (x, lq) = g.sample_n(&mut rng, n);
    let m = g.metrics(&x, &lq);
    assert_eq!(m.modes, Some(40));
    assert_eq!(m.modes_covered, Some(40));
    assert!(m.emc.unwrap() > 0.97, "EMC {:?}", m.emc);
    assert!((m.reverse_ess - 1.0).abs() < 1e-12);
    assert!(m.log_z_error < 1e-12 && m.log_z == 0.0);
    assert!(m.kl.abs() < 1e-12);
    let masses = m.mode_masses.as_ref().unwrap();
    assert!((masses.iter().sum::<f64>() - 1.0).abs() < 1e-12);

    let mw = ManyWell::new(32);
    let want = mw.right_well_mass();
    let b = Benchmark::ManyWell(mw);
    let (x, lq) = b.sample_n(&mut rng, n);
    let m = b.metrics(&x, &lq);
    let se = (want * (1.0 - want) / n as f64).sqrt();
    let right = m.right_well_mass.as_ref().unwrap();
    assert_eq!(right.len(), 16);
    for (c, r) in right.iter().enumerate() {
        assert!((r - want).abs() < 4.5 * se, "copy {c}: {r} vs {want}");
    }
    assert_eq!(m.right_well_mass_target, Some(want));
    assert!(m.well_mass_error.unwrap() < 4.5 * se);
    assert!((m.reverse_ess - 1.0).abs() < 1e-12);
    assert!(m.log_z_error < 1e-9);
    // the second coordinates of the copies are standard normal
    let mean2: f64 = x.chunks_exact(32).map(|xi| xi[1]).sum::<f64>() / n as f64;
    let var2: f64 = x.chunks_exact(32).map(|xi| xi[1] * xi[1]).sum::<f64>() / n as f64;
    assert!(
        mean2.abs() < 0.04 && (var2 - 1.0).abs() < 0.06,
        "{mean2} {var2}"
    );

    // a q that misses half the modes: fewer modes covered, lower EMC, ln Z underestimated by
    // about ln 2; the reverse ESS only sees the missing modes through the overlap of close
    // means (p/q = 1/2 wherever a kept mode is isolated)
    let g = gmm40();
    let half = Benchmark::Gmm40(annealvi::target::IsotropicMixture::new(
        g.means()[..20].to_vec(),
        vec![1.0 / 20.0; 20],
        vec![1.0; 20],
    ));
    let (x, lq) = half.sample_n(&mut rng, 4000);
    let m = Benchmark::Gmm40(g).metrics(&x, &lq);
    assert!(m.modes_covered.unwrap() <= 24, "{:?}", m.modes_covered);
    assert!(m.emc.unwrap() < 0.85);
    assert!(
        m.reverse_ess > 0.2 && m.reverse_ess < 1.0,
        "{}",
        m.reverse_ess
    );
    assert!(m.log_z_estimate < 0.0);
    assert!(
        (m.log_z_error - 2f64.ln()).abs() < 0.15,
        "{}",
        m.log_z_error
    );
}

const FLOW: [&str; 10] = [
    "--set",
    "student.family=\"realnvp\"",
    "--set",
    "optim.kind=\"adam\"",
    "--set",
    "optim.lr=1e-3",
    "--set",
    "optim.steps=40",
    "--set",
    "student.realnvp.eval_samples=1000",
];

fn train(kind: &str, name: &str) -> (String, serde_json::Value) {
    let dir = common::tmp_dir("benchmark", name);
    let mut args = vec![
        "train".to_string(),
        "--set".into(),
        format!("target.kind=\"{kind}\""),
        "--set".into(),
        "record.every=20".into(),
        "--out".into(),
        dir.display().to_string(),
    ];
    args.extend(FLOW.iter().map(|s| s.to_string()));
    let o = common::annealvi(&args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (out, serde_json::from_str(&text).unwrap())
}

#[test]
fn a_short_flow_run_on_each_target_reports_the_metrics() {
    let (out, s) = train("many_well", "mw");
    assert!(
        out.contains("benchmark (1000 samples): reverse ESS"),
        "{out}"
    );
    assert!(out.contains("right-well mass error"), "{out}");
    let st = &s["result"]["stats"];
    let b = &st["benchmark"];
    assert_eq!(b["right_well_mass"].as_array().unwrap().len(), 16);
    assert!((b["log_z"].as_f64().unwrap() - 164.6957).abs() < 1e-4);
    for k in [
        "reverse_ess",
        "log_z_estimate",
        "log_z_error",
        "kl",
        "well_mass_error",
    ] {
        assert!(b[k].as_f64().unwrap().is_finite(), "{k}: {b}");
    }
    // the final evaluation's samples: the same ESS, the wells as modes
    assert_eq!(st["ess_fraction"], b["reverse_ess"]);
    assert_eq!(st["kl"], b["kl"]);
    assert_eq!(st["mode_masses"].as_array().unwrap().len(), 32);

    let (out, s) = train("gmm40", "gmm40");
    assert!(out.contains("modes covered"), "{out}");
    let st = &s["result"]["stats"];
    let b = &st["benchmark"];
    assert_eq!(b["modes"], 40);
    let covered = b["modes_covered"].as_u64().unwrap();
    assert!((1..=40).contains(&covered));
    let emc = b["emc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&emc));
    assert_eq!(st["ess_fraction"], b["reverse_ess"]);
    assert!(b["log_z_error"].as_f64().unwrap().is_finite());
}

#[test]
fn the_library_run_carries_the_metrics_and_is_reproducible() {
    let cfg = Config::from_toml_str(
        "[target]\nkind = \"many_well\"\nd = 4\n[student]\nfamily = \"realnvp\"\n\
         [student.realnvp]\neval_samples = 500\n[optim]\nkind = \"adam\"\nlr = 1e-3\nsteps = 30\n\
         [record]\nevery = 0",
    )
    .unwrap();
    let exp = cfg.compile().unwrap();
    let (_, a) = Trainer::new(&exp).run().unwrap().into_flow().unwrap();
    let (_, b) = Trainer::new(&exp).run().unwrap().into_flow().unwrap();
    assert_eq!(a, b);
    let m = a.stats.benchmark.as_ref().unwrap();
    assert_eq!(m.right_well_mass.as_ref().unwrap().len(), 2);
    assert_eq!(m.samples, 500);
    assert_eq!(a.stats.ess_fraction.to_bits(), m.reverse_ess.to_bits());
}

#[test]
fn bad_inputs_are_clear_errors() {
    let err = |text: &str| Config::from_toml_str(text).unwrap_err().to_string();
    let e = err("[target]\nkind = \"many_well\"\nd = 31\n[student]\nfamily = \"realnvp\"");
    assert!(e.contains("target.d") && e.contains("even"), "{e}");
    let e = err("[target]\nkind = \"gmm40\"\nd = 3");
    assert!(e.contains("target.d") && e.contains('2'), "{e}");
    let e = err("[target]\nkind = \"many_well\"");
    assert!(e.contains("student.family") && e.contains("realnvp"), "{e}");
    let e = err("[target]\nkind = \"gmm40\"\nmeans = [[1.0, 2.0]]");
    assert!(e.contains("target.means"), "{e}");
    // the defaults of d follow the kind
    let c = Config::from_toml_str("[target]\nkind = \"gmm40\"").unwrap();
    assert_eq!(c.target.d, 2);
    let c =
        Config::from_toml_str("[target]\nkind = \"many_well\"\n[student]\nfamily = \"realnvp\"")
            .unwrap();
    assert_eq!(c.target.d, 32);
    // from the command line
    let o = common::annealvi(&[
        "train",
        "--set",
        "target.kind=\"many_well\"",
        "--set",
        "target.d=7",
        "--set",
        "student.family=\"realnvp\"",
        "--out",
        "/nonexistent-never-written",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("target.d"));
}

#[test]
fn a_sweep_on_a_benchmark_target_reports_its_metrics_per_cell() {
    let dir = common::tmp_dir("benchmark", "sweep");
    let cfg = dir.join("sweep.toml");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out");
    std::fs::write(
        &cfg,
        "[grid]\nbeta_i = [0.1]\nt0 = [20]\nno_annealing = true\nseeds = 3\nextra_steps = 20\n\
         [run.target]\nkind = \"gmm40\"\n[run.student]\nfamily = \"realnvp\"\n\
         [run.student.realnvp]\neval_samples = 1000\n[run.optim]\nkind = \"adam\"\nlr = 1e-3\n",
    )
    .unwrap();
    let o = common::annealvi(&[
        "sweep",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runs = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let cells = std::fs::read_to_string(out.join("cells.csv")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut lines = cells.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{cells}");
    let runs: Vec<serde_json::Value> = runs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 6);
    for row in &rows {
        let (beta_i, t0) = (row[col("beta_i")], row[col("t0")]);
        let mine: Vec<&serde_json::Value> = runs
            .iter()
            .filter(|r| r["beta_i"].as_f64() == Some(beta_i) && r["t0"].as_f64() == Some(t0))
            .collect();
        assert_eq!(mine.len(), 3);
        for (column, key) in [
            ("mean_log_z_error", "log_z_error"),
            ("mean_modes_covered", "modes_covered"),
            ("mean_emc", "emc"),
            ("mean_ess_fraction", "ess_fraction"),
        ] {
            let mean = mine.iter().map(|r| r[key].as_f64().unwrap()).sum::<f64>() / 3.0;
            let got = row[col(column)];
            assert!(
                (got - mean).abs() <= 1e-12 * mean.abs().max(1.0),
                "{column}: {got} vs {mean}"
            );
        }
        let covered = row[col("mean_modes_covered")];
        assert!((1.0..=40.0).contains(&covered), "{covered}");
    }
}
