//! An independent f64 RoPE for the tests, written in RoFormer's complex form rather than as
//! [`crate::rope`]'s cos/sin formula: pair `i` of a head vector is the complex number
//! `z_i = x_a + i·x_b`, and RoPE at position `m` is `z_i · e^{i·m·θ_i}` with
//! `θ_i = base^(−2i/d_rot)` computed in f64 from the exact position. Its only rounding is f64's
//! (relative 2⁻⁵³ per step), so against it the f32 code shows its own error, angle rounding
//! included. For a scaled config ([`crate::scaling`]) it takes the config's f32 frequencies and
//! multiplies by its attention factor, so it checks the rotation, not the scaling.

use crate::rope::{RopeConfig, RopeLayout};
use crate::scaling::RopeScaling;
use attn_support::ndarray::{Array4, ArrayView4};
use attn_support::{Error, Result};

/// Just enough of a complex number for `z · e^{iφ}`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Complex {
    pub re: f64,
    pub im: f64,
}

impl Complex {
    /// `e^{iφ} = cos φ + i sin φ`.
    pub fn from_polar_unit(phi: f64) -> Self {
        Complex { re: phi.cos(), im: phi.sin() }
    }
}

impl std::ops::Mul for Complex {
    type Output = Complex;

    /// `(a + ib)(c + id) = (ac − bd) + i(ad + bc)`.
    fn mul(self, other: Complex) -> Complex {
        Complex { re: self.re * other.re - self.im * other.im, im: self.re * other.im + self.im * other.re }
    }
}

/// RoPE in f64 on a copy of `x` `(batch, heads, seq, head_dim)`, token `s` at `offset + s`.
/// Pairs, frequencies and angles are all recomputed here from the config's numbers.
pub fn rope_reference(config: &RopeConfig, x: ArrayView4<f32>, offset: usize) -> Result<Array4<f64>> {
    let shape = x.shape();
    if shape[3] != config.head_dim() {
        return Err(Error::InvalidArgument(format!(
            "reference: x of shape {shape:?} has head_dim {} but the config has {}",
            shape[3],
            config.head_dim()
        )));
    }
    let d_rot = config.rotary_dim();
    let base = config.base() as f64;
    // A scaled config's frequencies are taken as the config computed them (they are checked
    // against transformers' own in tests/hf_fixtures.rs); the rotation is still this file's.
    let scaled_theta = config.inv_freq();
    let attention_factor = f64::from(config.attention_factor());
    let mut out = x.mapv(f64::from);
    for ((b, h, s, i), _) in x.slice(attn_support::ndarray::s![.., .., .., ..d_rot / 2]).indexed_iter() {
        let (ia, ib) = match config.layout() {
            RopeLayout::HalfRotation => (i, d_rot / 2 + i),
            RopeLayout::Interleaved => (2 * i, 2 * i + 1),
        };
        let theta = match config.scaling() {
            RopeScaling::Default => base.powf(-2.0 * i as f64 / d_rot as f64),
            _ => f64::from(scaled_theta[i]),
        };
        let phi = (offset + s) as f64 * theta;
        let z = Complex { re: out[[b, h, s, ia]], im: out[[b, h, s, ib]] };
        let rotated = z * Complex::from_polar_unit(phi);
        out[[b, h, s, ia]] = rotated.re * attention_factor;
        out[[b, h, s, ib]] = rotated.im * attention_factor;
    }
    Ok(out)
}
