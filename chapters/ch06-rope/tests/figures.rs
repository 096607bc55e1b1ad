//! The numbers behind the figures ([`ch06_rope::curves`]) against closed forms, and each figure
//! rendering to PNG (or refusing input it cannot draw).

use attn_support::data::randn;
use attn_support::ndarray::{Array1, Array2};
use attn_support::plot::png_bytes;
use ch06_rope::curves::{log_distances, mean_scores, pairs_with_full_turn, rope_score, wavelengths};
use ch06_rope::figures::{PairRotation, decay_figure, frequency_figure, rotation_figure};
use ch06_rope::{RopeConfig, RopeLayout};
use std::f64::consts::TAU;

fn llama(base: f32, layout: RopeLayout) -> RopeConfig {
    RopeConfig::new(128, base, layout).unwrap()
}

#[test]
fn score_at_distance_zero_is_the_plain_dot_product() {
    let (q, k) = (randn(64, 1), randn(64, 2));
    let config = RopeConfig::new(64, 10_000.0, RopeLayout::Interleaved).unwrap();
    let plain: f64 = q.iter().zip(k.iter()).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum();
    let rope = rope_score(&config, q.view(), k.view(), 0).unwrap();
    assert!((rope - plain).abs() < 1e-5 * plain.abs().max(1.0), "{rope} vs {plain}");
}

#[test]
fn all_ones_score_is_twice_the_sum_of_cosines() {
    // (1, 1) · R(rθ)(1, 1) = 2 cos(rθ) for every pair, in either layout.
    for layout in [RopeLayout::HalfRotation, RopeLayout::Interleaved] {
        let config = llama(10_000.0, layout);
        let ones = Array1::<f32>::ones(128);
        for r in [1usize, 7, 100, 4096, 65_536] {
            let expected: f64 =
                config.inv_freq().iter().map(|&t| 2.0 * (r as f64 * f64::from(t)).cos()).sum();
            let got = rope_score(&config, ones.view(), ones.view(), r).unwrap();
            assert!((got - expected).abs() < 1e-3, "{layout:?} r {r}: {got} vs {expected}");
        }
    }
}

#[test]
fn score_rejects_vectors_of_the_wrong_length() {
    let config = llama(10_000.0, RopeLayout::HalfRotation);
    let short = Array1::<f32>::ones(64);
    assert!(rope_score(&config, short.view(), short.view(), 1).is_err());
}

#[test]
fn mean_scores_at_zero_are_the_mean_squared_norm_for_q_equal_k() {
    let config = llama(10_000.0, RopeLayout::HalfRotation);
    let q = randn((8, 128), 3);
    let norms: f64 =
        q.rows().into_iter().map(|r| r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>()).sum::<f64>() / 8.0;
    let (r, mean, abs) = mean_scores(&config, q.view(), q.view(), &[0]).unwrap()[0];
    assert_eq!(r, 0);
    assert!((mean - norms).abs() < 1e-3 && (abs - norms).abs() < 1e-3, "{mean} {abs} vs {norms}");
    let other = Array2::<f32>::ones((4, 128));
    assert!(mean_scores(&config, q.view(), other.view(), &[0]).is_err());
}

#[test]
fn log_distances_run_from_one_to_max_without_repeats() {
    let d = log_distances(65_536, 8);
    assert_eq!((d[0], *d.last().unwrap()), (1, 65_536));
    assert!(d.windows(2).all(|w| w[0] < w[1]));
    // 16 doublings at 8 per doubling, fewer where small distances round to the same integer.
    assert!(d.len() > 100 && d.len() <= 16 * 8 + 1, "{}", d.len());
}

#[test]
fn pairs_with_a_full_turn_match_the_closed_form() {
    // 2π·base^(i/64) ≤ c  ⇔  i ≤ 64·ln(c/2π)/ln(base): pairs 0 … ⌊that⌋ turn within c.
    for base in [10_000.0f32, 500_000.0] {
        let config = llama(base, RopeLayout::HalfRotation);
        let w = wavelengths(&config);
        assert!((w[0] - TAU).abs() < 1e-12);
        assert!(w.windows(2).all(|p| p[0] < p[1]));
        for c in [4096usize, 8192, 131_072] {
            let last = (64.0 * (c as f64 / TAU).ln() / f64::from(base).ln()).floor() as usize;
            assert_eq!(pairs_with_full_turn(&config, c), (last + 1).min(64), "base {base} context {c}");
        }
    }
    assert_eq!(pairs_with_full_turn(&llama(10_000.0, RopeLayout::HalfRotation), 4096), 46);
}

#[test]
fn a_pair_turns_by_m_theta_and_keeps_its_length() {
    let pair = PairRotation { title: "t".into(), theta: 0.5, positions: 5, q: [3.0, 4.0] };
    for m in 0..5 {
        let (x, y) = pair.at(m);
        assert!((x.hypot(y) - 5.0).abs() < 1e-12);
        let turned = (y.atan2(x) - 4f64.atan2(3.0)).rem_euclid(TAU);
        assert!((turned - (0.5 * m as f64).rem_euclid(TAU)).abs() < 1e-6, "m {m}: {turned}");
    }
}

#[test]
fn rotation_figure_renders_and_rejects_a_missing_pair_or_a_zero_vector() {
    let config = llama(10_000.0, RopeLayout::HalfRotation);
    assert!(png_bytes(&rotation_figure(&config, 0, 16, 9).unwrap()).is_ok());
    assert!(rotation_figure(&config, 0, 64, 9).is_err());
    let zero = PairRotation { title: "zero".into(), theta: 1.0, positions: 3, q: [0.0, 0.0] };
    assert!(png_bytes(&zero).is_err());
}

#[test]
fn decay_figure_renders() {
    assert!(png_bytes(&decay_figure(32, &[10_000.0, 500_000.0], 1024, 4).unwrap()).is_ok());
    assert!(decay_figure(31, &[10_000.0], 1024, 4).is_err());
}

#[test]
fn frequency_figure_renders() {
    assert!(png_bytes(&frequency_figure(128, &[10_000.0, 500_000.0], &[4096, 131_072]).unwrap()).is_ok());
    assert!(frequency_figure(128, &[1.0], &[4096]).is_err());
}

#[test]
fn every_reported_extrapolation_names_its_source() {
    use ch06_rope::comparison::ENCODINGS;
    let names: Vec<&str> = ENCODINGS.iter().map(|e| e.name).collect();
    assert_eq!(names, ["sinusoidal", "learned absolute", "T5 relative bias", "ALiBi", "RoPE"]);
    for e in &ENCODINGS {
        // The learned table's limit is a fact of its shape; every other claim is a paper's.
        let cited = e.extrapolation.contains("et al. 20");
        assert!(cited || e.name == "learned absolute", "{}: {}", e.name, e.extrapolation);
        assert!(!e.used_by.is_empty() && !e.enters.is_empty() && !e.cost.is_empty());
    }
}
