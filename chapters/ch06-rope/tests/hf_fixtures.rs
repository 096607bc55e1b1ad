//! Chapter 6 against Hugging Face transformers 5.17, on the CPU: the values in
//! `fixtures/hf_rope_scalings.json` and `fixtures/t5_buckets.json`, written by
//! `fixtures/make_hf_fixtures.py` (its docstring says how to run it; `fixtures/README.md` says
//! where the committed files were made: transformers 5.17.0, torch 2.15.0, AVX-512 kernels). A
//! missing fixture fails these tests; it never skips them. `CH06_FIXTURES_DIR=DIR` reads them
//! from `DIR` instead (e.g. the files the GPU run writes with its own PyTorch); give an absolute
//! path, as cargo runs the test from the crate's folder. The H200 run's files of 2026-12-05
//! (torch 2.11.0, `docs/src/results/h200-2026-12-05-ch05-ch06/ch06/fixtures/`) are byte-identical
//! to the committed ones but for the torch version they record.
//!
//! Against the committed files (2026-12-05): 573 of the 576 frequencies are bit-equal, three
//! are 1 ulp apart (dynamic NTK's θ_38 at 16 384 tokens, θ_6 and θ_10 of YaRN without
//! truncation); cos and sin from the same frequency differ by at most 1 ulp, 2 once YaRN's
//! attention factor multiplies them; T5's buckets are all equal (`cargo test -p ch06-rope --test hf_fixtures -- --nocapture` prints the counts).
//!
//! **Tolerances, and why.** We repeat transformers' arithmetic operation by operation in the
//! same precision ([`ch06_rope::scaling`]), so every step is the same IEEE operation on the same
//! operands, except the transcendental functions: `powf`, `cosf`, `sinf` here are glibc's, and
//! PyTorch's CPU kernels compute most elements with SLEEF's vectorised versions (error ≤ 1 ulp,
//! glibc's < 1 ulp), so the two may round the same exact value to neighbouring floats.
//!
//! - frequencies: default, linear and dynamic NTK are one `powf` and exact operations (a
//!   reciprocal, a division by a power of two) — at most 1 ulp apart; YaRN and Llama 3 carry a
//!   `powf` result one ulp apart (relative ≤ 2⁻²³) through a reciprocal and a few products,
//!   each side rounding again — at most 2 ulp ([`max_inv_freq_ulps`]). The count of bit-equal
//!   ones is printed;
//! - attention factor: equal as f32 (pure f64 Python arithmetic, then one conversion);
//! - cos and sin: from the same frequency the angle `m·θ` is the same f32 and only the two
//!   libraries' `cosf` differ, by 1 ulp at most (each is within 1 ulp of the true value and
//!   both round to a neighbour of it); the product by an attention factor ≠ 1 carries that
//!   ulp into a result that rounds once more, so 2: [`COS_SIN_ULPS`]. From our frequency,
//!   a frequency one ulp off moves the angle by `m·Δθ` (up to 10⁻² rad at m = 131 071), so the
//!   bound adds `af·(m·|Δθ| + ulp(angle))` — the difference is the frequency's, not cos's;
//! - `apply_rotary_pos_emb`: `a·c − b·s` with `c`, `s` within 1 ulp each, so within
//!   `(|a| + |b|)·ulp + 2 ulp` of the output;
//! - T5 buckets: integers, equal.

use ch06_rope::RopeCache;
use ch06_rope::encodings::t5_relative_position_bucket;
use ch06_rope::ndarray::{Array4, s};
use ch06_rope::{HfRopeParameters, RopeConfig, RopeLayout};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// transformers' version the fixtures must come from (the one on the GPU machine).
const TRANSFORMERS_VERSION: &str = "5.17";

/// How far apart our frequencies and transformers' may be, by `rope_type` (see the top).
fn max_inv_freq_ulps(rope_type: &str) -> u32 {
    match rope_type {
        "yarn" | "llama3" => 2,
        _ => 1,
    }
}
const COS_SIN_ULPS: u32 = 2;

#[derive(Deserialize)]
struct Versions {
    transformers: String,
    torch: String,
    torch_cpu_capability: Option<String>,
}

#[derive(Deserialize)]
struct RopeFixtures {
    versions: Versions,
    cases: Vec<RopeCase>,
    apply_rotary_pos_emb: ApplyCase,
}

