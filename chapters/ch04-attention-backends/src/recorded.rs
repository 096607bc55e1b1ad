//! Questions asked of a recorded grid run (`docs/src/results/<run>/`, read by
//! [`crate::figures::read_recorded_run`]): one implementation's time at a shape, which of our
//! backends won it, and the whole grid as the book's table. Notebook 04 states its ratios from
//! these, not from memory.

use crate::figures::{ALL_IMPLS, Combo, OUR_IMPLS, TimingRow};
use std::collections::BTreeSet;
use std::fmt::Write;

/// The run the book and notebook 04 show: an NVIDIA H100 80GB HBM3, 2026-11-25.
pub const RECORDED_RUN: &str = "h100-2026-11-25-ch04";

/// Every (B, H, d) and N of the grid without a mask, in order.
pub fn shapes(rows: &[TimingRow]) -> Vec<(Combo, usize)> {
    rows.iter()
        .filter(|r| !r.causal)
        .map(|r| (r.combo(), r.seq))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The median ms of `implementation` (`ch04_flash`, `torch_efficient`, ...) at a shape without a
/// mask; `None` where it did not run (out of memory) or was not timed.
pub fn time_of(rows: &[TimingRow], implementation: &str, combo: Combo, seq: usize) -> Option<f64> {
    rows.iter()
        .find(|r| r.impl_name == implementation && r.combo() == combo && r.seq == seq && !r.causal)?
        .median_ms
}

/// The fastest of our three backends at a shape, and its time.
pub fn best_of_ours(rows: &[TimingRow], combo: Combo, seq: usize) -> Option<(&'static str, f64)> {
    OUR_IMPLS
        .iter()
        .filter_map(|name| time_of(rows, name, combo, seq).map(|ms| (*name, ms)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The grid as the book prints it: median ms of every implementation per shape, the fastest of
/// ours, and EFFICIENT's time over Flash's (above 1×: our Flash is faster).
pub fn time_table(rows: &[TimingRow]) -> String {
    let short = |name: &str| name.trim_start_matches("ch04_").trim_start_matches("torch_").to_string();
    let mut s = format!("{:>2} {:>3} {:>3} {:>5} |", "B", "H", "d", "N");
    for name in ALL_IMPLS {
        let _ = write!(s, " {:>9}", short(name));
    }
    s.push_str(" | best    | EFFICIENT/Flash\n");
    for ((b, h, d), n) in shapes(rows) {
        let _ = write!(s, "{b:>2} {h:>3} {d:>3} {n:>5} |");
        for name in ALL_IMPLS {
            let cell = time_of(rows, name, (b, h, d), n).map_or("oom".to_string(), |ms| format!("{ms:.4}"));
            let _ = write!(s, " {cell:>9}");
        }
        let best = best_of_ours(rows, (b, h, d), n).map_or("—".to_string(), |(name, _)| short(name));
        let ratio =
            match (time_of(rows, "torch_efficient", (b, h, d), n), time_of(rows, "ch04_flash", (b, h, d), n))
            {
                (Some(e), Some(f)) => format!("{:.2}×", e / f),
                _ => "—".to_string(),
            };
        let _ = writeln!(s, " | {best:<7} | {ratio:>6}");
    }
    s.push_str("(median ms, f32, no mask; oom: ran out of device memory)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::figures::read_recorded_run;
    use attn_support::csv::recorded_run;

    #[test]
    fn the_recorded_grid_answers_as_the_book_table() {
        let rows = read_recorded_run(&recorded_run(RECORDED_RUN).unwrap()).unwrap();
        assert_eq!(shapes(&rows).len(), 20);
        let wins: Vec<&str> =
            shapes(&rows).iter().filter_map(|&(c, n)| best_of_ours(&rows, c, n)).map(|w| w.0).collect();
        assert_eq!(wins.iter().filter(|w| **w == "ch04_flash").count(), 17);
        assert_eq!(wins.iter().filter(|w| **w == "ch04_unfused").count(), 3);
        // The correction: EFFICIENT/Flash at B = 1, d = 128, N = 512 is 0.97×, not 0.73–0.81×.
        let ratio = |c, n| {
            time_of(&rows, "torch_efficient", c, n).unwrap() / time_of(&rows, "ch04_flash", c, n).unwrap()
        };
        assert_eq!(format!("{:.2}", ratio((1, 8, 128), 512)), "0.97");
        assert_eq!(format!("{:.2}", ratio((8, 16, 128), 2048)), "0.73");
        assert_eq!(time_of(&rows, "ch04_unfused", (8, 16, 64), 16_384), None, "out of memory");
        let table = time_table(&rows);
        assert_eq!(table.lines().count(), 22, "{table}");
        assert!(table.lines().any(|l| l.starts_with(" 1   8 128   512") && l.ends_with("0.97×")), "{table}");
    }
}
