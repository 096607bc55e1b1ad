//! The chapter's results as text tables, the way notebook 12 prints them: each a `String`, so a
//! cell is one `print!` and the columns a reader compares sit side by side.

use crate::approximate::ApproxPoint;
use crate::figures::{BenchRow, GraphRow, LADDER_IMPLS, StreamRow, TORCH_IMPLS, tflops_at};
use crate::ladder::Rung;
use crate::occupancy::{BlockResources, SmLimits, blocks_per_sm};
use attn_support::Result;
use std::fmt::Write;

/// One line per rung at head dim `d`: kernel entry point, tile shape, threads and shared memory
/// per block, and the idea it adds (`[sm_90a]`: Hopper only). Rung 0 is chapter 3's f32 kernel.
pub fn rung_table(rungs: &[Rung], d: usize) -> String {
    let mut s =
        format!("{:<3} {:<36} {:>7} {:>7} {:>10}  idea\n", "", "entry point", "tile", "threads", "smem");
    for rung in rungs {
        let i = rung.index();
        let _ = match rung.spec(d) {
            Ok(spec) => writeln!(
                s,
                "r{i:<2} {:<36} {:>7} {:>7} {:>6.1} KiB  {}{}",
                spec.entry,
                spec.tiles.to_string(),
                spec.threads,
                spec.shared_bytes as f64 / 1024.0,
                rung.idea(),
                if spec.needs_sm90a { " [sm_90a]" } else { "" }
            ),
            Err(_) => writeln!(
                s,
                "r{i:<2} {:<36} {:>7} {:>7} {:>10}  {}",
                "ch03_flash_forward (f32)",
                "",
                "",
                "",
                rung.idea()
            ),
        };
    }
    s
}

/// Resident blocks per SM on an H100 for each `(rung, registers per thread)` at head dim `d`,
/// with the budget that limits it; the registers are the driver's report (the GPU run's log).
pub fn occupancy_table(rungs: &[(Rung, usize)], d: usize) -> Result<String> {
    let mut s = format!(
        "{:<22} {:>5} {:>7} {:>9} | blocks/SM by: {:>4} {:>5} {:>7} | {:>6}  limited by\n",
        "", "regs", "threads", "smem B", "regs", "smem", "threads", "blocks"
    );
    for &(rung, registers_per_thread) in rungs {
        let spec = rung.spec(d)?;
        let r =
            BlockResources { registers_per_thread, threads: spec.threads, shared_bytes: spec.shared_bytes };
        let o = blocks_per_sm(&r, &SmLimits::H100);
        let _ = writeln!(
            s,
            "{:<22} {:>5} {:>7} {:>9} | {:>18} {:>5} {:>7} | {:>6}  {}",
            rung.name(),
            registers_per_thread,
            spec.threads,
            spec.shared_bytes,
            o.by_registers,
            o.by_shared,
            o.by_threads,
            o.blocks,
            o.limited_by()
        );
    }
    Ok(s)
}

/// TFLOP/s of every rung and every PyTorch backend at one shape `(B, H, N, d)`, without and with
/// the causal mask ("—": not run there).
pub fn tflops_table(rows: &[BenchRow], shape: (usize, usize, usize, usize)) -> String {
    let mut s = format!("{:<22} {:>9} {:>9}\n", "TFLOP/s", "no mask", "causal");
    for (name, _) in LADDER_IMPLS.iter().chain(TORCH_IMPLS.iter()) {
        let cell =
            |causal| tflops_at(rows, name, shape, causal).map_or("—".to_string(), |t| format!("{t:.0}"));
        let _ = writeln!(s, "{:<22} {:>9} {:>9}", name, cell(false), cell(true));
    }
    s
}

/// The approximate-attention experiment: CPU times (ms) and relative errors against exact
/// attention on random and on local inputs, and the softmax mass the pattern drops.
pub fn approx_table(points: &[ApproxPoint]) -> String {
    let mut s = format!(
        "{:>5} {:>5} | {:>6} {:>6} {:>6} {:>6} ms | random: {:>7} {:>7} {:>7} | local: {:>7} {:>7} {:>7} {:>8}\n",
        "N",
        "kept",
        "exact",
        "sparse",
        "linear",
        "perf.",
        "sparse",
        "linear",
        "perf.",
        "sparse",
        "linear",
        "perf.",
        "dropped"
    );
    for p in points {
        let _ = writeln!(
            s,
            "{:>5} {:>4.0}% | {:>6.2} {:>6.2} {:>6.2} {:>6.2}    | {:>15.2e} {:>7.2e} {:>7.2e} | {:>14.2e} {:>7.2e} {:>7.2e} {:>8.1e}",
            p.n,
            100.0 * p.density,
            p.exact_ms,
            p.block_sparse_ms,
            p.linear_ms,
            p.performer_ms,
            p.random.block_sparse,
            p.random.linear,
            p.random.performer,
            p.local.block_sparse,
            p.local.linear,
            p.local.performer,
            p.local.dropped_mass
        );
    }
    s
}

