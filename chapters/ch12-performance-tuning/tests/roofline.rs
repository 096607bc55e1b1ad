//! The roofline model, the byte counts of the book's kernels (against hand counts), and the
//! figure. CPU only.

use ch12_performance_tuning::attn_support::plot::png_bytes;
use ch12_performance_tuning::ceilings::{Ceilings, random_values};
use ch12_performance_tuning::ch02::SdpaDims;
use ch12_performance_tuning::roofline::*;

mod common;
use common::h100_like_ceilings;

fn dims(nq: usize, nk: usize, d: usize) -> SdpaDims {
    SdpaDims { batch: 1, heads: 1, nq, nk, head_dim: d, v_dim: d }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[test]
fn attainable_is_the_lower_of_the_two_roofs() {
    // Peak 100 FLOP/s, bandwidth 5 B/s: the ridge is at 20 FLOP/byte.
    assert_eq!(ridge_point(100.0, 5.0), 20.0);
    assert_eq!(attainable(10.0, 100.0, 5.0), 50.0);
    assert_eq!(attainable(20.0, 100.0, 5.0), 100.0);
    assert_eq!(attainable(1000.0, 100.0, 5.0), 100.0);
    let p = KernelPoint::new("k", "g", 1e12, 4e9, 0.01).unwrap();
    assert_eq!((p.intensity(), p.flops_per_s(), p.bytes_per_s()), (250.0, 1e14, 4e11));
    // Bound by memory at 250 FLOP/byte × 1 TB/s = 250 TFLOP/s, under a 1 PFLOP/s roof.
    assert!(close(p.fraction_of_roof(1e15, 1e12), 0.4));
}

#[test]
fn points_with_impossible_numbers_are_refused() {
    for (f, b, s) in [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0, f64::NAN), (f64::INFINITY, 1.0, 1.0)] {
        let err = KernelPoint::new("bad", "g", f, b, s).unwrap_err().to_string();
        assert!(err.contains("'bad'"), "{err}");
    }
}

#[test]
fn causal_pairs_follow_the_bottom_right_diagonal() {
    // Nq = Nk = 5: 1 + 2 + 3 + 4 + 5 keys.
    assert_eq!(visible_pairs(&dims(5, 5, 2), true), 15.0);
    // Nq = 3 < Nk = 5: rows see 3, 4, 5 keys.
    assert_eq!(visible_pairs(&dims(3, 5, 2), true), 12.0);
    // Nq = 5 > Nk = 3: rows see 0, 0, 1, 2, 3 keys.
    assert_eq!(visible_pairs(&dims(5, 3, 2), true), 6.0);
    assert_eq!(visible_pairs(&dims(5, 3, 2), false), 15.0);
    // 2·(d + dv) FLOPs per pair; unmasked it is chapter 2's count.
    assert_eq!(attention_flops(&dims(5, 5, 2), true), 120.0);
    let big = SdpaDims { batch: 2, heads: 3, nq: 64, nk: 96, head_dim: 32, v_dim: 16 };
    assert_eq!(attention_flops(&big, false), big.flops());
}

#[test]
fn flash_bytes_of_a_tiny_case_match_a_hand_count() {
    // B = H = 1, Nq = Nk = 5, d = dv = 2, Br = 2, bf16 (2 bytes), lse f32.
    // Q: 5·2·2 = 20, O: 20, lse: 5·4 = 20.
    // Non-causal: 3 query tiles each read 5 keys of K and V: 15·(2 + 2)·2 = 120.
    // Causal: tiles [0,2), [2,4), [4,5) read up to their last row's keys: 2 + 4 + 5 = 11 → 88.
    let d = dims(5, 5, 2);
    assert_eq!(flash_bytes(&d, 2, 2, false).unwrap(), 180.0);
    assert_eq!(flash_bytes(&d, 2, 2, true).unwrap(), 148.0);
    assert!(flash_bytes(&d, 0, 2, false).is_err());
    // Two heads: twice the bytes.
    let two = SdpaDims { heads: 2, ..d };
    assert_eq!(flash_bytes(&two, 2, 2, true).unwrap(), 296.0);
}

#[test]
fn the_other_kernels_of_a_tiny_case_match_hand_counts() {
    let d = dims(5, 5, 2);
    // Compulsory f32: (Nq·d + Nk·(d + dv) + Nq·dv)·4 = (10 + 20 + 10)·4 = 160.
    assert_eq!(compulsory_bytes(&d, 4), 160.0);
    assert_eq!(ch01_naive_bytes(&d), 160.0);
    // Naive chapter 1 computes every score twice: 2·25·(2·2 + 2) = 300 FLOPs.
    assert_eq!(ch01_naive_flops(&d), 300.0);
    // Three kernels: + 16·25 for S written, read, P written, read.
    assert_eq!(ch01_three_kernels_bytes(&d), 560.0);
    // Chapter 2: 4·(Nq·(d + dv + 1) + pairs·(d + dv)) = 4·(25 + 25·4) = 500; causal 4·(25 + 15·4) = 340.
    assert_eq!(ch02_sdpa_bytes(&d, false), 500.0);
    assert_eq!(ch02_sdpa_bytes(&d, true), 340.0);
    // Unfused: 160 + lse 20 + 28·25 = 880, with or without a mask.
    assert_eq!(ch04_unfused_bytes(&d), 880.0);
    // Chapter 3 in f32 with its own tile rows (128 for d = 64: one tile here).
    let d64 = dims(5, 5, 64);
    let one_tile = (5.0 * 64.0 + 5.0 * 128.0 + 5.0 * 64.0) * 4.0 + 20.0;
    assert_eq!(ch03_flash_bytes(&d64, false).unwrap(), one_tile);
    assert_eq!(ch03_block_rows(128).unwrap(), 64);
    assert!(ch03_block_rows(96).is_err());
}

