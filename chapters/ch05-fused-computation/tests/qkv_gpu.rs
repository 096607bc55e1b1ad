//! The QKV GEMMs on the GPU (cuBLAS, f32 and bf16 with f32 accumulation) against the CPU
//! versions and an f64 product, and bad shapes. Skips (printing why) without a GPU; fails
//! under ATTN_REQUIRE_GPU=1.
//!
//! **Tolerances, derived rather than tuned.** Each output is a dot product of k = d_model terms.
//! Summed in f32 in any order (cuBLAS may tile, split k and reduce as it likes), its error is at
//! most γ_k·Σ|x_i·w_i| with γ_k = k·u/(1 − k·u) ≈ k·u, u = 2⁻²⁴ (Higham, *Accuracy and Stability
//! of Numerical Algorithms*, §3.1). For bf16 the inputs are bf16 values (rounded on the host,
//! so the f64 reference sees the same numbers), their products are exact in f32, the tensor
//! cores accumulate in f32 — allowing for truncation instead of rounding there, u becomes 2⁻²³ —
//! and the result is rounded once to bf16 (8 significant bits, relative error ≤ 2⁻⁸ more).
//! These bounds are worst cases and loose (errors of random-sign sums grow like √k, not k), but
//! any layout or transpose mistake gives errors of the size of the outputs, far above them.

use ch05_fused_computation::attn_support::Result;
use ch05_fused_computation::attn_support::data::randn;
use ch05_fused_computation::attn_support::gpu::{Gpu, under_sanitizer};
use ch05_fused_computation::gpu::qkv::{DeviceElement, QkvGemm, qkv_fused_gpu, qkv_unfused_gpu};
use ch05_fused_computation::ndarray::{Array2, ArrayView2, Axis, concatenate, s};
use ch05_fused_computation::{LLAMA3_8B, QkvDims, SMOLLM2_135M, concat_weights, qkv_fused, qkv_unfused};
use half::bf16;

struct Case {
    dims: QkvDims,
    tokens: usize,
}

/// The two models at decode and at a token count that is no multiple of any tile, plus a small
/// odd shape; fewer tokens under compute-sanitizer.
fn cases() -> Vec<Case> {
    let odd = QkvDims { d_model: 40, n_heads: 6, n_kv_heads: 2, head_dim: 6 };
    let tokens: &[usize] = if under_sanitizer() { &[1, 5] } else { &[1, 17, 130] };
    let mut cases = Vec::new();
    for &dims in &[odd, SMOLLM2_135M, LLAMA3_8B] {
        for &tokens in tokens {
            cases.push(Case { dims, tokens });
        }
    }
    cases
}

/// X (tokens, d_model) and the three weights scaled by 1/√d_model as initialisers do, rounded
/// through `T` so that the reference sees the values the GPU sees.
fn inputs<T: DeviceElement>(dims: QkvDims, tokens: usize, seed: u64) -> (Array2<f32>, [Array2<f32>; 3]) {
    let round = |a: Array2<f32>| a.mapv(|v| T::from_f32(v).to_f32());
    let scale = 1.0 / (dims.d_model as f32).sqrt();
    let w = |rows, s| round(randn((rows, dims.d_model), s).mapv(|v: f32| v * scale));
    (
        round(randn((tokens, dims.d_model), seed)),
        [w(dims.q_cols(), seed + 1), w(dims.kv_cols(), seed + 2), w(dims.kv_cols(), seed + 3)],
    )
}

/// Exact product in f64 and the per-element bound Σ|x_i·w_i| of the tolerance.
fn reference(x: &Array2<f32>, w_qkv: &Array2<f32>) -> (Array2<f64>, Array2<f64>) {
    let (x64, w64) = (x.mapv(f64::from), w_qkv.mapv(f64::from));
    (x64.dot(&w64.t()), x64.mapv(f64::abs).dot(&w64.mapv(f64::abs).t()))
}

/// Largest |got − want| / tolerance over all elements (≤ 1 passes), with the worst index.
fn worst<T: DeviceElement>(
    got: ArrayView2<T>,
    want: &Array2<f64>,
    tol: impl Fn(f64, f64) -> f64,
    sum_abs: &Array2<f64>,
) -> (f64, (usize, usize)) {
    let mut worst = (0.0, (0, 0));
    for ((i, j), &g) in got.indexed_iter() {
        let r = (g.to_f32() as f64 - want[[i, j]]).abs() / tol(want[[i, j]], sum_abs[[i, j]]);
        if r > worst.0 || r.is_nan() {
            worst = (r, (i, j));
        }
    }
    worst
}

