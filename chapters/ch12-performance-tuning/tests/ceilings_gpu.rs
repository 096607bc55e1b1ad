//! GPU checks of the hardware and system levels: the timed GEMMs and copy compute the right
//! thing, the measured ceilings are plausible, and a CUDA graph does what direct launches do.
//! Each test skips without a GPU (and fails under ATTN_REQUIRE_GPU=1).

use ch12_performance_tuning::attn_support::gpu::{Gpu, under_sanitizer};
use ch12_performance_tuning::attn_support::ndarray::{Array2, ArrayView2};
use ch12_performance_tuning::bf16;
use ch12_performance_tuning::ceilings::{Blas, CeilingOptions, launch_copy, measure_ceilings, random_values};
use ch12_performance_tuning::graphs::{
    capture, capture_stream, increment_function, launch_increment, time_direct_vs_graph,
};
use std::sync::{Mutex, MutexGuard};

/// A (rows × cols) matrix of values uniform in [−1, 1).
/// One GPU test at a time: a stream capture fails if another thread of the test harness
/// launches on the legacy default stream meanwhile ("would make the legacy stream depend on a
/// capturing blocking stream"), so the tests of this file take this lock first.
static GPU: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    GPU.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn random_matrix<T: ch12_performance_tuning::ceilings::GemmElement>(
    rows: usize,
    cols: usize,
    seed: u64,
) -> Array2<T> {
    Array2::from_shape_vec((rows, cols), random_values(rows * cols, seed)).unwrap()
}

/// The f64 product of two matrices given as f64.
fn reference_product(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
    a.dot(&b)
}

#[test]
fn gemms_compute_the_row_major_product() {
    let _serial = lock();
    let Some(gpu) = Gpu::open_or_skip("the cuBLAS GEMM check").unwrap() else { return };
    let blas = Blas::open(&gpu).unwrap();
    // Non-square sizes: a swapped operand or a wrong leading dimension cannot go unnoticed.
    let (m, n, k) = (96, 80, 112);

    // bf16 inputs, f32 accumulation, bf16 output: the error is the output's rounding, 2⁻⁸.
    let (a, b) = (random_matrix::<bf16>(m, k, 11), random_matrix::<bf16>(k, n, 12));
    let c = blas.matmul(&gpu, a.view(), b.view()).unwrap();
    let want = reference_product(a.mapv(|x| x.to_f64()).view(), b.mapv(|x| x.to_f64()).view());
    for ((i, j), &w) in want.indexed_iter() {
        let got = c[(i, j)].to_f64();
        assert!((got - w).abs() <= 2f64.powi(-8) * w.abs() + 1e-3, "bf16 C[{i},{j}] = {got}, want {w}");
    }

    // f32 SGEMM in default math is full f32 (TF32 would miss this by ~1e-3).
    let (a, b) = (random_matrix::<f32>(m, k, 13), random_matrix::<f32>(k, n, 14));
    let c = blas.matmul(&gpu, a.view(), b.view()).unwrap();
    let want = reference_product(a.mapv(f64::from).view(), b.mapv(f64::from).view());
    for ((i, j), &w) in want.indexed_iter() {
        let got = c[(i, j)] as f64;
        assert!((got - w).abs() <= 1e-5 * (1.0 + w.abs()), "f32 C[{i},{j}] = {got}, want {w}");
    }

    // Shapes that do not chain are an error, not a launch.
    let wrong = random_matrix::<f32>(k + 1, n, 15);
    assert!(blas.matmul(&gpu, a.view(), wrong.view()).is_err());
}

#[test]
fn copy_kernel_copies() {
    let _serial = lock();
    let Some(gpu) = Gpu::open_or_skip("the copy kernel check").unwrap() else { return };
    let values: Vec<f32> = random_values(4096 + 256, 21);
    let src = gpu.stream.clone_htod(&values).unwrap();
    let mut dst = gpu.zeros::<f32>(values.len()).unwrap();
    launch_copy(&gpu, &src, &mut dst).unwrap();
    assert_eq!(gpu.stream.clone_dtoh(&dst).unwrap(), values);
    // Not a whole number of float4 vectors, or lengths that differ: refused.
    let mut odd = gpu.zeros::<f32>(values.len() - 1).unwrap();
    assert!(launch_copy(&gpu, &src, &mut odd).is_err());
}

