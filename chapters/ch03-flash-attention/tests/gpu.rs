//! The FlashAttention kernel vs the f64 reference of chapter 2, in f32 with FFMA only (no
//! tensor cores, no TF32), so the bound is 1e-5 relative error on both the output and the
//! log-sum-exp. Skipped (with a printed reason) without a GPU; an error under
//! ATTN_REQUIRE_GPU=1. Under compute-sanitizer (ATTN_SANITIZER=1) the longest sequences shrink.

use ch03_flash_attention::SdpaMask;
use ch03_flash_attention::attn_support::cudarc::driver::CudaSlice;
use ch03_flash_attention::attn_support::data::randn;
use ch03_flash_attention::attn_support::gpu::{Gpu, longest_test_len, under_sanitizer};
use ch03_flash_attention::attn_support::ndarray::{Array1, Array4, s};
use ch03_flash_attention::attn_support::{Result, compare};
use ch03_flash_attention::ch02::gpu::SdpaBuffers;
use ch03_flash_attention::ch02::reference::sdpa_reference;
use ch03_flash_attention::ch02::{SdpaDims, SdpaOptions};
use ch03_flash_attention::gpu::{FlashKernel, MAX_BATCH_HEADS, SUPPORTED_HEAD_DIMS, flash_attention_gpu};

const TOL: f64 = 1e-5;

fn qkv(b: usize, h: usize, nq: usize, nk: usize, d: usize, seed: u64) -> [Array4<f32>; 3] {
    [randn((b, h, nq, d), seed), randn((b, h, nk, d), seed + 1), randn((b, h, nk, d), seed + 2)]
}

/// Run the kernel and the f64 reference on one case; output and lse both within TOL.
fn check(
    gpu: &Gpu,
    (b, h, nq, nk, d): (usize, usize, usize, usize, usize),
    mask: &SdpaMask,
    seed: u64,
) -> Result<()> {
    check_with(gpu, (b, h, nq, nk, d), mask, &SdpaOptions::default(), seed)
}

fn check_with(
    gpu: &Gpu,
    (b, h, nq, nk, d): (usize, usize, usize, usize, usize),
    mask: &SdpaMask,
    options: &SdpaOptions,
    seed: u64,
) -> Result<()> {
    let [q, k, v] = qkv(b, h, nq, nk, d, seed);
    let (out, lse) = flash_attention_gpu(gpu, q.view(), k.view(), v.view(), mask, options)?;
    let scale = options.scale.map(f64::from);
    let (ref_out, ref_lse) = sdpa_reference(q.view(), k.view(), v.view(), mask, scale)?;
    let (c_out, c_lse) = (compare(&out, &ref_out)?, compare(&lse, &ref_lse)?);
    assert!(
        c_out.within(TOL) && c_lse.within(TOL),
        "B={b} H={h} Nq={nq} Nk={nk} d={d} causal={} padding={}: out {c_out}; lse {c_lse}",
        mask.causal,
        mask.key_padding.is_some()
    );
    Ok(())
}

/// The four masks on (batch 2, n keys): none, causal, padding (entry 1 keeps about 3/4 of
/// the keys), causal + padding.
fn masks(n: usize) -> [SdpaMask; 4] {
    let pad = || SdpaMask::padding_from_lengths(&[n, n * 3 / 4 + 1], n);
    [
        SdpaMask::none(),
        SdpaMask::causal(),
        SdpaMask::none().with_key_padding(pad()),
        SdpaMask::causal().with_key_padding(pad()),
    ]
}

/// N = 1025 (one key past a tile boundary); 257 under the sanitizer.
fn medium_len() -> usize {
    if under_sanitizer() { 257 } else { 1025 }
}

#[test]
fn short_sequences_every_head_dim_and_mask() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch03 GPU test")? else { return Ok(()) };
    // N = 1: one key; N = 97: one partial tile of queries and of keys.
    for (i, d) in SUPPORTED_HEAD_DIMS.into_iter().enumerate() {
        for n in [1, 97] {
            for (j, mask) in masks(n).iter().enumerate() {
                check(&gpu, (2, 3, n, n, d), mask, (100 * i + 10 * j + n) as u64)?;
            }
        }
    }
    Ok(())
}

#[test]
fn medium_sequences_every_head_dim_and_mask() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch03 GPU test")? else { return Ok(()) };
    let n = medium_len();
    for (i, d) in SUPPORTED_HEAD_DIMS.into_iter().enumerate() {
        for (j, mask) in masks(n).iter().enumerate() {
            check(&gpu, (2, 1, n, n, d), mask, (200 + 10 * i + j) as u64)?;
        }
    }
    Ok(())
}

