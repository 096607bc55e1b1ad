//! Dequantisation of random blocks in random shapes, read through a GGUF file, against an
//! independent f64 reference written from the formats' definitions:
//! Q8_0 `x = d·q`, Q4_1 `x = d·q + m` with byte `j` holding elements `j` (low
//! nibble) and `j + 16` (high nibble), f16 by its bit fields, bf16 as the top half of an f32.
//!
//! Every f32 result must equal the reference bit for bit: `d·q` is exact in f32 (11 × 8 bits)
//! and the sum with `m` spans fewer than 53 bits, so the f64 value rounded once to f32 is what
//! a correctly rounded f32 addition gives.

use attn_model::gguf::{GgmlType, GgufFile, GgufWriter};
use proptest::prelude::*;

/// An f16's value from its bits: sign, 5-bit exponent (bias 15), 10-bit mantissa.
fn f16_value(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1F);
    let mantissa = f64::from(bits & 0x3FF);
    match exponent {
        0 => sign * mantissa * 2f64.powi(-24),
        0x1F => panic!("not finite"),
        e => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
    }
}

fn finite_f16() -> impl Strategy<Value = u16> {
    any::<u16>().prop_filter("finite", |b| (b >> 10) & 0x1F != 0x1F)
}

/// `rows × blocks` blocks of `ty` from the random parts, as bytes, with their reference values.
fn q8_0_reference(scales: &[u16], quants: &[i8]) -> (Vec<u8>, Vec<f32>) {
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for (b, &d) in scales.iter().enumerate() {
        bytes.extend(d.to_le_bytes());
        for &q in &quants[32 * b..32 * (b + 1)] {
            bytes.push(q as u8);
            want.push((f16_value(d) * f64::from(q)) as f32);
        }
    }
    (bytes, want)
}

fn q4_1_reference(scales: &[(u16, u16)], nibbles: &[u8]) -> (Vec<u8>, Vec<f32>) {
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for (b, &(d, m)) in scales.iter().enumerate() {
        bytes.extend(d.to_le_bytes());
        bytes.extend(m.to_le_bytes());
        let q = &nibbles[32 * b..32 * (b + 1)];
        // Pack: element j into the low nibble of byte j, element j + 16 into its high nibble.
        bytes.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
        want.extend(q.iter().map(|&qi| (f16_value(d) * f64::from(qi) + f16_value(m)) as f32));
    }
    (bytes, want)
}

fn read_back(ty: GgmlType, dims: &[u64], bytes: Vec<u8>) -> Vec<f32> {
    let file =
        GgufFile::parse(GgufWriter::new().tensor("w", dims, ty, bytes).to_bytes(), "random.gguf").unwrap();
    let values = file.dequantize("w").unwrap();
    assert_eq!(values.shape(), dims.iter().rev().map(|&d| d as usize).collect::<Vec<_>>().as_slice());
    values.into_raw_vec_and_offset().0
}

fn assert_bits_equal(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "element {i}: {g} vs {w}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn q8_0_equals_the_reference(rows in 1usize..4, blocks in 1usize..5, seed in any::<u64>()) {
        let n = rows * blocks;
        let mut rng = proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed.to_le_bytes().repeat(4));
        let scales: Vec<u16> = (0..n).map(|_| loop { let b = rng.random::<u16>(); if (b >> 10) & 0x1F != 0x1F { break b } }).collect();
        let quants: Vec<i8> = (0..32 * n).map(|_| rng.random()).collect();
        let (bytes, want) = q8_0_reference(&scales, &quants);
        assert_bits_equal(&read_back(GgmlType::Q8_0, &[32 * blocks as u64, rows as u64], bytes), &want);
    }

    #[test]
    fn q4_1_equals_the_reference(rows in 1usize..4, blocks in 1usize..5, seed in any::<u64>()) {
        let n = rows * blocks;
        let mut rng = proptest::test_runner::TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &seed.to_le_bytes().repeat(4));
        let finite = |rng: &mut proptest::test_runner::TestRng| loop { let b = rng.random::<u16>(); if (b >> 10) & 0x1F != 0x1F { break b } };
        let scales: Vec<(u16, u16)> = (0..n).map(|_| (finite(&mut rng), finite(&mut rng))).collect();
        let nibbles: Vec<u8> = (0..32 * n).map(|_| rng.random::<u8>() & 0xF).collect();
        let (bytes, want) = q4_1_reference(&scales, &nibbles);
        assert_bits_equal(&read_back(GgmlType::Q4_1, &[32 * blocks as u64, rows as u64], bytes), &want);
    }

    #[test]
    fn f16_equals_its_bit_fields(values in prop::collection::vec(finite_f16(), 1..70)) {
        let bytes = values.iter().flat_map(|b| b.to_le_bytes()).collect();
        let want: Vec<f32> = values.iter().map(|&b| f16_value(b) as f32).collect();
        assert_bits_equal(&read_back(GgmlType::F16, &[values.len() as u64], bytes), &want);
    }

    #[test]
    fn bf16_is_the_top_half_of_an_f32(values in prop::collection::vec(any::<u16>(), 1..70)) {
        let bytes = values.iter().flat_map(|b| b.to_le_bytes()).collect();
        let want: Vec<f32> = values.iter().map(|&b| f32::from_bits(u32::from(b) << 16)).collect();
        assert_bits_equal(&read_back(GgmlType::BF16, &[values.len() as u64], bytes), &want);
    }
}
