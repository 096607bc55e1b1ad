//! The roofline placed by DRAM bytes measured by Nsight Compute: reading the per-label CSV the
//! GPU run writes, and where the points land. The samples are the synthetic ones of
//! xtask/gpu/samples (made-up numbers): `ch12_roofline_dram_sample.csv` is what
//! `ncu_tables.py roofline` makes of `ncu_roofline_sample.csv` (in the layout ncu writes), as
//! xtask/gpu/test_ncu_tables.py checks. CPU only.

use ch12_performance_tuning::figures::{draw_all, parse_roofline_csv};
use ch12_performance_tuning::roofline::measured::{MeasuredBytes, parse_measured_csv, with_measured_bytes};
use ch12_performance_tuning::roofline::{KernelPoint, RooflineFigure, attainable};
use std::path::PathBuf;

mod common;
use common::h100_like_ceilings;

const MEASURED: &str = include_str!("../../../xtask/gpu/samples/ch12_roofline_dram_sample.csv");
const TIMED: &str = include_str!("../../../xtask/gpu/samples/ch12_roofline_labels_sample.csv");

#[test]
fn the_measured_csv_is_read_per_label() {
    let m = parse_measured_csv(MEASURED).unwrap();
    assert_eq!(m.len(), 2);
    let want = MeasuredBytes {
        label: "ch02 sdpa".into(),
        calls: 3,
        kernels_per_call: 1,
        read_bytes: 50_400_000.0,
        write_bytes: 16_777_216.0,
        min_bytes: 67_108_864.0,
        max_bytes: 76_777_216.0,
    };
    assert_eq!(m[0], want);
    assert_eq!(m[0].bytes(), 67_177_216.0);
    assert_eq!((m[1].label.as_str(), m[1].calls, m[1].kernels_per_call), ("ch04 unfused", 2, 3));
    // A label may hold commas: it is everything before the last six fields.
    let comma = "label,calls,kernels_per_call,dram_read_bytes,dram_write_bytes,dram_bytes_min,dram_bytes_max\n\
                 ch03 flash, f32,9,1,100,50,150,150\n";
    assert_eq!(parse_measured_csv(comma).unwrap()[0].label, "ch03 flash, f32");
}

#[test]
fn a_broken_measured_csv_is_refused_naming_the_problem() {
    let header = MEASURED.lines().next().unwrap();
    for (body, says) in [
        ("ch02,3,1,100,50\n", "fields where the header has 7"),
        ("ch02,0,1,100,50,150,150\n", "calls"),
        ("ch02,3,1,-100,50,150,150\n", "dram_read_bytes"),
        ("ch02,3,1,100,50,200,300\n", "outside [min, max]"),
    ] {
        let err = parse_measured_csv(&format!("{header}\n{body}")).unwrap_err().to_string();
        assert!(err.contains(says), "{body}: {err}");
    }
    assert!(parse_measured_csv("label,bytes\nx,1\n").unwrap_err().to_string().contains("header"));
}

#[test]
fn measured_bytes_move_chapter_2_under_the_memory_roof() {
    let timed = parse_roofline_csv(TIMED).unwrap();
    let placed = with_measured_bytes(&timed, &parse_measured_csv(MEASURED).unwrap()).unwrap();
    let bw = h100_like_ceilings().copy_bytes_per_s;
    let (modelled, measured) = (&timed[0], &placed[0]);
    assert_eq!(
        (measured.label.as_str(), measured.flops, measured.seconds),
        ("ch02 sdpa", modelled.flops, modelled.seconds)
    );
    assert_eq!(measured.bytes, 67_177_216.0);
    // Modelled: 0.5 FLOP/byte at 1.8 TFLOP/s, above the 1.5 TFLOP/s the memory roof allows there.
    assert!((modelled.intensity() - 0.5).abs() < 1e-3);
    assert!(modelled.flops_per_s() > attainable(modelled.intensity(), f64::INFINITY, bw));
    // Measured: about 1 000 FLOP/byte, under both the memory roof and the f32 roof.
    assert!((measured.intensity() - 1022.96).abs() < 0.01, "{}", measured.intensity());
    assert!(measured.fraction_of_roof(h100_like_ceilings().f32_gemm_flops_per_s, bw) < 1.0);
    assert_eq!(placed[1].bytes, 26_306_674_688.0 + 17_314_086_912.0);
}

