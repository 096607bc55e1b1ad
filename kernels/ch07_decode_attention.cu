// ch07_decode_attention.cu — decode attention over a (quantised) KV cache, split-K
// ("flash-decoding"), with GQA: the `group` query heads of one KV head share every K/V load.
//
// What: for every sequence b (one new query token), query head hq = kvh·G + g, G = group,
//     s_t = (q · k_t) / √d            for the cached tokens t < len_b of KV head kvh,
//     o   = Σ_t softmax(s)_t · v_t    (Σ over t < len_b; a sequence of length 0 gives o = 0),
// with k_t and v_t dequantised on the fly, in registers, from the cache's storage type:
//   BF16   bf16 values (the value is the stored one, widened exactly);
//   INT8   codes c ∈ [−127, 127]; K: x = c · σ[t / Gk][channel] (one scale per channel per group
//          of Gk tokens, chapter 7's quant::int8 per channel); V: x = c · σ[t] (per token);
//   FP8    E4M3 codes (OCP) times a per-token f32 scale, x = e4m3(c) · σ[t] (quant::fp8);
//   NVFP4  E2M1 codes packed two per byte (first element in the low nibble, quant::packing), an
//          E4M3 block scale per 16 channels of a token and one f32 tensor scale per (b, kvh):
//          x = e2m1(c) · (e4m3(block scale) · tensor scale) (quant::fp4::nvfp4).
// The arithmetic is f32 throughout. Cache layout: K and V each (batch, kv_heads, capacity, d),
// row-major, token rows of d elements (d/2 bytes for NVFP4); scales in side arrays:
//   INT8   K scales (batch, kv_heads, ⌈capacity / Gk⌉, d) f32, V scales (batch, kv_heads, capacity) f32
//   FP8    K and V scales (batch, kv_heads, capacity) f32
//   NVFP4  K and V block scales (batch, kv_heads, capacity, d/16) E4M3 bytes, tensor scales
//          (batch, kv_heads) f32 each
// q is (batch, q_heads, d) f32; the output (batch, q_heads, d) f32. Tokens at t ≥ len_b are never
// read (lengths[b] ≤ capacity, checked on the host: chapters/ch07-kv-cache/src/gpu/launch.rs).
//
// Decoding without conversion instructions (no CUDA header needed under NVRTC):
//   bf16 → f32: the 16 bits shifted into the top half of an f32 (exact).
//   INT8 → f32: byte b = c + 128 (c XOR 0x80) placed under the exponent of 2^23 with a byte
//          permute, giving 2^23 + b exactly, minus 2^23 + 128 (exact).
//   E4M3 → f16: S EEEE MMM to f16 S 0EEEE MMM0000000 (two shifts and masks per pair of bytes):
//          f16 bias 15 against E4M3's 7, so the f16 is the E4M3 value times 2^-8, subnormals
//          included (E = 0 lands on f16's subnormals, also times 2^-8); then cvt.f32.f16 (exact).
//          The factor 2^8 goes into the per-token scale (exact). The NaN code 0x7F, which the
//          saturating quantiser never writes, reads as 480 here (quant::fp8 says NaN).
//   E2M1 → f16: S EE M to f16 S 000EE M000000000: the E2M1 value times 2^-14 (E = 0, the 0.5,
//          lands on an f16 subnormal); the factor 2^14 goes into the block scale (exact).
// Per-token and per-block scales multiply the lane's partial dot product (K) or the softmax
// weight (V) rather than every element: the same value up to f32 rounding, since a product of an
// E2M1/E4M3 value (2 or 4 significant bits) with a scale is exact or rounded once either way.
//
// Launch: main kernel grid (splits, kv_heads, batch), DECODE_THREADS = 128 threads (4 warps).
// Block (split, kvh, b) takes tokens [split·chunk, min(len_b, (split + 1)·chunk)). Within it a
// token's d elements are spread over LPT = d/16 lanes, 16 elements each (a "lane group"; 8
// lanes for d = 128, 4 for d = 64); a warp holds 32/LPT lane groups, the block NG = 4·32/LPT.
// Each iteration, lane group j takes U = 4 consecutive tokens starting at chunk_start + it·NG·U +
// j·U, so that a warp reads consecutive token rows; 4 rather than 2 doubles the bytes in flight
// (bf16, d = 128: 64 KB per SM at 2 blocks) for 32 more registers. Loads: 16 bytes per
// lane per row (two 16-byte loads for bf16, one for INT8/FP8; 8 bytes, 16 codes, for NVFP4,
// whose 16-byte load would hold 32 elements and double the registers of q and the accumulator).
// An iteration issues all its loads first — the U rows of K and V, their per-token or block
// scales, INT8's key scales when the key group changes — so that they are in flight together.
// Per token: the lane's 16-element partial dot products with its G query heads (q already
// scaled by log2(e)/√d), summed over the lane group with xor shuffles (every lane ends with the
// same sum), then the online softmax of chapter 3 in base 2 — running max m, sum l, unnormalised
// accumulator acc[G][16] per lane — rescaling only when the max grows. At the end the lane groups
// of a warp merge by shuffles, the 4 warps through shared memory, and the block writes its
// partial (m, l, acc) per query head, or, with one split, the normalised output directly.
// Combine kernel: grid (batch · q_heads, d / 16), 32–512 threads: o = Σ_s acc_s·2^(m_s − M) / Σ_s l_s·2^(m_s − M)
// over the splits s that hold tokens of the sequence (M = max_s m_s); zeros for length 0.
//
// Bytes moved per cached token and KV head (K + V, d = head dim), what the benchmark counts:
//   BF16   4d                          (512 B at d = 128)
//   INT8   2d + 4 + 4d/Gk              (K codes, V codes, V scale, K scales amortised over Gk)
//   FP8    2d + 8                      (codes and two per-token scales)
//   NVFP4  d + 2·d/16                  (codes and block scales; 144 B at d = 128), + 8 per (b, kvh)
// plus q (4·q_heads·d per sequence), the output (same), lengths, and the splits' partials
// (2 × (4d + 8) bytes per split and query head: written, then read by the combine).


