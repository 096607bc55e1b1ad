//! CPU attention vs the independent f64 reference, masks, and bad input.

use ch02_scaled_dot_product::attn_support::data::randn;
use ch02_scaled_dot_product::attn_support::ndarray::{Array2, Array4, Axis, s};
use ch02_scaled_dot_product::attn_support::{Error, compare};
use ch02_scaled_dot_product::naive::sdpa_naive;
use ch02_scaled_dot_product::reference::sdpa_reference;
use ch02_scaled_dot_product::{
    SdpaMask, SdpaOptions, attention_weights, sdpa, sdpa_with_lse, sdpa_with_options, softmax_naive,
    softmax_stable,
};
use proptest::prelude::*;

const TOL: f64 = 1e-5;

/// A key-padding mask from per-batch lengths; length 0 pads every key of that batch entry.
fn padding(lengths: &[usize], nk: usize) -> Array2<bool> {
    SdpaMask::padding_from_lengths(lengths, nk)
}

fn qkv(b: usize, h: usize, nq: usize, nk: usize, d: usize, dv: usize, seed: u64) -> [Array4<f32>; 3] {
    [randn((b, h, nq, d), seed), randn((b, h, nk, d), seed + 1), randn((b, h, nk, dv), seed + 2)]
}

fn shape_and_mask() -> impl Strategy<Value = ((usize, usize, usize, usize, usize, usize), SdpaMask, u64)> {
    (1usize..=3, 1usize..=3, 1usize..=70, 1usize..=70, 1usize..=40, 1usize..=40).prop_flat_map(
        |(b, h, nq, nk, d, dv)| {
            let lengths = prop::collection::vec(0..=nk, b);
            (Just((b, h, nq, nk, d, dv)), any::<bool>(), prop::option::of(lengths), any::<u64>()).prop_map(
                move |(dims, causal, lengths, seed)| {
                    let key_padding = lengths.map(|l| padding(&l, nk));
                    (dims, SdpaMask { causal, key_padding }, seed % 1_000_000)
                },
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sdpa_matches_the_f64_reference(((b, h, nq, nk, d, dv), mask, seed) in shape_and_mask()) {
        let [q, k, v] = qkv(b, h, nq, nk, d, dv, seed);
        let (out, lse) = sdpa_with_lse(q.view(), k.view(), v.view(), &mask).unwrap();
        let (ref_out, ref_lse) = sdpa_reference(q.view(), k.view(), v.view(), &mask, None).unwrap();
        let (c_out, c_lse) = (compare(&out, &ref_out).unwrap(), compare(&lse, &ref_lse).unwrap());
        prop_assert!(c_out.within(TOL), "output: {c_out}");
        prop_assert!(c_lse.within(TOL), "lse: {c_lse}");
        let naive = sdpa_naive(q.view(), k.view(), v.view(), &mask, &SdpaOptions::default()).unwrap();
        let c_naive = compare(&naive, &ref_out).unwrap();
        prop_assert!(c_naive.within(TOL), "naive: {c_naive}");
    }

    #[test]
    fn weights_rows_sum_to_one_or_are_all_zero(((b, h, nq, nk, d, _dv), mask, seed) in shape_and_mask()) {
        let [q, k, _] = qkv(b, h, nq, nk, d, 1, seed);
        let w = attention_weights(q.view(), k.view(), &mask, &SdpaOptions::default()).unwrap();
        for bb in 0..b {
            let visible = mask.visible_matrix(bb, nq, nk);
            for i in 0..nq {
                let sees_any = visible.row(i).iter().any(|&x| x);
                for hh in 0..h {
                    let row = w.slice(s![bb, hh, i, ..]);
                    let sum: f32 = row.sum();
                    prop_assert!(if sees_any { (sum - 1.0).abs() < 1e-5 } else { sum == 0.0 }, "row sum {sum}");
                    for j in 0..nk {
                        prop_assert!(visible[[i, j]] || row[j] == 0.0, "masked key {j} has weight {}", row[j]);
                    }
                }
            }
        }
    }
}

#[test]
fn fully_masked_rows_give_zeros_and_minus_infinity_lse() {
    // Batch entry 1 pads every key; causal with Nq = 6 > Nk = 4 leaves queries 0 and 1 of
    // batch entry 0 without any key.
    let [q, k, v] = qkv(2, 2, 6, 4, 8, 5, 42);
    let mask = SdpaMask::causal().with_key_padding(padding(&[4, 0], 4));
    let (out, lse) = sdpa_with_lse(q.view(), k.view(), v.view(), &mask).unwrap();
    for h in 0..2 {
        for i in 0..6 {
            let masked = i < 2;
            assert_eq!(out.slice(s![0, h, i, ..]).iter().all(|&x| x == 0.0), masked, "b0 h{h} row {i}");
            assert_eq!(lse[[0, h, i]] == f32::NEG_INFINITY, masked);
            assert!(out.slice(s![1, h, i, ..]).iter().all(|&x| x == 0.0));
            assert_eq!(lse[[1, h, i]], f32::NEG_INFINITY);
        }
    }
    assert!(out.iter().all(|x| x.is_finite()), "no NaN anywhere");
}

#[test]
fn causal_with_equal_lengths_is_the_lower_triangle() {
    let [q, k, _] = qkv(1, 1, 5, 5, 4, 1, 9);
    let w = attention_weights(q.view(), k.view(), &SdpaMask::causal(), &SdpaOptions::default()).unwrap();
    for i in 0..5 {
        for j in 0..5 {
            assert_eq!(w[[0, 0, i, j]] > 0.0, j <= i, "({i}, {j})");
        }
    }
    assert_eq!(w[[0, 0, 0, 0]], 1.0);
}

#[test]
fn explicit_scale_and_strided_inputs() {
    let [q, k, v] = qkv(2, 3, 9, 11, 6, 7, 5);
    let mask = SdpaMask::causal();
    let options = SdpaOptions { scale: Some(0.9) };
    let (out, _) = sdpa_with_options(q.view(), k.view(), v.view(), &mask, &options).unwrap();
    let (ref_out, _) = sdpa_reference(q.view(), k.view(), v.view(), &mask, Some(0.9)).unwrap();
    assert!(compare(&out, &ref_out).unwrap().within(TOL));
    // The same K stored as (B, H, d, Nk) and viewed back with swapped axes: not row-major.
    let k_t = k.view().permuted_axes([0, 1, 3, 2]).as_standard_layout().into_owned();
    let k_strided = k_t.view().permuted_axes([0, 1, 3, 2]);
    assert!(!k_strided.is_standard_layout());
    let strided = sdpa(q.view(), k_strided, v.view(), &mask).unwrap();
    let plain = sdpa(q.view(), k.view(), v.view(), &mask).unwrap();
    assert!(compare(&strided, &plain).unwrap().within(1e-6));
    // A unit-stride but offset slice works too.
    let wide = randn((2, 3, 9, 12), 77);
    let q_sliced = wide.slice(s![.., .., .., 3..9]);
    let got = sdpa(q_sliced, k.view(), v.view(), &mask).unwrap();
    let (want, _) = sdpa_reference(q_sliced, k.view(), v.view(), &mask, None).unwrap();
    assert!(compare(&got, &want).unwrap().within(TOL));
}

#[test]
fn naive_softmax_overflows_and_stable_does_not() {
    let logits = [10.0f32, 90.0, 89.0, -5.0];
    let naive = softmax_naive(&logits);
    assert!(naive.iter().any(|p| p.is_nan()), "e^90 overflows f32: {naive:?}");
    let stable = softmax_stable(&logits);
    assert!(stable.iter().all(|p| p.is_finite()));
    assert!((stable[1] - 1.0 / (1.0 + (-1.0f32).exp())).abs() < 1e-6);
    // Far below zero every exponential underflows: 0/0 for the naive formula.
    let tiny = [-200.0f32, -201.0];
    assert!(softmax_naive(&tiny).iter().all(|p| p.is_nan()));
    assert!((softmax_stable(&tiny)[0] - 0.7310586).abs() < 1e-6);
}

#[test]
fn mismatched_shapes_name_both_shapes() {
    let [q, k, v] = qkv(1, 2, 3, 4, 5, 6, 1);
    let k_bad = randn((1, 2, 4, 7), 2);
    let e = sdpa(q.view(), k_bad.view(), v.view(), &SdpaMask::none()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }));
    let text = e.to_string();
    assert!(text.contains("[1, 2, 3, 5]") && text.contains("[1, 2, 4, 7]"), "{text}");

    let v_bad = randn((1, 2, 5, 6), 3);
    let text = sdpa(q.view(), k.view(), v_bad.view(), &SdpaMask::none()).unwrap_err().to_string();
    assert!(text.contains("[1, 2, 4, 5]") && text.contains("[1, 2, 5, 6]"), "{text}");

    let q_bad = randn((2, 2, 3, 5), 4);
    let text = sdpa(q_bad.view(), k.view(), v.view(), &SdpaMask::none()).unwrap_err().to_string();
    assert!(text.contains("[2, 2, 3, 5]") && text.contains("[1, 2, 4, 5]"), "{text}");
}

#[test]
fn key_padding_of_the_wrong_shape_is_an_error() {
    let [q, k, v] = qkv(2, 1, 3, 4, 5, 6, 1);
    for bad in [padding(&[4], 4), padding(&[4, 4], 5)] {
        let text = sdpa(q.view(), k.view(), v.view(), &SdpaMask::none().with_key_padding(bad.clone()))
            .unwrap_err()
            .to_string();
        assert!(text.contains("key_padding") && text.contains(&format!("{:?}", bad.shape())), "{text}");
        assert!(text.contains("[2, 4]"), "{text}");
    }
}

#[test]
fn empty_dimensions_and_bad_scales_are_errors() {
    let [q, k, v] = qkv(1, 1, 3, 4, 5, 6, 1);
    let empty = q.slice(s![.., .., 0..0, ..]);
    let text = sdpa(empty, k.view(), v.view(), &SdpaMask::none()).unwrap_err().to_string();
    assert!(text.contains("Q") && text.contains("[1, 1, 0, 5]"), "{text}");
    let nan_scale = SdpaOptions { scale: Some(f32::NAN) };
    assert!(sdpa_with_options(q.view(), k.view(), v.view(), &SdpaMask::none(), &nan_scale).is_err());
}

#[test]
fn one_key_one_query_is_that_value() {
    // Softmax over a single visible key is 1, whatever the score.
    let [q, k, v] = qkv(1, 1, 1, 1, 3, 2, 8);
    let out = sdpa(q.view(), k.view(), v.view(), &SdpaMask::none()).unwrap();
    assert_eq!(out.index_axis(Axis(2), 0), v.index_axis(Axis(2), 0));
}
