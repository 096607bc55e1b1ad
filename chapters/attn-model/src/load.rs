//! The real model in one call, and the fixed text chapters 7–10 measure it on.

use crate::error::Result;
use crate::files::model_path;
use crate::gguf::GgufFile;
use crate::llama::{Llama, LlamaWeights};
use crate::tokenizer::ChatTokenizer;

/// SmolLM2-135M-Instruct from `target/model/` (or `ATTN_MODEL_FILE`): its weights dequantised to
/// f32 and its tokenizer. About 540 MB of memory and a second or two.
pub fn load_smollm2() -> Result<(Llama, ChatTokenizer)> {
    let file = GgufFile::open(model_path()?)?;
    let tokenizer = ChatTokenizer::from_gguf(&file)?;
    let model = Llama::new(LlamaWeights::from_gguf(&file)?)?;
    Ok((model, tokenizer))
}

/// About 14 kB of the book's own English prose (chapters 1 and 3 as of commit 859da93, code and
/// math removed; `data/make_eval_text.py`), frozen so that perplexities stay comparable.
pub const EVAL_TEXT: &str = include_str!("../data/eval-text.txt");