#[test]
fn intensities_of_known_cases() {
    let n = 4096;
    let d = dims(n, n, 64);
    let flops = attention_flops(&d, false);
    assert_eq!(flops, 4.0 * (n * n) as f64 * 64.0);
    // Chapter 1's three kernels: 268 MB of score traffic (its header) → about 15.75 FLOP/byte.
    let three = ch01_three_kernels_bytes(&d);
    assert_eq!(three, 4.0 * 4.0 * (n * 64) as f64 + 16.0 * (n * n) as f64);
    assert!(close(flops / three, 4_294_967_296.0 / 272_629_760.0));
    // Chapter 2 reads K and V once per query row: just under 0.5 FLOP/byte.
    let i2 = flops / ch02_sdpa_bytes(&d, false);
    assert!(i2 < 0.5 && i2 > 0.49, "{i2}");
    // Flash: FLOPs / (K,V bytes) = 4·N²·d / (2·(N/Br)·N·d·e) = 2·Br/e, so about Br for bf16.
    let flash = flash_bytes(&d, 128, 2, false).unwrap();
    assert_eq!(flash, 524_288.0 + 33_554_432.0 + 524_288.0 + 16_384.0);
    let i_flash = flops / flash;
    assert!(i_flash < 128.0 && i_flash > 120.0, "{i_flash}");
    // Causal: N(N+1)/2 pairs; query tile t (of T = 32) reads (t+1)·Br keys, Br·T(T+1)/2 in all
    // (the tiles on the diagonal are read whole), so the intensity drops by about Br/N.
    assert_eq!(attention_flops(&d, true), 128.0 * 4096.0 * 4097.0);
    let causal_bytes = flash_bytes(&d, 128, 2, true).unwrap();
    assert_eq!(causal_bytes, 128.0 * 528.0 * 128.0 * 2.0 + 524_288.0 * 2.0 + 16_384.0);
    let i_causal = attention_flops(&d, true) / causal_bytes;
    assert!(i_causal < i_flash && i_causal > 0.9 * i_flash, "{i_causal} vs {i_flash}");
}

#[test]
fn ceilings_serialise_and_give_ridge_points() {
    let c = h100_like_ceilings();
    let json = serde_json::to_string(&c).unwrap();
    let back: Ceilings = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    assert!(close(c.ridge_point(c.bf16_gemm_flops_per_s), 700.0 / 3.0));
}

#[test]
fn the_figure_renders_and_covers_every_point() {
    let d = dims(4096, 4096, 64);
    let flops = attention_flops(&d, false);
    let points = vec![
        KernelPoint::new("ch01 three kernels", "f32", flops, ch01_three_kernels_bytes(&d), 0.05).unwrap(),
        KernelPoint::new("ch03 flash", "f32", flops, ch03_flash_bytes(&d, false).unwrap(), 2e-4).unwrap(),
        KernelPoint::new("rung 1", "bf16 ladder", flops, flash_bytes(&d, 128, 2, false).unwrap(), 2e-5)
            .unwrap(),
    ];
    let fig = RooflineFigure::from_ceilings("roofline", &h100_like_ceilings(), points.clone());
    assert_eq!(fig.groups(), ["f32", "bf16 ladder"]);
    let ((x0, x1), (y0, y1)) = fig.ranges().unwrap();
    for p in &points {
        assert!(x0 < p.intensity() && p.intensity() < x1, "{}", p.label);
        assert!(y0 < p.flops_per_s() / 1e12 && p.flops_per_s() / 1e12 < y1, "{}", p.label);
    }
    let png = png_bytes(&fig).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // Roofs alone (no kernels yet) draw too; a broken bandwidth is an error, not a picture.
    assert!(png_bytes(&RooflineFigure { points: Vec::new(), ..fig.clone() }).is_ok());
    let broken = RooflineFigure { bandwidth_bytes_per_s: f64::NAN, ..fig };
    assert!(png_bytes(&broken).unwrap_err().to_string().contains("bandwidth"));
}

#[test]
fn random_gemm_inputs_are_uniform_and_reproducible() {
    let v: Vec<f32> = random_values(10_000, 7);
    assert_eq!(v, random_values::<f32>(10_000, 7));
    assert_ne!(v, random_values::<f32>(10_000, 8));
    assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
    // Uniform on [−1, 1): mean 0, variance 1/3 (standard error of the mean ≈ 0.006).
    assert!(mean.abs() < 0.03 && (var - 1.0 / 3.0).abs() < 0.02, "{mean} {var}");
}
