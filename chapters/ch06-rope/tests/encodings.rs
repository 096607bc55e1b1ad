//! The encodings before RoPE: sinusoidal, ALiBi's slopes and bias, T5's buckets.

use ch06_rope::attn_support::Error;
use ch06_rope::encodings::{alibi_bias, alibi_slopes, sinusoidal_table, t5_relative_position_bucket};
use proptest::prelude::*;

#[test]
fn alibi_slopes_for_eight_heads_are_two_to_the_minus_one_to_eight() {
    let slopes = alibi_slopes(8).unwrap();
    let expected: Vec<f64> = (1..=8).map(|k| 2f64.powi(-k)).collect();
    assert_eq!(slopes, expected, "powers of two are exact in f64");
    // 16 heads: 2^(−1/2), 2^(−1), …, 2^(−8).
    let sixteen = alibi_slopes(16).unwrap();
    for (i, s) in sixteen.iter().enumerate() {
        assert!((s - 2f64.powf(-0.5 * (i + 1) as f64)).abs() < 1e-15, "head {i}: {s}");
    }
}

#[test]
fn alibi_slopes_for_head_counts_that_are_not_powers_of_two() {
    // 12 heads: the 8 slopes of 8 heads, then the slopes of 16 heads at indices 0, 2, 4, 6:
    // 2^(−0.5), 2^(−1.5), 2^(−2.5), 2^(−3.5) (the reference code's get_slopes(16)[0::2][:4]).
    let twelve = alibi_slopes(12).unwrap();
    let mut expected: Vec<f64> = (1..=8).map(|k| 2f64.powi(-k)).collect();
    expected.extend([0.5, 1.5, 2.5, 3.5].map(|e| 2f64.powf(-e)));
    assert_eq!(twelve.len(), 12);
    for (i, (s, e)) in twelve.iter().zip(&expected).enumerate() {
        assert!((s - e).abs() < 1e-15, "head {i}: {s} vs {e}");
    }
    // 1 head: 2^(−8). 3 heads: the 2-head slopes 2^−4, 2^−8, then the first even-index slope
    // of 4 heads (2^−2, 2^−4, 2^−6, 2^−8), 2^−2.
    assert_eq!(alibi_slopes(1).unwrap(), vec![2f64.powi(-8)]);
    assert_eq!(alibi_slopes(3).unwrap(), vec![2f64.powi(-4), 2f64.powi(-8), 2f64.powi(-2)]);
    // Every count: n distinct slopes in (0, 1), the first c = 2^⌊log₂n⌋ decreasing.
    for n in 1..=96 {
        let s = alibi_slopes(n).unwrap();
        assert_eq!(s.len(), n);
        assert!(s.iter().all(|&x| x > 0.0 && x < 1.0), "n {n}: {s:?}");
        let c = 1usize << n.ilog2();
        assert!(s[..c].windows(2).all(|w| w[1] < w[0]), "n {n}");
        let mut sorted = s.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        assert_eq!(sorted.len(), n, "n {n}: repeated slope");
    }
    assert!(matches!(alibi_slopes(0), Err(Error::InvalidArgument(m)) if m.contains("n_heads 0")));
}

#[test]
fn alibi_bias_is_the_reference_code_s_up_to_a_constant_per_row() {
    // The reference code adds m·j to every row; ours adds −m·(i_pos − j) = m·j − m·i_pos.
    let (heads, nq, nk) = (5, 3, 7);
    let bias = alibi_bias(heads, nq, nk).unwrap();
    let slopes = alibi_slopes(heads).unwrap();
    for h in 0..heads {
        for i in 0..nq {
            let i_pos = i + nk - nq;
            assert_eq!(bias[[h, i, i_pos]], 0.0, "a query's own key is not penalised");
            for j in 0..nk {
                let reference_form = slopes[h] * j as f64;
                let shifted = bias[[h, i, j]] as f64 + slopes[h] * i_pos as f64;
                assert!((shifted - reference_form).abs() < 1e-5, "h {h} i {i} j {j}");
            }
        }
    }
    assert!(alibi_bias(2, 4, 3).is_err());
}

