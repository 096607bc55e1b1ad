//! Hugging Face checkpoints: a folder with `config.json` and the weights in safetensors files,
//! `model.safetensors` or shards listed by `model.safetensors.index.json` (what
//! `save_pretrained` writes).
//!
//! - **Config.** [`LlamaConfig::from_hf_json`] reads transformers' `LlamaConfig` (and
//!   `MistralConfig` without a sliding window) with transformers' defaults. The RoPE comes in
//!   two spellings: transformers 4 wrote `rope_theta` and `rope_scaling` at the top level,
//!   transformers 5 writes one `rope_parameters` dict holding both; chapter 6's
//!   [`HfRopeParameters`] parses the dict.
//! - **Weights.** [`LlamaWeights::from_hf_dir`] reads every tensor in F32, BF16 or F16 (to f32,
//!   exactly: both halves are subsets of f32). Hugging Face stores each projection `(d_out,
//!   d_in)` as `nn.Linear` does, and `W_q`, `W_k` already in the half-rotation layout that
//!   `rotate_half` expects, which is the layout of [`LlamaWeights`]: nothing is permuted (the
//!   GGUF loader is the one that converts).
//!
//! Errors name the file and the tensor or key: a missing tensor, a wrong shape, a dtype that is
//! not a float, a tensor this architecture does not have (a bias, a QK norm), an architecture
//! or option the forward pass cannot run.

use crate::error::{Error, Result};
use crate::gguf::GgmlType;
use crate::gguf::dequant::dequantize;
use crate::llama::config::LlamaConfig;
use crate::llama::weights::{LayerWeights, LlamaWeights};
use attn_support::ndarray::{Array1, Array2};
use ch06_rope::HfRopeParameters;
use safetensors::{Dtype, SafeTensors};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The config file of a checkpoint folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights of an unsharded checkpoint.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded checkpoint: `{"metadata": …, "weight_map": {tensor: file}}`.
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";

/// The `model_type`s read here: architectures whose forward pass is exactly this one. Mistral
/// is Llama with a sliding window, accepted when the window is off or covers the context.
/// Qwen2 (biases), Qwen3 (QK norm), Gemma (scaled embedding, `1 + w` norms), … are not.
pub const SUPPORTED_MODEL_TYPES: [&str; 2] = ["llama", "mistral"];
/// The `architectures` accepted: a causal LM head (the output layer this forward pass has).
pub const SUPPORTED_ARCHITECTURES: [&str; 2] = ["LlamaForCausalLM", "MistralForCausalLM"];

/// A model type's defaults for the keys a `config.json` may leave out (transformers 5.17's
/// `LlamaConfig` / `MistralConfig`).
struct Defaults {
    n_kv_heads: Option<usize>,
    max_position_embeddings: usize,
    sliding_window: Option<usize>,
}

impl Defaults {
    fn of(model_type: &str) -> Self {
        match model_type {
            "mistral" => Defaults {
                n_kv_heads: Some(8),
                max_position_embeddings: 4096 * 32,
                sliding_window: Some(4096),
            },
            _ => Defaults { n_kv_heads: None, max_position_embeddings: 2048, sliding_window: None },
        }
    }
}

