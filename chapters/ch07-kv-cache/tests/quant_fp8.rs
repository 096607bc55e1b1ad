//! FP8 E4M3 against the OCP OFP8 spec's value table, a table-search encoder, and PyTorch's
//! `float8_e4m3fn` (`fixtures/quant/fp8_e4m3_torch.json`, made by `make_fp8_fixture.py`; a
//! missing fixture fails the test, it never skips).

mod quant_reference;

use attn_support::ndarray::Array2;
use ch07_kv_cache::quant::fp8::{
    E4M3_MAX, Fp8Scaling, e4m3_to_f32, f32_to_e4m3, quantize_fp8, quantize_fp8_with_scale,
};
use proptest::prelude::*;
use quant_reference::{block, div32, ref_e4m3, spec_e4m3};
use serde::Deserialize;

#[test]
fn all_256_codes_decode_to_the_spec_table() {
    for code in 0..=255u8 {
        let (ours, spec) = (e4m3_to_f32(code), spec_e4m3(code));
        if spec.is_nan() {
            assert!(ours.is_nan(), "code {code:#04x}: {ours}, spec NaN");
        } else {
            assert_eq!(f64::from(ours), spec, "code {code:#04x}");
            assert_eq!(ours.is_sign_negative(), code & 0x80 != 0, "sign of {code:#04x}");
        }
    }
}

#[test]
fn anchors() {
    assert_eq!(e4m3_to_f32(0x7E), 448.0);
    assert_eq!(e4m3_to_f32(0xFE), -448.0);
    assert_eq!(e4m3_to_f32(0x08), 2f32.powi(-6), "smallest normal");
    assert_eq!(e4m3_to_f32(0x07), 7.0 * 2f32.powi(-9), "largest subnormal");
    assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9), "smallest subnormal");
    assert_eq!(e4m3_to_f32(0x38), 1.0);
    assert_eq!(e4m3_to_f32(0x78), 256.0, "E = 15 is an ordinary exponent");
    assert!(e4m3_to_f32(0x7F).is_nan() && e4m3_to_f32(0xFF).is_nan());
    assert_eq!(e4m3_to_f32(0x00).to_bits(), 0.0f32.to_bits());
    assert_eq!(e4m3_to_f32(0x80).to_bits(), (-0.0f32).to_bits());
    let nan_codes = (0..=255u8).filter(|&c| e4m3_to_f32(c).is_nan()).count();
    assert_eq!(nan_codes, 2, "only S.1111.111 is NaN; there are no infinities");
}

#[test]
fn every_representable_value_round_trips() {
    for code in (0..=255u8).filter(|&c| c & 0x7F != 0x7F) {
        assert_eq!(f32_to_e4m3(e4m3_to_f32(code)), code, "code {code:#04x}");
    }
}

#[test]
fn midpoints_round_to_the_even_code_and_neighbours_to_the_nearest() {
    for low in 0..0x7Eu8 {
        let (a, b) = (e4m3_to_f32(low), e4m3_to_f32(low + 1));
        let mid = (a + b) / 2.0; // exact: 5 significant bits
        let even = if low % 2 == 0 { low } else { low + 1 };
        for sign in [0x00, 0x80] {
            let s = if sign == 0 { 1.0 } else { -1.0 };
            assert_eq!(f32_to_e4m3(s * mid), sign | even, "midpoint {mid} of {low:#04x}");
            assert_eq!(f32_to_e4m3(s * mid.next_down()), sign | low, "below {mid}");
            assert_eq!(f32_to_e4m3(s * mid.next_up()), sign | (low + 1), "above {mid}");
        }
    }
}

#[test]
fn beyond_448_saturates_and_nan_stays_nan() {
    for x in [448.0f32, 448.5, 463.99, 464.0, 464.00003, 480.0, 1e4, f32::MAX, f32::INFINITY] {
        assert_eq!(f32_to_e4m3(x), 0x7E, "{x}");
        assert_eq!(f32_to_e4m3(-x), 0xFE, "{}", -x);
    }
    assert_eq!(f32_to_e4m3(f32::NAN), 0x7F);
    assert_eq!(f32_to_e4m3(-f32::NAN), 0xFF);
    // Below the smallest subnormal: half of it is a tie that goes to the even code, 0.
    assert_eq!(f32_to_e4m3(2f32.powi(-10)), 0x00);
    assert_eq!(f32_to_e4m3(2f32.powi(-10).next_up()), 0x01);
    assert_eq!(f32_to_e4m3(-1e-45), 0x80);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn encode_equals_the_table_search(x in prop_oneof![
        any::<u32>().prop_map(f32::from_bits),
        -500.0f32..500.0,
        -0.02f32..0.02,
    ]) {
        prop_assert_eq!(f32_to_e4m3(x), ref_e4m3(x), "x = {:e} ({:#010x})", x, x.to_bits());
    }
}

#[derive(Deserialize)]
struct TorchFixture {
    torch_version: String,
    saturates: bool,
    decoded_bits: Vec<u32>,
    input_bits: Vec<u32>,
    codes: Vec<u8>,
}

