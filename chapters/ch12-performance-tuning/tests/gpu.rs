//! Every bf16 rung of the ladder against the f64 reference, under FlashAttention's rule: its
//! largest error may be at most twice that of the naive bf16 implementation on the same inputs
//! (see `precision`). Odd lengths (1, 97, 1025), Nq ≠ Nk, causal and not, rows that see no key.
//! The wgmma rungs (6–9) need an sm_90 device (the GPU machine's H100).
//! Skipped (with a printed reason) without a GPU; an error under ATTN_REQUIRE_GPU=1. Under
//! compute-sanitizer (ATTN_SANITIZER=1) the longest sequences shrink.

use ch12_performance_tuning::SdpaMask;
use ch12_performance_tuning::attn_support::Result;
use ch12_performance_tuning::attn_support::gpu::{Gpu, longest_test_len, under_sanitizer};
use ch12_performance_tuning::bench::{device_bf16_to_f32, device_randn_bf16, randn_bf16_reference};
use ch12_performance_tuning::ch02::SdpaOptions;
use ch12_performance_tuning::gpu::{Bf16Buffers, LadderKernels, ladder_attention_gpu};
use ch12_performance_tuning::ladder::{LADDER_HEAD_DIMS, Rung, TUNED_SHAPES, overlap_shapes, tma_shapes};
use ch12_performance_tuning::precision::{Bf16Inputs, Bf16Yardstick};
use ch12_performance_tuning::tma::bf16_tile_map;

/// The bf16 rungs at head dim d: 1–4, 6, and 5, 7, 8 and 9 at every tile shape of the autotuner.
fn bf16_rungs(d: usize) -> Vec<Rung> {
    let mut rungs: Vec<Rung> = Rung::FIXED.into_iter().filter(|r| *r != Rung::F32Flash).collect();
    rungs.extend(TUNED_SHAPES.map(Rung::Tuned));
    rungs.extend(overlap_shapes(d).iter().map(|&t| Rung::WgmmaOverlap(t)));
    rungs.extend(tma_shapes(d).iter().flat_map(|&t| [Rung::Tma(t), Rung::PingPong(t)]));
    rungs
}

/// One input, every rung: each must satisfy the 2× rule on the output and the lse.
fn check_all_rungs(
    gpu: &Gpu,
    kernels: &LadderKernels,
    (b, h, nq, nk, d): (usize, usize, usize, usize, usize),
    causal: bool,
    seed: u64,
) -> Result<()> {
    let inputs = Bf16Inputs::random(b, h, nq, nk, d, seed);
    let mask = if causal { SdpaMask::causal() } else { SdpaMask::none() };
    let yardstick = Bf16Yardstick::new(&inputs, &mask)?;
    for rung in bf16_rungs(d) {
        let (out, lse) = ladder_attention_gpu(gpu, kernels, rung, &inputs, &mask)?;
        let accuracy = yardstick.judge(&out, &lse)?;
        assert!(
            accuracy.within_rule(),
            "{}: B={b} H={h} Nq={nq} Nk={nk} d={d} causal={causal}: {accuracy}",
            rung.name()
        );
    }
    Ok(())
}

#[test]
fn every_rung_follows_the_2x_rule_on_odd_lengths() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("the chapter 12 ladder test")? else { return Ok(()) };
    let kernels = LadderKernels::new(&gpu)?;
    let long = longest_test_len(1025);
    for d in LADDER_HEAD_DIMS {
        for (i, &n) in [1usize, 97, long].iter().enumerate() {
            for causal in [false, true] {
                check_all_rungs(&gpu, &kernels, (1, 2, n, n, d), causal, 100 + i as u64)?;
            }
        }
    }
    Ok(())
}

#[test]
fn nq_and_nk_differ_and_rows_that_see_no_key_are_zero() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("the chapter 12 ladder test")? else { return Ok(()) };
    let kernels = LadderKernels::new(&gpu)?;
    // Causal with Nq > Nk: the first Nq − Nk queries see no key (zeros, lse −∞); Nq < Nk is
    // the decode-like case where each query also sees the whole prefix. Under racecheck, which
    // is slow in proportion to the blocks, one head instead of six keeps every case.
    let (b, h) = if under_sanitizer() { (1, 1) } else { (2, 3) };
    for d in LADDER_HEAD_DIMS {
        for (nq, nk) in [(200, 70), (33, 300), (130, 129)] {
            for causal in [false, true] {
                check_all_rungs(&gpu, &kernels, (b, h, nq, nk, d), causal, 7)?;
            }
        }
    }
    Ok(())
}

