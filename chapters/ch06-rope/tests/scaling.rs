//! The scalings' shapes (what each does to which pairs, from their definitions), the attention
//! factor through the rotation, and bad input. Bit-level agreement with transformers is
//! `tests/hf_fixtures.rs`.

use ch06_rope::ndarray::Array4;
use ch06_rope::reference::rope_reference;
use ch06_rope::scaling::{RopeScaling, SUPPORTED_ROPE_TYPES};
use ch06_rope::{HfRopeParameters, RopeCache, RopeConfig, RopeLayout, apply_rope};
use proptest::prelude::*;
use serde_json::json;

fn llama3_8b() -> RopeScaling {
    RopeScaling::Llama3 {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    }
}

fn freqs(scaling: RopeScaling, base: f32, d: usize) -> (Vec<f32>, f32) {
    scaling.inv_freq_and_attention_factor(base, d).unwrap()
}

#[test]
fn linear_and_dynamic_inside_the_context_are_what_they_say() {
    let (plain, _) = freqs(RopeScaling::Default, 10_000.0, 128);
    let (linear, _) = freqs(RopeScaling::Linear { factor: 4.0 }, 10_000.0, 128);
    assert!(plain.iter().zip(&linear).all(|(p, l)| p / 4.0 == *l));
    // Dynamic NTK changes nothing until the sequence outgrows the trained context.
    let dynamic = |seq_len| RopeScaling::DynamicNtk { factor: 2.0, max_position_embeddings: 4096, seq_len };
    assert_eq!(freqs(dynamic(1000), 10_000.0, 128).0, plain);
    assert_eq!(freqs(dynamic(4096), 10_000.0, 128).0, plain);
    // Beyond it, a larger base: θ_0 = 1 stays, every other pair slows down, the last most.
    let (longer, af) = freqs(dynamic(16_384), 10_000.0, 128);
    assert_eq!((longer[0], af), (1.0, 1.0));
    assert!(longer.iter().zip(&plain).skip(1).all(|(l, p)| l < p));
}

#[test]
fn yarn_keeps_fast_pairs_interpolates_slow_ones() {
    // Llama 2 numbers: d = 128, base 10 000, L₀ = 4096, s = 4. The ramp runs over dims 20 … 46.
    let (plain, _) = freqs(RopeScaling::Default, 10_000.0, 128);
    let (yarn, af) = freqs(RopeScaling::yarn(4.0, 4096), 10_000.0, 128);
    for i in 0..=20 {
        assert_eq!(yarn[i], plain[i], "pair {i} turns more than 32 times: kept");
    }
    for i in 46..64 {
        // 1/(s·p) with p = base^(2i/d): within an ulp of θ/s.
        let want = plain[i] / 4.0;
        assert!((yarn[i] - want).abs() <= want * f32::EPSILON, "pair {i}: {} vs {want}", yarn[i]);
    }
    for i in 21..46 {
        assert!(
            yarn[i] < plain[i] && yarn[i] > plain[i] / 4.0 * (1.0 - f32::EPSILON),
            "pair {i} on the ramp"
        );
    }
    assert_eq!(af, (0.1 * 4f64.ln() + 1.0) as f32);
    // mscale / mscale_all_dim (DeepSeek) and an explicit factor.
    let with = |mscale, mscale_all_dim, attention_factor| RopeScaling::Yarn {
        factor: 40.0,
        original_max_position_embeddings: 4096,
        beta_fast: 32.0,
        beta_slow: 1.0,
        mscale,
        mscale_all_dim,
        attention_factor,
        truncate: true,
    };
    assert_eq!(freqs(with(Some(1.0), Some(1.0), None), 10_000.0, 64).1, 1.0);
    assert_eq!(freqs(with(Some(0.0), Some(1.0), None), 10_000.0, 64).1, (0.1 * 40f64.ln() + 1.0) as f32);
    assert_eq!(freqs(with(None, None, Some(1.25)), 10_000.0, 64).1, 1.25);
}

