//! The chapter's figures. Each function returns a value implementing
//! [`attn_support::plot::Figure`]: the binary saves it as PNG + SVG, the notebook shows it.
//!
//! - [`online_softmax_figure`]: one row's online softmax, block by block;
//! - [`TrafficFigure`]: counted HBM traffic of standard and tiled attention vs N and vs M;
//! - [`time_memory_chart`]: measured time and peak device memory vs N per implementation
//!   (the numbers come from the GPU benchmark of the binary).

use crate::io_model::{
    HbmTraffic, LoopOrder, flash_attention_hbm, flash_bound, flash2_attention_hbm, paper_tiles,
    standard_attention_hbm, standard_bound,
};
use crate::tiled::{OnlineStep, online_softmax_steps};
use attn_support::Result;
use attn_support::plot::{Chart, Line, Panels, Scale, SeriesLabelPosition};
use attn_support::units::kib;
use ch02_scaled_dot_product::reference::softmax_reference;

/// The example row of [`online_softmax_figure`]: 12 scores whose maximum moves up twice
/// (at keys 4 and 8), and one scalar value per key.
pub fn online_softmax_example() -> (Vec<f32>, Vec<f32>) {
    let scores = vec![0.3, -1.2, 1.0, 0.5, 2.4, -0.3, 1.1, 0.2, 3.1, -0.8, 2.0, 0.6];
    let values = vec![1.0, -0.5, 2.0, 0.0, -1.5, 1.0, 0.5, 3.0, 1.0, -2.0, -0.5, 2.5];
    (scores, values)
}

// ANCHOR: online_figure
/// One row's online softmax over `scores`, `block` keys at a time, with a scalar value per
/// key. Left: the weight each key would get if the row ended after each block (the last
/// block's are the softmax, dashed: exact). Middle: the running max m, the running sum l and
/// the correction e^{m_old − m_new}, with the final m and l dashed. Right: the output so far,
/// Σ_seen e^{s−m} v / l, converging to softmax(s)·v (dashed).
pub fn online_softmax_figure(scores: &[f32], values: &[f32], block: usize) -> Result<Panels> {
    let value_rows: Vec<Vec<f32>> = values.iter().map(|&v| vec![v]).collect();
    let steps = online_softmax_steps(scores, &value_rows, block)?;
    // The exact answers, in f64 and computed without any blocking.
    let exact_weights = softmax_reference(scores);
    let exact_output: f64 = exact_weights.iter().zip(values).map(|(p, &v)| p * v as f64).sum();
    let exact_max = scores.iter().map(|&s| s as f64).fold(f64::NEG_INFINITY, f64::max);
    let exact_sum: f64 = scores.iter().map(|&s| (s as f64 - exact_max).exp()).sum();

    let mut weight_lines: Vec<Line> = steps
        .iter()
        .map(|st| {
            // Only the keys seen so far: the others have no weight yet.
            let seen = st.weights.iter().take(st.keys_seen).enumerate();
            let pts = seen.map(|(j, &w)| (j as f64, w as f64)).collect();
            Line::solid(format!("after {} keys", st.keys_seen), pts)
        })
        .collect();
    let exact_pts = exact_weights.iter().enumerate().map(|(j, &w)| (j as f64, w)).collect();
    weight_lines.push(Line::dashed("softmax (exact)", exact_pts));

    let max_weight = steps.iter().flat_map(|st| &st.weights).fold(0.0f32, |a, &w| a.max(w)) as f64;

    let seen = |f: fn(&OnlineStep) -> f64| -> Vec<(f64, f64)> {
        steps.iter().map(|st| (st.keys_seen as f64, f(st))).collect()
    };
    let flat = |y: f64| vec![(0.0, y), (scores.len() as f64, y)];
    let state_lines = vec![
        Line::solid("running max m", seen(|st| st.m as f64)),
        Line::solid("running sum l = Σ e^(s − m)", seen(|st| st.l as f64)),
        Line::solid("correction e^(m_old − m_new)", seen(|st| st.correction as f64)),
        Line::dashed("max of the row", flat(exact_max)),
        Line::dashed("Σ e^(s − max) of the row", flat(exact_sum)),
    ];
    let output_lines = vec![
        Line::solid("output so far: Σ e^(s−m) v / l", seen(|st| st.output[0] as f64)),
        Line::dashed("softmax(s) · v (exact)", flat(exact_output)),
    ];
    let state_values = steps.iter().flat_map(|st| [st.m as f64, st.l as f64]).chain([exact_max, exact_sum]);
    let (steps_min, steps_max) =
        state_values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let x_keys = (0.0, scores.len() as f64 + 0.5);
    Ok(Panels::new(
        (620, 500),
        vec![
            Chart {
                lines: weight_lines,
                legend: SeriesLabelPosition::UpperRight,
                y_range: Some((-0.02, max_weight * 1.5)),
                ..Chart::new(format!("Weights after each block of {block} keys"), "key j", "e^(s_j − m) / l")
            },
            Chart {
                lines: state_lines,
                legend: SeriesLabelPosition::UpperLeft,
                x_range: Some(x_keys),
                // Room above the lines for the legend.
                y_range: Some((f64::min(0.0, steps_min) - 0.1, steps_max * 1.6)),
                ..Chart::new("Running state (m, l) of the row", "keys seen", "value")
            },
            Chart {
                lines: output_lines,
                legend: SeriesLabelPosition::UpperRight,
                x_range: Some(x_keys),
                ..Chart::new("Output, rescaled at every block", "keys seen", "output (scalar v)")
            },
        ],
    ))
}
// ANCHOR_END: online_figure

