//! The QKV epilogue (RoPE on q and k, k and v into the cache): three passes = one pass bit for
//! bit = the f64 reference to f32 rounding, cache rows outside the chunk untouched, bad input.

use ch05_fused_computation::attn_support::Error;
use ch05_fused_computation::attn_support::data::randn;
use ch05_fused_computation::ndarray::{Array2, Array3, Axis, s};
use ch05_fused_computation::reference::qkv_epilogue_reference;
use ch05_fused_computation::{
    KvCache, LLAMA3_8B, QkvDims, SMOLLM2_135M, concat_weights, epilogue_fused, epilogue_unfused,
    llama_rope_tables, qkv_fused, qkv_unfused, rotate_half_with_table,
};
use proptest::prelude::*;

/// A cache filled with a sentinel, so the test sees which rows were written.
const SENTINEL: f32 = -7.25;

fn sentinel_cache(dims: QkvDims, max_len: usize) -> KvCache {
    let shape = (dims.n_kv_heads, max_len, dims.head_dim);
    KvCache { k: Array3::from_elem(shape, SENTINEL), v: Array3::from_elem(shape, SENTINEL) }
}

/// |f32 − f64| allowed for one rotated element `a·c ∓ b·s`: two products and one sum rounded
/// in f32 give at most 2u(|a·c| + |b·s|) (u = 2⁻²⁴, Higham's bound for a 2-term dot product);
/// a factor 2 of margin on top. `partner` is the other dim of the pair.
fn rope_tolerance<'a>(
    qkv: &'a Array2<f32>,
    dims: QkvDims,
    cos: &'a Array2<f32>,
    sin: &'a Array2<f32>,
    start: usize,
) -> impl Fn(usize, usize, usize) -> f64 + 'a {
    let d = dims.head_dim;
    move |slot, t, c| {
        let partner = if c < d / 2 { c + d / 2 } else { c - d / 2 };
        let a = qkv[[t, slot * d + c]].abs() as f64 * cos[[start + t, c]].abs() as f64;
        let b = qkv[[t, slot * d + partner]].abs() as f64 * sin[[start + t, c]].abs() as f64;
        4.0 * f64::from(f32::EPSILON / 2.0) * (a + b) + 1e-30
    }
}

