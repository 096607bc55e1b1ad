//! `ch06`: the chapter's comparison of position encodings, figures and tables, on the CPU
//! (under a second).
//!
//! ```text
//! cargo run --release --bin ch06                       # figures into target/figures/ch06
//! cargo run --release --bin ch06 -- --out docs/src/figures/ch06
//! ```

use attn_support::plot::save;
use attn_support::report::{TextTable, heading};
use ch06_rope::comparison::ENCODINGS;
use ch06_rope::curves::{pairs_with_full_turn, wavelengths};
use ch06_rope::decay::relative_upper_bound;
use ch06_rope::figures::{decay_figure, frequency_figure, rotation_figure};
use ch06_rope::{RopeConfig, RopeLayout};
use clap::Parser;
use std::path::PathBuf;

/// Chapter 6: RoPE. Draws the rotation of a dimension pair, RoFormer's decay of q·k with the
/// distance, and the frequency and wavelength of each pair against context lengths, and prints
/// the numbers behind them.
#[derive(Parser, Debug)]
#[command(name = "ch06", version)]
struct Args {
    /// Folder for the figures (PNG and SVG).
    #[arg(long, default_value = "target/figures/ch06")]
    out: PathBuf,
}

/// Llama-style heads: d = 128; base 10 000 (Llama 2) and 500 000 (Llama 3).
const HEAD_DIM: usize = 128;
const BASES: [f32; 2] = [10_000.0, 500_000.0];
const CONTEXTS: [usize; 3] = [4096, 8192, 131_072];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = RopeConfig::new(HEAD_DIM, BASES[0], RopeLayout::HalfRotation)?;

    heading("position encodings compared");
    let mut table =
        TextTable::new(&[("encoding", 0), ("position enters", 0), ("parameters", 0), ("extra cost", 0)])
            .left_aligned(0)
            .left_aligned(1)
            .left_aligned(2)
            .left_aligned(3)
            .divider_before(1)
            .divider_before(2)
            .divider_before(3);
    for e in &ENCODINGS {
        table.push([e.name, e.enters, e.parameters, e.cost]);
    }
    println!("{}", table.render());
    for e in &ENCODINGS {
        println!("{}\n  past the trained length: {}\n  used by: {}", e.name, e.extrapolation, e.used_by);
    }

    heading("rotation of one dimension pair");
    // Pair 0 turns 1 rad per position; pair d/8 turns 0.1 rad (θ = 10000^(−1/4)).
    let fig = rotation_figure(&config, 0, HEAD_DIM / 8, 9)?;
    println!("wrote {:?}", save(&fig, &args.out, "rope_pair_rotation")?);

    heading("decay of q·k with the relative distance (RoFormer §3.4.3)");
    let mut table = TextTable::new(&[("distance", 8), ("bound, base 1e4", 0), ("bound, base 5e5", 0)]);
    for r in [0usize, 1, 16, 256, 4096, 65_536] {
        let b = |base: f32| relative_upper_bound(r as f64, HEAD_DIM, f64::from(base));
        table.push([r.to_string(), format!("{:.2}", b(BASES[0])?), format!("{:.2}", b(BASES[1])?)]);
    }
    println!("{}", table.render());
    let fig = decay_figure(HEAD_DIM, &BASES, 65_536, 256)?;
    println!("wrote {:?}", save(&fig, &args.out, "rope_decay")?);

    heading("wavelength 2π/θ_i per pair against the context length");
    let mut table = TextTable::new(&[
        ("base", 8),
        ("shortest λ", 0),
        ("longest λ", 0),
        ("pairs turning within 4096", 0),
        ("8192", 0),
        ("131072", 0),
    ]);
    for base in BASES {
        let config = RopeConfig::new(HEAD_DIM, base, RopeLayout::HalfRotation)?;
        let w = wavelengths(&config);
        let mut row = vec![format!("{base}"), format!("{:.1}", w[0]), format!("{:.3e}", w[w.len() - 1])];
        row.extend(
            CONTEXTS.iter().map(|&c| format!("{} of {}", pairs_with_full_turn(&config, c), config.pairs())),
        );
        table.push(row);
    }
    println!("{}", table.render());
    let fig = frequency_figure(HEAD_DIM, &BASES, &CONTEXTS)?;
    println!("wrote {:?}", save(&fig, &args.out, "rope_frequencies")?);
    Ok(())
}
