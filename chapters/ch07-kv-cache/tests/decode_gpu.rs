//! The GPU decode attention, every version (`kernels/ch07_decode_attention.cu`, registers,
//! `kernels/ch07_decode_pipelined.cu`, a shared-memory pipeline, and `kernels/ch07_decode_mma.cu`,
//! tensor cores, for the quantised caches it reads), against an f64 CPU reference
//! over the *dequantised* cache — the values chapter 7's quant module decodes, which are what
//! the kernel reads — for every element type (bf16, INT8 with several key groups, FP8, NVFP4),
//! head dims 64 and 128, GQA groups 1 to 4, batches of sequences of different lengths (0, 1,
//! lengths no chunk or lane-group size divides), one split and many. The slots past each length
//! hold poison (NaN scales and bf16, the largest codes), so a read past a length shows. Skips
//! (printing why) without a GPU; fails under ATTN_REQUIRE_GPU=1; smaller under the sanitizer.
//! The launch checks, the split plan and the cache layout are tested without a GPU.
//!
//! Tolerance, per (sequence, query head), u = 2⁻²⁴: the kernel computes in f32 with q scaled by
//! log2(e)/√d, scale factors applied to partial sums, ex2.approx (≤ 3 ulp) and sums in a different
//! order than the reference. A score then carries an absolute error of a few u times
//! S = max_t Σ_c |q_c·k_tc| / √d, which moves every weight by that relative amount, and the
//! weighted sum of V over `len` tokens adds rounding growing like √len (random signs): we allow
//! 16·u·(1 + S + √len)·max|v|. The kernel source run on the CPU (its warps emulated with threads,
//! every case of these tests) stayed within 3 % of that; a wrong or missing token (a weight of
//! order 1/len on a v of order 1) or a poisoned one costs far more.

use ch07_kv_cache::attn_support::data::randn;
use ch07_kv_cache::attn_support::gpu::{Gpu, under_sanitizer};
use ch07_kv_cache::attn_support::ndarray::{Array3, Array4, s};
use ch07_kv_cache::attn_support::{Error, Result};
use ch07_kv_cache::gpu::cache::{Side, tensor_lens};
use ch07_kv_cache::gpu::launch::{
    COMBINE_MAX_LANES, COMBINE_SLICE, HEAD_DIMS, check_dependent_launch, combine_threads,
};
use ch07_kv_cache::gpu::plan::{CHUNK_QUANTUM, MAX_CHUNK, MAX_CHUNK_LIMIT, MIN_WAVES};
use ch07_kv_cache::gpu::{
    CacheDims, CacheElement, DEFAULT_KEY_GROUP, DecodeAttention, DecodeKernel, DecodeWorkspace,
    DeviceKvCache, DeviceLengths, QuantizedCache, SplitPlan, WavePlan, check_launch, check_max_chunk,
    check_min_waves, decode_attention_gpu, decode_attention_reference, kernel_name, mma_shared_bytes,
    pipelined_shared_bytes, plan_splits, plan_splits_for_waves, plan_splits_in_whole_waves,
    plan_splits_up_to, quantize_cache,
};

const U: f64 = f32::EPSILON as f64 / 2.0;

/// The element types of the tests: INT8 with a key group that divides the lane groups' tokens
/// (32), the chapter's (128: longer than the pipelined kernel's 64-token tile), one that does not
/// divide that tile (20: a tile touches 4 groups, staged in shared memory), an odd one below the
/// staging minimum (5, groups change inside an iteration, scales read from global memory) and 1
/// (a scale per token and channel).
fn elements() -> Vec<CacheElement> {
    let mut all = CacheElement::all(32).to_vec();
    all.push(CacheElement::Int8 { key_group: DEFAULT_KEY_GROUP });
    all.push(CacheElement::Int8 { key_group: 20 });
    all.push(CacheElement::Int8 { key_group: 5 });
    all.push(CacheElement::Int8 { key_group: 1 });
    all
}