#[derive(Deserialize)]
struct RopeCase {
    name: String,
    head_dim: usize,
    max_position_embeddings: usize,
    rope_parameters: serde_json::Value,
    seq_len: Option<usize>,
    inv_freq: Vec<f64>,
    attention_factor: f64,
    positions: Option<Vec<usize>>,
    cos: Option<Vec<Vec<f64>>>,
    sin: Option<Vec<Vec<f64>>>,
}

#[derive(Deserialize)]
struct ApplyCase {
    head_dim: usize,
    rope_theta: f64,
    positions: Vec<usize>,
    q_shape: Vec<usize>,
    k_shape: Vec<usize>,
    q: Vec<f64>,
    k: Vec<f64>,
    q_rotated: Vec<f64>,
    k_rotated: Vec<f64>,
}

#[derive(Deserialize)]
struct T5Fixtures {
    versions: Versions,
    relative_positions: Vec<i64>,
    cases: Vec<T5Case>,
}

#[derive(Deserialize)]
struct T5Case {
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
    buckets: Vec<usize>,
}

/// Where the fixtures are: `$CH06_FIXTURES_DIR` if set (to check freshly made ones before
/// committing them), else the crate's `fixtures/`; a test binary carried to another machine
/// (the GPU bundle, run from the repository root) finds it relative to the working directory.
fn fixtures_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CH06_FIXTURES_DIR") {
        return dir.into();
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    if built.is_dir() { built } else { PathBuf::from("chapters/ch06-rope/fixtures") }
}

/// Read a fixture; a missing or unreadable file fails the test with what to do.
fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. Make it with `python3 chapters/ch06-rope/fixtures/make_hf_fixtures.py \
             chapters/ch06-rope/fixtures` where transformers {TRANSFORMERS_VERSION} is installed",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rope_fixtures() -> RopeFixtures {
    load("hf_rope_scalings.json")
}

/// The fixture's numbers are f32 values written as f64; converting back is exact.
fn exact_f32(x: f64) -> f32 {
    let y = x as f32;
    assert_eq!(f64::from(y), x, "fixture value {x} is not an f32");
    y
}

/// Distance in units in the last place between two finite f32 of the same sign (or zero).
fn ulps(a: f32, b: f32) -> u32 {
    if a == b {
        return 0;
    }
    // Map the floats to a monotone integer line (sign-magnitude to two's complement).
    let key = |x: f32| {
        let bits = x.to_bits() as i64;
        if bits < 0x8000_0000 { bits } else { 0x8000_0000 - bits }
    };
    (key(a) - key(b)).unsigned_abs() as u32
}

/// One ulp of `x` in f32 (of the float's binade), as f64.
fn ulp(x: f32) -> f64 {
    let x = x.abs();
    f64::from(f32::from_bits(x.to_bits() + 1) - x)
}

/// The case's config with its scaling, parsed from the same `rope_parameters` transformers read.
fn config_of(case: &RopeCase) -> RopeConfig {
    let params =
        HfRopeParameters::from_json(&case.rope_parameters, case.max_position_embeddings, case.seq_len)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let theta = params.rope_theta.expect("the fixtures carry rope_theta");
    RopeConfig::new(case.head_dim, theta as f32, RopeLayout::HalfRotation)
        .and_then(|c| c.with_scaling(params.scaling))
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
}

#[test]
fn fixtures_come_from_transformers_5_17() {
    let rope = rope_fixtures();
    let t5: T5Fixtures = load("t5_buckets.json");
    for v in [&rope.versions, &t5.versions] {
        assert!(
            v.transformers == TRANSFORMERS_VERSION
                || v.transformers.starts_with(&format!("{TRANSFORMERS_VERSION}.")),
            "fixtures made with transformers {} (torch {}), expected {TRANSFORMERS_VERSION}",
            v.transformers,
            v.torch
        );
    }
    let types: Vec<&str> = rope
        .cases
        .iter()
        .filter_map(|c| c.rope_parameters.get("rope_type").and_then(|t| t.as_str()))
        .collect();
    for wanted in ["default", "linear", "dynamic", "yarn", "llama3"] {
        assert!(types.contains(&wanted), "no `{wanted}` case in the fixtures");
    }
}

