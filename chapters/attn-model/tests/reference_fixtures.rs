//! The reference fixtures of the forward pass (`fixtures/hf_reference.json` from Hugging Face,
//! `fixtures/llama_cpp_reference.json` from llama.cpp) were computed on token ids that this
//! crate's tokenizer made. These tests check that they still are: every prompt's ids and the
//! perplexity text's first ids equal [`ChatTokenizer`]'s encoding today, so a forward-pass test
//! that compares against the fixtures compares like with like.
//!
//! Without the model file (`cargo xtask model`) they print why and pass; with
//! `ATTN_REQUIRE_MODEL=1` they fail instead.

use attn_model::chat::chat_prompt;
use attn_model::{ChatTokenizer, GgufFile, model_path_or_skip};
use serde_json::Value as Json;

fn tokenizer() -> Option<ChatTokenizer> {
    let path = model_path_or_skip("the reference-fixture tests").unwrap_or_else(|e| panic!("{e}"))?;
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    Some(ChatTokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{e}")))
}

fn fixture(text: &str) -> Json {
    serde_json::from_str(text).expect("the fixture is JSON")
}

fn ids(value: &Json) -> Vec<u32> {
    value.as_array().expect("an array of ids").iter().map(|v| v.as_u64().unwrap() as u32).collect()
}

const EVAL_TEXT: &str = include_str!("../data/eval-text.txt");

#[test]
fn hf_prompts_are_our_tokenizers_ids() {
    let Some(tok) = tokenizer() else { return };
    let hf = fixture(include_str!("fixtures/hf_reference.json"));
    let prompts = hf["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 3);
    for prompt in prompts {
        let name = prompt["name"].as_str().unwrap();
        let text = prompt["text"].as_str().unwrap();
        let want = ids(&prompt["token_ids"]);
        assert_eq!(tok.encode(text).unwrap(), want, "prompt {name}: {text:?}");
        assert_eq!(prompt["positions"].as_array().unwrap().len(), want.len(), "prompt {name}");
        // The chat prompt is chat.rs's ChatML, built from the question the script passed.
        let args: Vec<&str> =
            prompt["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        if let ["--chat", question] = args[..] {
            assert_eq!(text, chat_prompt(None, question), "prompt {name}");
            assert_eq!(tok.encode_chat(None, question).unwrap(), want, "prompt {name}");
        }
    }
    assert!(prompts.iter().any(|p| p["args"][0] == "--chat"), "one prompt is a chat prompt");
}

#[test]
fn perplexity_ids_are_the_start_of_our_eval_text_encoding() {
    let Some(tok) = tokenizer() else { return };
    let hf = fixture(include_str!("fixtures/hf_reference.json"));
    let stored = ids(&hf["perplexity"]["ids"]);
    assert_eq!(stored.len(), 1024);
    assert_eq!(hf["perplexity"]["tokens"].as_u64(), Some(1024));
    let ours = tok.encode(EVAL_TEXT).unwrap();
    assert!(ours.len() > 1024, "eval-text.txt is {} tokens, fewer than the 1024 measured", ours.len());
    assert_eq!(&ours[..1024], &stored[..], "eval-text.txt or the tokenizer changed since the fixture");
}

#[test]
fn llama_cpp_prompts_are_the_hf_prompts() {
    let hf = fixture(include_str!("fixtures/hf_reference.json"));
    let llama = fixture(include_str!("fixtures/llama_cpp_reference.json"));
    let (hf, llama) = (hf["prompts"].as_array().unwrap(), llama["prompts"].as_array().unwrap());
    assert_eq!(hf.len(), llama.len());
    for (h, l) in hf.iter().zip(llama) {
        assert_eq!(h["name"], l["name"]);
        assert_eq!(ids(&h["token_ids"]), ids(&l["token_ids"]), "prompt {}", h["name"]);
    }
}
