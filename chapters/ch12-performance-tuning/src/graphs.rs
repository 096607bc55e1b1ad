//! The system level: CUDA graphs against the cost of launching a kernel.
//!
//! Every kernel launch costs the CPU a few microseconds (argument marshalling, the driver's
//! bookkeeping, writing the command into the stream's queue), and the GPU a little more to
//! start the grid. A kernel that runs for milliseconds does not notice; a FlashAttention call
//! at a decoding shape (one query row, a few hundred keys) runs for a few microseconds, about
//! as long as its launch. A sequence of k such kernels launched one by one then takes
//! `k · max(t_launch, t_kernel)`: when `t_launch > t_kernel` the GPU idles between kernels.
//!
//! A **CUDA graph** records the sequence once — kernels, their arguments and launch shapes,
//! their dependencies — and replays it with one launch call. The driver validates and uploads
//! it once at instantiation, so each replayed kernel costs about a microsecond of GPU-side
//! scheduling and nothing on the CPU: per kernel `t_kernel + ε` instead of `max(t_launch,
//! t_kernel)`. [`time_direct_vs_graph`] measures both per launch.
//!
//! **Capture.** The simplest way to build a graph is to *capture* a stream:
//! `cuStreamBeginCapture` puts it in a mode where work pushed into it is recorded, not run, and
//! `cuStreamEndCapture` returns the graph (cudarc: [`CudaStream::begin_capture`],
//! [`CudaStream::end_capture`], which also instantiates it into a launchable [`CudaGraph`]).
//! What capture requires:
//! - a stream other than the legacy default stream (`gpu.stream` is the legacy stream, which
//!   cannot be captured); [`capture_stream`] gives the per-thread default stream, which can be,
//!   and which orders itself with the legacy stream, so buffers written on `gpu.stream` before
//!   are safe to read;
//! - nothing inside that synchronises (`cuStreamSynchronize`, a device-to-host copy), allocates
//!   with `cuMemAlloc`, loads a module, or touches the legacy stream: load every kernel function
//!   before capturing, and allocate every buffer before;
//! - the pointers and scalars are frozen at capture: a replay reads and writes the same buffers
//!   (they must outlive the graph) with the same arguments;
//! - cudarc's cross-stream event tracking must be off (it is while the context has only its
//!   default stream, as in this book), or each launch would wait on events recorded outside
//!   the capture, which capture forbids.

use attn_support::cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use attn_support::cudarc::driver::{CudaFunction, CudaGraph, CudaSlice, CudaStream, PushKernelArg};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, cdiv, launch_config};
use attn_support::timing::{Timing, stream_time};
use attn_support::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::ceilings::{COPY_SOURCE, COPY_THREADS};

/// A stream that can be captured: the per-thread default stream of `gpu`'s context.
pub fn capture_stream(gpu: &Gpu) -> Arc<CudaStream> {
    gpu.ctx.per_thread_stream()
}

/// Capture what `enqueue` pushes into `stream` into a graph, instantiated and ready to launch.
/// If `enqueue` fails, the capture is ended (and its graph dropped) before the error returns,
/// so the stream is usable again.
pub fn capture(
    stream: &Arc<CudaStream>,
    enqueue: impl FnOnce(&Arc<CudaStream>) -> Result<()>,
) -> Result<CudaGraph> {
    if stream.context().is_managing_stream_synchronization() {
        return Err(Error::InvalidArgument(
            "cannot capture while cudarc tracks events across several streams: each launch would \
             wait on an event recorded outside the capture"
                .into(),
        ));
    }
    stream
        .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .ctx("beginning stream capture (the legacy default stream cannot be captured)")?;
    let enqueued = enqueue(stream);
    let ended = stream.end_capture(CUgraphInstantiate_flags(0)).ctx("ending stream capture");
    match (enqueued, ended) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(None)) => Err(Error::InvalidArgument("the capture recorded no work".into())),
        (Ok(()), Ok(Some(graph))) => Ok(graph),
    }
}

/// Time per launch of the same kernel launched directly and replayed from a graph.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphTiming {
    /// Launches per timed sequence (direct) and per graph.
    pub launches: usize,
    /// Median time of `launches` direct launches, divided by `launches`, in µs.
    pub direct_us_per_launch: f64,
    /// Median time of one graph launch (holding `launches` kernels), divided by `launches`, µs.
    pub graph_us_per_launch: f64,
}

impl GraphTiming {
    /// How many times faster the graph runs the sequence.
    pub fn speedup(&self) -> f64 {
        self.direct_us_per_launch / self.graph_us_per_launch
    }
}

/// Time `launches` calls of `launch_once` (each enqueues one kernel on the stream it is given)
/// launched one by one, against one graph that captured the same `launches` calls. Both run on
/// [`capture_stream`]; each is the median of `repeats` timings after `warmup` untimed ones.
/// `launch_once` must follow the capture rules of the module docs.
pub fn time_direct_vs_graph(
    gpu: &Gpu,
    launches: usize,
    warmup: usize,
    repeats: usize,
    mut launch_once: impl FnMut(&Arc<CudaStream>) -> Result<()>,
) -> Result<GraphTiming> {
    if launches == 0 {
        return Err(Error::InvalidArgument("time_direct_vs_graph needs at least one launch".into()));
    }
    let stream = capture_stream(gpu);
    let direct =
        stream_time(&stream, warmup, repeats, || (0..launches).try_for_each(|_| launch_once(&stream)))?;
    let graph = capture(&stream, |s| (0..launches).try_for_each(|_| launch_once(s)))?;
    graph.upload().ctx("uploading the graph")?;
    let replay = stream_time(&stream, warmup, repeats, || graph.launch().ctx("launching the graph"))?;
    stream.synchronize().ctx("synchronising the capture stream")?;
    let per_launch = |t: Timing| t.median_ms * 1e3 / launches as f64;
    Ok(GraphTiming {
        launches,
        direct_us_per_launch: per_launch(direct),
        graph_us_per_launch: per_launch(replay),
    })
}

/// The `ch12_increment` kernel (`x += delta`), loaded now so that launches can be captured.
pub fn increment_function(gpu: &Gpu) -> Result<CudaFunction> {
    gpu.function(&COPY_SOURCE, "ch12_increment")
}

/// Enqueue `x[i] += delta` for every element of `x` on `stream` (one thread per element).
pub fn launch_increment(
    stream: &Arc<CudaStream>,
    f: &CudaFunction,
    x: &mut CudaSlice<f32>,
    delta: f32,
) -> Result<()> {
    let n = x.len();
    let cfg = launch_config((cdiv(n, COPY_THREADS), 1, 1), COPY_THREADS, 0)?;
    let n = n as i64;
    let mut builder = stream.launch_builder(f);
    builder.arg(x).arg(&delta).arg(&n);
    // SAFETY: the arguments match `ch12_increment(float*, float, long long)`; threads past n
    // return without touching memory.
    unsafe { builder.launch(cfg) }.ctx("launching ch12_increment").map(|_| ())
}
