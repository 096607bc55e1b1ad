//! The GPU scale + mask + softmax (kernels/ch05_softmax_fusion.cu) against the CPU version:
//! fused (warp per row, block per row, auto) and the unfused three-kernel chain, in f32 and bf16,
//! for row lengths 1 to 4097 (multiples of the 128-bit vector and not), every mask kind, fully
//! masked rows (exact zeros), a misaligned buffer (scalar access) and the host-side checks; and
//! the 1024-thread block and the prefetching block experiments on rows of 8200 and 16384 keys,
//! and the two-pass block on rows of 1032 to 40000 keys.
//! Skips (printing why) without a GPU; fails under ATTN_REQUIRE_GPU=1.

use ch05_fused_computation::attn_support::Result;
use ch05_fused_computation::attn_support::data::randn;
use ch05_fused_computation::attn_support::error::DriverContext;
use ch05_fused_computation::attn_support::gpu::{Gpu, longest_test_len, under_sanitizer};
use ch05_fused_computation::attn_support::ndarray::{Array4, ArrayView4};
use ch05_fused_computation::gpu::softmax::{
    Access, DeviceMask, RowLaunch, SOFTMAX_FUSION_SOURCE, ScoreElement, WARP_MAX_KEYS, launch_fused,
    plan_fused, prefetch_grid, prefetch_resident_blocks, prefetch_shared_bytes, scale_mask_softmax_gpu,
    scale_mask_softmax_unfused_gpu,
};
use ch05_fused_computation::{MaskSpec, ScoreShape, scale_mask_softmax_fused};
use half::bf16;

/// f32, per element, relative to the CPU value. Both sides take exp to within about 2 ulp and
/// sum up to 4097 terms in different orders (the CPU one after another, the GPU lane by lane and
/// then in a butterfly), each sum off by about √Nk ulp ≈ 64 · 6e-8 ≈ 4e-6 of itself; 3e-5 leaves
/// a margin of several times that. A key wrongly in or out of a row changes every weight of the
/// row by about 1/Nk ≥ 2.4e-4 and is caught here, or by the exact-zero check of masked keys.
const F32_RTOL: f32 = 3e-5;
/// bf16 storage, per element, relative: the inputs are the same bf16 values on both sides (the
/// CPU computes on them widened to f32), so the only extra error is the final rounding of each
/// probability to bf16, at most half a unit in the last place: ≤ 2⁻⁹ · 2 = 2⁻⁸ ≈ 3.9e-3 of the
/// value (8 significant bits, so half an ulp is between 2⁻⁹ and 2⁻⁸ of it), plus the f32 part.
const BF16_RTOL: f32 = 3.9e-3 + F32_RTOL;
/// The scale of the test scores, as 1/√d for d = 64.
const SCALE: f32 = 0.125;

/// Row lengths: 1, odd lengths around a warp (31, 33), lengths that are multiples of neither 4
/// nor 8 (3, 1023, 4097), of 8 (8, 128, 1000, 1024, 2048) and the warp's and block's ranges.
fn key_counts() -> Vec<usize> {
    let mut n = vec![1, 3, 8, 31, 33, 128, 1000, 1023, 1024, 2048, longest_test_len(4097)];
    n.dedup();
    n
}

/// Masks for a batch of 2: none, causal, padding with batch entry 1 fully padded, a sliding
/// window of 3, a window with padding.
fn masks(nk: usize) -> Vec<(&'static str, MaskSpec)> {
    let lengths = vec![nk.div_ceil(2), 0];
    vec![
        ("none", MaskSpec::none()),
        ("causal", MaskSpec::causal()),
        ("padding", MaskSpec::none().with_key_lengths(lengths.clone())),
        ("window 3", MaskSpec::sliding_window(3)),
        ("window 3 + padding", MaskSpec::sliding_window(3).with_key_lengths(vec![nk, nk.div_ceil(3)])),
    ]
}

/// Query counts: a few, and more queries than keys, which leaves the first Nq − Nk queries of a
/// causal mask without any key (fully masked rows).
fn query_counts(nk: usize) -> Vec<usize> {
    let mut n: Vec<usize> = [1 + nk % 5, nk + 2, 3].into_iter().filter(|&nq| nq * nk <= 40_000).collect();
    n.sort();
    n.dedup();
    n
}

fn shape(nq: usize, nk: usize) -> ScoreShape {
    ScoreShape { batch: 2, heads: 3, nq, nk }
}

