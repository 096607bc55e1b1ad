//! Opening the GPU, compiling kernel files with NVRTC, launching, and moving ndarrays.
//!
//! CUDA is optional at run time: every function here returns [`Error::NoGpu`] with the reason
//! (no driver library, no NVRTC, no device) instead of panicking, so the CPU half of every
//! chapter runs anywhere. With `ATTN_REQUIRE_GPU=1` the callers turn "no GPU" into a failure.

use crate::error::{DriverContext, Error, Result};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, LaunchConfig, ValidAsZeroBits,
};
use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};
use ndarray::{Array, ArrayBase, Data, Dimension, IntoDimension};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

/// The environment variable that makes a missing GPU an error instead of a skip.
pub const REQUIRE_GPU_ENV: &str = "ATTN_REQUIRE_GPU";

/// True when `ATTN_REQUIRE_GPU` is set to anything but "" or "0".
pub fn gpu_required() -> bool {
    std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The environment variable `run.sh` sets while compute-sanitizer runs the GPU tests: the
/// sanitizer makes kernels 10–100× slower, so tests shrink their largest sizes under it.
pub const SANITIZER_ENV: &str = "ATTN_SANITIZER";

/// True under compute-sanitizer (`ATTN_SANITIZER` set to anything but "" or "0").
pub fn under_sanitizer() -> bool {
    std::env::var(SANITIZER_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The longest sequence a GPU test should use: `full`, or at most 512 under the sanitizer.
pub fn longest_test_len(full: usize) -> usize {
    if under_sanitizer() { full.min(512) } else { full }
}

/// A CUDA source file from the repository's `kernels/` folder, embedded in the binary so that
/// a binary copied to another machine carries its kernels. Make one with [`kernel_source!`](crate::kernel_source).
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    /// File name under `kernels/`, used in error messages and as the NVRTC program name.
    pub file: &'static str,
    /// The CUDA C++ source text.
    pub code: &'static str,
}

/// `kernel_source!("ch01_naive.cu")` embeds `kernels/ch01_naive.cu` of this repository.
/// `kernel_source!("common.cuh", "k.cu")` embeds a shared header followed by the kernel file
/// (NVRTC has no file system to `#include` from), and `kernel_source!("a.cuh", "b.cuh", "k.cu")`
/// two headers; `#line` directives keep the compiler's line numbers those of each file. It must be called from a crate under `chapters/`.
#[macro_export]
macro_rules! kernel_source {
    ($file:literal) => {
        $crate::gpu::KernelSource {
            file: $file,
            code: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../kernels/", $file)),
        }
    };
    ($header:literal, $header2:literal, $file:literal) => {
        $crate::gpu::KernelSource {
            file: $file,
            code: concat!(
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../kernels/", $header)),
                "\n#line 1 \"",
                $header2,
                "\"\n",
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../kernels/", $header2)),
                "\n#line 1 \"",
                $file,
                "\"\n",
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../kernels/", $file))
            ),
        }
    };
    ($header:literal, $file:literal) => {
        $crate::gpu::KernelSource {
            file: $file,
            code: concat!(
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../kernels/", $header)),
                "\n#line 1 \"",
                $file,
                "\"\n",
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../kernels/", $file))
            ),
        }
    };
}

/// One GPU: its context, the stream every chapter launches on, and the modules loaded so far.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    name: String,
    compute_capability: (i32, i32),
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
}

/// Run `body` on the GPU when there is one, after printing which device it is; without a GPU,
/// print why `what` is skipped and return `Ok(None)` (an error under `ATTN_REQUIRE_GPU=1`).
/// The one frame every GPU cell of the notebooks and every GPU section of a binary needs:
///
/// ```no_run
/// # use attn_support::{with_gpu, Result};
/// # fn main() -> Result<()> {
/// with_gpu("the GPU check", |gpu| {
///     let x = gpu.zeros::<f32>(16)?;
///     Ok(x.len())
/// })?;
/// # Ok(()) }
/// ```
pub fn with_gpu<T>(what: &str, body: impl FnOnce(&Gpu) -> Result<T>) -> Result<Option<T>> {
    let Some(gpu) = Gpu::open_or_skip(what)? else { return Ok(None) };
    println!("GPU: {} ({})", gpu.name(), gpu.arch());
    body(&gpu).map(Some)
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({}, {})", self.name, self.arch())
    }
}