template <int ELEM, int D, int G>
__device__ __forceinline__ void decode_split(DECODE_KERNEL_PARAMS) {
    constexpr int LPT = D / EPL;          // lanes per token row
    constexpr int TPW = 32 / LPT;         // lane groups per warp
    constexpr int NG = DECODE_WARPS * TPW;  // lane groups per block
    constexpr int U = Row<ELEM>::U;       // consecutive tokens per lane group per iteration
    constexpr int ROW_BYTES = ELEM == BF16 ? 2 * D : ELEM == NVFP4 ? D / 2 : D;
    constexpr int BLOCKS_PER_ROW = D / 16;  // NVFP4 blocks of 16 per token row

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int sub = lane % LPT;  // the lane's 16 channels: sub·16 …
    const int group = warp * TPW + lane / LPT;
    const BlockWork work = block_work<D, G>(lengths, kv_heads, chunk, out);
    if (!work.has_tokens) return;
    const int split = work.split, splits = work.splits, t0 = work.t0, t1 = work.t1;
    const long long plane = work.plane, head0 = work.head0;

    Plane p;
    p.k = k_codes + plane * capacity * ROW_BYTES + sub * (ROW_BYTES / LPT);
    p.v = v_codes + plane * capacity * ROW_BYTES + sub * (ROW_BYTES / LPT);
    const int key_groups = ELEM == INT8 ? (capacity + key_group - 1) / key_group : 0;
    p.k_scales = ELEM == INT8 ? k_scales + plane * key_groups * D + sub * EPL
                              : (ELEM == FP8 ? k_scales + plane * capacity : nullptr);
    p.v_scales = (ELEM == INT8 || ELEM == FP8) ? v_scales + plane * capacity : nullptr;
    p.k_blocks = ELEM == NVFP4 ? k_blocks + plane * capacity * BLOCKS_PER_ROW : nullptr;
    p.v_blocks = ELEM == NVFP4 ? v_blocks + plane * capacity * BLOCKS_PER_ROW : nullptr;
    p.k_tensor = ELEM == NVFP4 ? __ldg(k_tensor + plane) * 4194304.0f : 1.0f;  // × 2^22
    p.v_tensor = ELEM == NVFP4 ? __ldg(v_tensor + plane) * 4194304.0f : 1.0f;

    const auto channel = [&](int e) { return sub * EPL + e; };
    float qr[G][EPL], m[G], l[G], acc[G][EPL];
    start_heads<D, G>(q, head0, qk_scale, channel, qr, m, l, acc);
    // INT8 K: the per-channel scales of the key group the lane last used.
    float k_sigma[ELEM == INT8 ? EPL : 1] = {};
    int sigma_group = -1;

    // Every thread runs the same number of iterations (the shuffles need whole warps); tokens
    // past t1 are masked, never loaded.
    const int iterations = (t1 - t0 + NG * U - 1) / (NG * U);
    for (int it = 0; it < iterations; ++it) {
        const int first = t0 + (it * NG + group) * U;
        // Every load of the iteration first — rows, per-token and block scales, INT8's key
        // scales — so that they are in flight together.
        Row<ELEM> kr[U], vr[U];
        float k_factor[U], v_factor[U];  // the scale each token's dot product / weight takes
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int t = first + u;
            if (t < t1) {
                load_row<ELEM>(p.k + (long long)t * ROW_BYTES, kr[u]);
                load_row<ELEM>(p.v + (long long)t * ROW_BYTES, vr[u]);
                k_factor[u] = token_factor<ELEM>(p.k_scales, p.k_blocks, p.k_tensor, t, sub, BLOCKS_PER_ROW);
                v_factor[u] = ELEM == INT8 ? __ldg(p.v_scales + t)
                                           : token_factor<ELEM>(p.v_scales, p.v_blocks, p.v_tensor, t, sub, BLOCKS_PER_ROW);
            } else {
                clear_row<ELEM>(kr[u]);
                clear_row<ELEM>(vr[u]);
                k_factor[u] = 0.0f;
                v_factor[u] = 0.0f;
            }
        }
        // INT8 K: the key group of the first token, and where in it the iteration starts (one
        // division per iteration; a later token of the U crosses into the next group only when
        // rem + u reaches the key group).
        int group_first = 0, rem = 0;
        if constexpr (ELEM == INT8) {
            group_first = first / key_group;
            rem = first - group_first * key_group;
            if (first < t1 && group_first != sigma_group) {
                load_key_scales(p.k_scales + (long long)group_first * D, k_sigma);
                sigma_group = group_first;
            }
        }

        // Scores s[u][g] in base 2, summed over the lane group.
        float s[U][G];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int t = first + u;
            const bool valid = t < t1;
            float x[EPL];
            decode_row<ELEM>(kr[u], x);
            if constexpr (ELEM == INT8) {
                if (valid && rem + u >= key_group) {
                    const int kg = t / key_group;
                    if (kg != sigma_group) {
                        load_key_scales(p.k_scales + (long long)kg * D, k_sigma);
                        sigma_group = kg;
                    }
                }
#pragma unroll
                for (int e = 0; e < EPL; ++e) x[e] *= k_sigma[e];
            }
            token_scores<G, LPT>(qr, x, ELEM == FP8 || ELEM == NVFP4 ? k_factor[u] : 1.0f, valid, s[u]);
        }

        // Online softmax (base 2), then acc += Σ_u w_u · v_u.
        float w[U][G];
        online_softmax_step<U, G>(s, m, l, acc, w);