fn scores(s: ScoreShape, seed: u64) -> Array4<f32> {
    // σ = 16 before scaling, 2 after: the weights of a row span several orders of magnitude.
    randn((s.batch, s.heads, s.nq, s.nk), seed).mapv(|x| 16.0 * x)
}

/// `got` against `want`: every element finite, every masked key exactly zero, every visible one
/// within `rtol` of the CPU value.
fn assert_close(got: ArrayView4<f32>, want: ArrayView4<f32>, mask: &MaskSpec, rtol: f32, what: &str) {
    let (batch, heads, nq, nk) = want.dim();
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..nq {
                let keys = mask.visible_keys(b, i, nq, nk);
                for j in 0..nk {
                    let (g, w) = (got[[b, h, i, j]], want[[b, h, i, j]]);
                    assert!(g.is_finite(), "{what}: ({b},{h},{i},{j}) is {g}");
                    if keys.contains(&j) {
                        assert!((g - w).abs() <= rtol * w.abs(), "{what}: ({b},{h},{i},{j}) = {g}, CPU {w}");
                    } else {
                        assert_eq!(g, 0.0, "{what}: masked ({b},{h},{i},{j}) must be exactly 0");
                    }
                }
            }
        }
    }
}

fn launches(nk: usize) -> Vec<RowLaunch> {
    let mut l = vec![RowLaunch::Auto, RowLaunch::BlockPerRow];
    if nk <= WARP_MAX_KEYS {
        l.push(RowLaunch::WarpPerRow);
    }
    l
}

/// Fused and unfused in storage type T against the CPU fused version run on the same values.
fn check_dtype<T: ScoreElement>(gpu: &Gpu, rtol: f32) -> Result<()> {
    let mut seed = 0;
    for nk in key_counts() {
        for nq in query_counts(nk) {
            let s = shape(nq, nk);
            seed += 1;
            // The inputs in storage type T, and the same values widened for the CPU.
            let stored = scores(s, seed).mapv(T::from_f32);
            let widened = stored.mapv(T::to_f32);
            for (name, mask) in masks(nk) {
                let want = scale_mask_softmax_fused(widened.view(), SCALE, &mask)?;
                for launch in launches(nk) {
                    let what = format!("{} fused {launch:?} {s:?} mask {name}", T::NAME);
                    let got = scale_mask_softmax_gpu(gpu, stored.view(), SCALE, &mask, launch)?;
                    assert_close(got.mapv(T::to_f32).view(), want.view(), &mask, rtol, &what);
                }
                // The unfused chain rounds S · scale to T before the softmax (its first pass writes
                // S₁ in T): the CPU side gets the same rounded values and scale 1.
                let scaled = widened.mapv(|x| T::from_f32(x * SCALE).to_f32());
                let want = scale_mask_softmax_fused(scaled.view(), 1.0, &mask)?;
                let what = format!("{} unfused chain {s:?} mask {name}", T::NAME);
                let got = scale_mask_softmax_unfused_gpu(gpu, stored.view(), SCALE, &mask, RowLaunch::Auto)?;
                assert_close(got.mapv(T::to_f32).view(), want.view(), &mask, rtol, &what);
            }
        }
    }
    Ok(())
}

#[test]
fn f32_fused_and_unfused_match_the_cpu() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 f32 softmax GPU test")? else { return Ok(()) };
    check_dtype::<f32>(&gpu, F32_RTOL)
}

#[test]
fn bf16_fused_and_unfused_match_the_cpu() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 bf16 softmax GPU test")? else { return Ok(()) };
    check_dtype::<bf16>(&gpu, BF16_RTOL)
}