#[test]
fn every_point_needs_its_measurement_and_every_measurement_its_point() {
    let timed = parse_roofline_csv(TIMED).unwrap();
    let measured = parse_measured_csv(MEASURED).unwrap();
    let err = with_measured_bytes(&timed, &measured[..1]).unwrap_err().to_string();
    assert!(err.contains("no measured DRAM bytes for the roofline point 'ch04 unfused'"), "{err}");
    let err = with_measured_bytes(&timed[..1], &measured).unwrap_err().to_string();
    assert!(err.contains("'ch04 unfused', which no timed point has"), "{err}");
    let zero = MeasuredBytes { read_bytes: 0.0, write_bytes: 0.0, min_bytes: 0.0, ..measured[0].clone() };
    assert!(with_measured_bytes(&timed[..1], &[zero]).is_err(), "zero bytes have no intensity");
}

#[test]
fn the_measured_figure_keeps_the_modelled_points_in_its_ranges() {
    let timed = parse_roofline_csv(TIMED).unwrap();
    let fig = RooflineFigure::measured(
        "t",
        &h100_like_ceilings(),
        timed.clone(),
        &parse_measured_csv(MEASURED).unwrap(),
    )
    .unwrap();
    assert_eq!(fig.modelled, timed);
    assert_eq!(fig.modelled_of(&fig.points[0]), Some(&timed[0]));
    let ((x0, x1), _) = fig.ranges().unwrap();
    let all: Vec<&KernelPoint> = fig.points.iter().chain(&fig.modelled).collect();
    assert!(all.iter().all(|p| x0 < p.intensity() && p.intensity() < x1));
    // The modelled-only figure has no hollow points.
    assert!(RooflineFigure::from_ceilings("t", &h100_like_ceilings(), timed).modelled.is_empty());
}

fn results_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ch12-roofline-measured-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ch12_roofline.csv"), TIMED).unwrap();
    std::fs::write(dir.join("ch12_ceilings.json"), serde_json::to_string(&h100_like_ceilings()).unwrap())
        .unwrap();
    dir
}

/// The roofline's x label (which says which bytes it counts), drawn from `dir` by draw_all.
fn roofline_x_label(dir: &std::path::Path) -> String {
    let out = dir.join("figs");
    draw_all(dir, &out).unwrap();
    let svg = std::fs::read_to_string(out.join("ch12_roofline.svg")).unwrap();
    let at = svg.find("arithmetic intensity").expect("the x label in the SVG");
    svg[at..at + svg[at..].find('<').unwrap()].trim().to_string()
}

#[test]
fn draw_all_says_which_bytes_the_roofline_shows() {
    let dir = results_dir("which");
    assert!(
        roofline_x_label(&dir).contains("FLOP per modelled byte: L2 hits counted as HBM traffic"),
        "{}",
        roofline_x_label(&dir)
    );
    std::fs::write(dir.join("ch12_roofline_dram.csv"), MEASURED).unwrap();
    assert!(
        roofline_x_label(&dir).contains("FLOP per DRAM byte, measured by Nsight Compute"),
        "{}",
        roofline_x_label(&dir)
    );
    // A measurement that does not match the timed labels: the modelled figure, saying so.
    std::fs::write(
        dir.join("ch12_roofline_dram.csv"),
        MEASURED.lines().take(2).collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    assert!(roofline_x_label(&dir).contains("FLOP per modelled byte: L2 hits counted as HBM traffic"));
    std::fs::remove_dir_all(&dir).ok();
}