/// Random K, V `(batch, kv_heads, capacity, d)` and q `(batch, kv_heads·group, d)`; the
/// keys get a few large channels, as real keys have.
fn inputs(
    batch: usize,
    kv_heads: usize,
    group: usize,
    capacity: usize,
    d: usize,
    seed: u64,
) -> (Array3<f32>, Array4<f32>, Array4<f32>) {
    let mut k = randn((batch, kv_heads, capacity, d), seed);
    for c in (0..d).step_by(17) {
        k.slice_mut(s![.., .., .., c]).mapv_inplace(|x| 8.0 * x);
    }
    let v = randn((batch, kv_heads, capacity, d), seed + 1);
    let q = randn((batch, kv_heads * group, d), seed + 2).mapv(|x| 0.5 * x);
    (q, k, v)
}

/// Run one case on the GPU with every kernel version that reads the element type and compare
/// each with the f64 reference as the module docs say; return the number of splits each
/// version's launch used (their plans may differ: a split plan depends on how many blocks of the
/// kernel fit an SM).
fn check_case(
    gpu: &Gpu,
    element: CacheElement,
    heads: (usize, usize, usize),
    lengths: &[u32],
    capacity: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    check_case_planned(gpu, element, heads, lengths, capacity, seed, |_| Ok(()))
}

/// [`check_case`] with each kernel's split plan set by `set_plan` first.
fn check_case_planned(
    gpu: &Gpu,
    element: CacheElement,
    (kv_heads, group, d): (usize, usize, usize),
    lengths: &[u32],
    capacity: usize,
    seed: u64,
    set_plan: impl Fn(&mut DecodeAttention) -> Result<()>,
) -> Result<Vec<usize>> {
    let batch = lengths.len();
    let (q, k, v) = inputs(batch, kv_heads, group, capacity, d, seed);
    let quantized = quantize_cache(element, k.view(), v.view(), lengths)?;
    let want =
        decode_attention_reference(q.view(), quantized.k_read.view(), quantized.v_read.view(), lengths)?;
    let mut splits = Vec::new();
    // Each kernel launched after the one before it in stream order, and (compute capability 9.0
    // on) as its programmatic dependent, the default there.
    let dependent: &[bool] = if gpu.compute_capability().0 >= 9 { &[false, true] } else { &[false] };
    for version in DecodeKernel::ALL.into_iter().filter(|v| v.supports(element).is_ok()) {
        for &dependent in dependent {
            let mut kernel = DecodeAttention::with_kernel(gpu, version, element, d, group)?;
            kernel.set_dependent_launch(gpu, dependent)?;
            set_plan(&mut kernel)?;
            let (got, plan) = decode_attention_gpu(gpu, &kernel, q.view(), &quantized.cache)?;
            let what = format!(
                "{} kernel (dependent launch: {dependent}), {element:?} kv_heads {kv_heads} group {group} d {d} \
                 lengths {lengths:?} {plan:?}",
                version.name()
            );
            check_against_reference(&got, &want, &quantized, &q, (group, d), lengths, &what);
            splits.push(plan.splits);
        }
    }
    Ok(splits)
}

