//! Softmax on one row, naive and stable.
//!
//! `softmax(x)_j = e^{x_j} / Σ_k e^{x_k}`. In f32, `e^x` overflows to +∞ for x > ln(f32::MAX)
//! ≈ 88.72, and underflows to 0 for x < about −103.97 (below −87.34 it is already subnormal).
//! The naive formula then computes ∞/∞ or 0/0 = NaN. Softmax does not change when the same
//! constant is subtracted from every logit,
//!
//! `e^{x_j − m} / Σ_k e^{x_k − m} = (e^{−m} e^{x_j}) / (e^{−m} Σ_k e^{x_k})`,
//!
//! so subtracting `m = max_k x_k` makes every exponent ≤ 0 (no overflow) with one exponent
//! exactly 0 (a sum ≥ 1, no 0/0). The log of the denominator, the log-sum-exp, follows the
//! same way: `LSE(x) = m + ln Σ_k e^{x_k − m}`.

// ANCHOR: naive
/// The textbook formula, exp then normalise. Overflows to NaN once a logit exceeds ≈ 88.72,
/// and gives NaN when every logit is below ≈ −104 (all exponentials underflow to 0).
pub fn softmax_naive(logits: &[f32]) -> Vec<f32> {
    let exps: Vec<f32> = logits.iter().map(|&x| x.exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|&e| e / sum).collect()
}
// ANCHOR_END: naive

/// Softmax with the maximum subtracted first: finite for every finite input.
pub fn softmax_stable(logits: &[f32]) -> Vec<f32> {
    let mut row = logits.to_vec();
    softmax_row_in_place(&mut row);
    row
}

/// `ln Σ_k e^{x_k}`, computed as `m + ln Σ_k e^{x_k − m}`; −∞ for an empty or all-−∞ row.
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    if m == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    let sum: f32 = logits.iter().map(|&x| (x - m).exp()).sum();
    m + sum.ln()
}

// ANCHOR: stable
/// Turn a row of logits (masked entries already −∞) into probabilities in place and return
/// the row's log-sum-exp.
///
/// A row where every entry is −∞ (a query that sees no key) becomes all zeros and its
/// log-sum-exp is −∞. The formula would give 0/0 = NaN there; zeros keep the sums of later
/// layers finite, and are what FlashAttention returns.
pub fn softmax_row_in_place(row: &mut [f32]) -> f32 {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return f32::NEG_INFINITY;
    }
    // Every exponent is ≤ 0, and the maximum contributes e⁰ = 1, so 1 ≤ sum ≤ len.
    let mut sum = 0.0f32;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv_sum = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv_sum;
    }
    max + sum.ln()
}
// ANCHOR_END: stable

// ANCHOR: exp2
/// 2^t for t ≤ 0, to a few ulp, written so that the compiler can vectorise a loop of it
/// (std's `exp` is a library call per element).
///
/// t = n + f with n = round(t) and f ∈ [−½, ½]; 2^n is built directly in the exponent bits of
/// an f32 and 2^f = e^{f ln 2} comes from its Taylor series to degree 7 (|f ln 2| ≤ 0.35, so
/// the first omitted term is below 0.35⁸/8! ≈ 5·10⁻⁹). Inputs below about −126.5 (and −∞, a
/// masked score) give exactly 0: such a weight is below 2⁻¹²⁶ next to a maximum weight of 1.
#[inline(always)]
pub fn exp2_nonpositive(t: f32) -> f32 {
    // Adding 1.5·2²³ rounds t to an integer n (the f32 spacing there is exactly 1) and leaves
    // n in the low mantissa bits: bits(y) = bits(1.5·2²³) + n. Integer ops only, so it vectorises.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: i32 = 0x4B40_0000;
    let t = if t < -127.0 { -127.0 } else { t };
    let y = t + ROUND;
    let n_bits = (y.to_bits() as i32).wrapping_sub(ROUND_BITS);
    let u = (t - (y - ROUND)) * std::f32::consts::LN_2; // f·ln 2, f = t − n ∈ [−½, ½]
    let poly = 1.0
        + u * (1.0
            + u * (1.0 / 2.0
                + u * (1.0 / 6.0
                    + u * (1.0 / 24.0 + u * (1.0 / 120.0 + u * (1.0 / 720.0 + u * (1.0 / 5040.0)))))));
    // 2ⁿ as bits: biased exponent n + 127 in bits 23..31; n = −127 gives +0.0.
    let two_n = f32::from_bits((n_bits.wrapping_add(127) as u32) << 23);
    poly * two_n
}
// ANCHOR_END: exp2

