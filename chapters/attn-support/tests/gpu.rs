//! The plumbing on a real GPU: open, compile, launch, copy, time. Skips without a GPU, fails
//! without one under ATTN_REQUIRE_GPU=1.

use attn_support::cudarc::driver::PushKernelArg;
use attn_support::error::DriverContext;
use attn_support::gpu::{KernelSource, cdiv, launch_config};
use attn_support::{Error, Gpu, Result, compare, data, timing};

const AXPY: KernelSource = KernelSource {
    file: "test_axpy.cu",
    code: r#"
extern "C" __global__ void axpy(const float* x, float* y, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}
"#,
};

/// Threads per block of the axpy launch (any multiple of 32 would do: one thread per element).
const AXPY_THREADS: usize = 256;

const BROKEN: KernelSource =
    KernelSource { file: "test_broken.cu", code: "extern \"C\" __global__ void f() { oops; }" };

#[test]
fn launch_copy_and_time_a_kernel() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("attn-support GPU plumbing test")? else { return Ok(()) };
    let n = 1000usize; // not a multiple of the block size
    let x = data::randn(n, 1);
    let y = data::randn(n, 2);
    let expected = &y + &(&x * 2.5f32);
    let x_dev = gpu.upload(&x)?;
    let mut y_dev = gpu.upload(&y)?;
    let f = gpu.function(&AXPY, "axpy")?;
    let cfg = launch_config((cdiv(n, AXPY_THREADS), 1, 1), AXPY_THREADS, 0)?;
    let (a, n_i) = (2.5f32, n as i32);
    let launch = |y_dev: &mut attn_support::cudarc::driver::CudaSlice<f32>| -> Result<()> {
        let mut b = gpu.stream.launch_builder(&f);
        b.arg(&x_dev).arg(y_dev).arg(&a).arg(&n_i);
        unsafe { b.launch(cfg) }.ctx("launching axpy")?;
        Ok(())
    };
    launch(&mut y_dev)?;
    let got = gpu.download(&y_dev, n)?;
    let c = compare(&got, &expected)?;
    assert!(c.within(1e-6), "axpy on {}: {c}", gpu.name());
    let t = timing::gpu_time(&gpu, 2, 5, || launch(&mut y_dev))?;
    assert!(t.median_ms > 0.0 && t.min_ms <= t.max_ms);
    // Back to back: the time per call of 10 calls per timing, and no timing of 0 calls.
    let per_call = timing::gpu_time_per_call(&gpu, 2, 5, 10, || launch(&mut y_dev))?;
    assert!(per_call.median_ms > 0.0 && per_call.min_ms <= per_call.max_ms && per_call.repeats == 5);
    let e = timing::gpu_time_per_call(&gpu, 0, 1, 0, || launch(&mut y_dev)).unwrap_err().to_string();
    assert!(e.contains("0 calls per timing"), "{e}");
    println!("{}: axpy n={n} median {:.4} ms", gpu.name(), t.median_ms);
    Ok(())
}

#[test]
fn compile_errors_carry_the_log() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("attn-support NVRTC error test")? else { return Ok(()) };
    match gpu.function(&BROKEN, "f") {
        Err(Error::Compile { kernel, log, .. }) => {
            assert_eq!(kernel, "test_broken.cu");
            assert!(log.contains("oops"), "log should name the bad identifier: {log}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn download_with_a_wrong_shape_is_an_error() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("attn-support download test")? else { return Ok(()) };
    let buf = gpu.upload(&data::randn(12, 3))?;
    assert!(gpu.download(&buf, (5, 3)).is_err());
    assert_eq!(gpu.download(&buf, (4, 3))?.dim(), (4, 3));
    Ok(())
}

const SHARED_FILL: KernelSource = KernelSource {
    file: "test_shared_fill.cu",
    code: r#"
extern "C" __global__ void shared_fill(float* out, int n) {
    extern __shared__ float tile[];
    for (int i = threadIdx.x; i < n; i += blockDim.x) tile[i] = (float)i;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = tile[n - 1 - i];
}
"#,
};

#[test]
fn shared_memory_over_48_kib_launches_after_the_opt_in_and_stops_at_the_limit() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("attn-support shared-memory opt-in test")? else { return Ok(()) };
    let f = gpu.function(&SHARED_FILL, "shared_fill")?;
    let limit = gpu.max_shared_mem_per_block()?;
    // 64 KiB: over the 48 KiB every device grants, within the opt-in limit of Volta and later.
    let n = 16 * 1024;
    let bytes = 4 * n;
    gpu.opt_in_shared_memory(&f, "shared_fill", bytes)?;
    let mut out = gpu.zeros::<f32>(n)?;
    let n_i = n as i32;
    let mut b = gpu.stream.launch_builder(&f);
    b.arg(&mut out).arg(&n_i);
    unsafe { b.launch(launch_config((1, 1, 1), AXPY_THREADS, bytes)?) }.ctx("launching shared_fill")?;
    let got = gpu.download(&out, n)?;
    assert_eq!((got[0], got[n - 1]), ((n - 1) as f32, 0.0));
    let e = gpu.opt_in_shared_memory(&f, "shared_fill", limit + 4).unwrap_err().to_string();
    assert!(e.contains("shared_fill") && e.contains(&limit.to_string()), "{e}");
    assert!(e.contains(&(limit + 4).to_string()), "{e}");
    Ok(())
}
