//! Answer a prompt with SmolLM2-135M-Instruct on the CPU, streaming the answer token by token:
//!
//! ```text
//! cargo run --release --bin smollm2 -- "What is attention in a transformer?"
//! cargo run --release --bin smollm2 -- --temperature 0.7 --top-p 0.9 --seed 1 "Write a haiku"
//! ```

use anyhow::Context;
use attn_model::llama::generate;
use attn_model::{ChatTokenizer, DenseKvCache, GgufFile, GqaSdpa, Llama, LlamaWeights, Sampler, model_path};
use clap::Parser;
use std::io::Write;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Answer a prompt with SmolLM2-135M-Instruct (f32 on the CPU), streamed")]
struct Args {
    /// The user's message (wrapped in the model's ChatML template unless --raw).
    prompt: String,
    /// Continue the prompt as plain text instead of answering it as a chat message.
    #[arg(long)]
    raw: bool,
    /// The system prompt (default: the template's own).
    #[arg(long)]
    system: Option<String>,
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// CPU threads for the matrix products (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Time instead of answering: generate --max-tokens tokens greedily (no stop) this many
    /// times and print the median prefill and decode speeds (llama.cpp's timing protocol in
    /// `tests/fixtures/make_llama_cpp_reference.py`).
    #[arg(long)]
    bench: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()?;
    }
    let path = model_path()?;
    let started = Instant::now();
    let file = GgufFile::open(&path)?;
    let tokenizer = ChatTokenizer::from_gguf(&file)?;
    let model = Llama::new(LlamaWeights::from_gguf(&file).context("loading the weights")?)?;
    drop(file);
    eprintln!("loaded {} in {:.1} s", path.display(), started.elapsed().as_secs_f64());

    let prompt = if args.raw {
        tokenizer.encode(&args.prompt)?
    } else {
        tokenizer.encode_chat(args.system.as_deref(), &args.prompt)?
    };
    if let Some(repetitions) = args.bench {
        return bench(&model, &prompt, args.max_tokens, repetitions);
    }
    let mut sampler = Sampler::new(args.temperature, args.top_k, args.top_p, args.seed)?;
    let mut cache = DenseKvCache::new(model.config(), prompt.len() + args.max_tokens)?;
    // Print the text of all tokens so far minus what was printed: a token may end inside a
    // multi-byte character, which only the next token completes.
    let (mut generated, mut printed) = (Vec::new(), 0usize);
    if args.raw {
        print!("{}", args.prompt);
    }
    let result = generate(
        &model,
        &prompt,
        args.max_tokens,
        &mut sampler,
        &[tokenizer.eos],
        &mut cache,
        &GqaSdpa,
        |token| {
            generated.push(token);
            let text = tokenizer.decode(&generated, true)?;
            if text.len() > printed && text.is_char_boundary(printed) && !text.ends_with('\u{FFFD}') {
                print!("{}", &text[printed..]);
                printed = text.len();
                std::io::stdout().flush().ok();
            }
            Ok(())
        },
    )?;
    println!();
    eprintln!(
        "prompt {} tokens in {:.2} s ({:.0} tokens/s); generated {} tokens at {:.1} tokens/s{}",
        result.prompt_tokens,
        result.prefill_seconds,
        result.prompt_tokens as f64 / result.prefill_seconds,
        result.tokens.len(),
        result.decode_tokens_per_second(),
        if result.stopped { " (stopped at <|im_end|>)" } else { "" }
    );
    Ok(())
}

/// `--bench`: one warm-up, then `repetitions` greedy generations of `new` tokens with no stop;
/// the median speeds.
fn bench(model: &Llama, prompt: &[u32], new: usize, repetitions: usize) -> anyhow::Result<()> {
    anyhow::ensure!(repetitions > 0 && new > 1, "--bench needs ≥ 1 repetition and --max-tokens ≥ 2");
    let run = || -> anyhow::Result<attn_model::llama::Generation> {
        let mut cache = DenseKvCache::new(model.config(), prompt.len() + new)?;
        Ok(generate(model, prompt, new, &mut Sampler::greedy(), &[], &mut cache, &GqaSdpa, |_| Ok(()))?)
    };
    run()?;
    let runs: Vec<_> = (0..repetitions).map(|_| run()).collect::<anyhow::Result<_>>()?;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let prefill = median(runs.iter().map(|r| r.prompt_tokens as f64 / r.prefill_seconds).collect());
    let decode = median(runs.iter().map(|r| r.decode_tokens_per_second()).collect());
    println!(
        "prompt {} tokens: {prefill:.1} tokens/s; decode {new} tokens: {decode:.1} tokens/s (median of {repetitions}, {} threads)",
        prompt.len(),
        rayon::current_num_threads()
    );
    Ok(())
}
