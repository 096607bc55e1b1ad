//! Bit-packing of 2- and 4-bit codes into bytes.
//!
//! Codes narrower than a byte are stored `8 / bits` to a byte, the first code in the lowest
//! bits: code `i` of a row sits at bits `(i mod k)·bits ..` of byte `⌊i / k⌋`, `k = 8 / bits`.
//! (Little-endian order within the byte is what a kernel unpacks with `(byte >> (j·bits)) & mask`
//! in a loop over `j`.) Rows are packed separately — a row of `n` codes takes `⌈n·bits/8⌉`
//! bytes, the unused high bits of its last byte zero — so that appending a token to a cache
//! appends whole bytes.

use attn_support::{Error, Result};

/// The code widths that pack evenly into a byte and that this chapter uses.
fn check_bits(bits: u32) -> Result<()> {
    if bits == 2 || bits == 4 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("packed codes are 2 or 4 bits wide, not {bits}")))
    }
}

/// Bytes that `codes` codes of `bits` bits take when packed.
pub fn packed_len(codes: usize, bits: u32) -> usize {
    (codes * bits as usize).div_ceil(8)
}

/// Packs `codes` (each `< 2^bits`) into `⌈len·bits/8⌉` bytes, first code in the lowest bits.
pub fn pack_codes(codes: &[u8], bits: u32) -> Result<Vec<u8>> {
    check_bits(bits)?;
    let limit = 1u32 << bits;
    if let Some((i, c)) = codes.iter().enumerate().find(|(_, c)| u32::from(**c) >= limit) {
        return Err(Error::InvalidArgument(format!("code {i} is {c}, which does not fit {bits} bits")));
    }
    let per_byte = (8 / bits) as usize;
    let mut packed = vec![0u8; packed_len(codes.len(), bits)];
    for (i, &code) in codes.iter().enumerate() {
        packed[i / per_byte] |= code << ((i % per_byte) as u32 * bits);
    }
    Ok(packed)
}

/// The first `len` codes of `bits` bits packed in `packed` (the inverse of [`pack_codes`]).
pub fn unpack_codes(packed: &[u8], bits: u32, len: usize) -> Result<Vec<u8>> {
    check_bits(bits)?;
    if packed.len() < packed_len(len, bits) {
        return Err(Error::InvalidArgument(format!(
            "{len} codes of {bits} bits need {} bytes, got {}",
            packed_len(len, bits),
            packed.len()
        )));
    }
    let per_byte = (8 / bits) as usize;
    let mask = ((1u32 << bits) - 1) as u8;
    Ok((0..len).map(|i| (packed[i / per_byte] >> ((i % per_byte) as u32 * bits)) & mask).collect())
}