#[test]
fn inv_freq_and_attention_factor_match_transformers() {
    let fixtures = rope_fixtures();
    let (mut exact, mut total, mut apart) = (0, 0, Vec::new());
    for case in &fixtures.cases {
        let config = config_of(case);
        let ours = config.inv_freq();
        assert_eq!(ours.len(), case.inv_freq.len(), "{}: number of pairs", case.name);
        let allowed = max_inv_freq_ulps(config.scaling().rope_type());
        for (i, (&o, &t)) in ours.iter().zip(&case.inv_freq).enumerate() {
            let d = ulps(o, exact_f32(t));
            assert!(d <= allowed, "{}: θ_{i} = {o:e}, transformers {t:e}: {d} ulp apart", case.name);
            exact += usize::from(d == 0);
            if d > 0 {
                apart.push(format!("{} θ_{i}: {d} ulp", case.name));
            }
            total += 1;
        }
        // A Python float; multiplying an f32 tensor converts it to f32.
        assert_eq!(
            config.attention_factor(),
            case.attention_factor as f32,
            "{}: attention factor",
            case.name
        );
    }
    println!(
        "{exact} of {total} frequencies bit-equal to transformers {} (torch {}, CPU {:?}); apart: {}",
        fixtures.versions.transformers,
        fixtures.versions.torch,
        fixtures.versions.torch_cpu_capability,
        apart.join(", ")
    );
}

/// Hugging Face's row is `cat(freqs, freqs)`; the script keeps one value per pair (an older
/// run of it kept both halves, which must then be equal).
fn one_per_pair<'a>(row: &'a [f64], pairs: usize, case: &str) -> &'a [f64] {
    if row.len() == 2 * pairs {
        assert_eq!(row[..pairs], row[pairs..], "{case}: HF repeats each pair's value");
        return &row[..pairs];
    }
    assert_eq!(row.len(), pairs, "{case}: row length");
    row
}

/// Check one case's cos or sin rows against ours; returns the largest difference seen.
/// Returns the largest difference from ours and the most ulps apart from transformers' own
/// frequency.
fn check_rows(case: &RopeCase, config: &RopeConfig, rows: &[Vec<f64>], which: &str) -> (f64, u32) {
    let positions = case.positions.as_ref().expect("positions with cos/sin");
    let af = f64::from(config.attention_factor());
    let ours_theta = config.inv_freq();
    let (mut worst, mut worst_ulps): (f64, u32) = (0.0, 0);
    for (row, &m) in rows.iter().zip(positions) {
        let row = one_per_pair(row, config.pairs(), &case.name);
        for (i, &value) in row.iter().enumerate() {
            let theirs = exact_f32(value);
            let (c, s) = config.cos_sin(i, m);
            let ours = if which == "cos" { c } else { s };
            // Same frequency: only the two libraries' cos/sin roundings differ.
            let theta_hf = exact_f32(case.inv_freq[i]);
            let from_hf_theta = {
                let angle = RopeConfig::angle(theta_hf, m);
                let v = if which == "cos" { angle.cos() } else { angle.sin() };
                v * config.attention_factor()
            };
            let d = ulps(from_hf_theta, theirs);
            worst_ulps = worst_ulps.max(d);
            assert!(
                d <= COS_SIN_ULPS,
                "{} {which} pair {i} position {m}, transformers' θ: {from_hf_theta:e} vs {theirs:e} ({d} ulp)",
                case.name
            );
            // Our frequency: add what its difference from transformers' does to the angle.
            let dtheta = (f64::from(ours_theta[i]) - f64::from(theta_hf)).abs();
            let angle_shift =
                if dtheta == 0.0 { 0.0 } else { m as f64 * dtheta + ulp(RopeConfig::angle(theta_hf, m)) };
            let bound =
                af * angle_shift + f64::from(COS_SIN_ULPS) * ulp(theirs).max(f64::from(f32::MIN_POSITIVE));
            let diff = (f64::from(ours) - f64::from(theirs)).abs();
            assert!(
                diff <= bound,
                "{} {which} pair {i} position {m}: ours {ours:e}, transformers {theirs:e}, |Δ| {diff:e} > {bound:e}",
                case.name
            );
            worst = worst.max(diff);
        }
    }
    (worst, worst_ulps)
}

