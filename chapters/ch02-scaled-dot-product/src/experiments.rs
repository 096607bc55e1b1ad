//! The chapter's three experiments, as plain functions returning numbers; [`crate::figures`]
//! draws them.
//!
//! 1. [`scaling_experiment`]: why 1/√d. With q, k ~ N(0, I_d), q·k is a sum of d independent
//!    products of variance 1, so Var(q·k) = d. Unscaled logits spread as √d, the softmax over
//!    N keys saturates to one-hot, its entropy drops to 0 and its Jacobian diag(p) − ppᵀ
//!    vanishes. Dividing by √d keeps the variance at 1 for every d.
//! 2. [`overflow_experiment`]: the naive softmax in f32 returns NaN once a logit passes
//!    ln(f32::MAX) ≈ 88.72 (or all logits are below ≈ −104); the stable one never does.
//! 3. [`complexity_experiment`]: time grows as N²d, the score matrix as N².

use crate::reference::softmax_reference;
use crate::sdpa::{SdpaDims, sdpa};
use crate::softmax::{softmax_naive, softmax_stable};
use crate::{SdpaMask, attn_support};
use attn_support::Result;
use attn_support::data::randn;
use attn_support::timing::cpu_time;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// Statistics of the logits q·k (unscaled) or q·k/√d (scaled) and of their softmax.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LogitStats {
    /// Measured variance of the logits over all queries and keys.
    pub variance: f64,
    /// Mean entropy −Σ p ln p of the softmax over the keys (at most ln N, for uniform p).
    pub entropy: f64,
    /// Mean Frobenius norm of the softmax Jacobian ∂p/∂s = diag(p) − ppᵀ: how much gradient
    /// flows back through the softmax. It goes to 0 when p saturates to one-hot.
    pub jacobian_norm: f64,
    /// Median of the same norm: the typical query. The mean is held up by the rare queries
    /// whose two best keys happen to tie, so it falls more slowly than the median.
    pub jacobian_median: f64,
    /// Mean of the largest weight max_j p_j.
    pub max_weight: f64,
}

/// One head dim of the scaling experiment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScalingPoint {
    pub head_dim: usize,
    pub unscaled: LogitStats,
    pub scaled: LogitStats,
}

// ANCHOR: jacobian
/// ‖diag(p) − ppᵀ‖_F without forming the matrix:
/// Σ_ij (p_i δ_ij − p_i p_j)² = Σ p_i² − 2 Σ p_i³ + (Σ p_i²)².
pub fn softmax_jacobian_norm(p: &[f64]) -> f64 {
    let p2: f64 = p.iter().map(|x| x * x).sum();
    let p3: f64 = p.iter().map(|x| x * x * x).sum();
    (p2 - 2.0 * p3 + p2 * p2).max(0.0).sqrt()
}
// ANCHOR_END: jacobian

/// Entropy −Σ p ln p (0 ln 0 = 0).
pub fn entropy(p: &[f64]) -> f64 {
    -p.iter().filter(|&&x| x > 0.0).map(|x| x * x.ln()).sum::<f64>()
}

fn softmax_f64(logits: &[f64]) -> Vec<f64> {
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

#[derive(Default)]
struct Accumulator {
    sum: f64,
    sum_sq: f64,
    count: f64,
    entropy: f64,
    jacobians: Vec<f64>,
    max_weight: f64,
    rows: f64,
}

impl Accumulator {
    fn add_row(&mut self, logits: &[f64]) {
        for &l in logits {
            self.sum += l;
            self.sum_sq += l * l;
        }
        self.count += logits.len() as f64;
        let p = softmax_f64(logits);
        self.entropy += entropy(&p);
        self.jacobians.push(softmax_jacobian_norm(&p));
        self.max_weight += p.iter().copied().fold(0.0, f64::max);
        self.rows += 1.0;
    }

    fn stats(&self) -> LogitStats {
        let mean = self.sum / self.count;
        let mut sorted = self.jacobians.clone();
        sorted.sort_by(f64::total_cmp);
        LogitStats {
            variance: self.sum_sq / self.count - mean * mean,
            entropy: self.entropy / self.rows,
            jacobian_norm: sorted.iter().sum::<f64>() / self.rows,
            jacobian_median: sorted.get(sorted.len() / 2).copied().unwrap_or(0.0),
            max_weight: self.max_weight / self.rows,
        }
    }
}

// ANCHOR: scaling
/// For each head dim d: `queries` random queries, each against `keys` random keys, entries
/// N(0, 1); statistics of the logits q·k and q·k/√d and of their softmax over the keys.
pub fn scaling_experiment(head_dims: &[usize], keys: usize, queries: usize, seed: u64) -> Vec<ScalingPoint> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut normal = move || -> f64 { StandardNormal.sample(&mut rng) };
    head_dims
        .iter()
        .map(|&d| {
            let (mut unscaled, mut scaled) = (Accumulator::default(), Accumulator::default());
            let inv_sqrt_d = 1.0 / (d as f64).sqrt();
            for _ in 0..queries {
                let q: Vec<f64> = (0..d).map(|_| normal()).collect();
                let logits: Vec<f64> =
                    (0..keys).map(|_| q.iter().map(|qc| qc * normal()).sum::<f64>()).collect();
                unscaled.add_row(&logits);
                scaled.add_row(&logits.iter().map(|l| l * inv_sqrt_d).collect::<Vec<_>>());
            }
            ScalingPoint { head_dim: d, unscaled: unscaled.stats(), scaled: scaled.stats() }
        })
        .collect()
}
// ANCHOR_END: scaling

