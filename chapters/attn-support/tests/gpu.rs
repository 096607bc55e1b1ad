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
    let cfg = launch_config((cdiv(n, 256), 1, 1), 256, 0)?;
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
