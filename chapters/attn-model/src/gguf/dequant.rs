//! Dequantisation: a tensor's bytes to f32, one block at a time.
//!
//! All values are little-endian. The float types are one value a "block":
//! - **F32**: the IEEE single itself.
//! - **F16**: IEEE half (1 sign, 5 exponent, 10 mantissa bits); every half is exactly an f32.
//! - **BF16**: the top 16 bits of an f32 (1 sign, 8 exponent, 7 mantissa bits): the f32 is the
//!   bf16 shifted left by 16.
//!
//! The quantised types of ggml cut the fastest dimension into blocks of 32 weights, each with
//! its own f16 scale (and offset), so an outlier costs precision only in its own block:
//! - **Q8_0** (34 bytes, 8.5 bits a weight): scale `d` (f16), then 32 signed bytes `q_i`;
//!   `x_i = d·q_i`. ggml's quantiser picks `d = max|x| / 127` and `q_i = round(x_i / d)`, so
//!   the error of each weight is at most `d/2`, 1/254 of the block's largest magnitude (plus
//!   the rounding of `d` to f16).
//! - **Q4_1** (20 bytes, 5 bits a weight): scale `d` (f16), minimum `m` (f16), then 16 bytes
//!   holding 32 unsigned nibbles `q_i ∈ [0, 15]`; `x_i = d·q_i + m`. The quantiser picks
//!   `m = min x`, `d = (max x − min x) / 15` and `q_i = round((x_i − m) / d)`: sixteen levels
//!   spread over the block's range, an error of at most `d/2`, 1/30 of the range (plus the
//!   rounding of `d` and `m` to f16). Byte `j`
//!   holds element `j` in its low nibble and element `j + 16` in its high nibble, so the first
//!   half of the block sits in the low nibbles and the second half in the high ones (not
//!   neighbours sharing a byte).
//!
//! The products are computed in f32 exactly as written (`d * q`, then `+ m`, no fused
//! multiply-add), which is how ggml's reference `dequantize_row_*` and the `gguf` Python
//! package compute them, so results agree bit for bit.

use super::error::GgufError;
use super::tensor::GgmlType;
use half::f16;

/// Elements in a Q8_0 or Q4_1 block.
pub const QK: usize = 32;
/// Bytes of a Q8_0 block: f16 scale + 32 × i8.
pub const Q8_0_BLOCK_BYTES: usize = 2 + QK;
/// Bytes of a Q4_1 block: f16 scale + f16 minimum + 32 × 4 bits.
pub const Q4_1_BLOCK_BYTES: usize = 2 + 2 + QK / 2;

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// One Q8_0 block: `x_i = d·q_i`.
pub fn dequantize_q8_0_block(block: &[u8; Q8_0_BLOCK_BYTES]) -> [f32; QK] {
    let d = f16_at(block, 0);
    std::array::from_fn(|i| d * f32::from(block[2 + i] as i8))
}

/// One Q4_1 block: `x_i = d·q_i + m`, `q_j` the low nibble of byte `j`, `q_{j+16}` its
/// high nibble.
pub fn dequantize_q4_1_block(block: &[u8; Q4_1_BLOCK_BYTES]) -> [f32; QK] {
    let d = f16_at(block, 0);
    let m = f16_at(block, 2);
    let nibbles = &block[4..];
    std::array::from_fn(|i| {
        let byte = nibbles[i % (QK / 2)];
        let q = if i < QK / 2 { byte & 0x0F } else { byte >> 4 };
        d * f32::from(q) + m
    })
}

