//! FP4 E2M1 against the OCP MX v1.0 value table, and NVFP4 / MXFP4 blocks against f64
//! reference implementations written from NVIDIA's description and the MX spec's §6.3.

mod quant_reference;

use attn_support::ndarray::Array2;
use ch07_kv_cache::quant::fp4::mxfp4::{
    E8M0_NAN_CODE, e8m0_to_f32, floor_log2, mxfp4_scale_code, quantize_mxfp4,
};
use ch07_kv_cache::quant::fp4::nvfp4::{quantize_nvfp4, quantize_nvfp4_with_tensor_scale};
use ch07_kv_cache::quant::fp4::{Fp4Block, Fp4Format, e2m1_to_f32, f32_to_e2m1};
use ch07_kv_cache::quant::fp8::e4m3_to_f32;
use proptest::prelude::*;
use quant_reference::{block, div32, mul32, ref_e2m1, ref_e4m3, spec_e2m1};

#[test]
fn all_16_codes_decode_to_the_spec_table() {
    let table = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    for code in 0..16u8 {
        let ours = e2m1_to_f32(code);
        assert_eq!(f64::from(ours), spec_e2m1(code), "code {code:#x} vs the formula");
        let magnitude = table[usize::from(code & 7)];
        assert_eq!(ours, if code & 8 != 0 { -magnitude } else { magnitude }, "code {code:#x}");
        assert_eq!(ours.is_sign_negative(), code & 8 != 0);
        assert_eq!(f32_to_e2m1(ours), code, "code {code:#x} round-trips");
    }
}

