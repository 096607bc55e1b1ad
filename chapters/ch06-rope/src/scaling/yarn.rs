//! YaRN (Peng, Quesnelle, Fan, Shippole, *YaRN: Efficient Context Window Extension of Large
//! Language Models*, 2023) as transformers' `_compute_yarn_parameters` computes it.
//!
//! Pair `i` turns `r_i = L₀·θ_i / 2π` times over the original context `L₀`. Pairs that turn
//! many times (`r > beta_fast`, the high frequencies) already saw every angle in training and
//! are kept; pairs that turn less than `beta_slow` times are interpolated like linear scaling
//! (`θ_i / s`); in between a ramp mixes the two. transformers places the ramp by dimension
//! index: the dim `d·ln(L₀ / (2π·n)) / (2·ln base)` at which a pair makes `n` turns, for
//! `n = beta_fast` (`low`) and `n = beta_slow` (`high`), rounded out to whole dims unless
//! `truncate` is false, and clamped to `[0, d − 1]`. The ramp is then linear in the index `i`
//! over `(i − low)/(high − low)`, for `i` in `0 … d/2 − 1` (the clamp uses `d − 1`, the
//! ramp `d/2` entries: that is transformers' code, kept as it is).
//!
//! The attention factor ("mscale") `0.1·ln s + 1` compensates for the flatter attention
//! distribution at long range; it multiplies cos and sin.

use super::{RopeScaling, pos_freq};

/// YaRN's `get_mscale`: `0.1·mscale·ln(scale) + 1` in f64, 1 for `scale ≤ 1`.
pub fn yarn_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 { 1.0 } else { 0.1 * mscale * scale.ln() + 1.0 }
}

// ANCHOR: yarn_correction_range
/// The (possibly fractional) dim at which a pair makes `num_rotations` turns over
/// `max_position_embeddings` positions: Python's
/// `(dim * math.log(max_pos / (num_rotations * 2 * math.pi))) / (2 * math.log(base))`.
pub fn find_correction_dim(num_rotations: f64, dim: usize, base: f64, max_position_embeddings: usize) -> f64 {
    (dim as f64 * (max_position_embeddings as f64 / (num_rotations * 2.0 * std::f64::consts::PI)).ln())
        / (2.0 * base.ln())
}

/// `(low, high)`: the dims for `beta_fast` and `beta_slow` turns, floored and ceiled when
/// `truncate`, clamped to `[0, dim − 1]`.
pub fn find_correction_range(
    beta_fast: f64,
    beta_slow: f64,
    dim: usize,
    base: f64,
    max_position_embeddings: usize,
    truncate: bool,
) -> (f64, f64) {
    let mut low = find_correction_dim(beta_fast, dim, base, max_position_embeddings);
    let mut high = find_correction_dim(beta_slow, dim, base, max_position_embeddings);
    if truncate {
        low = low.floor();
        high = high.ceil();
    }
    (low.max(0.0), high.min((dim - 1) as f64))
}
// ANCHOR_END: yarn_correction_range

/// `clamp((arange(n).float() − low) / (high − low), 0, 1)`: `low` and `high − low` are Python
/// numbers, converted to f32 for the tensor's subtraction and division.
fn linear_ramp(low: f64, high: f64, n: usize) -> Vec<f32> {
    // `if min == max: max += 0.001` (Python) avoids dividing by zero.
    let high = if low == high { high + 0.001 } else { high };
    let (low32, width32) = (low as f32, (high - low) as f32);
    (0..n).map(|i| ((i as f32 - low32) / width32).clamp(0.0, 1.0)).collect()
}

/// The attention factor: explicit, else from `mscale`/`mscale_all_dim` when both are truthy,
/// else `get_mscale(factor)`.
fn attention_factor(
    factor: f64,
    mscale: Option<f64>,
    mscale_all_dim: Option<f64>,
    explicit: Option<f64>,
) -> f64 {
    if let Some(af) = explicit {
        return af;
    }
    match (mscale.filter(|&m| m != 0.0), mscale_all_dim.filter(|&m| m != 0.0)) {
        (Some(m), Some(m_all)) => yarn_mscale(factor, m) / yarn_mscale(factor, m_all),
        _ => yarn_mscale(factor, 1.0),
    }
}

// ANCHOR: yarn_inv_freq
/// `(inv_freq, attention_factor)` of a [`RopeScaling::Yarn`]; any other variant gives the
/// unscaled frequencies (the caller dispatches on the variant).
pub(super) fn inv_freq_and_attention_factor(scaling: &RopeScaling, base: f32, dim: usize) -> (Vec<f32>, f32) {
    let RopeScaling::Yarn {
        factor,
        original_max_position_embeddings,
        beta_fast,
        beta_slow,
        mscale,
        mscale_all_dim,
        attention_factor: explicit,
        truncate,
    } = *scaling
    else {
        return (super::default_inv_freq(base, dim), 1.0);
    };
    let af = attention_factor(factor, mscale, mscale_all_dim, explicit);
    let (low, high) = find_correction_range(
        beta_fast,
        beta_slow,
        dim,
        f64::from(base),
        original_max_position_embeddings,
        truncate,
    );
    let ramp = linear_ramp(low, high, dim / 2);
    let factor32 = factor as f32;
    let inv_freq = ramp
        .iter()
        .enumerate()
        .map(|(i, &ramp_i)| {
            let pos_freq = pos_freq(base, i, dim);
            let extrapolation = 1.0 / pos_freq; // the pair as trained
            let interpolation = 1.0 / (factor32 * pos_freq); // divided by s, as linear scaling
            let extrapolation_factor = 1.0 - ramp_i; // 1 for fast pairs, 0 for slow ones
            // f32, each product and the sum rounded, in transformers' order.
            interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor
        })
        .collect();
    (inv_freq, af as f32)
}
// ANCHOR_END: yarn_inv_freq

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_s_defaults_for_llama_2() {
        // Llama 2: d = 128, base 10 000, L₀ = 4096. Dims 20.9… → 20 and 45.9… → 46.
        let low = find_correction_dim(32.0, 128, 10_000.0, 4096);
        let high = find_correction_dim(1.0, 128, 10_000.0, 4096);
        assert!((low - 20.94).abs() < 0.01 && (high - 45.03).abs() < 0.01, "{low} {high}");
        assert_eq!(find_correction_range(32.0, 1.0, 128, 10_000.0, 4096, true), (20.0, 46.0));
        // Factor 16: 0.1·ln 16 + 1.
        assert!((yarn_mscale(16.0, 1.0) - 1.277_258_872).abs() < 1e-9);
        assert_eq!(yarn_mscale(0.5, 1.0), 1.0);
    }

    #[test]
    fn ramp_is_clamped_and_avoids_zero_width() {
        assert_eq!(linear_ramp(2.0, 4.0, 6), vec![0.0, 0.0, 0.0, 0.5, 1.0, 1.0]);
        let r = linear_ramp(3.0, 3.0, 5);
        assert_eq!((r[3], r[4]), (0.0, 1.0));
    }
}