#pragma unroll
        for (int u = 0; u < U; ++u) {
            float x[EPL];
            decode_row<ELEM>(vr[u], x);
            // bf16 (factor 1) still multiplies: masked tokens have weight 0 either way.
            accumulate_value<G>(x, w[u], v_factor[u], acc);
        }
    }

    merge_and_write<D, G, LPT>(m, l, acc, channel, head0, split, splits, out, part_acc, part_ml);
}

// Registers: q and the accumulator take 2 · 16 · G per thread. Left to ptxas (the plain
// __launch_bounds__), G = 4 takes 229–252 (2 blocks, 8 warps per SM), G = 3 168–234 (3 or 2
// blocks), G = 2 128–165, all without spills (ptxas 13, sm_90); for G = 1 it chose 72 and
// spilled (NVFP4, d = 64), so G = 1 is asked to fit 4 blocks per SM (≤ 128 registers), which it
// does without spilling.
#define BOUNDS_G1 __launch_bounds__(DECODE_THREADS, 4)
#define BOUNDS_G __launch_bounds__(DECODE_THREADS)

// One extern "C" entry per (element, head dim, group): ch07_decode_<elem>_d<D>_g<G>.
#define DECODE_ENTRY(NAME, ELEM, D, G, BOUNDS) \
    extern "C" __global__ void BOUNDS NAME(DECODE_KERNEL_PARAMS) { decode_split<ELEM, D, G>(DECODE_KERNEL_ARGS); }