/// Independent accumulators, one per SIMD lane: a loop that updates `acc[l]` from element l of
/// each chunk has no dependence between lanes, so it vectorises (a single running sum would
/// force one addition after the other, in order).
const LANES: usize = 8;

/// The largest entry of a row (−∞ for an empty or all-−∞ row).
pub fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for l in 0..LANES {
            acc[l] = if chunk[l] > acc[l] { chunk[l] } else { acc[l] };
        }
    }
    acc.iter().chain(tail).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

// ANCHOR: softmax_log2
/// The fast row softmax of [`crate::sdpa()`]: `row` holds scores in log2 units (s·log₂e, masked
/// entries −∞). Replaces each entry by 2^(entry − max) and returns (max, sum), leaving the
/// division by `sum` to the caller, who applies it to the dv outputs of the row instead of the
/// Nk weights. A fully masked row becomes zeros with (−∞, 0).
pub fn softmax_log2_unnormalised(row: &mut [f32]) -> (f32, f32) {
    let max = row_max(row);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return (max, 0.0);
    }
    (max, exp2_shifted_in_place(row, max))
}
// ANCHOR_END: softmax_log2

/// `x ← 2^(x − max)` over the row, returning the sum. On x86-64 CPUs with AVX2 the same code
/// is compiled a second time for it (8 f32 lanes per instruction instead of the 4 of the SSE2
/// baseline that every x86-64 CPU has) and chosen at run time; the results are identical.
fn exp2_shifted_in_place(row: &mut [f32], max: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the only feature the function is compiled for.
        return unsafe { exp2_shifted_avx2(row, max) };
    }
    exp2_shifted_portable(row, max)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exp2_shifted_avx2(row: &mut [f32], max: f32) -> f32 {
    exp2_shifted_portable(row, max)
}

#[inline(always)]
fn exp2_shifted_portable(row: &mut [f32], max: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for l in 0..LANES {
            chunk[l] = exp2_nonpositive(chunk[l] - max);
            acc[l] += chunk[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for x in chunks.into_remainder() {
        *x = exp2_nonpositive(*x - max);
        sum += *x;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_equals_naive_on_small_logits() {
        let x = [0.5f32, -1.0, 2.0, 0.0];
        let (a, b) = (softmax_naive(&x), softmax_stable(&x));
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-6);
        }
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let lse = x.iter().map(|v| (*v as f64).exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&x) as f64 - lse).abs() < 1e-6);
    }

    #[test]
    fn exp2_is_accurate_over_its_range() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let t = (-126.0 * i as f64 / 200_000.0) as f32;
            let exact = (t as f64).exp2();
            let got = exp2_nonpositive(t) as f64;
            worst = worst.max((got - exact).abs() / exact);
        }
        // a few ulp of f32 (ulp = 1.2e-7)
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert_eq!(exp2_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp2_nonpositive(-500.0), 0.0);
        assert_eq!(exp2_nonpositive(0.0), 1.0);
    }

    #[test]
    fn log2_softmax_matches_the_stable_one() {
        let x: Vec<f32> = (0..37).map(|i| ((i * 7919) % 23) as f32 * 0.37 - 4.0).collect();
        let mut row: Vec<f32> = x.iter().map(|v| v * std::f32::consts::LOG2_E).collect();
        let (max, sum) = softmax_log2_unnormalised(&mut row);
        let stable = softmax_stable(&x);
        for (p, q) in row.iter().zip(&stable) {
            assert!((p / sum - q).abs() < 1e-6);
        }
        assert!(((max + sum.log2()) * std::f32::consts::LN_2 - log_sum_exp(&x)).abs() < 1e-5);
        assert_eq!(row_max(&x), x.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    }

    #[test]
    fn masked_row_is_zeros_with_lse_minus_infinity() {
        let mut row = [f32::NEG_INFINITY; 3];
        assert_eq!(softmax_row_in_place(&mut row), f32::NEG_INFINITY);
        assert_eq!(row, [0.0; 3]);
        assert_eq!(log_sum_exp(&[]), f32::NEG_INFINITY);
        let mut row = [f32::NEG_INFINITY; 11];
        assert_eq!(softmax_log2_unnormalised(&mut row), (f32::NEG_INFINITY, 0.0));
        assert_eq!(row, [0.0; 11]);
    }
}
