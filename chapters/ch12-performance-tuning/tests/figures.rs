//! The figures module on small made-up files: parsing (with `oom` and bad lines), each figure
//! rendering to PNG, and `draw_all` drawing what its inputs allow and skipping the rest.

use attn_support::plot::png_bytes;
use ch12_performance_tuning::figures::*;
use ch12_performance_tuning::ladder::{Rung, TileShape};
use ch12_performance_tuning::streams::StreamTiming;
use ch12_performance_tuning::tuning::Family;
use common::h100_like_ceilings;
use std::path::{Path, PathBuf};

mod common;

const LADDER: &str = "impl,batch,heads,seq,head_dim,causal,median_ms,tflops
r0_f32_flash,8,16,4096,128,0,30.0,36.6
r1_smem_softmax,8,16,4096,128,0,11.0,99.9
r2_register_softmax,8,16,4096,128,0,oom,
r5_tuned,8,16,4096,128,1,2.5,220.0
r7_wgmma_overlap,8,16,4096,128,0,2.9,379.1
r7_wgmma_overlap,8,16,8192,128,0,11.0,399.0
r5_tuned_64x64,8,16,4096,128,0,6.5,168.0
r5_tuned_128x64,8,16,4096,128,0,5.0,220.0
r7_wgmma_overlap_192x64,8,16,4096,128,0,2.9,379.1
r7_wgmma_overlap_128x128,8,16,4096,128,0,3.0,366.0
r8_tma,8,16,4096,128,1,2.2,500.0
";

const TORCH: &str = "impl,batch,heads,seq,head_dim,causal,median_ms,tflops
torch_cudnn_bf16,8,16,4096,128,0,1.7029,645.666
torch_cudnn_bf16,8,16,8192,128,0,unsupported,
";

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn bench_csv_parses_times_and_missing_values() {
    let rows = parse_bench_csv(LADDER).unwrap();
    assert_eq!(rows.len(), 11);
    let r1 = &rows[1];
    assert_eq!(
        (r1.impl_name.as_str(), r1.batch, r1.heads, r1.seq, r1.head_dim),
        ("r1_smem_softmax", 8, 16, 4096, 128)
    );
    assert!(!r1.causal && r1.median_ms == Some(11.0));
    // TFLOP/s from the shape: 4·B·H·N²·d / t, halved when causal.
    let full = 4.0 * 128.0 * 4096f64.powi(2) * 128.0;
    assert!(close(r1.tflops().unwrap(), full / 11e-3 * 1e-12));
    assert!(close(rows[3].tflops().unwrap(), full / 2.0 / 2.5e-3 * 1e-12));
    assert_eq!((rows[2].median_ms, rows[2].tflops()), (None, None), "oom is no value");
    assert!(parse_bench_csv("impl,batch\nx,1\n").is_err());
    assert!(
        parse_bench_csv("impl,batch,heads,seq,head_dim,causal,median_ms,tflops\nx,1,2,many,4,0,1,1\n")
            .is_err()
    );
}

#[test]
fn other_files_parse_and_bad_lines_are_errors() {
    let graphs =
        parse_graphs_csv("seq,launches,direct_us_per_launch,graph_us_per_launch\n128,1000,4.5,1.5\n")
            .unwrap();
    assert_eq!(
        graphs,
        [GraphRow { seq: 128, launches: 1000, direct_us_per_launch: 4.5, graph_us_per_launch: 1.5 }]
    );
    assert!(
        parse_graphs_csv("seq,launches,direct_us_per_launch,graph_us_per_launch\n128,1000,4.5\n").is_err()
    );
    assert!(parse_graphs_csv("seq,launches\n").is_err());

    let header = "entry,heads,seq,blocks,calls,streams,serial_ms,concurrent_ms,enqueue_ms,graph_ms";
    let streams =
        parse_streams_csv(&format!("{header}\nch12_tma_d128_bc128,2,2048,32,8,4,0.40,0.11,0.05,0.06\n"))
            .unwrap();
    assert_eq!(
        streams,
        [StreamRow {
            entry: "ch12_tma_d128_bc128".into(),
            heads: 2,
            seq: 2048,
            blocks: 32,
            timing: StreamTiming {
                calls: 8,
                streams: 4,
                serial_ms: 0.40,
                concurrent_ms: 0.11,
                enqueue_ms: 0.05,
                graph_ms: 0.06
            },
        }]
    );
    assert!(
        parse_streams_csv(&format!("{header}\nch12_tma_d128_bc128,2,2048,32,8,4,0.40,0.11,0.05\n")).is_err()
    );
    assert!(
        parse_streams_csv(&format!("{header}\nch12_tma_d128_bc128,two,2048,32,8,4,0.40,0.1,0.05,0.06\n"))
            .is_err()
    );

    let points =
        parse_roofline_csv("label,group,flops,bytes,seconds\nch03 flash, f32,f32,4e9,1e8,2e-3\n").unwrap();
    assert_eq!((points[0].label.as_str(), points[0].group.as_str()), ("ch03 flash, f32", "f32"));
    assert!(close(points[0].intensity(), 40.0) && close(points[0].flops_per_s(), 2e12));
    // A zero time cannot be placed on a log-log chart: KernelPoint refuses it.
    assert!(parse_roofline_csv("label,group,flops,bytes,seconds\na,g,1e9,1e6,0\n").is_err());
}

