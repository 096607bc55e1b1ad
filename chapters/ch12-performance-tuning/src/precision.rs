//! bf16 inputs and the yardstick every rung of the ladder is held to.
//!
//! A bf16 number keeps f32's 8 exponent bits and 7 of its 23 mantissa bits: a relative
//! rounding step of 2⁻⁸ ≈ 0.4 %. So "equal to the f64 reference within 1e-5", chapter 3's test,
//! is impossible for a bf16 kernel, and a fixed tolerance would be a guess. FlashAttention's
//! own tests use a relative rule instead, and so do we:
//!
//! > the kernel's largest error against the f64 reference may be at most **twice** the largest
//! > error of a naive bf16 implementation against the same reference,
//!
//! where the naive implementation is what a framework does in bf16 without fusion: it
//! materialises S = scale·Q Kᵀ and rounds it to bf16, takes the softmax in f32 and rounds P to
//! bf16, and rounds O = P V to bf16 (each product accumulated in f32, as tensor cores do). Both
//! sides see the same bf16 inputs, and the reference is computed from exactly those values, so
//! the rule measures the arithmetic, not the rounding of the inputs.

use attn_support::compare::{Comparison, compare};
use attn_support::data::randn;
use attn_support::ndarray::{Array3, Array4, ArrayView4, Zip};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::reference::sdpa_reference;
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, check_inputs};
use half::bf16;

/// Q, K and V in bf16, (B, H, N, d) row-major, the inputs of every bf16 rung.
#[derive(Clone, Debug)]
pub struct Bf16Inputs {
    pub q: Array4<bf16>,
    pub k: Array4<bf16>,
    pub v: Array4<bf16>,
}

impl Bf16Inputs {
    /// Standard-normal Q, K, V rounded to bf16, seeded: Q (B,H,Nq,d), K and V (B,H,Nk,d).
    pub fn random(batch: usize, heads: usize, nq: usize, nk: usize, d: usize, seed: u64) -> Bf16Inputs {
        let round = |a: Array4<f32>| a.mapv(bf16::from_f32);
        Bf16Inputs {
            q: round(randn((batch, heads, nq, d), seed)),
            k: round(randn((batch, heads, nk, d), seed + 1)),
            v: round(randn((batch, heads, nk, d), seed + 2)),
        }
    }

    /// The same values in f32 (exact: every bf16 is an f32), for the CPU code and chapter 3.
    pub fn to_f32(&self) -> (Array4<f32>, Array4<f32>, Array4<f32>) {
        let up = |a: &Array4<bf16>| a.mapv(f32::from);
        (up(&self.q), up(&self.k), up(&self.v))
    }

    /// The sizes, checked as chapter 2 checks them.
    pub fn dims(&self, mask: &SdpaMask) -> Result<SdpaDims> {
        check_inputs(self.q.shape(), self.k.shape(), self.v.shape(), mask)
    }
}

// ANCHOR: naive_bf16
/// Standard attention as a framework runs it in bf16, on the CPU: (output (B,H,Nq,d) in bf16,
/// lse (B,H,Nq) in f32). S is rounded to bf16 after the f32-accumulated product, the softmax is
/// taken in f32 from those rounded scores, P is rounded to bf16 before P V, and O to bf16. A
/// query that sees no key gets zeros and lse = −∞, as in chapter 2.
pub fn naive_bf16_attention(
    q: ArrayView4<bf16>,
    k: ArrayView4<bf16>,
    v: ArrayView4<bf16>,
    mask: &SdpaMask,
) -> Result<(Array4<bf16>, Array3<f32>)> {
    let dims = check_inputs(q.shape(), k.shape(), v.shape(), mask)?;
    let SdpaDims { batch, heads, nq, nk, head_dim: d, v_dim: dv } = dims;
    let scale = 1.0 / (d as f32).sqrt();
    let round = |x: f32| f32::from(bf16::from_f32(x));
    let mut out = Array4::<bf16>::zeros((batch, heads, nq, dv));
    let mut lse = Array3::<f32>::from_elem((batch, heads, nq), f32::NEG_INFINITY);
    let (mut s, mut o) = (vec![0f32; nk], vec![0f32; dv]);
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..nq {
                for (j, sj) in s.iter_mut().enumerate() {
                    *sj = if mask.is_visible(b, i, j, nq, nk) {
                        let dot: f32 =
                            (0..d).map(|c| f32::from(q[[b, h, i, c]]) * f32::from(k[[b, h, j, c]])).sum();
                        round(scale * dot)
                    } else {
                        f32::NEG_INFINITY
                    };
                }
                let m = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                if m == f32::NEG_INFINITY {
                    continue; // no visible key: zeros and lse = −∞
                }
                let sum: f32 = s.iter().map(|&x| (x - m).exp()).sum();
                lse[[b, h, i]] = m + sum.ln();
                o.fill(0.0);
                for (j, &sj) in s.iter().enumerate() {
                    let p = round((sj - m).exp() / sum);
                    if p != 0.0 {
                        for (c, oc) in o.iter_mut().enumerate() {
                            *oc += p * f32::from(v[[b, h, j, c]]);
                        }
                    }
                }
                for (c, &oc) in o.iter().enumerate() {
                    out[[b, h, i, c]] = bf16::from_f32(oc);
                }
            }
        }
    }
    Ok((out, lse))
}
// ANCHOR_END: naive_bf16

