//! Configurations from Python: a dict, a TOML file or TOML text, with dotted-key overrides
//! (Python values converted to TOML values one by one, NaN and ±inf included), parsed and
//! validated by the library (errors become `ValueError` naming the field), and the
//! small model and schedule configurations the theory functions build from their arguments.

use crate::to_py;
use annealvi::config::NumberOr;
use annealvi::prelude::*;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// The largest and smallest integers a configuration can hold (TOML integers are 64-bit).
const TOML_INT_RANGE: &str = "an integer in [-9223372036854775808, 9223372036854775807]";

/// A configuration table read from Python, with the integers too large for TOML that stand in
/// as ±(2⁶³ − 1) until the validation names the field's range (see [`finish`]).
pub(crate) struct Table {
    pub(crate) table: toml::Table,
    /// (dotted key, the Python integer as written) of each integer beyond 64 bits.
    big: Vec<(String, String)>,
}

/// Reads a configuration table: `kind` is "dict" (`source` a dict nested like the TOML file),
/// "path" (`source` a TOML file's path) or "toml" (`source` TOML text); then applies
/// `overrides`, a dict of dotted keys (e.g. {"target.d": 64}). Python values become TOML
/// values directly (see [`to_toml`]), so NaN and ±inf reach the validation, which names the
/// field.
pub(crate) fn load_table(
    kind: &str,
    source: &Bound<'_, PyAny>,
    overrides: &Bound<'_, PyDict>,
) -> PyResult<Table> {
    let mut big = Vec::new();
    let text = || -> PyResult<String> { source.extract::<String>() };
    let mut table: toml::Table = match kind {
        "dict" => match to_toml(source, "", &mut big)? {
            toml::Value::Table(t) => t,
            _ => {
                return Err(PyTypeError::new_err(
                    "the configuration must be a dict nested like the TOML file",
                ));
            }
        },
        "path" => annealvi::config::read_toml(std::path::Path::new(&text()?)).map_err(to_py)?,
        "toml" => text()?
            .parse::<toml::Table>()
            .map_err(|e| PyValueError::new_err(format!("cannot parse the TOML string: {e}")))?,
        other => {
            return Err(PyValueError::new_err(format!(
                "config source kind {other:?} (expected dict, path or toml)"
            )));
        }
    };
    for (key, value) in overrides.iter() {
        let key: String = key.extract()?;
        let v = to_toml(&value, &key, &mut big)?;
        set_dotted(&mut table, &key, v)?;
    }
    Ok(Table { table, big })
}

/// A Python value as a TOML value, `key` naming it in errors: bool, int (64-bit; a larger one
/// is recorded in `big` and stands in as ±(2⁶³ − 1)), float (NaN and ±inf included: the
/// validation judges them), str, list or tuple, dict with str keys.
fn to_toml(
    v: &Bound<'_, PyAny>,
    key: &str,
    big: &mut Vec<(String, String)>,
) -> PyResult<toml::Value> {
    let name = |k: &str| {
        if k.is_empty() {
            "the configuration".to_string()
        } else {
            format!("`{k}`")
        }
    };
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(toml::Value::Boolean(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(toml::Value::Integer(match v.extract::<i64>() {
            Ok(i) => i,
            Err(_) => {
                big.push((key.to_string(), v.str()?.to_string()));
                if v.lt(0)? { i64::MIN } else { i64::MAX }
            }
        }));
    }
    if v.is_instance_of::<PyFloat>() {
        return Ok(toml::Value::Float(v.extract::<f64>()?));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(toml::Value::String(s.extract::<String>()?));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, x) in v.try_iter()?.enumerate() {
            out.push(to_toml(&x?, &format!("{key}[{i}]"), big)?);
        }
        return Ok(toml::Value::Array(out));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut t = toml::Table::new();
        for (k, x) in d.iter() {
            let k: String = k.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{}: key {} is not a string (expected a dict with string keys)",
                    name(key),
                    k.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                ))
            })?;
            let path = if key.is_empty() {
                k.clone()
            } else {
                format!("{key}.{k}")
            };
            t.insert(k, to_toml(&x, &path, big)?);
        }
        return Ok(toml::Value::Table(t));
    }
    let what = if v.is_none() {
        "None cannot be written in a configuration (leave the field out for its default)"
            .to_string()
    } else {
        format!(
            "a value of type {} is not a configuration value",
            v.get_type().name()?
        )
    };
    Err(PyValueError::new_err(format!(
        "invalid value for {}: {} ({what}; expected a number, a string, a boolean, a list or a \
         dict)",
        name(key),
        v.repr()?
    )))
}

/// Sets a dotted key of a table: the library's [`annealvi::config::set_key`] (as `--set`).
pub(crate) fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> PyResult<()> {
    annealvi::config::set_key(table, key, value).map_err(to_py)
}

/// Deserialises `table` as a `T`; a failure names the key it comes from (found by
/// [`blame`]) with the value as written and what the field takes, e.g. "invalid value for
/// `optim.steps`: -1 (invalid value: integer `-1`, expected an integer ≥ 0)".
pub(crate) fn from_table<T: serde::de::DeserializeOwned>(
    table: toml::Table,
    what: &str,
) -> PyResult<T> {
    match table.clone().try_into::<T>() {
        Ok(v) => Ok(v),
        Err(e) => {
            let msg = plain_types(e.message());
            Err(PyValueError::new_err(match blame::<T>(&table) {
                Some((key, _)) if msg.starts_with("unknown field") => {
                    format!("unknown key `{key}` in the {what} ({msg})")
                }
                Some((key, value)) => format!("invalid value for `{key}`: {value} ({msg})"),
                None => format!("{what}: {msg}"),
            }))
        }
    }
}

