//! The Hugging Face checkpoint reader (`llama::hf`): seeded random checkpoints written here as
//! `config.json` + safetensors (F32, BF16, F16; tied and untied; one file and shards; a head dim
//! other than `d_model / heads`) load back to the same weights (the 16-bit ones to the rounded
//! values) and the same logits; bad checkpoints give errors that name the problem.
//!
//! The last test compares the real model's two files when `ATTN_HF_CHECKPOINT` names a folder
//! that transformers wrote from the GGUF file. It makes that folder with (transformers 5.17,
//! torch, accelerate, gguf in a throwaway venv; about 20 s on 2 cores):
//!
//! ```python
//! import torch
//! from transformers import AutoModelForCausalLM
//! model = AutoModelForCausalLM.from_pretrained(
//!     "target/model", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype=torch.float32)
//! # The tensors are dequantised to f32 while loading; the GGUF quantizer only marks the model,
//! # and save_pretrained refuses a marked model ("not serializable"). Unmark it.
//! model.hf_quantizer = None
//! del model.config.quantization_config
//! model.save_pretrained("/tmp/smollm2-hf")   # config.json + model.safetensors (F32)
//! ```
//!
//! then `ATTN_HF_CHECKPOINT=/tmp/smollm2-hf cargo test -p attn-model --test hf_checkpoint`.
//! Result (2026-12-05): config equal, all 272 tensors equal bit for bit.
//!
//! Checked once more by hand (not committed: it needs transformers' files as fixtures): two tiny
//! `LlamaForCausalLM`s written by transformers 5.17 itself (hidden 16, 2 heads, 1 KV head,
//! head_dim 12; one llama3 RoPE, untied, F32 in 14 shards; one YaRN, tied, BF16) load with
//! `from_hf_dir` and give transformers' f32 logits (reloaded with `dtype=torch.float32`) to
//! within 1.1e-6 of logits up to 3.5.

use attn_model::Error;
use attn_model::llama::{DenseKvCache, GqaSdpa, Llama, LlamaConfig, LlamaWeights};
use attn_model::ndarray::{Array1, Array2};
use ch06_rope::RopeScaling;
use half::{bf16, f16};
use safetensors::{Dtype, tensor::TensorView};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One tensor by its Hugging Face name: shape and f32 values.
struct Named {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn matrix(name: String, m: &Array2<f32>) -> Named {
    Named { name, shape: m.shape().to_vec(), values: m.iter().copied().collect() }
}

fn vector(name: String, v: &Array1<f32>) -> Named {
    Named { name, shape: vec![v.len()], values: v.to_vec() }
}

/// Every weight under the name `save_pretrained` gives it (`lm_head` only when untied).
fn hf_tensors(w: &LlamaWeights) -> Vec<Named> {
    let mut out = vec![matrix("model.embed_tokens.weight".into(), &w.embedding)];
    for (l, layer) in w.layers.iter().enumerate() {
        let name = |part: &str| format!("model.layers.{l}.{part}.weight");
        out.push(vector(name("input_layernorm"), &layer.attn_norm));
        out.push(matrix(name("self_attn.q_proj"), &layer.wq));
        out.push(matrix(name("self_attn.k_proj"), &layer.wk));
        out.push(matrix(name("self_attn.v_proj"), &layer.wv));
        out.push(matrix(name("self_attn.o_proj"), &layer.wo));
        out.push(vector(name("post_attention_layernorm"), &layer.ffn_norm));
        out.push(matrix(name("mlp.gate_proj"), &layer.w_gate));
        out.push(matrix(name("mlp.up_proj"), &layer.w_up));
        out.push(matrix(name("mlp.down_proj"), &layer.w_down));
    }
    out.push(vector("model.norm.weight".into(), &w.final_norm));
    if let Some(output) = &w.output {
        out.push(matrix("lm_head.weight".into(), output));
    }
    out
}

/// `values` stored as `dtype`, little-endian.
fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::BF16 => values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect(),
        Dtype::F16 => values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
        Dtype::F64 => values.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect(),
        other => panic!("no encoder for {other:?} in this test"),
    }
}

/// `v` after a round trip through `dtype` (round to nearest even, as `half` and PyTorch do).
fn rounded(v: f32, dtype: Dtype) -> f32 {
    match dtype {
        Dtype::BF16 => bf16::from_f32(v).to_f32(),
        Dtype::F16 => f16::from_f32(v).to_f32(),
        _ => v,
    }
}

