//! RoPE against the f64 reference, the relative-position property, cache against on the fly,
//! partial rotary, the layout conversion of checkpoints, and bad input.
//!
//! Tolerances come from one error budget, with u = 2⁻²⁴ (f32's unit roundoff). The f32 angle
//! `fl(fl(θ_i)·m)` carries: the exponent `2i/d_rot` rounded once (relative u, which `base^e`
//! turns into a relative error `e·ln(base)·u` of θ_i), `powf` within 1 ulp (2u), the reciprocal
//! (u) and the product with the exact position (u); absolute, that is at most
//! `m·θ_i·(e·ln(base) + 4)·u = m·base^(−e)·(e·ln(base) + 4)·u ≤ m·(1/e_Euler + 4)·u < 5·m·u`,
//! since `x·e^(−x) ≤ 1/e_Euler`. A rotation by a wrong angle moves a pair by at most
//! |pair|·|Δφ|; cos and sin within 1 ulp (2u each), two products and a sum add at most 8u of the
//! pair's norm. So the relative error of a RoPE'd array is below `(5·m_max + 8)·u`.

use ch06_rope::attn_support::data::randn;
use ch06_rope::attn_support::ndarray::{Array2, Array4, Axis, s};
use ch06_rope::attn_support::{Error, compare};
use ch06_rope::layout::{convert_rows, dim_permutation, half_to_interleaved_rows};
use ch06_rope::reference::rope_reference;
use ch06_rope::{MAX_EXACT_POSITION, RopeCache, RopeConfig, RopeLayout, apply_rope};
use proptest::prelude::*;

const U: f64 = f32::EPSILON as f64 / 2.0;

/// The error budget of the module docs for positions up to `max_position`.
fn rope_tolerance(max_position: usize) -> f64 {
    (5.0 * max_position as f64 + 8.0) * U
}

fn layout() -> impl Strategy<Value = RopeLayout> {
    prop_oneof![Just(RopeLayout::HalfRotation), Just(RopeLayout::Interleaved)]
}

/// A config with any head dim from 2 to 66 (odd ones too: only the rotary dims must be even),
/// any even number of rotary dims up to it, base 10 000 (Llama 2) or 500 000 (Llama 3).
fn config() -> impl Strategy<Value = RopeConfig> {
    (2usize..=66, layout(), prop_oneof![Just(10_000.0f32), Just(500_000.0f32)]).prop_flat_map(
        |(head_dim, layout, base)| {
            (1..=head_dim / 2)
                .prop_map(move |pairs| RopeConfig::partial(head_dim, 2 * pairs, base, layout).unwrap())
        },
    )
}

/// (config, (batch, heads, seq), offset, seed): seq from 1 (a decode step) to 37, offsets up to
/// 3000 (a KV cache already holding that many tokens).
fn case() -> impl Strategy<Value = (RopeConfig, (usize, usize, usize), usize, u64)> {
    (config(), 1usize..=2, 1usize..=3, 1usize..=37, 0usize..=3000, any::<u64>())
        .prop_map(|(c, b, h, n, offset, seed)| (c, (b, h, n), offset, seed % 1_000_000))
}

