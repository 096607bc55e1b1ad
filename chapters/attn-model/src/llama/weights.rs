//! The weights of a Llama-architecture decoder in f32, in Hugging Face's layout: every
//! projection `(d_out, d_in)` as PyTorch's `nn.Linear` stores it, and `W_q`, `W_k` ordered for
//! half-rotation RoPE (`rotate_half`).
//!
//! A GGUF file stores `W_q` and `W_k` the other way: llama.cpp's converter permutes their rows
//! inside each head so that ggml can rotate interleaved pairs `(2i, 2i+1)`. Loading undoes that
//! with chapter 6's [`ch06_rope::layout::interleaved_to_half_rows`], so weights from either
//! source give the same queries and keys, and one RoPE serves both.

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::llama::config::LlamaConfig;
use attn_support::ndarray::{Array1, Array2, Ix1, Ix2};
use ch06_rope::layout::interleaved_to_half_rows;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

/// One decoder block's weights.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMSNorm before attention, `(d_model,)`.
    pub attn_norm: Array1<f32>,
    /// `(n_heads·head_dim, d_model)`.
    pub wq: Array2<f32>,
    /// `(n_kv_heads·head_dim, d_model)`.
    pub wk: Array2<f32>,
    /// `(n_kv_heads·head_dim, d_model)`.
    pub wv: Array2<f32>,
    /// `(d_model, n_heads·head_dim)`.
    pub wo: Array2<f32>,
    /// RMSNorm before the feed-forward block, `(d_model,)`.
    pub ffn_norm: Array1<f32>,
    /// `(ffn_dim, d_model)`.
    pub w_gate: Array2<f32>,
    /// `(ffn_dim, d_model)`.
    pub w_up: Array2<f32>,
    /// `(d_model, ffn_dim)`.
    pub w_down: Array2<f32>,
}

/// A whole model's weights.
#[derive(Clone, Debug)]
pub struct LlamaWeights {
    pub config: LlamaConfig,
    /// `(vocab_size, d_model)`: row `t` is token `t`'s vector.
    pub embedding: Array2<f32>,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Array1<f32>,
    /// `(vocab_size, d_model)`; `None` when the output layer is the embedding (tied).
    pub output: Option<Array2<f32>>,
}

