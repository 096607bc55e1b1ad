//! The benchmark grid the `ch04` binary runs (never the tests): every GPU backend at every
//! shape of `xtask/baselines/ch04_grid_shapes.txt`, on device buffers, timed with CUDA events
//! (a warm-up launch, then the median of up to `repeats` launches, fewer when they would take
//! more than a time budget).
//!
//! A backend that cannot run a shape is recorded as `unsupported` (Fused beyond its key
//! limit, Flash at a head dim without a kernel); Unfused when its scores do not fit, or any
//! backend whose allocation fails, as `oom`. Peak device memory is measured as in chapter 3
//! (`MemoryProbe`: the driver's free memory before uploading the inputs minus free memory
//! after the first call), so it includes the inputs, the outputs and, for Unfused, the scores
//! and cuBLAS's workspace.

use crate::backend::Backend;
use crate::dispatch::{AutotuneTable, ShapeKey, heuristic};
use crate::unfused::{UnfusedAttention, check_memory, check_sizes, score_bytes};
use attn_support::cudarc::driver::CudaSlice;
use attn_support::gpu::Gpu;
use attn_support::timing::{Timing, gpu_time};
use attn_support::{Error, Result};
use ch02_scaled_dot_product::SdpaMask;
use ch02_scaled_dot_product::bench::BenchShape;
use ch02_scaled_dot_product::gpu::{SdpaBuffers, SdpaKernel};
use ch03_flash_attention::bench::{MemoryProbe, random_buffers};
use ch03_flash_attention::gpu::FlashKernel;

/// Header of the timing CSV (shared with the PyTorch baseline script).
pub const CSV_HEADER: &str = ch02_scaled_dot_product::bench::CSV_HEADER;
/// Header of the peak-memory CSV.
pub const MEMORY_CSV_HEADER: &str = "impl,batch,heads,seq,head_dim,causal,peak_bytes,score_bytes";
/// Header of the dispatcher CSV.
pub const DISPATCH_CSV_HEADER: &str =
    "batch,heads,seq,head_dim,causal,best,best_ms,heuristic,heuristic_ms,table_pick,table_ms";

/// The three GPU backends, loaded once.
pub struct GpuBackends {
    pub fused: SdpaKernel,
    pub flash: FlashKernel,
    pub unfused: UnfusedAttention,
}

impl GpuBackends {
    pub fn load(gpu: &Gpu) -> Result<GpuBackends> {
        Ok(GpuBackends {
            fused: SdpaKernel::load(gpu)?,
            flash: FlashKernel::load(gpu)?,
            unfused: UnfusedAttention::load(gpu)?,
        })
    }

    /// Enqueue one call of `backend` on device buffers (`scores` is Unfused's work buffer).
    pub fn launch(
        &self,
        backend: Backend,
        gpu: &Gpu,
        buffers: &mut SdpaBuffers,
        scores: Option<&mut CudaSlice<f32>>,
    ) -> Result<()> {
        match (backend, scores) {
            (Backend::Fused, _) => self.fused.launch(gpu, buffers),
            (Backend::Flash, _) => self.flash.launch(gpu, buffers),
            (Backend::Unfused, Some(scores)) => self.unfused.launch(gpu, buffers, scores),
            (Backend::Unfused, None) => {
                Err(Error::InvalidArgument("the Unfused backend needs a score buffer".into()))
            }
        }
    }
}

/// What happened to one backend at one shape.
#[derive(Clone, Debug)]
pub enum Outcome {
    Timed { timing: Timing, peak_bytes: usize },
    Unsupported(String),
    OutOfMemory(String),
}

/// One backend at one shape.
#[derive(Clone, Debug)]
pub struct GridPoint {
    pub shape: BenchShape,
    pub backend: Backend,
    pub outcome: Outcome,
}

impl GridPoint {
    pub fn median_ms(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Timed { timing, .. } => Some(timing.median_ms),
            _ => None,
        }
    }

    pub fn tflops(&self) -> Option<f64> {
        self.median_ms().map(|ms| self.shape.flops() / (ms * 1e-3) * 1e-12)
    }

    fn prefix(&self) -> String {
        let s = self.shape;
        format!(
            "{},{},{},{},{},{}",
            self.backend.impl_name(),
            s.batch,
            s.heads,
            s.seq,
            s.head_dim,
            s.causal as u8
        )
    }

    /// `impl,batch,heads,seq,head_dim,causal,median_ms,tflops`; `unsupported` or `oom` in
    /// median_ms (and an empty tflops) when the backend did not run.
    pub fn csv(&self) -> String {
        match &self.outcome {
            Outcome::Timed { timing, .. } => {
                format!("{},{:.6},{:.4}", self.prefix(), timing.median_ms, self.tflops().unwrap_or(f64::NAN))
            }
            Outcome::Unsupported(_) => format!("{},unsupported,", self.prefix()),
            Outcome::OutOfMemory(_) => format!("{},oom,", self.prefix()),
        }
    }

    /// `impl,batch,heads,seq,head_dim,causal,peak_bytes,score_bytes` (peak empty when not run).
    pub fn memory_csv(&self) -> String {
        let peak = match &self.outcome {
            Outcome::Timed { peak_bytes, .. } => peak_bytes.to_string(),
            _ => String::new(),
        };
        format!("{},{peak},{}", self.prefix(), score_bytes(&self.shape.dims()))
    }
}