/// `base: None` draws the tables at random: the formula is defined for any table, and unlike
/// Hugging Face's (whose two halves are equal) a random one tells column i from column i + d/2.
fn check_against_reference(
    dims: QkvDims,
    tokens: usize,
    start: usize,
    extra: usize,
    base: Option<f32>,
    seed: u64,
) {
    let positions = start + tokens + extra;
    let (cos, sin) = match base {
        Some(base) => llama_rope_tables(positions, dims.head_dim, base).unwrap(),
        None => (randn((positions, dims.head_dim), seed ^ 1), randn((positions, dims.head_dim), seed ^ 2)),
    };
    let qkv = randn((tokens, dims.fused_cols()), seed);
    let cache_len = start + tokens + extra / 2;

    let mut cache_three = sentinel_cache(dims, cache_len);
    let q_three =
        epilogue_unfused(qkv.view(), dims, cos.view(), sin.view(), start, &mut cache_three).unwrap();
    let mut cache_one = sentinel_cache(dims, cache_len);
    let q_one = epilogue_fused(qkv.view(), dims, cos.view(), sin.view(), start, &mut cache_one).unwrap();
    // Same f32 operations in the same order: equal bit for bit.
    assert_eq!(q_three, q_one, "q: three passes against one");
    assert_eq!(cache_three, cache_one, "cache: three passes against one");

    let [q_ref, k_ref, v_ref] = qkv_epilogue_reference(qkv.view(), dims, cos.view(), sin.view(), start);
    let tol = rope_tolerance(&qkv, dims, &cos, &sin, start);
    for ((h, t, c), &r) in q_ref.indexed_iter() {
        let err = (q_one[[h, t, c]] as f64 - r).abs();
        assert!(err <= tol(h, t, c), "q[{h},{t},{c}] = {} vs {r}", q_one[[h, t, c]]);
    }
    for ((h, t, c), &r) in k_ref.indexed_iter() {
        let got = cache_one.k[[h, start + t, c]] as f64;
        assert!((got - r).abs() <= tol(dims.n_heads + h, t, c), "k[{h},{},{c}] = {got} vs {r}", start + t);
    }
    for ((h, t, c), &r) in v_ref.indexed_iter() {
        assert_eq!(cache_one.v[[h, start + t, c]] as f64, r, "v is copied exactly");
    }
    // Rows outside start … start + tokens − 1 keep the sentinel.
    for a in [&cache_one.k, &cache_one.v] {
        for (p, rows) in a.axis_iter(Axis(1)).enumerate() {
            if p < start || p >= start + tokens {
                assert!(rows.iter().all(|&x| x == SENTINEL), "cache row {p} was written");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn three_passes_equal_one_pass_equal_reference(
        n_kv_heads in 1usize..=3,
        group in 1usize..=3,
        half_dim in 1usize..=9,
        d_model in 1usize..=8,
        tokens in 1usize..=9,
        start in 0usize..=6,
        extra in 0usize..=5,
        base in prop_oneof![Just(None), Just(Some(10_000.0f32)), Just(Some(100_000.0)), Just(Some(500_000.0))],
        seed in any::<u64>(),
    ) {
        let dims = QkvDims { d_model, n_heads: n_kv_heads * group, n_kv_heads, head_dim: 2 * half_dim };
        check_against_reference(dims, tokens, start, extra, base, seed);
    }
}

#[test]
fn model_shapes_at_decode_and_a_prefill_chunk() {
    // SmolLM2-135M (θ = 100 000) and Llama-3-8B (θ = 500 000): decode one token at position 40,
    // and a chunk of 13 tokens after 3 cached ones.
    check_against_reference(SMOLLM2_135M, 1, 40, 2, Some(100_000.0), 1);
    check_against_reference(SMOLLM2_135M, 13, 3, 0, Some(100_000.0), 2);
    check_against_reference(LLAMA3_8B, 1, 40, 2, Some(500_000.0), 3);
    check_against_reference(LLAMA3_8B, 5, 0, 0, None, 4);
}

#[test]
fn position_zero_is_the_identity() {
    // cos 0 = 1, sin 0 = 0: at position 0 RoPE leaves q and k as they are.
    let dims = QkvDims { d_model: 4, n_heads: 2, n_kv_heads: 1, head_dim: 6 };
    let (cos, sin) = llama_rope_tables(4, 6, 10_000.0).unwrap();
    let qkv = randn((1, dims.fused_cols()), 9);
    let mut cache = KvCache::zeros(dims, 4);
    let q = epilogue_fused(qkv.view(), dims, cos.view(), sin.view(), 0, &mut cache).unwrap();
    assert_eq!(q.slice(s![1, 0, ..]), qkv.slice(s![0, 6..12]));
    assert_eq!(cache.k.slice(s![0, 0, ..]), qkv.slice(s![0, 12..18]));
}

#[test]
fn bad_input_names_the_value() {
    let dims = QkvDims { d_model: 4, n_heads: 2, n_kv_heads: 1, head_dim: 4 };
    let (cos, sin) = llama_rope_tables(8, 4, 10_000.0).unwrap();
    let qkv = randn((3, dims.fused_cols()), 1);
    let msg = |r: Result<Array3<f32>, Error>| r.unwrap_err().to_string();
    for run in [epilogue_unfused, epilogue_fused] {
        // Tokens 6, 7, 8: position 8 has no table row (the table holds 0 … 7).
        let mut cache = KvCache::zeros(dims, 16);
        let e = msg(run(qkv.view(), dims, cos.view(), sin.view(), 6, &mut cache));
        assert!(e.contains("position 8") && e.contains("cos/sin table of 8 positions"), "{e}");
        // A cache of 5 positions cannot take tokens 4, 5, 6.
        let mut small = KvCache::zeros(dims, 5);
        let e = msg(run(qkv.view(), dims, cos.view(), sin.view(), 4, &mut small));
        assert!(e.contains("position 6") && e.contains("KV cache of 5 positions"), "{e}");
        // The QKV output must have H·d + 2·H_kv·d = 16 columns.
        let narrow = randn((3, 15), 2);
        let e = msg(run(narrow.view(), dims, cos.view(), sin.view(), 0, &mut cache));
        assert!(e.contains("15") && e.contains("16"), "{e}");
        // Tables of the wrong head_dim.
        let (cos6, sin6) = llama_rope_tables(8, 6, 10_000.0).unwrap();
        let e = msg(run(qkv.view(), dims, cos6.view(), sin6.view(), 0, &mut cache));
        assert!(e.contains("cos") && e.contains('6'), "{e}");
        // A cache of the wrong head count.
        let mut wrong = KvCache::zeros(QkvDims { n_kv_heads: 2, ..dims }, 16);
        let e = msg(run(qkv.view(), dims, cos.view(), sin.view(), 0, &mut wrong));
        assert!(e.contains("k cache"), "{e}");
    }
    // An odd head_dim has no pairs to rotate.
    let odd = QkvDims { head_dim: 3, ..dims };
    let (cos, sin) = (Array2::zeros((4, 3)), Array2::zeros((4, 3)));
    let mut cache = KvCache::zeros(odd, 4);
    let e = msg(epilogue_fused(
        randn((1, odd.fused_cols()), 3).view(),
        odd,
        cos.view(),
        sin.view(),
        0,
        &mut cache,
    ));
    assert!(e.contains("head_dim = 3"), "{e}");
}

#[test]
fn the_fused_gemm_output_through_the_epilogue_is_three_gemms_then_rope() {
    // What a decoder does unfused: three projections, then RoPE head by head on Q and K (as
    // (B, H, N, d) tensors), then the cache update. The fused path starts from the one GEMM's
    // (n, C) output. The GEMMs may add in another order (see qkv_projection's docs), so the
    // two agree to f32 rounding of a dot product of d_model terms, not bit for bit.
    let dims = SMOLLM2_135M;
    let (tokens, start) = (7, 5);
    let scale = 1.0 / (dims.d_model as f32).sqrt();
    let x = randn((1, tokens, dims.d_model), 21);
    let w = |rows, seed| randn((rows, dims.d_model), seed).mapv(|v: f32| v * scale);
    let (w_q, w_k, w_v) = (w(dims.q_cols(), 22), w(dims.kv_cols(), 23), w(dims.kv_cols(), 24));
    let w_qkv = concat_weights(w_q.view(), w_k.view(), w_v.view(), dims).unwrap();
    let (cos, sin) = llama_rope_tables(start + tokens, dims.head_dim, 100_000.0).unwrap();

    let fused = qkv_fused(x.view(), w_qkv.view(), dims).unwrap();
    let mut cache = KvCache::zeros(dims, start + tokens);
    let q = epilogue_fused(fused.output(), dims, cos.view(), sin.view(), start, &mut cache).unwrap();

    let three = qkv_unfused(x.view(), w_q.view(), w_k.view(), w_v.view(), dims).unwrap();
    // RoPE head by head on the three GEMMs' Q and K.
    let mut q_want = Array3::<f32>::zeros((dims.n_heads, tokens, dims.head_dim));
    let mut k_want = Array3::<f32>::zeros((dims.n_kv_heads, tokens, dims.head_dim));
    for t in 0..tokens {
        let (c, sn) = (cos.row(start + t).to_vec(), sin.row(start + t).to_vec());
        for h in 0..dims.n_heads {
            let x = three.q.slice(s![0, h, t, ..]).to_vec();
            rotate_half_with_table(&x, &c, &sn, q_want.slice_mut(s![h, t, ..]).as_slice_mut().unwrap());
        }
        for h in 0..dims.n_kv_heads {
            let x = three.k.slice(s![0, h, t, ..]).to_vec();
            rotate_half_with_table(&x, &c, &sn, k_want.slice_mut(s![h, t, ..]).as_slice_mut().unwrap());
        }
    }
    let v_want = three.v.index_axis(Axis(0), 0);
    assert!(q.abs_diff_eq(&q_want, 1e-5));
    assert!(cache.k.slice(s![.., start.., ..]).abs_diff_eq(&k_want, 1e-5));
    assert!(cache.v.slice(s![.., start.., ..]).abs_diff_eq(&v_want, 1e-5));
}
