//! Progress of long jobs (sweeps, theory grids, SGD checks, figures), reported through hooks
//! the program installs: the library itself draws and prints nothing. [`bar`] returns a
//! [`Bar`] that forwards to the installed reporter, and [`note`] passes a one-line message
//! (e.g. "wrote fig2.png") to the installed notifier; both do nothing when none is installed
//! (a library user, the Python package). With the feature `progress`, [`terminal::install`]
//! installs indicatif bars with an ETA and prints notes on stdout (the `annealvi` program
//! does, at start).

use std::sync::OnceLock;

/// One progress report of `len` units of work (a bar, a log line, a callback).
pub trait Report: Send + Sync {
    /// `n` more units done.
    fn inc(&self, n: u64);
    /// The work is over: remove the report.
    fn finish(&self);
}

/// Makes a report for `len` units of work labelled `msg`.
pub type Reporter = fn(len: u64, msg: &str) -> Box<dyn Report>;

static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// Installs the process's reporter (once; returns false if one was installed already).
pub fn set_reporter(r: Reporter) -> bool {
    REPORTER.set(r).is_ok()
}

/// A progress report over some units of work, or nothing.
pub struct Bar(Option<Box<dyn Report>>);

impl Bar {
    /// `n` more units done.
    pub fn inc(&self, n: u64) {
        if let Some(r) = &self.0 {
            r.inc(n);
        }
    }
    /// The work is over.
    pub fn finish_and_clear(&self) {
        if let Some(r) = &self.0 {
            r.finish();
        }
    }
}

/// A progress report over `len` units of work labelled `msg`, through the installed reporter.
pub fn bar(len: u64, msg: &str) -> Bar {
    Bar(REPORTER.get().map(|r| r(len, msg)))
}

/// Receives the one-line messages of long jobs (what was written, what a stage found).
pub type Notifier = fn(msg: &str);

static NOTIFIER: OnceLock<Notifier> = OnceLock::new();

/// Installs the process's notifier (once; returns false if one was installed already).
pub fn set_notifier(n: Notifier) -> bool {
    NOTIFIER.set(n).is_ok()
}

/// Passes `msg` to the installed notifier, if any.
pub fn note(msg: &str) {
    if let Some(n) = NOTIFIER.get() {
        n(msg);
    }
}

/// Terminal progress bars (indicatif): shown on a terminal, silent when stderr is not a TTY
/// or when the `CI` environment variable is set.
#[cfg(feature = "progress")]
pub mod terminal {
    use super::Report;
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;

    struct Terminal(ProgressBar);

    impl Report for Terminal {
        fn inc(&self, n: u64) {
            self.0.inc(n);
        }
        fn finish(&self) {
            self.0.finish_and_clear();
        }
    }

    fn make(len: u64, msg: &str) -> Box<dyn Report> {
        let pb = ProgressBar::new(len);
        if !enabled() {
            pb.set_draw_target(ProgressDrawTarget::hidden());
        }
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:30}] {pos}/{len} ({elapsed} elapsed, ETA {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(msg.to_string());
        Box::new(Terminal(pb))
    }

    fn print(msg: &str) {
        println!("{msg}");
    }

    /// Installs terminal bars as the process's reporter, and printing on stdout as its
    /// notifier.
    pub fn install() {
        super::set_reporter(make);
        super::set_notifier(print);
    }

    /// Whether bars are drawn.
    pub fn enabled() -> bool {
        std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
    }
}
