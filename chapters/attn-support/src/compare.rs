//! How close is a result to a reference? Relative error ‖a−b‖₂/‖b‖₂ (scale-free, the number
//! the tests bound) and the max absolute error (where a single element goes wrong).

use crate::error::{Error, Result};
use ndarray::{ArrayBase, Data, Dimension};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// ‖a − b‖₂ / ‖b‖₂ (or ‖a − b‖₂ when ‖b‖₂ = 0).
    pub rel_err: f64,
    /// max |a − b|.
    pub max_abs_err: f64,
    /// Elements where exactly one side is NaN, or where both are non-finite but differ.
    pub nan_mismatches: usize,
}

impl Comparison {
    /// True when the relative error is within `tol` and no NaN appears on one side only.
    pub fn within(&self, tol: f64) -> bool {
        self.nan_mismatches == 0 && self.rel_err <= tol
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rel err {:.2e}, max abs err {:.2e}", self.rel_err, self.max_abs_err)?;
        if self.nan_mismatches > 0 {
            write!(f, ", {} NaN mismatches", self.nan_mismatches)?;
        }
        Ok(())
    }
}

/// Compare `a` (the result) with `b` (the reference). Elements that are NaN on both sides
/// count as equal (a fully masked row may be defined as NaN); NaN on one side only is counted
/// in `nan_mismatches`. Shapes must be equal.
pub fn compare<A, B, S1, S2, D>(a: &ArrayBase<S1, D>, b: &ArrayBase<S2, D>) -> Result<Comparison>
where
    A: Copy + Into<f64>,
    B: Copy + Into<f64>,
    S1: Data<Elem = A>,
    S2: Data<Elem = B>,
    D: Dimension,
{
    if a.shape() != b.shape() {
        return Err(Error::shapes("compare", "result", a.shape(), "reference", b.shape()));
    }
    let (mut diff2, mut ref2, mut max_abs, mut nan_mismatches) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for (&x, &y) in a.iter().zip(b.iter()) {
        let (x, y): (f64, f64) = (x.into(), y.into());
        if x.is_nan() || y.is_nan() {
            if x.is_nan() != y.is_nan() {
                nan_mismatches += 1;
            }
            continue;
        }
        if !x.is_finite() || !y.is_finite() {
            if x != y {
                nan_mismatches += 1;
            }
            continue;
        }
        let d = x - y;
        diff2 += d * d;
        ref2 += y * y;
        max_abs = max_abs.max(d.abs());
    }
    let norm = diff2.sqrt();
    let rel_err = if ref2 > 0.0 { norm / ref2.sqrt() } else { norm };
    Ok(Comparison { rel_err, max_abs_err: max_abs, nan_mismatches })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn relative_and_max_errors() {
        let b = array![3.0f64, 4.0];
        let a = array![3.0f32, 4.5];
        let c = compare(&a, &b).unwrap();
        assert!((c.rel_err - 0.1).abs() < 1e-12);
        assert!((c.max_abs_err - 0.5).abs() < 1e-12);
        assert!(c.within(0.11) && !c.within(0.09));
    }

    #[test]
    fn nan_on_one_side_is_a_mismatch() {
        let c = compare(&array![f32::NAN, 1.0], &array![0.0f64, 1.0]).unwrap();
        assert_eq!(c.nan_mismatches, 1);
        assert!(!c.within(1.0));
        let both = compare(&array![f32::NAN], &array![f64::NAN]).unwrap();
        assert!(both.within(0.0));
    }

    #[test]
    fn shape_mismatch_names_both_shapes() {
        let e = compare(&array![1.0f32, 2.0], &array![1.0f64]).unwrap_err().to_string();
        assert!(e.contains("[2]") && e.contains("[1]"), "{e}");
    }
}