#[test]
fn long_sequences_up_to_4096() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch03 GPU test")? else { return Ok(()) };
    // Every head dim at N = 4096 with one mask each, and causal + padding at d = 64 (the f64
    // reference costs seconds per case at this length).
    let n = longest_test_len(4096);
    let [none, causal, padding, both] = masks(n);
    check(&gpu, (1, 1, n, n, 32), &none, 300)?;
    check(&gpu, (1, 2, n, n, 64), &causal, 301)?;
    check(&gpu, (2, 1, n, n, 128), &padding, 302)?;
    check(&gpu, (2, 1, n, n, 64), &both, 303)?;
    Ok(())
}

#[test]
fn fewer_or_more_queries_than_keys() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch03 GPU test")? else { return Ok(()) };
    // (few, many): several query and key tiles each; smaller under the sanitizer.
    let (few, many) = if under_sanitizer() { (150, 260) } else { (300, 1000) };
    for (i, d) in SUPPORTED_HEAD_DIMS.into_iter().enumerate() {
        let seed = 400 + 10 * i as u64;
        // Nq < Nk (decoding with a cache): causal diagonal aligned bottom-right.
        check(&gpu, (1, 2, few, many, d), &SdpaMask::none(), seed)?;
        check(&gpu, (1, 2, few, many, d), &SdpaMask::causal(), seed + 1)?;
        check(&gpu, (2, 1, 1, 777, d), &masks(777)[3], seed + 2)?;
        // Nq > Nk, causal: the first Nq − Nk queries see no key (zeros, lse = −∞), including
        // whole query tiles of them.
        check(&gpu, (1, 2, many, few, d), &SdpaMask::causal(), seed + 3)?;
        check(&gpu, (2, 1, 200, 70, d), &masks(70)[3], seed + 4)?;
    }
    Ok(())
}

#[test]
fn fully_masked_rows_are_zeros_with_lse_minus_infinity() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch03 GPU test")? else { return Ok(()) };
    // Causal with Nq = 300 > Nk = 100: rows 0..200 see no key; batch entry 1 pads every key.
    let mask = SdpaMask::causal().with_key_padding(SdpaMask::padding_from_lengths(&[100, 0], 100));
    for d in SUPPORTED_HEAD_DIMS {
        let [q, k, v] = qkv(2, 2, 300, 100, d, 500 + d as u64);
        let (out, lse) =
            flash_attention_gpu(&gpu, q.view(), k.view(), v.view(), &mask, &SdpaOptions::default())?;
        for h in 0..2 {
            for i in 0..300 {
                let row0 = out.slice(s![0, h, i, ..]);
                assert_eq!(row0.iter().all(|&x| x == 0.0), i < 200, "d={d} b0 h{h} row {i}");
                assert_eq!(lse[[0, h, i]] == f32::NEG_INFINITY, i < 200, "d={d} b0 h{h} lse {i}");
                assert!(out.slice(s![1, h, i, ..]).iter().all(|&x| x == 0.0), "d={d} b1 h{h} row {i}");
                assert_eq!(lse[[1, h, i]], f32::NEG_INFINITY);
            }
        }
        assert!(out.iter().chain(lse.iter()).all(|x| !x.is_nan()), "d={d}: NaN in the output");
    }
    Ok(())
}

#[test]
fn every_output_element_is_written() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch03 GPU test")? else { return Ok(()) };
    // Poison the outputs with NaN before the launch: any element the kernel skips stays NaN.
    let kernel = FlashKernel::load(&gpu)?;
    for d in SUPPORTED_HEAD_DIMS {
        let (b, h, nq, nk) = (2, 3, 131, 77);
        let [q, k, v] = qkv(b, h, nq, nk, d, 600 + d as u64);
        let mask = SdpaMask::causal().with_key_padding(SdpaMask::padding_from_lengths(&[77, 40], nk));
        let mut buffers =
            SdpaBuffers::upload(&gpu, q.view(), k.view(), v.view(), &mask, &SdpaOptions::default())?;
        buffers.out = nan_buffer(&gpu, b * h * nq * d)?;
        buffers.lse = nan_buffer(&gpu, b * h * nq)?;
        kernel.launch(&gpu, &mut buffers)?;
        let (out, lse) = buffers.download(&gpu)?;
        assert!(out.iter().chain(lse.iter()).all(|x| !x.is_nan()), "d={d}: an element was not written");
        let (ref_out, ref_lse) = sdpa_reference(q.view(), k.view(), v.view(), &mask, None)?;
        assert!(compare(&out, &ref_out)?.within(TOL) && compare(&lse, &ref_lse)?.within(TOL));
    }
    Ok(())
}