/// The weights with every value rounded through `dtype`: what a checkpoint in `dtype` holds.
fn rounded_weights(w: &LlamaWeights, dtype: Dtype) -> LlamaWeights {
    let mut w = w.clone();
    let round = |a: &mut Array2<f32>| a.mapv_inplace(|v| rounded(v, dtype));
    let round1 = |a: &mut Array1<f32>| a.mapv_inplace(|v| rounded(v, dtype));
    round(&mut w.embedding);
    round1(&mut w.final_norm);
    if let Some(o) = &mut w.output {
        round(o);
    }
    for layer in &mut w.layers {
        for m in [
            &mut layer.wq,
            &mut layer.wk,
            &mut layer.wv,
            &mut layer.wo,
            &mut layer.w_gate,
            &mut layer.w_up,
            &mut layer.w_down,
        ] {
            round(m);
        }
        round1(&mut layer.attn_norm);
        round1(&mut layer.ffn_norm);
    }
    w
}

/// transformers 5's `config.json` for `c`: the RoPE in `rope_parameters`.
fn config_json(c: &LlamaConfig) -> Value {
    assert_eq!(c.rope_scaling, RopeScaling::Default, "this writer knows the default RoPE only");
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": false,
        "mlp_bias": false,
        "hidden_act": "silu",
        "hidden_size": c.d_model,
        "intermediate_size": c.ffn_dim,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim,
        "max_position_embeddings": c.context_length,
        "rms_norm_eps": c.rms_eps,
        "vocab_size": c.vocab_size,
        "tie_word_embeddings": c.tie_embeddings,
        "rope_parameters": {"rope_theta": c.rope_theta, "rope_type": "default"},
        "transformers_version": "5.17.0",
    })
}

/// An empty folder for one test under cargo's scratch directory for integration tests.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hf_checkpoint").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// `tensors` as safetensors in `dir`: `model.safetensors` when `shards` is 1, else `shards`
/// files `model-0000i-of-0000n.safetensors` (tensors dealt out in turn) and the index.
fn write_tensors(dir: &Path, tensors: &[Named], dtype_of: impl Fn(&str) -> Dtype, shards: usize) {
    let encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|t| {
            let dtype = dtype_of(&t.name);
            (t.name.clone(), dtype, t.shape.clone(), encode(&t.values, dtype))
        })
        .collect();
    let file_name = |s: usize| match shards {
        1 => "model.safetensors".to_owned(),
        n => format!("model-{:05}-of-{n:05}.safetensors", s + 1),
    };
    let mut weight_map = serde_json::Map::new();
    for s in 0..shards {
        let views: Vec<(String, TensorView)> = encoded
            .iter()
            .enumerate()
            .filter(|(i, _)| i % shards == s)
            .map(|(_, (name, dtype, shape, bytes))| {
                weight_map.insert(name.clone(), json!(file_name(s)));
                (name.clone(), TensorView::new(*dtype, shape.clone(), bytes).unwrap())
            })
            .collect();
        let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
        let bytes = safetensors::serialize(views, Some(metadata)).unwrap();
        std::fs::write(dir.join(file_name(s)), bytes).unwrap();
    }
    if shards > 1 {
        write_json(
            &dir.join("model.safetensors.index.json"),
            &json!({"metadata": {"total_size": 0}, "weight_map": weight_map}),
        );
    }
}

/// A checkpoint of `weights` in `dtype`: config.json and the safetensors file(s).
fn write_checkpoint(dir: &Path, weights: &LlamaWeights, dtype: Dtype, shards: usize) {
    write_json(&dir.join("config.json"), &config_json(&weights.config));
    write_tensors(dir, &hf_tensors(weights), |_| dtype, shards);
}

/// Random weights with norms that are not all ones, so that their values are checked too.
fn random_weights(config: &LlamaConfig, seed: u64) -> LlamaWeights {
    let mut w = LlamaWeights::random(config, seed).unwrap();
    let wobble =
        |n: usize, k: usize| Array1::from_shape_fn(n, |i| 1.0 + 0.37 * ((i * 7 + k * 13) as f32).sin());
    for (l, layer) in w.layers.iter_mut().enumerate() {
        layer.attn_norm = wobble(config.d_model, 2 * l);
        layer.ffn_norm = wobble(config.d_model, 2 * l + 1);
    }
    w.final_norm = wobble(config.d_model, 99);
    w
}