impl Gpu {
    /// Open device 0, or say why not. Checks that the driver library and NVRTC can be loaded
    /// *before* any driver call: with dynamic loading, calling into a missing libcuda panics.
    pub fn open() -> Result<Gpu> {
        // SAFETY: these only try to dlopen the libraries; nothing is called through them.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::NoGpu(
                "the CUDA driver library (libcuda.so) was not found: install the NVIDIA driver".into(),
            ));
        }
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(Error::NoGpu(
                "NVRTC (libnvrtc.so) was not found: install the CUDA toolkit and put its lib64 \
                 folder on LD_LIBRARY_PATH"
                    .into(),
            ));
        }
        let count = CudaContext::device_count()
            .map_err(|e| Error::NoGpu(format!("the CUDA driver could not start: {e}")))?;
        if count < 1 {
            return Err(Error::NoGpu("the CUDA driver sees no device".into()));
        }
        let ctx = CudaContext::new(0).ctx("creating a context on device 0")?;
        let name = ctx.name().ctx("reading the device name")?;
        let compute_capability = ctx.compute_capability().ctx("reading the compute capability")?;
        let stream = ctx.default_stream();
        Ok(Gpu { ctx, stream, name, compute_capability, modules: Mutex::new(HashMap::new()) })
    }

    /// Open the GPU for `what`, or print why it is skipped and return `None`. Under
    /// `ATTN_REQUIRE_GPU=1` a missing GPU is an error instead, so a check cannot pass by
    /// skipping. The skip message goes to stdout: a notebook treats stderr as a failure.
    pub fn open_or_skip(what: &str) -> Result<Option<Gpu>> {
        match Gpu::open() {
            Ok(gpu) => Ok(Some(gpu)),
            Err(e) if gpu_required() => {
                Err(Error::NoGpu(format!("{what} requires a GPU ({REQUIRE_GPU_ENV}=1): {e}")))
            }
            Err(e) => {
                println!("skipped {what}: {e}");
                Ok(None)
            }
        }
    }

    /// The device name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The NVRTC architecture of this device, e.g. "sm_90".
    pub fn arch(&self) -> String {
        format!("sm_{}{}", self.compute_capability.0, self.compute_capability.1)
    }

    /// The compute capability as (major, minor).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }

    /// A kernel function from `source`, compiled for this device on first use (NVRTC output is
    /// cached per process, loaded modules per `Gpu`).
    pub fn function(&self, source: &KernelSource, name: &str) -> Result<CudaFunction> {
        self.function_for_arch(source, name, &self.arch())
    }

    /// [`Gpu::function`] compiled for an explicit NVRTC architecture, e.g. "sm_90a" for kernels
    /// that use Hopper's architecture-specific instructions (wgmma, setmaxnreg), which plain
    /// "sm_90" rejects. A file is compiled for one architecture per `Gpu`.
    pub fn function_for_arch(&self, source: &KernelSource, name: &str, arch: &str) -> Result<CudaFunction> {
        let module = {
            let mut modules = self.modules.lock().expect("module cache poisoned");
            match modules.get(source.file) {
                Some(m) => m.clone(),
                None => {
                    let ptx = compile(source, arch)?;
                    let m =
                        self.ctx.load_module(ptx).ctx(&format!("loading the module of {}", source.file))?;
                    modules.insert(source.file, m.clone());
                    m
                }
            }
        };
        module.load_function(name).map_err(|e| Error::Driver {
            context: format!("looking up kernel `{name}` in {}", source.file),
            source: e,
        })
    }

    /// Copy a host array to a new device buffer (in row-major order, whatever its layout).
    pub fn upload<T, S, D>(&self, a: &ArrayBase<S, D>) -> Result<CudaSlice<T>>
    where
        T: DeviceRepr + Copy,
        S: Data<Elem = T>,
        D: Dimension,
    {
        let owned;
        let slice = match a.as_slice() {
            Some(s) => s,
            None => {
                owned = a.iter().copied().collect::<Vec<T>>();
                &owned
            }
        };
        if slice.is_empty() {
            // cuMemAlloc(0) is an error; an empty array is a caller mistake in every chapter.
            return Err(Error::InvalidArgument(format!(
                "cannot upload an empty array of shape {:?}",
                a.shape()
            )));
        }
        self.stream.clone_htod(slice).ctx("copying an array to the device")
    }

    /// Copy a device buffer back into an array of the given shape.
    pub fn download<T, Sh>(&self, buf: &CudaSlice<T>, shape: Sh) -> Result<Array<T, Sh::Dim>>
    where
        T: DeviceRepr + Copy + Default,
        Sh: IntoDimension,
    {
        let dim = shape.into_dimension();
        if dim.size() != buf.len() {
            return Err(Error::InvalidArgument(format!(
                "device buffer holds {} elements, shape {:?} needs {}",
                buf.len(),
                dim.slice(),
                dim.size()
            )));
        }
        let v = self.stream.clone_dtoh(buf).ctx("copying a buffer to the host")?;
        Array::from_shape_vec(dim, v).map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    /// A zero-filled device buffer of `n` elements.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, n: usize) -> Result<CudaSlice<T>> {
        if n == 0 {
            return Err(Error::InvalidArgument("cannot allocate an empty device buffer".into()));
        }
        self.stream.alloc_zeros(n).ctx("allocating device memory")
    }

    /// Wait for all work on the stream.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().ctx("synchronising the stream")
    }

    /// (free, total) device memory in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().ctx("reading device memory")
    }

    /// The most dynamic shared memory one block may use, after opting in.
    pub fn max_shared_mem_per_block(&self) -> Result<usize> {
        max_shared_mem_per_block(&self.ctx)
    }

    /// [`opt_in_shared_memory`] on this device's context.
    pub fn opt_in_shared_memory(
        &self,
        function: &CudaFunction,
        entry: &str,
        dynamic_bytes: usize,
    ) -> Result<()> {
        opt_in_shared_memory(&self.ctx, function, entry, dynamic_bytes)
    }
}

