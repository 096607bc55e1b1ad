//! RoFormer's decay bound: its value at distance 0, its decay, and that it bounds real scores.

use ch06_rope::attn_support::data::randn;
use ch06_rope::attn_support::ndarray::Array4;
use ch06_rope::decay::{content_factor, relative_upper_bound};
use ch06_rope::reference::rope_reference;
use ch06_rope::{RopeConfig, RopeLayout};
use proptest::prelude::*;

#[test]
fn at_distance_zero_every_partial_sum_is_its_length() {
    // S_j = j, so the mean over j = 1 … d/2 is (d/2 + 1)/2: integers, summed exactly.
    for d in [2usize, 8, 64, 128] {
        assert_eq!(relative_upper_bound(0.0, d, 10_000.0).unwrap(), (d / 2 + 1) as f64 / 2.0);
    }
    assert!(relative_upper_bound(1.0, 7, 10_000.0).unwrap_err().to_string().contains("rotary dims 7"));
    assert!(content_factor(&[1.0, 2.0], &[1.0]).is_err());
    // h = (1, 1) then h_2 = 0: the differences are 0 and 1, the last one from h_{d/2} = 0.
    assert_eq!(content_factor(&[1.0, 0.0, 1.0, 0.0], &[1.0, 0.0, 1.0, 0.0]).unwrap(), 1.0);
    // h_0 = (1 + 2i)(3 − 4i) = 11 + 2i, h_1 = 0: max |Δh| = |11 + 2i| = √125.
    assert_eq!(content_factor(&[1.0, 2.0, 0.0, 0.0], &[3.0, 4.0, 0.0, 0.0]).unwrap(), 125f64.sqrt());
}

#[test]
fn the_bound_decays_band_by_band_and_slower_for_a_larger_base() {
    // Not monotone point by point (it ripples), but its mean over widening distance bands falls.
    let bands = [(0, 16), (16, 64), (64, 128), (128, 256), (256, 1024), (1024, 4096), (4096, 16384)];
    for d in [64usize, 128] {
        let mean = |base: f64, (a, b): (usize, usize)| {
            (a..b).map(|x| relative_upper_bound(x as f64, d, base).unwrap()).sum::<f64>() / (b - a) as f64
        };
        for base in [10_000.0, 500_000.0] {
            let means: Vec<f64> = bands.iter().map(|&band| mean(base, band)).collect();
            assert!(means.windows(2).all(|w| w[1] < w[0]), "d {d} base {base}: {means:?}");
        }
        // Llama 3's base 500 000 keeps more of the bound at long range than 10 000.
        for &band in &bands[1..] {
            assert!(mean(500_000.0, band) > mean(10_000.0, band), "d {d} band {band:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn rope_scores_stay_under_the_bound(half_d in 1usize..=32, m in 0usize..3000, n in 0usize..3000, seed in 0u64..1_000_000) {
        // Score of the f64 reference RoPE (interleaved, full rotary) ≤ content · Σ_j |S_j|, up to
        // f64 rounding of sums of ~d terms of size ≤ |q||k| (1e-9 relative is far above it).
        let d = 2 * half_d;
        let config = RopeConfig::new(d, 10_000.0, RopeLayout::Interleaved).unwrap();
        let (q, k): (Array4<f32>, Array4<f32>) = (randn((1, 1, 1, d), seed), randn((1, 1, 1, d), seed + 1));
        let rq = rope_reference(&config, q.view(), m).unwrap();
        let rk = rope_reference(&config, k.view(), n).unwrap();
        let score: f64 = rq.iter().zip(rk.iter()).map(|(a, b)| a * b).sum();
        let (qv, kv): (Vec<f64>, Vec<f64>) = (q.iter().map(|&x| x as f64).collect(), k.iter().map(|&x| x as f64).collect());
        let sum_abs_s = relative_upper_bound(m as f64 - n as f64, d, 10_000.0).unwrap() * half_d as f64;
        let bound = content_factor(&qv, &kv).unwrap() * sum_abs_s;
        let scale: f64 = qv.iter().map(|x| x * x).sum::<f64>().sqrt() * kv.iter().map(|x| x * x).sum::<f64>().sqrt();
        prop_assert!(score.abs() <= bound + 1e-9 * scale, "m {m} n {n}: |score| {} > bound {bound}", score.abs());
    }
}
