//! Scale + mask + softmax: fused = unfused (bit for bit) = the f64 reference, zeros for fully
//! masked rows, agreement with chapter 2's masks, and bad input.

use ch02_scaled_dot_product::attn_support::data::randn;
use ch02_scaled_dot_product::attn_support::ndarray::{Array4, s};
use ch02_scaled_dot_product::attn_support::{Error, compare};
use ch02_scaled_dot_product::{SdpaOptions, attention_weights};
use ch05_fused_computation::reference::scale_mask_softmax_reference;
use ch05_fused_computation::softmax_fusion::{ScoreShape, add_mask_pass};
use ch05_fused_computation::{MaskSpec, scale_mask_softmax_fused, scale_mask_softmax_unfused};
use proptest::prelude::*;

/// f32 against f64: each probability is exp(s·scale − lse) with |s·scale| of a few units, so
/// the f32 result carries a few ulp (1.2e-7) of relative error per element from the exp, the
/// sum and the division; 1e-5 on the relative norm leaves a wide margin, well below a real
/// mistake (a wrong key in or out of a row moves that row by far more).
const TOL: f64 = 1e-5;

/// Scores of a plausible size: standard normal, scaled by √d as Q·Kᵀ with d = 64 would be.
fn scores(shape: (usize, usize, usize, usize), seed: u64) -> Array4<f32> {
    randn(shape, seed).mapv(|x| 8.0 * x)
}

fn shape_and_mask() -> impl Strategy<Value = ((usize, usize, usize, usize), MaskSpec, u64)> {
    (1usize..=3, 1usize..=3, 1usize..=40, 1usize..=40).prop_flat_map(|(b, h, nq, nk)| {
        let lengths = prop::collection::vec(0..=nk, b);
        // Windows from 1 (the query alone) to beyond Nk (the plain causal mask).
        let window = prop::option::of(1..=nk + 3);
        (Just((b, h, nq, nk)), any::<bool>(), prop::option::of(lengths), window, any::<u64>()).prop_map(
            |(dims, causal, key_lengths, window, seed)| {
                // A window needs the causal rule; with causal off, drop it.
                let window = window.filter(|_| causal);
                (dims, MaskSpec { causal, key_lengths, window }, seed % 1_000_000)
            },
        )
    })
}