/// Every tensor of `got` equal to `want`'s, bit for bit; the message names the first that is not.
fn assert_same_weights(got: &LlamaWeights, want: &LlamaWeights, what: &str) {
    assert_eq!(got.config, want.config, "{what}: config");
    let (got, want) = (hf_tensors(got), hf_tensors(want));
    assert_eq!(got.len(), want.len(), "{what}: number of tensors");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.name, &g.shape), (&w.name, &w.shape), "{what}");
        if let Some(i) = (0..g.values.len()).find(|&i| g.values[i].to_bits() != w.values[i].to_bits()) {
            panic!("{what}: {} element {i}: {} vs {}", g.name, g.values[i], w.values[i]);
        }
    }
}

fn logits(weights: LlamaWeights, ids: &[u32]) -> Array2<f32> {
    let config = weights.config.clone();
    let model = Llama::new(weights).unwrap();
    model.forward(ids, &mut DenseKvCache::new(&config, ids.len()).unwrap(), &GqaSdpa).unwrap()
}

/// A config whose head dim (12) is not `d_model / heads` (16 / 2), as Qwen3 and Gemma have, with
/// grouped-query attention.
fn wide_heads(tie_embeddings: bool) -> LlamaConfig {
    LlamaConfig {
        d_model: 16,
        n_heads: 2,
        n_kv_heads: 1,
        head_dim: 12,
        ffn_dim: 40,
        tie_embeddings,
        ..LlamaConfig::tiny(2, 2, 1, 8, 37)
    }
}

const IDS: [u32; 7] = [3, 1, 4, 1, 5, 9, 2];

#[test]
fn f32_checkpoints_load_back_bit_for_bit_and_give_the_same_logits() {
    let cases = [
        ("tied_single", LlamaConfig::tiny(2, 4, 2, 8, 37), 1),
        ("untied_sharded", LlamaConfig { tie_embeddings: false, ..LlamaConfig::tiny(3, 3, 1, 6, 41) }, 4),
        ("wide_heads_tied_sharded", wide_heads(true), 3),
        ("wide_heads_untied_single", wide_heads(false), 1),
    ];
    for (seed, (name, config, shards)) in cases.into_iter().enumerate() {
        let weights = random_weights(&config, seed as u64);
        let dir = scratch(&format!("f32_{name}"));
        write_checkpoint(&dir, &weights, Dtype::F32, shards);
        let loaded = LlamaWeights::from_hf_dir(&dir).unwrap();
        assert_same_weights(&loaded, &weights, name);
        let (got, want) = (logits(loaded, &IDS), logits(weights, &IDS));
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{name}: logits differ");
    }
}

#[test]
fn bf16_and_f16_checkpoints_load_as_the_rounded_values() {
    for (dtype, config, shards) in [
        (Dtype::BF16, LlamaConfig::tiny(2, 4, 2, 8, 37), 1),
        (Dtype::BF16, wide_heads(false), 3),
        (Dtype::F16, LlamaConfig { tie_embeddings: false, ..LlamaConfig::tiny(2, 4, 4, 6, 37) }, 2),
        (Dtype::F16, wide_heads(true), 1),
    ] {
        let what = format!("{dtype:?}, {shards} file(s), tied {}", config.tie_embeddings);
        let weights = random_weights(&config, 7);
        let dir = scratch(&format!("{dtype:?}_{shards}_{}", config.tie_embeddings));
        write_checkpoint(&dir, &weights, dtype, shards);
        let loaded = LlamaWeights::from_hf_dir(&dir).unwrap();
        let want = rounded_weights(&weights, dtype);
        assert_same_weights(&loaded, &want, &what);
        // Rounding changed something, or the test would not test the conversion.
        assert_ne!(loaded.layers[0].wq, weights.layers[0].wq, "{what}");
        assert_eq!(logits(loaded, &IDS), logits(want, &IDS), "{what}");
    }
}

#[test]
fn a_checkpoint_of_mixed_dtypes_loads_each_tensor_by_its_own() {
    let config = LlamaConfig::tiny(1, 2, 1, 4, 19);
    let weights = random_weights(&config, 3);
    let dir = scratch("mixed");
    write_json(&dir.join("config.json"), &config_json(&config));
    // Norms in F32, as mixed-precision checkpoints often keep them; matrices in BF16.
    let dtype_of = |name: &str| if name.contains("norm") { Dtype::F32 } else { Dtype::BF16 };
    write_tensors(&dir, &hf_tensors(&weights), dtype_of, 1);
    let loaded = LlamaWeights::from_hf_dir(&dir).unwrap();
    let mut want = rounded_weights(&weights, Dtype::BF16);
    want.final_norm = weights.final_norm.clone();
    want.layers[0].attn_norm = weights.layers[0].attn_norm.clone();
    want.layers[0].ffn_norm = weights.layers[0].ffn_norm.clone();
    assert_same_weights(&loaded, &want, "mixed");
}

