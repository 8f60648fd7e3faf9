//! Configurations from Python: a dict, a TOML file or TOML text, with dotted-key overrides,
//! parsed and validated by the library (errors become `ValueError` naming the field), and the
//! small model and schedule configurations the theory functions build from their arguments.

use crate::to_py;
use annealvi::config::{NumberOr, ScheduleKind};
use annealvi::prelude::*;
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Reads a configuration table: `kind` is "json" (a dict serialised by the wrapper), "path"
/// (a TOML file) or "toml" (TOML text); then applies `overrides` (a JSON object of dotted keys,
/// e.g. {"target.d": 64}).
pub(crate) fn load_table(kind: &str, source: &str, overrides: &str) -> PyResult<toml::Table> {
    let mut table: toml::Table = match kind {
        "json" => serde_json::from_str(source)
            .map_err(|e| PyValueError::new_err(format!("cannot read the config dict: {e}")))?,
        "path" => {
            let p = std::path::Path::new(source);
            let text = std::fs::read_to_string(p).map_err(|e| to_py(Error::io(p, "read", e)))?;
            text.parse::<toml::Table>()
                .map_err(|e| PyValueError::new_err(format!("cannot parse {source}: {e}")))?
        }
        "toml" => source
            .parse::<toml::Table>()
            .map_err(|e| PyValueError::new_err(format!("cannot parse the TOML string: {e}")))?,
        other => {
            return Err(PyValueError::new_err(format!(
                "config source kind {other:?} (expected json, path or toml)"
            )));
        }
    };
    let ov: serde_json::Map<String, serde_json::Value> = serde_json::from_str(overrides)
        .map_err(|e| PyValueError::new_err(format!("cannot read the overrides: {e}")))?;
    for (key, value) in ov {
        let v = toml::Value::try_from(&value).map_err(|e| {
            PyValueError::new_err(format!(
                "override `{key}`: {value} is not a TOML value ({e})"
            ))
        })?;
        set_dotted(&mut table, &key, v)?;
    }
    Ok(table)
}

pub(crate) fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> PyResult<()> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(PyValueError::new_err(format!(
            "override key `{key}`: expected a dotted path such as target.d"
        )));
    }
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            PyValueError::new_err(format!("override `{key}`: `{p}` is not a table"))
        })?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

pub(crate) fn from_table<T: serde::de::DeserializeOwned>(
    table: toml::Table,
    what: &str,
) -> PyResult<T> {
    table
        .try_into()
        .map_err(|e: toml::de::Error| PyValueError::new_err(format!("{what}: {}", e.message())))
}

pub(crate) fn load_config(kind: &str, source: &str, overrides: &str) -> PyResult<Config> {
    let cfg: Config = from_table(load_table(kind, source, overrides)?, "configuration")?;
    cfg.validate().map_err(to_py)?;
    Ok(cfg)
}

pub(crate) fn load_sweep(kind: &str, source: &str, overrides: &str) -> PyResult<SweepConfig> {
    let cfg: SweepConfig = from_table(load_table(kind, source, overrides)?, "sweep configuration")?;
    cfg.validate().map_err(to_py)?;
    Ok(cfg)
}

/// The validated run configuration (resolved, every field) as TOML text.
#[pyfunction]
pub(crate) fn resolve_config(kind: &str, source: &str, overrides: &str) -> PyResult<String> {
    Ok(load_config(kind, source, overrides)?.to_toml())
}

/// The validated sweep configuration as TOML text.
#[pyfunction]
pub(crate) fn resolve_sweep(kind: &str, source: &str, overrides: &str) -> PyResult<String> {
    let cfg = load_sweep(kind, source, overrides)?;
    toml::to_string(&cfg).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The model of the theory functions: bimodal target (d, R, w*), 2-component student with
/// fixed weights ½ and random initial means N(0, s² I_d), SGD with η = `lr`, validated as a
/// run configuration (so errors name the same fields as the CLI's).
pub(crate) fn model_config(
    d: usize,
    r: f64,
    w_star: f64,
    lr: f64,
    init_scale: f64,
) -> PyResult<Config> {
    let mut c = Config::default();
    c.target.d = d;
    c.target.r = r;
    c.target.w_star = w_star;
    c.optim.lr = lr;
    c.student.init_mean_scale = NumberOr::Number(init_scale);
    c.validate().map_err(|e| to_py(rename_model_field(e)))?;
    Ok(c)
}

/// Model fields of the validation named as the Python arguments (`target.w_star` → `w_star`).
pub(crate) fn rename_model_field(e: Error) -> Error {
    match e {
        Error::Config {
            field,
            value,
            expected,
        } => {
            let name = match field.as_str() {
                "target.d" => "d",
                "target.r" => "r",
                "target.w_star" => "w_star",
                "optim.lr" => "lr",
                "student.init_mean_scale" => "init_scale",
                f => f.trim_start_matches("schedule."),
            };
            Error::Config {
                field: name.to_string(),
                value,
                expected,
            }
        }
        e => e,
    }
}

pub(crate) fn schedule_config(kind: &str, beta_i: f64, t0: f64, beta: f64) -> PyResult<Config> {
    let mut c = Config::default();
    c.schedule.kind = match kind {
        "exponential" => ScheduleKind::Exponential,
        "linear" => ScheduleKind::Linear,
        "linear_temperature" => ScheduleKind::LinearTemperature,
        "constant" => ScheduleKind::Constant,
        other => {
            return Err(PyValueError::new_err(format!(
                "schedule kind {other:?} (expected exponential, linear, linear_temperature or \
                 constant)"
            )));
        }
    };
    c.schedule.beta_i = beta_i;
    c.schedule.t0 = t0;
    c.schedule.beta = beta;
    c.validate().map_err(to_py)?;
    Ok(c)
}

/// Validates a schedule's parameters (ValueError naming `schedule.<field>` otherwise).
#[pyfunction]
pub(crate) fn check_schedule(kind: &str, beta_i: f64, t0: f64, beta: f64) -> PyResult<()> {
    schedule_config(kind, beta_i, t0, beta).map(|_| ())
}

/// β at each step of `steps` for the schedule (kind, β_i, t0, β).
#[pyfunction]
pub(crate) fn schedule_beta<'py>(
    py: Python<'py>,
    kind: &str,
    beta_i: f64,
    t0: f64,
    beta: f64,
    steps: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let s = schedule_config(kind, beta_i, t0, beta)?.build_schedule();
    let out: Vec<f64> = steps.as_array().iter().map(|&t| s.beta(t)).collect();
    Ok(PyArray1::from_vec(py, out))
}