impl LlamaConfig {
    /// The config in a Hugging Face `config.json` (parsed), `source` naming it in errors.
    ///
    /// The sizes (`hidden_size`, `intermediate_size`, `num_hidden_layers`,
    /// `num_attention_heads`, `vocab_size`) are required; the rest take transformers' defaults:
    /// `num_key_value_heads` = heads, `head_dim` = `hidden_size / num_attention_heads` (any other
    /// value works too), `rms_norm_eps` 1e-6, `max_position_embeddings` 2048,
    /// `tie_word_embeddings` false, `rope_theta` 10 000, no scaling. Attention or MLP biases, an
    /// activation other than SiLU, partial rotary, a sliding window shorter than the context are
    /// rejected by name.
    pub fn from_hf_json(json: &Value, source: &str) -> Result<Self> {
        let keys = Keys { object: object(json, source, "the config")?, source };
        let model_type = keys.model_type()?;
        let defaults = Defaults::of(model_type);
        for flag in ["attention_bias", "mlp_bias"] {
            if keys.bool(flag)?.unwrap_or(false) {
                return Err(
                    keys.error(format!("{flag} is true: this forward pass has no biases in its projections"))
                );
            }
        }
        let activation = keys.str("hidden_act")?.unwrap_or("silu");
        if !matches!(activation, "silu" | "swish") {
            return Err(
                keys.error(format!("hidden_act is {activation:?}: the feed-forward block is SwiGLU (silu)"))
            );
        }
        if let Some(factor) = keys.number("partial_rotary_factor")?
            && factor != 1.0
        {
            return Err(keys
                .error(format!("partial_rotary_factor is {factor}: this RoPE rotates every dim of a head")));
        }

        let d_model = keys.required_size("hidden_size")?;
        let n_heads = keys.required_size("num_attention_heads")?;
        let context_length =
            keys.size("max_position_embeddings")?.unwrap_or(defaults.max_position_embeddings);
        let sliding_window = match keys.object.get("sliding_window") {
            None => defaults.sliding_window,
            Some(_) => keys.size("sliding_window")?,
        };
        if let Some(window) = sliding_window
            && window < context_length
        {
            return Err(keys.error(format!(
                "sliding_window is {window}, shorter than max_position_embeddings {context_length}: \
                 this attention sees every earlier token"
            )));
        }
        let rope = keys.rope(context_length)?;
        let config = LlamaConfig {
            n_layers: keys.required_size("num_hidden_layers")?,
            d_model,
            n_heads,
            n_kv_heads: keys.size("num_key_value_heads")?.or(defaults.n_kv_heads).unwrap_or(n_heads),
            head_dim: match keys.size("head_dim")? {
                Some(d) => d,
                None if n_heads > 0 => d_model / n_heads,
                None => 0, // rejected by validate, naming n_heads
            },
            ffn_dim: keys.required_size("intermediate_size")?,
            vocab_size: keys.required_size("vocab_size")?,
            context_length,
            rms_eps: keys.number("rms_norm_eps")?.unwrap_or(1e-6) as f32,
            rope_theta: rope.rope_theta.unwrap_or(10_000.0) as f32,
            rope_scaling: rope.scaling,
            tie_embeddings: keys.bool("tie_word_embeddings")?.unwrap_or(false),
        };
        config.validate().map_err(|e| match e {
            Error::Config(message) => keys.error(message),
            other => keys.error(other.to_string()),
        })?;
        Ok(config)
    }
}

impl LlamaWeights {
    /// A Hugging Face checkpoint folder: `config.json` and `model.safetensors`, or the shards
    /// that `model.safetensors.index.json` lists. Every tensor in F32, BF16 or F16 becomes f32.
    /// The files are read whole into memory (no memory map): 540 MB for SmolLM2 in F32.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join(CONFIG_FILE);
        let config =
            LlamaConfig::from_hf_json(&read_json(&config_path)?, &config_path.display().to_string())?;
        let files = weight_files(dir)?;
        let buffers = files.iter().map(|path| read(path)).collect::<Result<Vec<_>>>()?;
        let tensors = Tensors::new(&files, &buffers)?;
        tensors.check_names(&config)?;

        let (d, q, kv, ffn) = (config.d_model, config.q_dim(), config.kv_dim(), config.ffn_dim);
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let name = |part: &str| format!("model.layers.{l}.{part}.weight");
            layers.push(LayerWeights {
                attn_norm: tensors.vector(&name("input_layernorm"), d)?,
                wq: tensors.matrix(&name("self_attn.q_proj"), q, d)?,
                wk: tensors.matrix(&name("self_attn.k_proj"), kv, d)?,
                wv: tensors.matrix(&name("self_attn.v_proj"), kv, d)?,
                wo: tensors.matrix(&name("self_attn.o_proj"), d, q)?,
                ffn_norm: tensors.vector(&name("post_attention_layernorm"), d)?,
                w_gate: tensors.matrix(&name("mlp.gate_proj"), ffn, d)?,
                w_up: tensors.matrix(&name("mlp.up_proj"), ffn, d)?,
                w_down: tensors.matrix(&name("mlp.down_proj"), d, ffn)?,
            });
        }
        // Tied: transformers ties `lm_head` to the embedding and ignores a stored copy, and
        // `save_pretrained` does not store one.
        let output = match config.tie_embeddings {
            true => None,
            false => Some(tensors.matrix("lm_head.weight", config.vocab_size, d)?),
        };
        let weights = LlamaWeights {
            embedding: tensors.matrix("model.embed_tokens.weight", config.vocab_size, d)?,
            layers,
            final_norm: tensors.vector("model.norm.weight", d)?,
            output,
            config,
        };
        weights.check()?;
        Ok(weights)
    }
}

/// The safetensors files of the checkpoint in `dir`: the shards of the index when there is
/// one (each once, in the index's order), else `model.safetensors`.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index_path = dir.join(WEIGHTS_INDEX_FILE);
    if !index_path.is_file() {
        let single = dir.join(WEIGHTS_FILE);
        if !single.is_file() {
            return Err(Error::Config(format!(
                "{}: neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX_FILE} is there",
                dir.display()
            )));
        }
        return Ok(vec![single]);
    }
    let source = index_path.display().to_string();
    let index = read_json(&index_path)?;
    let weight_map = object(&index, &source, "the index")?
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::Config(format!("{source}: no \"weight_map\" object")))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for (tensor, file) in weight_map {
        let file = file.as_str().ok_or_else(|| {
            Error::Config(format!("{source}: the file of {tensor} is {file}, not a file name"))
        })?;
        // A shard is a file next to the index, never a path that leaves the folder.
        if file.is_empty() || file.contains(['/', '\\']) || file == ".." {
            return Err(Error::Config(format!(
                "{source}: {tensor} names the shard {file:?}, not a file name"
            )));
        }
        let path = dir.join(file);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(Error::Config(format!("{source}: the weight_map is empty")));
    }
    Ok(files)
}