fn is_out_of_memory(e: &Error) -> bool {
    use attn_support::cudarc::driver::sys::CUresult;
    matches!(e, Error::Driver { source, .. } if source.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY)
}

// ANCHOR: bench_point
/// Measure `backend` at `shape`: check support, upload random inputs, one launch (its memory
/// is the peak, and it warms up), then up to `repeats` timed launches within `budget_ms`.
pub fn bench_point(
    gpu: &Gpu,
    backends: &GpuBackends,
    backend: Backend,
    shape: BenchShape,
    repeats: usize,
    budget_ms: f64,
) -> Result<GridPoint> {
    let dims = shape.dims();
    let point = |outcome| GridPoint { shape, backend, outcome };
    let supported = match backend {
        Backend::Fused => backends.fused.launch_config(&dims).map(|_| ()),
        Backend::Flash => backends.flash.launch_config(&dims).map(|_| ()),
        Backend::Unfused => check_sizes(&dims),
    };
    if let Err(e) = supported {
        return Ok(point(Outcome::Unsupported(e.to_string())));
    }
    let probe = MemoryProbe::start(gpu)?;
    if backend == Backend::Unfused
        && let Err(e) = check_memory(&dims, gpu.memory()?.0, true)
    {
        return Ok(point(Outcome::OutOfMemory(e.to_string())));
    }
    let measured = (|| -> Result<(Timing, usize)> {
        let mut buffers =
            random_buffers(gpu, shape.batch, shape.heads, shape.seq, shape.head_dim, shape.causal)?;
        let mut scores = match backend {
            Backend::Unfused => Some(gpu.zeros::<f32>(shape.batch * shape.heads * shape.seq * shape.seq)?),
            _ => None,
        };
        let mut launch = || backends.launch(backend, gpu, &mut buffers, scores.as_mut());
        launch()?;
        let peak_bytes = probe.used(gpu)?;
        let first = gpu_time(gpu, 0, 1, &mut launch)?;
        let affordable = (budget_ms / first.median_ms).floor() as usize;
        let timing = if affordable < 2 || repeats < 2 {
            first
        } else {
            gpu_time(gpu, 0, repeats.min(affordable), launch)?
        };
        gpu.synchronize()?;
        Ok((timing, peak_bytes))
    })();
    match measured {
        Ok((timing, peak_bytes)) => Ok(point(Outcome::Timed { timing, peak_bytes })),
        Err(e) if is_out_of_memory(&e) => Ok(point(Outcome::OutOfMemory(e.to_string()))),
        Err(e) => Err(e),
    }
}
// ANCHOR_END: bench_point

/// Launch every backend once on a tiny problem, so the driver's one-time reservations (and
/// cuBLAS's workspace) are made before any memory is measured.
pub fn warm_up(gpu: &Gpu, backends: &GpuBackends) -> Result<()> {
    let mut buffers = random_buffers(gpu, 1, 1, 64, 64, false)?;
    let mut scores = gpu.zeros::<f32>(64 * 64)?;
    for backend in Backend::ALL {
        backends.launch(backend, gpu, &mut buffers, Some(&mut scores))?;
    }
    gpu.synchronize()
}

/// The measured medians as an autotune table.
pub fn table_from_points(device: &str, points: &[GridPoint]) -> AutotuneTable {
    let mut table = AutotuneTable::new(device);
    for p in points {
        table.record(ShapeKey::new(&p.shape.dims(), p.shape.causal), p.backend, p.median_ms());
    }
    table
}

/// Per shape: the measured best, the heuristic's pick (no table) and the table's pick, each
/// with its measured median.
#[derive(Clone, Debug)]
pub struct DispatchRow {
    pub shape: BenchShape,
    pub best: Option<(Backend, f64)>,
    pub heuristic: Option<(Backend, Option<f64>)>,
    pub table_pick: Option<(Backend, Option<f64>)>,
}

