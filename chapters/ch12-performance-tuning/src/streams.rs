//! The system level: streams, i.e. letting independent kernels share the GPU at the same time.
//!
//! Kernels pushed into one stream run one after another: the second starts when the last
//! block of the first has finished. That is what a single stream promises, and it costs nothing
//! while each kernel fills the machine. A small attention call does not: at B=1, H=2, N=2048
//! rung 8 launches ⌈2048/128⌉·2 = 32 blocks of one block per SM, so 100 of the H100's 132 SMs
//! sit idle for the whole call. Eight such calls (eight requests of a server, or the eight
//! heads' groups of a model run separately) then take 8·t on one stream.
//!
//! Put on k streams, kernels with no order between them may run *concurrently*: the block
//! scheduler hands idle SMs to whichever launched grid has blocks left. With calls of `b`
//! blocks each on a machine of S SMs (one block per SM), about ⌊S/b⌋ calls fit side by side,
//! so the time of `c` calls drops from `c·t` to about `⌈c / min(k, ⌊S/b⌋)⌉·t`. Once one call
//! fills the machine (b ≥ S), streams only hide the tail of each grid and the gap between
//! launches: a few per cent.
//!
//! **Ordering across streams** is explicit: an event recorded on one stream marks "all work
//! pushed so far", and another stream can wait on it without blocking the CPU. A *fork* is one
//! event on the origin stream that every worker waits on; a *join* is one event per worker that
//! the origin waits on. [`StreamSet::time_serial_vs_concurrent`] brackets the fork and join
//! with the timing events on the origin stream, so the time covers every worker's calls.
//!
//! **cudarc's event tracking.** Once a context has a second stream, cudarc (by default) records
//! an event at each use of a buffer and makes the next use on another stream wait on it. That is
//! safe, but each launch then records events (a microsecond of CPU each, which is the cost we are
//! trying to measure), and a tracked context cannot be captured into a CUDA graph (see
//! [`crate::graphs`]). This module orders its streams itself, so [`StreamSet::new`] requires
//! tracking to be off: the caller turns it off (an `unsafe` call, since it then owns the rule
//! that no buffer is used on two streams without an event between, nor freed while in use).

use crate::graphs::capture;
use attn_support::cudarc::driver::sys::CUevent_flags;
use attn_support::cudarc::driver::{CudaEvent, CudaStream};
use attn_support::error::DriverContext;
use attn_support::gpu::Gpu;
use attn_support::timing::{Timing, stream_time};
use attn_support::{Error, Result};
use std::sync::Arc;
use std::time::Instant;

/// An origin stream and `k` worker streams, with the events that fork the workers off the
/// origin and join them back.
pub struct StreamSet {
    origin: Arc<CudaStream>,
    workers: Vec<Arc<CudaStream>>,
    forked: CudaEvent,
    joined: Vec<CudaEvent>,
}

/// The time of `calls` independent launches, on one stream and spread round-robin over
/// `streams` streams (each the median of the repeats, in ms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamTiming {
    pub calls: usize,
    pub streams: usize,
    pub serial_ms: f64,
    pub concurrent_ms: f64,
    /// Median wall-clock time the CPU spent enqueueing the spread calls (launches, events),
    /// in ms: the last call cannot start before the CPU has handed it over.
    pub enqueue_ms: f64,
    /// The spread calls captured once into a CUDA graph (fork, calls, join) and replayed with
    /// one launch: the same concurrency without the enqueue time.
    pub graph_ms: f64,
}

impl StreamTiming {
    /// How many times faster the calls run spread over the streams.
    pub fn speedup(&self) -> f64 {
        self.serial_ms / self.concurrent_ms
    }

    /// How many times faster the spread calls run replayed from a graph than on one stream.
    pub fn graph_speedup(&self) -> f64 {
        self.serial_ms / self.graph_ms
    }
}

