//! How precise are the GPU's cos and sin at long positions? The CPU side ([`crate::rope`]) shows
//! that the f32 angle `fl(m·θ_i)` is off the exact one by up to about `m·θ_i·2⁻²⁴` (the price of
//! f32 angles, the same for every way of evaluating them). This measures what each of the
//! kernel's angle sources adds on top: rotate unit pairs `(1, 0)` at positions `m`, so that the
//! kernel's output *is* `(cos mθ_i, sin mθ_i)` as that source computes it, and compare with f64:
//!
//! - against `cos`/`sin` of the exact angle `m·θ_i` (θ_i in f64 from the base): the whole
//!   error, angle rounding included;
//! - against `cos`/`sin` of the f32 angle itself (widened exactly to f64): the error of the
//!   evaluation alone — a few 10⁻⁸ for the host's table and for `sincosf`, and for `__sincosf`
//!   an error that grows with the angle, because the intrinsic first multiplies it by an f32
//!   1/2π, rounding away about `|φ|·2⁻²⁴`.
//!
//! A row with no source is the floor: exact `cos`/`sin` of the f32 angle against the exact
//! angle, computed in f64 on the host.

use crate::gpu::{AngleSource, RopeKernel, rope_gpu};
use crate::rope::{RopeCache, RopeConfig, RopeLayout};
use attn_support::Result;
use attn_support::gpu::Gpu;
use attn_support::ndarray::Array3;

/// CSV header of [`AngleError::csv`].
pub const ANGLE_CSV_HEADER: &str =
    "base,head_dim,first_position,positions,source,max_err_vs_exact_angle,max_err_vs_f32_angle";

/// First positions of the windows measured: short, 4 k, 32 k and 128 k contexts.
pub const WINDOW_STARTS: [usize; 4] = [0, 4096, 32_768, 131_072];
/// Positions per window.
pub const WINDOW_LEN: usize = 64;

/// The largest errors of one angle source over one window of positions and every pair.
#[derive(Clone, Debug, PartialEq)]
pub struct AngleError {
    pub base: f32,
    pub head_dim: usize,
    pub first_position: usize,
    pub positions: usize,
    /// `None`: exact cos/sin of the f32 angle (the floor every source shares).
    pub source: Option<AngleSource>,
    /// max |computed − cos/sin(m·θ_i exactly)| over cos and sin.
    pub vs_exact_angle: f64,
    /// max |computed − cos/sin(fl(m·θ_i))| over cos and sin.
    pub vs_f32_angle: f64,
}

impl AngleError {
    pub fn source_name(&self) -> String {
        self.source.map_or("exact cos/sin of the f32 angle".into(), |s| s.to_string())
    }

    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{:.3e},{:.3e}",
            self.base,
            self.head_dim,
            self.first_position,
            self.positions,
            self.source.map_or("f64_of_f32_angle", |s| s.kernel_part()),
            self.vs_exact_angle,
            self.vs_f32_angle
        )
    }
}

/// The exact angle `m·θ_i` with `θ_i = base^(−2i/d)` in f64.
fn exact_angle(base: f32, head_dim: usize, pair: usize, position: usize) -> f64 {
    position as f64 * (base as f64).powf(-2.0 * pair as f64 / head_dim as f64)
}

/// Errors of every angle source (and the floor) at positions `first … first + count − 1`,
/// full rotary, f32 storage.
pub fn angle_errors(
    gpu: &Gpu,
    head_dim: usize,
    base: f32,
    first: usize,
    count: usize,
) -> Result<Vec<AngleError>> {
    let config = RopeConfig::new(head_dim, base, RopeLayout::HalfRotation)?;
    let pairs = config.pairs();
    let inv_freq = config.inv_freq();
    let positions: Vec<u32> = (first..first + count).map(|m| m as u32).collect();
    // Unit pairs (1, 0): dims 0 … P−1 are 1, dims P … 2P−1 are 0, so the output holds
    // cos in the first half and sin in the second.
    let x = Array3::from_shape_fn((count, 1, head_dim), |(_, _, d)| if d < pairs { 1.0f32 } else { 0.0 });
    let row = |source, vs_exact_angle, vs_f32_angle| AngleError {
        base,
        head_dim,
        first_position: first,
        positions: count,
        source,
        vs_exact_angle,
        vs_f32_angle,
    };
    // Max over (token, pair) of the two errors of a (cos, sin) table.
    let errors = |cos_sin: &dyn Fn(usize, usize) -> (f64, f64)| {
        let (mut exact, mut f32_angle) = (0.0f64, 0.0f64);
        for (t, &m) in positions.iter().enumerate() {
            for (i, &theta) in inv_freq.iter().enumerate() {
                let (c, s) = cos_sin(t, i);
                let phi = exact_angle(base, head_dim, i, m as usize);
                let phi32 = RopeConfig::angle(theta, m as usize) as f64;
                exact = exact.max((c - phi.cos()).abs()).max((s - phi.sin()).abs());
                f32_angle = f32_angle.max((c - phi32.cos()).abs()).max((s - phi32.sin()).abs());
            }
        }
        (exact, f32_angle)
    };

    let floor = errors(&|t, i| {
        let phi32 = RopeConfig::angle(inv_freq[i], positions[t] as usize) as f64;
        (phi32.cos(), phi32.sin())
    });
    let mut rows = vec![row(None, floor.0, floor.1)];
    let cache = RopeCache::new(&config, first + count)?;
    for source in AngleSource::ALL {
        let kernel = match source {
            AngleSource::Cache => RopeKernel::<f32>::with_cache(gpu, &cache)?,
            _ => RopeKernel::<f32>::on_the_fly(gpu, &config, source)?,
        };
        let out = rope_gpu(gpu, &kernel, x.view(), &positions)?;
        let (exact, f32_angle) = errors(&|t, i| (out[[t, 0, i]] as f64, out[[t, 0, pairs + i]] as f64));
        rows.push(row(Some(source), exact, f32_angle));
    }
    Ok(rows)
}
