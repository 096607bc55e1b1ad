//! Choosing a backend per shape.
//!
//! The [`Dispatcher`] looks the shape up in an [`AutotuneTable`] of measured medians (filled
//! by [`AutotuneTable::measure`], saved and loaded as JSON) and picks the fastest backend that
//! [`Backend::supports`] the shape. When the table has no entry for the shape it falls back to
//! [`heuristic`]:
//!
//! 1. **Flash** whenever it supports the shape (d ∈ {32, 64, 128}, dv = d): it never
//!    materialises scores, and it reads K and V once per query tile rather than once per row;
//! 2. else **Fused** when Nk ≤ [`FUSED_HEURISTIC_MAX_KEYS`] and it supports the shape: one
//!    kernel, no score traffic, and at short rows the per-row re-reading of K and V is cheap;
//! 3. else **Unfused** when its scores fit in memory: two cuBLAS GEMMs are fast at any d;
//! 4. else Fused if it supports the shape at all; else the error of each backend.
//!
//! The table is keyed by the exact shape ([`ShapeKey`]); a real dispatcher would bucket N.

use crate::backend::{Backend, Device};
use attn_support::gpu::Gpu;
use attn_support::timing::gpu_time;
use attn_support::{Error, Result};
use ch02_scaled_dot_product::{SdpaDims, SdpaMask};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Rows longer than this go to Unfused rather than Fused when Flash cannot run (the heuristic).
pub const FUSED_HEURISTIC_MAX_KEYS: usize = 4096;

/// What the table is keyed by: the sizes and whether the mask is causal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShapeKey {
    pub batch: usize,
    pub heads: usize,
    pub nq: usize,
    pub nk: usize,
    pub head_dim: usize,
    pub v_dim: usize,
    pub causal: bool,
}

impl ShapeKey {
    pub fn new(dims: &SdpaDims, causal: bool) -> ShapeKey {
        let SdpaDims { batch, heads, nq, nk, head_dim, v_dim } = *dims;
        ShapeKey { batch, heads, nq, nk, head_dim, v_dim, causal }
    }

    pub fn dims(&self) -> SdpaDims {
        let ShapeKey { batch, heads, nq, nk, head_dim, v_dim, .. } = *self;
        SdpaDims { batch, heads, nq, nk, head_dim, v_dim }
    }
}

/// One measured backend at one shape: the median in ms, or `None` when it could not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub backend: Backend,
    pub median_ms: Option<f64>,
}

/// The measurements of one shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub shape: ShapeKey,
    pub measurements: Vec<Measurement>,
}

impl TableEntry {
    /// The backend with the smallest measured median, if any ran.
    pub fn fastest(&self) -> Option<(Backend, f64)> {
        self.measurements
            .iter()
            .filter_map(|m| m.median_ms.map(|ms| (m.backend, ms)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }
}

// ANCHOR: table
/// Measured medians per shape and backend, with the device they were measured on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AutotuneTable {
    pub device: String,
    pub entries: Vec<TableEntry>,
}
// ANCHOR_END: table

impl AutotuneTable {
    pub fn new(device: impl Into<String>) -> AutotuneTable {
        AutotuneTable { device: device.into(), entries: Vec::new() }
    }

    /// The entry of `shape`, if measured.
    pub fn get(&self, shape: &ShapeKey) -> Option<&TableEntry> {
        self.entries.iter().find(|e| e.shape == *shape)
    }

    /// Add or replace the measurement of `backend` at `shape`.
    pub fn record(&mut self, shape: ShapeKey, backend: Backend, median_ms: Option<f64>) {
        let index = match self.entries.iter().position(|e| e.shape == shape) {
            Some(i) => i,
            None => {
                self.entries.push(TableEntry { shape, measurements: Vec::new() });
                self.entries.len() - 1
            }
        };
        let measurements = &mut self.entries[index].measurements;
        measurements.retain(|m| m.backend != backend);
        measurements.push(Measurement { backend, median_ms });
    }

    /// Time every backend at `shape` on `gpu` with `launch(backend)` (which enqueues one call
    /// on device buffers it owns, or errs when the backend cannot run it) and record the
    /// medians of `repeats` calls after `warmup`.
    pub fn measure(
        &mut self,
        gpu: &Gpu,
        shape: ShapeKey,
        warmup: usize,
        repeats: usize,
        mut launch: impl FnMut(Backend) -> Result<()>,
    ) -> Result<()> {
        for backend in Backend::ALL {
            let median = match backend.supports(&shape.dims(), Device::Gpu(gpu)) {
                Ok(()) => Some(gpu_time(gpu, warmup, repeats, || launch(backend))?.median_ms),
                Err(_) => None,
            };
            self.record(shape, backend, median);
        }
        Ok(())
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::InvalidArgument(format!("autotune table: {e}")))
    }

    pub fn from_json(text: &str) -> Result<AutotuneTable> {
        serde_json::from_str(text).map_err(|e| Error::InvalidArgument(format!("autotune table JSON: {e}")))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()?).map_err(|source| io_error(path, source))
    }

    pub fn load(path: &Path) -> Result<AutotuneTable> {
        AutotuneTable::from_json(&std::fs::read_to_string(path).map_err(|source| io_error(path, source))?)
    }
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