#[test]
fn measured_ceilings_are_plausible() {
    let _serial = lock();
    let Some(gpu) = Gpu::open_or_skip("the ceiling measurements").unwrap() else { return };
    if under_sanitizer() {
        println!("skipped the ceiling measurements: timings mean nothing under compute-sanitizer");
        return;
    }
    let c = measure_ceilings(&gpu, &CeilingOptions::quick()).unwrap();
    println!("{c:?}");
    assert_eq!(c.device, gpu.name());
    for bw in [c.copy_kernel_bytes_per_s, c.memcpy_bytes_per_s] {
        assert!((0.5e12..10e12).contains(&bw), "copy bandwidth {bw:e} B/s");
    }
    assert_eq!(c.copy_bytes_per_s, c.copy_kernel_bytes_per_s.max(c.memcpy_bytes_per_s));
    assert!(c.f32_gemm_flops_per_s > 1e12, "f32 GEMM {:e} FLOP/s", c.f32_gemm_flops_per_s);
    assert!(c.bf16_gemm_flops_per_s > c.f32_gemm_flops_per_s, "{c:?}");
    // No device of this generation reaches 5 PFLOP/s dense bf16: a higher number is a bug.
    assert!(c.bf16_gemm_flops_per_s < 5e15, "{c:?}");
}

#[test]
fn a_graph_replays_what_direct_launches_do() {
    let _serial = lock();
    let Some(gpu) = Gpu::open_or_skip("the CUDA graph check").unwrap() else { return };
    let f = increment_function(&gpu).unwrap();
    let stream = capture_stream(&gpu);
    let n = 3000; // not a multiple of the block size: the tail block is partly idle
    let launches = 20;

    let mut direct = gpu.zeros::<f32>(n).unwrap();
    for _ in 0..launches {
        launch_increment(&stream, &f, &mut direct, 0.5).unwrap();
    }
    let direct = stream.clone_dtoh(&direct).unwrap();
    assert!(direct.iter().all(|&x| x == 10.0), "direct launches: {:?}", &direct[..4]);

    // Capturing runs nothing; each replay adds launches·delta.
    let mut replayed = gpu.zeros::<f32>(n).unwrap();
    let graph =
        capture(&stream, |s| (0..launches).try_for_each(|_| launch_increment(s, &f, &mut replayed, 0.5)))
            .unwrap();
    stream.synchronize().unwrap();
    assert!(stream.clone_dtoh(&replayed).unwrap().iter().all(|&x| x == 0.0), "capture must not run");
    graph.launch().unwrap();
    assert_eq!(stream.clone_dtoh(&replayed).unwrap(), direct);
    graph.launch().unwrap();
    assert!(stream.clone_dtoh(&replayed).unwrap().iter().all(|&x| x == 20.0));
    drop(graph);

    // A failing capture returns its error and leaves the stream usable.
    let failed =
        capture(&stream, |_| Err(ch12_performance_tuning::attn_support::Error::InvalidArgument("x".into())));
    assert!(failed.is_err());
    launch_increment(&stream, &f, &mut replayed, 1.0).unwrap();
    assert!(stream.clone_dtoh(&replayed).unwrap().iter().all(|&x| x == 21.0));

    let mut x = gpu.zeros::<f32>(n).unwrap();
    let timing =
        time_direct_vs_graph(&gpu, launches, 2, 5, |s| launch_increment(s, &f, &mut x, 1.0)).unwrap();
    println!("{timing:?}");
    assert!(timing.direct_us_per_launch.is_finite() && timing.direct_us_per_launch > 0.0, "{timing:?}");
    assert!(timing.graph_us_per_launch.is_finite() && timing.graph_us_per_launch > 0.0, "{timing:?}");
    // Every launch ran: 2 + 5 direct sequences and 2 + 5 graph replays of `launches` each.
    let total = (2.0 * 7.0 * launches as f64) as f32;
    assert!(stream.clone_dtoh(&x).unwrap().iter().all(|&v| v == total));
}