/// Check fused = unfused exactly, both = the reference, masked entries zero, rows summing to
/// one or (fully masked) all zero.
fn check_all(dims: (usize, usize, usize, usize), mask: &MaskSpec, seed: u64) -> Result<(), TestCaseError> {
    let s = scores(dims, seed);
    let scale = 0.125; // 1/√64
    let fused = scale_mask_softmax_fused(s.view(), scale, mask).unwrap();
    let unfused = scale_mask_softmax_unfused(s.view(), scale, mask).unwrap();
    let reference = scale_mask_softmax_reference(s.view(), scale as f64, mask).unwrap();
    prop_assert!(fused == unfused, "fused and unfused differ: {}", compare(&fused, &unfused).unwrap());
    let c = compare(&fused, &reference).unwrap();
    prop_assert!(c.within(TOL), "fused vs f64 reference: {c}");
    prop_assert!(fused.iter().all(|p| p.is_finite()), "a NaN or ∞ in the probabilities");
    let (b, h, nq, nk) = dims;
    for bb in 0..b {
        for hh in 0..h {
            for i in 0..nq {
                let keys = mask.visible_keys(bb, i, nq, nk);
                let row = fused.slice(s![bb, hh, i, ..]);
                let outside = row.iter().enumerate().filter(|(j, _)| !keys.contains(j));
                prop_assert!(outside.clone().all(|(_, &p)| p == 0.0), "a masked key has weight, row {i}");
                let sum: f32 = row.sum();
                if keys.is_empty() {
                    prop_assert_eq!(sum, 0.0);
                } else {
                    prop_assert!((sum - 1.0).abs() < 1e-5, "row {} sums to {}", i, sum);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn fused_equals_unfused_equals_the_reference((dims, mask, seed) in shape_and_mask()) {
        check_all(dims, &mask, seed)?;
    }

    /// Without a window the mask is chapter 2's SdpaMask, key by key.
    #[test]
    fn masks_agree_with_chapter_2((dims, mask, _seed) in shape_and_mask()) {
        let (b, _, nq, nk) = dims;
        let mask = MaskSpec { window: None, ..mask };
        let sdpa_mask = mask.to_sdpa_mask(nk).unwrap();
        for bb in 0..b {
            for i in 0..nq {
                let keys = mask.visible_keys(bb, i, nq, nk);
                for j in 0..nk {
                    prop_assert_eq!(keys.contains(&j), sdpa_mask.is_visible(bb, i, j, nq, nk));
                }
            }
        }
    }
}

/// Scores Q Kᵀ for every (batch, head), (B, H, Nq, Nk).
fn q_kt(q: &Array4<f32>, k: &Array4<f32>) -> Array4<f32> {
    let (b, h, nq, _) = q.dim();
    let nk = k.dim().2;
    let mut scores = Array4::<f32>::zeros((b, h, nq, nk));
    for bb in 0..b {
        for hh in 0..h {
            let prod = q.slice(s![bb, hh, .., ..]).dot(&k.slice(s![bb, hh, .., ..]).t());
            scores.slice_mut(s![bb, hh, .., ..]).assign(&prod);
        }
    }
    scores
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Without a window, the fused pass on Q Kᵀ gives chapter 2's attention weights (computed
    /// there with its own log2-domain softmax) to f32 rounding.
    #[test]
    fn fused_gives_chapter_2_attention_weights(((b, h, nq, nk), mask, seed) in shape_and_mask(), d in 1usize..=16) {
        let mask = MaskSpec { window: None, ..mask };
        let (q, k): (Array4<f32>, Array4<f32>) = (randn((b, h, nq, d), seed), randn((b, h, nk, d), seed + 1));
        let scale = 1.0 / (d as f32).sqrt();
        let fused = scale_mask_softmax_fused(q_kt(&q, &k).view(), scale, &mask).unwrap();
        let sdpa_mask = mask.to_sdpa_mask(nk).unwrap();
        let weights = attention_weights(q.view(), k.view(), &sdpa_mask, &SdpaOptions::default()).unwrap();
        let c = compare(&fused, &weights).unwrap();
        prop_assert!(c.within(TOL), "fused vs chapter 2 attention_weights: {c}");
    }
}

#[test]
fn edge_cases() {
    // Length 1 everywhere; odd lengths; a window of 1 (each query sees only itself, weight 1);
    // a window wider than Nk; a batch entry of length 0 (all its rows fully masked).
    let cases = [
        ((1, 1, 1, 1), MaskSpec::causal()),
        ((1, 2, 7, 7), MaskSpec::sliding_window(1)),
        ((2, 1, 5, 9), MaskSpec::sliding_window(50).with_key_lengths(vec![9, 3])),
        ((3, 2, 6, 5), MaskSpec::none().with_key_lengths(vec![0, 5, 1])),
        ((1, 1, 9, 4), MaskSpec::sliding_window(2)), // Nq > Nk: early queries see nothing
    ];
    for (seed, (dims, mask)) in cases.into_iter().enumerate() {
        check_all(dims, &mask, seed as u64).unwrap();
    }
    let s = scores((1, 2, 7, 7), 3);
    let p = scale_mask_softmax_fused(s.view(), 0.125, &MaskSpec::sliding_window(1)).unwrap();
    for i in 0..7 {
        assert_eq!(p[[0, 1, i, i]], 1.0);
    }
    // A window wider than Nk is the causal mask.
    let wide = scale_mask_softmax_fused(s.view(), 0.125, &MaskSpec::sliding_window(8)).unwrap();
    assert_eq!(wide, scale_mask_softmax_fused(s.view(), 0.125, &MaskSpec::causal()).unwrap());
    // Batch entry 0 of length 0: zeros, never NaN, in both versions.
    let s = scores((2, 1, 3, 4), 4);
    let mask = MaskSpec::causal().with_key_lengths(vec![0, 4]);
    for p in [
        scale_mask_softmax_fused(s.view(), 0.125, &mask).unwrap(),
        scale_mask_softmax_unfused(s.view(), 0.125, &mask).unwrap(),
    ] {
        assert!(p.slice(s![0, .., .., ..]).iter().all(|&x| x == 0.0));
        assert!(p.iter().all(|x| !x.is_nan()));
    }
}

#[test]
fn the_mask_tensor_marks_the_same_keys() {
    let shape = ScoreShape { batch: 2, heads: 3, nq: 4, nk: 6 };
    let mask = MaskSpec::sliding_window(3).with_key_lengths(vec![5, 2]);
    let m = mask.mask_tensor(shape).unwrap();
    assert_eq!(m.shape(), [2, 1, 4, 6]);
    // Query 3 of batch entry 0 sits at position 5, sees keys 3, 4 (5 is padding).
    let row: Vec<f32> = m.slice(s![0, 0, 3, ..]).to_vec();
    let inf = f32::NEG_INFINITY;
    assert_eq!(row, [inf, inf, inf, 0.0, 0.0, inf]);
    // Batch entry 1: query 0 at position 2 sees keys 0, 1.
    assert_eq!(m.slice(s![1, 0, 0, ..]).to_vec(), [0.0, 0.0, inf, inf, inf, inf]);
}

#[test]
fn bad_input_is_named() {
    let s = scores((2, 1, 3, 4), 5);
    let err = |mask: MaskSpec| scale_mask_softmax_fused(s.view(), 0.125, &mask).unwrap_err().to_string();
    let e = err(MaskSpec::none().with_key_lengths(vec![4, 5]));
    assert!(e.contains("key_lengths[1] = 5") && e.contains("4 keys"), "{e}");
    let e = err(MaskSpec::none().with_key_lengths(vec![4]));
    assert!(e.contains("key_lengths") && e.contains("[1]") && e.contains("[2]"), "{e}");
    assert!(err(MaskSpec::sliding_window(0)).contains("window = 0"));
    let e = err(MaskSpec { window: Some(3), ..MaskSpec::none() });
    assert!(e.contains("window = 3") && e.contains("causal"), "{e}");
    let e = scale_mask_softmax_unfused(s.view(), f32::NAN, &MaskSpec::none()).unwrap_err().to_string();
    assert!(e.contains("scale = NaN"), "{e}");
    let empty = Array4::<f32>::zeros((1, 1, 0, 4));
    let e = scale_mask_softmax_fused(empty.view(), 1.0, &MaskSpec::none()).unwrap_err().to_string();
    assert!(e.contains("[1, 1, 0, 4]"), "{e}");
    let wrong = Array4::<f32>::zeros((2, 1, 3, 5));
    match add_mask_pass(s.view(), wrong.view()) {
        Err(Error::ShapeMismatch { left, right, .. }) => {
            assert_eq!((left, right), (vec![2, 1, 3, 5], vec![2, 1, 3, 4]))
        }
        other => panic!("expected a shape mismatch, got {other:?}"),
    }
}
