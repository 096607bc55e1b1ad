//! Exact against approximate attention: CPU time and error as the sequence grows, on two kinds
//! of input.
//!
//! - [`InputKind::Random`]: q, k, v ~ N(0, 1). Scores q·k/√d ~ N(0, 1), so each query spreads
//!   its weight over *all* keys. Block-sparse attention drops most of that mass (the error
//!   approaches 1 as the kept fraction shrinks); the averaging kernels of linear attention are
//!   not far from a near-uniform softmax.
//! - [`InputKind::Local`]: keys follow a smooth random walk `zⱼ = ρ zⱼ₋₁ + √(1−ρ²) εⱼ`,
//!   ρ = e^{−1/ℓ}, so nearby positions are correlated (`E[zᵢ·zⱼ] = d ρ^{|i−j|}`), and each query
//!   is its own key times a gain β: `qᵢ = β zᵢ`. The score of the diagonal is about β√d and
//!   falls off over ℓ positions — peaked, local attention, as in many trained heads. A sliding
//!   window catches nearly all the mass; a low-rank kernel cannot be that sharp.
//!
//! Times are measured on the random inputs (the arithmetic does not depend on the values).
//!
//! Two things to expect when reading the numbers:
//! - on random inputs relative errors above 1 are normal: the exact output averages N random
//!   values, so its norm is about 1/√N, while a pattern keeping a fraction ρ of the keys
//!   averages fewer and has norm about 1/√(ρN); the error grows like √(1/ρ);
//! - Performer is poor on both kinds here: with |q|² ≈ |k|² ≈ d, the relative variance of one
//!   random feature, `e^{|q+k|²/√d} − 1`, is about e^{2√d} (e¹⁶ at d = 64), far beyond what
//!   m = 256 features average away. It works when q and k are small, as the tests show.

use super::block_sparse::block_sparse_attention_with_lse;
use super::linear::linear_attention;
use super::pattern::BlockSparsity;
use super::performer::{RandomFeatures, performer_attention};
use attn_support::data::randn;
use attn_support::ndarray::{Array3, Array4, Zip, s};
use attn_support::timing::cpu_time;
use attn_support::{Error, Result, compare};
use ch02_scaled_dot_product::{SdpaMask, sdpa, sdpa_with_lse};

/// What the inputs look like.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputKind {
    /// q, k, v ~ N(0, 1): spread attention.
    Random,
    /// Keys a random walk with correlation length `correlation` (positions), queries
    /// `sharpness` × their own key: peaked attention near the diagonal.
    Local { correlation: f64, sharpness: f32 },
}

/// The experiment's settings. Batch = heads = 1, Nq = Nk = N.
#[derive(Clone, Debug, PartialEq)]
pub struct ApproxConfig {
    pub sizes: Vec<usize>,
    pub head_dim: usize,
    /// The block-sparse pattern (its `causal` is overridden by [`ApproxConfig::causal`]).
    pub pattern: BlockSparsity,
    /// m, the number of Performer random features.
    pub features: usize,
    pub causal: bool,
    /// The peaked inputs (a [`InputKind::Local`]).
    pub local_inputs: InputKind,
    pub warmup: usize,
    pub repeats: usize,
    pub seed: u64,
}

impl Default for ApproxConfig {
    /// N = 256 … 2048, d = 64, block 64 with a window of 2 blocks (own ± 1) and 1 global block,
    /// m = 256 features, non-causal, ℓ = 16, β = 2.
    fn default() -> ApproxConfig {
        ApproxConfig {
            sizes: vec![256, 512, 1024, 2048],
            head_dim: 64,
            pattern: BlockSparsity::local(64, 2).with_global(1),
            features: 256,
            causal: false,
            local_inputs: InputKind::Local { correlation: 16.0, sharpness: 2.0 },
            warmup: 1,
            repeats: 3,
            seed: 12,
        }
    }
}

/// Relative errors ‖o − o_exact‖/‖o_exact‖ of each method on one kind of input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ApproxErrors {
    pub block_sparse: f64,
    pub linear: f64,
    pub performer: f64,
    /// Mean over queries of the softmax mass on keys the pattern dropped, `1 − e^{lse_kept − lse}`.
    pub dropped_mass: f64,
}

/// One sequence length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ApproxPoint {
    pub n: usize,
    /// Fraction of the N × N scores the block-sparse pattern computes.
    pub density: f64,
    /// Median CPU times in ms: chapter 2's exact `sdpa`, block-sparse, linear (elu + 1), Performer.
    pub exact_ms: f64,
    pub block_sparse_ms: f64,
    pub linear_ms: f64,
    pub performer_ms: f64,
    pub random: ApproxErrors,
    pub local: ApproxErrors,
}

type Qkv = (Array4<f32>, Array4<f32>, Array4<f32>);

