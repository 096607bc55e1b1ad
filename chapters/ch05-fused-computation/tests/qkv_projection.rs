//! QKV projection: one GEMM over [W_q; W_k; W_v] = three GEMMs = the f64 reference, the
//! split views share the GEMM's output, they feed chapter 2's attention, and bad input.

use ch02_scaled_dot_product::attn_support::data::randn;
use ch02_scaled_dot_product::attn_support::ndarray::{Array2, Array3, ArrayView4, s};
use ch02_scaled_dot_product::attn_support::{Error, compare};
use ch02_scaled_dot_product::{SdpaMask, sdpa};
use ch05_fused_computation::reference::qkv_reference;
use ch05_fused_computation::{
    LLAMA3_8B, QkvDims, SMOLLM2_135M, concat_weights, qkv_fused, qkv_unfused, repeat_kv,
};
use proptest::prelude::*;

/// f32 GEMM against f64: each output is a dot product of d_model ≤ 40 terms of unit-variance
/// products, summed in f32 (relative error ~ d_model · 6e-8 in the worst case, far less
/// typically, but a sum that cancels raises the relative error of one element: the norm-wise
/// bound below averages over elements). 1e-5 leaves a wide margin.
const TOL: f64 = 1e-5;

/// Fused against unfused: both are f32 dot products of the same terms that may be added in a
/// different order (see the module docs), so they differ by f32 rounding at most.
const FUSED_TOL: f64 = 1e-6;

struct Inputs {
    x: Array3<f32>,
    w: [Array2<f32>; 3],
}

fn inputs(batch: usize, seq: usize, dims: QkvDims, seed: u64) -> Inputs {
    // Weights scaled by 1/√d_model as initialisers do, so outputs are of order 1.
    let scale = 1.0 / (dims.d_model as f32).sqrt();
    let w = |rows, s| randn((rows, dims.d_model), s).mapv(|v: f32| v * scale);
    Inputs {
        x: randn((batch, seq, dims.d_model), seed),
        w: [w(dims.q_cols(), seed + 1), w(dims.kv_cols(), seed + 2), w(dims.kv_cols(), seed + 3)],
    }
}

