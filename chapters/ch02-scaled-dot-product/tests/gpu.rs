//! The ch02 kernel vs the f64 reference. Skipped (with a printed reason) without a GPU; an
//! error under ATTN_REQUIRE_GPU=1.

use ch02_scaled_dot_product::attn_support::data::randn;
use ch02_scaled_dot_product::attn_support::gpu::Gpu;
use ch02_scaled_dot_product::attn_support::ndarray::{Array4, s};
use ch02_scaled_dot_product::attn_support::{Result, compare};
use ch02_scaled_dot_product::gpu::{MAX_HEAD_DIM, SdpaKernel, sdpa_gpu, sdpa_gpu_with_options};
use ch02_scaled_dot_product::reference::sdpa_reference;
use ch02_scaled_dot_product::{SdpaDims, SdpaMask, SdpaOptions, sdpa};

const TOL: f64 = 1e-5;

fn qkv(b: usize, h: usize, nq: usize, nk: usize, d: usize, dv: usize, seed: u64) -> [Array4<f32>; 3] {
    [randn((b, h, nq, d), seed), randn((b, h, nk, d), seed + 1), randn((b, h, nk, dv), seed + 2)]
}

/// Run the kernel and the f64 reference on one case; both output and lse within TOL.
fn check(
    gpu: &Gpu,
    dims: (usize, usize, usize, usize, usize, usize),
    mask: &SdpaMask,
    seed: u64,
) -> Result<()> {
    let (b, h, nq, nk, d, dv) = dims;
    let [q, k, v] = qkv(b, h, nq, nk, d, dv, seed);
    let (out, lse) = sdpa_gpu_with_options(gpu, q.view(), k.view(), v.view(), mask, &SdpaOptions::default())?;
    let (ref_out, ref_lse) = sdpa_reference(q.view(), k.view(), v.view(), mask, None)?;
    let (c_out, c_lse) = (compare(&out, &ref_out)?, compare(&lse, &ref_lse)?);
    assert!(c_out.within(TOL) && c_lse.within(TOL), "{dims:?} {mask:?}: out {c_out}, lse {c_lse}");
    Ok(())
}

#[test]
fn kernel_matches_the_reference_over_head_dims_and_masks() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch02 GPU test")? else { return Ok(()) };
    for (i, d) in [16, 32, 64, 128].into_iter().enumerate() {
        let seed = 10 * i as u64;
        check(&gpu, (2, 3, 97, 97, d, d), &SdpaMask::none(), seed)?;
        check(&gpu, (2, 2, 97, 97, d, d), &SdpaMask::causal(), seed + 1)?;
        let pad = SdpaMask::padding_from_lengths(&[1000, 517], 1000);
        check(&gpu, (2, 1, 1000, 1000, d, d), &SdpaMask::causal().with_key_padding(pad), seed + 2)?;
        check(&gpu, (1, 1, 1, 1, d, d), &SdpaMask::causal(), seed + 3)?;
    }
    Ok(())
}

#[test]
fn long_sequences_up_to_4096() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch02 GPU test")? else { return Ok(()) };
    // Every head dim at N = 4096, each with another mask: none, causal, key padding (one
    // batch padded to 3001 keys), causal + padding.
    let n = attn_support::gpu::longest_test_len(4096);
    let pad = || SdpaMask::padding_from_lengths(&[n, n * 3 / 4 + 1], n);
    let masks = [
        SdpaMask::none(),
        SdpaMask::causal(),
        SdpaMask::none().with_key_padding(pad()),
        SdpaMask::causal().with_key_padding(pad()),
    ];
    for (i, (d, mask)) in [16, 32, 64, 128].into_iter().zip(masks).enumerate() {
        let batch = if mask.key_padding.is_some() { 2 } else { 1 };
        check(&gpu, (batch, 1, n, n, d, d), &mask, 20 + i as u64)?;
    }
    // More keys than 48 KiB of scores: the kernel must opt in to more shared memory.
    check(&gpu, (1, 2, 16, 20_000, 32, 32), &SdpaMask::causal(), 3)?;
    Ok(())
}

#[test]
fn odd_head_dims_and_different_value_dims() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch02 GPU test")? else { return Ok(()) };
    // d % 4 ≠ 0 takes the scalar path; dv ≠ d; the largest supported dims.
    check(&gpu, (1, 2, 33, 65, 1, 1), &SdpaMask::none(), 4)?;
    check(&gpu, (2, 1, 40, 70, 33, 7), &SdpaMask::causal(), 5)?;
    check(&gpu, (1, 1, 130, 129, 12, 200), &SdpaMask::none(), 6)?;
    check(&gpu, (1, 1, 64, 300, MAX_HEAD_DIM, MAX_HEAD_DIM), &SdpaMask::causal(), 7)?;
    Ok(())
}

#[test]
fn fully_masked_rows_are_zeros_like_the_cpu() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch02 GPU test")? else { return Ok(()) };
    // Causal with Nq > Nk: the first Nq − Nk queries see no key; batch entry 1 pads every key.
    let mask = SdpaMask::causal().with_key_padding(SdpaMask::padding_from_lengths(&[50, 0], 50));
    let [q, k, v] = qkv(2, 2, 80, 50, 64, 64, 8);
    let (out, lse) =
        sdpa_gpu_with_options(&gpu, q.view(), k.view(), v.view(), &mask, &SdpaOptions::default())?;
    for h in 0..2 {
        for i in 0..80 {
            assert_eq!(out.slice(s![0, h, i, ..]).iter().all(|&x| x == 0.0), i < 30, "b0 h{h} row {i}");
            assert!(out.slice(s![1, h, i, ..]).iter().all(|&x| x == 0.0));
            assert_eq!(lse[[1, h, i]], f32::NEG_INFINITY);
        }
    }
    let cpu = sdpa(q.view(), k.view(), v.view(), &mask)?;
    assert!(compare(&out, &cpu)?.within(TOL));
    check(&gpu, (2, 2, 80, 50, 64, 64), &mask, 8)
}

#[test]
fn unsupported_shapes_are_clear_errors() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch02 GPU test")? else { return Ok(()) };
    let kernel = SdpaKernel::load(&gpu)?;
    let dims = |nk, d| SdpaDims { batch: 1, heads: 1, nq: 1, nk, head_dim: d, v_dim: d };
    let too_many = kernel.launch_config(&dims(kernel.max_keys() + 1, 64)).unwrap_err().to_string();
    assert!(
        too_many.contains("shared memory") && too_many.contains(&kernel.max_keys().to_string()),
        "{too_many}"
    );
    assert!(kernel.launch_config(&dims(kernel.max_keys(), 64)).is_ok());
    let wide = kernel.launch_config(&dims(8, MAX_HEAD_DIM + 1)).unwrap_err().to_string();
    assert!(wide.contains("head dim") && wide.contains("257"), "{wide}");
    // Through the array API too, before anything is copied.
    let [q, k, v] = qkv(1, 1, 2, kernel.max_keys() + 1, 1, 1, 9);
    assert!(sdpa_gpu(&gpu, q.view(), k.view(), v.view(), &SdpaMask::none()).is_err());
    Ok(())
}
