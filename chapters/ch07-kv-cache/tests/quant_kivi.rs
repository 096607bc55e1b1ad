//! KIVI's asymmetric 2/4-bit groups against an f64 reference, the bit-packing against its
//! layout written out by hand, and the full-precision window's split.

mod quant_reference;

use attn_support::ndarray::Array2;
use ch07_kv_cache::quant::kivi::{KiviAxis, KiviConfig, KiviSplit, quantize_kivi};
use ch07_kv_cache::quant::packing::{pack_codes, packed_len, unpack_codes};
use proptest::prelude::*;
use quant_reference::{add32, block, div32, mul32, sub32};

#[test]
fn packing_layout_is_low_bits_first() {
    // 2 bits: byte = c0 | c1 << 2 | c2 << 4 | c3 << 6; a partial last byte is zero-padded.
    assert_eq!(pack_codes(&[1, 2, 3, 0, 3], 2).unwrap(), vec![0b00_11_10_01, 0b0000_0011]);
    // 4 bits: byte = c0 | c1 << 4.
    assert_eq!(pack_codes(&[0xA, 0x5, 0xF], 4).unwrap(), vec![0x5A, 0x0F]);
    assert_eq!(packed_len(64, 2), 16);
    assert_eq!(packed_len(63, 4), 32);
    assert!(pack_codes(&[4], 2).unwrap_err().to_string().contains("code 0 is 4"));
    assert!(pack_codes(&[1], 3).is_err());
    assert!(unpack_codes(&[0], 4, 3).is_err(), "3 codes of 4 bits need 2 bytes");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn packing_round_trips_bit_exactly(
        bits in prop_oneof![Just(2u32), Just(4u32)],
        raw in proptest::collection::vec(any::<u8>(), 0..70),
    ) {
        let codes: Vec<u8> = raw.iter().map(|c| c & ((1 << bits) - 1)).collect();
        let packed = pack_codes(&codes, bits).unwrap();
        prop_assert_eq!(packed.len(), (codes.len() * bits as usize).div_ceil(8));
        // Bit j of code i is bit i·bits + j of the packed little-endian bit string.
        for (i, &c) in codes.iter().enumerate() {
            for j in 0..bits as usize {
                let bit = i * bits as usize + j;
                prop_assert_eq!((packed[bit / 8] >> (bit % 8)) & 1, (c >> j) & 1);
            }
        }
        prop_assert_eq!(unpack_codes(&packed, bits, codes.len()).unwrap(), codes);
    }
}

/// The group `(i, j)` of element `(t, c)`.
fn group_of(axis: KiviAxis, g: usize, t: usize, c: usize) -> (usize, usize) {
    match axis {
        KiviAxis::PerChannel => (t / g, c),
        KiviAxis::PerToken => (t, c / g),
    }
}

/// Codes, scales, minima and decoded values against the reference, bit for bit; the error
/// bound `|x − x̂| ≤ s/2` up to f32 rounding.
fn check(t: usize, d: usize, values: &[f32], axis: KiviAxis, config: KiviConfig) {
    let x = Array2::from_shape_vec((t, d), values.to_vec()).unwrap();
    let q = quantize_kivi(x.view(), axis, &config).unwrap();
    let mut range = std::collections::HashMap::<(usize, usize), (f32, f32)>::new();
    for ((token, c), &v) in x.indexed_iter() {
        let r = range.entry(group_of(axis, config.group, token, c)).or_insert((v, v));
        *r = (r.0.min(v), r.1.max(v));
    }
    let levels = ((1u32 << config.bits) - 1) as f32;
    let codes = q.codes().unwrap();
    let decoded = q.dequantize().unwrap();
    for ((token, c), &v) in x.indexed_iter() {
        let group = group_of(axis, config.group, token, c);
        let (min, max) = range[&group];
        // s = (M − m) / (2^b − 1), q = RNE((x − m) / s) in 0..=2^b − 1, x̂ = q·s + m, each
        // operation rounded once to f32 as the encoder computes it.
        let scale = div32(sub32(max, min), levels);
        assert_eq!(q.scales[group].to_bits(), scale.to_bits(), "scale of group {group:?}");
        assert_eq!(q.minima[group].to_bits(), min.to_bits());
        let code =
            if scale == 0.0 { 0.0 } else { div32(sub32(v, min), scale).round_ties_even().clamp(0.0, levels) };
        assert_eq!(f32::from(codes[(token, c)]), code, "({token}, {c}) = {v}");
        let value = add32(mul32(code, scale), min);
        assert_eq!(decoded[(token, c)].to_bits(), value.to_bits(), "({token}, {c})");
        let slack = 2f32.powi(-21) * (min.abs() + max.abs());
        assert!((value - v).abs() <= scale / 2.0 + slack, "({token}, {c}): {v} → {value}");
        if v == min {
            assert_eq!(value, min, "the minimum is exact");
        }
    }
}