/// The tensors of every file, found by name.
struct Tensors<'a> {
    files: &'a [PathBuf],
    shards: Vec<SafeTensors<'a>>,
    /// Tensor name → index into `shards`.
    location: HashMap<String, usize>,
}

impl<'a> Tensors<'a> {
    fn new(files: &'a [PathBuf], buffers: &'a [Vec<u8>]) -> Result<Self> {
        let mut shards = Vec::with_capacity(buffers.len());
        let mut location: HashMap<String, usize> = HashMap::new();
        for (i, (path, bytes)) in files.iter().zip(buffers).enumerate() {
            let shard = SafeTensors::deserialize(bytes).map_err(|e| {
                Error::Config(format!("{}: not a valid safetensors file: {e}", path.display()))
            })?;
            for name in shard.names() {
                if let Some(&other) = location.get(name) {
                    return Err(Error::Config(format!(
                        "tensor {name} is in both {} and {}",
                        files[other].display(),
                        path.display()
                    )));
                }
                location.insert(name.to_owned(), i);
            }
            shards.push(shard);
        }
        Ok(Tensors { files, shards, location })
    }

    /// Every stored tensor must be one this architecture has: a bias or a QK norm left out
    /// silently would give other logits than transformers does.
    fn check_names(&self, config: &LlamaConfig) -> Result<()> {
        let mut names: Vec<&String> = self.location.keys().collect();
        names.sort();
        for name in names {
            if is_expected(name, config) {
                continue;
            }
            let file = self.files[self.location[name]].display();
            let why = if name.ends_with(".bias") {
                "a bias; this forward pass has none"
            } else {
                "not a tensor of a Llama decoder"
            };
            return Err(Error::Config(format!("{file}: tensor {name} is {why}")));
        }
        Ok(())
    }

    /// The tensor `name` in f32, with its file's name for errors; its shape is checked by the
    /// caller.
    fn values(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>, String)> {
        let &i = self.location.get(name).ok_or_else(|| {
            let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
            Error::Config(format!("tensor {name} is missing from {}", files.join(", ")))
        })?;
        let file = self.files[i].display().to_string();
        let view =
            self.shards[i].tensor(name).map_err(|e| Error::Config(format!("{file}: tensor {name}: {e}")))?;
        let ty = match view.dtype() {
            Dtype::F32 => GgmlType::F32,
            Dtype::BF16 => GgmlType::BF16,
            Dtype::F16 => GgmlType::F16,
            other => {
                return Err(Error::Config(format!(
                    "{file}: tensor {name} is {other:?}; this reader takes F32, BF16 and F16"
                )));
            }
        };
        // The same conversion as GGUF's float types: safetensors is little-endian too.
        let values =
            dequantize(ty, view.data()).map_err(|e| Error::Config(format!("{file}: tensor {name}: {e}")))?;
        Ok((values, view.shape().to_vec(), file))
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Array2<f32>> {
        let (values, shape, file) = self.values(name)?;
        if shape != [rows, cols] {
            return Err(Error::Shape(format!(
                "{file}: tensor {name} has shape {shape:?}, the config needs [{rows}, {cols}]"
            )));
        }
        Ok(Array2::from_shape_vec((rows, cols), values).expect("the shape was checked"))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Array1<f32>> {
        let (values, shape, file) = self.values(name)?;
        if shape != [len] {
            return Err(Error::Shape(format!(
                "{file}: tensor {name} has shape {shape:?}, the config needs [{len}]"
            )));
        }
        Ok(Array1::from_vec(values))
    }
}

/// Whether `name` is a tensor of a Llama checkpoint of `config`: the weights read, a stored copy
/// of a tied `lm_head`, and the RoPE frequencies some old checkpoints kept (recomputed here).
fn is_expected(name: &str, config: &LlamaConfig) -> bool {
    const TOP: [&str; 3] = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"];
    const LAYER: [&str; 10] = [
        "input_layernorm.weight",
        "post_attention_layernorm.weight",
        "self_attn.q_proj.weight",
        "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",
        "self_attn.o_proj.weight",
        "mlp.gate_proj.weight",
        "mlp.up_proj.weight",
        "mlp.down_proj.weight",
        "self_attn.rotary_emb.inv_freq",
    ];
    if TOP.contains(&name) {
        return true;
    }
    let Some(rest) = name.strip_prefix("model.layers.") else { return false };
    let Some((layer, part)) = rest.split_once('.') else { return false };
    layer.parse::<usize>().is_ok_and(|l| l < config.n_layers) && LAYER.contains(&part)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Config(format!("{}: not valid JSON: {e}", path.display())))
}

fn object<'v>(json: &'v Value, source: &str, what: &str) -> Result<&'v Map<String, Value>> {
    json.as_object().ok_or_else(|| Error::Config(format!("{source}: {what} is not a JSON object")))
}