/// Every output row within the module docs' tolerance of the reference; sequences of length 0
/// exactly zero.
fn check_against_reference(
    got: &Array3<f32>,
    want: &Array3<f64>,
    quantized: &QuantizedCache,
    q: &Array3<f32>,
    (group, d): (usize, usize),
    lengths: &[u32],
    what: &str,
) {
    let batch = lengths.len();
    let kv_heads = got.shape()[1] / group;
    for b in 0..batch {
        let len = lengths[b] as usize;
        for hq in 0..kv_heads * group {
            let h = hq / group;
            let row = got.slice(s![b, hq, ..]);
            if len == 0 {
                assert!(row.iter().all(|&x| x == 0.0), "{what}: sequence {b} of length 0 gave {row}");
                continue;
            }
            let kr = quantized.k_read.slice(s![b, h, ..len, ..]);
            let vr = quantized.v_read.slice(s![b, h, ..len, ..]);
            let qr = q.slice(s![b, hq, ..]);
            let big_s = kr
                .rows()
                .into_iter()
                .map(|kt| kt.iter().zip(qr).map(|(a, b)| f64::from((a * b).abs())).sum::<f64>())
                .fold(0.0, f64::max)
                / (d as f64).sqrt();
            let vmax = vr.iter().fold(0.0f64, |m, &x| m.max(f64::from(x.abs())));
            let tol = 16.0 * U * (1.0 + big_s + (len as f64).sqrt()) * vmax;
            for c in 0..d {
                let (g, w) = (f64::from(got[[b, hq, c]]), want[[b, hq, c]]);
                assert!(
                    (g - w).abs() <= tol,
                    "{what}: sequence {b} (length {len}) head {hq} channel {c}: GPU {g} reference {w}, \
                     allowed {tol:.2e}"
                );
            }
        }
    }
}

/// (kv_heads, group, d): SmolLM2's 3 × 3 at d = 64, Llama's group of 4 at d = 128 (2 KV heads
/// to keep the reference quick), MHA at 64, and a group of 2 at 128.
const HEADS: [(usize, usize, usize); 4] = [(3, 3, 64), (2, 4, 128), (1, 1, 64), (2, 2, 128)];

#[test]
fn every_element_head_dim_and_group_matches_the_f64_reference() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch07 GPU decode attention")? else { return Ok(()) };
    // Several splits (the longest sequence past one chunk), lengths 1, 0 and none a multiple
    // of a lane group's share, a chunk or a key group; then one split (every length ≤ one
    // chunk), where the main kernel writes the output and zeros itself.
    let long = if under_sanitizer() { 300 } else { 1000 };
    let cases: [(&[u32], usize); 2] = [(&[1, 0, 333, long], long as usize + 37), (&[0, 77, 5], 100)];
    // Under the sanitizer (racecheck costs in proportion to the blocks launched): the four
    // element types on SmolLM2's and Llama's heads.
    let (elements, heads) = if under_sanitizer() {
        (CacheElement::all(DEFAULT_KEY_GROUP).to_vec(), &HEADS[..2])
    } else {
        (elements(), &HEADS[..])
    };
    for (i, element) in elements.into_iter().enumerate() {
        for (j, &heads) in heads.iter().enumerate() {
            for (n, (lengths, capacity)) in cases.iter().enumerate() {
                let splits =
                    check_case(&gpu, element, heads, lengths, *capacity, (100 * i + 10 * j + n) as u64)?;
                let one = splits.iter().all(|&s| s == 1);
                assert!(one == (n == 1), "{element:?} {heads:?} {lengths:?}: {splits:?} splits");
            }
        }
    }
    Ok(())
}

