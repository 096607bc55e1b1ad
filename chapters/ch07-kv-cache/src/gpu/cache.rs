//! The KV cache in the layout `kernels/ch07_decode_attention.cu` reads, made on the host by the
//! quant module's encoders, and the values it stands for (the same module's decoders).
//!
//! K and V are each `(batch, kv_heads, capacity, head_dim)`; a sequence `b` holds
//! `lengths[b] ≤ capacity` tokens. Each `(b, kv head)` plane's first `lengths[b]` tokens are
//! quantised as one block, exactly as a quantised cache quantises a layer's keys or values; the
//! slots past the length are filled with *poison* — NaN scales, NaN bf16, the largest codes — so
//! that a kernel reading a token it must not read gives NaN or an output far off the reference.

use crate::quant::fp4::Fp4Block;
use crate::quant::fp4::nvfp4::{BLOCK_SIZE as NVFP4_BLOCK, quantize_nvfp4};
use crate::quant::fp8::{Fp8Scaling, quantize_fp8};
use crate::quant::int8::{Int8Granularity, quantize_int8};
use attn_support::ndarray::{Array2, Array4, ArrayView4, s};
use attn_support::{Error, Result};
use half::bf16;

/// How the cache stores K and V.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheElement {
    /// bfloat16 values.
    Bf16,
    /// INT8: K with one scale per channel per `key_group` tokens, V with one scale per token.
    Int8 { key_group: usize },
    /// FP8 E4M3 with one scale per token, K and V.
    Fp8,
    /// NVFP4: E2M1 codes, an E4M3 scale per 16 channels, an f32 scale per `(b, kv head)`.
    Nvfp4,
}

/// The INT8 key group of the benchmark, the binary and `--quality`: 128 tokens per K scale row.
/// KIVI groups keys by 32; on SmolLM2-135M 128 costs nothing measurable (perplexity 43.312
/// against 43.318, the same greedy tokens), and the tensor-core kernel, which rebuilds its
/// scaled query once per group, runs 4–6 % faster for it (H100 run 23: 1.71–1.80× bf16 for
/// Llama-3-8B's long contexts, against 1.61–1.70× at 32).
pub const DEFAULT_KEY_GROUP: usize = 128;

/// The bf16 bits a slot past a sequence's length holds (a quiet NaN).
const POISON_BF16: u16 = 0x7FC0;
/// The codes a slot past the length holds: the largest magnitudes of each format.
const POISON_INT8: u8 = 0x7F;
const POISON_E4M3: u8 = 0x7E;
const POISON_E2M1X2: u8 = 0x77;

impl CacheElement {
    /// The four storage types, INT8 with `key_group`.
    pub fn all(key_group: usize) -> [CacheElement; 4] {
        [CacheElement::Bf16, CacheElement::Int8 { key_group }, CacheElement::Fp8, CacheElement::Nvfp4]
    }

    /// The kernel-name part and the benchmark's `dtype`: `bf16`, `int8`, `fp8`, `nvfp4`.
    pub fn name(self) -> &'static str {
        match self {
            CacheElement::Bf16 => "bf16",
            CacheElement::Int8 { .. } => "int8",
            CacheElement::Fp8 => "fp8",
            CacheElement::Nvfp4 => "nvfp4",
        }
    }

    /// Bytes of one token row of codes.
    pub fn row_bytes(self, head_dim: usize) -> usize {
        match self {
            CacheElement::Bf16 => 2 * head_dim,
            CacheElement::Int8 { .. } | CacheElement::Fp8 => head_dim,
            CacheElement::Nvfp4 => head_dim / 2,
        }
    }

    /// The INT8 key group (0 for the others).
    pub fn key_group(self) -> usize {
        match self {
            CacheElement::Int8 { key_group } => key_group,
            _ => 0,
        }
    }

    /// Bytes the kernel reads per cached token and KV head, K and V with their scales (INT8's K
    /// scales amortised over the key group; NVFP4's tensor scales, 8 bytes per plane, left out).
    pub fn kv_bytes_per_token(self, head_dim: usize) -> f64 {
        let codes = 2.0 * self.row_bytes(head_dim) as f64;
        let d = head_dim as f64;
        codes
            + match self {
                CacheElement::Bf16 => 0.0,
                CacheElement::Int8 { key_group } => 4.0 + 4.0 * d / key_group as f64,
                CacheElement::Fp8 => 8.0,
                CacheElement::Nvfp4 => 2.0 * d / NVFP4_BLOCK as f64,
            }
    }
}