/// Typed access to a `config.json`'s keys, errors naming the file, the key and the value. A key
/// set to `null` counts as absent, as transformers reads it.
struct Keys<'a> {
    object: &'a Map<String, Value>,
    source: &'a str,
}

impl Keys<'_> {
    fn error(&self, message: String) -> Error {
        Error::Config(format!("{}: {message}", self.source))
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, value: &Value, wanted: &str) -> Error {
        self.error(format!("{key} must be {wanted}, got {value}"))
    }

    fn size(&self, key: &str) -> Result<Option<usize>> {
        self.get(key)
            .map(|v| v.as_u64().map(|n| n as usize).ok_or_else(|| self.bad(key, v, "a non-negative integer")))
            .transpose()
    }

    fn required_size(&self, key: &str) -> Result<usize> {
        self.size(key)?.ok_or_else(|| self.error(format!("{key} is missing")))
    }

    fn number(&self, key: &str) -> Result<Option<f64>> {
        self.get(key).map(|v| v.as_f64().ok_or_else(|| self.bad(key, v, "a number"))).transpose()
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key).map(|v| v.as_bool().ok_or_else(|| self.bad(key, v, "true or false"))).transpose()
    }

    fn str(&self, key: &str) -> Result<Option<&str>> {
        self.get(key).map(|v| v.as_str().ok_or_else(|| self.bad(key, v, "a string"))).transpose()
    }

    /// `model_type`, checked with `architectures` against what this forward pass runs.
    fn model_type(&self) -> Result<&str> {
        if let Some(list) = self.get("architectures") {
            let names = list.as_array().ok_or_else(|| self.bad("architectures", list, "a list"))?;
            for name in names {
                if !name.as_str().is_some_and(|n| SUPPORTED_ARCHITECTURES.contains(&n)) {
                    return Err(self.error(format!(
                        "architecture {name} is not supported: this reader takes {}",
                        SUPPORTED_ARCHITECTURES.join(", ")
                    )));
                }
            }
        }
        let model_type = self.str("model_type")?.ok_or_else(|| self.error("model_type is missing".into()))?;
        if !SUPPORTED_MODEL_TYPES.contains(&model_type) {
            return Err(self.error(format!(
                "model_type {model_type:?} is not supported: this reader takes {}",
                SUPPORTED_MODEL_TYPES.map(|t| format!("{t:?}")).join(", ")
            )));
        }
        Ok(model_type)
    }

    /// The RoPE dict as transformers 5 builds it (`convert_rope_params_to_dict`): a non-empty
    /// `rope_scaling` (transformers 4) wins over `rope_parameters`; `rope_theta` comes from the
    /// dict, else the top-level key, else 10 000.
    fn rope(&self, max_position_embeddings: usize) -> Result<HfRopeParameters> {
        let non_empty = |key: &str| self.get(key).filter(|v| v.as_object().is_none_or(|o| !o.is_empty()));
        let (key, params) = match (non_empty("rope_scaling"), self.get("rope_parameters")) {
            (Some(scaling), _) => ("rope_scaling", scaling.clone()),
            (None, Some(params)) => ("rope_parameters", params.clone()),
            (None, None) => ("rope_parameters", Value::Object(Map::new())),
        };
        let dict = params.as_object().ok_or_else(|| self.bad(key, &params, "a JSON object"))?;
        // transformers 5 keeps one dict per layer type for models that mix attention kinds
        // (Gemma 3): one RoPE for every layer here.
        if let Some((layer_type, _)) = dict.iter().find(|(_, v)| v.is_object()) {
            return Err(self.error(format!(
                "{key} has a dict per layer type ({layer_type:?}): this model has one RoPE for every layer"
            )));
        }
        if let Some(factor) = dict.get("partial_rotary_factor").and_then(Value::as_f64)
            && factor != 1.0
        {
            return Err(self.error(format!(
                "{key}.partial_rotary_factor is {factor}: this RoPE rotates every dim of a head"
            )));
        }
        let mut rope = HfRopeParameters::from_json(&params, max_position_embeddings, None)
            .map_err(|e| self.error(format!("{key}: {e}")))?;
        if rope.rope_theta.is_none() {
            rope.rope_theta = self.number("rope_theta")?;
        }
        Ok(rope)
    }
}
