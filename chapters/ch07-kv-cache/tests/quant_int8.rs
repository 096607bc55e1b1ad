//! Symmetric INT8 against an f64 reference, per channel (K) and per token (V).

mod quant_reference;

use attn_support::ndarray::Array2;
use ch07_kv_cache::quant::int8::{Int8Granularity, quantize_int8};
use proptest::prelude::*;
use quant_reference::{block, div32};

/// The groups of `(t, d)` elements that share a scale, by element.
fn group_of(granularity: Int8Granularity, t: usize, c: usize) -> (usize, usize) {
    match granularity {
        Int8Granularity::PerChannel { tokens_per_group } => (t / tokens_per_group, c),
        Int8Granularity::PerToken => (t, 0),
    }
}

/// Checks codes and scales bit for bit against the reference, and the error bound.
fn check(t: usize, d: usize, values: &[f32], granularity: Int8Granularity) {
    let x = Array2::from_shape_vec((t, d), values.to_vec()).unwrap();
    let q = quantize_int8(x.view(), granularity).unwrap();
    // Reference: each group's absmax over its elements, s = absmax / 127 in one rounding,
    // q = round-half-even(x / s) clamped to ±127.
    let mut absmax = std::collections::HashMap::<(usize, usize), f64>::new();
    for ((token, c), &v) in x.indexed_iter() {
        let m = absmax.entry(group_of(granularity, token, c)).or_insert(0.0);
        *m = m.max(f64::from(v).abs());
    }
    let decoded = q.dequantize();
    for ((token, c), &v) in x.indexed_iter() {
        let scale = (absmax[&group_of(granularity, token, c)] / 127.0) as f32;
        assert_eq!(q.scale_of(token, c).to_bits(), scale.to_bits(), "scale of ({token}, {c})");
        let code = if scale == 0.0 {
            0.0
        } else {
            f64::from(div32(v, scale)).round_ties_even().clamp(-127.0, 127.0)
        };
        assert_eq!(f64::from(q.codes[(token, c)]), code, "({token}, {c}) = {v}, scale {scale}");
        let error = f64::from((decoded[(token, c)] - v).abs());
        // Half a step, plus the roundings of x / s and q·s (relative 2^−24 each).
        let bound = f64::from(scale) / 2.0 + 2f64.powi(-22) * f64::from(scale) * 127.0;
        assert!(error <= bound, "({token}, {c}): {v} → {}", decoded[(token, c)]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn per_token_matches_the_reference((t, d, v) in block(20, 40)) {
        check(t, d, &v, Int8Granularity::PerToken);
    }

    #[test]
    fn per_channel_matches_the_reference((t, d, v) in block(40, 20), g in 1usize..12) {
        check(t, d, &v, Int8Granularity::PerChannel { tokens_per_group: g });
    }
}

#[test]
fn scales_have_the_documented_shapes() {
    let x = Array2::from_shape_fn((10, 3), |(t, c)| (t * 3 + c) as f32 - 14.0);
    let k = quantize_int8(x.view(), Int8Granularity::PerChannel { tokens_per_group: 4 }).unwrap();
    assert_eq!(k.scales.dim(), (3, 3), "⌈10 / 4⌉ groups of tokens × 3 channels");
    let v = quantize_int8(x.view(), Int8Granularity::PerToken).unwrap();
    assert_eq!(v.scales.dim(), (10, 1));
}

#[test]
fn zero_and_constant_groups() {
    let mut x = Array2::<f32>::zeros((5, 4));
    x.column_mut(2).fill(-3.25);
    for g in [Int8Granularity::PerChannel { tokens_per_group: 2 }, Int8Granularity::PerToken] {
        let q = quantize_int8(x.view(), g).unwrap();
        let y = q.dequantize();
        assert!(y.iter().all(|v| v.is_finite()), "{g:?}");
        assert!(y.column(0).iter().all(|&v| v == 0.0));
        // −3.25 is the group's absmax: code −127, value −127·(3.25/127) = −3.25 up to rounding.
        assert!(y.column(2).iter().all(|&v| (v + 3.25).abs() <= 4e-7), "{g:?}: {y}");
    }
}

#[test]
fn per_channel_scales_protect_ordinary_channels_from_an_outlier_channel() {
    // Channel 0 carries values ~100, the others ~1 (what real keys look like).
    let x = Array2::from_shape_fn((32, 8), |(t, c)| {
        let base = ((t * 7 + c * 13) % 17) as f32 / 17.0 - 0.5;
        if c == 0 { 100.0 + base } else { base }
    });
    let err = |g| {
        let y = quantize_int8(x.view(), g).unwrap().dequantize();
        // The error on the ordinary channels 1..8.
        (0..32).flat_map(|t| (1..8).map(move |c| (t, c))).map(|i| (y[i] - x[i]).abs()).fold(0f32, f32::max)
    };
    let per_token = err(Int8Granularity::PerToken);
    let per_channel = err(Int8Granularity::PerChannel { tokens_per_group: 32 });
    assert!(per_channel * 50.0 < per_token, "per channel {per_channel}, per token {per_token}");
}

#[test]
fn bytes_per_element_count_the_f32_scales() {
    assert_eq!(Int8Granularity::PerToken.bytes_per_element(64), 1.0625);
    assert_eq!(Int8Granularity::PerChannel { tokens_per_group: 32 }.bytes_per_element(64), 1.125);
}

#[test]
fn bad_input_is_an_error_that_names_it() {
    let x = Array2::from_shape_vec((1, 2), vec![1.0f32, f32::NAN]).unwrap();
    let e = quantize_int8(x.view(), Int8Granularity::PerToken).unwrap_err().to_string();
    assert!(e.contains("token 0, channel 1"), "{e}");
    let y = Array2::<f32>::zeros((2, 2));
    let e = quantize_int8(y.view(), Int8Granularity::PerChannel { tokens_per_group: 0 });
    assert!(e.unwrap_err().to_string().contains("tokens_per_group is 0"));
}