#[test]
fn cos_sin_match_transformers_at_far_positions() {
    let fixtures = rope_fixtures();
    let mut checked = 0;
    for case in &fixtures.cases {
        let (Some(cos), Some(sin)) = (&case.cos, &case.sin) else { continue };
        let config = config_of(case);
        let (worst_cos, ulps_cos) = check_rows(case, &config, cos, "cos");
        let (worst_sin, ulps_sin) = check_rows(case, &config, sin, "sin");
        println!(
            "{}: largest |Δcos| {worst_cos:.2e}, |Δsin| {worst_sin:.2e}; from transformers' θ at most \
             {ulps_cos} and {ulps_sin} ulp",
            case.name
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} cases carry cos/sin");
}

#[test]
fn the_cache_holds_what_transformers_forward_returns() {
    // The table path, at the positions a small cache holds (≤ 4096): the same cos_sin calls.
    let fixtures = rope_fixtures();
    let case =
        fixtures.cases.iter().find(|c| c.name.starts_with("yarn") && c.cos.is_some()).expect("a YaRN case");
    let config = config_of(case);
    let cache = RopeCache::new(&config, 4097).unwrap();
    for (row, &m) in case.cos.as_ref().unwrap().iter().zip(case.positions.as_ref().unwrap()) {
        if m > 4096 {
            continue;
        }
        for (i, &theirs) in one_per_pair(row, config.pairs(), &case.name).iter().enumerate() {
            assert_eq!(cache.cos()[[m, i]], config.cos_sin(i, m).0);
            let d = ulps(cache.cos()[[m, i]], exact_f32(theirs));
            let same_theta = config.inv_freq()[i] == exact_f32(case.inv_freq[i]);
            assert!(!same_theta || d <= COS_SIN_ULPS, "{} cos pair {i} at {m}: {d} ulp", case.name);
        }
    }
}

#[test]
fn apply_rotary_pos_emb_matches_transformers() {
    let fixtures = rope_fixtures();
    let case = &fixtures.apply_rotary_pos_emb;
    let config = RopeConfig::new(case.head_dim, case.rope_theta as f32, RopeLayout::HalfRotation).unwrap();
    let cache = RopeCache::new(&config, case.positions.iter().max().unwrap() + 1).unwrap();
    for (shape, input, expected) in
        [(&case.q_shape, &case.q, &case.q_rotated), (&case.k_shape, &case.k, &case.k_rotated)]
    {
        let shape = [shape[0], shape[1], shape[2], shape[3]];
        let x = Array4::from_shape_vec(shape, input.iter().map(|&v| exact_f32(v)).collect()).unwrap();
        let want = Array4::from_shape_vec(shape, expected.iter().map(|&v| exact_f32(v)).collect()).unwrap();
        let mut ours = x.clone();
        // HF's positions need not be consecutive: rotate each token at its own position.
        for (t, &m) in case.positions.iter().enumerate() {
            cache.apply(ours.slice_mut(s![.., .., t..t + 1, ..]), m).unwrap();
        }
        let half = case.head_dim / 2;
        for ((b, h, t, j), &o) in ours.indexed_iter() {
            let (a, bb) = (x[[b, h, t, j % half]], x[[b, h, t, j % half + half]]);
            let w = want[[b, h, t, j]];
            let bound =
                f64::from(COS_SIN_ULPS) * f64::from(a.abs() + bb.abs()) * ulp(1.0) / 2.0 + 2.0 * ulp(w);
            let diff = (f64::from(o) - f64::from(w)).abs();
            assert!(
                diff <= bound,
                "({b},{h},{t},{j}) at position {}: ours {o:e}, HF {w:e}",
                case.positions[t]
            );
        }
    }
}

#[test]
fn t5_buckets_match_transformers() {
    let fixtures: T5Fixtures = load("t5_buckets.json");
    assert!(fixtures.cases.len() >= 4);
    for case in &fixtures.cases {
        assert_eq!(case.buckets.len(), fixtures.relative_positions.len());
        for (&rel, &want) in fixtures.relative_positions.iter().zip(&case.buckets) {
            let ours =
                t5_relative_position_bucket(rel, case.bidirectional, case.num_buckets, case.max_distance)
                    .unwrap();
            assert_eq!(
                ours, want,
                "offset {rel}, bidirectional {}, {} buckets, max distance {}",
                case.bidirectional, case.num_buckets, case.max_distance
            );
        }
    }
}