/// The shared memory (static + dynamic) a block may use without opting in: 48 KiB on every
/// GPU since Volta (CUDA C++ Programming Guide, the compute-capability tables). Above it a launch
/// fails unless the kernel has opted in, see [`opt_in_shared_memory`].
pub const DEFAULT_SHARED_BYTES: usize = 48 * 1024;

/// Let `function` (the kernel `entry`, named in errors) launch with `dynamic_bytes` of dynamic
/// shared memory per block. When that plus the kernel's static shared memory is over
/// [`DEFAULT_SHARED_BYTES`], the kernel must opt in (`cuFuncSetAttribute` with
/// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`), up to the device's opt-in limit
/// ([`Gpu::max_shared_mem_per_block`]: 227 KiB on an H100); a request beyond that limit is an
/// error naming both numbers. At or under 48 KiB nothing is set, so calling this before every
/// launch costs a driver call only where the launch needs it.
pub fn opt_in_shared_memory(
    ctx: &CudaContext,
    function: &CudaFunction,
    entry: &str,
    dynamic_bytes: usize,
) -> Result<()> {
    let static_bytes =
        function.shared_size_bytes().ctx(&format!("reading the static shared memory of {entry}"))? as usize;
    let needed = static_bytes + dynamic_bytes;
    if needed <= DEFAULT_SHARED_BYTES {
        return Ok(());
    }
    let limit = max_shared_mem_per_block(ctx)?;
    check_shared_request(entry, static_bytes, dynamic_bytes, limit)?;
    ctx.bind_to_thread().ctx("binding the context to this thread")?;
    function
        .set_attribute(
            cudarc::driver::sys::CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            dynamic_bytes as i32,
        )
        .ctx(&format!("raising the dynamic shared-memory limit of {entry} to {dynamic_bytes} bytes"))
}

/// The check of [`opt_in_shared_memory`], apart so that it can be tested without a GPU.
fn check_shared_request(entry: &str, static_bytes: usize, dynamic_bytes: usize, limit: usize) -> Result<()> {
    if static_bytes + dynamic_bytes <= limit {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{entry} needs {} bytes of shared memory per block ({dynamic_bytes} dynamic + {static_bytes} \
         static), over this device's opt-in limit of {limit} bytes",
        static_bytes + dynamic_bytes
    )))
}

/// The device's opt-in limit on shared memory per block (see [`Gpu::max_shared_mem_per_block`]).
fn max_shared_mem_per_block(ctx: &CudaContext) -> Result<usize> {
    use cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN;
    ctx.attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        .map(|v| v as usize)
        .ctx("reading the shared-memory limit")
}