#[test]
fn llama3_pieces_by_wavelength() {
    let (plain, _) = freqs(RopeScaling::Default, 500_000.0, 128);
    let (scaled, af) = freqs(llama3_8b(), 500_000.0, 128);
    assert_eq!(af, 1.0);
    let tau = std::f64::consts::TAU;
    let mut pieces = [0; 3];
    for (i, (&p, &s)) in plain.iter().zip(&scaled).enumerate() {
        let wavelength = tau / f64::from(p);
        if wavelength < 2048.0 {
            assert_eq!(s, p, "pair {i}, λ {wavelength:.0}: kept");
            pieces[0] += 1;
        } else if wavelength > 8192.0 {
            assert_eq!(s, p / 8.0, "pair {i}, λ {wavelength:.0}: divided by 8");
            pieces[2] += 1;
        } else {
            assert!(s <= p && s >= p / 8.0, "pair {i}, λ {wavelength:.0}: between");
            pieces[1] += 1;
        }
    }
    // Llama 3.1 8B: λ_i = 2π·500 000^(i/64) passes 2048 after pair 28 and 8192 after pair 34.
    assert_eq!(pieces, [29, 6, 29]);
    // Frequencies still decrease with the pair index.
    assert!(scaled.windows(2).all(|w| w[1] <= w[0]));
}

#[test]
fn hf_parameters_parse_with_transformers_defaults() {
    let p = HfRopeParameters::from_json(
        &json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096, "rope_theta": 1e4}),
        16_384,
        None,
    )
    .unwrap();
    assert_eq!(p.rope_theta, Some(10_000.0));
    assert_eq!(p.scaling, RopeScaling::yarn(4.0, 4096));
    // beta_fast 0 or null falls back to 32 (`or 32`); a null factor is max / original.
    let p = HfRopeParameters::from_json(
        &json!({"rope_type": "yarn", "factor": null, "beta_fast": 0, "beta_slow": null,
                "original_max_position_embeddings": 4096, "truncate": false}),
        32_768,
        None,
    )
    .unwrap();
    let RopeScaling::Yarn { factor, beta_fast, beta_slow, truncate, .. } = p.scaling else { panic!() };
    assert_eq!((factor, beta_fast, beta_slow, truncate), (8.0, 32.0, 1.0, false));
    // No original context: transformers' standardize_rope_params takes max_position_embeddings.
    let p = HfRopeParameters::from_json(
        &json!({"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4}),
        8192,
        None,
    )
    .unwrap();
    assert_eq!(
        p.scaling,
        RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192
        }
    );
    // Older configs: `type`; no type at all: default.
    let old = HfRopeParameters::from_json(&json!({"type": "linear", "factor": 2}), 2048, None).unwrap();
    assert_eq!(old.scaling, RopeScaling::Linear { factor: 2.0 });
    assert_eq!(HfRopeParameters::from_json(&json!({}), 2048, None).unwrap().scaling, RopeScaling::Default);
    let dynamic =
        HfRopeParameters::from_json(&json!({"rope_type": "dynamic", "factor": 2.0}), 4096, Some(9000));
    assert_eq!(
        dynamic.unwrap().scaling,
        RopeScaling::DynamicNtk { factor: 2.0, max_position_embeddings: 4096, seq_len: 9000 }
    );
}

fn error_of<T: std::fmt::Debug>(r: ch06_rope::attn_support::Result<T>) -> String {
    r.expect_err("bad input must be an error").to_string()
}