#[test]
fn odd_row_counts_end_in_half_a_pair() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 odd row count GPU test")? else { return Ok(()) };
    // A lane group of a short-row kernel takes two rows (rows_per_group); with an odd number of
    // rows the last group holds one real row and one past the end, which it must neither read
    // nor write. The output buffer starts as NaN so that any row left unwritten fails the check,
    // and the last row is compared like every other.
    for (nk, seed) in [(3, 21), (8, 22), (100, 23), (128, 24), (256, 25)] {
        let s = ScoreShape { batch: 1, heads: 1, nq: 7, nk };
        let x = scores(s, seed).mapv(bf16::from_f32);
        let widened = x.mapv(|v| v.to_f32());
        for (name, mask) in [("none", MaskSpec::none()), ("causal", MaskSpec::causal())] {
            let want = scale_mask_softmax_fused(widened.view(), SCALE, &mask)?;
            let input =
                gpu.stream.clone_htod(x.as_slice().expect("standard layout")).ctx("copying the scores")?;
            let nan = vec![bf16::NAN; x.len()];
            let mut output = gpu.stream.clone_htod(&nan).ctx("filling the output with NaN")?;
            let device_mask = DeviceMask::upload(&gpu, &mask, s)?;
            let plan = launch_fused(
                &gpu,
                &input.as_view(),
                &mut output.as_view_mut(),
                SCALE,
                &device_mask,
                RowLaunch::Auto,
            )?;
            assert_eq!(plan.rows_per_group, 2, "Nk = {nk}: {plan:?}");
            let got = gpu.download(&output, (1, 1, 7, nk))?.mapv(|v: bf16| v.to_f32());
            assert_close(
                got.view(),
                want.view(),
                &mask,
                BF16_RTOL,
                &format!("7 rows of {nk} keys, mask {name}"),
            );
        }
    }
    Ok(())
}

#[test]
fn long_bf16_rows_match_the_cpu() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 packed bf16 rows GPU test")? else { return Ok(()) };
    // Rows of 8193 to 16384 bf16 keys go to the 512-thread block of 32 values per thread; the
    // other tests stay below that length (and below 512 keys under the sanitizer), so this one
    // keeps the shape small enough for the sanitizer instead: two rows of each length.
    for (nk, seed) in [(8200, 31), (12000, 32), (16384, 33)] {
        let s = ScoreShape { batch: 2, heads: 1, nq: 1, nk };
        let stored = scores(s, seed).mapv(bf16::from_f32);
        let widened = stored.mapv(|v| v.to_f32());
        for (name, mask) in masks(nk) {
            let want = scale_mask_softmax_fused(widened.view(), SCALE, &mask)?;
            for launch in [RowLaunch::Auto, RowLaunch::BlockPerRow] {
                let got = scale_mask_softmax_gpu(&gpu, stored.view(), SCALE, &mask, launch)?;
                let what = format!("bf16 {launch:?} {s:?} mask {name}");
                assert_close(got.mapv(|v| v.to_f32()).view(), want.view(), &mask, BF16_RTOL, &what);
            }
        }
    }
    Ok(())
}

#[test]
fn the_1024_thread_block_matches_the_cpu() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 1024-thread block GPU test")? else { return Ok(()) };
    // The experiment RowLaunch::BlockPerRow1024 on the rows it is meant for, 8193 to 16384 keys
    // (8200: 544 threads, the last vector of a warp past the row's end; 16384: 1024 threads),
    // in bf16 and f32, every mask kind; 3 queries, so that the causal rows end inside the row and
    // "padding" leaves batch entry 1 fully masked. 6 rows a launch: small enough for the sanitizer.
    for (nk, seed) in [(8200, 41), (16384, 42)] {
        let s = ScoreShape { batch: 2, heads: 1, nq: 3, nk };
        let x = scores(s, seed);
        for (name, mask) in masks(nk) {
            let stored = x.mapv(bf16::from_f32);
            let widened = stored.mapv(|v| v.to_f32());
            let want = scale_mask_softmax_fused(widened.view(), SCALE, &mask)?;
            let got = scale_mask_softmax_gpu(&gpu, stored.view(), SCALE, &mask, RowLaunch::BlockPerRow1024)?;
            let what = format!("bf16 1024-thread block {s:?} mask {name}");
            assert_close(got.mapv(|v| v.to_f32()).view(), want.view(), &mask, BF16_RTOL, &what);
            let want = scale_mask_softmax_fused(x.view(), SCALE, &mask)?;
            let got = scale_mask_softmax_gpu(&gpu, x.view(), SCALE, &mask, RowLaunch::BlockPerRow1024)?;
            let what = format!("f32 1024-thread block {s:?} mask {name}");
            assert_close(got.view(), want.view(), &mask, F32_RTOL, &what);
        }
        // Every key of every row masked: exact +0.0, never 0/0.
        let none_visible = MaskSpec::causal().with_key_lengths(vec![0, 0]);
        let got = scale_mask_softmax_gpu(
            &gpu,
            x.mapv(bf16::from_f32).view(),
            SCALE,
            &none_visible,
            RowLaunch::BlockPerRow1024,
        )?;
        assert!(got.iter().all(|p| p.to_bits() == 0), "Nk = {nk}: fully masked rows not all +0.0");
    }
    // It launches the kernel it was asked for, not the 512-thread block.
    let s = ScoreShape { batch: 1, heads: 1, nq: 1, nk: 16384 };
    let input = gpu.zeros::<bf16>(16384)?;
    let mut output = gpu.zeros::<bf16>(16384)?;
    let mask = DeviceMask::upload(&gpu, &MaskSpec::none(), s)?;
    let plan = launch_fused(
        &gpu,
        &input.as_view(),
        &mut output.as_view_mut(),
        SCALE,
        &mask,
        RowLaunch::BlockPerRow1024,
    )?;
    assert_eq!((plan.kernel.as_str(), plan.threads_per_row), ("ch05_softmax_block1024_bf16_vec_v16", 1024));
    Ok(())
}

