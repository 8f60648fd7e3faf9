//! The library's layers, kept honest: every module of src/ belongs to one layer, may use only
//! modules of its own layer or of the layers below, and the module graph has no cycle.
//!
//! | layer | modules |
//! |---|---|
//! | core | error, progress, check, seed, quadrature, gauss1d, target, normal, family (gmm, realnvp, realnvp_gpu), metrics, optim, objective, schedule, train, statistics |
//! | experiment | config, run (a configuration compiled into an experiment, and the driver of its runs) |
//! | study | output, sweep, theory, design, bench |
//! | plot | plot (generic charts) |
//! | figure | figure (the paper's figures: study + plot) |
//!
//! The command-line program (src/main.rs and its modules in src/cli/) sits on top: it may use
//! every layer, through the library's public paths (`annealvi::…`) only. `prelude` re-exports
//! from every layer (it is exempt). Uses are read from the source text: every `crate::<module>` outside a
//! comment counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "error",
            "progress",
            "check",
            "seed",
            "quadrature",
            "gauss1d",
            "target",
            "normal",
            "family",
            "family::gmm",
            "family::realnvp",
            "family::realnvp_gpu",
            "metrics",
            "optim",
            "objective",
            "schedule",
            "train",
            "statistics",
        ],
    ),
    ("experiment", &["config", "run"]),
    ("study", &["output", "sweep", "theory", "design", "bench"]),
    ("plot", &["plot"]),
    ("figure", &["figure"]),
];

/// Known violations, each to be removed (not added to). None today.
const KNOWN: &[(&str, &str)] = &[];

/// The command-line program: src/main.rs and the binary-private modules it declares (src/cli/).
const PROGRAM: &[&str] = &["main", "cli"];

/// Files exempt from the layer rules (the crate root, the re-exporting prelude and the program).
const EXEMPT: &[&str] = &["lib", "main", "prelude", "cli"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file belongs to: its first path component under src/, or `family::<name>`
/// for the student families.
fn module_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts[0] == "family" && parts.len() > 1 && parts[1] != "mod" {
        return format!("family::{}", parts[1]);
    }
    parts[0].clone()
}

/// The modules named by `crate::…` in the code (not the comments) of `text`.
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let after = &rest[name.len()..];
            if name == "family"
                && let Some(sub) = after.strip_prefix("::")
            {
                let sub: String = sub
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if ["gmm", "realnvp", "realnvp_gpu"].contains(&sub.as_str()) {
                    out.insert(format!("family::{sub}"));
                    continue;
                }
            }
            if !name.is_empty() && name.chars().next().unwrap().is_ascii_lowercase() {
                out.insert(name);
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let m = module_of(rel);
        if EXEMPT.contains(&m.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let entry = g.entry(m.clone()).or_default();
        for u in uses(&text) {
            if u != m {
                entry.insert(u);
            }
        }
    }
    g
}

fn layer_of(m: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&m))
}

#[test]
fn every_module_has_a_layer_and_uses_only_its_own_or_lower_layers() {
    let g = graph();
    let mut bad = Vec::new();
    for (m, deps) in &g {
        let Some(lm) = layer_of(m) else {
            bad.push(format!("module `{m}` has no layer (add it to LAYERS)"));
            continue;
        };
        for d in deps {
            if KNOWN.contains(&(m.as_str(), d.as_str())) {
                continue;
            }
            match layer_of(d) {
                Some(ld) if ld <= lm => {}
                Some(ld) => bad.push(format!(
                    "`{m}` ({}) uses `{d}` ({}), a higher layer",
                    LAYERS[lm].0, LAYERS[ld].0
                )),
                None if EXEMPT.contains(&d.as_str()) => {
                    bad.push(format!("`{m}` uses `{d}`, which only the program may use"))
                }
                None => bad.push(format!("`{m}` uses `{d}`, which has no layer")),
            }
        }
    }
    assert!(bad.is_empty(), "layer violations:\n{}", bad.join("\n"));
    // a known violation that is gone must leave the list too
    for (m, d) in KNOWN {
        assert!(
            g.get(*m).is_some_and(|deps| deps.contains(*d)),
            "`{m}` no longer uses `{d}`: remove it from KNOWN"
        );
    }
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    // depth-first search with colours: 1 = on the stack, 2 = done
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match colour.get(m) {
            Some(2) => return None,
            Some(1) => {
                let i = stack.iter().position(|s| s == m).unwrap();
                let mut cycle = stack[i..].to_vec();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        colour.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, g, colour, stack) {
                return Some(c);
            }
        }
        stack.pop();
        colour.insert(m.to_string(), 2);
        None
    }
    let mut colour = BTreeMap::new();
    for m in g.keys() {
        if let Some(cycle) = visit(m, &g, &mut colour, &mut Vec::new()) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

/// The program is a separate crate: a `crate::` path in its files names one of its own modules,
/// never a library module (which it reaches as `annealvi::…`).
#[test]
fn the_program_uses_the_library_through_its_public_paths() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        if !PROGRAM.contains(&module_of(rel).as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for u in uses(&text) {
            if !PROGRAM.contains(&u.as_str()) {
                bad.push(format!("{}: crate::{u}", rel.display()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "program files naming library modules:\n{}",
        bad.join("\n")
    );
}

/// The checks themselves can fail: a planted upward use and a planted cycle are caught.
#[test]
fn the_checks_catch_planted_violations() {
    assert_eq!(
        uses("use crate::sweep::run_sweep; // crate::plot\nlet x = crate::family::gmm::dot;"),
        BTreeSet::from(["sweep".to_string(), "family::gmm".to_string()])
    );
    assert!(layer_of("figure") > layer_of("sweep"));
    assert!(layer_of("train") < layer_of("sweep"));
    assert!(layer_of("train") < layer_of("config"));
    assert!(layer_of("run") < layer_of("sweep"));
    assert_eq!(
        module_of(Path::new("family/realnvp/loss.rs")),
        "family::realnvp"
    );
    assert_eq!(module_of(Path::new("family/mod.rs")), "family");
    assert_eq!(module_of(Path::new("theory/grid.rs")), "theory");
    assert_eq!(module_of(Path::new("cli/args.rs")), "cli");
    assert!(PROGRAM.contains(&module_of(Path::new("cli/sweep.rs")).as_str()));
}
