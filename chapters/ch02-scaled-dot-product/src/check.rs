//! The chapter binaries' quick check of a GPU kernel against CPU code: a list of shapes and
//! masks, random inputs for each, and the relative error of the output and the lse, printed
//! case by case. (The tests do the thorough version; this is what a reader runs to see it.)

use crate::{SdpaDims, SdpaMask};
use attn_support::compare::Comparison;
use attn_support::data::randn;
use attn_support::ndarray::{Array3, Array4, ArrayView4};
use attn_support::{Result, compare};

/// One shape and mask of a check: Q is (B, H, Nq, d), K is (B, H, Nk, d), V is (B, H, Nk, dv).
#[derive(Clone, Debug)]
pub struct CheckCase {
    pub dims: SdpaDims,
    pub mask: SdpaMask,
}

impl CheckCase {
    /// A case with `dv = d`.
    pub fn new(
        batch: usize,
        heads: usize,
        nq: usize,
        nk: usize,
        head_dim: usize,
        mask: SdpaMask,
    ) -> CheckCase {
        CheckCase { dims: SdpaDims { batch, heads, nq, nk, head_dim, v_dim: head_dim }, mask }
    }

    /// The same case with V's head dim `dv`.
    pub fn with_v_dim(mut self, v_dim: usize) -> CheckCase {
        self.dims.v_dim = v_dim;
        self
    }

    /// Standard-normal Q, K, V of the case's shapes (seeds `seed`, `seed + 1`, `seed + 2`).
    pub fn inputs(&self, seed: u64) -> (Array4<f32>, Array4<f32>, Array4<f32>) {
        let SdpaDims { batch: b, heads: h, nq, nk, head_dim: d, v_dim: dv } = self.dims;
        (randn((b, h, nq, d), seed), randn((b, h, nk, d), seed + 1), randn((b, h, nk, dv), seed + 2))
    }
}

/// What [`check_cases`] found: the worst relative error over the cases it ran, and the index
/// of the first case beyond the tolerance (where it stopped), if any.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckOutcome {
    pub worst_rel_err: f64,
    pub failed: Option<usize>,
}

/// (output, lse) of one attention call.
pub type OutLse = (Array4<f32>, Array3<f32>);

/// For each case, `run(q, k, v, mask)` returns (under test, reference); both the output and the
/// lse must agree within `tol` (relative). Prints one line per case and stops at the first
/// that does not agree; an error of `run` is returned as is.
pub fn check_cases(
    cases: &[CheckCase],
    tol: f64,
    mut run: impl FnMut(ArrayView4<f32>, ArrayView4<f32>, ArrayView4<f32>, &SdpaMask) -> Result<(OutLse, OutLse)>,
) -> Result<CheckOutcome> {
    let mut worst_rel_err = 0.0f64;
    for (i, case) in cases.iter().enumerate() {
        let (q, k, v) = case.inputs(100 * i as u64);
        let ((out, lse), (want_out, want_lse)) = run(q.view(), k.view(), v.view(), &case.mask)?;
        let (c_out, c_lse): (Comparison, Comparison) = (compare(&out, &want_out)?, compare(&lse, &want_lse)?);
        let ok = c_out.within(tol) && c_lse.within(tol);
        worst_rel_err = worst_rel_err.max(c_out.rel_err).max(c_lse.rel_err);
        let (SdpaDims { batch: b, heads: h, nq, nk, head_dim: d, v_dim: dv }, mask) = (case.dims, &case.mask);
        println!(
            "  B={b} H={h} Nq={nq:<5} Nk={nk:<5} d={d:<3} dv={dv:<3} causal={} padding={}: out {c_out}; lse {c_lse} {}",
            mask.causal as u8,
            mask.key_padding.is_some() as u8,
            if ok { "ok" } else { "FAILED" }
        );
        if !ok {
            return Ok(CheckOutcome { worst_rel_err, failed: Some(i) });
        }
    }
    Ok(CheckOutcome { worst_rel_err, failed: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdpa_with_lse;

    #[test]
    fn agreement_passes_and_a_wrong_lse_stops_the_check() {
        let cases = [
            CheckCase::new(1, 2, 5, 7, 4, SdpaMask::causal()),
            CheckCase::new(1, 1, 3, 3, 8, SdpaMask::none()),
        ];
        let exact = |q: ArrayView4<f32>, k: ArrayView4<f32>, v: ArrayView4<f32>, m: &SdpaMask| {
            let r = sdpa_with_lse(q, k, v, m)?;
            Ok((r.clone(), r))
        };
        assert_eq!(
            check_cases(&cases, 1e-6, exact).unwrap(),
            CheckOutcome { worst_rel_err: 0.0, failed: None }
        );
        let mut calls = 0;
        let off = |q: ArrayView4<f32>, k: ArrayView4<f32>, v: ArrayView4<f32>, m: &SdpaMask| {
            calls += 1;
            let (out, lse) = sdpa_with_lse(q, k, v, m)?;
            Ok(((out.clone(), lse.mapv(|x| x + 1.0)), (out, lse)))
        };
        let outcome = check_cases(&cases, 1e-6, off).unwrap();
        assert_eq!((outcome.failed, calls), (Some(0), 1));
    }
}
