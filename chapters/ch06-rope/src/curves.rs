//! The numbers behind the chapter's figures, computed with the chapter's own RoPE
//! ([`apply_rope`]) so that the figures show what the code does, not a second formula.

use crate::rope::{RopeConfig, apply_rope};
use attn_support::ndarray::{Array4, ArrayView1, ArrayView2};
use attn_support::{Error, Result};
use std::f64::consts::TAU;

/// The RoPE score `R(m)q · R(0)k` for a query at position `distance` and a key at position 0,
/// both rotated by [`apply_rope`] in f32 and the dot product summed in f64. Since the score
/// depends only on `m − n`, this is the score at relative distance `distance`.
pub fn rope_score(
    config: &RopeConfig,
    q: ArrayView1<f32>,
    k: ArrayView1<f32>,
    distance: usize,
) -> Result<f64> {
    let d = config.head_dim();
    if q.len() != d || k.len() != d {
        return Err(Error::InvalidArgument(format!(
            "q of length {} and k of length {} must both have head_dim {d}",
            q.len(),
            k.len()
        )));
    }
    let mut qm = Array4::from_shape_fn((1, 1, 1, d), |(_, _, _, c)| q[c]);
    let mut k0 = Array4::from_shape_fn((1, 1, 1, d), |(_, _, _, c)| k[c]);
    apply_rope(config, qm.view_mut(), distance)?;
    apply_rope(config, k0.view_mut(), 0)?;
    Ok(qm.iter().zip(k0.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum())
}

/// Roughly `per_octave` integer distances per doubling from 1 to `max` (both included),
/// without repeats: the x values of a log-axis curve.
pub fn log_distances(max: usize, per_octave: usize) -> Vec<usize> {
    let steps = ((max.max(1) as f64).log2() * per_octave as f64).ceil() as usize;
    let mut out: Vec<usize> = (0..=steps)
        .map(|s| ((s as f64 / per_octave.max(1) as f64).exp2().round() as usize).min(max.max(1)))
        .collect();
    out.dedup();
    out
}

/// Wavelength `2π/θ_i` of each dimension pair, in positions: the number of tokens after which
/// pair `i` has turned once, from the f32 frequencies the model uses.
pub fn wavelengths(config: &RopeConfig) -> Vec<f64> {
    config.inv_freq().iter().map(|&theta| TAU / f64::from(theta)).collect()
}

/// How many dimension pairs turn at least once within `context` positions (wavelength ≤
/// context). The rest never see a full turn in training: their angles at longer distances are
/// ones the model has not seen, which is what the context-extension scalings address.
pub fn pairs_with_full_turn(config: &RopeConfig, context: usize) -> usize {
    wavelengths(config).iter().filter(|&&w| w <= context as f64).count()
}

/// The mean over the rows of `qs` and `ks` (pairs of head vectors, `(samples, head_dim)`) of
/// the RoPE score at each distance: `(distance, mean score, mean |score|)`. With `qs = ks` (a
/// token meeting itself) the mean score falls with the distance — RoFormer's decay; with
/// independent random rows the mean |score| does not, because there was no agreement to lose.
pub fn mean_scores(
    config: &RopeConfig,
    qs: ArrayView2<f32>,
    ks: ArrayView2<f32>,
    distances: &[usize],
) -> Result<Vec<(usize, f64, f64)>> {
    if qs.dim() != ks.dim() || qs.nrows() == 0 {
        return Err(Error::InvalidArgument(format!(
            "qs {:?} and ks {:?} must have the same non-empty shape",
            qs.dim(),
            ks.dim()
        )));
    }
    let n = qs.nrows() as f64;
    distances
        .iter()
        .map(|&r| {
            let (mut sum, mut abs) = (0.0, 0.0);
            for (q, k) in qs.rows().into_iter().zip(ks.rows()) {
                let s = rope_score(config, q, k, r)?;
                sum += s;
                abs += s.abs();
            }
            Ok((r, sum / n, abs / n))
        })
        .collect()
}
