//! How much memory a KV cache takes: every layer keeps a key and a value vector per KV head for
//! every token of every sequence,
//!
//! ```text
//! bytes = 2 · layers · batch · kv_heads · T · head_dim · bytes_per_element
//! ```
//!
//! The 2 is K and V. Grouped-query attention divides it by `n_heads / n_kv_heads`; a smaller
//! element (bf16 → INT8 → FP4) by 2, then 2 again.

/// The cache-relevant shape of a model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CacheShape {
    pub name: &'static str,
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Query heads, for the GQA ratio.
    pub heads: usize,
}

impl CacheShape {
    /// Bytes of one token's cache in every layer, at `bits` per element.
    pub fn bytes_per_token(&self, bits: f64) -> f64 {
        2.0 * (self.layers * self.kv_heads * self.head_dim) as f64 * bits / 8.0
    }

    /// Bytes for `batch` sequences of `tokens`.
    pub fn bytes(&self, batch: usize, tokens: usize, bits: f64) -> f64 {
        self.bytes_per_token(bits) * (batch * tokens) as f64
    }
}

/// SmolLM2-135M (the book's model), Llama-2-7B (no GQA), Llama-3-8B and Llama-3-70B (GQA 4:1
/// and 8:1), from their published configs.
pub const MODELS: [CacheShape; 4] = [
    CacheShape { name: "SmolLM2-135M", layers: 30, kv_heads: 3, head_dim: 64, heads: 9 },
    CacheShape { name: "Llama-2-7B", layers: 32, kv_heads: 32, head_dim: 128, heads: 32 },
    CacheShape { name: "Llama-3-8B", layers: 32, kv_heads: 8, head_dim: 128, heads: 32 },
    CacheShape { name: "Llama-3-70B", layers: 80, kv_heads: 8, head_dim: 128, heads: 64 },
];

/// `bytes` in binary units for tables (KiB, MiB, GiB).
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{value:.0} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_per_token_sizes() {
        // Llama-2-7B in fp16: 2 · 32 · 32 · 128 · 2 B = 512 KiB per token, the figure vLLM's
        // paper quotes (0.5 MB); Llama-3-8B: 128 KiB; SmolLM2-135M: 22.5 KiB.
        assert_eq!(MODELS[1].bytes_per_token(16.0), 524_288.0);
        assert_eq!(MODELS[2].bytes_per_token(16.0), 131_072.0);
        assert_eq!(MODELS[0].bytes_per_token(16.0), 23_040.0);
        assert_eq!(human_bytes(MODELS[3].bytes(1, 128 * 1024, 16.0)), "40.0 GiB");
    }
}