#[test]
fn the_prefetching_blocks_match_the_cpu() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 prefetching block GPU test")? else { return Ok(()) };
    // The experiments RowLaunch::BlockPerRowPrefetch (two row buffers) and BlockPerRowPrefetch3
    // (three) on bf16 rows of 8200 keys (288 threads, the last vector of a warp past the row's
    // end) and 16384 (512 threads), in two shapes: 6 rows, fewer than the grid (one row a block),
    // every mask kind; and a row count between 3R + 1 and 3R + 9 for R resident blocks, so that
    // the balanced grid gives blocks 4 rows and others 3 (every buffer refilled at least once,
    // copies of rows past the end committed empty), with the masks that matter there: causal rows
    // (only the visible part copied), padding (batch entry 1 with no visible key), a window with
    // padding. About 3R rows of ≤ 32 KB; under the sanitizer (whose racecheck is what checks the
    // buffers' barriers) the large shape takes the padding mask alone, half-visible and empty rows.
    for launch in [RowLaunch::BlockPerRowPrefetch, RowLaunch::BlockPerRowPrefetch3] {
        for (nk, seed) in [(8200, 51), (16384, 52)] {
            let plan = plan_fused(nk, "bf16", 2, true, launch)?;
            let function = gpu.function(&SOFTMAX_FUSION_SOURCE, &plan.kernel)?;
            let shared = prefetch_shared_bytes(nk, launch);
            gpu.opt_in_shared_memory(&function, &plan.kernel, shared)?;
            let resident = prefetch_resident_blocks(&gpu, &function, &plan, shared)?;
            // 2 · H · 3 rows with H = ⌊R / 2⌋ + 1 made odd: between 3R + 1 and 3R + 9, and not a
            // multiple of 4, so that some blocks take 3 rows.
            let many = ScoreShape { batch: 2, heads: (resident / 2 + 1) | 1, nq: 3, nk };
            let rows = many.elements() as usize / nk;
            let grid = prefetch_grid(&gpu, &function, &plan, shared, rows)?;
            assert!(rows.div_ceil(grid) == 4 && !rows.is_multiple_of(grid), "{many:?}, grid {grid}");
            let few = ScoreShape { batch: 2, heads: 1, nq: 3, nk };
            let many_masks: &[&str] =
                if under_sanitizer() { &["padding"] } else { &["causal", "padding", "window 3 + padding"] };
            for (s, only) in [(few, None), (many, Some(many_masks))] {
                let stored = scores(s, seed).mapv(bf16::from_f32);
                let widened = stored.mapv(|v| v.to_f32());
                for (name, mask) in masks(nk) {
                    if only.is_some_and(|only| !only.contains(&name)) {
                        continue;
                    }
                    let want = scale_mask_softmax_fused(widened.view(), SCALE, &mask)?;
                    let got = scale_mask_softmax_gpu(&gpu, stored.view(), SCALE, &mask, launch)?;
                    let what = format!("bf16 {} (grid {grid}) {s:?} mask {name}", plan.kernel);
                    assert_close(got.mapv(|v| v.to_f32()).view(), want.view(), &mask, BF16_RTOL, &what);
                }
            }
            let x = scores(few, seed).mapv(bf16::from_f32);
            assert_fully_masked_rows_are_zero(
                &gpu,
                x.view(),
                launch,
                &format!("{}, Nk = {nk}", plan.kernel),
            )?;
        }
        let want = if launch == RowLaunch::BlockPerRowPrefetch {
            "ch05_softmax_block_prefetch_bf16_vec_v32"
        } else {
            "ch05_softmax_block_prefetch3_bf16_vec_v32"
        };
        launches_its_bf16_kernel_and_refuses_f32(&gpu, launch, want, 53)?;
    }
    Ok(())
}