#[test]
fn ties_go_to_the_even_code() {
    // Midpoint → (code of the even neighbour): 0.25 between 0 (000) and 0.5 (001) → 0, …
    let cases = [(0.25, 0), (0.75, 2), (1.25, 2), (1.75, 4), (2.5, 4), (3.5, 6), (5.0, 6)];
    for (mid, code) in cases {
        assert_eq!(f32_to_e2m1(mid), code, "{mid}");
        assert_eq!(f32_to_e2m1(-mid), 8 | code, "{}", -mid);
    }
    for low in 0..7u8 {
        let mid = (e2m1_to_f32(low) + e2m1_to_f32(low + 1)) / 2.0;
        assert_eq!(f32_to_e2m1(mid.next_down()), low);
        assert_eq!(f32_to_e2m1(mid.next_up()), low + 1);
    }
    for x in [6.0f32, 7.0, 8.0, 1e30, f32::INFINITY] {
        assert_eq!(f32_to_e2m1(x), 7, "{x} saturates at 6");
        assert_eq!(f32_to_e2m1(-x), 15);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn e2m1_encode_equals_the_table_search(x in prop_oneof![
        any::<u32>().prop_map(f32::from_bits).prop_filter("finite", |x| x.is_finite()),
        -8.0f32..8.0,
    ]) {
        prop_assert_eq!(f32_to_e2m1(x), ref_e2m1(x), "x = {}", x);
    }

    #[test]
    fn floor_log2_is_exact(bits in 1u32..0x7F80_0000) {
        let a = f32::from_bits(bits); // every positive finite f32, subnormals included
        let k = floor_log2(a);
        prop_assert!(2f64.powi(k) <= f64::from(a) && f64::from(a) < 2f64.powi(k + 1), "{a:e}: {k}");
    }
}

#[test]
fn e8m0_codes_are_powers_of_two_and_255_is_nan() {
    for code in 0..=254u8 {
        assert_eq!(f64::from(e8m0_to_f32(code)), 2f64.powi(i32::from(code) - 127), "{code}");
    }
    assert!(e8m0_to_f32(E8M0_NAN_CODE).is_nan());
    assert_eq!(e8m0_to_f32(127), 1.0);
    assert_eq!(e8m0_to_f32(0), 2f32.powi(-127));
}

/// OCP MX v1.0 §6.3: `shared_exp = ⌊log2(max |V|)⌋ − emax_elem`, emax_elem = 2 for E2M1,
/// within E8M0's −127 … 127; an all-zero block gets the smallest scale.
fn spec_shared_exponent(block_absmax: f64) -> i32 {
    if block_absmax == 0.0 {
        return -127;
    }
    (block_absmax.log2().floor() as i32 - 2).clamp(-127, 127)
}

#[test]
fn mxfp4_shared_exponent_follows_the_spec() {
    for (absmax, exp) in [(6.0f32, 0), (4.0, 0), (7.99, 0), (8.0, 1), (3.99, -1), (1.0, -2)] {
        assert_eq!(i32::from(mxfp4_scale_code(absmax)) - 127, exp, "absmax {absmax}");
        assert_eq!(spec_shared_exponent(f64::from(absmax)), exp);
    }
    assert_eq!(mxfp4_scale_code(0.0), 0);
    assert_eq!(mxfp4_scale_code(f32::MAX), (127 - 2 + 127) as u8);
    assert_eq!(mxfp4_scale_code(1e-45), 0, "clamped at 2^−127");
}

/// Compares every code, block scale and decoded value of `q` with the reference's.
fn assert_block_equals(
    q: &Fp4Block,
    x: &Array2<f32>,
    block_size: usize,
    reference_scale: impl Fn(&[f32]) -> (u8, f32),
) {
    let codes = q.codes().unwrap();
    let decoded = q.dequantize().unwrap();
    for (t, row) in x.rows().into_iter().enumerate() {
        let row = row.to_vec();
        for (b, chunk) in row.chunks(block_size).enumerate() {
            let (scale_code, scale) = reference_scale(chunk);
            assert_eq!(q.block_scales[(t, b)], scale_code, "token {t} block {b}: {chunk:?}");
            for (i, &v) in chunk.iter().enumerate() {
                let c = b * block_size + i;
                let code = if scale == 0.0 { 0 } else { ref_e2m1(div32(v, scale)) };
                assert_eq!(codes[(t, c)], code, "({t}, {c}) = {v}, scale {scale}");
                let value = mul32(spec_e2m1(code) as f32, scale);
                assert_eq!(decoded[(t, c)].to_bits(), value.to_bits(), "({t}, {c})");
            }
        }
    }
}

fn absmax(values: &[f32]) -> f32 {
    values.iter().fold(0f32, |m, v| m.max(v.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn mxfp4_blocks_match_the_spec_reference((t, d, v) in block(6, 100)) {
        let x = Array2::from_shape_vec((t, d), v).unwrap();
        let q = quantize_mxfp4(x.view()).unwrap();
        prop_assert_eq!(q.block_scales.dim(), (t, d.div_ceil(32)));
        assert_block_equals(&q, &x, 32, |chunk| {
            let exp = spec_shared_exponent(f64::from(absmax(chunk)));
            ((exp + 127) as u8, 2f64.powi(exp) as f32)
        });
    }

    #[test]
    fn nvfp4_blocks_match_the_reference((t, d, v) in block(6, 70)) {
        let x = Array2::from_shape_vec((t, d), v.clone()).unwrap();
        let q = quantize_nvfp4(x.view()).unwrap();
        // NVIDIA's two-level scale: t = amax / (6·448) per tensor; the block scale
        // E4M3(block amax / (6·t)); elements E2M1(x / (e4m3(s_b)·t)).
        let amax = absmax(&v);
        let tensor_scale = if amax == 0.0 { 1.0 } else { div32(amax, 6.0 * 448.0) };
        prop_assert_eq!(q.tensor_scale.to_bits(), tensor_scale.to_bits());
        prop_assert_eq!(q.block_scales.dim(), (t, d.div_ceil(16)));
        assert_block_equals(&q, &x, 16, |chunk| {
            let code = ref_e4m3(div32(absmax(chunk), mul32(6.0, tensor_scale)));
            (code, mul32(e4m3_to_f32(code), tensor_scale))
        });
        // The block holding the tensor's largest magnitude gets the largest scale, 448.
        if amax > 0.0 {
            let top = q.block_scales.iter().map(|&c| e4m3_to_f32(c)).fold(0f32, f32::max);
            prop_assert_eq!(top, 448.0);
        }
    }
}

#[test]
fn all_zero_blocks_decode_to_zero() {
    let x = Array2::<f32>::zeros((2, 40));
    for q in [quantize_nvfp4(x.view()).unwrap(), quantize_mxfp4(x.view()).unwrap()] {
        assert!(q.dequantize().unwrap().iter().all(|&v| v == 0.0), "{:?}", q.format);
    }
}

#[test]
fn mxfp4_clamps_the_top_of_a_block_to_six() {
    // absmax 7.5: shared exponent ⌊log2 7.5⌋ − 2 = 0, so 7.5 / 1 clamps to 6.
    let x = Array2::from_shape_vec((1, 3), vec![7.5f32, -7.5, 0.3]).unwrap();
    let q = quantize_mxfp4(x.view()).unwrap();
    assert_eq!(q.block_scales[(0, 0)], 127);
    assert_eq!(q.dequantize().unwrap().row(0).to_vec(), vec![6.0, -6.0, 0.5]);
}

#[test]
fn bits_per_element() {
    assert_eq!(Fp4Format::Nvfp4.bits_per_element(), 4.5);
    assert_eq!(Fp4Format::Mxfp4.bits_per_element(), 4.25);
}

#[test]
fn bad_input_is_an_error() {
    let x = Array2::from_shape_vec((1, 2), vec![1.0f32, f32::NAN]).unwrap();
    assert!(quantize_mxfp4(x.view()).unwrap_err().to_string().contains("channel 1"));
    assert!(quantize_nvfp4(x.view()).is_err());
    let y = Array2::from_shape_vec((1, 2), vec![1.0f32, 2.0]).unwrap();
    assert!(quantize_nvfp4_with_tensor_scale(y.view(), 0.0).is_err());
}
