//! Independent f64 references for the quantisation tests: the formats' value tables computed
//! from their specifications' formulas, and "nearest table value, ties to even" encoders that
//! search the table instead of manipulating bits as the crate does.
// Each test file uses a part of this module.
#![allow(dead_code)]

use proptest::prelude::*;

const E4M3_BIAS: i32 = 7;
const E2M1_BIAS: i32 = 1;

/// OCP OFP8 E4M3: `S.EEEE.MMM`, bias 7, subnormals at E = 0, NaN only at S.1111.111.
pub fn spec_e4m3(code: u8) -> f64 {
    let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((code >> 3) & 0xF);
    let m = f64::from(code & 0x7);
    if e == 15 && m == 7.0 {
        return f64::NAN;
    }
    sign * if e == 0 {
        2f64.powi(1 - E4M3_BIAS) * (m / 8.0)
    } else {
        2f64.powi(e - E4M3_BIAS) * (1.0 + m / 8.0)
    }
}

/// OCP MX v1.0 E2M1: `S.EE.M`, bias 1, subnormal at E = 0, no NaN or infinity.
pub fn spec_e2m1(code: u8) -> f64 {
    let sign = if code & 0x8 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((code >> 1) & 0x3);
    let m = f64::from(code & 0x1);
    sign * if e == 0 {
        2f64.powi(1 - E2M1_BIAS) * (m / 2.0)
    } else {
        2f64.powi(e - E2M1_BIAS) * (1.0 + m / 2.0)
    }
}

/// The code among `0..=max_code` (non-negative codes of a sign-magnitude format) whose value is
/// nearest `a ≥ 0`, ties to the even code; above the largest value it saturates.
fn nearest_magnitude_code(a: f64, max_code: u8, value: impl Fn(u8) -> f64) -> u8 {
    if a >= value(max_code) {
        return max_code;
    }
    let mut best = 0u8;
    for code in 1..=max_code {
        let (d, d_best) = ((value(code) - a).abs(), (value(best) - a).abs());
        if d < d_best || (d == d_best && code % 2 == 0) {
            best = code;
        }
    }
    best
}

/// Saturating E4M3 encoder by table search: NaN → 0x7F with the sign.
pub fn ref_e4m3(x: f32) -> u8 {
    let sign = if x.is_sign_negative() { 0x80 } else { 0 };
    if x.is_nan() {
        return sign | 0x7F;
    }
    sign | nearest_magnitude_code(f64::from(x.abs()), 0x7E, spec_e4m3)
}

/// Saturating E2M1 encoder by table search.
pub fn ref_e2m1(x: f32) -> u8 {
    let sign = if x.is_sign_negative() { 0x8 } else { 0 };
    sign | nearest_magnitude_code(f64::from(x.abs()), 0x7, spec_e2m1)
}

/// `a / b` rounded once to f32. For f32 operands the f64 quotient rounded to f32 is the
/// correctly rounded f32 quotient (53 ≥ 2·24 + 2 bits: double rounding is harmless), so this is
/// what an f32 division gives, computed another way.
pub fn div32(a: f32, b: f32) -> f32 {
    (f64::from(a) / f64::from(b)) as f32
}

/// `a · b` rounded once to f32 (exact in f64, then one rounding).
pub fn mul32(a: f32, b: f32) -> f32 {
    (f64::from(a) * f64::from(b)) as f32
}

/// `a + b` and `a − b` rounded once to f32 (harmless double rounding, as for [`div32`]).
pub fn add32(a: f32, b: f32) -> f32 {
    (f64::from(a) + f64::from(b)) as f32
}
pub fn sub32(a: f32, b: f32) -> f32 {
    (f64::from(a) - f64::from(b)) as f32
}

/// One element of a test block: ordinary values, zeros, tiny and large ones.
fn element() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -4.0f32..4.0,
        1 => Just(0.0f32),
        1 => -1e-3f32..1e-3,
        1 => -300.0f32..300.0,
    ]
}

/// A `(tokens, head_dim)` block, row-major, with lengths from 1 up, not multiples of anything;
/// some blocks scale a few channels up (outlier channels, as real keys have).
pub fn block(max_tokens: usize, max_dim: usize) -> impl Strategy<Value = (usize, usize, Vec<f32>)> {
    (1..=max_tokens, 1..=max_dim, any::<bool>()).prop_flat_map(|(t, d, outliers)| {
        proptest::collection::vec(element(), t * d).prop_map(move |mut v| {
            if outliers {
                for (i, x) in v.iter_mut().enumerate() {
                    if i % d % 7 == 3 {
                        *x *= 50.0;
                    }
                }
            }
            (t, d, v)
        })
    })
}
