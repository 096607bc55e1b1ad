//! The real model file: the facts of the model (tensor count, types, metadata) as checked by
//! hand, every dequantised tensor of `fixtures/smollm2_reference.json` bit for bit against the
//! `gguf` Python package, and the tokenizer's ids against a plain BPE (the fixture's script).
//!
//! Without the file (`cargo xtask model` fetches it) these tests print why and pass; with
//! `ATTN_REQUIRE_MODEL=1` they fail instead.

use attn_model::chat::{DEFAULT_SYSTEM_PROMPT, chat_prompt};
use attn_model::gguf::{GgmlType, GgufFile};
use attn_model::{ChatTokenizer, model_path_or_skip};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The model file, parsed once for all tests of this binary (98 MB read once), or `None` when
/// it is missing and not required.
fn model() -> Option<&'static GgufFile> {
    static MODEL: OnceLock<Option<GgufFile>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            // Under ATTN_REQUIRE_MODEL=1 a missing file fails every test with "run `cargo xtask model`".
            let path = model_path_or_skip("the real-model tests").unwrap_or_else(|e| panic!("{e}"))?;
            Some(GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}")))
        })
        .as_ref()
}

fn reference() -> Json {
    serde_json::from_str(include_str!("fixtures/smollm2_reference.json")).expect("the fixture is JSON")
}

#[test]
fn tensor_index_matches_the_model_notes() {
    let Some(file) = model() else { return };
    assert_eq!(file.version, 3);
    assert_eq!(file.alignment, 32, "no general.alignment key: the default");
    assert_eq!(file.tensors.len(), 272);
    let mut by_type: HashMap<GgmlType, usize> = HashMap::new();
    for t in &file.tensors {
        *by_type.entry(t.ggml_type).or_default() += 1;
    }
    assert_eq!(by_type[&GgmlType::Q4_1], 210, "every projection: 30 layers × 7");
    assert_eq!(by_type[&GgmlType::Q8_0], 1);
    assert_eq!(by_type[&GgmlType::F32], 61, "30 × 2 norms + output_norm");
    let embd = file.tensor("token_embd.weight").unwrap();
    assert_eq!((embd.ggml_type, embd.dims.as_slice()), (GgmlType::Q8_0, &[576u64, 49152][..]));
    assert!(file.tensor("output.weight").is_err(), "tied embeddings: no output layer of its own");
    for layer in 0..30 {
        for (part, dims) in [
            ("attn_q", [576u64, 576]),
            ("attn_k", [576, 192]),
            ("attn_v", [576, 192]),
            ("attn_output", [576, 576]),
            ("ffn_gate", [576, 1536]),
            ("ffn_up", [576, 1536]),
            ("ffn_down", [1536, 576]),
        ] {
            let t = file.tensor(&format!("blk.{layer}.{part}.weight")).unwrap();
            assert_eq!((t.ggml_type, t.dims.as_slice()), (GgmlType::Q4_1, &dims[..]), "{}", t.name);
        }
        for norm in ["attn_norm", "ffn_norm"] {
            let t = file.tensor(&format!("blk.{layer}.{norm}.weight")).unwrap();
            assert_eq!((t.ggml_type, t.dims.as_slice()), (GgmlType::F32, &[576u64][..]), "{}", t.name);
        }
    }
}

