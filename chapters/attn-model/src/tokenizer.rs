//! The model's tokenizer, rebuilt from the GGUF metadata with the `tokenizers` crate.
//!
//! SmolLM2's tokenizer is GPT-2's kind (`tokenizer.ggml.model` = `gpt2`): byte-level BPE.
//! - **Bytes to symbols.** Text is UTF-8 bytes; each of the 256 bytes is first mapped to a
//!   printable character (a space becomes `Ġ`, a newline `Ċ`), so the vocabulary is a list of
//!   strings over 256 symbols and never meets an unknown byte.
//! - **Pre-tokenisation** (`tokenizer.ggml.pre` = `smollm`, as llama.cpp names it): every digit
//!   becomes a piece of its own, then GPT-2's regular expression cuts the rest into words with
//!   their leading space, runs of punctuation and runs of whitespace. BPE never merges across
//!   pieces.
//! - **BPE.** Inside a piece, the pair of adjacent symbols whose merge comes first in
//!   `tokenizer.ggml.merges` (48 900 of them, "a b" meaning a+b) is merged, again and again,
//!   until no listed pair is left; each final symbol string is a token of `tokenizer.ggml.tokens`
//!   (49 152), its id its index.
//! - **Special tokens** (token type 3, "control": `<|endoftext|>` 0, `<|im_start|>` 1,
//!   `<|im_end|>` 2 and 14 more) are matched in the text before all of this, whole, so a
//!   ChatML prompt written as text encodes its markers as single tokens.

use crate::error::{Error, Result};
use crate::gguf::{GgufError, GgufFile};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

/// llama.cpp's token type of control (special) tokens in `tokenizer.ggml.token_type`.
const CONTROL_TOKEN_TYPE: i64 = 3;

/// The model's tokenizer and its special token ids.
pub struct ChatTokenizer {
    tokenizer: Tokenizer,
    /// Beginning of sequence (`<|im_start|>` in SmolLM2; `add_bos_token` is false, so prompts
    /// do not get one added).
    pub bos: u32,
    /// End of sequence: generation stops here (`<|im_end|>` in SmolLM2).
    pub eos: u32,
    pub im_start: u32,
    pub im_end: u32,
    /// The Jinja chat template of the metadata, if any (shown, not executed: see [`crate::chat`]).
    pub chat_template: Option<String>,
    /// The number of tokens, special ones included (kept: `tokenizers` rebuilds its whole
    /// vocabulary map to count it).
    vocab_size: usize,
}

impl ChatTokenizer {
    /// The tokenizer described by `file`'s `tokenizer.ggml.*` metadata.
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let meta = &file.metadata;
        let gguf = |e: GgufError| file.error(e);
        let unsupported = |what: String| Error::Tokenizer(format!("{}: {what}", file.source));
        let model = meta.str("tokenizer.ggml.model").map_err(gguf)?;
        if model != "gpt2" {
            return Err(unsupported(format!(
                "tokenizer.ggml.model is {model:?}; only byte-level BPE (\"gpt2\") is supported"
            )));
        }
        let pre = meta.get("tokenizer.ggml.pre").and_then(|v| v.as_str()).unwrap_or("default");
        let split_digits = match pre {
            "smollm" | "starcoder" | "refact" => true,
            "gpt2" | "default" => false,
            other => {
                return Err(unsupported(format!(
                    "tokenizer.ggml.pre is {other:?}; supported: smollm, starcoder, refact, gpt2"
                )));
            }
        };
        let tokens = meta.strings("tokenizer.ggml.tokens").map_err(gguf)?;
        let merges = meta.strings("tokenizer.ggml.merges").map_err(gguf)?;
        let types = match meta.get("tokenizer.ggml.token_type") {
            Some(_) => meta.integers("tokenizer.ggml.token_type").map_err(gguf)?,
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(unsupported(format!("{} token types for {} tokens", types.len(), tokens.len())));
        }
        let token_id = |key: &str| -> Result<u32> {
            let id = meta.u64(key).map_err(gguf)?;
            match u32::try_from(id) {
                Ok(id) if (id as usize) < tokens.len() => Ok(id),
                _ => Err(unsupported(format!("{key} = {id} is past the vocabulary of {}", tokens.len()))),
            }
        };
        let (bos, eos) = (token_id("tokenizer.ggml.bos_token_id")?, token_id("tokenizer.ggml.eos_token_id")?);
        let tokenizer = build(&tokens, &merges, &types, split_digits).map_err(unsupported)?;
        let special = |s: &str| {
            tokenizer.token_to_id(s).ok_or_else(|| unsupported(format!("the vocabulary has no {s}")))
        };
        Ok(ChatTokenizer {
            im_start: special("<|im_start|>")?,
            im_end: special("<|im_end|>")?,
            bos,
            eos,
            chat_template: meta.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string),
            vocab_size: tokens.len(),
            tokenizer,
        })
    }

    /// The token ids of `text`; special tokens written in the text become their single ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(format!("encoding {text:?}: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`; special tokens are kept unless `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.vocab_size()) {
            return Err(Error::Tokenizer(format!(
                "token id {bad} is past the vocabulary of {}",
                self.vocab_size()
            )));
        }
        self.tokenizer
            .decode(ids, skip_special)
            .map_err(|e| Error::Tokenizer(format!("decoding {ids:?}: {e}")))
    }

    /// The token's string as the vocabulary writes it (`Ġthe` for " the").
    pub fn token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// The vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The ids of the ChatML prompt for a (system, user) exchange, ending where the assistant's
    /// answer starts ([`crate::chat::chat_prompt`]).
    pub fn encode_chat(&self, system: Option<&str>, user: &str) -> Result<Vec<u32>> {
        self.encode(&crate::chat::chat_prompt(system, user))
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

/// The `tokenizers` pipeline: BPE over the vocabulary and merges, the digit split and GPT-2's
/// byte-level pre-tokenizer, the byte-level decoder, and the control tokens as special tokens.
fn build(
    tokens: &[&str],
    merges: &[&str],
    types: &[i64],
    split_digits: bool,
) -> std::result::Result<Tokenizer, String> {
    let vocab: tokenizers::models::bpe::Vocab =
        tokens.iter().enumerate().map(|(id, t)| (t.to_string(), id as u32)).collect();
    let merges = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| format!("merge {m:?} is not two symbols separated by a space"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("building the BPE model: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    // ByteLevel(add_prefix_space = false, trim_offsets = true, use_regex = true): GPT-2's.
    let byte_level = ByteLevel::new(false, true, true);
    let pre: PreTokenizerWrapper = if split_digits {
        Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
    } else {
        byte_level.into()
    };
    tokenizer.with_pre_tokenizer(Some(pre));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|&(_, &ty)| ty == CONTROL_TOKEN_TYPE)
        .map(|(t, _)| AddedToken::from(t.to_string(), true))
        .collect();
    tokenizer.add_special_tokens(&special);
    Ok(tokenizer)
}
