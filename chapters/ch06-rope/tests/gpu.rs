//! The GPU RoPE (`kernels/ch06_rope.cu`) against the CPU's, token by token: both layouts, full
//! and partial rotary (odd head dims too), token counts that fill no block evenly, positions up
//! to 131 072, f32 and bf16 storage, the cache and the two on-the-fly angle sources; and each
//! angle source's cos/sin against f64 (`ch06_rope::precision`). Skips
//! (printing why) without a GPU; fails under ATTN_REQUIRE_GPU=1. The launch checks run without
//! a GPU.
//!
//! Tolerances (u = 2⁻²⁴, f32's unit roundoff):
//! - **From the cache: bit for bit.** The kernel reads the CPU's own cos/sin table and computes
//!   `fl(fl(a·c) − fl(b·s))`, `fl(fl(b·c) + fl(a·s))` without FMA contraction, as the CPU does,
//!   so f32 results are identical, and bf16 results are the CPU's f32 result rounded once to
//!   nearest even (the CPU computing on the same bf16 inputs, widened exactly).
//! - **On the fly with `sincosf`.** Same f32 angle `fl(m·θ_i)`; CUDA's `sincosf` is within 2 ulp
//!   and the host's `cosf`/`sinf` within 1, so cos and sin differ by at most 3 ulp ≤ 6u (ulp ≤ 2u
//!   below 1). A rotated element `a·c − b·s` then moves by ≤ (|a| + |b|)·6u, and the two
//!   computations' own roundings (two products and a sum each, ≤ 3u of (|a| + |b|) each) add
//!   6u: we allow (|a| + |b|)·16u.
//! - **On the fly with `__sincosf`.** The intrinsic multiplies the angle by an f32 1/2π (the
//!   product rounded, the constant rounded: ≤ 2|φ|u of angle in all, as a rotation) before the
//!   special-function unit, whose own error is 2⁻²¹·⁴¹ on [−π, π] (CUDA Programming Guide,
//!   intrinsic functions): we allow (|a| + |b|)·(4|φ|u + 2⁻²⁰ + 16u), twice the estimate.
//! - **bf16 storage, on the fly:** the f32 budget plus one bf16 rounding of the result,
//!   2⁻⁸·|result|.

use ch06_rope::attn_support::data::randn;
use ch06_rope::attn_support::gpu::{Gpu, under_sanitizer};
use ch06_rope::attn_support::ndarray::{Array3, s};
use ch06_rope::attn_support::{Error, Result};
use ch06_rope::gpu::{
    AngleSource, DevicePositions, RopeElement, RopeKernel, bf16, check_launch, cpu_rope_at_positions,
    largest_position, rope_gpu,
};
use ch06_rope::precision::{WINDOW_LEN, angle_errors};
use ch06_rope::{MAX_EXACT_POSITION, RopeCache, RopeConfig, RopeLayout};

const U: f64 = f32::EPSILON as f64 / 2.0;
const LAYOUTS: [RopeLayout; 2] = [RopeLayout::HalfRotation, RopeLayout::Interleaved];

/// (head_dim, rotary_dim, base): Llama's full rotary (16-byte loads for f32 and bf16),
/// SmolLM2's d = 64, partial rotary a quarter of 96 (rotary half-width 12: vectors for f32,
/// scalar for bf16), an odd head dim with partial rotary (scalar), and d = 6 with 4 rotating.
const CONFIGS: [(usize, usize, f32); 5] =
    [(128, 128, 500_000.0), (64, 64, 100_000.0), (96, 24, 10_000.0), (65, 32, 10_000.0), (6, 4, 10_000.0)];

/// The CPU's RoPE on a copy of `x` `(tokens, heads, head_dim)`, token `t` at `positions[t]`.
fn cpu_rope(
    config: &RopeConfig,
    cache: Option<&RopeCache>,
    x: &Array3<f32>,
    positions: &[u32],
) -> Array3<f32> {
    let mut y = x.clone();
    cpu_rope_at_positions(config, cache, y.view_mut(), positions).unwrap();
    y
}

/// Positions for `tokens` tokens: a prefill from `start`, then a few out of order and repeated
/// (packed sequences restart at 0), all below `limit`.
fn positions(tokens: usize, start: u32, limit: u32) -> Vec<u32> {
    (0..tokens as u32)
        .map(|t| match t % 5 {
            4 => (start + t * 7919) % limit,
            3 => start,
            _ => (start + t).min(limit - 1),
        })
        .collect()
}

