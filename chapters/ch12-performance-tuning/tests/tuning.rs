//! The autotuner's table on the CPU: nearest-shape lookup, the heuristic when nothing matches,
//! and a save → load round trip that rejects a winner outside its family.

use ch12_performance_tuning::ch02::SdpaDims;
use ch12_performance_tuning::ladder::{Rung, TileShape};
use ch12_performance_tuning::tuning::{Family, TileTable, TunedEntry, heuristic};

fn entry(family: Family, batch_heads: usize, seq: usize, head_dim: usize, best: Rung) -> TunedEntry {
    TunedEntry { family, batch_heads, seq, head_dim, causal: false, candidates: vec![(best, 1.0)], best }
}

fn dims(bh: usize, n: usize, d: usize) -> SdpaDims {
    SdpaDims { batch: 1, heads: bh, nq: n, nk: n, head_dim: d, v_dim: d }
}

fn table() -> TileTable {
    let small = Rung::Tuned(TileShape::new(64, 64));
    let large = Rung::Tuned(TileShape::new(128, 128));
    TileTable {
        device: "test".into(),
        entries: vec![
            entry(Family::MmaSync, 128, 1024, 128, small),
            entry(Family::MmaSync, 128, 16384, 128, large),
            entry(Family::WgmmaOverlap, 128, 4096, 128, Rung::WgmmaOverlap(TileShape::new(192, 64))),
        ],
    }
}

#[test]
fn pick_takes_the_nearest_measured_shape_of_the_same_family_and_head_dim() {
    let t = table();
    // log2 distance: 2048 is nearer 1024 than 16384; 8192 is nearer 16384.
    assert_eq!(t.pick(Family::MmaSync, &dims(128, 2048, 128), false), Rung::Tuned(TileShape::new(64, 64)));
    assert_eq!(t.pick(Family::MmaSync, &dims(128, 8192, 128), false), Rung::Tuned(TileShape::new(128, 128)));
    assert_eq!(
        t.pick(Family::WgmmaOverlap, &dims(16, 512, 128), false),
        Rung::WgmmaOverlap(TileShape::new(192, 64))
    );
    // Another head dim, the causal mask or an unmeasured family: the heuristic.
    let d64 = dims(128, 4096, 64);
    assert_eq!(t.pick(Family::MmaSync, &d64, false), heuristic(Family::MmaSync, &d64));
    let d128 = dims(128, 4096, 128);
    assert_eq!(t.pick(Family::MmaSync, &d128, true), heuristic(Family::MmaSync, &d128));
    assert_eq!(t.pick(Family::Tma, &d128, false), heuristic(Family::Tma, &d128));
    // The heuristic always names a kernel that exists at that head dim.
    for family in [Family::MmaSync, Family::WgmmaOverlap, Family::Tma, Family::PingPong] {
        for d in [64, 128] {
            assert!(heuristic(family, &dims(8, 1024, d)).spec(d).is_ok(), "{family:?} d={d}");
        }
    }
}

#[test]
fn a_saved_table_loads_back_and_a_foreign_winner_is_refused() {
    let dir = std::env::temp_dir().join(format!("ch12-tuning-{}", std::process::id()));
    let path = dir.join("table.json");
    let t = table();
    t.save(&path).unwrap();
    assert_eq!(TileTable::load(&path).unwrap(), t);
    let mut bad = t.clone();
    bad.entries[0].best = Rung::Tuned(TileShape::new(96, 48)); // not in the tuner's space
    bad.save(&path).unwrap();
    let e = TileTable::load(&path).unwrap_err().to_string();
    assert!(e.contains("not a candidate"), "{e}");
    std::fs::write(&path, "{ not json").unwrap();
    assert!(TileTable::load(&path).unwrap_err().to_string().contains("not a tile table"));
    std::fs::remove_dir_all(dir).ok();
}
