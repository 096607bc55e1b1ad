//! DRAM bytes measured by Nsight Compute, to place the roofline's kernels by the traffic HBM
//! actually served instead of by [`super::models`], whose counts include the re-reads that the
//! L2 cache serves (chapter 2's kernel reads each head's K and V once per query row; its model
//! says 0.5 FLOP/byte, which put it above the memory roof it cannot beat).
//!
//! The GPU run (`xtask/gpu/run.sh`, step 5) runs `ch12 --only roofline` under
//! `ncu --metrics dram__bytes_read.sum,dram__bytes_write.sum --cache-control all`, where
//! [`super::measure::measure_book_kernels`] brackets each label's calls with marker kernels,
//! and `ncu_tables.py roofline` sums the bytes of each call into `ch12_roofline_dram.csv`:
//!
//! `label,calls,kernels_per_call,dram_read_bytes,dram_write_bytes,dram_bytes_min,dram_bytes_max`
//!
//! — read and write of the call with the median traffic, and the least and most of any call.
//! ncu flushes the caches before each kernel, so these are the bytes of a call that starts from
//! a cold L2: at least the compulsory traffic (inputs read, outputs written once), plus whatever
//! the kernel's reuse does not keep on chip. The timed calls run warm: for inputs larger than
//! the 50 MB L2 (Q, K and V are 384 MiB for chapters 3–4 and the ladder) that changes little; chapter 2's
//! 48 MiB and chapter 1's single head (3 MiB) may read less from DRAM warm than cold.
//! The label is everything before the last six fields (labels may hold commas).

use super::KernelPoint;
use attn_support::csv::Table;
use attn_support::{Error, Result};

/// The header of `ch12_roofline_dram.csv`.
pub const MEASURED_CSV_HEADER: &str =
    "label,calls,kernels_per_call,dram_read_bytes,dram_write_bytes,dram_bytes_min,dram_bytes_max";

/// The file the GPU run writes beside `ch12_roofline.csv`.
pub const MEASURED_CSV_FILE: &str = "ch12_roofline_dram.csv";

/// One call of one roofline kernel, as Nsight Compute counted its DRAM traffic.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasuredBytes {
    pub label: String,
    /// Calls profiled (warm-ups and timed repeats).
    pub calls: usize,
    /// Kernel launches per call (e.g. 3 for Unfused: SGEMM, softmax, SGEMM).
    pub kernels_per_call: usize,
    /// `dram__bytes_read.sum` and `dram__bytes_write.sum` of the median call.
    pub read_bytes: f64,
    pub write_bytes: f64,
    /// The least and the most read + write of any profiled call.
    pub min_bytes: f64,
    pub max_bytes: f64,
}

impl MeasuredBytes {
    /// Read + write of the median call.
    pub fn bytes(&self) -> f64 {
        self.read_bytes + self.write_bytes
    }
}

/// Parse `ch12_roofline_dram.csv` (through [`Table::parse_labelled`]: the label is everything
/// before the last six fields).
pub fn parse_measured_csv(text: &str) -> Result<Vec<MeasuredBytes>> {
    let table = Table::parse_labelled(text, MEASURED_CSV_FILE)?;
    if table.header.join(",") != MEASURED_CSV_HEADER {
        return Err(Error::InvalidArgument(format!(
            "{MEASURED_CSV_FILE}: expected the header '{MEASURED_CSV_HEADER}', got '{}'",
            table.header.join(",")
        )));
    }
    table
        .rows()
        .map(|r| {
            let bad =
                |why: String| Error::InvalidArgument(format!("{MEASURED_CSV_FILE} line {}: {why}", r.line()));
            let text = |name: &str| r.text(name).unwrap_or_default();
            let count = |name: &str| {
                r.get::<usize>(name)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad(format!("{name} = {:?}", text(name))))
            };
            let bytes = |name: &str| {
                r.get::<f64>(name)
                    .ok()
                    .filter(|b| b.is_finite() && *b >= 0.0)
                    .ok_or_else(|| bad(format!("{name} = {:?} is not a byte count", text(name))))
            };
            let m = MeasuredBytes {
                label: r.text("label")?.to_string(),
                calls: count("calls")?,
                kernels_per_call: count("kernels_per_call")?,
                read_bytes: bytes("dram_read_bytes")?,
                write_bytes: bytes("dram_write_bytes")?,
                min_bytes: bytes("dram_bytes_min")?,
                max_bytes: bytes("dram_bytes_max")?,
            };
            if !(m.min_bytes <= m.bytes() && m.bytes() <= m.max_bytes) {
                return Err(bad(format!("the median call's {} bytes lie outside [min, max]", m.bytes())));
            }
            Ok(m)
        })
        .collect()
}

/// `points` (timed, with modelled bytes) placed by measured DRAM bytes instead: same label,
/// group, FLOPs and time, `bytes` = the median call's DRAM read + write. Every point needs a
/// measurement and every measurement a point: a partial roofline would mix the two kinds of
/// bytes on one chart.
pub fn with_measured_bytes(points: &[KernelPoint], measured: &[MeasuredBytes]) -> Result<Vec<KernelPoint>> {
    if let Some(m) = measured.iter().find(|m| !points.iter().any(|p| p.label == m.label)) {
        return Err(Error::InvalidArgument(format!(
            "measured bytes for '{}', which no timed point has",
            m.label
        )));
    }
    points
        .iter()
        .map(|p| {
            let m = measured.iter().find(|m| m.label == p.label).ok_or_else(|| {
                Error::InvalidArgument(format!("no measured DRAM bytes for the roofline point '{}'", p.label))
            })?;
            KernelPoint::new(p.label.clone(), p.group.clone(), p.flops, m.bytes(), p.seconds)
        })
        .collect()
}
