//! RoFormer's long-term decay bound (Su et al., 2021, §3.4.3), in f64.
//!
//! Write pair `i` of q and k as complex numbers (`q_{2i} + i·q_{2i+1}`, the interleaved pairing;
//! the half-rotation one gives the same sums) and let `h_i = q_i · conj(k_i)`. RoPE's score for a
//! query at `m` and a key at `n` is then `Re Σ_i h_i e^{i(m−n)θ_i}`. With
//! `S_j = Σ_{k<j} e^{i(m−n)θ_k}` and `h_{d/2} = 0`, Abel summation gives
//!
//! ```text
//! |Σ_i h_i e^{i(m−n)θ_i}| = |Σ_i S_{i+1}(h_{i+1} − h_i)| ≤ (max_i |h_{i+1} − h_i|) · Σ_{j=1}^{d/2} |S_j|
//! ```
//!
//! The first factor depends on the content only, the second on the distance only; its mean
//! `(1/(d/2))·Σ_j |S_j|` ([`relative_upper_bound`]) is the curve of RoFormer's figure 2: it
//! starts at `(d/2 + 1)/2` for distance 0 (all `S_j = j`) and falls, with ripples, as the
//! distance grows, because the phases `e^{i(m−n)θ_k}` stop adding up.

use attn_support::{Error, Result};

/// Mean `|S_j|` over `j = 1 … d_rot/2` at relative distance `distance`, `θ_k = base^(−2k/d_rot)`.
pub fn relative_upper_bound(distance: f64, rotary_dim: usize, base: f64) -> Result<f64> {
    check(rotary_dim, base)?;
    let pairs = rotary_dim / 2;
    let (mut re, mut im, mut total) = (0.0f64, 0.0f64, 0.0f64);
    for k in 0..pairs {
        let theta = base.powf(-2.0 * k as f64 / rotary_dim as f64);
        let (s, c) = (distance * theta).sin_cos();
        re += c;
        im += s;
        total += re.hypot(im); // |S_{k+1}|
    }
    Ok(total / pairs as f64)
}

/// The content factor `max_i |h_{i+1} − h_i|` (with `h_{d/2} = 0`) for head vectors `q`, `k`
/// of even length, paired interleaved.
pub fn content_factor(q: &[f64], k: &[f64]) -> Result<f64> {
    if q.len() != k.len() || q.is_empty() || !q.len().is_multiple_of(2) {
        return Err(Error::InvalidArgument(format!(
            "q of length {} and k of length {} must have the same even length",
            q.len(),
            k.len()
        )));
    }
    let h: Vec<(f64, f64)> = (0..q.len() / 2)
        .map(|i| {
            let (a, b, c, d) = (q[2 * i], q[2 * i + 1], k[2 * i], k[2 * i + 1]);
            (a * c + b * d, b * c - a * d) // (a + ib)(c − id)
        })
        .chain(std::iter::once((0.0, 0.0)))
        .collect();
    Ok(h.windows(2).map(|w| (w[1].0 - w[0].0).hypot(w[1].1 - w[0].1)).fold(0.0, f64::max))
}

fn check(rotary_dim: usize, base: f64) -> Result<()> {
    if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) || !(base.is_finite() && base > 1.0) {
        return Err(Error::InvalidArgument(format!(
            "decay bound needs even rotary dims > 0 and a finite base > 1, got rotary dims \
             {rotary_dim}, base {base}"
        )));
    }
    Ok(())
}
