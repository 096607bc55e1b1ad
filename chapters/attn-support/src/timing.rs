//! Timing: CUDA events on the GPU, `Instant` on the CPU. Both run `warmup` untimed calls
//! (first-launch module loading, cache warm-up, clock ramp) and report the median of `repeats`
//! timed calls, which is robust to the odd slow repeat that a mean would absorb.

use crate::error::{DriverContext, Error, Result};
use crate::gpu::Gpu;
use cudarc::driver::CudaStream;
use cudarc::driver::sys::CUevent_flags;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub repeats: usize,
}

impl Timing {
    /// Median, min and max of samples in milliseconds (NaN for no samples).
    pub fn from_samples(mut ms: Vec<f64>) -> Timing {
        if ms.is_empty() {
            return Timing { median_ms: f64::NAN, min_ms: f64::NAN, max_ms: f64::NAN, repeats: 0 };
        }
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median_ms = if n % 2 == 1 { ms[n / 2] } else { 0.5 * (ms[n / 2 - 1] + ms[n / 2]) };
        Timing { median_ms, min_ms: ms[0], max_ms: ms[n - 1], repeats: n }
    }

    /// Rate in units per second for `work` units done per call (e.g. FLOPs → FLOP/s).
    pub fn rate(&self, work: f64) -> f64 {
        work / (self.median_ms * 1e-3)
    }
}

/// Time `f` (which enqueues GPU work on `gpu.stream`) with CUDA events around each call.
pub fn gpu_time(gpu: &Gpu, warmup: usize, repeats: usize, f: impl FnMut() -> Result<()>) -> Result<Timing> {
    stream_time(&gpu.stream, warmup, repeats, f)
}

/// [`gpu_time`] of `calls` back-to-back calls of `f` between one pair of events, reported per
/// call. A single call of a few tens of microseconds is timed from an idle stream: the start
/// event fires at once and the GPU then waits for the host to submit the kernels, so the
/// host's launch time is counted as the kernel's. Back-to-back calls are what a decoder issues
/// (the host enqueues the next step while the GPU runs this one), and only the GPU's time
/// between the kernels remains. `calls` 0 is an error.
pub fn gpu_time_per_call(
    gpu: &Gpu,
    warmup: usize,
    repeats: usize,
    calls: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Timing> {
    if calls == 0 {
        return Err(Error::InvalidArgument("0 calls per timing: time at least one call".into()));
    }
    let t = gpu_time(gpu, warmup, repeats, || (0..calls).try_for_each(|_| f()))?;
    let c = calls as f64;
    Ok(Timing { median_ms: t.median_ms / c, min_ms: t.min_ms / c, max_ms: t.max_ms / c, repeats: t.repeats })
}

/// [`gpu_time`] on any stream: the events are recorded on `stream` itself, so that they
/// bracket exactly the work `f` enqueues there (e.g. a stream that replays a CUDA graph).
pub fn stream_time(
    stream: &Arc<CudaStream>,
    warmup: usize,
    repeats: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Timing> {
    for _ in 0..warmup {
        f()?;
    }
    let ctx = stream.context();
    let flags = Some(CUevent_flags::CU_EVENT_DEFAULT);
    let start = ctx.new_event(flags).ctx("creating a timing event")?;
    let end = ctx.new_event(flags).ctx("creating a timing event")?;
    let mut samples = Vec::with_capacity(repeats.max(1));
    for _ in 0..repeats.max(1) {
        start.record(stream).ctx("recording the start event")?;
        f()?;
        end.record(stream).ctx("recording the end event")?;
        samples.push(start.elapsed_ms(&end).ctx("reading the elapsed time")? as f64);
    }
    Ok(Timing::from_samples(samples))
}

/// Time a CPU function with the wall clock.
pub fn cpu_time<R>(warmup: usize, repeats: usize, mut f: impl FnMut() -> R) -> Timing {
    for _ in 0..warmup {
        std::hint::black_box(f());
    }
    let samples = (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    Timing::from_samples(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(Timing::from_samples(vec![3.0, 1.0, 2.0]).median_ms, 2.0);
        let t = Timing::from_samples(vec![4.0, 1.0, 2.0, 3.0]);
        assert_eq!((t.median_ms, t.min_ms, t.max_ms, t.repeats), (2.5, 1.0, 4.0, 4));
        assert_eq!(Timing::from_samples(vec![2.0]).rate(4.0), 2000.0);
    }
}