/// Every key of every row of `x` masked (causal, and key lengths 0 for both batch entries):
/// exact +0.0 from `launch`, never 0/0.
fn assert_fully_masked_rows_are_zero(
    gpu: &Gpu,
    x: ArrayView4<bf16>,
    launch: RowLaunch,
    what: &str,
) -> Result<()> {
    let none_visible = MaskSpec::causal().with_key_lengths(vec![0, 0]);
    let got = scale_mask_softmax_gpu(gpu, x, SCALE, &none_visible, launch)?;
    assert!(got.iter().all(|p| p.to_bits() == 0), "{what}: fully masked rows not all +0.0");
    Ok(())
}

/// A bf16-only experiment (`launch`) runs `kernel` with 512 threads on a row of 16384 keys, and
/// f32 scores (seeded `seed`) are refused on the host with an error naming bf16.
fn launches_its_bf16_kernel_and_refuses_f32(
    gpu: &Gpu,
    launch: RowLaunch,
    kernel: &str,
    seed: u64,
) -> Result<()> {
    let s = ScoreShape { batch: 1, heads: 1, nq: 1, nk: 16384 };
    let input = gpu.zeros::<bf16>(16384)?;
    let mut output = gpu.zeros::<bf16>(16384)?;
    let mask = DeviceMask::upload(gpu, &MaskSpec::none(), s)?;
    let plan = launch_fused(gpu, &input.as_view(), &mut output.as_view_mut(), SCALE, &mask, launch)?;
    assert_eq!((plan.kernel.as_str(), plan.threads_per_row), (kernel, 512));
    let x = scores(s, seed);
    let e = scale_mask_softmax_gpu(gpu, x.view(), SCALE, &MaskSpec::none(), launch).unwrap_err().to_string();
    assert!(e.contains("bf16"), "{e}");
    Ok(())
}

#[test]
fn the_two_pass_block_matches_the_cpu() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 two-pass block GPU test")? else { return Ok(()) };
    // The experiment RowLaunch::TwoPass on bf16 rows of 1032 keys (129 vectors over 160 threads:
    // one a thread, the last warp mostly past the row), 8200 (1025 vectors over 512 threads: a
    // second round of U = 2 for one thread), 16384 (512 threads × 4 vectors: two rounds of U = 2) and
    // 40000 (longer than any register-holding kernel takes: 5000 vectors, 10 a thread), three
    // queries and every mask kind: causal rows end inside the row, padding leaves batch entry 1
    // with no visible key, a window of 3 cuts one or two vectors. Under the sanitizer only the
    // two shorter rows.
    let lengths: &[usize] = if under_sanitizer() { &[1032, 8200] } else { &[1032, 8200, 16384, 40000] };
    for (k, &nk) in lengths.iter().enumerate() {
        let s = ScoreShape { batch: 2, heads: 1, nq: 3, nk };
        let stored = scores(s, 61 + k as u64).mapv(bf16::from_f32);
        let widened = stored.mapv(|v| v.to_f32());
        for (name, mask) in masks(nk) {
            let want = scale_mask_softmax_fused(widened.view(), SCALE, &mask)?;
            let got = scale_mask_softmax_gpu(&gpu, stored.view(), SCALE, &mask, RowLaunch::TwoPass)?;
            let what = format!("bf16 two-pass {s:?} mask {name}");
            assert_close(got.mapv(|v| v.to_f32()).view(), want.view(), &mask, BF16_RTOL, &what);
        }
        assert_fully_masked_rows_are_zero(
            &gpu,
            stored.view(),
            RowLaunch::TwoPass,
            &format!("two-pass, Nk = {nk}"),
        )?;
    }
    launches_its_bf16_kernel_and_refuses_f32(&gpu, RowLaunch::TwoPass, "ch05_softmax_twopass_bf16_vec", 63)
}