impl StreamSet {
    /// A new origin stream and `k ≥ 1` workers (non-blocking streams: no implicit ordering
    /// with the legacy default stream `gpu.stream`, so synchronise `gpu.stream` before using
    /// buffers it wrote). Refused while cudarc's event tracking is on (module docs).
    pub fn new(gpu: &Gpu, k: usize) -> Result<StreamSet> {
        if k == 0 {
            return Err(Error::InvalidArgument("a stream set needs at least one worker stream".into()));
        }
        if gpu.ctx.is_event_tracking() {
            return Err(Error::InvalidArgument(
                "StreamSet orders its streams with its own events: turn cudarc's event tracking off \
                 first (CudaContext::disable_event_tracking), or every launch records events"
                    .into(),
            ));
        }
        let stream = || gpu.ctx.new_stream().ctx("creating a stream");
        let event =
            || gpu.ctx.new_event(Some(CUevent_flags::CU_EVENT_DISABLE_TIMING)).ctx("creating an event");
        Ok(StreamSet {
            origin: stream()?,
            workers: (0..k).map(|_| stream()).collect::<Result<_>>()?,
            forked: event()?,
            joined: (0..k).map(|_| event()).collect::<Result<_>>()?,
        })
    }

    /// The stream the timing events are recorded on, and that waits for every worker.
    pub fn origin(&self) -> &Arc<CudaStream> {
        &self.origin
    }

    /// The number of worker streams.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: a set has at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Enqueue `launch(call, stream)` for `call` in `0..calls`, call `i` on worker `i mod k`,
    /// each worker ordered after everything already on the origin, and the origin ordered after
    /// every worker's calls. Returns at once; synchronise the origin to wait.
    pub fn fork_join(
        &self,
        calls: usize,
        mut launch: impl FnMut(usize, &Arc<CudaStream>) -> Result<()>,
    ) -> Result<()> {
        self.forked.record(&self.origin).ctx("recording the fork event")?;
        for worker in &self.workers {
            worker.wait(&self.forked).ctx("waiting on the fork event")?;
        }
        for call in 0..calls {
            launch(call, &self.workers[call % self.workers.len()])?;
        }
        for (worker, joined) in self.workers.iter().zip(&self.joined) {
            joined.record(worker).ctx("recording a join event")?;
            self.origin.wait(joined).ctx("waiting on a join event")?;
        }
        Ok(())
    }

    /// Time `calls` launches of `launch(call, stream)` all on the origin stream, then spread over
    /// the workers with [`StreamSet::fork_join`], then that fork/join captured into a CUDA graph
    /// and replayed; medians of `repeats` after `warmup`. `launch` must follow the capture rules
    /// of [`crate::graphs`] (functions loaded and buffers allocated before).
    pub fn time_serial_vs_concurrent(
        &self,
        calls: usize,
        warmup: usize,
        repeats: usize,
        mut launch: impl FnMut(usize, &Arc<CudaStream>) -> Result<()>,
    ) -> Result<StreamTiming> {
        if calls == 0 {
            return Err(Error::InvalidArgument("time_serial_vs_concurrent needs at least one call".into()));
        }
        let origin = &self.origin;
        let serial = stream_time(origin, warmup, repeats, || (0..calls).try_for_each(|c| launch(c, origin)))?;
        let mut enqueue = Vec::with_capacity(repeats.max(1) + warmup);
        let concurrent = stream_time(origin, warmup, repeats, || {
            let start = Instant::now();
            let enqueued = self.fork_join(calls, &mut launch);
            enqueue.push(start.elapsed().as_secs_f64() * 1e3);
            enqueued
        })?;
        // Capturing the origin pulls every worker into the capture at its first wait on the fork
        // event, and the join events bring them back: the graph holds the whole diamond.
        let graph = capture(origin, |_| self.fork_join(calls, &mut launch))?;
        graph.upload().ctx("uploading the graph")?;
        let replay = stream_time(origin, warmup, repeats, || graph.launch().ctx("launching the graph"))?;
        origin.synchronize().ctx("synchronising the origin stream")?;
        Ok(StreamTiming {
            calls,
            streams: self.len(),
            serial_ms: serial.median_ms,
            concurrent_ms: concurrent.median_ms,
            enqueue_ms: Timing::from_samples(enqueue.split_off(warmup.min(enqueue.len()))).median_ms,
            graph_ms: replay.median_ms,
        })
    }
}