#[test]
fn unknown_rope_types_are_named() {
    for bad in ["longrope", "proportional", "ntk", "Llama3"] {
        let msg =
            error_of(HfRopeParameters::from_json(&json!({"rope_type": bad, "factor": 2.0}), 4096, None));
        assert!(msg.contains(&format!("`{bad}`")), "{msg}");
        assert!(
            SUPPORTED_ROPE_TYPES.iter().all(|t| msg.contains(t)),
            "the message lists what is supported: {msg}"
        );
    }
    let msg = error_of(HfRopeParameters::from_json(&json!({"rope_type": 3}), 4096, None));
    assert!(msg.contains('3'), "{msg}");
    let msg = error_of(HfRopeParameters::from_json(&json!([1, 2]), 4096, None));
    assert!(msg.contains("[1,2]"), "{msg}");
}

#[test]
fn factors_at_or_below_zero_are_named() {
    let config = || RopeConfig::new(64, 10_000.0, RopeLayout::HalfRotation).unwrap();
    for factor in [0.0, -2.0, f64::NAN, f64::INFINITY] {
        let scalings = [
            RopeScaling::Linear { factor },
            RopeScaling::DynamicNtk { factor, max_position_embeddings: 4096, seq_len: 8192 },
            RopeScaling::yarn(factor, 4096),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            },
        ];
        for scaling in scalings {
            let kind = scaling.rope_type();
            let msg = error_of(config().with_scaling(scaling));
            assert!(msg.contains(&format!("factor {factor}")) && msg.contains(kind), "{msg}");
        }
        let json_msg = error_of(
            HfRopeParameters::from_json(&json!({"rope_type": "linear", "factor": -2.0}), 4096, None)
                .and_then(|p| config().with_scaling(p.scaling)),
        );
        assert!(json_msg.contains("factor -2"), "{json_msg}");
    }
}