impl LlamaWeights {
    /// Every tensor of a GGUF Llama file dequantised to f32, `W_q` and `W_k` converted from the
    /// interleaved to the half-rotation layout.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let config = LlamaConfig::from_gguf(&file.metadata, &file.source)?;
        let matrix = |name: &str| -> Result<Array2<f32>> {
            let t = file.dequantize(name)?;
            let shape = t.shape().to_vec();
            t.into_dimensionality::<Ix2>().map_err(|_| {
                Error::Shape(format!("{}: {name} has shape {shape:?}, expected a matrix", file.source))
            })
        };
        let vector = |name: &str| -> Result<Array1<f32>> {
            let t = file.dequantize(name)?;
            let shape = t.shape().to_vec();
            t.into_dimensionality::<Ix1>().map_err(|_| {
                Error::Shape(format!("{}: {name} has shape {shape:?}, expected a vector", file.source))
            })
        };
        let (h, kv, d) = (config.n_heads, config.n_kv_heads, config.head_dim);
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let name = |part: &str| format!("blk.{l}.{part}.weight");
            let check = |w: Array2<f32>, part: &str, rows: usize, cols: usize| -> Result<Array2<f32>> {
                expect_shape(&format!("{}: blk.{l}.{part}.weight", file.source), &w, rows, cols)?;
                Ok(w)
            };
            let wq = check(matrix(&name("attn_q"))?, "attn_q", config.q_dim(), config.d_model)?;
            let wk = check(matrix(&name("attn_k"))?, "attn_k", config.kv_dim(), config.d_model)?;
            layers.push(LayerWeights {
                attn_norm: vector(&name("attn_norm"))?,
                wq: interleaved_to_half_rows(wq.view(), h, d, d)?,
                wk: interleaved_to_half_rows(wk.view(), kv, d, d)?,
                wv: matrix(&name("attn_v"))?,
                wo: matrix(&name("attn_output"))?,
                ffn_norm: vector(&name("ffn_norm"))?,
                w_gate: matrix(&name("ffn_gate"))?,
                w_up: matrix(&name("ffn_up"))?,
                w_down: matrix(&name("ffn_down"))?,
            });
        }
        let output = match file.tensor("output.weight") {
            Ok(_) => Some(matrix("output.weight")?),
            Err(_) => None,
        };
        let config = LlamaConfig { tie_embeddings: output.is_none(), ..config };
        let weights = LlamaWeights {
            embedding: matrix("token_embd.weight")?,
            layers,
            final_norm: vector("output_norm.weight")?,
            output,
            config,
        };
        weights.check()?;
        Ok(weights)
    }

    /// A seeded random checkpoint of `config`'s shape: every projection ~ N(0, 1/d_in), so
    /// that it keeps its input's scale and attention, not only the embedding, decides the
    /// logits; the embedding ~ N(0, 1), norms 1. Speed does not depend on the values, and tests
    /// of caches and kernels need no download.
    pub fn random(config: &LlamaConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let unit = Normal::new(0.0f32, 1.0).expect("a positive standard deviation");
        let mut matrix = |rows: usize, cols: usize| {
            let std = 1.0 / (cols as f32).sqrt();
            Array2::from_shape_simple_fn((rows, cols), || unit.sample(&mut rng) * std)
        };
        let c = config;
        let mut layers = Vec::with_capacity(c.n_layers);
        for _ in 0..c.n_layers {
            layers.push(LayerWeights {
                attn_norm: Array1::ones(c.d_model),
                wq: matrix(c.q_dim(), c.d_model),
                wk: matrix(c.kv_dim(), c.d_model),
                wv: matrix(c.kv_dim(), c.d_model),
                wo: matrix(c.d_model, c.q_dim()),
                ffn_norm: Array1::ones(c.d_model),
                w_gate: matrix(c.ffn_dim, c.d_model),
                w_up: matrix(c.ffn_dim, c.d_model),
                w_down: matrix(c.d_model, c.ffn_dim),
            });
        }
        let output = (!c.tie_embeddings).then(|| matrix(c.vocab_size, c.d_model));
        let embedding = matrix(c.vocab_size, c.d_model) * (c.d_model as f32).sqrt();
        let weights = LlamaWeights {
            config: c.clone(),
            embedding,
            layers,
            final_norm: Array1::ones(c.d_model),
            output,
        };
        weights.check()?;
        Ok(weights)
    }

    /// The output layer: its own matrix, or the embedding when tied.
    pub fn output_matrix(&self) -> &Array2<f32> {
        self.output.as_ref().unwrap_or(&self.embedding)
    }

    /// Every weight's shape against the config; the error names the first that disagrees.
    pub fn check(&self) -> Result<()> {
        let c = &self.config;
        c.validate()?;
        expect_shape("embedding", &self.embedding, c.vocab_size, c.d_model)?;
        expect_len("final_norm", self.final_norm.len(), c.d_model)?;
        if let Some(output) = &self.output {
            expect_shape("output", output, c.vocab_size, c.d_model)?;
        }
        if self.output.is_some() == c.tie_embeddings {
            return Err(Error::Config(format!(
                "tie_embeddings is {} but the weights {} an output matrix",
                c.tie_embeddings,
                if self.output.is_some() { "have" } else { "lack" }
            )));
        }
        if self.layers.len() != c.n_layers {
            return Err(Error::Shape(format!(
                "{} layers of weights for n_layers {}",
                self.layers.len(),
                c.n_layers
            )));
        }
        for (l, w) in self.layers.iter().enumerate() {
            let name = |part: &str| format!("layer {l} {part}");
            expect_len(&name("attn_norm"), w.attn_norm.len(), c.d_model)?;
            expect_len(&name("ffn_norm"), w.ffn_norm.len(), c.d_model)?;
            expect_shape(&name("wq"), &w.wq, c.q_dim(), c.d_model)?;
            expect_shape(&name("wk"), &w.wk, c.kv_dim(), c.d_model)?;
            expect_shape(&name("wv"), &w.wv, c.kv_dim(), c.d_model)?;
            expect_shape(&name("wo"), &w.wo, c.d_model, c.q_dim())?;
            expect_shape(&name("w_gate"), &w.w_gate, c.ffn_dim, c.d_model)?;
            expect_shape(&name("w_up"), &w.w_up, c.ffn_dim, c.d_model)?;
            expect_shape(&name("w_down"), &w.w_down, c.d_model, c.ffn_dim)?;
        }
        Ok(())
    }
}

fn expect_shape(name: &str, w: &Array2<f32>, rows: usize, cols: usize) -> Result<()> {
    if w.dim() != (rows, cols) {
        return Err(Error::Shape(format!(
            "{name} has shape {:?}, the config needs ({rows}, {cols})",
            w.shape()
        )));
    }
    Ok(())
}

fn expect_len(name: &str, len: usize, expected: usize) -> Result<()> {
    if len != expected {
        return Err(Error::Shape(format!("{name} has {len} entries, the config needs {expected}")));
    }
    Ok(())
}