/// The key of `table` whose value stops it from deserialising as a `T`: the first leaf (a
/// value that is not a table; arrays are leaves) without which it deserialises, with that
/// value as TOML. Serde's messages name the type, not the key; removing one leaf at a time
/// finds it (tables are small, so the cost does not matter on an error path).
fn blame<T: serde::de::DeserializeOwned>(table: &toml::Table) -> Option<(String, String)> {
    fn leaves(t: &toml::Table, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (k, v) in t {
            prefix.push(k.clone());
            match v {
                toml::Value::Table(sub) if !sub.is_empty() => leaves(sub, prefix, out),
                _ => out.push(prefix.clone()),
            }
            prefix.pop();
        }
    }
    fn remove(t: &mut toml::Table, path: &[String]) -> Option<toml::Value> {
        match path {
            [last] => t.remove(last),
            [first, rest @ ..] => remove(t.get_mut(first)?.as_table_mut()?, rest),
            [] => None,
        }
    }
    let mut paths = Vec::new();
    leaves(table, &mut Vec::new(), &mut paths);
    paths.into_iter().find_map(|path| {
        let mut t = table.clone();
        let value = remove(&mut t, &path)?;
        t.try_into::<T>()
            .is_ok()
            .then(|| (path.join("."), value.to_string()))
    })
}

/// Serde's Rust type names in a message as what a configuration writes ("expected usize" →
/// "expected an integer ≥ 0").
fn plain_types(msg: &str) -> String {
    let mut m = msg.trim().to_string();
    for (rust, plain) in [
        ("usize", "an integer ≥ 0"),
        ("u64", "an integer ≥ 0"),
        ("u32", "an integer ≥ 0"),
        ("i64", "an integer"),
        ("f64", "a number"),
    ] {
        m = m.replace(&format!("expected {rust}"), &format!("expected {plain}"));
    }
    m
}

/// Deserialises and validates `t`. An integer beyond 64 bits is refused naming its key, with
/// the field's valid range when the validation of its stand-in value names that field.
pub(crate) fn finish<T: serde::de::DeserializeOwned>(
    t: Table,
    what: &str,
    validate: impl Fn(&T) -> Result<()>,
) -> PyResult<T> {
    if let Some((key, value)) = t.big.first() {
        let expected = match t.table.try_into::<T>().map(|c| validate(&c)) {
            Ok(Err(Error::Config {
                field, expected, ..
            })) if field == *key => expected,
            _ => TOML_INT_RANGE.to_string(),
        };
        return Err(PyValueError::new_err(format!(
            "invalid value for `{key}`: {value} (expected {expected})"
        )));
    }
    let cfg: T = from_table(t.table, what)?;
    validate(&cfg).map_err(to_py)?;
    Ok(cfg)
}

pub(crate) fn load_config(
    kind: &str,
    source: &Bound<'_, PyAny>,
    overrides: &Bound<'_, PyDict>,
) -> PyResult<Config> {
    finish(
        load_table(kind, source, overrides)?,
        "configuration",
        Config::validate,
    )
}

pub(crate) fn load_sweep(
    kind: &str,
    source: &Bound<'_, PyAny>,
    overrides: &Bound<'_, PyDict>,
) -> PyResult<SweepConfig> {
    finish(
        load_table(kind, source, overrides)?,
        "sweep configuration",
        SweepConfig::validate,
    )
}

/// Sets the dimension at `key` ("target.d" or "run.target.d") of `t` to a user target's `dim`:
/// a configuration that sets another value is refused, naming both.
pub(crate) fn set_user_dim(t: &mut Table, key: &str, dim: usize) -> PyResult<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let set = parts[..parts.len() - 1]
        .iter()
        .try_fold(&t.table, |c, p| c.get(*p).and_then(|v| v.as_table()))
        .and_then(|c| c.get(parts[parts.len() - 1]));
    if let Some(v) = set
        && v.as_integer() != Some(dim as i64)
    {
        let shown = t
            .big
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| v.to_string(), |(_, s)| s.clone());
        return Err(PyValueError::new_err(format!(
            "invalid value for `{key}`: {shown} (the user target has dim = {dim}, which sets \
             the dimension: leave `{key}` out or set it to {dim})"
        )));
    }
    t.big.retain(|(k, _)| k != key);
    set_dotted(&mut t.table, key, toml::Value::Integer(dim as i64))
}

/// The validated run configuration (resolved, every field) as TOML text.
#[pyfunction]
pub(crate) fn resolve_config(
    kind: &str,
    source: &Bound<'_, PyAny>,
    overrides: &Bound<'_, PyDict>,
) -> PyResult<String> {
    Ok(load_config(kind, source, overrides)?.to_toml())
}

/// The validated sweep configuration as TOML text.
#[pyfunction]
pub(crate) fn resolve_sweep(
    kind: &str,
    source: &Bound<'_, PyAny>,
    overrides: &Bound<'_, PyDict>,
) -> PyResult<String> {
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