/// The `config.json` transformers 5.17 wrote for SmolLM2-135M-Instruct loaded from the GGUF
/// file (`save_pretrained`, copied verbatim): the same config as the GGUF metadata gives.
const SMOLLM2_CONFIG_JSON: &str = r#"{
  "_model_name_or_path": "Smollm2 135M 8k Lc100K Mix1 Ep2",
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "dtype": "float32",
  "eos_token_id": 2,
  "head_dim": 64,
  "hidden_act": "silu",
  "hidden_size": 576,
  "initializer_range": 0.02,
  "intermediate_size": 1536,
  "max_position_embeddings": 8192,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 9,
  "num_hidden_layers": 30,
  "num_key_value_heads": 3,
  "pad_token_id": 2,
  "pretraining_tp": 1,
  "rms_norm_eps": 9.999999747378752e-06,
  "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
  "tie_word_embeddings": true,
  "transformers_version": "5.17.0",
  "unk_token_id": 0,
  "use_cache": true,
  "vocab_size": 49152
}"#;

#[test]
fn smollm2s_config_json_from_transformers_5_is_its_gguf_config() {
    let json: Value = serde_json::from_str(SMOLLM2_CONFIG_JSON).unwrap();
    assert_eq!(LlamaConfig::from_hf_json(&json, "smollm2").unwrap(), LlamaConfig::smollm2_135m());
}

fn parse(value: Value) -> attn_model::Result<LlamaConfig> {
    LlamaConfig::from_hf_json(&value, "config.json")
}

