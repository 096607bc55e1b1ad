//! Both GPU versions against the f64 reference. They skip (and pass) on a machine without a
//! GPU, and fail there under ATTN_REQUIRE_GPU=1.

use ch01_attention_basics::attn_support::data::randn;
use ch01_attention_basics::attn_support::{Error, Gpu, Result, compare};
use ch01_attention_basics::ndarray::Array2;
use ch01_attention_basics::{
    DeviceAttention, attention_naive_gpu, attention_reference_f64, attention_three_kernels_gpu,
};

const TOL: f64 = 1e-5;

fn inputs(n_q: usize, n_k: usize, d: usize, d_v: usize, seed: u64) -> [Array2<f32>; 3] {
    [randn((n_q, d), seed), randn((n_k, d), seed + 1), randn((n_k, d_v), seed + 2)]
}

/// Run both GPU versions on one shape and compare with the f64 reference.
fn check(gpu: &Gpu, (n_q, n_k, d, d_v): (usize, usize, usize, usize), seed: u64) -> Result<()> {
    let [q, k, v] = inputs(n_q, n_k, d, d_v, seed);
    let reference = attention_reference_f64(q.view(), k.view(), v.view())?;
    let naive = attention_naive_gpu(gpu, q.view(), k.view(), v.view())?;
    let three = attention_three_kernels_gpu(gpu, q.view(), k.view(), v.view())?;
    for (name, out) in [("naive", naive), ("three kernels", three)] {
        let c = compare(&out, &reference)?;
        println!("{name:>14} ({n_q}, {n_k}, {d}, {d_v}): {c}");
        assert!(c.within(TOL), "{name} at ({n_q}, {n_k}, {d}, {d_v}): {c}");
    }
    Ok(())
}

#[test]
fn odd_shapes_match_the_reference() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch01 GPU test (odd shapes)")? else { return Ok(()) };
    let shapes = [
        (1, 1, 1, 1),
        (1, 7, 3, 1),
        (7, 1, 5, 9),
        (97, 97, 7, 13),
        (1000, 97, 33, 1),
        (7, 1000, 64, 64),
        (97, 1000, 1, 97),
        (1000, 1000, 64, 64),
        (300, 257, 129, 33), // rows longer than one 256-thread block, d above 128
    ];
    for (i, shape) in shapes.into_iter().enumerate() {
        check(&gpu, shape, 10 * i as u64)?;
    }
    Ok(())
}

#[test]
fn long_sequences_match_the_reference() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch01 GPU test (N = 4096)")? else { return Ok(()) };
    let n = attn_support::gpu::longest_test_len(4096);
    for (i, d) in [16, 32, 64, 128].into_iter().enumerate() {
        check(&gpu, (n, n, d, d), 1000 + 10 * i as u64)?;
    }
    Ok(())
}

#[test]
fn non_contiguous_inputs_and_repeated_launches() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch01 GPU test (layouts)")? else { return Ok(()) };
    let q_t = randn((16, 33), 1); // Q = q_tᵀ is (33, 16), column-major in memory
    let [_, k, v] = inputs(1, 40, 16, 8, 2);
    let reference = attention_reference_f64(q_t.t(), k.view(), v.view())?;
    let mut dev = DeviceAttention::new(&gpu, q_t.t(), k.view(), v.view())?;
    for _ in 0..2 {
        dev.launch_three_kernels(&gpu)?; // the second launch reuses the score buffer
        assert!(compare(&dev.output(&gpu)?, &reference)?.within(TOL));
        dev.launch_naive(&gpu)?;
        assert!(compare(&dev.output(&gpu)?, &reference)?.within(TOL));
    }
    Ok(())
}

#[test]
fn bad_shapes_are_errors_on_the_gpu_path() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch01 GPU test (bad shapes)")? else { return Ok(()) };
    let z = |r: usize, c: usize| Array2::<f32>::zeros((r, c));
    let e = attention_naive_gpu(&gpu, z(3, 4).view(), z(5, 6).view(), z(5, 2).view()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains("[5, 6]"), "{e}");
    let e = attention_three_kernels_gpu(&gpu, z(3, 4).view(), z(5, 4).view(), z(6, 2).view()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }) && e.to_string().contains("[6, 2]"), "{e}");
    let e = attention_three_kernels_gpu(&gpu, z(0, 4).view(), z(5, 4).view(), z(5, 2).view()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    // 70 000 query rows do not fit in gridDim.y (≤ 65 535) of the three-kernel version: an
    // error before any launch, while the naive kernel (1-D grid) handles them.
    let (q, k, v) = (randn((70_000, 2), 3), randn((3, 2), 4), randn((3, 1), 5));
    let mut dev = DeviceAttention::new(&gpu, q.view(), k.view(), v.view())?;
    let e = dev.launch_three_kernels(&gpu).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("65535"), "{e}");
    dev.launch_naive(&gpu)?;
    let reference = attention_reference_f64(q.view(), k.view(), v.view())?;
    assert!(compare(&dev.output(&gpu)?, &reference)?.within(TOL));
    Ok(())
}