/// One row of the overflow experiment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverflowPoint {
    /// The factor or shift applied to the base logits.
    pub x: f64,
    /// The largest logit of the row.
    pub max_logit: f64,
    /// max_j |p_j − p_ref_j| of the naive softmax, with NaN/∞ outputs counted as error 1.
    pub naive_err: f64,
    /// The same for the stable softmax.
    pub stable_err: f64,
    /// Does the naive output contain NaN or ∞?
    pub naive_non_finite: bool,
}

/// Logits were multiplied by `x` (scale) or had `x` added (shift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    Scale,
    Shift,
}

fn max_error(p: &[f32], reference: &[f64]) -> f64 {
    p.iter()
        .zip(reference)
        .map(|(&a, &b)| if a.is_finite() { (a as f64 - b).abs() } else { 1.0 })
        .fold(0.0, f64::max)
}

// ANCHOR: overflow
/// Naive vs stable softmax in f32 on `n` base logits ~ N(0, 1) transformed by each `x`,
/// against the f64 softmax of the same f32 logits.
pub fn overflow_experiment(transform: Transform, xs: &[f32], n: usize, seed: u64) -> Vec<OverflowPoint> {
    let base = randn(n, seed);
    xs.iter()
        .map(|&x| {
            let logits: Vec<f32> = base
                .iter()
                .map(|&z| match transform {
                    Transform::Scale => z * x,
                    Transform::Shift => z + x,
                })
                .collect();
            let reference = softmax_reference(&logits);
            let naive = softmax_naive(&logits);
            OverflowPoint {
                x: x as f64,
                max_logit: logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64,
                naive_err: max_error(&naive, &reference),
                stable_err: max_error(&softmax_stable(&logits), &reference),
                naive_non_finite: naive.iter().any(|p| !p.is_finite()),
            }
        })
        .collect()
}
// ANCHOR_END: overflow

/// Cost of one attention call of sequence length N (B = H = 1, Nq = Nk = N).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostPoint {
    pub n: usize,
    pub head_dim: usize,
    /// Median wall time of `sdpa` on this CPU.
    pub cpu_ms: f64,
    /// 4·N²·d.
    pub flops: f64,
    /// Bytes of the N×N f32 score matrix (what standard attention materialises per head).
    pub score_bytes: f64,
    /// Bytes of Q, K, V and O together: 4·N·d·4.
    pub io_bytes: f64,
}

/// Time `sdpa` for each N (median of `repeats` after one warm-up) and count its memory.
/// `progress` is called after each N.
pub fn complexity_experiment(
    ns: &[usize],
    head_dim: usize,
    repeats: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<CostPoint>> {
    let mut points = Vec::new();
    for (i, &n) in ns.iter().enumerate() {
        let (q, k, v) =
            (randn((1, 1, n, head_dim), 1), randn((1, 1, n, head_dim), 2), randn((1, 1, n, head_dim), 3));
        let mask = SdpaMask::none();
        sdpa(q.view(), k.view(), v.view(), &mask)?; // surface errors before timing
        let timing = cpu_time(1, repeats, || sdpa(q.view(), k.view(), v.view(), &mask));
        let dims = SdpaDims { batch: 1, heads: 1, nq: n, nk: n, head_dim, v_dim: head_dim };
        points.push(CostPoint {
            n,
            head_dim,
            cpu_ms: timing.median_ms,
            flops: dims.flops(),
            score_bytes: (n * n * 4) as f64,
            io_bytes: (4 * n * head_dim * 4) as f64,
        });
        progress(i + 1);
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobian_norm_matches_the_matrix() {
        let p = [0.1, 0.2, 0.7];
        let mut direct = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                let jij = if i == j { p[i] } else { 0.0 } - p[i] * p[j];
                direct += jij * jij;
            }
        }
        assert!((softmax_jacobian_norm(&p) - f64::sqrt(direct)).abs() < 1e-12);
        assert!(softmax_jacobian_norm(&[1.0, 0.0, 0.0]) < 1e-12);
    }

    #[test]
    fn unscaled_variance_grows_like_d_and_scaled_stays_one() {
        let pts = scaling_experiment(&[4, 1024], 64, 100, 7);
        let (small, large) = (pts[0], pts[1]);
        assert!((large.unscaled.variance / 1024.0 - 1.0).abs() < 0.15, "{large:?}");
        assert!((large.scaled.variance - 1.0).abs() < 0.15, "{large:?}");
        assert!(large.unscaled.entropy < 0.5 * large.scaled.entropy);
        assert!(large.unscaled.jacobian_norm < small.unscaled.jacobian_norm);
        assert!(large.unscaled.jacobian_median < 0.1 * large.scaled.jacobian_median, "{large:?}");
    }

    #[test]
    fn naive_breaks_past_the_f32_exponent_limit_and_stable_does_not() {
        let pts = overflow_experiment(Transform::Shift, &[0.0, 100.0, -200.0], 16, 3);
        assert!(!pts[0].naive_non_finite && pts[0].naive_err < 1e-6);
        assert!(pts[1].naive_non_finite && pts[2].naive_non_finite);
        assert!(pts.iter().all(|p| p.stable_err < 1e-6));
    }
}