fn rope_on_the_fly(config: &RopeConfig, x: &Array4<f32>, offset: usize) -> Array4<f32> {
    let mut y = x.clone();
    apply_rope(config, y.view_mut(), offset).unwrap();
    y
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn f32_rope_matches_the_f64_reference((config, (b, h, n), offset, seed) in case()) {
        let x = randn((b, h, n, config.head_dim()), seed);
        let y = rope_on_the_fly(&config, &x, offset);
        let reference = rope_reference(&config, x.view(), offset).unwrap();
        let c = compare(&y, &reference).unwrap();
        let tol = rope_tolerance(offset + n - 1);
        prop_assert!(c.within(tol), "{config:?} offset {offset}: {c}, tolerance {tol:.2e}");
        // Pair by pair, the budget before its last simplification: |pair|·(m·θ_i·(e·ln b + 4) + 8)·u.
        let (d_rot, ln_base) = (config.rotary_dim(), (config.base() as f64).ln());
        for ((bb, hh, t, i), _) in x.slice(s![.., .., .., ..d_rot / 2]).indexed_iter() {
            let (ia, ib) = config.layout().pair(i, d_rot);
            let e = 2.0 * i as f64 / d_rot as f64;
            let angle_budget = (offset + t) as f64 * (-e * ln_base).exp() * (e * ln_base + 4.0);
            let pair_norm = (x[[bb, hh, t, ia]] as f64).hypot(x[[bb, hh, t, ib]] as f64);
            let gap = (y[[bb, hh, t, ia]] as f64 - reference[[bb, hh, t, ia]])
                .hypot(y[[bb, hh, t, ib]] as f64 - reference[[bb, hh, t, ib]]);
            prop_assert!(gap <= pair_norm * (angle_budget + 8.0) * U, "pair {i} at {}: gap {gap:.2e}", offset + t);
        }
    }

    #[test]
    fn the_cache_and_the_angles_on_the_fly_agree_bit_for_bit(
        (config, (b, h, n), offset, seed) in case(),
        spare in 0usize..5,
    ) {
        // Same f32 expressions in the same order, so not a single bit may differ.
        let x = randn((b, h, n, config.head_dim()), seed);
        let cache = RopeCache::new(&config, offset + n + spare).unwrap();
        let mut from_cache = x.clone();
        cache.apply(from_cache.view_mut(), offset).unwrap();
        prop_assert_eq!(from_cache, rope_on_the_fly(&config, &x, offset));
    }

    #[test]
    fn scores_depend_only_on_the_relative_position(
        config in config(),
        (m, n, shift) in (0usize..4000, 0usize..4000, 0usize..4000),
        seed in 0u64..1_000_000,
    ) {
        // q·k rotated at (m, n) and at (m + t, n + t): in exact arithmetic both equal
        // q · R((n − m)θ) k. In f32 each rotated vector is off by its relative budget, and the
        // dot product of d terms adds up to d·u·|q||k| per evaluation.
        let d = config.head_dim();
        let q = randn((1, 1, 1, d), seed);
        let k = randn((1, 1, 1, d), seed + 1);
        let score = |qm: usize, kn: usize| {
            let (rq, rk) = (rope_on_the_fly(&config, &q, qm), rope_on_the_fly(&config, &k, kn));
            dot(rq.as_slice().unwrap(), rk.as_slice().unwrap())
        };
        let (before, after) = (score(m, n), score(m + shift, n + shift));
        let budget = rope_tolerance(m) + rope_tolerance(n) + rope_tolerance(m + shift) + rope_tolerance(n + shift)
            + 2.0 * d as f64 * U;
        let tol = norm(q.as_slice().unwrap()) * norm(k.as_slice().unwrap()) * budget;
        prop_assert!(
            ((before - after) as f64).abs() <= tol,
            "q·k at ({m}, {n}) = {before}, at ({}, {}) = {after}, tolerance {tol:.2e}", m + shift, n + shift
        );
    }

    #[test]
    fn partial_rotary_rotates_the_first_dims_and_passes_the_rest_through(
        (config, (b, h, n), offset, seed) in case(),
    ) {
        // The rotated part is RoPE of the first d_rot dims as a head of its own (how Hugging
        // Face's GPT-NeoX slices `q[..., :rotary_ndims]`); the rest must come back unchanged.
        let d_rot = config.rotary_dim();
        let x = randn((b, h, n, config.head_dim()), seed);
        let y = rope_on_the_fly(&config, &x, offset);
        prop_assert_eq!(y.slice(s![.., .., .., d_rot..]), x.slice(s![.., .., .., d_rot..]));
        let own_head = RopeConfig::new(d_rot, config.base(), config.layout()).unwrap();
        let first = rope_on_the_fly(&own_head, &x.slice(s![.., .., .., ..d_rot]).to_owned(), offset);
        prop_assert_eq!(y.slice(s![.., .., .., ..d_rot]), first);
    }

    #[test]
    fn permuted_weights_with_interleaved_rope_equal_hf_weights_with_half_rotation(
        config in config(),
        (n_kv_heads, group, d_model, seq, offset) in (1usize..=3, 1usize..=3, 1usize..=40, 1usize..=9, 0usize..=500),
        seed in 0u64..1_000_000,
    ) {
        // Grouped-query attention: n_kv_heads · group query heads, each group sharing a key head.
        let (d, d_rot, n_heads) = (config.head_dim(), config.rotary_dim(), n_kv_heads * group);
        let half = RopeConfig::partial(d, d_rot, config.base(), RopeLayout::HalfRotation).unwrap();
        let interleaved = RopeConfig::partial(d, d_rot, config.base(), RopeLayout::Interleaved).unwrap();
        let x: Array2<f32> = randn((seq, d_model), seed);
        let (w_q, w_k): (Array2<f32>, Array2<f32>) = (randn((n_heads * d, d_model), seed + 1), randn((n_kv_heads * d, d_model), seed + 2));
        let w_q_inter = half_to_interleaved_rows(w_q.view(), n_heads, d, d_rot).unwrap();
        let w_k_inter = half_to_interleaved_rows(w_k.view(), n_kv_heads, d, d_rot).unwrap();

        let rotated = |w: &Array2<f32>, heads: usize, rope: &RopeConfig| {
            let mut out = project(&x, w, heads);
            apply_rope(rope, out.view_mut(), offset).unwrap();
            out
        };
        let (q_half, k_half) = (rotated(&w_q, n_heads, &half), rotated(&w_k, n_kv_heads, &half));
        let (q_inter, k_inter) = (rotated(&w_q_inter, n_heads, &interleaved), rotated(&w_k_inter, n_kv_heads, &interleaved));

        // The same numbers rotated by the same angles: bit for bit, up to the dim order.
        let source = dim_permutation(d, d_rot, RopeLayout::HalfRotation, RopeLayout::Interleaved);
        for (inter, hf) in [(&q_inter, &q_half), (&k_inter, &k_half)] {
            for (dim, &src) in source.iter().enumerate() {
                prop_assert_eq!(inter.index_axis(Axis(3), dim), hf.index_axis(Axis(3), src));
            }
        }
        // Scores: the same products summed in another order, d·u·Σ|q_i k_i| apart at most.
        for head in 0..n_heads {
            for i in 0..seq {
                for j in 0..seq {
                    let row = |t: &Array4<f32>, hh: usize, p: usize| t.slice(s![0, hh, p, ..]).to_vec();
                    let (qh, kh) = (row(&q_half, head, i), row(&k_half, head / group, j));
                    let (qi, ki) = (row(&q_inter, head, i), row(&k_inter, head / group, j));
                    let abs_sum: f64 = qh.iter().zip(&kh).map(|(a, b)| (a * b).abs() as f64).sum();
                    let gap = (dot(&qh, &kh) - dot(&qi, &ki)).abs() as f64;
                    prop_assert!(gap <= 2.0 * d as f64 * U * abs_sum, "head {head} ({i}, {j}): gap {gap:.2e}");
                }
            }
        }
    }
}