#[test]
fn metadata_matches_the_model_notes() {
    let Some(file) = model() else { return };
    let m = &file.metadata;
    assert_eq!(m.str("general.architecture").unwrap(), "llama");
    for (key, value) in [
        ("llama.block_count", 30),
        ("llama.embedding_length", 576),
        ("llama.feed_forward_length", 1536),
        ("llama.attention.head_count", 9),
        ("llama.attention.head_count_kv", 3),
        ("llama.rope.dimension_count", 64),
        ("llama.context_length", 8192),
        ("llama.vocab_size", 49152),
        ("tokenizer.ggml.bos_token_id", 1),
        ("tokenizer.ggml.eos_token_id", 2),
        ("tokenizer.ggml.unknown_token_id", 0),
        ("tokenizer.ggml.padding_token_id", 2),
    ] {
        assert_eq!(m.u64(key).unwrap(), value, "{key}");
    }
    assert_eq!(m.f64("llama.rope.freq_base").unwrap(), 100_000.0);
    assert_eq!(m.f64("llama.attention.layer_norm_rms_epsilon").unwrap() as f32, 1e-5);
    assert_eq!(m.str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(m.str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert!(!m.bool("tokenizer.ggml.add_bos_token").unwrap());
    assert_eq!(m.strings("tokenizer.ggml.tokens").unwrap().len(), 49152);
    assert_eq!(m.strings("tokenizer.ggml.merges").unwrap().len(), 48900);
    assert_eq!(m.strings("general.languages").unwrap(), ["en"]);
}

#[test]
fn dequantised_tensors_equal_the_gguf_package_bit_for_bit() {
    let Some(file) = model() else { return };
    for t in reference()["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let values = file.dequantize(name).unwrap();
        let shape: Vec<usize> =
            t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(values.shape(), shape.as_slice(), "{name}");
        assert_eq!(file.tensor(name).unwrap().ggml_type.name(), t["type"].as_str().unwrap());
        let flat = values.as_slice().expect("standard layout");
        for (i, v) in t["first"].as_array().unwrap().iter().enumerate() {
            assert_eq!(flat[i], v.as_f64().unwrap() as f32, "{name}[{i}]");
        }
        let bytes: Vec<u8> = flat.iter().flat_map(|v| v.to_le_bytes()).collect();
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            sha,
            t["sha256_f32"].as_str().unwrap(),
            "{name}: dequantised values differ from gguf-py's"
        );
    }
}

#[test]
fn token_embedding_has_one_finite_row_per_token() {
    let Some(file) = model() else { return };
    let embd = file.dequantize("token_embd.weight").unwrap();
    assert_eq!(embd.shape(), &[49152, 576]);
    assert!(embd.iter().all(|v| v.is_finite()));
    let max = embd.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(max > 0.0 && max < 100.0, "max |embedding| = {max}");
}

#[test]
fn tokenizer_ids_equal_a_plain_bpe() {
    let Some(file) = model() else { return };
    let tok = ChatTokenizer::from_gguf(file).unwrap();
    assert_eq!((tok.bos, tok.eos, tok.im_start, tok.im_end), (1, 2, 1, 2));
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(
        tok.inner().get_vocab_size(true),
        49152,
        "no token string twice, special tokens not added twice"
    );
    for case in reference()["tokens"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> =
            case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(tok.encode(text).unwrap(), want, "{text:?}");
        assert_eq!(tok.decode(&want, false).unwrap(), text, "decoding {text:?}");
    }
}

#[test]
fn english_round_trips_and_special_tokens_are_single() {
    let Some(file) = model() else { return };
    let tok = ChatTokenizer::from_gguf(file).unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let ids = tok.encode(&text).unwrap();
    assert!(ids.len() > 100 && ids.len() < text.len(), "{} tokens for {} bytes", ids.len(), text.len());
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
    assert_eq!(tok.encode(" the").unwrap().len(), 1);
    assert_eq!(tok.token(tok.encode(" the").unwrap()[0]).unwrap(), "Ġthe");
    let prompt = tok.encode_chat(None, "Hi").unwrap();
    assert_eq!(prompt[0], tok.im_start);
    assert_eq!(prompt.iter().filter(|&&id| id == tok.im_start).count(), 3);
    assert_eq!(prompt.iter().filter(|&&id| id == tok.im_end).count(), 2);
    assert_eq!(tok.decode(&prompt, false).unwrap(), chat_prompt(None, "Hi"));
    assert!(!tok.decode(&prompt, true).unwrap().contains("<|im_start|>"));
    assert!(tok.decode(&[49152], false).unwrap_err().to_string().contains("49152"));
}

#[test]
fn chat_template_in_the_file_is_the_chatml_written_in_rust() {
    let Some(file) = model() else { return };
    let tok = ChatTokenizer::from_gguf(file).unwrap();
    let template = tok.chat_template.as_deref().expect("the file has a chat template");
    // The pieces chat::chatml writes, as the Jinja template spells them.
    for piece in [
        "'<|im_start|>system\n".to_string() + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\n'",
        "'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'".into(),
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}".into(),
        "loop.first and messages[0]['role'] != 'system'".into(),
    ] {
        assert!(template.contains(&piece), "the template lacks {piece:?}:\n{template}");
    }
}
