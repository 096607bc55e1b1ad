//! The position encodings of [`crate::encodings`] and RoPE side by side: where the position
//! enters, what it costs, how it behaves past the trained length, and which models use it.
//! The extrapolation column says only what the cited papers report; nothing here is measured
//! by this crate.

/// One row of [`ENCODINGS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingFacts {
    pub name: &'static str,
    /// Where the position enters the computation: added to the token embeddings x once at the
    /// input, added to every score `q·k` of every layer, or a rotation of q and k in every layer
    /// (Su et al. 2021) so that `q_m·k_n` depends on `m − n` only.
    pub enters: &'static str,
    /// Learned parameters it adds. T5 computes its bias in the first layer of each stack
    /// (encoder, decoder) and reuses it in the others.
    pub parameters: &'static str,
    /// Work beyond attention without positions. A bias on scores is one add per score if it is
    /// formed in the kernel; materialised, it is a `(heads, nq, nk)` tensor. A RoPE pair costs
    /// 4 multiplies and 2 adds (`x·cos − y·sin`, `x·sin + y·cos`): 3d flops per head vector,
    /// from a cos/sin table, and nothing per score.
    pub cost: &'static str,
    /// Behaviour past the trained length, as the named source reports it.
    pub extrapolation: &'static str,
    /// Models that use it (from their papers or Hugging Face configs).
    pub used_by: &'static str,
}

/// Sinusoidal, learned absolute, T5's relative bias, ALiBi and RoPE, in the order they appeared.
pub const ENCODINGS: [EncodingFacts; 5] = [
    EncodingFacts {
        name: "sinusoidal",
        enters: "added to x",
        parameters: "none",
        cost: "d adds per token",
        extrapolation: "perplexity degrades past the trained length (Press et al. 2022, fig. 1: \
                        WikiText-103, trained at L = 512 and 1024)",
        used_by: "the original Transformer (Vaswani et al. 2017)",
    },
    EncodingFacts {
        name: "learned absolute",
        enters: "added to x",
        parameters: "max_positions × d (GPT-2 small: 1024 × 768)",
        cost: "d adds per token",
        extrapolation: "none by construction: no vector exists past max_positions",
        used_by: "GPT-2, BERT",
    },
    EncodingFacts {
        name: "T5 relative bias",
        enters: "bias on scores, learned per bucket",
        parameters: "buckets × heads (T5: 32 × heads per stack)",
        cost: "1 add per score",
        extrapolation: "degrades past the trained length, and ran out of memory at their longest \
                        inputs on a 32 GB GPU (Press et al. 2022, fig. 1); offsets past \
                        max_distance (128) share one bucket",
        used_by: "T5 (Raffel et al. 2020)",
    },
    EncodingFacts {
        name: "ALiBi",
        enters: "bias on scores, −m_h·(i − j)",
        parameters: "none",
        cost: "1 multiply-add per score",
        extrapolation: "a 1.3B model trained at 1024 matches, at 2048, the perplexity of a \
                        sinusoidal one trained at 2048, training 11% faster with 11% less memory \
                        (Press et al. 2022)",
        used_by: "BLOOM, MPT",
    },
    EncodingFacts {
        name: "RoPE",
        enters: "rotation of q and k",
        parameters: "none (rope_theta is fixed)",
        cost: "3d flops per token per head, for q and k",
        extrapolation: "degrades past the trained length (Press et al. 2022, fig. 1); Chen et al. \
                        2023 scale positions down instead (position interpolation) and extend \
                        Llama to 32 768 tokens within 1000 fine-tuning steps",
        used_by: "Llama, Qwen, Mistral, SmolLM2 (half-rotation); GPT-J (interleaved, 64 of 256 \
                  dims); GPT-NeoX (half-rotation, rotary_pct 0.25)",
    },
];