/// The sizes of a cache: K and V are each `(batch, kv_heads, capacity, head_dim)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheDims {
    pub batch: usize,
    pub kv_heads: usize,
    pub capacity: usize,
    pub head_dim: usize,
}

impl CacheDims {
    pub fn planes(&self) -> usize {
        self.batch * self.kv_heads
    }
}

/// The array lengths one of K or V needs for `dims` (what every launch checks the device
/// buffers against).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorLens {
    /// Bytes of codes.
    pub codes: usize,
    /// f32 scales (INT8, FP8).
    pub scales: usize,
    /// E4M3 block-scale bytes (NVFP4).
    pub block_scales: usize,
    /// f32 tensor scales, one per plane (NVFP4).
    pub tensor_scales: usize,
}

/// Which of K and V: INT8 scales them differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Key,
    Value,
}

/// The lengths of one of K or V for `dims`, or an error when they overflow `usize`.
pub fn tensor_lens(element: CacheElement, side: Side, dims: CacheDims) -> Result<TensorLens> {
    let overflow = || Error::InvalidArgument(format!("the cache {dims:?} is too large to address"));
    let tokens = dims.planes().checked_mul(dims.capacity).ok_or_else(overflow)?;
    let codes = tokens.checked_mul(element.row_bytes(dims.head_dim)).ok_or_else(overflow)?;
    let (scales, block_scales, tensor_scales) = match (element, side) {
        (CacheElement::Int8 { key_group }, Side::Key) => {
            let groups = dims.capacity.div_ceil(key_group.max(1));
            (dims.planes().checked_mul(groups * dims.head_dim).ok_or_else(overflow)?, 0, 0)
        }
        (CacheElement::Int8 { .. } | CacheElement::Fp8, _) => (tokens, 0, 0),
        (CacheElement::Nvfp4, _) => {
            (0, tokens.checked_mul(dims.head_dim / NVFP4_BLOCK).ok_or_else(overflow)?, dims.planes())
        }
        (CacheElement::Bf16, _) => (0, 0, 0),
    };
    Ok(TensorLens { codes, scales, block_scales, tensor_scales })
}

/// One of K or V in the kernel's layout (see the module docs of [`crate::gpu`]).
#[derive(Clone, Debug, PartialEq)]
pub struct HostKvTensor {
    pub codes: Vec<u8>,
    pub scales: Vec<f32>,
    pub block_scales: Vec<u8>,
    pub tensor_scales: Vec<f32>,
}

impl HostKvTensor {
    /// A tensor of `dims` holding poison everywhere (see the module docs).
    fn poisoned(element: CacheElement, side: Side, dims: CacheDims) -> Result<HostKvTensor> {
        let lens = tensor_lens(element, side, dims)?;
        let codes = match element {
            CacheElement::Bf16 => POISON_BF16.to_le_bytes().repeat(lens.codes / 2),
            CacheElement::Int8 { .. } => vec![POISON_INT8; lens.codes],
            CacheElement::Fp8 => vec![POISON_E4M3; lens.codes],
            CacheElement::Nvfp4 => vec![POISON_E2M1X2; lens.codes],
        };
        Ok(HostKvTensor {
            codes,
            scales: vec![f32::NAN; lens.scales],
            block_scales: vec![POISON_E4M3; lens.block_scales],
            tensor_scales: vec![f32::NAN; lens.tensor_scales],
        })
    }
}

/// A quantised cache on the host, ready to upload.
#[derive(Clone, Debug, PartialEq)]
pub struct HostKvCache {
    pub element: CacheElement,
    pub dims: CacheDims,
    pub lengths: Vec<u32>,
    pub k: HostKvTensor,
    pub v: HostKvTensor,
}

/// A cache and the values it stands for.
#[derive(Clone, Debug)]
pub struct QuantizedCache {
    pub cache: HostKvCache,
    /// `(batch, kv_heads, capacity, head_dim)`: the quant module's dequantisation of each
    /// plane (the bf16 values widened), 0 past each sequence's length: what attention over
    /// the cache computes with.
    pub k_read: Array4<f32>,
    pub v_read: Array4<f32>,
}