#[test]
fn t5_buckets_bidirectional_32_and_128() {
    let b = |n: i64| t5_relative_position_bucket(n, true, 32, 128).unwrap();
    // Offsets −7 … 7 are exact: keys before the query in 0..8, keys after in 16 + (0..8).
    for n in 0..8 {
        assert_eq!(b(-n), n as usize);
        assert_eq!(b(n), if n == 0 { 0 } else { 16 + n as usize });
    }
    // Away from ties the f32 steps agree with the formula in f64, 8 + ⌊ln(n/8)/ln 16 · 8⌋:
    // 12 → 9, 20 → 10, 40 → 12, 100 → 15, and everything ≥ 128 shares the last bucket.
    // At the ties 16, 32, 64 (exactly 2, 4, 6 past max_exact) the f32 steps land on 10, 12, 14.
    for (n, bucket) in [
        (8, 8),
        (12, 9),
        (16, 10),
        (20, 10),
        (32, 12),
        (40, 12),
        (64, 14),
        (100, 15),
        (128, 15),
        (10_000, 15),
    ] {
        assert_eq!(b(-n), bucket, "offset −{n}");
        assert_eq!(b(n), 16 + bucket, "offset +{n}");
    }
}

#[test]
fn t5_buckets_causal_32_and_128() {
    let b = |n: i64| t5_relative_position_bucket(n, false, 32, 128).unwrap();
    // Future keys (positive offsets) all go to bucket 0, like offset 0; the past uses 32 buckets.
    assert_eq!(b(5), 0);
    assert_eq!(b(0), 0);
    for n in 1..16 {
        assert_eq!(b(-n), n as usize);
    }
    // 16 + ⌊ln(n/16)/ln 8 · 16⌋: 20 → 17, 50 → 24, 127 → 31, and 128 onward → 31.
    for (n, bucket) in [(16, 16), (20, 17), (50, 24), (127, 31), (128, 31), (5_000, 31)] {
        assert_eq!(b(-n), bucket, "offset −{n}");
    }
    let e = t5_relative_position_bucket(-3, true, 2, 128).unwrap_err().to_string();
    assert!(e.contains("num_buckets 2") && e.contains("max_distance 128"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn sinusoidal_shift_is_a_rotation_independent_of_the_position(p in 0usize..500, k in 0usize..500, half_d in 1usize..=33) {
        // (sin, cos)(p + k)ω = R(kω)·(sin, cos)(pω): the shift by k is linear and the same at every p.
        let d = 2 * half_d;
        let table = sinusoidal_table(p + k + 1, d).unwrap();
        for i in 0..half_d {
            let omega = 10_000f64.powf(-((2 * i) as f64) / d as f64);
            let (s, c) = (table[[p, 2 * i]] as f64, table[[p, 2 * i + 1]] as f64);
            let (ks, kc) = (k as f64 * omega).sin_cos();
            let (shifted_s, shifted_c) = (s * kc + c * ks, c * kc - s * ks);
            // Two f32 roundings of entries ≤ 1 (2⁻²⁴ each) carried through a rotation: ≤ 4·2⁻²⁴.
            let tol = 4.0 * f32::EPSILON as f64 / 2.0;
            prop_assert!((table[[p + k, 2 * i]] as f64 - shifted_s).abs() <= tol);
            prop_assert!((table[[p + k, 2 * i + 1]] as f64 - shifted_c).abs() <= tol);
        }
    }
}

#[test]
fn sinusoidal_position_zero_and_bad_dims() {
    let t = sinusoidal_table(3, 6).unwrap();
    assert_eq!(t.row(0).to_vec(), vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    assert_eq!(t[[1, 0]], 1f64.sin() as f32, "pair 0 has ω = 1");
    let e = sinusoidal_table(3, 7).unwrap_err().to_string();
    assert!(e.contains("d 7"), "{e}");
}

#[test]
fn t5_buckets_match_the_f64_formula_away_from_ties_and_never_decrease() {
    // The f32 logarithm can only move a bucket where the f64 value is within rounding of an
    // integer (below 128 only the bidirectional offsets 16, 32, 64, exactly 2, 4, 6 past
    // max_exact); everywhere else the bucket is the formula's. Every offset up to 2000.
    for bidirectional in [true, false] {
        let (half, max_distance) = (if bidirectional { 16 } else { 32 }, 128.0f64);
        let max_exact = half / 2;
        let mut previous = 0;
        for n in 0i64..2000 {
            let bucket = t5_relative_position_bucket(-n, bidirectional, 32, 128).unwrap();
            if n >= max_exact as i64 {
                let exact = (n as f64 / max_exact as f64).ln() / (max_distance / max_exact as f64).ln()
                    * (half - max_exact) as f64;
                if (exact - exact.round()).abs() > 1e-4 {
                    assert_eq!(bucket, (max_exact + exact as usize).min(half - 1), "offset −{n}");
                }
            }
            assert!(bucket >= previous && bucket < half, "offset −{n}: bucket {bucket} after {previous}");
            previous = bucket;
        }
    }
}
