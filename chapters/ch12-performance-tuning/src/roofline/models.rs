//! FLOP and byte counts of the book's attention kernels, to place each on the roofline.
//!
//! Bytes are global-memory traffic at the granularity of reuse each kernel arranges on chip:
//! a buffer read once per block counts once per block, whether the L2 or HBM serves it. This
//! is the count each kernel file's header states (and FlashAttention's IO analysis uses); for
//! the kernels that re-read K and V (chapter 2 once per query row, the flash kernels once per
//! query tile) much of it comes from the 50 MB L2, so their true HBM traffic is lower and the
//! HBM roof is, for them, a conservative one. Dimensions follow chapter 2: B·H heads, Nq
//! queries, Nk keys, head dims d (Q, K) and dv (V, O).
//!
//! Masks: a causal mask is aligned bottom-right, query i sees keys `j ≤ i + Nk − Nq`, i.e.
//! `clamp(i + 1 + Nk − Nq, 0, Nk)` of them. Kernels that skip masked keys (chapters 2, 3 and
//! the chapter-12 rungs) do about half the FLOPs and move about half the K/V bytes; the
//! Unfused path's GEMMs cannot skip them.

use attn_support::{Error, Result};
use ch02_scaled_dot_product::SdpaDims;

fn heads(dims: &SdpaDims) -> f64 {
    (dims.batch * dims.heads) as f64
}

/// Keys query row `i` sees: all `Nk`, or `clamp(i + 1 + Nk − Nq, 0, Nk)` under the causal mask.
pub fn visible_keys(dims: &SdpaDims, i: usize, causal: bool) -> usize {
    if !causal {
        return dims.nk;
    }
    let end = i as i128 + 1 + dims.nk as i128 - dims.nq as i128;
    end.clamp(0, dims.nk as i128) as usize
}

/// (query, key) pairs that are computed, over all heads: `B·H·Σᵢ visible_keys(i)`.
pub fn visible_pairs(dims: &SdpaDims, causal: bool) -> f64 {
    if !causal {
        return heads(dims) * dims.nq as f64 * dims.nk as f64;
    }
    heads(dims) * (0..dims.nq).map(|i| visible_keys(dims, i, true) as f64).sum::<f64>()
}

/// FLOPs of attention that skips masked keys: `2·(d + dv)` per visible pair (a multiply-add
/// per element of `q·k` and of `p·v`). Without a mask this is `SdpaDims::flops`.
pub fn attention_flops(dims: &SdpaDims, causal: bool) -> f64 {
    2.0 * (dims.head_dim + dims.v_dim) as f64 * visible_pairs(dims, causal)
}

/// The least traffic any kernel needs: read Q, K and V once, write O once, `elem_bytes` each:
/// `B·H·(Nq·d + Nk·(d + dv) + Nq·dv)·elem_bytes`.
pub fn compulsory_bytes(dims: &SdpaDims, elem_bytes: usize) -> f64 {
    let (nq, nk) = (dims.nq as f64, dims.nk as f64);
    let (d, dv) = (dims.head_dim as f64, dims.v_dim as f64);
    heads(dims) * (nq * d + nk * (d + dv) + nq * dv) * elem_bytes as f64
}

/// Chapter 1, `ch01_attention_naive` (f32, one head per call): the header's compulsory traffic
/// `4·(Nq·d + Nk·d + Nk·dv + Nq·dv)` (K and V re-reads are warp broadcasts served by cache).
pub fn ch01_naive_bytes(dims: &SdpaDims) -> f64 {
    compulsory_bytes(dims, 4)
}

/// Chapter 1, `ch01_attention_naive` FLOPs: the scores are computed twice (one pass for the max
/// and sum, one for the output), `2·Nq·Nk·(2d + dv)` per head.
pub fn ch01_naive_flops(dims: &SdpaDims) -> f64 {
    2.0 * heads(dims) * dims.nq as f64 * dims.nk as f64 * (2 * dims.head_dim + dims.v_dim) as f64
}