/// Checks of the shapes a cache is made from.
fn check_inputs(
    element: CacheElement,
    k: &ArrayView4<f32>,
    v: &ArrayView4<f32>,
    lengths: &[u32],
) -> Result<()> {
    if k.shape() != v.shape() {
        return Err(Error::shapes("a KV cache: K and V have one shape", "K", k.shape(), "V", v.shape()));
    }
    let (batch, _, capacity, head_dim) = k.dim();
    if lengths.len() != batch {
        return Err(Error::shapes(
            "a KV cache: one length per sequence",
            "K",
            k.shape(),
            "lengths",
            &[lengths.len()],
        ));
    }
    if let Some((b, &len)) = lengths.iter().enumerate().find(|(_, l)| **l as usize > capacity) {
        return Err(Error::InvalidArgument(format!(
            "sequence {b} has length {len}, past the cache's capacity of {capacity} tokens"
        )));
    }
    if head_dim == 0 || (element == CacheElement::Nvfp4 && !head_dim.is_multiple_of(NVFP4_BLOCK)) {
        return Err(Error::InvalidArgument(format!(
            "head_dim {head_dim}: NVFP4 needs a positive multiple of {NVFP4_BLOCK}"
        )));
    }
    if element == (CacheElement::Int8 { key_group: 0 }) {
        return Err(Error::InvalidArgument("INT8 key_group is 0; a group needs at least one token".into()));
    }
    Ok(())
}

/// Quantise `k` and `v` `(batch, kv_heads, capacity, head_dim)` into a cache of `element`,
/// plane by plane over each sequence's first `lengths[b]` tokens (what lies past them in `k`
/// and `v` is ignored, and poison is stored there).
pub fn quantize_cache(
    element: CacheElement,
    k: ArrayView4<f32>,
    v: ArrayView4<f32>,
    lengths: &[u32],
) -> Result<QuantizedCache> {
    check_inputs(element, &k, &v, lengths)?;
    let (batch, kv_heads, capacity, head_dim) = k.dim();
    let dims = CacheDims { batch, kv_heads, capacity, head_dim };
    let mut cache = HostKvCache {
        element,
        dims,
        lengths: lengths.to_vec(),
        k: HostKvTensor::poisoned(element, Side::Key, dims)?,
        v: HostKvTensor::poisoned(element, Side::Value, dims)?,
    };
    let mut k_read = Array4::zeros(k.raw_dim());
    let mut v_read = Array4::zeros(v.raw_dim());
    for (b, &len) in lengths.iter().enumerate() {
        let len = len as usize;
        if len == 0 {
            continue;
        }
        for h in 0..kv_heads {
            let plane = b * kv_heads + h;
            for (side, x, read) in [(Side::Key, &k, &mut k_read), (Side::Value, &v, &mut v_read)] {
                let block = x.slice(s![b, h, ..len, ..]);
                let tensor = match side {
                    Side::Key => &mut cache.k,
                    Side::Value => &mut cache.v,
                };
                let values = encode_plane(element, side, dims, plane, block, tensor)?;
                read.slice_mut(s![b, h, ..len, ..]).assign(&values);
            }
        }
    }
    Ok(QuantizedCache { cache, k_read, v_read })
}