#[test]
fn other_bad_parameters_are_named() {
    let config = |d| RopeConfig::new(d, 10_000.0, RopeLayout::HalfRotation).unwrap();
    let cases: Vec<(RopeScaling, usize, &str)> = vec![
        (
            RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 4.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            },
            64,
            "high_freq_factor 4",
        ),
        (
            RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 0.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            },
            64,
            "low_freq_factor 0",
        ),
        (
            RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 0,
            },
            64,
            "original_max_position_embeddings 0",
        ),
        (RopeScaling::yarn(4.0, 0), 64, "original_max_position_embeddings 0"),
        (
            RopeScaling::DynamicNtk { factor: 2.0, max_position_embeddings: 0, seq_len: 1 },
            64,
            "max_position_embeddings 0",
        ),
        (RopeScaling::DynamicNtk { factor: 2.0, max_position_embeddings: 64, seq_len: 1 }, 2, "got 2"),
    ];
    for (scaling, d, named) in cases {
        let msg = error_of(config(d).with_scaling(scaling));
        assert!(msg.contains(named), "expected `{named}` in: {msg}");
    }
    let missing =
        error_of(HfRopeParameters::from_json(&json!({"rope_type": "llama3", "factor": 8.0}), 4096, None));
    assert!(missing.contains("low_freq_factor") && missing.contains("llama3"), "{missing}");
    let wrong =
        error_of(HfRopeParameters::from_json(&json!({"rope_type": "linear", "factor": "2"}), 4096, None));
    assert!(wrong.contains("\"2\""), "{wrong}");
    let fraction = error_of(HfRopeParameters::from_json(
        &json!({"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 4096.5}),
        4096,
        None,
    ));
    assert!(fraction.contains("4096.5"), "{fraction}");
}

fn random_x(shape: (usize, usize, usize, usize), seed: u64) -> Array4<f32> {
    // A small LCG: enough variety for a rotation test without another dependency.
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    Array4::from_shape_simple_fn(shape, || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Scaled RoPE from the table and on the fly agree bit for bit, and both equal the f64
    /// rotation by the scaled frequencies times the attention factor, within f32 angle error.
    #[test]
    fn scaled_rope_is_a_rotation_times_the_attention_factor(
        half in 1usize..24,
        seq in 1usize..9,
        offset in 0usize..3000,
        kind in 0usize..4,
        interleaved: bool,
        seed: u64,
    ) {
        let d = 2 * half + 2; // ≥ 4, so dynamic NTK's d/(d − 2) exists
        let scaling = match kind {
            0 => RopeScaling::Linear { factor: 4.0 },
            1 => RopeScaling::DynamicNtk { factor: 2.0, max_position_embeddings: 512, seq_len: offset + seq },
            2 => RopeScaling::yarn(8.0, 512),
            _ => RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 512 },
        };
        let layout = if interleaved { RopeLayout::Interleaved } else { RopeLayout::HalfRotation };
        let config = RopeConfig::new(d, 10_000.0, layout).unwrap().with_scaling(scaling).unwrap();
        let x = random_x((1, 2, seq, d), seed);
        let mut table = x.clone();
        RopeCache::new(&config, offset + seq).unwrap().apply(table.view_mut(), offset).unwrap();
        let mut fly = x.clone();
        apply_rope(&config, fly.view_mut(), offset).unwrap();
        prop_assert_eq!(&table, &fly);
        let want = rope_reference(&config, x.view(), offset).unwrap();
        // Angle error ≤ 5·m·2⁻²⁴ (tests/rope.rs), times |pair| ≤ √2, plus f32 rounding.
        let m = (offset + seq) as f64;
        let tol = (5.0 * m * 2f64.powi(-24) * 2f64.sqrt() + 4.0 * 2f64.powi(-24)) * f64::from(config.attention_factor());
        for (o, w) in fly.iter().zip(want.iter()) {
            prop_assert!((f64::from(*o) - w).abs() <= tol, "{} vs {}", o, w);
        }
    }
}

#[test]
fn the_scaled_frequency_figure_renders_and_its_table_counts() {
    use ch06_rope::attn_support::plot::png_bytes;
    use ch06_rope::scaling_figure::{llama3_like_scalings, scaled_frequency_figure, scalings_table};
    let scalings = llama3_like_scalings(8.0, 8192);
    let fig = scaled_frequency_figure(128, 500_000.0, &scalings, 8192, 65_536).unwrap();
    assert!(png_bytes(&fig).unwrap().starts_with(b"\x89PNG"));
    assert!(scaled_frequency_figure(128, 500_000.0, &[], 8192, 65_536).is_err());
    // Llama 3 keeps 29 pairs and divides 29 (the 6 between are smoothed); YaRN keeps the 19
    // pairs up to its ramp start, dim ⌊18.08⌋ = 18; and every scaling leaves as many
    // pairs turning within 65 536 tokens as the unscaled model had within 8192.
    let rendered = scalings_table().unwrap().render();
    let row = |name: &str| rendered.lines().find(|l| l.starts_with(name)).unwrap().to_string();
    assert!(row("Llama 3").contains("29 of 64"), "{rendered}");
    assert!(row("YaRN").contains("19 of 64") && row("YaRN").contains("1.2079"), "{rendered}");
    let unscaled = RopeConfig::new(128, 500_000.0, RopeLayout::HalfRotation).unwrap();
    let within_trained = ch06_rope::curves::pairs_with_full_turn(&unscaled, 8192);
    for (name, _) in &scalings {
        assert!(row(name).trim_end().ends_with(&within_trained.to_string()), "{name}: {rendered}");
    }
}

/// The scalings in f64 from their definitions (the papers' formulas in transformers' form), on
/// the same f32 exponent `2i/d` the code uses: the exponent's own rounding is magnified by
/// `ln base` in `base^e` (up to 13 ulp at base 5·10⁵), and it is the same in both, so what is
/// left to compare is the arithmetic after it.
fn scaled_theta_f64(scaling: &RopeScaling, base: f64, d: usize, i: usize) -> f64 {
    let e = f64::from((2 * i) as f32 / d as f32);
    let theta = base.powf(-e);
    match *scaling {
        RopeScaling::Default => theta,
        RopeScaling::Linear { factor } => theta / factor,
        RopeScaling::DynamicNtk { factor, max_position_embeddings: l, seq_len } => {
            let n = seq_len.max(l) as f64;
            let new_base = base * (factor * n / l as f64 - (factor - 1.0)).powf(d as f64 / (d as f64 - 2.0));
            f64::from(new_base as f32).powf(-e)
        }
        RopeScaling::Yarn {
            factor,
            original_max_position_embeddings: l0,
            beta_fast,
            beta_slow,
            truncate,
            ..
        } => {
            // The dim at which a pair turns n times over l0: θ_j·l0 = 2πn with θ_j = base^(−2j/d).
            let dim_for =
                |n: f64| d as f64 * (l0 as f64 / (2.0 * std::f64::consts::PI * n)).ln() / (2.0 * base.ln());
            let (mut low, mut high) = (dim_for(beta_fast), dim_for(beta_slow));
            if truncate {
                (low, high) = (low.floor(), high.ceil());
            }
            let (low, high) = (low.max(0.0), high.min(d as f64 - 1.0));
            let high = if low == high { high + 0.001 } else { high };
            let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
            theta / factor * ramp + theta * (1.0 - ramp)
        }
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: l0,
        } => {
            let wavelength = std::f64::consts::TAU / theta;
            let l0 = l0 as f64;
            if wavelength < l0 / high_freq_factor {
                theta
            } else if wavelength > l0 / low_freq_factor {
                theta / factor
            } else {
                let smooth = (l0 / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor);
                (1.0 - smooth) * theta / factor + smooth * theta
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every scaling's f32 frequencies within 8 f32 ulps (relative 8u, u = 2⁻²⁴) of the f64
    /// definition — `powf` (≤ 1 ulp) and a handful of f32 operations on positive terms — plus,
    /// for YaRN and Llama 3, what the f32 error of their mixing weight (ramp or smooth factor,
    /// a few u absolute; 16u allowed) does to `θ·(1 − w·(1 − 1/s))`: `16u·θ·(1 − 1/s)`, which
    /// relative to a result near `θ/s` is up to `16u·s`.
    #[test]
    fn scalings_agree_with_their_f64_definitions(
        half in 2usize..129,
        base in prop::sample::select(vec![500.0f32, 10_000.0, 100_000.0, 500_000.0, 1_000_000.0]),
        factor in 1.0f64..64.0,
        l0 in 256usize..65_536,
        kind in 0usize..5,
        truncate: bool,
    ) {
        let d = 2 * half;
        let scaling = match kind {
            0 => RopeScaling::Default,
            1 => RopeScaling::Linear { factor },
            2 => RopeScaling::DynamicNtk { factor, max_position_embeddings: l0, seq_len: 3 * l0 },
            3 => RopeScaling::Yarn {
                factor,
                original_max_position_embeddings: l0,
                beta_fast: 32.0,
                beta_slow: 1.0,
                mscale: None,
                mscale_all_dim: None,
                attention_factor: None,
                truncate,
            },
            _ => RopeScaling::Llama3 {
                factor,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: l0,
            },
        };
        let (theta, _) = scaling.inv_freq_and_attention_factor(base, d).unwrap();
        for (i, &t) in theta.iter().enumerate() {
            let want = scaled_theta_f64(&scaling, f64::from(base), d, i);
            let u = 2f64.powi(-24);
            let mixing = match scaling {
                RopeScaling::Yarn { .. } | RopeScaling::Llama3 { .. } => {
                    let unscaled = scaled_theta_f64(&RopeScaling::Default, f64::from(base), d, i);
                    16.0 * u * unscaled * (1.0 - 1.0 / factor) / want
                }
                _ => 0.0,
            };
            let rel = (f64::from(t) - want).abs() / want;
            prop_assert!(rel <= 8.0 * u + mixing, "{:?} d {} pair {}: {} vs {} (rel {:e})", scaling, d, i, t, want, rel);
        }
    }
}