/// The f32 values of `bytes` holding whole blocks of `ty`.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, GgufError> {
    let block_bytes = ty.block_bytes();
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(GgufError::InvalidArgument(format!(
            "{} bytes are not a whole number of {} blocks of {block_bytes} bytes",
            bytes.len(),
            ty.name()
        )));
    }
    let blocks = bytes.chunks_exact(block_bytes);
    Ok(match ty {
        GgmlType::F32 => blocks.map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
        GgmlType::F16 => blocks.map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        // The shift itself rather than `half::bf16::to_f32`, which sets the quiet bit of a
        // signalling NaN: ggml shifts, and so every bf16 comes back with its bits unchanged.
        GgmlType::BF16 => {
            blocks.map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)).collect()
        }
        GgmlType::Q8_0 => {
            blocks.flat_map(|b| dequantize_q8_0_block(b.try_into().expect("a Q8_0 block"))).collect()
        }
        GgmlType::Q4_1 => {
            blocks.flat_map(|b| dequantize_q4_1_block(b.try_into().expect("a Q4_1 block"))).collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-made blocks with scales that are exact in f16, so every expected value is exact.
    #[test]
    fn q8_0_block_is_scale_times_signed_bytes() {
        let mut block = [0u8; Q8_0_BLOCK_BYTES];
        block[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes()); // 0x3800
        assert_eq!(&block[..2], &[0x00, 0x38]);
        for i in 0..QK {
            block[2 + i] = (i as i32 * 8 - 128) as i8 as u8; // −128, −120, …, 120
        }
        let x = dequantize_q8_0_block(&block);
        for i in 0..QK {
            assert_eq!(x[i], 0.5 * f32::from(block[2 + i] as i8), "element {i}");
        }
        assert_eq!(x[0], -64.0); // byte 0x80 is −128
        assert_eq!(x[31], 60.0);
    }

    #[test]
    fn q4_1_block_low_nibbles_first_half_high_nibbles_second() {
        let mut block = [0u8; Q4_1_BLOCK_BYTES];
        block[..2].copy_from_slice(&f16::from_f32(0.25).to_le_bytes());
        block[2..4].copy_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        // Byte j: low nibble j (elements 0..16 are 0..15), high nibble 15 − j (elements 16..32).
        for j in 0..16u8 {
            block[4 + j as usize] = j | ((15 - j) << 4);
        }
        let x = dequantize_q4_1_block(&block);
        for j in 0..16 {
            assert_eq!(x[j], 0.25 * j as f32 - 1.0, "low nibble of byte {j}");
            assert_eq!(x[16 + j], 0.25 * (15 - j) as f32 - 1.0, "high nibble of byte {j}");
        }
    }

    #[test]
    fn float_types_are_bit_exact() {
        let f32s = [1.5f32, -0.0, f32::MIN_POSITIVE, 3.0e38];
        let bytes: Vec<u8> = f32s.iter().flat_map(|v| v.to_le_bytes()).collect();
        let back = dequantize(GgmlType::F32, &bytes).unwrap();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            f32s.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // f16: 0x3C00 = 1, 0xC000 = −2, 0x0001 = 2^−24 (smallest subnormal), 0x7BFF = 65504.
        let f16_bits = [0x3C00u16, 0xC000, 0x0001, 0x7BFF];
        let bytes: Vec<u8> = f16_bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        assert_eq!(dequantize(GgmlType::F16, &bytes).unwrap(), vec![1.0, -2.0, 2f32.powi(-24), 65504.0]);
        // bf16 is the top half of an f32: 0x3FC0 → 0x3FC0_0000 = 1.5, 0xC2F7 → −123.5.
        let bf16_bits = [0x3FC0u16, 0xC2F7, 0x0001];
        let bytes: Vec<u8> = bf16_bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let back = dequantize(GgmlType::BF16, &bytes).unwrap();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            vec![0x3FC0_0000, 0xC2F7_0000, 0x0001_0000]
        );
        assert_eq!(back[..2], [1.5, -123.5]);
    }

    #[test]
    fn several_blocks_follow_each_other() {
        let mut bytes = Vec::new();
        for b in 0..3u8 {
            bytes.extend(f16::from_f32(f32::from(b + 1)).to_le_bytes());
            bytes.extend([b; QK]);
        }
        let x = dequantize(GgmlType::Q8_0, &bytes).unwrap();
        assert_eq!(x.len(), 3 * QK);
        assert_eq!((x[0], x[QK], x[2 * QK + 5]), (0.0, 2.0, 6.0));
    }

    #[test]
    fn a_partial_block_is_an_error_naming_the_sizes() {
        let err = dequantize(GgmlType::Q4_1, &[0u8; 30]).unwrap_err().to_string();
        assert!(err.contains("30 bytes") && err.contains("Q4_1") && err.contains("20 bytes"), "{err}");
    }
}