/// The parameters of the HBM traffic figure: head dim `d`; traffic vs N over `ns` with
/// `m_onchip` elements on chip; traffic vs M over `ms` at N = `n_for_m`. One head, f32.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficFigure {
    pub d: usize,
    pub ns: Vec<usize>,
    pub m_onchip: usize,
    pub ms: Vec<usize>,
    pub n_for_m: usize,
}

impl Default for TrafficFigure {
    /// d = 64; N = 256 … 65 536; M = 32 768 elements (128 KiB, about an SM's shared memory on
    /// A100/H100); M = 4 096 … 262 144 elements at N = 4 096.
    fn default() -> Self {
        TrafficFigure {
            d: 64,
            ns: (8..=16).map(|k| 1 << k).collect(),
            m_onchip: 32 * 1024,
            ms: (12..=18).map(|k| 1 << k).collect(),
            n_for_m: 4096,
        }
    }
}

const F32_BYTES: f64 = 4.0;

/// The on-chip memory of `m_elements` f32 values, in KiB.
fn f32_kib(m_elements: usize) -> f64 {
    kib(m_elements as f64 * F32_BYTES)
}

impl TrafficFigure {
    // ANCHOR: traffic_figure
    /// Three panels, counts from [`crate::io_model`] (equal to those measured on the CPU
    /// code). Left: bytes moved vs N for standard attention, FlashAttention (K/V outer, the
    /// paper's Algorithm 1) and the FlashAttention-2 order, with the paper's bounds drawn with
    /// constant 1 (dashed). Middle: the same vs on-chip memory M at one N. Right: each count
    /// divided by its bound: flat lines are the Θ(·) claims, their height the constant.
    pub fn figure(&self) -> Result<Panels> {
        let (d, m) = (self.d, self.m_onchip);
        let bytes = |t: Result<HbmTraffic>| -> Result<f64> { Ok(t?.total() as f64 * F32_BYTES) };
        let mut vs_n = [Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        let mut ratios = [Vec::new(), Vec::new(), Vec::new()];
        for &n in &self.ns {
            let x = n as f64;
            let counts = [
                bytes(standard_attention_hbm(n, d))?,
                bytes(flash_attention_hbm(n, d, m))?,
                bytes(flash2_attention_hbm(n, d, m))?,
            ];
            let bounds = [standard_bound(n, d) * F32_BYTES, flash_bound(n, d, m) * F32_BYTES];
            for (k, count) in counts.iter().enumerate() {
                vs_n[k].push((x, *count));
                ratios[k].push((x, count / bounds[k.min(1)]));
            }
            vs_n[3].push((x, bounds[0]));
            vs_n[4].push((x, bounds[1]));
        }
        let n = self.n_for_m;
        let mut vs_m = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for &m in &self.ms {
            let x = f32_kib(m);
            vs_m[0].push((x, bytes(standard_attention_hbm(n, d))?));
            vs_m[1].push((x, bytes(flash_attention_hbm(n, d, m))?));
            vs_m[2].push((x, bytes(flash2_attention_hbm(n, d, m))?));
            vs_m[3].push((x, flash_bound(n, d, m) * F32_BYTES));
        }
        let fa1 = paper_tiles(d, m, LoopOrder::KvOuter)?;
        let fa2 = paper_tiles(d, m, LoopOrder::QOuter)?;
        let [std_n, fa1_n, fa2_n, std_bound_n, fa_bound_n] = vs_n;
        let [std_m, fa1_m, fa2_m, fa_bound_m] = vs_m;
        let [std_ratio, fa1_ratio, fa2_ratio] = ratios;
        let max_ratio = [&std_ratio, &fa1_ratio, &fa2_ratio]
            .iter()
            .flat_map(|l| l.iter().map(|p| p.1))
            .fold(1.0, f64::max);
        let log_log = |title: String, x_desc: &str, lines| Chart {
            x_scale: Scale::Log2,
            y_scale: Scale::Log10,
            lines,
            legend: SeriesLabelPosition::UpperLeft,
            ..Chart::new(title, x_desc, "HBM traffic (bytes of f32)")
        };
        let kib_m = f32_kib(m);
        Ok(Panels::new(
            (640, 520),
            vec![
                log_log(
                    format!("vs N (d = {d}, M = {kib_m} KiB)"),
                    "sequence length N",
                    vec![
                        Line::solid("standard", std_n),
                        Line::solid(
                            format!("FlashAttention, K/V outer (Br={}, Bc={})", fa1.br, fa1.bc),
                            fa1_n,
                        ),
                        Line::solid(format!("FlashAttention-2 order (Br={}, Bc={})", fa2.br, fa2.bc), fa2_n),
                        Line::dashed("bound Nd + N²", std_bound_n),
                        Line::dashed("bound Nd + N²d²/M", fa_bound_n),
                    ],
                ),
                Chart {
                    legend: SeriesLabelPosition::LowerLeft,
                    ..log_log(
                        format!("vs on-chip memory M (N = {n}, d = {d})"),
                        "on-chip memory M (KiB of f32)",
                        vec![
                            Line::solid("standard", std_m),
                            Line::solid("FlashAttention, K/V outer", fa1_m),
                            Line::solid("FlashAttention-2 order", fa2_m),
                            Line::dashed("bound Nd + N²d²/M", fa_bound_m),
                        ],
                    )
                },
                Chart {
                    x_scale: Scale::Log2,
                    y_range: Some((0.0, max_ratio * 1.5)),
                    lines: vec![
                        Line::solid("standard ÷ (Nd + N²)", std_ratio),
                        Line::solid("K/V outer ÷ (Nd + N²d²/M)", fa1_ratio),
                        Line::solid("FlashAttention-2 order ÷ (Nd + N²d²/M)", fa2_ratio),
                    ],
                    ..Chart::new(
                        format!("Traffic ÷ bound (d = {d}, M = {kib_m} KiB)"),
                        "sequence length N",
                        "constant factor",
                    )
                },
            ],
        ))
    }
    // ANCHOR_END: traffic_figure
}

/// One measurement for [`time_memory_chart`]: an implementation's median time and peak
/// device memory at sequence length `n`. A run that could not happen (out of memory) has
/// `ms` and/or `peak_mib` = NaN and is left out of the lines.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeMemoryRow {
    pub implementation: String,
    pub n: usize,
    pub ms: f64,
    pub peak_mib: f64,
}

