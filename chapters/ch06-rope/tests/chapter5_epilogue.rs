//! Chapter 5's QKV epilogue applied RoPE from cos/sin tables it was handed
//! (`llama_rope_tables`, `rotate_half_with_table`) before this chapter explained them. This
//! chapter derives the same thing from its own `RopeConfig`: the tables agree bit for bit, and
//! so does the rotation, so chapter 5's fused kernel computes this chapter's RoPE.

use ch05_fused_computation::qkv_epilogue::{llama_rope_tables, rotate_half_with_table};
use ch06_rope::attn_support::data::randn;
use ch06_rope::attn_support::ndarray::{Array4, s};
use ch06_rope::{RopeCache, RopeConfig, RopeLayout, apply_rope};

const POSITIONS: usize = 300;

#[test]
fn chapter_5_tables_are_this_chapters_cache_with_each_half_repeated() {
    for (head_dim, base) in [(64, 10_000.0), (64, 100_000.0), (128, 500_000.0)] {
        let config = RopeConfig::new(head_dim, base, RopeLayout::HalfRotation).unwrap();
        let cache = RopeCache::new(&config, POSITIONS).unwrap();
        let (cos5, sin5) = llama_rope_tables(POSITIONS, head_dim, base).unwrap();
        let half = head_dim / 2;
        for m in 0..POSITIONS {
            for i in 0..half {
                for column in [i, i + half] {
                    assert_eq!(
                        (cos5[[m, column]].to_bits(), sin5[[m, column]].to_bits()),
                        (cache.cos()[[m, i]].to_bits(), cache.sin()[[m, i]].to_bits()),
                        "d = {head_dim}, base {base}: position {m}, column {column}"
                    );
                }
            }
        }
    }
}

#[test]
fn chapter_5_rotation_is_this_chapters_half_rotation_rope() {
    let (heads, seq, head_dim, base) = (3, 37, 64, 10_000.0);
    let config = RopeConfig::new(head_dim, base, RopeLayout::HalfRotation).unwrap();
    let x: Array4<f32> = randn((1, heads, seq, head_dim), 6);
    let offset = 200;
    let mut ours = x.clone();
    apply_rope(&config, ours.view_mut(), offset).unwrap();
    let (cos, sin) = llama_rope_tables(offset + seq, head_dim, base).unwrap();
    let mut out = vec![0.0f32; head_dim];
    for h in 0..heads {
        for t in 0..seq {
            let row = x.slice(s![0, h, t, ..]).to_vec();
            let m = offset + t;
            let (c, sn) = (cos.row(m).to_vec(), sin.row(m).to_vec());
            rotate_half_with_table(&row, &c, &sn, &mut out);
            let want: Vec<u32> = ours.slice(s![0, h, t, ..]).iter().map(|v| v.to_bits()).collect();
            assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want, "head {h}, token {t}");
        }
    }
}