#[test]
fn agrees_with_pytorch_float8_e4m3fn() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quant/fp8_e4m3_torch.json");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; run make_fp8_fixture.py next to it"));
    let fixture: TorchFixture = serde_json::from_str(&text).expect("the fixture parses");
    assert_eq!(fixture.decoded_bits.len(), 256);
    for (code, &bits) in fixture.decoded_bits.iter().enumerate() {
        let (torch, ours) = (f32::from_bits(bits), e4m3_to_f32(code as u8));
        if torch.is_nan() {
            assert!(ours.is_nan(), "code {code:#04x}: torch NaN, ours {ours}");
        } else {
            assert_eq!(ours.to_bits(), bits, "code {code:#04x}: torch {torch}, ours {ours}");
        }
    }
    assert_eq!(fixture.input_bits.len(), fixture.codes.len());
    let mut compared = 0;
    for (&bits, &torch) in fixture.input_bits.iter().zip(&fixture.codes) {
        let x = f32::from_bits(bits);
        let ours = f32_to_e4m3(x);
        if !fixture.saturates && x.abs() > 464.0 && !x.is_nan() {
            // A non-saturating PyTorch makes these NaN; ours saturates by design.
            assert_eq!(torch & 0x7F, 0x7F, "torch {} on {x}", fixture.torch_version);
            assert_eq!(ours & 0x7F, 0x7E, "{x} saturates");
            continue;
        }
        assert_eq!(ours, torch, "x = {x:e} ({bits:#010x}), torch {}", fixture.torch_version);
        compared += 1;
    }
    assert!(compared > 600, "only {compared} inputs compared");
}

/// The scaled block: codes of `x / s` with `s = absmax / 448` per token or per tensor.
fn check_scaled(t: usize, d: usize, values: &[f32], scaling: Fp8Scaling) {
    let x = Array2::from_shape_vec((t, d), values.to_vec()).unwrap();
    let q = quantize_fp8(x.view(), scaling).unwrap();
    let absmax = |r: &[f32]| r.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale_of = |token: usize| match scaling {
        Fp8Scaling::PerTensor => div32(absmax(values), E4M3_MAX),
        Fp8Scaling::PerToken => div32(absmax(&values[token * d..(token + 1) * d]), E4M3_MAX),
    };
    let decoded = q.dequantize();
    for ((token, c), &v) in x.indexed_iter() {
        let s = scale_of(token);
        assert_eq!(q.scale_of(token).to_bits(), s.to_bits());
        let code = if s == 0.0 { 0 } else { ref_e4m3(div32(v, s)) };
        assert_eq!(q.codes[(token, c)], code, "({token}, {c}) = {v}");
        // 3 mantissa bits: relative error ≤ 2^−4 in the normal range, absolute ≤ 2^−10·s
        // (half the subnormal spacing) below it.
        let err = (decoded[(token, c)] - v).abs();
        assert!(decoded[(token, c)].is_finite());
        assert!(err <= v.abs() / 16.0 * 1.0001 + s / 1024.0, "({token}, {c}): {v} → {err}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn per_token_blocks_match_the_reference((t, d, v) in block(12, 70)) {
        check_scaled(t, d, &v, Fp8Scaling::PerToken);
    }

    #[test]
    fn per_tensor_blocks_match_the_reference((t, d, v) in block(12, 70)) {
        check_scaled(t, d, &v, Fp8Scaling::PerTensor);
    }
}

#[test]
fn all_zero_block_gives_zeros_not_nan() {
    let x = Array2::<f32>::zeros((3, 8));
    for scaling in [Fp8Scaling::PerTensor, Fp8Scaling::PerToken] {
        let q = quantize_fp8(x.view(), scaling).unwrap();
        assert!(q.dequantize().iter().all(|&v| v == 0.0));
    }
}

#[test]
fn a_static_scale_saturates_outliers() {
    let x = Array2::from_shape_vec((1, 3), vec![1.0f32, 10.0, -1000.0]).unwrap();
    let q = quantize_fp8_with_scale(x.view(), 1.0 / 44.8).unwrap(); // 10 maps to 448
    let y = q.dequantize();
    assert_eq!(q.codes[(0, 1)], 0x7E);
    assert_eq!(q.codes[(0, 2)], 0xFE, "−1000 saturates at −448·s = −10");
    assert!((y[(0, 2)] + 10.0).abs() < 1e-5);
    assert!(quantize_fp8_with_scale(x.view(), 0.0).is_err());
    assert!(quantize_fp8_with_scale(x.view(), f32::NAN).is_err());
}

#[test]
fn non_finite_input_is_an_error_that_names_it() {
    let x = Array2::from_shape_vec((2, 2), vec![1.0f32, 2.0, f32::INFINITY, 0.0]).unwrap();
    let e = quantize_fp8(x.view(), Fp8Scaling::PerToken).unwrap_err().to_string();
    assert!(e.contains("token 1, channel 0") && e.contains("inf"), "{e}");
}