#[test]
fn candidate_rows_rebuild_the_tile_table() {
    assert_eq!(candidate_rung("r5_tuned_128x64"), Some(Rung::Tuned(TileShape::new(128, 64))));
    assert_eq!(candidate_rung("r7_wgmma_overlap_192x64"), Some(Rung::WgmmaOverlap(TileShape::new(192, 64))));
    assert_eq!(candidate_rung("r5_tuned"), None);
    assert_eq!(candidate_rung("r5_tuned_12xab"), None);
    let table = tile_table_from_rows(&parse_bench_csv(LADDER).unwrap());
    assert_eq!(table.entries.len(), 2);
    let mma = &table.entries[0];
    assert_eq!(
        (mma.family, mma.batch_heads, mma.seq, mma.head_dim, mma.causal),
        (Family::MmaSync, 128, 4096, 128, false)
    );
    assert_eq!(mma.best, Rung::Tuned(TileShape::new(128, 64)));
    assert_eq!(table.entries[1].best, Rung::WgmmaOverlap(TileShape::new(192, 64)));
}

#[test]
fn ladder_figure_takes_each_rung_at_the_shape() {
    let mut rows = parse_bench_csv(LADDER).unwrap();
    rows.extend(parse_bench_csv(TORCH).unwrap());
    assert_eq!(ladder_shape(&rows), Some(LADDER_SHAPE));
    let fig = LadderFigure::from_rows(&rows, LADDER_SHAPE).unwrap();
    let labels: Vec<&str> = fig.panels[0].bars.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(labels, ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"]);
    // The CSV names of the fixed rungs are the ladder's own names.
    for rung in Rung::FIXED {
        assert_eq!(LADDER_IMPLS[rung.index()].0, rung.name());
    }
    let at = |panel: usize, rung: usize| fig.panels[panel].bars[rung].1;
    assert!(close(at(0, 1).unwrap(), rows[1].tflops().unwrap()));
    assert_eq!((at(0, 2), at(0, 5), at(1, 1)), (None, None, None));
    assert!(close(at(1, 5).unwrap(), rows[3].tflops().unwrap()));
    assert_eq!(fig.panels[0].references.len(), 1);
    assert!(fig.panels[1].references.is_empty());
    assert_eq!(&png_bytes(&fig).unwrap()[1..4], b"PNG");
    assert!(LadderFigure::from_rows(&rows, (1, 1, 64, 64)).is_err());
}

#[test]
fn every_figure_renders_from_small_data() {
    let mut rows = parse_bench_csv(LADDER).unwrap();
    rows.extend(parse_bench_csv(TORCH).unwrap());
    let chart = tflops_vs_n_figure(&rows, 128, false);
    let r7 = chart.lines.iter().find(|l| l.label.starts_with("r7")).unwrap();
    assert_eq!(r7.points.len(), 2);
    assert!(r7.points[0].0 < r7.points[1].0, "points sorted by N");
    assert_eq!(&png_bytes(&chart).unwrap()[1..4], b"PNG");
    let sweep = tflops_vs_n_panels(&rows).unwrap();
    assert_eq!(sweep.grid.figures.len(), 2, "only d = 128 has rows");
    assert!(png_bytes(&sweep).is_ok());
    assert!(tflops_vs_n_panels(&[]).is_err());

    let graphs = [
        GraphRow { seq: 256, launches: 100, direct_us_per_launch: 4.0, graph_us_per_launch: 1.5 },
        GraphRow { seq: 128, launches: 100, direct_us_per_launch: 3.9, graph_us_per_launch: 1.2 },
    ];
    assert!(png_bytes(&graphs_figure(&graphs)).is_ok());

    let stream_row = |heads: usize, streams: usize, concurrent_ms: f64| StreamRow {
        entry: "e".into(),
        heads,
        seq: 2048,
        blocks: 16 * heads,
        timing: StreamTiming {
            calls: 8,
            streams,
            serial_ms: 0.8,
            concurrent_ms,
            enqueue_ms: 0.1,
            graph_ms: 0.5,
        },
    };
    let stream_rows =
        [stream_row(1, 2, 0.4), stream_row(1, 1, 0.8), stream_row(16, 1, 0.8), stream_row(16, 2, 0.75)];
    let panels = streams_figure(&stream_rows);
    // One line per call size, points sorted by k, y = serial / spread (CPU-launched, then graph).
    let (cpu, graph) = (&panels.figures[0], &panels.figures[1]);
    assert_eq!(cpu.lines.len(), 2);
    assert_eq!(cpu.lines[0].points, [(1.0, 1.0), (2.0, 2.0)]);
    assert_eq!(graph.lines[0].points, [(1.0, 1.6), (2.0, 1.6)]);
    assert!(png_bytes(&panels).is_ok());

    let table = tile_table_from_rows(&rows);
    let autotune = autotune_figure(&table).unwrap();
    // best time / time: 5.0 / 6.5 for 64×64 (in column order 64x64, 128x64).
    assert!(close(autotune.figures[0].data[[0, 0]], 5.0 / 6.5) && autotune.figures[0].data[[0, 1]] == 1.0);
    assert!(png_bytes(&autotune).is_ok());
    assert!(autotune_figure(&Default::default()).is_err());
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ch12-figures-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn names(files: &[PathBuf]) -> Vec<String> {
    files.iter().filter_map(|f| Some(f.file_name()?.to_str()?.to_string())).collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn draw_all_draws_what_it_has_and_skips_the_rest() {
    let results = scratch_dir("results");
    let out = results.join("figs");
    // Nothing there: nothing drawn, no error.
    assert!(draw_all(&results.join("absent"), &out).unwrap().is_empty());

    write(&results, "ch12_ladder.csv", LADDER);
    write(&results, "torch_cudnn_ch12.csv", TORCH);
    write(&results, "ch12_roofline.csv", "label,group,flops,bytes,seconds\nr7,ladder,4.4e12,3.4e10,1.2e-2\n");
    let files = draw_all(&results, &out).unwrap();
    let expected = ["ch12_ladder", "ch12_tflops_vs_n", "ch12_autotune"];
    let want: Vec<String> = expected.iter().flat_map(|n| [format!("{n}.png"), format!("{n}.svg")]).collect();
    assert_eq!(names(&files), want, "the roofline needs ch12_ceilings.json too");
    assert!(files.iter().all(|f| std::fs::metadata(f).unwrap().len() > 1000));

    write(&results, "ch12_ceilings.json", &serde_json::to_string(&h100_like_ceilings()).unwrap());
    write(&results, "ch12_graphs.csv", "seq,launches,direct_us_per_launch,graph_us_per_launch\n64,10,4,1\n");
    let files = draw_all(&results, &out).unwrap();
    assert_eq!(files.len(), 10);
    assert!(names(&files).contains(&"ch12_roofline.png".to_string()));

    // A file that is there but broken is an error, not a silent skip.
    write(&results, "ch12_graphs.csv", "seq,launches,direct_us_per_launch,graph_us_per_launch\n64,x,4,1\n");
    assert!(draw_all(&results, &out).is_err());
    std::fs::remove_dir_all(&results).ok();
}