fn minimal() -> Value {
    json!({"model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
           "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100})
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[test]
fn missing_keys_take_transformers_defaults() {
    let c = parse(minimal()).unwrap();
    assert_eq!((c.n_kv_heads, c.head_dim, c.context_length), (4, 16, 2048));
    assert_eq!((c.rms_eps, c.rope_theta, c.tie_embeddings), (1e-6, 10_000.0, false));
    assert_eq!(c.rope_scaling, RopeScaling::Default);
    // null is absent, as transformers reads it.
    let nulls = json!({"num_key_value_heads": null, "head_dim": null, "rope_scaling": null});
    assert_eq!(parse(with(minimal(), nulls)).unwrap(), c);
}

#[test]
fn transformers_4_and_5_spell_the_rope_differently_and_mean_the_same() {
    let llama3 = json!({"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": 8192});
    let mut v5 = llama3.clone();
    v5["rope_type"] = json!("llama3");
    v5["rope_theta"] = json!(500_000.0);
    let mut v4 = llama3;
    v4["type"] = json!("llama3"); // transformers 4.x wrote `type` next to `rope_type`
    let max = json!({"max_position_embeddings": 131_072});
    let five = parse(with(with(minimal(), max.clone()), json!({"rope_parameters": v5}))).unwrap();
    let four =
        parse(with(with(minimal(), max), json!({"rope_theta": 500_000.0, "rope_scaling": v4}))).unwrap();
    assert_eq!(five, four);
    assert_eq!(five.rope_theta, 500_000.0);
    assert_eq!(
        five.rope_scaling,
        RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192
        }
    );
    // A rope_theta only at the top level (transformers 4 without scaling).
    assert_eq!(parse(with(minimal(), json!({"rope_theta": 100_000.0}))).unwrap().rope_theta, 100_000.0);
}

#[test]
fn mistral_is_accepted_without_a_sliding_window_shorter_than_the_context() {
    let mistral = |extra: Value| {
        parse(with(
            with(
                minimal(),
                json!({"model_type": "mistral", "architectures": ["MistralForCausalLM"], "num_attention_heads": 16}),
            ),
            extra,
        ))
    };
    let c = mistral(json!({"sliding_window": null})).unwrap();
    // MistralConfig's defaults: 8 key/value heads, a context of 131 072.
    assert_eq!((c.n_kv_heads, c.context_length), (8, 131_072));
    assert!(mistral(json!({"sliding_window": 4096, "max_position_embeddings": 4096})).is_ok());
    // No key at all means MistralConfig's default window of 4096.
    let err = mistral(json!({})).unwrap_err().to_string();
    assert!(err.contains("sliding_window is 4096"), "{err}");
}

fn config_error(extra: Value) -> String {
    parse(with(minimal(), extra)).unwrap_err().to_string()
}

#[test]
fn configs_this_forward_pass_cannot_run_are_named() {
    for (extra, expected) in [
        (json!({"model_type": "qwen2"}), "model_type \"qwen2\" is not supported"),
        (json!({"architectures": ["Qwen3ForCausalLM"]}), "architecture \"Qwen3ForCausalLM\""),
        (json!({"architectures": ["LlamaForSequenceClassification"]}), "LlamaForSequenceClassification"),
        (json!({"attention_bias": true}), "attention_bias is true"),
        (json!({"mlp_bias": true}), "mlp_bias is true"),
        (json!({"hidden_act": "gelu"}), "hidden_act is \"gelu\""),
        (json!({"partial_rotary_factor": 0.5}), "partial_rotary_factor is 0.5"),
        (json!({"rope_parameters": {"rope_type": "longrope", "factor": 2.0}}), "longrope"),
        (json!({"rope_parameters": {"full_attention": {"rope_type": "default"}}}), "per layer type"),
        (json!({"rope_parameters": {"rope_type": "linear"}}), "needs `factor`"),
        (json!({"num_key_value_heads": 3}), "n_kv_heads 3"),
        (json!({"head_dim": 7}), "head_dim 7"),
        (json!({"hidden_size": -4}), "hidden_size must be a non-negative integer, got -4"),
        (json!({"tie_word_embeddings": "yes"}), "tie_word_embeddings must be true or false"),
    ] {
        let err = config_error(extra.clone());
        assert!(err.contains(expected) && err.contains("config.json"), "{extra}: {err}");
    }
    let mut no_layers = minimal();
    no_layers.as_object_mut().unwrap().remove("num_hidden_layers");
    assert!(parse(no_layers).unwrap_err().to_string().contains("num_hidden_layers is missing"));
    let mut no_type = minimal();
    no_type.as_object_mut().unwrap().remove("model_type");
    assert!(parse(no_type).unwrap_err().to_string().contains("model_type is missing"));
}

/// A good tiny checkpoint's tensors, to break one at a time.
fn tiny_checkpoint() -> (LlamaConfig, Vec<Named>) {
    let config = LlamaConfig { tie_embeddings: false, ..LlamaConfig::tiny(2, 2, 1, 4, 13) };
    let tensors = hf_tensors(&random_weights(&config, 11));
    (config, tensors)
}

fn load_error(
    name: &str,
    config: &LlamaConfig,
    tensors: &[Named],
    dtype_of: impl Fn(&str) -> Dtype,
) -> String {
    let dir = scratch(name);
    write_json(&dir.join("config.json"), &config_json(config));
    write_tensors(&dir, tensors, dtype_of, 1);
    match LlamaWeights::from_hf_dir(&dir) {
        Ok(_) => panic!("{name}: the broken checkpoint loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_checkpoints_are_named_by_file_and_tensor() {
    let (config, tensors) = tiny_checkpoint();
    let f32s = |_: &str| Dtype::F32;

    let missing: Vec<Named> =
        tensors.iter().filter(|t| t.name != "model.layers.1.mlp.up_proj.weight").map(clone).collect();
    let err = load_error("missing", &config, &missing, f32s);
    assert!(err.contains("tensor model.layers.1.mlp.up_proj.weight is missing from"), "{err}");
    assert!(err.contains("model.safetensors"), "{err}");

    // Untied: lm_head is required.
    let no_head: Vec<Named> = tensors.iter().filter(|t| t.name != "lm_head.weight").map(clone).collect();
    let err = load_error("no_head", &config, &no_head, f32s);
    assert!(err.contains("lm_head.weight is missing"), "{err}");

    let mut transposed: Vec<Named> = tensors.iter().map(clone).collect();
    let k = transposed.iter_mut().find(|t| t.name == "model.layers.0.self_attn.k_proj.weight").unwrap();
    k.shape.reverse();
    let err = load_error("shape", &config, &transposed, f32s);
    assert!(
        err.contains("model.safetensors: tensor model.layers.0.self_attn.k_proj.weight has shape [8, 4]"),
        "{err}"
    );
    assert!(err.contains("needs [4, 8]"), "{err}");

    let dtype_of = |name: &str| if name == "model.norm.weight" { Dtype::F64 } else { Dtype::F32 };
    let err = load_error("dtype", &config, &tensors, dtype_of);
    assert!(err.contains("model.safetensors: tensor model.norm.weight is F64"), "{err}");

    let mut biased: Vec<Named> = tensors.iter().map(clone).collect();
    biased.push(Named {
        name: "model.layers.0.self_attn.q_proj.bias".into(),
        shape: vec![8],
        values: vec![0.5; 8],
    });
    let err = load_error("bias", &config, &biased, f32s);
    assert!(err.contains("tensor model.layers.0.self_attn.q_proj.bias is a bias"), "{err}");

    let mut qk_norm: Vec<Named> = tensors.iter().map(clone).collect();
    qk_norm.push(Named {
        name: "model.layers.0.self_attn.q_norm.weight".into(),
        shape: vec![4],
        values: vec![1.0; 4],
    });
    let err = load_error("qk_norm", &config, &qk_norm, f32s);
    assert!(err.contains("q_norm.weight is not a tensor of a Llama decoder"), "{err}");

    let mut extra_layer: Vec<Named> = tensors.iter().map(clone).collect();
    extra_layer.push(Named {
        name: "model.layers.2.input_layernorm.weight".into(),
        shape: vec![8],
        values: vec![1.0; 8],
    });
    let err = load_error("extra_layer", &config, &extra_layer, f32s);
    assert!(err.contains("model.layers.2.input_layernorm.weight is not a tensor"), "{err}");
}

fn clone(t: &Named) -> Named {
    Named { name: t.name.clone(), shape: t.shape.clone(), values: t.values.clone() }
}

#[test]
fn missing_and_unreadable_files_are_named() {
    let (config, tensors) = tiny_checkpoint();
    let dir = scratch("files");
    let err = LlamaWeights::from_hf_dir(&dir).unwrap_err();
    assert!(matches!(&err, Error::Io { path, .. } if path.ends_with("config.json")), "{err}");

    write_json(&dir.join("config.json"), &config_json(&config));
    let err = LlamaWeights::from_hf_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("neither model.safetensors nor model.safetensors.index.json"), "{err}");

    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = LlamaWeights::from_hf_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("model.safetensors: not a valid safetensors file"), "{err}");

    // A sharded checkpoint whose index names a shard that is not there.
    let dir = scratch("lost_shard");
    write_json(&dir.join("config.json"), &config_json(&config));
    write_tensors(&dir, &tensors, |_| Dtype::F32, 2);
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let err = LlamaWeights::from_hf_dir(&dir).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with("model-00002-of-00002.safetensors")),
        "{err}"
    );

    // An index may not point outside its folder.
    write_json(
        &dir.join("model.safetensors.index.json"),
        &json!({"weight_map": {"model.norm.weight": "../x.safetensors"}}),
    );
    let err = LlamaWeights::from_hf_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("names the shard \"../x.safetensors\", not a file name"), "{err}");
}