fn check<T: DeviceElement>(gpu: &Gpu, case: &Case, accumulation_u: f64, output_u: f64) -> Result<()> {
    let Case { dims, tokens } = *case;
    let (x, [w_q, w_k, w_v]) = inputs::<T>(dims, tokens, (tokens * 7 + dims.d_model) as u64);
    let w_qkv = concat_weights(w_q.view(), w_k.view(), w_v.view(), dims)?;
    let (want, sum_abs) = reference(&x, &w_qkv);
    let k = dims.d_model as f64;
    let tol = |r: f64, s: f64| {
        let acc = 1.01 * k * accumulation_u * s;
        acc + output_u * (r.abs() + acc) + 1e-30
    };
    let to_t = |a: &Array2<f32>| a.mapv(T::from_f32);

    let fused = qkv_fused_gpu(gpu, to_t(&x).view(), to_t(&w_qkv).view(), dims)?;
    let three = qkv_unfused_gpu(
        gpu,
        to_t(&x).view(),
        [to_t(&w_q).view(), to_t(&w_k).view(), to_t(&w_v).view()],
        dims,
    )?;
    let three = concatenate(Axis(1), &[three[0].view(), three[1].view(), three[2].view()]).unwrap();
    let what = format!("{} {dims:?} tokens {tokens}", T::NAME);
    for (name, got) in [("one GEMM", fused.view()), ("three GEMMs", three.view())] {
        let (r, at) = worst(got, &want, tol, &sum_abs);
        assert!(r <= 1.0, "{what}, {name}: error {r:.3} × the bound at {at:?}");
    }

    // The CPU versions (f32 GEMMs on the same rounded inputs) are within the f32 bound of the
    // exact product too, so each GPU output is within the sum of both bounds of them.
    let x3 = x.view().insert_axis(Axis(0));
    let cpu_fused = qkv_fused(x3, w_qkv.view(), dims)?.output().mapv(f64::from);
    let cpu_three = qkv_unfused(x3, w_q.view(), w_k.view(), w_v.view(), dims)?;
    let u32_ = f64::from(f32::EPSILON) / 2.0;
    let both = |r: f64, s: f64| tol(r, s) + 1.01 * k * u32_ * s;
    let (r, at) = worst(fused.view(), &cpu_fused, both, &sum_abs);
    assert!(r <= 1.0, "{what}: GPU one GEMM vs CPU qkv_fused: {r:.3} × the bound at {at:?}");
    // The CPU's unfused Q, as (tokens, H·d), against the GPU's.
    let cpu_q = cpu_three.q.index_axis(Axis(0), 0).permuted_axes([1, 0, 2]).to_owned();
    let cpu_q = cpu_q.into_shape_with_order((tokens, dims.q_cols())).unwrap().mapv(f64::from);
    let q_cols = dims.q_cols();
    let sum_q = sum_abs.slice(s![.., ..q_cols]).to_owned();
    let (r, at) = worst(three.slice(s![.., ..q_cols]), &cpu_q, both, &sum_q);
    assert!(r <= 1.0, "{what}: GPU Q vs CPU qkv_unfused: {r:.3} × the bound at {at:?}");
    Ok(())
}

#[test]
fn f32_gemms_match_the_cpu_and_the_exact_product() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 QKV GEMM f32 GPU test")? else { return Ok(()) };
    let u = f64::from(f32::EPSILON) / 2.0;
    for case in cases() {
        check::<f32>(&gpu, &case, u, 0.0)?;
    }
    Ok(())
}

#[test]
fn bf16_gemms_match_the_exact_product_of_the_rounded_inputs() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 QKV GEMM bf16 GPU test")? else { return Ok(()) };
    for case in cases() {
        check::<bf16>(&gpu, &case, f64::from(f32::EPSILON), 2f64.powi(-8))?;
    }
    Ok(())
}

#[test]
fn mismatched_shapes_are_errors_before_launch() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 QKV GEMM shape-check GPU test")? else { return Ok(()) };
    let dims = QkvDims { d_model: 8, n_heads: 4, n_kv_heads: 2, head_dim: 2 };
    let x = randn((3, 8), 1);
    let (w_q, w_k_bad, w_v) = (randn((8, 8), 2), randn((5, 8), 3), randn((4, 8), 4));
    let e = qkv_unfused_gpu(&gpu, x.view(), [w_q.view(), w_k_bad.view(), w_v.view()], dims)
        .unwrap_err()
        .to_string();
    assert!(e.contains("W_k") && e.contains('5'), "{e}");
    let e = qkv_fused_gpu(&gpu, x.view(), randn((15, 8), 5).view(), dims).unwrap_err().to_string();
    assert!(e.contains("W_qkv") && e.contains("15") && e.contains("16"), "{e}");
    let e =
        qkv_fused_gpu(&gpu, randn((3, 7), 6).view(), randn((16, 8), 5).view(), dims).unwrap_err().to_string();
    assert!(e.contains("X") && e.contains('7'), "{e}");
    // Device buffers of the wrong length are refused before cuBLAS sees them.
    let gemm = QkvGemm::open(&gpu)?;
    let (x_d, w_d) = (gpu.upload(&x)?, gpu.upload(&randn((16, 8), 7))?);
    let mut short = gpu.zeros::<f32>(3 * 16 - 1)?;
    let e = gemm.one_gemm(dims, 3, &x_d, &w_d, &mut short).unwrap_err().to_string();
    assert!(e.contains("out") && e.contains("47") && e.contains("48"), "{e}");
    Ok(())
}