#[test]
fn long_contexts_across_many_splits() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch07 GPU decode attention, long contexts")? else { return Ok(()) };
    // One sequence over many chunks (40 001 tokens: about 160 splits of 256 in one whole wave on
    // an H100, and 313 splits of 128 with at least two waves of chunks of at most 512, so that
    // each of the combine kernel's 32 split lanes runs its 8-deep unrolled loop), and a batch
    // where the lengths differ by thousands.
    let (one, batch): (&[u32], &[u32]) =
        if under_sanitizer() { (&[1200], &[640, 3]) } else { (&[40_001], &[4100, 1, 2047, 0]) };
    let (elements, heads): (&[CacheElement], &[(usize, usize, usize)]) = if under_sanitizer() {
        (&[CacheElement::Bf16, CacheElement::Nvfp4], &[(1, 4, 128)])
    } else {
        (&CacheElement::all(32), &[(1, 4, 128), (3, 3, 64)])
    };
    for (i, &element) in elements.iter().enumerate() {
        for (j, &(kv_heads, group, d)) in heads.iter().enumerate() {
            for (n, lengths) in [one, batch].into_iter().enumerate() {
                let capacity = *lengths.iter().max().unwrap() as usize + 3;
                let seed = (1000 + 100 * i + 10 * j + n) as u64;
                let splits = check_case(&gpu, element, (kv_heads, group, d), lengths, capacity, seed)?;
                assert!(splits.iter().all(|&s| s > 1), "{element:?}: {splits:?} splits");
                if n == 0 {
                    let many = check_case_planned(
                        &gpu,
                        element,
                        (kv_heads, group, d),
                        lengths,
                        capacity,
                        seed,
                        |k| {
                            k.set_min_waves(MIN_WAVES)?;
                            k.set_max_chunk(MAX_CHUNK)
                        },
                    )?;
                    assert!(many.iter().zip(&splits).all(|(m, s)| m >= s), "{element:?}: {many:?} splits");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn bad_launches_are_refused_naming_the_value() -> Result<()> {
    let Some(gpu) = Gpu::open_or_skip("ch07 GPU decode attention, bad input")? else { return Ok(()) };
    let (q, k, v) = inputs(2, 2, 4, 16, 128, 5);
    let cache = quantize_cache(CacheElement::Fp8, k.view(), v.view(), &[16, 9])?.cache;
    let kernel = DecodeAttention::new(&gpu, CacheElement::Fp8, 128, 4)?;
    assert!(decode_attention_gpu(&gpu, &kernel, q.view(), &cache).is_ok());

    // q with the wrong number of heads or the wrong head dim.
    let e = decode_attention_gpu(&gpu, &kernel, q.slice(s![.., ..6, ..]), &cache).unwrap_err().to_string();
    assert!(e.contains("6") && e.contains("8"), "{e}");
    let e = decode_attention_gpu(&gpu, &kernel, Array3::zeros((2, 16, 64)).view(), &cache)
        .unwrap_err()
        .to_string();
    assert!(e.contains("64") && e.contains("128"), "{e}");
    // Another element type's kernel, or head dim.
    let bf16 = DecodeAttention::new(&gpu, CacheElement::Bf16, 128, 4)?;
    let e = decode_attention_gpu(&gpu, &bf16, q.view(), &cache).unwrap_err().to_string();
    assert!(e.contains("fp8") && e.contains("bf16"), "{e}");
    // A length past the capacity, given straight to the launch.
    let device = DeviceKvCache::upload(&gpu, &cache)?;
    let lengths = DeviceLengths::upload(&gpu, &[16, 17])?;
    let q_buf = gpu.upload(&q)?;
    let mut out = gpu.zeros::<f32>(q.len())?;
    let e = kernel
        .launch(&gpu, &q_buf, &device, &lengths, &mut out, &mut DecodeWorkspace::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sequence 1") && e.contains("17") && e.contains("16 tokens"), "{e}");
    // One length per sequence.
    let lengths = DeviceLengths::upload(&gpu, &[16])?;
    let e = kernel
        .launch(&gpu, &q_buf, &device, &lengths, &mut out, &mut DecodeWorkspace::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 lengths") && e.contains("batch of 2"), "{e}");
    // A reshape to more slots than the buffers hold.
    let mut device = device;
    let dims = CacheDims { batch: 2, kv_heads: 2, capacity: 17, head_dim: 128 };
    let e = device.reshape(dims).unwrap_err().to_string();
    assert!(e.contains("codes") && e.contains("8192") && e.contains("8704"), "{e}");
    // Kernels that are not compiled.
    for (element, d, group, bad) in
        [(CacheElement::Bf16, 96, 4, "96"), (CacheElement::Fp8, 128, 8, "8 query")]
    {
        let e = DecodeAttention::new(&gpu, element, d, group).err().expect("refused").to_string();
        assert!(e.contains(bad), "{e}");
    }
    // The tensor-core kernel's element types.
    for (element, bad) in
        [(CacheElement::Bf16, "bf16"), (CacheElement::Int8 { key_group: 20 }, "key group 20")]
    {
        let e = DecodeAttention::with_kernel(&gpu, DecodeKernel::TensorCores, element, 128, 4)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains(bad), "{e}");
    }
    Ok(())
}

#[test]
fn launch_checks_and_plans_without_a_gpu() {
    // The pipelined kernel's shared memory: stages × (K and V rows of a 64-token tile + scales),
    // two blocks of the largest (bf16, d = 128: 3 × 32 KiB) fit an SM's 228 KiB.
    assert_eq!(pipelined_shared_bytes(CacheElement::Bf16, 128), 3 * 2 * 64 * 256);
    assert_eq!(pipelined_shared_bytes(CacheElement::Nvfp4, 64), 6 * (2 * 64 * 32 + 2 * 64 * 4));
    assert_eq!(pipelined_shared_bytes(CacheElement::Fp8, 128), 4 * (2 * 64 * 128 + 2 * 64 * 4));
    assert_eq!(
        pipelined_shared_bytes(CacheElement::Int8 { key_group: 32 }, 64),
        4 * (2 * 64 * 64 + 64 * 4 + 5 * 64 * 4)
    );
    for element in elements() {
        for d in [64, 128] {
            assert!(2 * (pipelined_shared_bytes(element, d) + 8 * 1024) <= 228 * 1024, "{element:?} d {d}");
            // Four blocks of the tensor-core kernel per SM (its launch bounds ask for 4).
            assert!(4 * (mma_shared_bytes(element, d) + 1024) <= 228 * 1024, "{element:?} d {d}");
        }
    }
    // The combine kernel's grid slices every compiled head dim into whole slices, and its
    // blocks are whole warps of at most 512 threads, with about 8 splits a lane.
    for d in HEAD_DIMS {
        assert!(d.is_multiple_of(COMBINE_SLICE), "d {d}");
    }
    for (splits, threads) in [(2, 32), (8, 32), (17, 64), (32, 64), (128, 256), (512, 512), (4096, 512)] {
        assert_eq!(combine_threads(splits), threads, "splits {splits}");
        assert!(threads % 32 == 0 && threads <= COMBINE_MAX_LANES * COMBINE_SLICE);
    }
    // The tensor-core kernel's: per warp, stages × (K and V codes of 16 tokens + scales).
    assert_eq!(
        mma_shared_bytes(CacheElement::Int8 { key_group: 32 }, 128),
        4 * 3 * (2 * 16 * 128 + 16 * 4 + 128 * 4)
    );
    assert_eq!(
        mma_shared_bytes(CacheElement::Int8 { key_group: 128 }, 64),
        4 * 4 * (2 * 16 * 64 + 16 * 4 + 64 * 4)
    );
    assert_eq!(mma_shared_bytes(CacheElement::Fp8, 64), 4 * 4 * (2 * 16 * 64 + 2 * 16 * 4));
    assert_eq!(mma_shared_bytes(CacheElement::Nvfp4, 64), 4 * 6 * (2 * 16 * 32 + 2 * 16 * 4));
    assert_eq!(mma_shared_bytes(CacheElement::Nvfp4, 128), 4 * 4 * (2 * 16 * 64 + 2 * 16 * 8));
    assert_eq!(mma_shared_bytes(CacheElement::Bf16, 128), 0);
    // A dependent launch needs compute capability 9.0; stream order works anywhere.
    let e = check_dependent_launch((8, 6), true).unwrap_err().to_string();
    assert!(e.contains("9.0") && e.contains("8.6"), "{e}");
    assert!(check_dependent_launch((8, 6), false).is_ok() && check_dependent_launch((9, 0), true).is_ok());
    assert!(DecodeKernel::TensorCores.supports(CacheElement::Int8 { key_group: 48 }).is_ok());
    let e = DecodeKernel::TensorCores.supports(CacheElement::Int8 { key_group: 5 }).unwrap_err().to_string();
    assert!(e.contains("key group 5") && e.contains("16"), "{e}");
    assert!(DecodeKernel::Pipelined.supports(CacheElement::Int8 { key_group: 5 }).is_ok());
    // The default kernel per element type reads it.
    for element in elements() {
        assert!(DecodeKernel::fastest_for(element).supports(element).is_ok(), "{element:?}");
    }
    assert_eq!(DecodeKernel::fastest_for(CacheElement::Int8 { key_group: 32 }), DecodeKernel::TensorCores);
    assert_eq!(DecodeKernel::fastest_for(CacheElement::Int8 { key_group: 20 }), DecodeKernel::Registers);
    assert_eq!(DecodeKernel::fastest_for(CacheElement::Bf16), DecodeKernel::Pipelined);
    let dims = CacheDims { batch: 2, kv_heads: 8, capacity: 4096, head_dim: 128 };
    let n = 2 * 8 * 4 * 128;
    assert!(check_launch(dims, 4, n, n, 2, (4096, 1)).is_ok());
    let e = check_launch(dims, 4, n, n, 2, (4097, 1)).unwrap_err().to_string();
    assert!(e.contains("sequence 1") && e.contains("4097") && e.contains("4096 tokens"), "{e}");
    let e = check_launch(dims, 4, n - 128, n, 2, (1, 0)).unwrap_err().to_string();
    assert!(e.contains("q holds 8064") && e.contains("8192"), "{e}");
    let e = check_launch(dims, 4, n, n + 1, 2, (1, 0)).unwrap_err().to_string();
    assert!(e.contains("out holds 8193"), "{e}");
    let e = check_launch(dims, 5, n, n, 2, (1, 0)).unwrap_err().to_string();
    assert!(e.contains("5 query heads"), "{e}");
    let e = check_launch(CacheDims { head_dim: 80, ..dims }, 4, n, n, 2, (1, 0)).unwrap_err().to_string();
    assert!(e.contains("head_dim 80"), "{e}");
    let e = check_launch(dims, 4, n, n, 3, (1, 0)).unwrap_err().to_string();
    assert!(e.contains("3 lengths"), "{e}");
    let e = check_launch(CacheDims { batch: 0, ..dims }, 4, 0, 0, 0, (0, 0)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(kernel_name(CacheElement::Int8 { key_group: 32 }, 64, 3), "ch07_decode_int8_d64_g3");

    // Longer chunks (the tensor-core kernel's default, `ch07 --max-chunk`): a multiple of the
    // quantum up to the limit, and a plan never passes it.
    assert!(check_max_chunk(1024).is_ok() && check_max_chunk(MAX_CHUNK_LIMIT).is_ok());
    for bad in [0, 1000, MAX_CHUNK_LIMIT + CHUNK_QUANTUM] {
        let e = check_max_chunk(bad).unwrap_err().to_string();
        assert!(e.contains(&format!("max chunk {bad}")) && e.contains(&MAX_CHUNK_LIMIT.to_string()), "{e}");
    }
    assert_eq!(DecodeKernel::TensorCores.default_max_chunk(), 2 * MAX_CHUNK);
    // Plans aiming for other numbers of waves (`ch07 --min-waves`): at least one; MIN_WAVES is
    // the default plan, and more waves never give fewer splits.
    assert!(check_min_waves(1).is_ok());
    let e = check_min_waves(0).unwrap_err().to_string();
    assert!(e.contains("min waves 0"), "{e}");
    let e = WavePlan::Whole(0).check().unwrap_err().to_string();
    assert!(e.contains("whole waves 0"), "{e}");
    assert!(WavePlan::default() == WavePlan::Whole(1) && WavePlan::Whole(2).check().is_ok());
    assert_eq!(plan_splits_for_waves(8, 262_144, 264, MAX_CHUNK, MIN_WAVES), plan_splits(8, 262_144, 264));
    let (one, four) =
        (plan_splits_for_waves(3, 262_144, 528, 4096, 1), plan_splits_for_waves(3, 262_144, 528, 4096, 4));
    assert!(one.splits < four.splits && one.splits * one.chunk >= 262_144, "{one:?} {four:?}");
    let plan = plan_splits_up_to(8, 262_144, 264, 1024);
    assert_eq!((plan.chunk, plan.splits), (1024, 256));
    assert_eq!(plan_splits_up_to(8, 262_144, 264, MAX_CHUNK), plan_splits(8, 262_144, 264));
    // Whole waves (`ch07 --whole-waves`): SmolLM2's 48 planes of 16 k tokens on 396 block slots
    // take 8 splits of 2048 (384 blocks, one wave), where rounding the chunk down would give 10
    // splits (480 blocks: a second wave of 84); never more blocks than the waves hold while
    // the longest chunk allows, and every token covered.
    assert_eq!(
        plan_splits_in_whole_waves(48, 16_384, 396, MAX_CHUNK_LIMIT, 1),
        SplitPlan { splits: 8, chunk: 2048 }
    );
    for (planes, max_len, wave, waves) in
        [(48, 16_384, 396, 1), (3, 262_144, 396, 1), (128, 16_384, 264, 2), (1, 1, 528, 1)]
    {
        let plan = plan_splits_in_whole_waves(planes, max_len, wave, MAX_CHUNK_LIMIT, waves);
        assert!(plan.chunk.is_multiple_of(CHUNK_QUANTUM) && plan.splits * plan.chunk >= max_len, "{plan:?}");
        assert!(planes * plan.splits <= (waves * wave).max(planes), "{planes} planes, {max_len}: {plan:?}");
    }
    let capped = plan_splits_in_whole_waves(3, 262_144, 396, MAX_CHUNK, 1);
    assert_eq!((capped.chunk, capped.splits), (MAX_CHUNK, 512), "the longest chunk wins over the waves");

    // Plans: at least two waves where the context allows, chunks a multiple of the quantum and
    // at most MAX_CHUNK, and they cover the longest sequence.
    for (planes, max_len, wave) in
        [(128, 16_384, 264), (8, 262_144, 264), (128, 1024, 264), (3, 1, 264), (1, 0, 264)]
    {
        let plan = plan_splits(planes, max_len, wave);
        assert!(plan.chunk.is_multiple_of(CHUNK_QUANTUM) && plan.chunk <= MAX_CHUNK, "{plan:?}");
        assert!(plan.splits * plan.chunk >= max_len && plan.splits >= 1, "{plan:?}");
        assert!((plan.splits - 1) * plan.chunk < max_len.max(1), "{plan:?}: a split with no token");
        if max_len >= (2 * wave).div_ceil(planes) * CHUNK_QUANTUM {
            assert!(planes * plan.splits >= 2 * wave, "{planes} planes, {max_len}: {plan:?}");
        }
    }
}

#[test]
fn the_cache_layout_holds_the_quantised_tokens_and_poison_past_the_lengths() -> Result<()> {
    let (_, k, v) = inputs(2, 3, 1, 40, 64, 9);
    let lengths = [33u32, 0];
    for element in elements() {
        let qc = quantize_cache(element, k.view(), v.view(), &lengths)?;
        let dims = qc.cache.dims;
        for (side, t) in [(Side::Key, &qc.cache.k), (Side::Value, &qc.cache.v)] {
            let lens = tensor_lens(element, side, dims)?;
            assert_eq!(
                (t.codes.len(), t.scales.len(), t.block_scales.len(), t.tensor_scales.len()),
                (lens.codes, lens.scales, lens.block_scales, lens.tensor_scales),
                "{element:?} {side:?}"
            );
        }
        // Dequantised values: close to the inputs inside the lengths, zero past them.
        let kr = &qc.k_read;
        assert!(kr.slice(s![0, .., 33.., ..]).iter().all(|&x| x == 0.0));
        assert!(kr.slice(s![1, .., .., ..]).iter().all(|&x| x == 0.0));
        // Within each format's step: bf16's 2^-8 relative, INT8's half step of max/127, E4M3's
        // 1/16 relative, NVFP4's half of the step 2 between 4 and 6 of a block scaled to max/6
        // (its E4M3 block scale may round up or down by 1/16), all of the largest magnitude.
        let kmax = k.slice(s![0, .., ..33, ..]).iter().fold(0f32, |m, &x| m.max(x.abs()));
        let frac = match element {
            CacheElement::Bf16 => 1.0 / 256.0,
            CacheElement::Int8 { .. } => 1.0 / 254.0,
            CacheElement::Fp8 => 1.0 / 16.0,
            CacheElement::Nvfp4 => 0.25,
        };
        let err = (&kr.slice(s![0, .., ..33, ..]) - &k.slice(s![0, .., ..33, ..])).mapv(f32::abs);
        let worst = err.iter().fold(0f32, |m, &e| m.max(e));
        assert!(worst <= frac * kmax, "{element:?}: error {worst} over {frac} × {kmax}");
        // Poison where a sequence ends: the codes of token 33 of plane 0.
        let row = element.row_bytes(64);
        let poison = &qc.cache.k.codes[33 * row..34 * row];
        assert!(poison.iter().all(|&b| b != 0), "{element:?}: {poison:?}");
        if element == CacheElement::Fp8 {
            assert!(qc.cache.k.scales[33].is_nan() && qc.cache.v.scales[33].is_nan());
        }
    }
    // A length past the capacity, K and V of different shapes, a zero key group.
    let e = quantize_cache(CacheElement::Bf16, k.view(), v.view(), &[41, 0]).unwrap_err().to_string();
    assert!(e.contains("sequence 0") && e.contains("41") && e.contains("40 tokens"), "{e}");
    let e = quantize_cache(CacheElement::Bf16, k.view(), v.slice(s![.., ..2, .., ..]), &lengths).unwrap_err();
    assert!(e.to_string().contains("[2, 2, 40, 64]"), "{e}");
    assert!(quantize_cache(CacheElement::Int8 { key_group: 0 }, k.view(), v.view(), &lengths).is_err());
    let e = quantize_cache(CacheElement::Bf16, k.view(), v.view(), &[1]).unwrap_err().to_string();
    assert!(e.contains("[1]"), "{e}");
    Ok(())
}

#[test]
fn a_tiled_cache_repeats_its_first_plane() -> Result<()> {
    let (_, k, v) = inputs(1, 1, 1, 64, 64, 3);
    for element in CacheElement::all(32) {
        let small = quantize_cache(element, k.view(), v.view(), &[64])?.cache;
        let big = small.tiled(2, 3, 192)?;
        assert_eq!(big.lengths, vec![192, 192]);
        let row = element.row_bytes(64);
        let plane = 192 * row;
        // Plane 5, token 130 holds token 130 mod 64 = 2 of the template.
        assert_eq!(
            &big.k.codes[5 * plane + 130 * row..][..row],
            &small.k.codes[2 * row..3 * row],
            "{element:?}"
        );
        // INT8 tiles whole key groups: 100 tokens are not a multiple of 32.
        assert_eq!(small.tiled(1, 1, 100).is_err(), element.key_group() == 32, "{element:?}");
    }
    let partial = quantize_cache(CacheElement::Fp8, k.view(), v.view(), &[10])?.cache;
    assert!(partial.tiled(1, 1, 64).is_err(), "the template must be full");
    Ok(())
}