// ANCHOR: heuristic
/// The backend to use without measurements (see the module docs for the reasoning).
pub fn heuristic(dims: &SdpaDims, device: Device) -> Result<Backend> {
    let flash = Backend::Flash.supports(dims, device);
    if flash.is_ok() {
        return Ok(Backend::Flash);
    }
    let fused = Backend::Fused.supports(dims, device);
    if fused.is_ok() && dims.nk <= FUSED_HEURISTIC_MAX_KEYS {
        return Ok(Backend::Fused);
    }
    let unfused = Backend::Unfused.supports(dims, device);
    match (unfused, fused) {
        (Ok(()), _) => Ok(Backend::Unfused),
        (_, Ok(())) => Ok(Backend::Fused),
        (Err(u), Err(f)) => Err(Error::InvalidArgument(format!(
            "no backend supports {dims:?}: flash: {}; fused: {f}; unfused: {u}",
            flash.unwrap_err()
        ))),
    }
}
// ANCHOR_END: heuristic

/// Where a pick came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickSource {
    Table,
    Heuristic,
}

/// Picks a backend per shape: the table's fastest supported backend, else the heuristic.
#[derive(Clone, Debug, Default)]
pub struct Dispatcher {
    pub table: AutotuneTable,
}

impl Dispatcher {
    pub fn new(table: AutotuneTable) -> Dispatcher {
        Dispatcher { table }
    }

    // ANCHOR: pick
    /// The backend for `dims` under `mask` on `device`, and where the choice came from.
    pub fn pick(&self, dims: &SdpaDims, mask: &SdpaMask, device: Device) -> Result<(Backend, PickSource)> {
        let key = ShapeKey::new(dims, mask.causal);
        if let Some(entry) = self.table.get(&key) {
            let mut measured: Vec<(Backend, f64)> =
                entry.measurements.iter().filter_map(|m| m.median_ms.map(|ms| (m.backend, ms))).collect();
            measured.sort_by(|a, b| a.1.total_cmp(&b.1));
            if let Some(&(backend, _)) = measured.iter().find(|(b, _)| b.supports(dims, device).is_ok()) {
                return Ok((backend, PickSource::Table));
            }
        }
        heuristic(dims, device).map(|b| (b, PickSource::Heuristic))
    }
    // ANCHOR_END: pick
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(n: usize, d: usize) -> SdpaDims {
        SdpaDims { batch: 2, heads: 4, nq: n, nk: n, head_dim: d, v_dim: d }
    }

    #[test]
    fn table_round_trips_through_json() {
        let mut table = AutotuneTable::new("test device");
        let key = ShapeKey::new(&dims(512, 64), false);
        table.record(key, Backend::Unfused, Some(1.5));
        table.record(key, Backend::Fused, None);
        table.record(key, Backend::Flash, Some(0.5));
        table.record(key, Backend::Unfused, Some(1.25)); // replaces 1.5
        table.record(ShapeKey::new(&dims(128, 128), true), Backend::Fused, Some(0.1));
        let back = AutotuneTable::from_json(&table.to_json().unwrap()).unwrap();
        assert_eq!(back, table);
        assert_eq!(back.get(&key).unwrap().measurements.len(), 3);
        assert_eq!(back.get(&key).unwrap().fastest(), Some((Backend::Flash, 0.5)));
        let path = std::env::temp_dir().join(format!("ch04_table_{}.json", std::process::id()));
        table.save(&path).unwrap();
        assert_eq!(AutotuneTable::load(&path).unwrap(), table);
        std::fs::remove_file(&path).unwrap();
        assert!(AutotuneTable::from_json("{\"device\": 3}").is_err());
    }

    #[test]
    fn heuristic_without_a_table() {
        let d = Dispatcher::default();
        let none = SdpaMask::none();
        let pick = |n, hd| d.pick(&dims(n, hd), &none, Device::Cpu).unwrap();
        assert_eq!(pick(512, 64), (Backend::Flash, PickSource::Heuristic));
        assert_eq!(pick(512, 48), (Backend::Fused, PickSource::Heuristic));
        assert_eq!(pick(8192, 48), (Backend::Unfused, PickSource::Heuristic));
    }

    #[test]
    fn the_table_overrides_the_heuristic_but_not_supports() {
        let mut table = AutotuneTable::new("test");
        let shape = dims(512, 64);
        let key = ShapeKey::new(&shape, false);
        table.record(key, Backend::Flash, Some(2.0));
        table.record(key, Backend::Unfused, Some(1.0));
        let d = Dispatcher::new(table.clone());
        assert_eq!(
            d.pick(&shape, &SdpaMask::none(), Device::Cpu).unwrap(),
            (Backend::Unfused, PickSource::Table)
        );
        // Another mask is another key: the heuristic answers.
        assert_eq!(d.pick(&shape, &SdpaMask::causal(), Device::Cpu).unwrap().1, PickSource::Heuristic);
        // A table that names only an unsupported backend falls back to the heuristic.
        let odd = dims(512, 48);
        let mut table = AutotuneTable::new("test");
        table.record(ShapeKey::new(&odd, false), Backend::Flash, Some(0.1));
        let d = Dispatcher::new(table);
        assert_eq!(
            d.pick(&odd, &SdpaMask::none(), Device::Cpu).unwrap(),
            (Backend::Fused, PickSource::Heuristic)
        );
    }
}