fn shapes() -> impl Strategy<Value = (usize, usize, QkvDims, u64)> {
    (1usize..=2, 1usize..=9, 1usize..=40, 1usize..=3, 1usize..=3, 1usize..=9, any::<u64>()).prop_map(
        |(batch, seq, d_model, n_kv_heads, group, head_dim, seed)| {
            let dims = QkvDims { d_model, n_heads: n_kv_heads * group, n_kv_heads, head_dim };
            (batch, seq, dims, seed % 1_000_000)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn fused_equals_unfused_equals_the_reference((batch, seq, dims, seed) in shapes()) {
        let Inputs { x, w: [w_q, w_k, w_v] } = inputs(batch, seq, dims, seed);
        let unfused = qkv_unfused(x.view(), w_q.view(), w_k.view(), w_v.view(), dims).unwrap();
        let w_qkv = concat_weights(w_q.view(), w_k.view(), w_v.view(), dims).unwrap();
        prop_assert_eq!(w_qkv.dim(), (dims.fused_cols(), dims.d_model));
        let fused = qkv_fused(x.view(), w_qkv.view(), dims).unwrap();
        let reference = qkv_reference(x.view(), w_q.view(), w_k.view(), w_v.view(), dims).unwrap();
        let pairs: [(ArrayView4<f32>, ArrayView4<f32>); 3] =
            [(fused.q(), unfused.q.view()), (fused.k(), unfused.k.view()), (fused.v(), unfused.v.view())];
        for ((f, u), r) in pairs.into_iter().zip(&reference) {
            prop_assert_eq!(f.shape(), r.shape());
            let c = compare(&f, &u).unwrap();
            prop_assert!(c.within(FUSED_TOL), "fused vs unfused: {c}");
            let c = compare(&f, r).unwrap();
            prop_assert!(c.within(TOL), "fused vs f64 reference: {c}");
            let c = compare(&u, r).unwrap();
            prop_assert!(c.within(TOL), "unfused vs f64 reference: {c}");
        }
    }
}

#[test]
fn the_split_is_views_into_one_output() {
    let dims = QkvDims { d_model: 12, n_heads: 6, n_kv_heads: 2, head_dim: 5 };
    let Inputs { x, w: [w_q, w_k, w_v] } = inputs(2, 7, dims, 11);
    let fused =
        qkv_fused(x.view(), concat_weights(w_q.view(), w_k.view(), w_v.view(), dims).unwrap().view(), dims)
            .unwrap();
    let out = fused.output();
    assert_eq!(out.dim(), (14, 6 * 5 + 2 * 2 * 5));
    // Same memory: Q starts at the output's first element, K after H·d columns, V after H·d + H_kv·d.
    let base = out.as_ptr();
    assert_eq!(fused.q().as_ptr(), base);
    assert_eq!(fused.k().as_ptr(), base.wrapping_add(30));
    assert_eq!(fused.v().as_ptr(), base.wrapping_add(40));
    // And the right elements: head 4 of Q, token 6 of batch entry 1, component 3 is row 13, column 4·5 + 3.
    assert_eq!(fused.q()[[1, 4, 6, 3]], out[[13, 23]]);
    assert_eq!(fused.v()[[1, 1, 6, 4]], out[[13, 40 + 5 + 4]]);
    assert_eq!((fused.q().dim(), fused.k().dim()), ((2, 6, 7, 5), (2, 2, 7, 5)));
}

#[test]
fn the_views_feed_chapter_2_attention() {
    // Multi-head (H = H_kv): chapter 2's sdpa takes the strided views as they are.
    let dims = QkvDims { d_model: 16, n_heads: 3, n_kv_heads: 3, head_dim: 7 };
    let Inputs { x, w: [w_q, w_k, w_v] } = inputs(2, 9, dims, 21);
    let fused =
        qkv_fused(x.view(), concat_weights(w_q.view(), w_k.view(), w_v.view(), dims).unwrap().view(), dims)
            .unwrap();
    let mask = SdpaMask::causal();
    let from_views = sdpa(fused.q(), fused.k(), fused.v(), &mask).unwrap();
    let (q, k, v) = (fused.q().to_owned(), fused.k().to_owned(), fused.v().to_owned());
    let from_copies = sdpa(q.view(), k.view(), v.view(), &mask).unwrap();
    let c = compare(&from_views, &from_copies).unwrap();
    assert!(c.within(FUSED_TOL), "{c}");
}

#[test]
fn real_model_shapes() {
    for (dims, fused_cols, group) in [(SMOLLM2_135M, 576 + 2 * 192, 3), (LLAMA3_8B, 4096 + 2 * 1024, 4)] {
        dims.check().unwrap();
        assert_eq!((dims.fused_cols(), dims.group_size()), (fused_cols, group));
    }
    // SmolLM2-135M at decode size (one token) runs on the CPU in no time.
    let Inputs { x, w: [w_q, w_k, w_v] } = inputs(1, 1, SMOLLM2_135M, 31);
    let w_qkv = concat_weights(w_q.view(), w_k.view(), w_v.view(), SMOLLM2_135M).unwrap();
    let fused = qkv_fused(x.view(), w_qkv.view(), SMOLLM2_135M).unwrap();
    let unfused = qkv_unfused(x.view(), w_q.view(), w_k.view(), w_v.view(), SMOLLM2_135M).unwrap();
    let c = compare(&fused.k(), &unfused.k).unwrap();
    assert!(c.within(FUSED_TOL), "{c}");
}

#[test]
fn bad_input_is_named() {
    let dims = QkvDims { d_model: 8, n_heads: 4, n_kv_heads: 2, head_dim: 3 };
    let Inputs { x, w: [w_q, w_k, w_v] } = inputs(1, 5, dims, 41);
    // n_heads not a multiple of n_kv_heads.
    let odd = QkvDims { n_kv_heads: 3, ..dims };
    let e = qkv_unfused(x.view(), w_q.view(), w_k.view(), w_v.view(), odd).unwrap_err().to_string();
    assert!(e.contains("n_heads = 4") && e.contains("n_kv_heads = 3"), "{e}");
    // A weight of the wrong shape: W_k given where W_q belongs.
    match qkv_unfused(x.view(), w_k.view(), w_k.view(), w_v.view(), dims) {
        Err(Error::ShapeMismatch { left_name, left, right, .. }) => {
            assert_eq!((left_name, left, right), ("W_q", vec![6, 8], vec![12, 8]))
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
    // X with the wrong width.
    let narrow = randn((1, 5, 7), 1);
    let e = qkv_unfused(narrow.view(), w_q.view(), w_k.view(), w_v.view(), dims).unwrap_err().to_string();
    assert!(e.contains("[1, 5, 7]") && e.contains("[1, 5, 8]"), "{e}");
    // The fused weight must have H·d + 2·H_kv·d rows.
    let e = qkv_fused(x.view(), w_q.view(), dims).unwrap_err().to_string();
    assert!(e.contains("W_qkv") && e.contains("[12, 8]") && e.contains("[24, 8]"), "{e}");
    let e = concat_weights(w_q.view(), w_k.view(), w_q.view(), dims).unwrap_err().to_string();
    assert!(e.contains("W_v"), "{e}");
    let e = QkvDims { head_dim: 0, ..dims }.check().unwrap_err().to_string();
    assert!(e.contains("head_dim: 0"), "{e}");
}

/// With d_model = 1 (or one token) X is both row- and column-major, and ndarray's `dot` may
/// return a column-major product; the split must not depend on that (proptest found it).
#[test]
fn degenerate_widths_and_lengths() {
    for (batch, seq, d_model, head_dim) in [(1, 1, 1, 1), (1, 2, 1, 1), (2, 1, 3, 1), (1, 1, 5, 4)] {
        let dims = QkvDims { d_model, n_heads: 2, n_kv_heads: 1, head_dim };
        let Inputs { x, w: [w_q, w_k, w_v] } = inputs(batch, seq, dims, 51);
        let w_qkv = concat_weights(w_q.view(), w_k.view(), w_v.view(), dims).unwrap();
        let fused = qkv_fused(x.view(), w_qkv.view(), dims).unwrap();
        let unfused = qkv_unfused(x.view(), w_q.view(), w_k.view(), w_v.view(), dims).unwrap();
        let reference = qkv_reference(x.view(), w_q.view(), w_k.view(), w_v.view(), dims).unwrap();
        for (f, r) in [fused.q(), fused.k(), fused.v()].iter().zip(&reference) {
            assert!(compare(f, r).unwrap().within(TOL));
        }
        assert!(compare(&unfused.v, &reference[2]).unwrap().within(TOL));
    }
}

/// GQA into chapter 2's attention: K and V repeated to H heads (a copy), then one sdpa call,
/// equals attention run head by head with query head h against KV head h / group.
#[test]
fn gqa_through_repeat_kv_matches_head_by_head_attention() {
    let dims = QkvDims { d_model: 10, n_heads: 6, n_kv_heads: 2, head_dim: 5 };
    let Inputs { x, w: [w_q, w_k, w_v] } = inputs(2, 7, dims, 61);
    let fused =
        qkv_fused(x.view(), concat_weights(w_q.view(), w_k.view(), w_v.view(), dims).unwrap().view(), dims)
            .unwrap();
    let group = dims.group_size();
    let (k, v) = (repeat_kv(fused.k(), group).unwrap(), repeat_kv(fused.v(), group).unwrap());
    assert_eq!(k.dim(), (2, 6, 7, 5));
    let mask = SdpaMask::causal();
    let all_heads = sdpa(fused.q(), k.view(), v.view(), &mask).unwrap();
    for h in 0..dims.n_heads {
        let kv = h / group..h / group + 1;
        let one = sdpa(
            fused.q().slice(s![.., h..h + 1, .., ..]),
            fused.k().slice(s![.., kv.clone(), .., ..]),
            fused.v().slice(s![.., kv, .., ..]),
            &mask,
        )
        .unwrap();
        let c = compare(&one, &all_heads.slice(s![.., h..h + 1, .., ..])).unwrap();
        assert!(c.within(FUSED_TOL), "head {h}: {c}");
    }
    assert!(repeat_kv(fused.k(), 0).unwrap_err().to_string().contains("group = 0"));
}