/// Per-launch time, launched one by one and replayed from a CUDA graph, and what the graph saves.
pub fn graphs_table(rows: &[GraphRow]) -> String {
    let mut s = format!("{:>5} {:>11} {:>10} {:>7} {:>7}\n", "N", "direct µs", "graph µs", "gain", "saved");
    for r in rows {
        let saved = 1.0 - r.graph_us_per_launch / r.direct_us_per_launch;
        let _ = writeln!(
            s,
            "{:>5} {:>11.2} {:>10.2} {:>6.2}× {:>6.0}%",
            r.seq,
            r.direct_us_per_launch,
            r.graph_us_per_launch,
            r.direct_us_per_launch / r.graph_us_per_launch,
            100.0 * saved
        );
    }
    s
}

/// Each row of the streams CSV with the speed-ups computed from the columns beside them: the
/// same row's one-stream time over its spread time, and over its graph replay.
pub fn streams_table(rows: &[StreamRow]) -> String {
    let mut s = format!(
        "{:>3} {:>6} {:>2} | {:>10} {:>10} {:>7} | {:>8} {:>7} | {:>11}\n",
        "H", "blocks", "k", "1 stream", "k streams", "gain", "graph", "gain", "CPU enqueue"
    );
    for r in rows {
        let t = &r.timing;
        let _ = writeln!(
            s,
            "{:>3} {:>6} {:>2} | {:>7.3} ms {:>7.3} ms {:>6.2}× | {:>5.3} ms {:>6.2}× | {:>8.0} µs",
            r.heads,
            r.blocks,
            t.streams,
            t.serial_ms,
            t.concurrent_ms,
            t.speedup(),
            t.graph_ms,
            t.graph_speedup(),
            t.enqueue_ms * 1e3
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::{parse_graphs_csv, parse_streams_csv};

    #[test]
    fn rung_table_has_a_line_per_rung_and_marks_hopper_kernels() {
        let t = rung_table(&[Rung::F32Flash, Rung::RegisterSoftmax, Rung::Wgmma], 128);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].contains("ch03_flash_forward (f32)"));
        // 52 224 B = 51.0 KiB, 128 threads.
        assert!(lines[2].contains("ch12_register_softmax_d128") && lines[2].contains("51.0 KiB"));
        assert!(!lines[2].contains("[sm_90a]") && lines[3].ends_with("[sm_90a]"));
    }

    #[test]
    fn occupancy_table_names_the_limit() {
        let t = occupancy_table(&[(Rung::RegisterSoftmax, 167), (Rung::CpAsync, 176)], 128).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].ends_with("3  registers"), "{}", lines[1]);
        assert!(lines[2].ends_with("2  registers"), "{}", lines[2]);
        assert!(occupancy_table(&[(Rung::F32Flash, 233)], 128).is_err());
    }

    #[test]
    fn speedups_follow_from_the_columns_shown() {
        let csv = "entry,heads,seq,blocks,calls,streams,serial_ms,concurrent_ms,enqueue_ms,graph_ms\n\
                   e,1,2048,16,8,2,0.3184,0.1665,0.0616,0.1494\n";
        let t = streams_table(&parse_streams_csv(csv).unwrap());
        let row = t.lines().nth(1).unwrap();
        // 0.3184 / 0.1665 = 1.91 and 0.3184 / 0.1494 = 2.13, from the times on the same line.
        assert!(row.contains("0.318 ms") && row.contains("0.167 ms") && row.contains("1.91×"), "{row}");
        assert!(row.contains("2.13×") && row.contains("62 µs"), "{row}");
        let g = graphs_table(
            &parse_graphs_csv("seq,launches,direct_us_per_launch,graph_us_per_launch\n64,20,6.936,4.194\n")
                .unwrap(),
        );
        assert!(g.lines().nth(1).unwrap().contains("1.65×") && g.contains("40%"), "{g}");
    }
}
