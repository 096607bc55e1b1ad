//! The encodings a cache can store K and V in, by name and size, for the cache types and the
//! figures (memory against length, error against compression).

use super::fp4::Fp4Format;
use super::fp8::Fp8Scaling;
use super::int8::Int8Granularity;
use super::kivi::KiviConfig;

/// How a cache stores its keys and values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KvEncoding {
    /// Full precision, the reference.
    F32,
    /// bfloat16, what models usually run in.
    Bf16,
    /// INT8, K per channel over groups of `key_tokens_per_scale` tokens, V per token.
    Int8 { key_tokens_per_scale: usize },
    /// KIVI 2/4-bit groups (K per channel, V per token) with a full-precision window.
    Kivi(KiviConfig),
    /// FP8 E4M3 with per-tensor or per-token scales.
    Fp8(Fp8Scaling),
    /// FP4 E2M1 with block scales: NVFP4 or MXFP4.
    Fp4(Fp4Format),
}

impl KvEncoding {
    /// A short name for tables and legends.
    pub fn name(&self) -> String {
        match self {
            KvEncoding::F32 => "f32".into(),
            KvEncoding::Bf16 => "bf16".into(),
            KvEncoding::Int8 { key_tokens_per_scale } => {
                format!("INT8 (K per channel, G={key_tokens_per_scale}; V per token)")
            }
            KvEncoding::Kivi(c) => {
                format!("KIVI-{} (G={}, R={})", c.bits, c.group, c.residual)
            }
            KvEncoding::Fp8(Fp8Scaling::PerTensor) => "FP8 E4M3 (per tensor)".into(),
            KvEncoding::Fp8(Fp8Scaling::PerToken) => "FP8 E4M3 (per token)".into(),
            KvEncoding::Fp4(Fp4Format::Nvfp4) => "NVFP4".into(),
            KvEncoding::Fp4(Fp4Format::Mxfp4) => "MXFP4".into(),
        }
    }

    /// Bits per key element with its share of the metadata, for heads of `head_dim`.
    pub fn key_bits_per_element(&self, head_dim: usize) -> f64 {
        match self {
            KvEncoding::Int8 { key_tokens_per_scale } => {
                8.0 * Int8Granularity::PerChannel { tokens_per_group: *key_tokens_per_scale }
                    .bytes_per_element(head_dim)
            }
            _ => self.value_bits_per_element(head_dim),
        }
    }

    /// Bits per value element with its share of the metadata, for heads of `head_dim`.
    pub fn value_bits_per_element(&self, head_dim: usize) -> f64 {
        match self {
            KvEncoding::F32 => 32.0,
            KvEncoding::Bf16 => 16.0,
            KvEncoding::Int8 { .. } => 8.0 * Int8Granularity::PerToken.bytes_per_element(head_dim),
            KvEncoding::Kivi(c) => c.bits_per_element(),
            KvEncoding::Fp8(scaling) => scaling.bits_per_element(head_dim),
            KvEncoding::Fp4(format) => format.bits_per_element(),
        }
    }

    /// Bits per cached element, K and V averaged. KIVI's full-precision window is not in it
    /// (it depends on the length: [`KiviConfig::split`]), nor are per-tensor scales.
    pub fn bits_per_element(&self, head_dim: usize) -> f64 {
        (self.key_bits_per_element(head_dim) + self.value_bits_per_element(head_dim)) / 2.0
    }
}