#[test]
fn relaunching_on_the_same_buffers_gives_the_same_answer() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("the chapter 12 ladder test")? else { return Ok(()) };
    let kernels = LadderKernels::new(&gpu)?;
    let inputs = Bf16Inputs::random(2, 2, 300, 300, 64, 9);
    let mut buffers = Bf16Buffers::upload(&gpu, &inputs, &SdpaMask::causal(), &SdpaOptions::default())?;
    kernels.launch(&gpu, Rung::LdmatrixSwizzle, &mut buffers)?;
    let first = buffers.download(&gpu)?;
    kernels.launch(&gpu, Rung::LdmatrixSwizzle, &mut buffers)?;
    assert_eq!(first, buffers.download(&gpu)?, "a kernel must not depend on what the output held");
    Ok(())
}

#[test]
fn unsupported_inputs_are_errors_before_launch() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("the chapter 12 ladder test")? else { return Ok(()) };
    let kernels = LadderKernels::new(&gpu)?;
    let inputs = Bf16Inputs::random(1, 1, 16, 16, 96, 1);
    let e = ladder_attention_gpu(&gpu, &kernels, Rung::CpAsync, &inputs, &SdpaMask::none()).unwrap_err();
    assert!(e.to_string().contains("d = 96"), "{e}");
    let inputs = Bf16Inputs::random(1, 1, 16, 16, 64, 1);
    let padded = SdpaMask::none().with_key_padding(SdpaMask::padding_from_lengths(&[8], 16));
    let e = ladder_attention_gpu(&gpu, &kernels, Rung::CpAsync, &inputs, &padded).unwrap_err();
    assert!(e.to_string().contains("key-padding"), "{e}");
    let e = ladder_attention_gpu(&gpu, &kernels, Rung::F32Flash, &inputs, &SdpaMask::none()).unwrap_err();
    assert!(e.to_string().contains("rung 0"), "{e}");
    Ok(())
}

#[test]
fn device_inputs_match_the_cpu_generator() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("the device input check")? else { return Ok(()) };
    // More values than the fill's 1024 × 256 threads, and not a multiple of them: the
    // grid-stride loop runs twice for some threads and once for others.
    let n = 300_001;
    let values = gpu.download(&device_randn_bf16(&gpu, n, 7)?, [n])?;
    let want = randn_bf16_reference(n, 7);
    let mut off_by_one_step = 0;
    for (i, (&got, &w)) in values.iter().zip(&want).enumerate() {
        let (got, w) = (got.to_f64(), w.to_f64());
        // f32 logf/cospif in the kernel against f64 here: at most one bf16 step (2⁻⁸ relative).
        assert!((got - w).abs() <= w.abs() * 2f64.powi(-7) + 1e-30, "value {i}: GPU {got}, CPU {w}");
        off_by_one_step += (got != w) as usize;
    }
    assert!(off_by_one_step < n / 100, "{off_by_one_step} of {n} values differ by a bf16 step");
    // The f32 copy for rung 0 is exact.
    let f32_values = gpu.download(&device_bf16_to_f32(&gpu, &device_randn_bf16(&gpu, n, 7)?)?, [n])?;
    assert!(f32_values.iter().zip(&values).all(|(&f, &b)| f == b.to_f32()), "bf16 → f32 must be exact");
    Ok(())
}

#[test]
fn tensor_maps_refuse_shapes_the_tma_cannot_copy() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("the tensor map check")? else { return Ok(()) };
    // (B·H, N, d) = (2, 100, 128): a valid map, then each argument wrong in turn.
    let buf = gpu.zeros::<ch12_performance_tuning::bf16>(2 * 100 * 128)?;
    let map = bf16_tile_map(&gpu.stream, &buf, 2, 100, 128, 128)?;
    assert!(map.0.iter().any(|&w| w != 0), "the driver wrote the map");
    let buf96 = gpu.zeros::<ch12_performance_tuning::bf16>(2 * 100 * 96)?;
    let cases = [
        (bf16_tile_map(&gpu.stream, &buf96, 2, 100, 96, 128), "d = 96"),
        (bf16_tile_map(&gpu.stream, &buf, 2, 100, 128, 0), "box rows 0"),
        (bf16_tile_map(&gpu.stream, &buf, 2, 100, 128, 257), "box rows 257"),
        (bf16_tile_map(&gpu.stream, &buf, 2, 101, 128, 128), "2 × 101 × 128"),
    ];
    for (result, names) in cases {
        let e = result.expect_err(names).to_string();
        assert!(e.contains(names), "the error should name {names}: {e}");
    }
    Ok(())
}
