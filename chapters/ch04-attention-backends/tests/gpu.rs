//! Every GPU backend against the f64 reference (relative error ≤ 1e-5, full f32: no TF32),
//! and the limits: Fused beyond its key limit, Flash at d = 48, mismatched shapes.
//! Skips (printing why) without a GPU; fails under ATTN_REQUIRE_GPU=1.

use ch04_attention_backends::attn_support::data::randn;
use ch04_attention_backends::attn_support::gpu::{Gpu, longest_test_len};
use ch04_attention_backends::attn_support::ndarray::{Array4, s};
use ch04_attention_backends::attn_support::{Result, compare};
use ch04_attention_backends::ch02::gpu::SdpaKernel;
use ch04_attention_backends::ch02::reference::sdpa_reference;
use ch04_attention_backends::{Backend, Device, SdpaMask, SdpaOptions, attention};

const TOL: f64 = 1e-5;
/// Above this many queries only `SAMPLED_ROWS` rows are checked against the (slow) reference.
const FULL_CHECK_MAX: usize = 200;
const SAMPLED_ROWS: [usize; 4] = [0, 1, 517, usize::MAX];

fn qkv(b: usize, h: usize, n: usize, d: usize, seed: u64) -> [Array4<f32>; 3] {
    [randn((b, h, n, d), seed), randn((b, h, n, d), seed + 1), randn((b, h, n, d), seed + 2)]
}

/// Masks: none, causal, and causal with padding that hides every key of batch entry 1.
fn masks(n: usize) -> Vec<SdpaMask> {
    let pad = SdpaMask::padding_from_lengths(&[n.div_ceil(2), 0], n);
    vec![SdpaMask::none(), SdpaMask::causal(), SdpaMask::causal().with_key_padding(pad)]
}

fn check(gpu: &Gpu, backend: Backend, n: usize, d: usize, mask: &SdpaMask) -> Result<()> {
    let [q, k, v] = qkv(2, 2, n, d, (n * 131 + d) as u64);
    let what = format!("{backend} N={n} d={d} causal={} padded={}", mask.causal, mask.key_padding.is_some());
    let (out, lse) =
        attention(backend, Device::Gpu(gpu), q.view(), k.view(), v.view(), mask, &SdpaOptions::default())?;
    if n <= FULL_CHECK_MAX {
        let (want, want_lse) = sdpa_reference(q.view(), k.view(), v.view(), mask, None)?;
        let (c, cl) = (compare(&out, &want)?, compare(&lse, &want_lse)?);
        assert!(c.within(TOL) && cl.within(TOL), "{what}: out {c:?}, lse {cl:?}");
        return Ok(());
    }
    // Long rows: the reference on single query rows, against exactly the keys each may see
    // (the first causal_end keys, minus padded ones via the same mask on the truncated keys).
    for b in 0..2 {
        for &row in &SAMPLED_ROWS {
            let i = row.min(n - 1);
            let end = mask.causal_end(i, n, n);
            if end == 0 {
                continue;
            }
            let (qi, ki, vi) = (
                q.slice(s![b..=b, .., i..=i, ..]).to_owned(),
                k.slice(s![b..=b, .., ..end, ..]).to_owned(),
                v.slice(s![b..=b, .., ..end, ..]).to_owned(),
            );
            let row_mask = SdpaMask {
                causal: false,
                key_padding: mask.key_padding.as_ref().map(|p| p.slice(s![b..=b, ..end]).to_owned()),
            };
            let (want, want_lse) = sdpa_reference(qi.view(), ki.view(), vi.view(), &row_mask, None)?;
            let got = out.slice(s![b..=b, .., i..=i, ..]).to_owned();
            let got_lse = lse.slice(s![b..=b, .., i..=i]).to_owned();
            let (c, cl) = (compare(&got, &want)?, compare(&got_lse, &want_lse)?);
            assert!(c.within(TOL) && cl.within(TOL), "{what}, batch {b} row {i}: out {c:?}, lse {cl:?}");
        }
    }
    Ok(())
}

fn lengths() -> Vec<usize> {
    vec![1, 97, 1025, longest_test_len(4096)]
}

#[test]
fn unfused_matches_the_reference() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch04 Unfused GPU test")? else { return Ok(()) };
    for n in lengths() {
        for d in [64, 128] {
            for mask in masks(n) {
                check(&gpu, Backend::Unfused, n, d, &mask)?;
            }
        }
    }
    // An odd head dim, which cuBLAS handles like any other.
    check(&gpu, Backend::Unfused, 33, 5, &SdpaMask::causal())
}

#[test]
fn fused_matches_the_reference() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch04 Fused GPU test")? else { return Ok(()) };
    for n in lengths() {
        for d in [64, 128] {
            for mask in masks(n) {
                check(&gpu, Backend::Fused, n, d, &mask)?;
            }
        }
    }
    Ok(())
}