impl DispatchRow {
    pub fn csv(&self) -> String {
        let s = self.shape;
        let name = |b: Option<Backend>| b.map_or("none".to_string(), |b| b.name().to_string());
        let ms = |m: Option<f64>| m.map_or(String::new(), |m| format!("{m:.6}"));
        format!(
            "{},{},{},{},{},{},{},{},{},{},{}",
            s.batch,
            s.heads,
            s.seq,
            s.head_dim,
            s.causal as u8,
            name(self.best.map(|b| b.0)),
            ms(self.best.map(|b| b.1)),
            name(self.heuristic.map(|b| b.0)),
            ms(self.heuristic.and_then(|b| b.1)),
            name(self.table_pick.map(|b| b.0)),
            ms(self.table_pick.and_then(|b| b.1)),
        )
    }

    /// The heuristic's time over the best time (1 = it picked the best).
    pub fn heuristic_slowdown(&self) -> Option<f64> {
        Some(self.heuristic?.1? / self.best?.1)
    }
}

/// Compare the dispatcher's picks with the measured best at every shape of the grid.
pub fn dispatch_rows(gpu: &Gpu, table: &AutotuneTable, points: &[GridPoint]) -> Vec<DispatchRow> {
    let dispatcher = crate::dispatch::Dispatcher::new(table.clone());
    let mut shapes: Vec<BenchShape> = Vec::new();
    for p in points {
        if !shapes.contains(&p.shape) {
            shapes.push(p.shape);
        }
    }
    let measured = |shape: &BenchShape, backend: Backend| {
        points.iter().find(|p| p.shape == *shape && p.backend == backend).and_then(GridPoint::median_ms)
    };
    let device = crate::backend::Device::Gpu(gpu);
    shapes
        .into_iter()
        .map(|shape| {
            let dims = shape.dims();
            let mask = SdpaMask { causal: shape.causal, key_padding: None };
            let best = table.get(&ShapeKey::new(&dims, shape.causal)).and_then(|e| e.fastest());
            let heuristic = heuristic(&dims, device).ok().map(|b| (b, measured(&shape, b)));
            let table_pick =
                dispatcher.pick(&dims, &mask, device).ok().map(|(b, _)| (b, measured(&shape, b)));
            DispatchRow { shape, best, heuristic, table_pick }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_follow_the_shared_format() {
        let shape = BenchShape { batch: 8, heads: 16, seq: 16384, head_dim: 64, causal: false };
        let timed = GridPoint {
            shape,
            backend: Backend::Flash,
            outcome: Outcome::Timed { timing: Timing::from_samples(vec![100.0]), peak_bytes: 42 },
        };
        let line = timed.csv();
        assert!(line.starts_with("ch04_flash,8,16,16384,64,0,100.000000,"), "{line}");
        let tflops = read_back(&[line]).remove(0).tflops.unwrap();
        assert!((tflops - 4.0 * 128.0 * 16384f64.powi(2) * 64.0 / 0.1 / 1e12).abs() < 1e-3);
        let oom = GridPoint {
            outcome: Outcome::OutOfMemory("no".into()),
            backend: Backend::Unfused,
            ..timed.clone()
        };
        assert_eq!(oom.csv(), "ch04_unfused,8,16,16384,64,0,oom,");
        assert_eq!(
            oom.memory_csv(),
            format!("ch04_unfused,8,16,16384,64,0,,{}", 4u128 * 128 * 16384 * 16384)
        );
        let unsupported =
            GridPoint { outcome: Outcome::Unsupported("no".into()), backend: Backend::Fused, ..timed };
        assert!(unsupported.csv().contains(",unsupported,"));
        // Both read back with no time, as the figures read recorded runs.
        let missing = read_back(&[oom.csv(), unsupported.csv()]);
        assert!(missing.iter().all(|r| r.median_ms.is_none() && r.tflops.is_none()), "{missing:?}");
        assert_eq!(missing[1].implementation, "ch04_fused");
    }

    /// CSV lines under [`CSV_HEADER`] parsed by the support crate's reader.
    fn read_back(lines: &[String]) -> Vec<attn_support::csv::BenchRecord> {
        let text = format!("{CSV_HEADER}\n{}", lines.join("\n"));
        attn_support::csv::bench_records(&attn_support::csv::Table::parse(&text, "test").unwrap()).unwrap()
    }

    #[test]
    fn the_table_of_points_keeps_the_fastest() {
        let shape = BenchShape { batch: 1, heads: 8, seq: 128, head_dim: 64, causal: false };
        let timed = |backend, ms| GridPoint {
            shape,
            backend,
            outcome: Outcome::Timed { timing: Timing::from_samples(vec![ms]), peak_bytes: 0 },
        };
        let points = [timed(Backend::Unfused, 0.3), timed(Backend::Fused, 0.1), timed(Backend::Flash, 0.2)];
        let table = table_from_points("test", &points);
        let entry = table.get(&ShapeKey::new(&shape.dims(), false)).unwrap();
        assert_eq!(entry.fastest(), Some((Backend::Fused, 0.1)));
    }
}