fn nan_buffer(gpu: &Gpu, n: usize) -> Result<CudaSlice<f32>> {
    gpu.upload(&Array1::from_elem(n, f32::NAN))
}

#[test]
fn repeated_runs_are_bitwise_identical() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch03 GPU test")? else { return Ok(()) };
    // A race between the threads of a block would show as run-to-run differences.
    let n = medium_len();
    for (i, d) in SUPPORTED_HEAD_DIMS.into_iter().enumerate() {
        let [q, k, v] = qkv(2, 2, n, n, d, 700 + i as u64);
        let mask = &masks(n)[3];
        let first = flash_attention_gpu(&gpu, q.view(), k.view(), v.view(), mask, &SdpaOptions::default())?;
        for _ in 0..3 {
            let again =
                flash_attention_gpu(&gpu, q.view(), k.view(), v.view(), mask, &SdpaOptions::default())?;
            assert!(first.0 == again.0 && first.1 == again.1, "d={d}: results differ between runs");
        }
    }
    Ok(())
}

#[test]
fn explicit_scale_and_large_scores() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch03 GPU test")? else { return Ok(()) };
    // scale = 1 on N(0,1) data with d = 128: scores of ±40 and more, which a softmax without
    // the running max would overflow (e^89 > f32::MAX); a small scale flattens the weights.
    for (i, scale) in [1.0f32, 0.01].into_iter().enumerate() {
        let options = SdpaOptions { scale: Some(scale) };
        check_with(&gpu, (1, 2, 300, 300, 128), &SdpaMask::causal(), &options, 800 + i as u64)?;
        check_with(&gpu, (2, 1, 200, 200, 64), &masks(200)[2], &options, 810 + i as u64)?;
    }
    Ok(())
}

#[test]
fn unsupported_shapes_are_clear_errors() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch03 GPU test")? else { return Ok(()) };
    let kernel = FlashKernel::load(&gpu)?;
    let dims = |batch, heads, d, dv| SdpaDims { batch, heads, nq: 8, nk: 8, head_dim: d, v_dim: dv };
    for d in [1, 16, 48, 96, 256] {
        let e = kernel.launch_config(&dims(1, 1, d, d)).unwrap_err().to_string();
        assert!(e.contains(&format!("d = {d}")) && e.contains("[32, 64, 128]"), "{e}");
    }
    let e = kernel.launch_config(&dims(1, 1, 64, 32)).unwrap_err().to_string();
    assert!(e.contains("dv = 32"), "{e}");
    let e = kernel.launch_config(&dims(2, MAX_BATCH_HEADS, 64, 64)).unwrap_err().to_string();
    assert!(e.contains("65535") && e.contains(&(2 * MAX_BATCH_HEADS).to_string()), "{e}");
    assert!(kernel.launch_config(&dims(1, MAX_BATCH_HEADS, 64, 64)).is_ok());
    // Through the array API, before anything is copied: d = 16, and dv ≠ d.
    let [q, k, v] = qkv(1, 1, 4, 4, 16, 9);
    let e =
        flash_attention_gpu(&gpu, q.view(), k.view(), v.view(), &SdpaMask::none(), &SdpaOptions::default());
    assert!(e.unwrap_err().to_string().contains("d = 16"));
    let (q, k, v) = (randn((1, 1, 4, 32), 1), randn((1, 1, 4, 32), 2), randn((1, 1, 4, 64), 3));
    assert!(
        flash_attention_gpu(&gpu, q.view(), k.view(), v.view(), &SdpaMask::none(), &SdpaOptions::default())
            .is_err()
    );
    // Mismatched shapes name both.
    let (q, k) = (randn((1, 2, 4, 32), 1), randn((1, 3, 4, 32), 2));
    let e =
        flash_attention_gpu(&gpu, q.view(), k.view(), k.view(), &SdpaMask::none(), &SdpaOptions::default())
            .unwrap_err()
            .to_string();
    assert!(e.contains("[1, 2, 4, 32]") && e.contains("[1, 3, 4, 32]"), "{e}");
    Ok(())
}
