//! A KV cache that stores keys and values encoded: in one of chapter 7's number formats
//! ([`crate::quant`]) or projected to a low rank ([`crate::caches::low_rank`]).
//!
//! Tokens arrive one at a time but most encodings share a scale over a group: INT8 and KIVI
//! scale each channel of K over `G` tokens (K has outlier channels, so a per-token scale would
//! be set by them), so a token can be quantised only once its group is complete. KIVI also keeps
//! the `R` most recent tokens in full precision, because the next queries attend to them most.
//! So the cache holds, per layer and KV head:
//!
//! ```text
//! [ quantised groups of G tokens … | f32 tail: the recent window and the group being filled ]
//! ```
//!
//! A group is encoded when `len − quantised ≥ R + G`. Attention reads the decoded values: the CPU
//! version keeps a decoded copy of every group (decoding it once, when it is encoded, gives the
//! same numbers as decoding it at every step); its memory is counted from the encoded sizes,
//! what a GPU cache would hold and what chapter 7's decode kernel reads.

use crate::quant::KvEncoding;
use crate::quant::fp4::Fp4Format;
use crate::quant::fp4::mxfp4::quantize_mxfp4;
use crate::quant::fp4::nvfp4::quantize_nvfp4;
use crate::quant::fp8::quantize_fp8;
use crate::quant::int8::{Int8Granularity, quantize_int8};
use crate::quant::kivi::{KiviAxis, quantize_kivi};
use attn_model::llama::cache::{check_new_tokens, check_room};
use attn_model::{Error, KvCache, LlamaConfig, Result};
use attn_support::ndarray::{Array2, Array3, ArrayView2, ArrayView3, CowArray, Ix3, s};
use half::bf16;

/// Keys or values: the two are encoded differently (K per channel, V per token).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Key,
    Value,
}

/// `block (tokens, head_dim)` encoded and decoded again, as the cache's attention will see it.
pub fn round_trip(encoding: &KvEncoding, block: ArrayView2<f32>, role: Role) -> Result<Array2<f32>> {
    let decoded = match (encoding, role) {
        (KvEncoding::F32, _) => block.to_owned(),
        (KvEncoding::Bf16, _) => block.mapv(|x| bf16::from_f32(x).to_f32()),
        (KvEncoding::Int8 { .. }, Role::Key) => {
            // The whole block is one group of tokens: the cache hands over exactly G tokens.
            quantize_int8(block, Int8Granularity::PerChannel { tokens_per_group: block.nrows() })?
                .dequantize()
        }
        (KvEncoding::Int8 { .. }, Role::Value) => {
            quantize_int8(block, Int8Granularity::PerToken)?.dequantize()
        }
        (KvEncoding::Kivi(c), Role::Key) => quantize_kivi(block, KiviAxis::PerChannel, c)?.dequantize()?,
        (KvEncoding::Kivi(c), Role::Value) => quantize_kivi(block, KiviAxis::PerToken, c)?.dequantize()?,
        (KvEncoding::Fp8(scaling), _) => quantize_fp8(block, *scaling)?.dequantize(),
        (KvEncoding::Fp4(Fp4Format::Nvfp4), _) => quantize_nvfp4(block)?.dequantize()?,
        (KvEncoding::Fp4(Fp4Format::Mxfp4), _) => quantize_mxfp4(block)?.dequantize()?,
    };
    Ok(decoded)
}

/// How a cache turns a block of keys or values into what it stores and back: a number format
/// ([`KvEncoding`]) or a projection ([`crate::caches::low_rank::LowRankCodec`]).
pub trait KvCodec {
    /// `block (tokens, head_dim)` of `layer`'s KV head `head` encoded and decoded again.
    fn round_trip(
        &self,
        layer: usize,
        head: usize,
        block: ArrayView2<f32>,
        role: Role,
    ) -> Result<Array2<f32>>;
    /// Bits stored per element of K and of V, metadata included.
    fn bits_per_element(&self, head_dim: usize) -> (f64, f64);
    /// `(G, R)`: tokens encoded together, recent tokens kept in f32.
    fn grouping(&self) -> (usize, usize);
    fn name(&self) -> String;
}

impl KvCodec for KvEncoding {
    fn round_trip(
        &self,
        _layer: usize,
        _head: usize,
        block: ArrayView2<f32>,
        role: Role,
    ) -> Result<Array2<f32>> {
        round_trip(self, block, role)
    }

    fn bits_per_element(&self, head_dim: usize) -> (f64, f64) {
        (self.key_bits_per_element(head_dim), self.value_bits_per_element(head_dim))
    }

