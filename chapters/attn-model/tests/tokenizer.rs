//! The tokenizer on a tiny hand-made vocabulary, so BPE, the digit split, special tokens and
//! the errors are checked without the real model (`real_model.rs` checks the real one).

use attn_model::gguf::{GgufFile, GgufWriter, Value};
use attn_model::{ChatTokenizer, Error};

const TOKENS: [&str; 12] =
    ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "Ġ", "ab", "Ġab", "1", "2", "Ċ", "Ġa"];
/// "a b" first, so "Ġab" is Ġ + (a b), never (Ġ a) + b.
const MERGES: [&str; 3] = ["a b", "Ġ ab", "Ġ a"];

fn strings(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
}

fn tiny(model: &str, pre: &str, bos: u32) -> GgufWriter {
    let types = TOKENS.iter().map(|t| Value::I32(if t.starts_with("<|") { 3 } else { 1 })).collect();
    GgufWriter::new()
        .metadata("tokenizer.ggml.model", Value::String(model.into()))
        .metadata("tokenizer.ggml.pre", Value::String(pre.into()))
        .metadata("tokenizer.ggml.tokens", strings(&TOKENS))
        .metadata("tokenizer.ggml.merges", strings(&MERGES))
        .metadata("tokenizer.ggml.token_type", Value::Array(types))
        .metadata("tokenizer.ggml.bos_token_id", Value::U32(bos))
        .metadata("tokenizer.ggml.eos_token_id", Value::U32(2))
}

fn tokenizer(writer: GgufWriter) -> Result<ChatTokenizer, Error> {
    ChatTokenizer::from_gguf(&GgufFile::parse(writer.to_bytes(), "tiny.gguf")?)
}

#[test]
fn merges_apply_in_rank_order_within_pieces() {
    let tok = tokenizer(tiny("gpt2", "smollm", 1)).unwrap();
    assert_eq!((tok.bos, tok.eos, tok.im_start, tok.im_end, tok.vocab_size()), (1, 2, 1, 2, 12));
    assert_eq!(tok.encode("ab ab").unwrap(), [6, 7]);
    assert_eq!(tok.encode(" a").unwrap(), [11]);
    assert_eq!(tok.encode("ab\nab").unwrap(), [6, 10, 6]);
    assert_eq!(tok.decode(&[6, 10, 7], false).unwrap(), "ab\n ab");
    assert_eq!(tok.token(7).as_deref(), Some("Ġab"));
}

#[test]
fn smollm_splits_digits_gpt2_does_not() {
    let tok = tokenizer(tiny("gpt2", "smollm", 1)).unwrap();
    assert_eq!(tok.encode(" 12").unwrap(), [5, 8, 9], "the space is a piece of its own before the digits");
    let tok = tokenizer(tiny("gpt2", "gpt2", 1)).unwrap();
    // GPT-2's expression keeps " 12" one piece; with no merge for it, it stays three symbols.
    assert_eq!(tok.encode(" 12").unwrap(), [5, 8, 9]);
    assert_eq!(tok.encode("12").unwrap(), [8, 9]);
}

#[test]
fn special_tokens_are_matched_whole_and_can_be_skipped() {
    let tok = tokenizer(tiny("gpt2", "smollm", 1)).unwrap();
    let ids = tok.encode("<|im_start|>ab<|im_end|>").unwrap();
    assert_eq!(ids, [1, 6, 2]);
    assert_eq!(tok.decode(&ids, false).unwrap(), "<|im_start|>ab<|im_end|>");
    assert_eq!(tok.decode(&ids, true).unwrap(), "ab");
    let err = tok.decode(&[12], false).unwrap_err().to_string();
    assert!(err.contains("token id 12") && err.contains("12"), "{err}");
}

#[test]
fn unsupported_tokenizers_and_bad_ids_are_named() {
    let err = tokenizer(tiny("llama", "smollm", 1)).err().unwrap().to_string();
    assert!(err.contains("tiny.gguf") && err.contains("\"llama\""), "{err}");
    let err = tokenizer(tiny("gpt2", "qwen2", 1)).err().unwrap().to_string();
    assert!(err.contains("\"qwen2\""), "{err}");
    let err = tokenizer(tiny("gpt2", "smollm", 99)).err().unwrap().to_string();
    assert!(err.contains("bos_token_id = 99") && err.contains("12"), "{err}");
    let no_merges = GgufWriter::new()
        .metadata("tokenizer.ggml.model", Value::String("gpt2".into()))
        .metadata("tokenizer.ggml.tokens", strings(&TOKENS));
    let err = tokenizer(no_merges).err().unwrap().to_string();
    assert!(err.contains("no metadata key \"tokenizer.ggml.merges\""), "{err}");
    let bad_merge = GgufWriter::new()
        .metadata("tokenizer.ggml.model", Value::String("gpt2".into()))
        .metadata("tokenizer.ggml.tokens", strings(&TOKENS))
        .metadata("tokenizer.ggml.merges", strings(&["ab"]))
        .metadata("tokenizer.ggml.bos_token_id", Value::U32(1))
        .metadata("tokenizer.ggml.eos_token_id", Value::U32(2));
    let err = tokenizer(bad_merge).err().unwrap().to_string();
    assert!(err.contains("merge \"ab\" is not two symbols"), "{err}");
}
