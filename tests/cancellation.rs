//! Cancellation flags of single runs and of the schedule design: a set flag stops the call
//! promptly; a flag never set changes nothing.

use annealvi::Error;
use annealvi::config::Config;
use annealvi::design::{
    Predictor, fastest_exponential, fastest_exponential_cancellable, simulate, simulate_cancellable,
};
use annealvi::family::VariationalFamily;
use annealvi::run::Trainer;
use annealvi::sweep::{GridConfig, SweepConfig};
use annealvi::train::Recorder;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn small(extra: &str) -> Config {
    Config::from_toml_str(&format!(
        "[target]\nd = 8\n[schedule]\nkind = \"exponential\"\nbeta_i = 0.1\nt0 = 100\n\
         [optim]\nsteps = 150\n[record]\nevery = 10\n{extra}"
    ))
    .unwrap()
}

#[test]
fn an_unset_flag_changes_nothing() {
    let off = AtomicBool::new(false);
    for extra in ["", "[objective]\nengine = \"statistics\"\n"] {
        let exp = small(extra).compile().unwrap();
        let (mut r1, mut r2) = (Recorder::default(), Recorder::default());
        let run = |t: Trainer| t.streams(1, 2).run().unwrap().into_mixture().unwrap();
        let (q1, a) = run(Trainer::new(&exp).observer(&mut r1));
        let (q2, b) = run(Trainer::new(&exp).observer(&mut r2).cancel(&off));
        assert_eq!(a, b);
        assert_eq!(q1.params(), q2.params());
        // (Debug: the last record's loss is NaN)
        assert_eq!(format!("{:?}", r1.records), format!("{:?}", r2.records));
        assert_eq!(r1.records.len(), 16);
    }
    let cfg = small("[student]\nfamily = \"realnvp\"\n[student.realnvp]\nlayers = 2\nwidth = 8\n");
    let exp = cfg.compile().unwrap();
    let (_, a) = Trainer::new(&exp).run().unwrap().into_flow().unwrap();
    let (_, b) = Trainer::new(&exp)
        .cancel(&off)
        .run()
        .unwrap()
        .into_flow()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_set_flag_stops_a_run() {
    let on = AtomicBool::new(true);
    let exp = small("").compile().unwrap();
    let mut rec = Recorder::default();
    let r = Trainer::new(&exp).observer(&mut rec).cancel(&on).run();
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    assert!(rec.records.is_empty());
    let flow = small("[student]\nfamily = \"realnvp\"\n")
        .compile()
        .unwrap();
    let r = Trainer::new(&flow).cancel(&on).run();
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    // set from another thread during a run of 10^8 steps (the most a configuration allows)
    let mut long = small("");
    long.optim.steps = 100_000_000;
    long.record.every = 0;
    let long = long.compile().unwrap();
    let flag = AtomicBool::new(false);
    let start = Instant::now();
    let res = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::Relaxed);
        });
        Trainer::new(&long).cancel(&flag).run()
    });
    assert!(matches!(res, Err(Error::Interrupted)), "{res:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

fn design_model() -> SweepConfig {
    let mut run = Config::default();
    run.target.d = 16;
    run.objective.samples = 8;
    run.student.sigma0 = annealvi::config::NumberOr::Name("schedule".into());
    SweepConfig {
        grid: GridConfig {
            extra_steps: 100,
            ..GridConfig::default()
        },
        run,
    }
}

#[test]
fn the_design_stops_on_its_flag() {
    let cfg = design_model();
    let pred = Predictor::from_sweep(&cfg, 50).unwrap();
    let betas = [0.01, 0.1];
    let on = AtomicBool::new(true);
    let off = AtomicBool::new(false);
    let r = fastest_exponential_cancellable(&pred, 0.3, &betas, (10.0, 1e4), &on);
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    let a = fastest_exponential(&pred, 0.3, &betas, (10.0, 1e4)).unwrap();
    let b = fastest_exponential_cancellable(&pred, 0.3, &betas, (10.0, 1e4), &off).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert!(simulate_cancellable(&cfg, 0.1, 50.0, 3, &on).is_none());
    assert_eq!(
        simulate(&cfg, 0.1, 50.0, 3),
        simulate_cancellable(&cfg, 0.1, 50.0, 3, &off).unwrap()
    );
}