/// Environment variable naming a folder that transformers wrote from the GGUF file (see the
/// module's comment).
const HF_CHECKPOINT_ENV: &str = "ATTN_HF_CHECKPOINT";

#[test]
fn the_real_models_hf_checkpoint_equals_its_gguf_file() -> attn_model::Result<()> {
    let Some(dir) = std::env::var_os(HF_CHECKPOINT_ENV) else {
        println!(
            "skipped the real model's HF checkpoint: {HF_CHECKPOINT_ENV} is not set (see tests/hf_checkpoint.rs)"
        );
        return Ok(());
    };
    let from_hf = LlamaWeights::from_hf_dir(PathBuf::from(dir))?;
    let from_gguf = LlamaWeights::from_gguf(&attn_model::GgufFile::open(attn_model::model_path()?)?)?;
    assert_eq!(from_hf.config, from_gguf.config);
    // Both dequantise the same Q4_1/Q8_0 blocks as `d·q (+ m)` in f32, and transformers
    // un-permutes W_q/W_k by its own code (`reverse_permute_weights`): every weight equal
    // bit for bit checks our un-permutation against theirs.
    let (hf, gguf) = (hf_tensors(&from_hf), hf_tensors(&from_gguf));
    let mut differing = Vec::new();
    for (h, g) in hf.iter().zip(&gguf) {
        assert_eq!((&h.name, &h.shape), (&g.name, &g.shape));
        let max = h.values.iter().zip(&g.values).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let unequal = h.values.iter().zip(&g.values).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        if unequal > 0 {
            differing.push(format!("{}: {unequal} of {} differ, by at most {max}", h.name, h.values.len()));
        }
    }
    println!("{} tensors compared, {} differ", hf.len(), differing.len());
    assert!(differing.is_empty(), "{}", differing.join("\n"));
    Ok(())
}
