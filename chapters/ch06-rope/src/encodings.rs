//! The position encodings before RoPE, each as small as it can be, to set RoPE against them.
//!
//! - **Sinusoidal** (Vaswani et al., 2017): an absolute table added to the token embeddings,
//!   `PE(p, 2i) = sin(p·ω_i)`, `PE(p, 2i+1) = cos(p·ω_i)`, `ω_i = 10000^(−2i/d)`. For a fixed
//!   offset `k`, `PE(p + k)` is `PE(p)` with each (sin, cos) pair rotated by `k·ω_i` — a linear
//!   map independent of `p`, the property the paper hoped attention would learn to use. RoPE
//!   applies that rotation to q and k directly instead of adding it to x.
//! - **T5's relative bias** (Raffel et al., 2020): a learned scalar per head and per *bucket* of
//!   the offset `key − query`, added to the logits: offsets below `max_exact` get a bucket each,
//!   larger ones share logarithmically wider buckets up to `max_distance`, and beyond it all fall
//!   into the last one — so T5 cannot tell 128 from 10 000 tokens apart.
//! - **ALiBi** (Press et al., 2022): no parameters; head `h` adds `−m_h·(query − key)` to its
//!   logits, with geometric slopes `m_h`, so every head forgets the past at its own rate.
//!
//! A learned absolute table (GPT-2, BERT) is just an `(max_positions, d)` parameter added like
//! the sinusoidal one; it has nothing to compute, and nothing past `max_positions`.

use attn_support::ndarray::{Array2, Array3};
use attn_support::{Error, Result};

/// Vaswani et al.'s table `(positions, d)` for an even `d`, computed in f64 and stored as f32
/// (it is added to embeddings, and no library's rounding is being matched here).
pub fn sinusoidal_table(positions: usize, d: usize) -> Result<Array2<f32>> {
    if d == 0 || !d.is_multiple_of(2) {
        return Err(Error::InvalidArgument(format!(
            "sinusoidal encoding needs an even model dim > 0, got d {d}"
        )));
    }
    Ok(Array2::from_shape_fn((positions, d), |(p, c)| {
        let omega = 10_000f64.powf(-((c / 2 * 2) as f64) / d as f64);
        let angle = p as f64 * omega;
        (if c % 2 == 0 { angle.sin() } else { angle.cos() }) as f32
    }))
}

// ANCHOR: alibi_slopes
/// ALiBi's slopes for `n_heads` heads, computed as the paper's reference code does
/// (`get_slopes` in `fairseq/models/transformer.py` of ofirpress/attention_with_linear_biases):
/// for a power of two `n`, `start = 2^(−2^−(log₂n − 3)) = 2^(−8/n)` and slope `i` is
/// `start·start^i`, i.e. `2^(−8/n)`, `2^(−16/n)`, …, `2^(−8)`. Otherwise take the `c = 2^⌊log₂n⌋`
/// slopes of the closest smaller power of two, then the slopes of `2c` heads at even indices
/// (`[0::2]`), the first `n − c` of them: the new slopes interleave with the old ones.
pub fn alibi_slopes(n_heads: usize) -> Result<Vec<f64>> {
    if n_heads == 0 {
        return Err(Error::InvalidArgument("ALiBi needs at least one head, got n_heads 0".into()));
    }
    fn power_of_two_slopes(n: usize) -> Vec<f64> {
        let start = 2f64.powf(-(2f64.powf(-((n as f64).log2() - 3.0))));
        (0..n).map(|i| start * start.powf(i as f64)).collect()
    }
    if n_heads.is_power_of_two() {
        return Ok(power_of_two_slopes(n_heads));
    }
    let closest = 1usize << n_heads.ilog2();
    let mut slopes = power_of_two_slopes(closest);
    slopes.extend(power_of_two_slopes(2 * closest).into_iter().step_by(2).take(n_heads - closest));
    Ok(slopes)
}
// ANCHOR_END: alibi_slopes

/// ALiBi's bias `(heads, nq, nk)`: `−m_h·(query position − key position)`, queries aligned to
/// the end of the keys (query `i` at position `i + nk − nq`, as chapter 2's causal mask). Keys
/// in the future get a positive bias here; the causal mask removes them. The reference code
/// instead adds `m_h·j` to every row — the same logits up to a constant per row, which softmax
/// ignores.
pub fn alibi_bias(n_heads: usize, nq: usize, nk: usize) -> Result<Array3<f32>> {
    if nq > nk {
        return Err(Error::InvalidArgument(format!("ALiBi bias with nq {nq} > nk {nk}")));
    }
    let slopes = alibi_slopes(n_heads)?;
    Ok(Array3::from_shape_fn((n_heads, nq, nk), |(h, i, j)| {
        let distance = (i + nk - nq) as f64 - j as f64;
        (-slopes[h] * distance) as f32
    }))
}

// ANCHOR: t5_bucket
/// T5's bucket for the offset `relative_position = key − query`, step by step as transformers'
/// `T5Attention._relative_position_bucket` (`src/transformers/models/t5/modeling_t5.py`):
/// bidirectional halves the buckets and puts positive offsets (keys after the query) in the
/// upper half; causal maps future keys to 0 and uses `−offset`. Offsets below
/// `max_exact = buckets/2` are their own bucket; larger ones get
/// `max_exact + trunc(ln(n / max_exact) / ln(max_distance / max_exact) · (buckets − max_exact))`,
/// capped at `buckets − 1`, with the logarithm in f32 as PyTorch computes
/// `torch.log(relative_position.float() / max_exact)`. (T5 uses 32 buckets, max distance 128.)
/// Where the exact value is an integer (bidirectional offsets 16, 32, 64 with T5's numbers) the
/// truncation hangs on the last bit of the f32 logarithm; these steps give 10, 12, 14, the exact
/// buckets, with the C library's `logf`, and so does transformers 5.17 with PyTorch's `log`:
/// `tests/hf_fixtures.rs` finds every bucket of offsets −300 … 300 equal (32/128 and 16/64,
/// both directions).
pub fn t5_relative_position_bucket(
    relative_position: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> Result<usize> {
    let half = if bidirectional { num_buckets / 2 } else { num_buckets };
    if half < 2 || max_distance <= half / 2 {
        return Err(Error::InvalidArgument(format!(
            "T5 buckets: num_buckets {num_buckets} (bidirectional {bidirectional}) leaves no \
             logarithmic buckets below max_distance {max_distance}"
        )));
    }
    let (mut bucket, n) = if bidirectional {
        (if relative_position > 0 { half } else { 0 }, relative_position.unsigned_abs())
    } else {
        (0, (-relative_position.min(0)) as u64)
    };
    let max_exact = half / 2;
    if n < max_exact as u64 {
        bucket += n as usize;
    } else {
        let log_ratio = (n as f32 / max_exact as f32).ln();
        let log_range = (max_distance as f64 / max_exact as f64).ln() as f32;
        let large = max_exact + (log_ratio / log_range * (half - max_exact) as f32) as usize;
        bucket += large.min(half - 1);
    }
    Ok(bucket)
}
// ANCHOR_END: t5_bucket
