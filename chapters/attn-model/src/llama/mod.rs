//! A Llama-architecture decoder on the CPU in f32: config, weights, the forward pass with
//! attention and the KV cache as parameters, generation and perplexity.

pub mod attention;
pub mod cache;
pub mod config;
pub mod generate;
pub mod hf;
pub mod linear;
pub mod model;
pub mod perplexity;
pub mod weights;

pub use attention::{AttentionBackend, GqaSdpa};
pub use cache::{DenseKvCache, KvCache};
pub use config::LlamaConfig;
pub use generate::{Generation, Sampler, generate};
pub use model::Llama;
pub use perplexity::{Perplexity, perplexity};
pub use weights::{LayerWeights, LlamaWeights};