/// Chapter 1, the three kernels (f32): compulsory traffic plus the score matrix's round trips,
/// written as S, read by the softmax, written as P, read by `P V`: `+ 16·Nq·Nk` per head.
pub fn ch01_three_kernels_bytes(dims: &SdpaDims) -> f64 {
    compulsory_bytes(dims, 4) + 16.0 * heads(dims) * dims.nq as f64 * dims.nk as f64
}

/// Chapter 2, `ch02_sdpa` (f32, one block per query row): each row reads its query, the K and V
/// rows it can see, writes its output row and lse: `4·B·H·(Nq·d + Σᵢ Keᵢ·(d + dv) + Nq·(dv + 1))`.
/// K and V are read once per query row — 0.5 FLOP/byte, the traffic the header names as
/// this kernel's bound (it is served mostly by L2).
pub fn ch02_sdpa_bytes(dims: &SdpaDims, causal: bool) -> f64 {
    let (nq, d, dv) = (dims.nq as f64, dims.head_dim as f64, dims.v_dim as f64);
    4.0 * (heads(dims) * nq * (d + dv + 1.0) + visible_pairs(dims, causal) * (d + dv))
}

/// FlashAttention forward (FlashAttention-2 order: a block owns `block_rows` queries and streams
/// K and V past them), elements of `elem_bytes`, lse in f32:
///
/// `B·H·[(Nq·d + Σ_tiles Keₜ·(d + dv) + Nq·dv)·elem_bytes + 4·Nq]`,
///
/// where tile t holds rows `[t·Br, min((t+1)·Br, Nq))` and reads the `Keₜ` keys its last row
/// sees: all Nk, or (causal) `visible_keys(last row)`, about half on average. K and V are read
/// `⌈Nq/Br⌉` times instead of Nq times as in chapter 2. Key tiles are counted to the exact
/// key, not rounded up to the key-tile size Bc (a difference under Bc/Nk).
pub fn flash_bytes(dims: &SdpaDims, block_rows: usize, elem_bytes: usize, causal: bool) -> Result<f64> {
    if block_rows == 0 {
        return Err(Error::InvalidArgument("flash_bytes: block_rows must be at least 1".into()));
    }
    let tiles = dims.nq.div_ceil(block_rows);
    let keys: f64 = (0..tiles)
        .map(|t| {
            let last_row = ((t + 1) * block_rows).min(dims.nq) - 1;
            visible_keys(dims, last_row, causal) as f64
        })
        .sum();
    let (nq, d, dv) = (dims.nq as f64, dims.head_dim as f64, dims.v_dim as f64);
    let per_head = (nq * d + keys * (d + dv) + nq * dv) * elem_bytes as f64 + 4.0 * nq;
    Ok(heads(dims) * per_head)
}

/// Query rows per block of chapter 3's f32 flash kernel (`kernels/ch03_flash_forward.cu`):
/// 128 for d ∈ {32, 64}, 64 for d = 128.
pub fn ch03_block_rows(head_dim: usize) -> Result<usize> {
    match head_dim {
        32 | 64 => Ok(128),
        128 => Ok(64),
        d => Err(Error::InvalidArgument(format!("chapter 3's flash kernel has no head dim {d}"))),
    }
}

/// Chapter 3, `ch03_flash_forward` in f32: [`flash_bytes`] with its tile rows and 4-byte elements.
pub fn ch03_flash_bytes(dims: &SdpaDims, causal: bool) -> Result<f64> {
    flash_bytes(dims, ch03_block_rows(dims.head_dim)?, 4, causal)
}

/// Chapter 4, Unfused (f32): SGEMM `S = Q Kᵀ` writes the B·H·Nq·Nk scores (4 bytes each), the
/// softmax kernel reads them three times and writes them twice (20 bytes, its header), SGEMM
/// `O = P V` reads P (4 bytes): `28·B·H·Nq·Nk` on top of the compulsory traffic and the lse.
/// The mask changes nothing: cuBLAS computes every score, the softmax writes zeros. Its FLOPs
/// are `attention_flops(dims, false)` for the same reason.
pub fn ch04_unfused_bytes(dims: &SdpaDims) -> f64 {
    let scores = heads(dims) * dims.nq as f64 * dims.nk as f64;
    compulsory_bytes(dims, 4) + 4.0 * heads(dims) * dims.nq as f64 + 28.0 * scores
}