/// Run `source` on storage `T` and check it against the CPU as the module docs say.
fn check<T: RopeElement>(
    gpu: &Gpu,
    config: &RopeConfig,
    source: AngleSource,
    cache: &RopeCache,
    heads: usize,
    positions: &[u32],
    seed: u64,
) -> Result<()> {
    let kernel = match source {
        AngleSource::Cache => RopeKernel::<T>::with_cache(gpu, cache)?,
        _ => RopeKernel::<T>::on_the_fly(gpu, config, source)?,
    };
    let x_t = randn((positions.len(), heads, config.head_dim()), seed).mapv(T::from_f32);
    let x = x_t.mapv(T::to_f32); // exactly the values the GPU sees
    let got = rope_gpu(gpu, &kernel, x_t.view(), positions)?.mapv(T::to_f32);
    let cpu_cache = (source == AngleSource::Cache).then_some(cache);
    let want = cpu_rope(config, cpu_cache, &x, positions);
    let what = format!("{} {source} {config:?} heads {heads} tokens {}", T::NAME, positions.len());

    if source == AngleSource::Cache {
        let want_t = want.mapv(|v| T::from_f32(v).to_f32());
        let mismatches = got.iter().zip(&want_t).filter(|(g, w)| g.to_bits() != w.to_bits()).count();
        assert_eq!(mismatches, 0, "{what}: {mismatches} elements differ from the CPU's cache RoPE");
        return Ok(());
    }
    let is_bf16 = T::NAME == "bf16";
    let (inv_freq, d_rot) = (config.inv_freq(), config.rotary_dim());
    for ((t, h, i), _) in x.slice(s![.., .., ..d_rot / 2]).indexed_iter() {
        let (ia, ib) = config.layout().pair(i, d_rot);
        let pair_size = (x[[t, h, ia]].abs() + x[[t, h, ib]].abs()) as f64;
        let phi = RopeConfig::angle(inv_freq[i], positions[t] as usize).abs() as f64;
        let angle_err = if source == AngleSource::FastSincosf { 4.0 * phi * U + 2f64.powi(-20) } else { 0.0 };
        let budget = pair_size * (angle_err + 16.0 * U);
        for dim in [ia, ib] {
            let (g, w) = (got[[t, h, dim]] as f64, want[[t, h, dim]] as f64);
            let allowed = budget + if is_bf16 { 2f64.powi(-8) * (w.abs() + budget) } else { 0.0 };
            assert!(
                (g - w).abs() <= allowed,
                "{what}: token {t} (position {}) head {h} dim {dim}: GPU {g} CPU {w}, allowed {allowed:.2e}",
                positions[t]
            );
        }
    }
    // Dims past the rotary ones are never touched.
    let pass = x.slice(s![.., .., d_rot..]);
    assert_eq!(got.slice(s![.., .., d_rot..]), pass, "{what}: a dim past rotary_dim changed");
    Ok(())
}

fn all_sources_and_types(
    gpu: &Gpu,
    config: &RopeConfig,
    cache: &RopeCache,
    heads: usize,
    pos: &[u32],
) -> Result<()> {
    for (k, source) in AngleSource::ALL.into_iter().enumerate() {
        let seed = (pos.len() * 131 + heads * 17 + config.head_dim() + k) as u64;
        check::<f32>(gpu, config, source, cache, heads, pos, seed)?;
        check::<bf16>(gpu, config, source, cache, heads, pos, seed)?;
    }
    Ok(())
}

#[test]
fn every_layout_config_and_source_matches_the_cpu() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch06 GPU RoPE test")? else { return Ok(()) };
    let max_positions = 4096;
    // 1 token (a decode step), 7 and 333 (no multiple of a block or of the head slots), and
    // head counts 1, 3 (fewer than HEADS_PER_THREAD), 9 (SmolLM2) and 32 (Llama).
    let shapes = [(1, 1), (7, 3), (333, 9), (64, 32)];
    for (head_dim, rotary_dim, base) in CONFIGS {
        for layout in LAYOUTS {
            let config = RopeConfig::partial(head_dim, rotary_dim, base, layout)?;
            let cache = RopeCache::new(&config, max_positions)?;
            for (tokens, heads) in shapes {
                let pos = positions(tokens, 100, max_positions as u32);
                all_sources_and_types(&gpu, &config, &cache, heads, &pos)?;
            }
        }
    }
    Ok(())
}

#[test]
fn positions_up_to_131072() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch06 GPU RoPE at long positions")? else { return Ok(()) };
    // Angles up to 131 072 rad: past 105 615, where sincosf switches to its slow exact range
    // reduction, and where __sincosf's error is largest.
    let max_positions = 131_073;
    let tokens = if under_sanitizer() { 9 } else { 37 };
    for layout in LAYOUTS {
        let config = RopeConfig::new(128, 500_000.0, layout)?;
        let cache = RopeCache::new(&config, max_positions)?;
        for start in [32_768, 131_072 - tokens as u32 + 1] {
            let pos: Vec<u32> = (0..tokens as u32).map(|t| start + t).collect();
            all_sources_and_types(&gpu, &config, &cache, 4, &pos)?;
        }
    }
    Ok(())
}

