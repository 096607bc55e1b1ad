//! Prints the token ids that [`ChatTokenizer`] gives, as JSON, for the reference scripts of
//! `tests/fixtures/` (so Hugging Face and llama.cpp run on exactly our tokens, not their own).
//!
//! ```text
//! cargo run --release -p attn-model --example token_ids -- TEXT --chat QUESTION --file PATH
//! ```
//!
//! Each argument is one text: a plain `TEXT`; `--chat QUESTION`, the ChatML prompt of one user
//! message with the default system prompt, ending with the assistant header
//! ([`attn_model::chat::chat_prompt`]); `--file PATH`, the file's contents. The output is a JSON
//! array with one `{"text": …, "ids": […]}` per text, in order.

use attn_model::chat::chat_prompt;
use attn_model::{ChatTokenizer, GgufFile, model_path};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let texts = texts(std::env::args().skip(1))?;
    let file = GgufFile::open(model_path()?)?;
    let tokenizer = ChatTokenizer::from_gguf(&file)?;
    let out = texts
        .iter()
        .map(|text| Ok(json!({ "text": text, "ids": tokenizer.encode(text)? })))
        .collect::<attn_model::Result<Vec<_>>>()?;
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// The texts the arguments name, in order.
fn texts(mut args: impl Iterator<Item = String>) -> Result<Vec<String>, String> {
    let mut texts = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        texts.push(match arg.as_str() {
            "--chat" => chat_prompt(None, &value("--chat")?),
            "--file" => {
                let path = value("--file")?;
                std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?
            }
            _ => arg,
        });
    }
    if texts.is_empty() {
        return Err("usage: token_ids [TEXT | --chat QUESTION | --file PATH]...".into());
    }
    Ok(texts)
}