#define DECODE_GROUPS(ENAME, ELEM, D)                                    \
    DECODE_ENTRY(ch07_decode_##ENAME##_d##D##_g1, ELEM, D, 1, BOUNDS_G1) \
    DECODE_ENTRY(ch07_decode_##ENAME##_d##D##_g2, ELEM, D, 2, BOUNDS_G)  \
    DECODE_ENTRY(ch07_decode_##ENAME##_d##D##_g3, ELEM, D, 3, BOUNDS_G)  \
    DECODE_ENTRY(ch07_decode_##ENAME##_d##D##_g4, ELEM, D, 4, BOUNDS_G)

#define DECODE_DIMS(ENAME, ELEM)   \
    DECODE_GROUPS(ENAME, ELEM, 64) \
    DECODE_GROUPS(ENAME, ELEM, 128)

DECODE_DIMS(bf16, BF16)
DECODE_DIMS(int8, INT8)
DECODE_DIMS(fp8, FP8)
DECODE_DIMS(nvfp4, NVFP4)

// The splits' partial results merged: block (row, slice) of P · 16 threads, row =
// b·q_heads + hq, merging channels [16·slice, 16·slice + 16) of that row. A sequence of 256 k
// tokens has 512 splits, and the merge reads 512 · d floats per row from L2. A first version gave
// each row one block of 512 threads, (split lane p, channel c) = (tid / d, tid mod d), each
// walking splits p, p + 512/d, …: one sequence of Llama-3-8B is 32 rows, so 32 SMs each walked
// 256 KB with a few loads in flight per thread, and the merge grew with the splits per row
// (the book's chapter 7, "A wider combine"). Slicing the channels gives d/16 times the blocks, and
// each thread (p, c) = (tid / 16, tid mod 16) walks only splits p, p + P, …: a half-warp reads one
// split's 64 contiguous bytes of the slice, and the loop is unrolled so that 8 of its loads are in
// flight at once. The host picks the split lanes P = blockDim.x / 16 from the splits (2 to 32,
// about 8 splits a lane: `combine_threads`), so that few splits do not launch thousands of
// mostly idle 512-thread blocks. Each split lane merges its splits online, as the main kernel
// merges tokens: a running max m, sum l and unnormalised a, rescaled by 2^(m_old − m_new) when a
// split raises the max, so that every load of the walk is independent of the others and all of
// them can be in flight at once (a first version found the max over all splits first: one more
// round trip to L2 and a barrier before the sums could start). Then the P split lanes' (m, l, a)
// are merged through shared memory the same way. Splits whose chunk starts at or past len_b
// hold nothing and are not read; every split read holds a token, so its max is finite. The host
// launches it as a programmatic dependent of the main kernel (ch07_decode_common.cuh): it reads
// the lengths, then waits for the main kernel's partials.
// Grid (batch · q_heads, d / 16), block P · 16 threads, P a power of two.
#define COMBINE_SLICE 16
#define COMBINE_MAX_LANES 32
#define COMBINE_MAX_THREADS (COMBINE_MAX_LANES * COMBINE_SLICE)
extern "C" __global__ void __launch_bounds__(COMBINE_MAX_THREADS)
    ch07_decode_combine(const float *__restrict__ part_acc, const float *__restrict__ part_ml,
                        const unsigned *__restrict__ lengths, float *__restrict__ out, int q_heads, int head_dim,
                        int splits, int chunk) {
    __shared__ float s_sum[COMBINE_MAX_LANES][COMBINE_SLICE];
    __shared__ float s_m[COMBINE_MAX_LANES], s_l[COMBINE_MAX_LANES];
    const long long row = blockIdx.x;  // b · q_heads + hq
    const int b = (int)(row / q_heads);
    const int tid = threadIdx.x, lanes = blockDim.x / COMBINE_SLICE;
    const int p = tid / COMBINE_SLICE, lane_c = tid % COMBINE_SLICE;
    const int c = blockIdx.y * COMBINE_SLICE + lane_c;
    const int len = (int)lengths[b];
    const int used = min(splits, (len + chunk - 1) / chunk);
    wait_for_prerequisite_grid();  // the main kernel's partials, below, are complete and visible
    const float *ml = part_ml + row * splits * 2;
    const float *acc = part_acc + row * splits * head_dim;

    // Split lane p's splits p, p + P, …: m = −∞ until the first, whose factor 2^(−∞) = 0 clears
    // the zeros of a and l.
    float m = neg_inf(), a = 0.0f, l = 0.0f;
#pragma unroll 8
    for (int s = p; s < used; s += lanes) {
        const float2 ms = reinterpret_cast<const float2 *>(ml)[s];  // (m, l) of split s
        const float as = acc[(long long)s * head_dim + c];
        const float mn = fmaxf(m, ms.x);
        const float f_old = exp2_approx(m - mn), f_split = exp2_approx(ms.x - mn);
        a = fmaf(as, f_split, a * f_old);
        l = fmaf(ms.y, f_split, l * f_old);
        m = mn;
    }
    s_sum[p][lane_c] = a;
    if (lane_c == 0) {
        s_m[p] = m;
        s_l[p] = l;
    }
    __syncthreads();
    if (p == 0) {
        if (used == 0) {
            out[row * head_dim + c] = 0.0f;
            return;
        }
        float mx = s_m[0];
        for (int q = 1; q < lanes; ++q) mx = fmaxf(mx, s_m[q]);
        float at = 0.0f, lt = 0.0f;
        for (int q = 0; q < lanes; ++q) {  // a lane with no split: m = −∞, factor 0, a = l = 0
            const float f = exp2_approx(s_m[q] - mx);
            at = fmaf(s_sum[q][lane_c], f, at);
            lt = fmaf(s_l[q], f, lt);
        }
        out[row * head_dim + c] = at / lt;
    }
}