#[test]
fn a_position_past_the_cache_is_refused_before_launch() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch06 GPU RoPE bad input")? else { return Ok(()) };
    let config = RopeConfig::new(8, 10_000.0, RopeLayout::HalfRotation)?;
    let cache = RopeCache::new(&config, 16)?;
    let kernel = RopeKernel::<f32>::with_cache(&gpu, &cache)?;
    let x = Array3::<f32>::zeros((3, 2, 8));
    let e = rope_gpu(&gpu, &kernel, x.view(), &[0, 16, 5]).unwrap_err().to_string();
    assert!(e.contains("position 16") && e.contains("token 1") && e.contains("16 positions"), "{e}");
    // Wrong element count for (tokens, heads, head_dim).
    let positions = DevicePositions::upload(&gpu, &[0, 1, 2])?;
    let mut buf = gpu.zeros::<f32>(3 * 2 * 8 - 1)?;
    let e = kernel.launch(&gpu, &mut buf, 2, &positions).unwrap_err().to_string();
    assert!(e.contains("47") && e.contains("48"), "{e}");
    // x's head dim must be the config's, and there must be one position per token.
    let e =
        rope_gpu(&gpu, &kernel, Array3::<f32>::zeros((3, 2, 6)).view(), &[0, 1, 2]).unwrap_err().to_string();
    assert!(e.contains("[3, 2, 6]") && e.contains("[3, 2, 8]"), "{e}");
    let e = rope_gpu(&gpu, &kernel, x.view(), &[0, 1]).unwrap_err().to_string();
    assert!(e.contains("[3, 2, 8]") && e.contains("[2, 2, 8]"), "{e}");
    // The cache is not an on-the-fly source.
    assert!(RopeKernel::<f32>::on_the_fly(&gpu, &config, AngleSource::Cache).is_err());
    Ok(())
}

#[test]
fn launch_checks_name_the_bad_value_without_a_gpu() {
    let config = RopeConfig::new(128, 10_000.0, RopeLayout::Interleaved).unwrap();
    let e = check_launch(&config, 4 * 32 * 128, 32, 4, (4096, 2), Some(4096)).unwrap_err().to_string();
    assert!(e.contains("position 4096") && e.contains("token 2") && e.contains("4096 positions"), "{e}");
    assert!(check_launch(&config, 4 * 32 * 128, 32, 4, (4095, 2), Some(4096)).is_ok());
    assert!(check_launch(&config, 4 * 32 * 128, 32, 4, (1 << 20, 0), None).is_ok());
    let e = check_launch(&config, 1000, 32, 4, (0, 0), None).unwrap_err().to_string();
    assert!(e.contains("1000") && e.contains("16384"), "{e}");
    assert!(check_launch(&config, 0, 0, 4, (0, 0), None).is_err());

    let e = largest_position(&[3, MAX_EXACT_POSITION as u32 + 1, 0]).unwrap_err().to_string();
    assert!(e.contains(&(MAX_EXACT_POSITION + 1).to_string()) && e.contains("token 1"), "{e}");
    assert!(largest_position(&[]).is_err());
    assert_eq!(largest_position(&[5, 9, 2]).unwrap(), (9, 1));

    // An odd head dim cannot rotate fully, and rotary dims cannot exceed the head dim: the
    // config refuses both, naming the value, so no kernel is ever made for them.
    let e = RopeConfig::new(127, 10_000.0, RopeLayout::HalfRotation).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("127"), "{e}");
    let e = RopeConfig::partial(64, 96, 10_000.0, RopeLayout::Interleaved).unwrap_err().to_string();
    assert!(e.contains("96") && e.contains("64"), "{e}");
}

#[test]
fn each_angle_source_within_its_error_budget_against_f64() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch06 GPU angle precision")? else { return Ok(()) };
    let count = if under_sanitizer() { 4 } else { WINDOW_LEN };
    for base in [10_000.0f32, 500_000.0] {
        for first in [0usize, 32_768, 131_072] {
            let rows = angle_errors(&gpu, 128, base, first, count)?;
            let last = (first + count - 1) as f64;
            for r in &rows {
                let what = format!("base {base}, positions {first}.., {}: {r:?}", r.source_name());
                // The whole error: the f32 angle's rounding (< 5·m·u, tests/rope.rs) plus the
                // evaluation's below.
                let evaluation = match r.source {
                    None => 0.0,
                    Some(AngleSource::Cache | AngleSource::Sincosf) => 4.0 * U,
                    // θ_0 = 1, so the largest angle is the last position.
                    Some(AngleSource::FastSincosf) => 4.0 * last * U + 2f64.powi(-20),
                };
                assert!(
                    r.vs_f32_angle <= evaluation.max(1e-300),
                    "{what}: evaluation budget {evaluation:.2e}"
                );
                let whole = 5.0 * last * U + evaluation + 2.0 * U;
                assert!(r.vs_exact_angle <= whole, "{what}: budget {whole:.2e}");
            }
        }
    }
    Ok(())
}