/// `x W^T` split into heads, `(1, heads, seq, head_dim)`, as plain loops so that a permuted
/// row of `W` gives the permuted output bit for bit (same products, same order).
fn project(x: &Array2<f32>, w: &Array2<f32>, heads: usize) -> Array4<f32> {
    let d = w.nrows() / heads;
    Array4::from_shape_fn((1, heads, x.nrows(), d), |(_, h, t, c)| {
        dot(x.row(t).as_slice().unwrap(), w.row(h * d + c).to_vec().as_slice())
    })
}

#[test]
fn position_zero_is_the_identity_and_rotation_keeps_the_norm() {
    let config = RopeConfig::new(64, 10_000.0, RopeLayout::HalfRotation).unwrap();
    let x = randn((1, 2, 5, 64), 7);
    let y = rope_on_the_fly(&config, &x, 0);
    assert_eq!(y.slice(s![.., .., 0, ..]), x.slice(s![.., .., 0, ..]), "cos 0 = 1 and sin 0 = 0 exactly");
    for (xr, yr) in x.rows().into_iter().zip(y.rows()) {
        let (nx, ny) = (norm(&xr.to_vec()), norm(&yr.to_vec()));
        assert!((nx - ny).abs() <= 8.0 * U * nx, "norm {nx} became {ny}");
    }
}