#[test]
fn fully_masked_rows_are_exact_zeros() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 fully masked rows GPU test")? else { return Ok(()) };
    // Every key padded in both batch entries, with −∞-free scores: the kernel must not divide 0 by 0.
    let s = ScoreShape { batch: 2, heads: 2, nq: 4, nk: 1024 };
    let mask = MaskSpec::causal().with_key_lengths(vec![0, 0]);
    let x = scores(s, 99);
    for launch in [RowLaunch::WarpPerRow, RowLaunch::BlockPerRow] {
        let got = scale_mask_softmax_gpu(&gpu, x.view(), SCALE, &mask, launch)?;
        assert!(got.iter().all(|&p| p.to_bits() == 0), "{launch:?}: not all +0.0");
    }
    let got = scale_mask_softmax_unfused_gpu(&gpu, x.view(), SCALE, &mask, RowLaunch::Auto)?;
    assert!(got.iter().all(|&p| p == 0.0), "unfused chain: not all zeros");
    Ok(())
}

#[test]
fn a_misaligned_buffer_takes_the_scalar_path() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 misaligned softmax GPU test")? else { return Ok(()) };
    let s = ScoreShape { batch: 2, heads: 1, nq: 3, nk: 256 };
    let mask = MaskSpec::causal().with_key_lengths(vec![200, 7]);
    let x = scores(s, 7);
    // One extra float in front: the view starting at element 1 is 4 bytes off a 16-byte boundary.
    let mut padded = vec![0.0f32];
    padded.extend(x.iter());
    let input = gpu.stream.clone_htod(&padded).ctx("copying the scores")?;
    let mut output = gpu.zeros::<f32>(x.len())?;
    let device_mask = DeviceMask::upload(&gpu, &mask, s)?;
    for launch in [RowLaunch::WarpPerRow, RowLaunch::BlockPerRow] {
        let plan =
            launch_fused(&gpu, &input.slice(1..), &mut output.as_view_mut(), SCALE, &device_mask, launch)?;
        assert_eq!(plan.access, Access::Scalar, "{plan:?}");
        let got = gpu.download(&output, (2, 1, 3, 256))?;
        let want = scale_mask_softmax_fused(x.view(), SCALE, &mask)?;
        assert_close(got.view(), want.view(), &mask, F32_RTOL, &format!("misaligned {launch:?}"));
    }
    Ok(())
}

#[test]
fn bad_launches_are_refused_on_the_host() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 softmax host checks")? else { return Ok(()) };
    let s = ScoreShape { batch: 2, heads: 1, nq: 2, nk: 4096 };
    let x = scores(s, 3);
    let err = |r: Result<Array4<f32>>| r.unwrap_err().to_string();
    // A warp cannot hold 4096 keys.
    let e = err(scale_mask_softmax_gpu(&gpu, x.view(), SCALE, &MaskSpec::none(), RowLaunch::WarpPerRow));
    assert!(e.contains("4096") && e.contains("2048"), "{e}");
    // Key lengths: one per batch entry, none above Nk.
    let e = err(scale_mask_softmax_gpu(
        &gpu,
        x.view(),
        SCALE,
        &MaskSpec::none().with_key_lengths(vec![1]),
        RowLaunch::Auto,
    ));
    assert!(e.contains("key_lengths"), "{e}");
    let long = MaskSpec::none().with_key_lengths(vec![1, 4097]);
    let e = err(scale_mask_softmax_gpu(&gpu, x.view(), SCALE, &long, RowLaunch::Auto));
    assert!(e.contains("4097"), "{e}");
    // Window 0, a window without causal, a scale that is not finite.
    let e = err(scale_mask_softmax_gpu(&gpu, x.view(), SCALE, &MaskSpec::sliding_window(0), RowLaunch::Auto));
    assert!(e.contains("window = 0"), "{e}");
    let loose = MaskSpec { window: Some(4), ..MaskSpec::none() };
    assert!(err(scale_mask_softmax_gpu(&gpu, x.view(), SCALE, &loose, RowLaunch::Auto)).contains("causal"));
    let e = err(scale_mask_softmax_gpu(&gpu, x.view(), f32::NAN, &MaskSpec::none(), RowLaunch::Auto));
    assert!(e.contains("scale"), "{e}");
    // Buffers that do not hold the mask's shape.
    let device_mask = DeviceMask::upload(&gpu, &MaskSpec::causal(), s)?;
    let short = gpu.zeros::<f32>(100)?;
    let mut out = gpu.zeros::<f32>(x.len())?;
    let e =
        launch_fused(&gpu, &short.as_view(), &mut out.as_view_mut(), SCALE, &device_mask, RowLaunch::Auto)
            .unwrap_err()
            .to_string();
    assert!(e.contains("100") && e.contains("scores"), "{e}");
    Ok(())
}