// ANCHOR: time_memory
/// Measured time and peak device memory vs N, one line per implementation (in the order of
/// first appearance in `rows`), log-log. `shape` describes the fixed sizes for the titles,
/// e.g. "B = 8, H = 16, d = 64, f32".
pub fn time_memory_chart(rows: &[TimeMemoryRow], shape: &str) -> Panels {
    let mut names: Vec<&str> = Vec::new();
    for row in rows {
        if !names.contains(&row.implementation.as_str()) {
            names.push(&row.implementation);
        }
    }
    // One line per implementation that has a finite point in this panel (the computed
    // "scores materialised" memory has no time). A line equal to an earlier one wherever both
    // have points (the two kernels need the same memory) is drawn dashed and says so, or one
    // would hide the other.
    let lines = |value: fn(&TimeMemoryRow) -> f64| -> Vec<Line> {
        let mut out: Vec<Line> = Vec::new();
        for name in &names {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.implementation == *name && value(r).is_finite())
                .map(|r| (r.n as f64, value(r)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            // Equal wherever both have a point (at least two of them).
            let twin_of = |l: &Line| {
                let shared: Vec<_> =
                    pts.iter().filter_map(|p| l.points.iter().find(|q| q.0 == p.0).map(|q| (p, q))).collect();
                shared.len() >= 2 && shared.iter().all(|(p, q)| p.1 == q.1)
            };
            match out.iter().find(|l| twin_of(l)).map(|l| l.label.clone()) {
                Some(twin) => out.push(Line::dashed(format!("{name} (same as {twin} where both ran)"), pts)),
                None => out.push(Line::solid(*name, pts)),
            }
        }
        out
    };
    let chart = |title: String, y_desc: &str, lines| Chart {
        x_scale: Scale::Log2,
        y_scale: Scale::Log10,
        lines,
        legend: SeriesLabelPosition::UpperLeft,
        ..Chart::new(title, "sequence length N", y_desc)
    };
    Panels::new(
        (640, 500),
        vec![
            chart(format!("Time ({shape})"), "median time (ms)", lines(|r| r.ms)),
            chart(format!("Peak device memory ({shape})"), "peak memory (MiB)", lines(|r| r.peak_mib)),
        ],
    )
}
// ANCHOR_END: time_memory