#[test]
fn frequencies_are_hugging_face_s_within_the_f32_budget() {
    // head_dim 64, base 10 000: θ_0 = 1 exactly, θ_1 = 10000^(−1/32), θ_31 = 10000^(−31/32).
    let config = RopeConfig::new(64, 10_000.0, RopeLayout::HalfRotation).unwrap();
    let inv_freq = config.inv_freq();
    assert_eq!(inv_freq.len(), 32);
    assert_eq!(inv_freq[0], 1.0);
    for (i, &f) in inv_freq.iter().enumerate() {
        let e = 2.0 * i as f64 / 64.0;
        let exact = 10_000f64.powf(-e);
        let rel = (f as f64 - exact).abs() / exact;
        assert!(rel <= (e * 10_000f64.ln() + 3.0) * U, "θ_{i} = {f}, exact {exact}, rel err {rel:.2e}");
    }
}

#[test]
fn angle_error_at_long_positions_stays_within_5_m_u() {
    // Positions ≥ 32 k: the f32 angle m·θ_i against the f64 one, for Llama 3's base.
    let config = RopeConfig::new(128, 500_000.0, RopeLayout::HalfRotation).unwrap();
    let inv_freq = config.inv_freq();
    for m in [32_768usize, 65_537, 131_071] {
        for (i, &f) in inv_freq.iter().enumerate() {
            let exact = m as f64 * 500_000f64.powf(-2.0 * i as f64 / 128.0);
            let err = (RopeConfig::angle(f, m) as f64 - exact).abs();
            assert!(err <= 5.0 * m as f64 * U, "m {m}, pair {i}: angle error {err:.2e}");
        }
    }
}

fn invalid(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::InvalidArgument(message)) => message,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn bad_input_is_an_error_naming_the_values() {
    let half = RopeLayout::HalfRotation;
    let m = invalid(RopeConfig::new(7, 10_000.0, half));
    assert!(m.contains("rotary dims 7") && m.contains("head_dim 7"), "{m}");
    let m = invalid(RopeConfig::partial(64, 80, 10_000.0, half));
    assert!(m.contains("80") && m.contains("64"), "{m}");
    let m = invalid(RopeConfig::from_partial_rotary_factor(64, 0.3, 10_000.0, half));
    assert!(m.contains("rotary dims 19"), "int(64 · 0.3) = 19 is odd: {m}");
    let m = invalid(RopeConfig::from_partial_rotary_factor(64, 1.5, 10_000.0, half));
    assert!(m.contains("1.5"), "{m}");
    let m = invalid(RopeConfig::new(64, 0.5, half));
    assert!(m.contains("0.5"), "{m}");
    assert_eq!(RopeConfig::from_partial_rotary_factor(128, 0.25, 10_000.0, half).unwrap().rotary_dim(), 32);

    let config = RopeConfig::new(8, 10_000.0, RopeLayout::Interleaved).unwrap();
    let mut x = Array4::<f32>::zeros((1, 2, 3, 6));
    let m = invalid(apply_rope(&config, x.view_mut(), 0));
    assert!(m.contains("head_dim 6") && m.contains("head_dim 8"), "{m}");

    let cache = RopeCache::new(&config, 10).unwrap();
    let mut x = Array4::<f32>::zeros((1, 2, 3, 8));
    assert!(cache.apply(x.view_mut(), 7).is_ok(), "positions 7, 8, 9 fit a cache of 10");
    let m = invalid(cache.apply(x.view_mut(), 8));
    assert!(m.contains("offset 8") && m.contains("seq 3") && m.contains("10 positions"), "{m}");
    let m = invalid(apply_rope(&config, x.view_mut(), MAX_EXACT_POSITION - 1));
    assert!(m.contains(&MAX_EXACT_POSITION.to_string()), "{m}");

    let w = Array2::<f32>::zeros((10, 4));
    let m = invalid(convert_rows(w.view(), 2, 4, 4, RopeLayout::HalfRotation, RopeLayout::Interleaved));
    assert!(m.contains("[10, 4]") && m.contains("n_heads 2") && m.contains("head_dim 4"), "{m}");
}