// ANCHOR: error_rule
/// How far a bf16 result is from the f64 reference, next to how far the naive bf16
/// implementation is, and whether FlashAttention's rule holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bf16Accuracy {
    /// The result's output against the reference.
    pub out: Comparison,
    /// The naive bf16 implementation's output against the reference.
    pub naive_out: Comparison,
    /// max |lse − lse_ref| over the rows that see a key, and whether the rows that see none
    /// are −∞ on both sides.
    pub lse_max_abs_err: f64,
    pub naive_lse_max_abs_err: f64,
    pub masked_rows_agree: bool,
}

/// Absolute slack added to the 2× bound: below one bf16 step of any output of magnitude
/// ≥ 2⁻¹², it matters only where both errors are (nearly) zero, e.g. N = 1, where every
/// implementation returns V exactly.
pub const RULE_SLACK: f64 = 1e-6;

impl Bf16Accuracy {
    /// FlashAttention's rule, for the output and the lse alike: error ≤ 2 × naive + slack.
    pub fn within_rule(&self) -> bool {
        let ok = |err: f64, naive: f64| err <= 2.0 * naive + RULE_SLACK;
        self.out.nan_mismatches == 0
            && self.masked_rows_agree
            && ok(self.out.max_abs_err, self.naive_out.max_abs_err)
            && ok(self.lse_max_abs_err, self.naive_lse_max_abs_err)
    }
}

impl std::fmt::Display for Bf16Accuracy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "out max err {:.2e} (naive bf16 {:.2e}, ratio {:.2}), lse max err {:.2e} (naive {:.2e}){}",
            self.out.max_abs_err,
            self.naive_out.max_abs_err,
            self.out.max_abs_err / self.naive_out.max_abs_err.max(f64::MIN_POSITIVE),
            self.lse_max_abs_err,
            self.naive_lse_max_abs_err,
            if self.masked_rows_agree { "" } else { ", masked rows differ" }
        )
    }
}

/// The reference and the naive bf16 result of one input, computed once and held to judge any
/// number of kernels on it.
pub struct Bf16Yardstick {
    pub ref_out: Array4<f64>,
    pub ref_lse: Array3<f64>,
    naive_out: Comparison,
    naive_lse_err: f64,
}

impl Bf16Yardstick {
    /// Compute the f64 reference (on the bf16 values, exactly upcast) and the naive bf16 result.
    pub fn new(inputs: &Bf16Inputs, mask: &SdpaMask) -> Result<Bf16Yardstick> {
        let (q, k, v) = inputs.to_f32();
        let (ref_out, ref_lse) = sdpa_reference(q.view(), k.view(), v.view(), mask, None)?;
        let (naive_out, naive_lse) =
            naive_bf16_attention(inputs.q.view(), inputs.k.view(), inputs.v.view(), mask)?;
        let naive_cmp = compare(&naive_out.mapv(f32::from), &ref_out)?;
        let (naive_lse_err, _) = lse_error(&naive_lse, &ref_lse)?;
        Ok(Bf16Yardstick { ref_out, ref_lse, naive_out: naive_cmp, naive_lse_err })
    }

    /// Judge a result (output in bf16, lse in f32) against the reference and the naive error.
    pub fn judge(&self, out: &Array4<bf16>, lse: &Array3<f32>) -> Result<Bf16Accuracy> {
        let out_cmp = compare(&out.mapv(f32::from), &self.ref_out)?;
        let (lse_err, masked_rows_agree) = lse_error(lse, &self.ref_lse)?;
        Ok(Bf16Accuracy {
            out: out_cmp,
            naive_out: self.naive_out,
            lse_max_abs_err: lse_err,
            naive_lse_max_abs_err: self.naive_lse_err,
            masked_rows_agree,
        })
    }
}
// ANCHOR_END: error_rule

/// (max |lse − ref| over finite reference rows, whether every −∞ reference row is −∞ here too
/// and no finite row is non-finite here).
fn lse_error(lse: &Array3<f32>, reference: &Array3<f64>) -> Result<(f64, bool)> {
    if lse.shape() != reference.shape() {
        return Err(Error::shapes("lse error", "lse", lse.shape(), "reference", reference.shape()));
    }
    let (mut max_err, mut agree) = (0.0f64, true);
    Zip::from(lse).and(reference).for_each(|&x, &r| {
        if r == f64::NEG_INFINITY {
            agree &= x == f32::NEG_INFINITY;
        } else if !x.is_finite() {
            agree = false;
        } else {
            max_err = max_err.max((x as f64 - r).abs());
        }
    });
    Ok((max_err, agree))
}