fn config(bits: u32, group: usize) -> KiviConfig {
    KiviConfig::new(bits, group, 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn keys_per_channel_match_the_reference(
        (t, d, v) in block(40, 12), bits in prop_oneof![Just(2u32), Just(4u32)], g in 1usize..10,
    ) {
        check(t, d, &v, KiviAxis::PerChannel, config(bits, g));
    }

    #[test]
    fn values_per_token_match_the_reference(
        (t, d, v) in block(10, 70), bits in prop_oneof![Just(2u32), Just(4u32)], g in 1usize..40,
    ) {
        check(t, d, &v, KiviAxis::PerToken, config(bits, g));
    }
}

#[test]
fn zero_and_constant_groups_are_exact() {
    let mut x = Array2::<f32>::zeros((6, 8));
    x.row_mut(1).fill(2.5);
    x.column_mut(5).fill(-7.0);
    for axis in [KiviAxis::PerChannel, KiviAxis::PerToken] {
        for bits in [2, 4] {
            // Groups of one element are constant; groups of 3 and 8 mix the patterns.
            for g in [1, 3, 8] {
                let y = quantize_kivi(x.view(), axis, &config(bits, g)).unwrap();
                let y = y.dequantize().unwrap();
                assert!(y.iter().all(|v| v.is_finite()));
                if g == 1 {
                    assert_eq!(y, x, "{axis:?} {bits} bits");
                }
            }
        }
    }
    let constant = Array2::from_elem((4, 4), 0.3f32);
    for axis in [KiviAxis::PerChannel, KiviAxis::PerToken] {
        let y = quantize_kivi(constant.view(), axis, &config(2, 4)).unwrap();
        assert_eq!(y.dequantize().unwrap(), constant);
    }
}

#[test]
fn group_and_packed_shapes() {
    let x = Array2::from_shape_fn((10, 6), |(t, c)| (t as f32 - c as f32) * 0.1);
    let k = quantize_kivi(x.view(), KiviAxis::PerChannel, &config(2, 4)).unwrap();
    assert_eq!(k.scales.dim(), (3, 6), "⌈10 / 4⌉ token groups × 6 channels");
    assert_eq!(k.packed.len(), 10 * 2, "6 codes of 2 bits take 2 bytes a row");
    let v = quantize_kivi(x.view(), KiviAxis::PerToken, &config(4, 4)).unwrap();
    assert_eq!(v.scales.dim(), (10, 2), "10 tokens × ⌈6 / 4⌉ channel groups");
    assert_eq!(v.packed.len(), 10 * 3);
    assert_eq!(v.bytes(), 30 + 2 * 4 * 20);
}

#[test]
fn the_window_keeps_r_recent_tokens_and_quantises_whole_groups() {
    let c = KiviConfig::new(2, 32, 128).unwrap();
    let split = |len| {
        let s = c.split(len);
        (s.quantised, s.full_precision)
    };
    assert_eq!(split(0), (0, 0));
    assert_eq!(split(100), (0, 100), "shorter than the window: all exact");
    assert_eq!(split(159), (0, 159), "31 tokens outside the window: no whole group yet");
    assert_eq!(split(160), (32, 128));
    assert_eq!(split(191), (32, 159));
    assert_eq!(split(1000), (864, 136));
    let values = |len| {
        let s = c.split_values(len);
        (s.quantised, s.full_precision)
    };
    assert_eq!(values(100), (0, 100));
    assert_eq!(values(191), (63, 128), "values leave the window one at a time");
    let no_window = KiviConfig::new(4, 32, 0).unwrap();
    assert_eq!(no_window.split(70), KiviSplit { quantised: 64, full_precision: 6 });
}

proptest! {
    #[test]
    fn split_invariants(len in 0usize..5000, g in 1usize..70, r in 0usize..300) {
        let s = KiviConfig::new(2, g, r).unwrap().split(len);
        prop_assert_eq!(s.quantised + s.full_precision, len);
        prop_assert_eq!(s.quantised % g, 0);
        prop_assert!(s.full_precision >= r.min(len));
        prop_assert!(s.full_precision < r + g || len < r + g);
    }
}

#[test]
fn bits_per_element_and_bad_configs() {
    assert_eq!(config(2, 32).bits_per_element(), 4.0, "2 + 64/32");
    assert_eq!(config(4, 128).bits_per_element(), 4.5);
    assert!(KiviConfig::new(3, 32, 0).unwrap_err().to_string().contains("not 3"));
    assert!(KiviConfig::new(2, 0, 0).is_err());
    let x = Array2::from_shape_vec((1, 2), vec![f32::NEG_INFINITY, 0.0]).unwrap();
    let e = quantize_kivi(x.view(), KiviAxis::PerToken, &config(2, 2)).unwrap_err();
    assert!(e.to_string().contains("token 0, channel 0"), "{e}");
    let huge = Array2::from_shape_vec((1, 2), vec![-3e38f32, 3e38]).unwrap();
    assert!(quantize_kivi(huge.view(), KiviAxis::PerToken, &config(2, 2)).is_err());
}
