//! The QKV epilogue kernels (RoPE on q and k, k and v into the cache) against the CPU's
//! `epilogue_fused`, bit for bit: in f32 both compute fl(fl(a·c) ∓ fl(b·s)) (the kernels forbid
//! FMA contraction); in bf16 the GPU loads bf16, computes the same f32 expression and rounds to
//! nearest even once, which is the CPU's f32 result on the same (bf16) inputs rounded by
//! `half::bf16::from_f32` (also round to nearest even). Both versions (one kernel, three passes)
//! and both kernel variants (128-bit chunks, scalar) are checked, cache rows outside the chunk
//! must keep their sentinel, and bad positions and buffer lengths are errors before a launch.
//! Skips (printing why) without a GPU; fails under ATTN_REQUIRE_GPU=1.

use ch05_fused_computation::attn_support::Result;
use ch05_fused_computation::attn_support::data::randn;
use ch05_fused_computation::attn_support::gpu::{Gpu, under_sanitizer};
use ch05_fused_computation::gpu::qkv::DeviceElement;
use ch05_fused_computation::gpu::qkv_epilogue::{EpilogueBuffers, QkvEpilogue, chunk_elements, epilogue_gpu};
use ch05_fused_computation::ndarray::{Array2, Array3};
use ch05_fused_computation::{
    EpiloguePipeline, EpilogueShape, KvCache, LLAMA3_8B, QkvDims, SMOLLM2_135M, epilogue_fused,
    llama_rope_tables,
};
use half::bf16;

/// Exactly representable in bf16, and no RoPE output of these inputs is likely to equal it.
const SENTINEL: f32 = -7.25;

struct Case {
    dims: QkvDims,
    tokens: usize,
    start: usize,
    cache_len: usize,
}

fn cases() -> Vec<Case> {
    // d = 6: h = 3, scalar kernels in both types; d = 24: h = 12, f32 vectorised, bf16 scalar;
    // the models' d = 64 and 128: vectorised in both.
    let small = |head_dim| QkvDims { d_model: 8, n_heads: 6, n_kv_heads: 2, head_dim };
    let prefill = if under_sanitizer() { 37 } else { 300 };
    vec![
        Case { dims: small(6), tokens: 5, start: 2, cache_len: 9 },
        Case { dims: small(24), tokens: 13, start: 0, cache_len: 13 },
        Case { dims: SMOLLM2_135M, tokens: 1, start: 40, cache_len: 64 },
        Case { dims: SMOLLM2_135M, tokens: prefill, start: 3, cache_len: prefill + 10 },
        Case { dims: LLAMA3_8B, tokens: 1, start: 63, cache_len: 64 },
        Case { dims: LLAMA3_8B, tokens: prefill, start: 0, cache_len: prefill },
    ]
}