/// Encode one plane's `(len, head_dim)` block into `tensor` at `plane`; return what it decodes
/// to.
fn encode_plane(
    element: CacheElement,
    side: Side,
    dims: CacheDims,
    plane: usize,
    block: attn_support::ndarray::ArrayView2<'_, f32>,
    tensor: &mut HostKvTensor,
) -> Result<Array2<f32>> {
    let (len, d) = block.dim();
    let row_bytes = element.row_bytes(d);
    let code_start = plane * dims.capacity * row_bytes;
    let codes = &mut tensor.codes[code_start..code_start + len * row_bytes];
    match element {
        CacheElement::Bf16 => {
            for (dst, &x) in codes.chunks_exact_mut(2).zip(block.iter()) {
                dst.copy_from_slice(&bf16::from_f32(x).to_bits().to_le_bytes());
            }
            Ok(block.mapv(|x| bf16::from_f32(x).to_f32()))
        }
        CacheElement::Int8 { key_group } => {
            let granularity = match side {
                Side::Key => Int8Granularity::PerChannel { tokens_per_group: key_group },
                Side::Value => Int8Granularity::PerToken,
            };
            let q = quantize_int8(block, granularity)?;
            for (dst, &c) in codes.iter_mut().zip(q.codes.iter()) {
                *dst = c as u8;
            }
            let scale_start = match side {
                Side::Key => plane * dims.capacity.div_ceil(key_group) * d,
                Side::Value => plane * dims.capacity,
            };
            for (dst, &s) in tensor.scales[scale_start..].iter_mut().zip(q.scales.iter()) {
                *dst = s;
            }
            Ok(q.dequantize())
        }
        CacheElement::Fp8 => {
            let q = quantize_fp8(block, Fp8Scaling::PerToken)?;
            codes.copy_from_slice(q.codes.as_slice().expect("a fresh array is contiguous"));
            let start = plane * dims.capacity;
            tensor.scales[start..start + len].copy_from_slice(&q.scales);
            Ok(q.dequantize())
        }
        CacheElement::Nvfp4 => {
            let q: Fp4Block = quantize_nvfp4(block)?;
            codes.copy_from_slice(&q.packed);
            let blocks = d / NVFP4_BLOCK;
            let start = plane * dims.capacity * blocks;
            tensor.block_scales[start..start + len * blocks]
                .copy_from_slice(q.block_scales.as_slice().expect("a fresh array is contiguous"));
            tensor.tensor_scales[plane] = q.tensor_scale;
            q.dequantize()
        }
    }
}

impl HostKvCache {
    /// A cache of `batch` sequences of `capacity` slots whose every plane repeats this cache's
    /// first plane, token `t` holding token `t mod capacity₀` (INT8 key groups whole): the
    /// benchmark's large caches from one quantised block, since the timing does not depend on
    /// the values. Lengths are set to `capacity`.
    pub fn tiled(&self, batch: usize, kv_heads: usize, capacity: usize) -> Result<HostKvCache> {
        let src = self.dims;
        let group = self.element.key_group().max(1);
        if self.lengths.first() != Some(&(src.capacity as u32)) {
            return Err(Error::InvalidArgument(format!(
                "tiling a cache: its first sequence must fill its capacity of {} tokens, not {:?}",
                src.capacity,
                self.lengths.first()
            )));
        }
        if u32::try_from(capacity).is_err() {
            return Err(Error::InvalidArgument(format!("capacity {capacity} does not fit u32")));
        }
        if !src.capacity.is_multiple_of(group) || !capacity.is_multiple_of(group) || src.capacity == 0 {
            return Err(Error::InvalidArgument(format!(
                "tiling a cache of capacity {} to {capacity}: both must be positive multiples of the \
                 key group {group}",
                src.capacity
            )));
        }
        let dims = CacheDims { batch, kv_heads, capacity, head_dim: src.head_dim };
        let tile = |x: &HostKvTensor, side: Side| -> Result<HostKvTensor> {
            let src_lens = tensor_lens(self.element, side, CacheDims { batch: 1, kv_heads: 1, ..src })?;
            let dst_lens = tensor_lens(self.element, side, CacheDims { batch: 1, kv_heads: 1, ..dims })?;
            let repeat = |v: &[u8], src_len: usize, dst_len: usize| -> Vec<u8> {
                let plane: Vec<u8> = v[..src_len].iter().copied().cycle().take(dst_len).collect();
                plane.repeat(dims.planes())
            };
            let repeat_f32 = |v: &[f32], src_len: usize, dst_len: usize| -> Vec<f32> {
                let plane: Vec<f32> = v[..src_len].iter().copied().cycle().take(dst_len).collect();
                plane.repeat(dims.planes())
            };
            Ok(HostKvTensor {
                codes: repeat(&x.codes, src_lens.codes, dst_lens.codes),
                scales: repeat_f32(&x.scales, src_lens.scales, dst_lens.scales),
                block_scales: repeat(&x.block_scales, src_lens.block_scales, dst_lens.block_scales),
                tensor_scales: repeat_f32(&x.tensor_scales, src_lens.tensor_scales, dst_lens.tensor_scales),
            })
        };
        Ok(HostKvCache {
            element: self.element,
            dims,
            lengths: vec![capacity as u32; batch],
            k: tile(&self.k, Side::Key)?,
            v: tile(&self.v, Side::Value)?,
        })
    }
}