#[test]
fn flash_matches_the_reference() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch04 Flash GPU test")? else { return Ok(()) };
    for n in lengths() {
        for d in [32, 64, 128] {
            for mask in masks(n) {
                check(&gpu, Backend::Flash, n, d, &mask)?;
            }
        }
    }
    Ok(())
}

#[test]
fn limits_are_errors_before_launch() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch04 GPU limits test")? else { return Ok(()) };
    let device = Device::Gpu(&gpu);
    let opts = SdpaOptions::default();
    // Fused: one key more than a row of scores the shared memory holds.
    let nk = SdpaKernel::load(&gpu)?.max_keys() + 1;
    let (q, k, v) = (randn((1, 1, 1, 64), 1), randn((1, 1, nk, 64), 2), randn((1, 1, nk, 64), 3));
    let e = attention(Backend::Fused, device, q.view(), k.view(), v.view(), &SdpaMask::none(), &opts)
        .expect_err("Fused must refuse Nk over its limit");
    assert!(e.to_string().contains(&nk.to_string()), "{e}");
    // ... which Flash and Unfused handle.
    for backend in [Backend::Flash, Backend::Unfused] {
        let (out, _) = attention(backend, device, q.view(), k.view(), v.view(), &SdpaMask::none(), &opts)?;
        let (want, _) = sdpa_reference(q.view(), k.view(), v.view(), &SdpaMask::none(), None)?;
        assert!(compare(&out, &want)?.within(TOL), "{backend} at Nk = {nk}");
    }
    // Flash: d = 48 has no entry point.
    let [q, k, v] = qkv(1, 1, 64, 48, 5);
    let e = attention(Backend::Flash, device, q.view(), k.view(), v.view(), &SdpaMask::none(), &opts)
        .expect_err("Flash must refuse d = 48");
    assert!(e.to_string().contains("48"), "{e}");
    // Unfused: scores that cannot fit (B·H·N² floats far beyond any device).
    let dims = ch04_attention_backends::SdpaDims {
        batch: 64,
        heads: 64,
        nq: 65536,
        nk: 65536,
        head_dim: 64,
        v_dim: 64,
    };
    let e = Backend::Unfused.supports(&dims, device).expect_err("Unfused must refuse 70 TB of scores");
    assert!(e.to_string().contains("free"), "{e}");
    // Mismatched shapes, on every backend.
    let (q, k, v) = (randn((1, 2, 8, 64), 1), randn((1, 2, 9, 64), 2), randn((1, 2, 8, 64), 3));
    for backend in Backend::ALL {
        let e = attention(backend, device, q.view(), k.view(), v.view(), &SdpaMask::none(), &opts)
            .expect_err("mismatched K and V");
        assert!(e.to_string().contains("[1, 2, 9, 64]"), "{backend}: {e}");
    }
    Ok(())
}

/// `residency` counts the Fused kernel's shared memory as the compiled kernel has it (its key
/// limit follows from the count); with the driver's registers per thread, the support crate's
/// occupancy calculation gives the driver's own answer at every Nk; and the driver's registers
/// are the 40 that ptxas reported for sm_90 on the CPU machine, which the book's table assumes.
#[test]
fn fused_residency_agrees_with_the_driver() -> Result<()> {
    use ch04_attention_backends::attn_support::occupancy::SmLimits;
    use ch04_attention_backends::residency::{
        FUSED_REGISTERS_PER_THREAD, FUSED_STATIC_SHARED_BYTES, FusedResidency, fused_blocks_per_sm_on,
        fused_registers_on,
    };
    let Some(gpu) = Gpu::open_or_skip("the Fused residency check")? else { return Ok(()) };
    let kernel = SdpaKernel::load(&gpu)?;
    assert_eq!(kernel.max_keys(), (gpu.max_shared_mem_per_block()? - FUSED_STATIC_SHARED_BYTES) / 4);
    let sm = SmLimits::of(&gpu)?;
    let registers = fused_registers_on(&gpu)?;
    for nk in [128, 512, 2048, 3324, 3325, 8192, 16_384, kernel.max_keys()] {
        let counted = FusedResidency::with_registers(nk, registers, &sm);
        let driver = fused_blocks_per_sm_on(&gpu, nk)?;
        assert_eq!(driver, counted.blocks(), "Nk = {nk}: driver {driver}, counted {counted:?} under {sm:?}");
    }
    assert_eq!(
        registers, FUSED_REGISTERS_PER_THREAD,
        "the driver gives ch02_sdpa_f32 {registers} registers per thread, not ptxas's 40: update \
         FUSED_REGISTERS_PER_THREAD and the book's residency table"
    );
    Ok(())
}