/// Q, K, V of shape (1, 1, n, head_dim) of the given kind, from `seed`.
pub fn approx_inputs(kind: InputKind, n: usize, head_dim: usize, seed: u64) -> Result<Qkv> {
    if n == 0 || head_dim == 0 {
        return Err(Error::InvalidArgument(format!(
            "inputs: need n ≥ 1 and d ≥ 1, got n = {n}, d = {head_dim}"
        )));
    }
    let shape = (1, 1, n, head_dim);
    let v = randn(shape, seed.wrapping_add(2));
    match kind {
        InputKind::Random => Ok((randn(shape, seed), randn(shape, seed.wrapping_add(1)), v)),
        InputKind::Local { correlation, sharpness } => {
            if !(correlation > 0.0 && correlation.is_finite() && sharpness.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "local inputs: need a finite correlation length > 0 and a finite sharpness, got {correlation}, {sharpness}"
                )));
            }
            let rho = (-1.0 / correlation).exp();
            let (keep, fresh) = (rho as f32, (1.0 - rho * rho).sqrt() as f32);
            let mut z = randn(shape, seed);
            for j in 1..n {
                let prev = z.slice(s![0, 0, j - 1, ..]).to_owned();
                let mut row = z.slice_mut(s![0, 0, j, ..]);
                Zip::from(&mut row).and(&prev).for_each(|x, &p| *x = keep * p + fresh * *x);
            }
            Ok((z.mapv(|x| sharpness * x), z, v))
        }
    }
}

/// Mean of `1 − e^{lse_kept − lse_exact}` over rows where exact attention sees some key.
fn dropped_mass(lse_kept: &Array3<f32>, lse_exact: &Array3<f32>) -> f64 {
    let (mut sum, mut rows) = (0.0, 0usize);
    for (&kept, &exact) in lse_kept.iter().zip(lse_exact) {
        if exact.is_finite() {
            sum += 1.0 - (f64::from(kept) - f64::from(exact)).exp();
            rows += 1;
        }
    }
    if rows > 0 { sum / rows as f64 } else { 0.0 }
}

/// Errors of the three approximations against exact attention on one set of inputs.
fn errors(inputs: &Qkv, config: &ApproxConfig, features: &RandomFeatures) -> Result<ApproxErrors> {
    let (q, k, v) = (inputs.0.view(), inputs.1.view(), inputs.2.view());
    let mask = SdpaMask { causal: config.causal, key_padding: None };
    let pattern = config.pattern.with_causal(config.causal);
    let (exact, lse_exact) = sdpa_with_lse(q, k, v, &mask)?;
    let (sparse, lse_kept) = block_sparse_attention_with_lse(q, k, v, &pattern)?;
    Ok(ApproxErrors {
        block_sparse: compare(&sparse, &exact)?.rel_err,
        linear: compare(&linear_attention(q, k, v, config.causal)?, &exact)?.rel_err,
        performer: compare(&performer_attention(q, k, v, features, config.causal)?, &exact)?.rel_err,
        dropped_mass: dropped_mass(&lse_kept, &lse_exact),
    })
}

/// For each N in `config.sizes`: the CPU time of exact, block-sparse, linear and Performer
/// attention, and their errors on random and on local inputs.
pub fn approx_experiment(config: &ApproxConfig) -> Result<Vec<ApproxPoint>> {
    config.pattern.check()?;
    if config.sizes.is_empty() || config.sizes.contains(&0) {
        return Err(Error::InvalidArgument(format!("experiment: sizes must be ≥ 1, got {:?}", config.sizes)));
    }
    let features = RandomFeatures::new(config.features, config.head_dim, config.seed.wrapping_add(99))?;
    let mask = SdpaMask { causal: config.causal, key_padding: None };
    let pattern = config.pattern.with_causal(config.causal);
    let (warmup, repeats) = (config.warmup, config.repeats);
    config
        .sizes
        .iter()
        .map(|&n| {
            let random = approx_inputs(InputKind::Random, n, config.head_dim, config.seed)?;
            let local = approx_inputs(config.local_inputs, n, config.head_dim, config.seed.wrapping_add(7))?;
            let (q, k, v) = (random.0.view(), random.1.view(), random.2.view());
            let time = |f: &dyn Fn() -> Result<Array4<f32>>| -> Result<f64> {
                f()?; // fail before timing, not inside it
                Ok(cpu_time(warmup, repeats, f).median_ms)
            };
            Ok(ApproxPoint {
                n,
                density: pattern.layout(n, n)?.density(),
                exact_ms: time(&|| sdpa(q, k, v, &mask))?,
                block_sparse_ms: time(&|| Ok(block_sparse_attention_with_lse(q, k, v, &pattern)?.0))?,
                linear_ms: time(&|| linear_attention(q, k, v, config.causal))?,
                performer_ms: time(&|| performer_attention(q, k, v, &features, config.causal))?,
                random: errors(&random, config, &features)?,
                local: errors(&local, config, &features)?,
            })
        })
        .collect()
}
