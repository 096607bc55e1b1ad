//! The CPU versions against the independent f64 reference, the softmax, a hand-computed
//! example, and the errors for bad input.

use ch01_attention_basics::attn_support::data::randn;
use ch01_attention_basics::attn_support::{Error, compare};
use ch01_attention_basics::ndarray::{Array2, array};
use ch01_attention_basics::{
    AttentionDims, attention, attention_naive, attention_naive_arrays, attention_reference_f64,
    attention_weights, softmax_rows,
};
use proptest::prelude::*;

const TOL: f64 = 1e-5;

fn inputs(n_q: usize, n_k: usize, d: usize, d_v: usize, scale: f32, seed: u64) -> [Array2<f32>; 3] {
    [
        randn((n_q, d), seed).mapv(|x| x * scale),
        randn((n_k, d), seed + 1).mapv(|x| x * scale),
        randn((n_k, d_v), seed + 2),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Shapes from 1 up to 70 keys and 40 features, including 1 and non-powers of two.
    #[test]
    fn naive_and_ndarray_match_the_f64_reference(
        n_q in 1usize..=70, n_k in 1usize..=70, d in 1usize..=40, d_v in 1usize..=40,
        scale in 0.1f32..2.0, seed in 0u64..1_000_000,
    ) {
        let [q, k, v] = inputs(n_q, n_k, d, d_v, scale, seed);
        let reference = attention_reference_f64(q.view(), k.view(), v.view()).unwrap();
        let by_loops = attention_naive_arrays(q.view(), k.view(), v.view()).unwrap();
        let by_ndarray = attention(q.view(), k.view(), v.view()).unwrap();
        for (name, out) in [("naive", &by_loops), ("ndarray", &by_ndarray)] {
            let c = compare(out, &reference).unwrap();
            prop_assert!(c.within(TOL), "{name} at ({n_q}, {n_k}, {d}, {d_v}): {c}");
        }
    }

    /// Every row of softmax is non-negative and sums to 1, even for scores in the hundreds
    /// (without the max subtraction exp(500) would overflow f32 to inf and give NaN).
    #[test]
    fn softmax_rows_are_distributions(
        rows in 1usize..=20, cols in 1usize..=70, scale in 0.01f32..500.0, seed in 0u64..1_000_000,
    ) {
        let scores = randn((rows, cols), seed).mapv(|x| x * scale);
        let p = softmax_rows(scores.view());
        for row in p.rows() {
            prop_assert!(row.iter().all(|&w| w.is_finite() && w >= 0.0), "{row}");
            let sum: f64 = row.iter().map(|&w| f64::from(w)).sum();
            prop_assert!((sum - 1.0).abs() < 1e-5, "row sums to {sum}");
        }
    }
}

#[test]
fn input_layout_does_not_matter() {
    // Q given as the transpose of a (d, n_q) array: a view with swapped strides.
    let [_, k, v] = inputs(5, 9, 6, 4, 1.0, 7);
    let q_t = randn((6, 5), 11);
    let q = q_t.t();
    let reference = attention_reference_f64(q, k.view(), v.view()).unwrap();
    for out in
        [attention(q, k.view(), v.view()).unwrap(), attention_naive_arrays(q, k.view(), v.view()).unwrap()]
    {
        assert!(compare(&out, &reference).unwrap().within(TOL));
    }
}

#[test]
fn a_tiny_example_by_hand() {
    // q = (1, 0) scores k₁ = (1, 0) with 1 and k₂ = (0, 1) with 0.
    // weights: e/(e+1) = 0.7310585786, 1/(e+1) = 0.2689414214.
    // output: 0.7310585786·(1, 2) + 0.2689414214·(3, 4) = (1.5378828427, 2.5378828427).
    let q = array![[1.0f32, 0.0]];
    let k = array![[1.0f32, 0.0], [0.0, 1.0]];
    let v = array![[1.0f32, 2.0], [3.0, 4.0]];
    let expected_w = [0.731_058_6_f32, 0.268_941_4];
    let expected_out = [1.5378828427f64, 2.5378828427];
    let w = attention_weights(q.view(), k.view()).unwrap();
    for (got, want) in w.iter().zip(expected_w) {
        assert!((got - want).abs() < 1e-6, "weights {w}");
    }
    let naive = attention_naive(
        q.as_slice().unwrap(),
        k.as_slice().unwrap(),
        v.as_slice().unwrap(),
        AttentionDims { n_q: 1, n_k: 2, d: 2, d_v: 2 },
    )
    .unwrap();
    let outs = [
        attention(q.view(), k.view(), v.view()).unwrap().iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
        naive.iter().map(|&x| f64::from(x)).collect(),
        attention_reference_f64(q.view(), k.view(), v.view()).unwrap().iter().copied().collect(),
    ];
    for out in outs {
        for (got, want) in out.iter().zip(expected_out) {
            assert!((got - want).abs() < 1e-6, "output {out:?}");
        }
    }
}

#[test]
fn equal_scores_average_the_values() {
    // A zero query scores every key 0: uniform weights, the output is the mean of V's rows.
    let q = Array2::<f32>::zeros((2, 3));
    let k = randn((4, 3), 5);
    let v = array![[1.0f32], [2.0], [3.0], [6.0]];
    let out = attention(q.view(), k.view(), v.view()).unwrap();
    assert!(out.iter().all(|&x| (x - 3.0).abs() < 1e-6), "{out}");
}

#[test]
fn huge_scores_do_not_overflow() {
    // Scores 1000 and 900: exp(1000) is inf in f32 and f64; with the max subtracted the
    // weights are (1, e⁻¹⁰⁰) and the output is v₁.
    let q = array![[100.0f32]];
    let k = array![[10.0f32], [9.0]];
    let v = array![[1.0f32, -1.0], [5.0, 5.0]];
    let dims = AttentionDims { n_q: 1, n_k: 2, d: 1, d_v: 2 };
    let naive = attention_naive(&[100.0], &[10.0, 9.0], v.as_slice().unwrap(), dims).unwrap();
    assert_eq!(naive, vec![1.0, -1.0]);
    assert_eq!(attention(q.view(), k.view(), v.view()).unwrap(), array![[1.0f32, -1.0]]);
    let r = attention_reference_f64(q.view(), k.view(), v.view()).unwrap();
    assert!((r[[0, 0]] - 1.0).abs() < 1e-12 && (r[[0, 1]] + 1.0).abs() < 1e-12, "{r}");
}

fn message(e: Error) -> String {
    assert!(matches!(e, Error::ShapeMismatch { .. }), "expected a shape mismatch, got {e:?}");
    e.to_string()
}

#[test]
fn mismatched_shapes_name_both_shapes() {
    let (q, k, v) =
        (Array2::<f32>::zeros((3, 4)), Array2::<f32>::zeros((5, 6)), Array2::<f32>::zeros((5, 2)));
    let m = message(attention(q.view(), k.view(), v.view()).unwrap_err());
    assert!(m.contains("Q is [3, 4]") && m.contains("K is [5, 6]"), "{m}");
    let m = message(attention_reference_f64(q.view(), k.view(), v.view()).unwrap_err());
    assert!(m.contains("[3, 4]") && m.contains("[5, 6]"), "{m}");

    let (k, v) = (Array2::<f32>::zeros((5, 4)), Array2::<f32>::zeros((6, 2)));
    for e in [
        attention(q.view(), k.view(), v.view()).unwrap_err(),
        attention_naive_arrays(q.view(), k.view(), v.view()).unwrap_err(),
    ] {
        let m = message(e);
        assert!(m.contains("K is [5, 4]") && m.contains("V is [6, 2]"), "{m}");
    }
}

#[test]
fn slices_that_do_not_fit_the_dims_are_rejected() {
    let dims = AttentionDims { n_q: 2, n_k: 3, d: 4, d_v: 5 };
    let (q, k, v) = (vec![0.0f32; 8], vec![0.0f32; 12], vec![0.0f32; 15]);
    assert_eq!(attention_naive(&q, &k, &v, dims).unwrap().len(), 10);
    let m = message(attention_naive(&q, &k[..11], &v, dims).unwrap_err());
    assert!(m.contains("K slice") && m.contains("[11]") && m.contains("[3, 4]"), "{m}");
    let m = message(attention_naive(&q, &k, &v[..14], dims).unwrap_err());
    assert!(m.contains("V slice") && m.contains("[14]") && m.contains("[3, 5]"), "{m}");
}

#[test]
fn empty_inputs_are_invalid() {
    let z = |r: usize, c: usize| Array2::<f32>::zeros((r, c));
    let cases = [
        (z(0, 4), z(3, 4), z(3, 2)), // no queries
        (z(2, 4), z(0, 4), z(0, 2)), // no keys
        (z(2, 0), z(3, 0), z(3, 2)), // d = 0
        (z(2, 4), z(3, 4), z(3, 0)), // d_v = 0
    ];
    for (q, k, v) in cases {
        for e in [
            attention(q.view(), k.view(), v.view()).unwrap_err(),
            attention_naive_arrays(q.view(), k.view(), v.view()).unwrap_err(),
            attention_reference_f64(q.view(), k.view(), v.view()).unwrap_err(),
        ] {
            assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
        }
    }
    let dims = AttentionDims { n_q: 0, n_k: 1, d: 1, d_v: 1 };
    assert!(matches!(attention_naive(&[], &[1.0], &[1.0], dims), Err(Error::InvalidArgument(_))));
}
