//! Llama 3.1's scaling (Meta's `apply_scaling` in `llama/model.py`; transformers'
//! `_compute_llama3_parameters`), by wavelength `λ_i = 2π/θ_i` against the original context
//! `L₀` (8192 in Llama 3.1, factor 8, low 1, high 4):
//!
//! ```text
//! λ < L₀/high            θ            (short wavelengths: many turns in training, kept)
//! λ > L₀/low             θ / s        (long wavelengths: interpolated)
//! otherwise              (1 − γ)·θ/s + γ·θ,   γ = (L₀/λ − low) / (high − low)
//! ```
//!
//! `γ` is 1 at `λ = L₀/high` and 0 at `λ = L₀/low`, so the three pieces join continuously. Unlike
//! YaRN there is no attention factor.
//!
//! Every step is an f32 tensor operation in transformers, with the Python numbers converted to
//! f32: `2 * math.pi / inv_freq` is `inv_freq.reciprocal() * f32(2π)` (`__rtruediv__`), the
//! comparisons are against `f32(L₀/low)` and `f32(L₀/high)`, `L₀ / wavelen` is
//! `wavelen.reciprocal() * f32(L₀)`.

/// Llama 3's parameters (f64: Python numbers in the config).
pub(super) struct Llama3 {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub old_context_len: usize,
}

impl Llama3 {
    // ANCHOR: llama3_scale
    /// The scaled frequencies, from the unscaled f32 `inv_freq`, in transformers' order.
    pub fn scale(&self, inv_freq: &[f32]) -> Vec<f32> {
        let old = self.old_context_len as f64;
        // Python floats, compared against as f32.
        let low_freq_wavelen = (old / self.low_freq_factor) as f32;
        let high_freq_wavelen = (old / self.high_freq_factor) as f32;
        let two_pi = (2.0 * std::f64::consts::PI) as f32;
        let factor = self.factor as f32;
        let low = self.low_freq_factor as f32;
        let width = (self.high_freq_factor - self.low_freq_factor) as f32;
        inv_freq
            .iter()
            .map(|&theta| {
                let wavelen = (1.0 / theta) * two_pi;
                let theta_llama = if wavelen > low_freq_wavelen { theta / factor } else { theta };
                let smooth = ((1.0 / wavelen) * old as f32 - low) / width;
                let smoothed = (1.0 - smooth) * theta_llama / factor + smooth * theta_llama;
                // transformers: `~(wavelen < high) * ~(wavelen > low)`; the same for the
                // finite, positive wavelengths of a base > 1.
                let is_medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
                if is_medium { smoothed } else { theta_llama }
            })
            .collect()
    }
    // ANCHOR_END: llama3_scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_wavelengths_kept_long_ones_divided() {
        let p = Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, old_context_len: 8192 };
        // λ = 2π (θ = 1) is far below 2048: kept. θ = 2π/100 000: λ ≈ 100 000 > 8192: divided.
        let slow = (2.0 * std::f64::consts::PI / 100_000.0) as f32;
        let out = p.scale(&[1.0, slow]);
        assert_eq!(out[0], 1.0);
        assert_eq!(out[1], slow / 8.0);
        // λ = 4096, halfway in 1/λ: γ = (8192/4096 − 1)/3 = 1/3, θ·(2/3·1/8 + 1/3).
        let mid = (2.0 * std::f64::consts::PI / 4096.0) as f32;
        let got = f64::from(p.scale(&[mid])[0]);
        let want = f64::from(mid) * (2.0 / 3.0 / 8.0 + 1.0 / 3.0);
        assert!((got - want).abs() < 1e-6 * want, "{got} {want}");
    }
}
