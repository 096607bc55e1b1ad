//! The crate's error type: a missing model file, a GGUF file that is not what it should be, a
//! tokenizer that cannot be built from the metadata, a config or shape the forward pass cannot
//! run, a full cache, a request too long for the context.

use crate::gguf::GgufError;
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file is not where [`crate::model_path`] looks.
    #[error("the model file {} is missing: run `cargo xtask model` to fetch it", path.display())]
    MissingModel { path: PathBuf },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A GGUF file (or byte buffer, named by `file`) breaks the format or holds what this
    /// reader does not support.
    #[error("{file}: {error}")]
    Gguf {
        file: String,
        #[source]
        error: GgufError,
    },
    /// The tokenizer could not be built or could not encode/decode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A config the forward pass cannot run (heads that do not group, an odd head dim, …).
    #[error("model config: {0}")]
    Config(String),
    /// Weights, activations or cache entries of the wrong shape.
    #[error("shape: {0}")]
    Shape(String),
    /// A KV cache asked to hold more than its policy allows (never a silent overwrite).
    #[error("KV cache: {0}")]
    Cache(String),
    /// A prompt or generation request the model cannot serve (too long, empty, bad sampling).
    #[error("request: {0}")]
    Request(String),
    /// An error from an earlier chapter's code (attention, RoPE) that the model calls.
    #[error(transparent)]
    Chapter(#[from] attn_support::Error),
}
