//! The roofline model: where a kernel stands against what the hardware allows.
//!
//! A kernel does `F` FLOPs and moves `B` bytes between global memory and the SMs. Its
//! **arithmetic intensity** is `I = F / B` (FLOP/byte). With a memory bandwidth `β` (bytes/s)
//! and a peak arithmetic rate `π` (FLOP/s), the time is at least `max(F/π, B/β)`, so the rate
//! it can reach is
//!
//! `attainable(I) = min(π, I·β)`.
//!
//! On log-log axes (intensity vs FLOP/s) this is a slanted line `I·β` (the memory roof) meeting
//! a flat line `π` (the compute roof) at the **ridge point** `I* = π / β`. A kernel left of the
//! ridge is memory-bound: only moving fewer bytes (raising I) makes it faster. A kernel right
//! of it is compute-bound: only better use of the arithmetic units does. The distance between
//! a kernel's point and the roof above it is what tuning can still win.
//!
//! Each arithmetic unit has its own flat roof: the bf16 tensor cores (f32 accumulation) for the
//! bf16 rungs of this chapter, the f32 FFMA units for the f32 kernels of chapters 1–4, whose
//! roof is 15–20× lower on an H100. Both roofs and the bandwidth are *measured*
//! ([`crate::ceilings`]), not taken from the datasheet.
//!
//! The byte counts of the book's kernels are in [`models`]; [`figure`] draws the chart.

pub mod figure;
pub mod measure;
pub mod measured;
pub mod models;

pub use figure::RooflineFigure;
pub use models::*;

use attn_support::{Error, Result};
use serde::{Deserialize, Serialize};

/// One measured kernel call, to be placed on the roofline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelPoint {
    /// The point's label on the chart, e.g. "ch03 flash f32".
    pub label: String,
    /// Points of one group share a colour (e.g. "chapter 1", "ladder").
    pub group: String,
    /// FLOPs of the call (multiply-add = 2).
    pub flops: f64,
    /// Bytes moved through global memory by the call (a model, see [`models`]).
    pub bytes: f64,
    /// Measured time of the call.
    pub seconds: f64,
}

impl KernelPoint {
    /// A point, with every number checked to be finite and positive.
    pub fn new(
        label: impl Into<String>,
        group: impl Into<String>,
        flops: f64,
        bytes: f64,
        seconds: f64,
    ) -> Result<KernelPoint> {
        let label = label.into();
        for (name, v) in [("flops", flops), ("bytes", bytes), ("seconds", seconds)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "roofline point '{label}': {name} must be finite and positive, got {v}"
                )));
            }
        }
        Ok(KernelPoint { label, group: group.into(), flops, bytes, seconds })
    }

    /// Arithmetic intensity `I = flops / bytes`, FLOP/byte.
    pub fn intensity(&self) -> f64 {
        self.flops / self.bytes
    }

    /// Achieved rate `flops / seconds`, FLOP/s.
    pub fn flops_per_s(&self) -> f64 {
        self.flops / self.seconds
    }

    /// Achieved memory traffic rate `bytes / seconds`, bytes/s.
    pub fn bytes_per_s(&self) -> f64 {
        self.bytes / self.seconds
    }

    /// Achieved rate as a fraction of `attainable(I)` under the roof `peak_flops_per_s`.
    pub fn fraction_of_roof(&self, peak_flops_per_s: f64, bandwidth_bytes_per_s: f64) -> f64 {
        self.flops_per_s() / attainable(self.intensity(), peak_flops_per_s, bandwidth_bytes_per_s)
    }
}

/// A flat (compute) roof: a peak rate and its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Roof {
    /// E.g. "bf16 GEMM (cuBLAS)".
    pub label: String,
    pub peak_flops_per_s: f64,
}

impl Roof {
    pub fn new(label: impl Into<String>, peak_flops_per_s: f64) -> Roof {
        Roof { label: label.into(), peak_flops_per_s }
    }
}

/// `min(peak, I · bandwidth)`: the highest FLOP/s a kernel of intensity `intensity` can reach.
pub fn attainable(intensity: f64, peak_flops_per_s: f64, bandwidth_bytes_per_s: f64) -> f64 {
    peak_flops_per_s.min(intensity * bandwidth_bytes_per_s)
}

/// The ridge point `peak / bandwidth`, FLOP/byte: the intensity where the two roofs meet.
pub fn ridge_point(peak_flops_per_s: f64, bandwidth_bytes_per_s: f64) -> f64 {
    peak_flops_per_s / bandwidth_bytes_per_s
}
