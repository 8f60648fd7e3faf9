//! What the configuration sections share: range checks that turn an invalid value into an
//! [`Error::Config`] naming the field, the value and the valid range; [`NumberOr`] (a number
//! or a named rule) with its check; and the zero padding of user-given vectors to length d.
//!
//! A check of a real number v against an interval I passes when v is finite and v ∈ I (so
//! NaN and ±∞ always fail, whatever the bounds).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ops::{Bound, RangeBounds};

/// The interval (0, ∞).
pub const POSITIVE: (Bound<f64>, Bound<f64>) = (Bound::Excluded(0.0), Bound::Unbounded);

/// The interval (0, 1].
pub const UNIT: (Bound<f64>, Bound<f64>) = (Bound::Excluded(0.0), Bound::Included(1.0));

/// A finite `v` in `range`, else an error naming `field` and `expected`.
pub fn number_in(field: &str, v: f64, range: impl RangeBounds<f64>, expected: &str) -> Result<()> {
    if v.is_finite() && range.contains(&v) {
        Ok(())
    } else {
        Err(Error::config(field, v, expected))
    }
}

/// A finite `v` > 0 ("a number > 0").
pub fn positive(field: &str, v: f64) -> Result<()> {
    number_in(field, v, POSITIVE, "a number > 0")
}

/// `v` > 0, +∞ allowed (it switches a clipping off); NaN and values ≤ 0 fail.
pub fn positive_or_inf(field: &str, v: f64) -> Result<()> {
    if v.is_nan() || v <= 0.0 {
        Err(Error::config(
            field,
            v,
            "a number > 0, or inf to disable clipping",
        ))
    } else {
        Ok(())
    }
}

/// An integer n ∈ [lo, hi] ("an integer in [lo, hi]").
pub fn count_in(field: &str, n: usize, lo: usize, hi: usize) -> Result<()> {
    if (lo..=hi).contains(&n) {
        Ok(())
    } else {
        Err(Error::config(
            field,
            n,
            &format!("an integer in [{lo}, {hi}]"),
        ))
    }
}

/// Every entry of `v` finite; the first that is not is named `field[i]`.
pub fn all_finite(field: &str, v: &[f64]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::config(
            &format!("{field}[{i}]"),
            v[i],
            "a finite number",
        )),
        None => Ok(()),
    }
}

/// Each mean has at most d finite entries (it is padded with zeros to length d).
pub fn means(field: &str, means: &[Vec<f64>], d: usize) -> Result<()> {
    for (j, m) in means.iter().enumerate() {
        if m.len() > d {
            return Err(Error::config(
                &format!("{field}[{j}]"),
                format!("a vector of length {}", m.len()),
                &format!("at most target.d = {d} entries"),
            ));
        }
        all_finite(&format!("{field}[{j}]"), m)?;
    }
    Ok(())
}

/// Mixture weights: none (uniform), or n entries in (0, 1] summing to 1 (within 1e-9).
pub fn weights(field: &str, w: &[f64], n: usize) -> Result<()> {
    if w.is_empty() {
        return Ok(());
    }
    if w.len() != n {
        return Err(Error::config(
            field,
            format!("{} entries", w.len()),
            &format!("{n} entries (one per component) or none"),
        ));
    }
    for (j, v) in w.iter().enumerate() {
        number_in(&format!("{field}[{j}]"), *v, UNIT, "a number in (0, 1]")?;
    }
    let s: f64 = w.iter().sum();
    if (s - 1.0).abs() > 1e-9 {
        return Err(Error::config(
            field,
            format!("{w:?} (sum {s})"),
            "weights summing to 1",
        ));
    }
    Ok(())
}

/// `m` padded with zeros to length d (m has at most d entries).
pub fn pad(m: &[f64], d: usize) -> Vec<f64> {
    let mut v = vec![0.0; d];
    v[..m.len()].copy_from_slice(m);
    v
}

/// A number, or a named rule (for `init_mean_scale` and `sigma0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumberOr {
    /// An explicit value.
    Number(f64),
    /// A named rule.
    Name(String),
}

impl NumberOr {
    /// A finite number in `range` or one of `names`, else an error naming `field` and
    /// `expected` (a name is shown quoted).
    pub fn check(
        &self,
        field: &str,
        range: impl RangeBounds<f64>,
        names: &[&str],
        expected: &str,
    ) -> Result<()> {
        match self {
            NumberOr::Number(v) => number_in(field, *v, range, expected),
            NumberOr::Name(n) if names.contains(&n.as_str()) => Ok(()),
            NumberOr::Name(n) => Err(Error::config(field, format!("\"{n}\""), expected)),
        }
    }

    /// The number, or `rule()` for a name.
    pub fn value_or_else(&self, rule: impl FnOnce(&str) -> f64) -> f64 {
        match self {
            NumberOr::Number(v) => *v,
            NumberOr::Name(n) => rule(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_reject_non_finite_values_and_name_the_field() {
        assert!(number_in("x", 1.0, UNIT, "e").is_ok());
        assert!(number_in("x", 0.0, UNIT, "e").is_err());
        assert!(number_in("x", f64::INFINITY, POSITIVE, "e").is_err());
        assert!(number_in("x", f64::NAN, .., "e").is_err());
        assert!(positive_or_inf("x", f64::INFINITY).is_ok());
        assert!(positive_or_inf("x", f64::NAN).is_err());
        let e = count_in("a.n", 0, 1, 64).unwrap_err().to_string();
        assert!(e.contains("a.n") && e.contains("[1, 64]"), "{e}");
        let e = NumberOr::Name("x".into())
            .check("a.s", POSITIVE, &["schedule"], "ok")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"x\""), "{e}");
    }
}