/// The GPU's result for `T`, and the CPU's on the same (rounded) inputs, rounded the same way.
fn check<T: DeviceElement + PartialEq + std::fmt::Debug>(gpu: &Gpu, case: &Case) -> Result<()> {
    let Case { dims, tokens, start, cache_len } = *case;
    let positions = start + tokens + 1;
    // The models' cases take Hugging Face's tables; the small ones random tables, whose two
    // halves differ, so that a kernel reading column i for column i + d/2 cannot pass.
    let (cos, sin) = if dims.d_model == 8 {
        (randn((positions, dims.head_dim), 5), randn((positions, dims.head_dim), 6))
    } else {
        llama_rope_tables(positions, dims.head_dim, 100_000.0)?
    };
    let round = |a: &Array2<f32>| a.mapv(|v| T::from_f32(v).to_f32());
    let (qkv, cos, sin) =
        (round(&randn((tokens, dims.fused_cols()), tokens as u64)), round(&cos), round(&sin));

    let shape = (dims.n_kv_heads, cache_len, dims.head_dim);
    let mut cpu_cache =
        KvCache { k: Array3::from_elem(shape, SENTINEL), v: Array3::from_elem(shape, SENTINEL) };
    let cpu_q = epilogue_fused(qkv.view(), dims, cos.view(), sin.view(), start, &mut cpu_cache)?;
    let to_t3 = |a: &Array3<f32>| a.mapv(T::from_f32);
    let want = [to_t3(&cpu_q), to_t3(&cpu_cache.k), to_t3(&cpu_cache.v)];

    let to_t = |a: &Array2<f32>| a.mapv(T::from_f32);
    let (qkv_t, cos_t, sin_t) = (to_t(&qkv), to_t(&cos), to_t(&sin));
    let sentinel = Array3::from_elem(shape, T::from_f32(SENTINEL));
    for version in [EpiloguePipeline::OnePass, EpiloguePipeline::ThreePasses] {
        let got = epilogue_gpu(
            gpu,
            version,
            dims,
            qkv_t.view(),
            [cos_t.view(), sin_t.view()],
            start,
            [sentinel.view(), sentinel.view()],
        )?;
        for (name, g, w) in
            [("q", &got[0], &want[0]), ("k cache", &got[1], &want[1]), ("v cache", &got[2], &want[2])]
        {
            if let Some((at, (a, b))) =
                g.indexed_iter().zip(w.iter()).map(|((i, a), b)| (i, (a, b))).find(|(_, (a, b))| a != b)
            {
                panic!(
                    "{} {version:?} {dims:?} tokens {tokens} start {start} (chunk {}): {name}{at:?} = {a:?}, CPU {b:?}",
                    T::NAME,
                    chunk_elements::<T>(dims.head_dim)
                );
            }
        }
    }
    Ok(())
}

#[test]
fn f32_kernels_equal_the_cpu_bit_for_bit() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 QKV epilogue f32 GPU test")? else { return Ok(()) };
    for case in cases() {
        check::<f32>(&gpu, &case)?;
    }
    Ok(())
}

#[test]
fn bf16_kernels_equal_the_rounded_cpu_bit_for_bit() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 QKV epilogue bf16 GPU test")? else { return Ok(()) };
    for case in cases() {
        check::<bf16>(&gpu, &case)?;
    }
    Ok(())
}

#[test]
fn bad_positions_and_lengths_are_errors_before_launch() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch05 QKV epilogue limits GPU test")? else { return Ok(()) };
    let dims = QkvDims { d_model: 8, n_heads: 2, n_kv_heads: 1, head_dim: 8 };
    let (cos, sin) = llama_rope_tables(8, 8, 10_000.0)?;
    let qkv = randn((3, dims.fused_cols()), 1);
    let cache = Array3::<f32>::zeros((1, 16, 8));
    let run = |start: usize, cache: &Array3<f32>| {
        epilogue_gpu(
            &gpu,
            EpiloguePipeline::OnePass,
            dims,
            qkv.view(),
            [cos.view(), sin.view()],
            start,
            [cache.view(), cache.view()],
        )
        .unwrap_err()
        .to_string()
    };
    let e = run(6, &cache);
    assert!(e.contains("position 8") && e.contains("cos/sin table of 8 positions"), "{e}");
    let e = run(3, &Array3::zeros((1, 5, 8)));
    assert!(e.contains("position 5") && e.contains("KV cache of 5 positions"), "{e}");

    // A buffer replaced by one of the wrong length is caught at launch, for both versions.
    let shape = EpilogueShape { dims, tokens: 3, start: 0, table_positions: 8, cache_len: 16 };
    let kernels = QkvEpilogue::<f32>::load(&gpu)?;
    for version in [EpiloguePipeline::OnePass, EpiloguePipeline::ThreePasses] {
        let mut buffers = EpilogueBuffers::<f32>::zeros(&gpu, shape)?;
        buffers.v_cache = gpu.zeros(16 * 8 - 1)?;
        let e = kernels.launch(&gpu, version, &mut buffers).unwrap_err().to_string();
        assert!(e.contains("v_cache") && e.contains("127") && e.contains("128"), "{e}");
        // A position changed after allocation is checked again at launch.
        let mut buffers = EpilogueBuffers::<f32>::zeros(&gpu, shape)?;
        buffers.shape.start = 14;
        let e = kernels.launch(&gpu, version, &mut buffers).unwrap_err().to_string();
        assert!(e.contains("position 16"), "{e}");
    }
    Ok(())
}