/// ⌈a / b⌉, the number of blocks needed to cover `a` items with blocks of `b`.
pub const fn cdiv(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

/// A launch shape from grid and block sizes, with dynamic shared memory in bytes. Checks that
/// the sizes fit the CUDA limits so an oversize grid is an error here, not a failed launch.
pub fn launch_config(grid: (usize, usize, usize), block: usize, shared_bytes: usize) -> Result<LaunchConfig> {
    let fits = |v: usize, max: usize| v >= 1 && v <= max;
    if !fits(grid.0, i32::MAX as usize) || !fits(grid.1, 65535) || !fits(grid.2, 65535) || !fits(block, 1024)
    {
        return Err(Error::InvalidArgument(format!(
            "launch shape out of range: grid {grid:?}, block {block} (limits: grid ≤ (2³¹−1, 65535, 65535), block ≤ 1024)"
        )));
    }
    Ok(LaunchConfig {
        grid_dim: (grid.0 as u32, grid.1 as u32, grid.2 as u32),
        block_dim: (block as u32, 1, 1),
        shared_mem_bytes: shared_bytes as u32,
    })
}

/// Where the CUDA headers live, for kernels that include them (NVRTC finds none by itself).
fn cuda_include_dirs() -> Vec<String> {
    let mut dirs = Vec::new();
    for var in ["CUDA_HOME", "CUDA_PATH"] {
        if let Ok(root) = std::env::var(var) {
            dirs.push(format!("{root}/include"));
        }
    }
    dirs.push("/usr/local/cuda/include".into());
    dirs.into_iter().filter(|d| std::path::Path::new(d).is_dir()).collect()
}

/// Compile `source` for `arch` with NVRTC, once per process per (source, arch).
pub fn compile(source: &KernelSource, arch: &str) -> Result<Ptx> {
    static CACHE: OnceLock<Mutex<HashMap<(u64, String), Ptx>>> = OnceLock::new();
    let mut h = DefaultHasher::new();
    source.code.hash(&mut h);
    let key = (h.finish(), arch.to_string());
    let cache = CACHE.get_or_init(Default::default);
    if let Some(ptx) = cache.lock().expect("ptx cache poisoned").get(&key) {
        return Ok(ptx.clone());
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(Error::NoGpu("NVRTC (libnvrtc.so) was not found".into()));
    }
    let mut options = vec![format!("--gpu-architecture={arch}"), "--std=c++17".into(), "-lineinfo".into()];
    options.extend(cuda_include_dirs().into_iter().map(|d| format!("--include-path={d}")));
    let opts = CompileOptions { options, name: Some(source.file.to_string()), ..Default::default() };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(source.code, opts).map_err(|e| match e {
        CompileError::CompileError { log, .. } => Error::Compile {
            kernel: source.file.into(),
            arch: arch.into(),
            log: log.to_string_lossy().into_owned(),
        },
        other => Error::Compile { kernel: source.file.into(), arch: arch.into(), log: format!("{other:?}") },
    })?;
    cache.lock().expect("ptx cache poisoned").insert(key, ptx.clone());
    Ok(ptx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_reports_a_reason_or_a_device() {
        // On a machine without CUDA this must be a NoGpu error with a reason, not a panic.
        match Gpu::open() {
            Ok(gpu) => assert!(gpu.arch().starts_with("sm_")),
            Err(Error::NoGpu(why)) => assert!(!why.is_empty()),
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }

    #[test]
    fn shared_requests_over_the_limit_name_both_numbers() {
        let h100 = 232_448; // 227 KiB, an H100's opt-in limit
        assert!(check_shared_request("k", 0, h100, h100).is_ok());
        let e = check_shared_request("ch12_tma_d128_bc128", 1024, h100, h100).unwrap_err().to_string();
        assert!(e.contains("ch12_tma_d128_bc128") && e.contains("233472") && e.contains("232448"), "{e}");
        assert!(e.contains("1024 static"), "{e}");
    }

    #[test]
    fn launch_config_rejects_oversize_blocks() {
        assert!(launch_config((1, 1, 1), 2048, 0).is_err());
        assert!(launch_config((0, 1, 1), 32, 0).is_err());
        assert!(launch_config((10, 2, 1), 256, 0).is_ok());
    }
}