    fn grouping(&self) -> (usize, usize) {
        match self {
            KvEncoding::Int8 { key_tokens_per_scale } => (*key_tokens_per_scale, 0),
            KvEncoding::Kivi(c) => (c.group, c.residual),
            // Per-token (or per-block-of-channels) scales: every token can be encoded at once.
            _ => (1, 0),
        }
    }

    fn name(&self) -> String {
        KvEncoding::name(self)
    }
}

struct Layer {
    keys: Array3<f32>,
    values: Array3<f32>,
    len: usize,
    quantised: usize,
}

/// A cache of `capacity` tokens per layer, stored through `codec`.
pub struct EncodedKvCache<C: KvCodec> {
    codec: C,
    group: usize,
    residual: usize,
    head_dim: usize,
    layers: Vec<Layer>,
}

impl<C: KvCodec> EncodedKvCache<C> {
    pub fn new(config: &LlamaConfig, codec: C, capacity: usize) -> Result<Self> {
        let (group, residual) = codec.grouping();
        if capacity == 0 || group == 0 {
            return Err(Error::Cache(format!("capacity {capacity} and group {group} must be ≥ 1")));
        }
        let shape = (config.n_kv_heads, capacity, config.head_dim);
        let layer =
            || Layer { keys: Array3::zeros(shape), values: Array3::zeros(shape), len: 0, quantised: 0 };
        Ok(EncodedKvCache {
            codec,
            group,
            residual,
            head_dim: config.head_dim,
            layers: (0..config.n_layers).map(|_| layer()).collect(),
        })
    }

    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The encoded groups at the codec's bits per element (scales included), the f32 tail at
    /// 4 bytes, all layers.
    fn encoded_bytes(&self) -> f64 {
        let d = self.head_dim;
        let (k_bits, v_bits) = self.codec.bits_per_element(d);
        self.layers
            .iter()
            .map(|l| {
                let per_token = (l.keys.dim().0 * d) as f64;
                let encoded = l.quantised as f64 * per_token * (k_bits + v_bits) / 8.0;
                let tail = (l.len - l.quantised) as f64 * per_token * 2.0 * 4.0;
                encoded + tail
            })
            .sum()
    }

    /// Tokens of `layer` held encoded and in f32.
    pub fn split(&self, layer: usize) -> (usize, usize) {
        let l = &self.layers[layer];
        (l.quantised, l.len - l.quantised)
    }

    fn layer(&self, layer: usize) -> Result<&Layer> {
        self.layers.get(layer).ok_or_else(|| Error::Cache(format!("layer {layer} of {}", self.layers.len())))
    }
}

impl<C: KvCodec> KvCache for EncodedKvCache<C> {
    fn tokens_seen(&self, layer: usize) -> usize {
        self.layers.get(layer).map_or(0, |l| l.len)
    }

    fn append(&mut self, layer: usize, keys: ArrayView3<f32>, values: ArrayView3<f32>) -> Result<()> {
        self.layer(layer)?;
        let (group, residual) = (self.group, self.residual);
        let codec = &self.codec;
        let l = &mut self.layers[layer];
        let (heads, capacity, dim) = l.keys.dim();
        check_new_tokens(keys, values, heads, dim)?;
        let new = keys.dim().1;
        check_room(layer, l.len, new, capacity)?;
        l.keys.slice_mut(s![.., l.len..l.len + new, ..]).assign(&keys);
        l.values.slice_mut(s![.., l.len..l.len + new, ..]).assign(&values);
        l.len += new;
        while l.len - l.quantised >= residual + group {
            let rows = l.quantised..l.quantised + group;
            for h in 0..heads {
                for (array, role) in [(&mut l.keys, Role::Key), (&mut l.values, Role::Value)] {
                    let decoded = codec.round_trip(layer, h, array.slice(s![h, rows.clone(), ..]), role)?;
                    array.slice_mut(s![h, rows.clone(), ..]).assign(&decoded);
                }
            }
            l.quantised += group;
        }
        Ok(())
    }

    fn keys_values(&self, layer: usize) -> Result<(CowArray<'_, f32, Ix3>, CowArray<'_, f32, Ix3>)> {
        let l = self.layer(layer)?;
        Ok((l.keys.slice(s![.., ..l.len, ..]).into(), l.values.slice(s![.., ..l.len, ..]).into()))
    }

    fn next_position(&self) -> usize {
        self.layers.last().map_or(0, |l| l.len)
    }

    fn bytes_used(&self) -> f64 {
        self.encoded_bytes()
    }
}
