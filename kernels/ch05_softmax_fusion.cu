// ch05_softmax_fusion.cu — scale + mask + softmax over a (B, H, Nq, Nk) score tensor (chapter 5).
//
// What: for every row r = (b·H + h)·Nq + i of Nk scores s_j (f32 or bf16 in memory, f32 math)
//     x_j = s_j · scale                 where key j is visible, −∞ elsewhere,
//     m = max_j x_j,  e_j = exp(x_j − m),  P_j = e_j / Σ_j e_j,
// with the mask computed from indices, never read from memory (the CPU MaskSpec, exactly): query
// i sits at position p = i + Nk − Nq and sees the interval lo ≤ j < hi with
//     hi = clamp(p + 1, 0, Nk) if causal else Nk,   hi = min(hi, key_lengths[b]) with padding,
//     lo = clamp(p + 1 − W, 0, Nk) for a sliding window of W keys (p − W < j ≤ p), else 0.
// A row with an empty interval is written as zeros (m = −∞: no weights to normalise), never NaN.
//
// Two launch shapes holding the row in registers, so that HBM sees it once each way, and a third
// that holds nothing:
//  - a warp per row (ch05_softmax_warp_*): 4 warps of a 128-thread block (WARPS_PER_BLOCK), each
//    lane holding V values of its row; the max and the sum are reduced with warp shuffles only (no
//    shared memory, no __syncthreads). For short rows: V ≤ 64 values per lane, Nk ≤ 32·V ≤ 2048
//    keys. A row too short to give every lane a vector (Nk ≤ 16·V at the smallest V) goes to a
//    group of 16 or 8 lanes instead (the "_lanes16" / "_lanes8" kernels, 2 or 4 rows per warp).
//    Grid ⌈rows / (4 · 32 / lanes per row)⌉.
//  - a block per row (ch05_softmax_block_*): one block of T ≤ 512 threads (a multiple of 32, set by
//    the host) per row, each thread holding V ∈ {16, 32, 64} values; warp shuffles, then the
//    warps' partial results through 32 floats of shared memory. Grid (rows, 1, 1). For long rows
//    up to 512·64 = 32768 keys. Beside it, an experiment not yet chosen by the host's automatic
//    plan: ch05_softmax_block1024_* (T ≤ 1024 threads × V = 16 values, rows of ≤ 16384 keys; see
//    its section below), and ch05_softmax_block_prefetch_bf16_vec_v32 (a persistent 512-thread
//    block that copies its next row into shared memory with cp.async while it computes this one;
//    see its section).
//  - a block per row that holds nothing (ch05_softmax_twopass_bf16_vec, bf16 only): pass 1 reads
//    the row from DRAM for its max and sum (the online softmax), pass 2 reads it again from L2
//    and writes; four rows an SM where the register blocks fit two, any row length. The host's
//    automatic plan gives it bf16 rows of more than 8192 keys (see its section).
// Values are read and written as 128-bit vectors (float4, or 8 bf16 in a uint4) when the host has
// checked that Nk is a multiple of 4 (f32) / 8 (bf16) and both pointers are 16-byte aligned (the
// "vec" kernels); otherwise one element at a time (the "scalar" kernels). Lane t of a warp (thread
// t of a block) owns vectors t, t + 32 (t + T), ... : consecutive lanes touch consecutive 16-byte
// chunks, so every warp-wide access is coalesced. Vectors that lie wholly outside the visible
// interval are not read at all (about half of a causal tensor), only written as zeros.
//
// The unfused chain for comparison, three launches, each a full round trip through HBM:
//  - ch05_scale_*:    y = x · scale (flat, 256 threads, one vector per thread);
//  - ch05_add_mask_*: y = x + mask, mask a stored (B, 1, Nq, Nk) tensor of 0 / −∞ in the same
//    dtype, broadcast over the heads (a block covers one chunk of one (b, h) plane);
//  - the softmax: the fused kernels above with no mask and scale = 1 (the third pass of the chain
//    is a plain row softmax; reusing the same kernel makes the comparison about fusion alone).
//
// Bytes moved (e = 4 for f32, 2 for bf16; T = B·H·Nq·Nk·e): fused 2T (read S, write P; fewer
// reads when whole vectors are masked); unfused T + T (scale) + 2T + mask (add) + 2T (softmax) =
// 6T + the mask reads — SoftmaxPipeline::bytes_moved in src/softmax_fusion.rs.
//
// bf16 is handled as raw 16-bit patterns (unsigned short), so no CUDA header is needed under
// NVRTC: bf16 → f32 is exact (the bits shifted into the top half of an f32), f32 → bf16 rounds to
// nearest even with cvt.rn.bf16x2.f32 (sm_80+), which also keeps NaN a NaN.

typedef unsigned short bf16_t;

#define WARP 32
#define WARPS_PER_BLOCK 4
#define WARP_BLOCK_THREADS (WARP * WARPS_PER_BLOCK)
#define BLOCK_MAX_THREADS 512
#define ELEMENTWISE_THREADS 256

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// ---- element access: W elements from/to memory as f32 -----------------------------------------

__device__ __forceinline__ float bf16_to_f32(bf16_t h) { return __uint_as_float((unsigned)h << 16); }

// Two f32 → two bf16 in one 32-bit word (round to nearest even), `lo` in the lower half.
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

__device__ __forceinline__ bf16_t f32_to_bf16(float x) { return (bf16_t)(pack_bf16x2(x, 0.0f) & 0xffffu); }

// W = 4 f32 as one float4 / W = 8 bf16 as one uint4 (128-bit access), or W = 1 element.
template <typename T, int W> __device__ __forceinline__ void load(const T* p, float v[W]);
template <typename T, int W> __device__ __forceinline__ void store(T* p, const float v[W]);

template <> __device__ __forceinline__ void load<float, 1>(const float* p, float v[1]) { v[0] = p[0]; }
// ANCHOR: vector_access
template <> __device__ __forceinline__ void load<float, 4>(const float* p, float v[4]) {
    const float4 f = *reinterpret_cast<const float4*>(p);
    v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w;
}
template <> __device__ __forceinline__ void load<bf16_t, 1>(const bf16_t* p, float v[1]) { v[0] = bf16_to_f32(p[0]); }
#define BF16_PER_VECTOR 8  // bf16 values per 16-byte vector
// The 8 bf16 of a loaded vector as f32 (exact: the bits shifted into the top half).
__device__ __forceinline__ void unpack_bf16x8(uint4 u, float v[BF16_PER_VECTOR]) {
    const unsigned words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        v[2 * k] = __uint_as_float(words[k] << 16);              // lower half: the earlier element
        v[2 * k + 1] = __uint_as_float(words[k] & 0xffff0000u);
    }
}
template <> __device__ __forceinline__ void load<bf16_t, 8>(const bf16_t* p, float v[8]) {
    unpack_bf16x8(*reinterpret_cast<const uint4*>(p), v);
}

template <> __device__ __forceinline__ void store<float, 1>(float* p, const float v[1]) { p[0] = v[0]; }
template <> __device__ __forceinline__ void store<float, 4>(float* p, const float v[4]) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
template <> __device__ __forceinline__ void store<bf16_t, 1>(bf16_t* p, const float v[1]) { p[0] = f32_to_bf16(v[0]); }
template <> __device__ __forceinline__ void store<bf16_t, 8>(bf16_t* p, const float v[8]) {
    *reinterpret_cast<uint4*>(p) = make_uint4(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]),
                                              pack_bf16x2(v[4], v[5]), pack_bf16x2(v[6], v[7]));
}
// ANCHOR_END: vector_access

// ---- reductions ---------------------------------------------------------------------------------

// Butterfly reductions over groups of LANES consecutive lanes (32: the whole warp): after
// log2(LANES) exchanges every lane of a group holds its group's result; xor offsets below LANES
// never leave the group.
// ANCHOR: reductions
template <int LANES = WARP> __device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int offset = LANES / 2; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

template <int LANES = WARP> __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = LANES / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// The block's max (is_max) or sum in every thread: each warp reduces with shuffles, lane 0 puts
// its warp's result in `partial` (one float per warp), warp-level again over those. The trailing
// __syncthreads lets the next call reuse `partial`.
__device__ __forceinline__ float block_reduce(float v, bool is_max, float* partial) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP, warps = blockDim.x / WARP;
    v = is_max ? warp_max(v) : warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < warps ? partial[lane] : (is_max ? neg_inf() : 0.0f);
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();
    return v;
}
// ANCHOR_END: reductions

// ---- the mask, from indices ---------------------------------------------------------------------

struct Interval { int lo, hi; };

// The keys row `row` may see (see the header). key_lengths: B ints or null; window 0 = none.
__device__ __forceinline__ Interval visible_keys(long long row, int heads, int nq, int nk, int causal,
                                                 const int* key_lengths, int window) {
    const long long bh = row / nq;
    const long long i = row - bh * nq;
    const long long b = bh / heads;
    const long long end = i + 1 + nk - nq;  // one past the query's position p
    long long hi = causal ? (end < 0 ? 0 : (end > nk ? nk : end)) : nk;
    if (key_lengths) hi = min(hi, (long long)key_lengths[b]);
    long long lo = 0;
    if (window > 0) {
        const long long start = end - window;
        lo = start < 0 ? 0 : (start > nk ? nk : start);
    }
    if (hi < lo) hi = lo;  // empty: the row becomes zeros
    return Interval{(int)lo, (int)hi};
}

// ---- the fused row softmax ----------------------------------------------------------------------

// 2^x with the special function unit's approximation (relative error about 2⁻²², ex2(−∞) = +0;
// results below 2⁻¹²⁶ are flushed to zero: a probability under 1e-38 is written as 0).
__device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// The row softmax shared by both launch shapes, for R rows at once. A participant (a lane, or a
// thread of a block) with index `t` among `stride` participants owns the W-element vectors t,
// t + stride, ... (N of them, N·W = V values) of each of its R rows, and keeps them in registers
// between the three steps; `reduce_max` and `reduce_sum` combine R floats across all
// participants at once, so that the R rows' shuffles overlap instead of waiting on each other.
// Rows with `keys[r]` empty (including the lanes past the last row, which still take part in the
// shuffles, as every lane of the warp must) read nothing and, when `write[r]` is false, store
// nothing.
//
// Instructions per element are what limit bf16 (a 16-byte load brings 8 values, and an H100/H200
// moves ~1 bf16 value per 16-lane-cycles-per-SM of its copy bandwidth), so the exponential is
// taken in base 2 with log₂e folded into the scale, c = scale · log₂e:
//     t_j = s_j · c,  m = max_j t_j,  e_j = 2^(t_j − m) = exp(s_j · scale − max),
// one multiply, one max, one subtract and one MUFU.EX2 per element, and the mask is tested per
// element only in the (at most two) vectors a row's interval boundaries cut.
// ANCHOR: softmax_row
template <typename T, int W, int N, int R, typename MaxFn, typename SumFn>
__device__ __forceinline__ void softmax_rows(const T* __restrict__ x, T* __restrict__ y, int nk, float scale_log2e,
                                             const Interval (&keys)[R], const bool (&write)[R], int t, int stride,
                                             MaxFn reduce_max, SumFn reduce_sum) {
    float v[R][N][W];
    float m[R];
    // Step 1: read the visible scores once (skipping vectors with no visible key), scale them,
    // −∞ everywhere else, and the local max.
#pragma unroll
    for (int r = 0; r < R; ++r) {
        m[r] = neg_inf();
        const T* row = x + (long long)r * nk;
#pragma unroll
        for (int n = 0; n < N; ++n) {
            const int j0 = (n * stride + t) * W;
            if (j0 < nk && j0 >= keys[r].lo && j0 + W <= keys[r].hi) {  // wholly visible
                load<T, W>(row + j0, v[r][n]);
#pragma unroll
                for (int w = 0; w < W; ++w) v[r][n][w] *= scale_log2e;
            } else if (j0 < nk && j0 < keys[r].hi && j0 + W > keys[r].lo) {  // cut by a boundary
                load<T, W>(row + j0, v[r][n]);
#pragma unroll
                for (int w = 0; w < W; ++w) {
                    const int j = j0 + w;
                    v[r][n][w] = (j >= keys[r].lo && j < keys[r].hi) ? v[r][n][w] * scale_log2e : neg_inf();
                }
            } else {  // wholly masked, or past the row's end
#pragma unroll
                for (int w = 0; w < W; ++w) v[r][n][w] = neg_inf();
            }
#pragma unroll
            for (int w = 0; w < W; ++w) m[r] = fmaxf(m[r], v[r][n][w]);
        }
    }
    reduce_max(m);
    // Step 2: e_j = 2^(t_j − m) and their sum; a masked key gives 2^−∞ = 0 exactly. With no
    // visible key m = −∞, and −∞ − (−∞) would be NaN: subtracting 0 instead leaves every
    // e_j = 2^−∞ = 0, the sum 0, and the row zeros.
    float sum[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const float shift = m[r] == neg_inf() ? 0.0f : m[r];
        sum[r] = 0.0f;
#pragma unroll
        for (int n = 0; n < N; ++n) {
#pragma unroll
            for (int w = 0; w < W; ++w) {
                v[r][n][w] = exp2_approx(v[r][n][w] - shift);
                sum[r] += v[r][n][w];
            }
        }
    }
    reduce_sum(sum);
    // Step 3: normalise and write every element of the row once (zeros where masked).
#pragma unroll
    for (int r = 0; r < R; ++r) {
        const float inv_sum = sum[r] > 0.0f ? 1.0f / sum[r] : 0.0f;
        T* row = y + (long long)r * nk;
#pragma unroll
        for (int n = 0; n < N; ++n) {
            const int j0 = (n * stride + t) * W;
            if (write[r] && j0 < nk) {
#pragma unroll
                for (int w = 0; w < W; ++w) v[r][n][w] *= inv_sum;
                store<T, W>(row + j0, v[r][n]);
            }
        }
    }
}
// ANCHOR_END: softmax_row

// log₂e, to fold into the scale (see softmax_rows).
#define LOG2E 1.4426950408889634f

// Rows a lane group takes at once in the warp-per-row kernels: 2 when a lane holds at most 8
// values (rows of ≤ 256 keys), so that a warp has two rows' loads in flight and half as many
// warps (and blocks) are launched for the same bytes; 1 for longer rows, whose registers are
// better spent on the row itself. Mirrored by `rows_per_group` in src/gpu/softmax.rs.
#define ROWS_PER_GROUP(V) ((V) <= 8 ? 2 : 1)

// A group of LANES lanes per row: the whole warp (32) for rows of more than 16·V keys, or 16 or 8
// lanes so that a short row (128 bf16 keys are 16 vectors of 8) still keeps every lane busy, with
// 32 / LANES groups per warp, each taking R consecutive rows.
template <typename T, int W, int N, int LANES, int R>
__device__ __forceinline__ void softmax_warp_per_row(const T* __restrict__ x, T* __restrict__ y, long long rows,
                                                     int heads, int nq, int nk, float scale, int causal,
                                                     const int* __restrict__ key_lengths, int window) {
    const int lane = threadIdx.x % WARP;
    const long long warp = (long long)blockIdx.x * WARPS_PER_BLOCK + threadIdx.x / WARP;
    const long long row0 = (warp * (WARP / LANES) + lane / LANES) * R;
    Interval keys[R];
    bool valid[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
        valid[r] = row0 + r < rows;
        keys[r] = valid[r] ? visible_keys(row0 + r, heads, nq, nk, causal, key_lengths, window) : Interval{0, 0};
    }
    const long long offset = row0 < rows ? row0 * nk : 0;
    softmax_rows<T, W, N, R>(
        x + offset, y + offset, nk, scale * LOG2E, keys, valid, lane % LANES, LANES,
        [](float (&v)[R]) {
#pragma unroll
            for (int offset = LANES / 2; offset > 0; offset >>= 1)
#pragma unroll
                for (int r = 0; r < R; ++r) v[r] = fmaxf(v[r], __shfl_xor_sync(0xffffffffu, v[r], offset));
        },
        [](float (&v)[R]) {
#pragma unroll
            for (int offset = LANES / 2; offset > 0; offset >>= 1)
#pragma unroll
                for (int r = 0; r < R; ++r) v[r] += __shfl_xor_sync(0xffffffffu, v[r], offset);
        });
}

// MAX_THREADS: the most threads the entry is launched with, which sizes `partial` (one float per
// warp).
template <typename T, int W, int N, int MAX_THREADS = BLOCK_MAX_THREADS>
__device__ __forceinline__ void softmax_block_per_row(const T* __restrict__ x, T* __restrict__ y, int heads,
                                                      int nq, int nk, float scale, int causal,
                                                      const int* __restrict__ key_lengths, int window) {
    __shared__ float partial[MAX_THREADS / WARP];
    const long long row = blockIdx.x;
    const Interval keys[1] = {visible_keys(row, heads, nq, nk, causal, key_lengths, window)};
    const bool write[1] = {true};
    const long long offset = row * nk;
    softmax_rows<T, W, N, 1>(x + offset, y + offset, nk, scale * LOG2E, keys, write, threadIdx.x, blockDim.x,
                             [&](float (&v)[1]) { v[0] = block_reduce(v[0], true, partial); },
                             [&](float (&v)[1]) { v[0] = block_reduce(v[0], false, partial); });
}

// One extern "C" entry per (shape, dtype, access width W, values per thread V = N·W), named
// ch05_softmax_{warp|block}_{f32|bf16}_{vec|scalar}_v{V}; the host picks the smallest V that
// covers the row.
#define WARP_ENTRY(NAME, TYPE, W, V, LANES)                                                               \
    extern "C" __global__ void __launch_bounds__(WARP_BLOCK_THREADS)                                      \
        NAME(const TYPE* __restrict__ x, TYPE* __restrict__ y, long long rows, int heads, int nq, int nk, \
             float scale, int causal, const int* __restrict__ key_lengths, int window) {                  \
        softmax_warp_per_row<TYPE, W, (V) / (W), LANES, ROWS_PER_GROUP(V)>(x, y, rows, heads, nq, nk, scale, \
                                                                            causal, key_lengths, window);        \
    }

#define BLOCK_ENTRY(NAME, TYPE, W, V)                                                                     \
    extern "C" __global__ void __launch_bounds__(BLOCK_MAX_THREADS)                                       \
        NAME(const TYPE* __restrict__ x, TYPE* __restrict__ y, long long rows, int heads, int nq, int nk, \
             float scale, int causal, const int* __restrict__ key_lengths, int window) {                  \
        softmax_block_per_row<TYPE, W, (V) / (W)>(x, y, heads, nq, nk, scale, causal, key_lengths,        \
                                                  window);                                                \
    }

WARP_ENTRY(ch05_softmax_warp_f32_vec_v4, float, 4, 4, 32)
WARP_ENTRY(ch05_softmax_warp_f32_vec_v8, float, 4, 8, 32)
WARP_ENTRY(ch05_softmax_warp_f32_vec_v16, float, 4, 16, 32)
WARP_ENTRY(ch05_softmax_warp_f32_vec_v32, float, 4, 32, 32)
WARP_ENTRY(ch05_softmax_warp_f32_vec_v64, float, 4, 64, 32)
WARP_ENTRY(ch05_softmax_warp_f32_scalar_v4, float, 1, 4, 32)
WARP_ENTRY(ch05_softmax_warp_f32_scalar_v8, float, 1, 8, 32)
WARP_ENTRY(ch05_softmax_warp_f32_scalar_v16, float, 1, 16, 32)
WARP_ENTRY(ch05_softmax_warp_f32_scalar_v32, float, 1, 32, 32)
WARP_ENTRY(ch05_softmax_warp_f32_scalar_v64, float, 1, 64, 32)
WARP_ENTRY(ch05_softmax_warp_bf16_vec_v8, bf16_t, 8, 8, 32)
WARP_ENTRY(ch05_softmax_warp_bf16_vec_v16, bf16_t, 8, 16, 32)
WARP_ENTRY(ch05_softmax_warp_bf16_vec_v32, bf16_t, 8, 32, 32)
WARP_ENTRY(ch05_softmax_warp_bf16_vec_v64, bf16_t, 8, 64, 32)
WARP_ENTRY(ch05_softmax_warp_bf16_scalar_v4, bf16_t, 1, 4, 32)
WARP_ENTRY(ch05_softmax_warp_bf16_scalar_v8, bf16_t, 1, 8, 32)
WARP_ENTRY(ch05_softmax_warp_bf16_scalar_v16, bf16_t, 1, 16, 32)
WARP_ENTRY(ch05_softmax_warp_bf16_scalar_v32, bf16_t, 1, 32, 32)
WARP_ENTRY(ch05_softmax_warp_bf16_scalar_v64, bf16_t, 1, 64, 32)

WARP_ENTRY(ch05_softmax_warp_f32_vec_v4_lanes16, float, 4, 4, 16)
WARP_ENTRY(ch05_softmax_warp_f32_vec_v4_lanes8, float, 4, 4, 8)
WARP_ENTRY(ch05_softmax_warp_f32_scalar_v4_lanes16, float, 1, 4, 16)
WARP_ENTRY(ch05_softmax_warp_f32_scalar_v4_lanes8, float, 1, 4, 8)
WARP_ENTRY(ch05_softmax_warp_bf16_vec_v8_lanes16, bf16_t, 8, 8, 16)
WARP_ENTRY(ch05_softmax_warp_bf16_vec_v8_lanes8, bf16_t, 8, 8, 8)
WARP_ENTRY(ch05_softmax_warp_bf16_scalar_v4_lanes16, bf16_t, 1, 4, 16)
WARP_ENTRY(ch05_softmax_warp_bf16_scalar_v4_lanes8, bf16_t, 1, 4, 8)

BLOCK_ENTRY(ch05_softmax_block_f32_vec_v16, float, 4, 16)
BLOCK_ENTRY(ch05_softmax_block_f32_vec_v32, float, 4, 32)
BLOCK_ENTRY(ch05_softmax_block_f32_vec_v64, float, 4, 64)
BLOCK_ENTRY(ch05_softmax_block_f32_scalar_v16, float, 1, 16)
BLOCK_ENTRY(ch05_softmax_block_f32_scalar_v32, float, 1, 32)
BLOCK_ENTRY(ch05_softmax_block_f32_scalar_v64, float, 1, 64)
BLOCK_ENTRY(ch05_softmax_block_bf16_vec_v16, bf16_t, 8, 16)
BLOCK_ENTRY(ch05_softmax_block_bf16_vec_v32, bf16_t, 8, 32)
BLOCK_ENTRY(ch05_softmax_block_bf16_vec_v64, bf16_t, 8, 64)
BLOCK_ENTRY(ch05_softmax_block_bf16_scalar_v16, bf16_t, 1, 16)
BLOCK_ENTRY(ch05_softmax_block_bf16_scalar_v32, bf16_t, 1, 32)
BLOCK_ENTRY(ch05_softmax_block_bf16_scalar_v64, bf16_t, 1, 64)

// ---- the experiment: a block of up to 1024 threads × 16 values ----------------------------------

// The 512-thread block holds rows of 8193 to 16384 keys as 32 values per thread in ~60 registers:
// two blocks (rows) per SM, 50 % occupancy, and while a block waits on its barriers only one other
// row has loads in flight. Spreading the same row over twice the threads, 16 values each, with
// __launch_bounds__(WIDE_BLOCK_THREADS, 2) asking ptxas for ≤ 65536 / (2 · 1024) = 32 registers,
// fits two such blocks per SM at 100 % occupancy: twice the warps to hide the latency, at the cost
// of barriers that wait for 32 warps instead of 16. The same template as the block entries above
// (T ≤ 1024 threads, a multiple of 32, set by the host); only bf16 and f32 with 128-bit access are
// built. ptxas 13.5 (NVRTC from PyPI) for sm_90: bf16 in 32 registers, no spill; f32 in 32 with 8 bytes spilled
// (two values stored once after the loads and reloaded once for the stores). Measured against the
// 512-thread block in the benchmark (`fused_block1024`) before the host's automatic choice uses it.
#define WIDE_BLOCK_THREADS 1024
#define WIDE_BLOCK_ENTRY(NAME, TYPE, W, V)                                                                \
    extern "C" __global__ void __launch_bounds__(WIDE_BLOCK_THREADS, 2)                                   \
        NAME(const TYPE* __restrict__ x, TYPE* __restrict__ y, long long rows, int heads, int nq, int nk, \
             float scale, int causal, const int* __restrict__ key_lengths, int window) {                  \
        softmax_block_per_row<TYPE, W, (V) / (W), WIDE_BLOCK_THREADS>(x, y, heads, nq, nk, scale, causal, \
                                                                      key_lengths, window);               \
    }

WIDE_BLOCK_ENTRY(ch05_softmax_block1024_f32_vec_v16, float, 4, 16)
WIDE_BLOCK_ENTRY(ch05_softmax_block1024_bf16_vec_v16, bf16_t, 8, 16)

// ---- the experiment: a persistent block that prefetches its next row ---------------------------

// The 512-thread block of bf16 rows of 8193 to 16384 keys holds 32 values a thread in ~60
// registers, two blocks (rows) per SM. Each block loads its whole 32 KB row in one burst, then
// reduces with nothing in flight, then stores: between the bursts the SM asks nothing of DRAM.
// This kernel keeps loads in flight through the reductions. Grid: at most as many blocks as fit
// at once (the host asks the occupancy API; 2 per SM on an H100), and no more than the busiest
// block's row count needs (the host's balanced_grid), T ≤ 512 threads (⌈Nk / 32⌉ rounded up to
// whole warps), __launch_bounds__(512, 2); block b takes rows b, b + G, b + 2G, ... (G =
// gridDim.x, any row count). While it computes row r from one of STAGES shared-memory buffers,
// the visible vectors of rows r + G, …, r + (STAGES − 1)·G — [⌊lo/8⌋, ⌈hi/8⌉), exactly the
// vectors softmax_rows reads, so a causal row's masked part is not read — are on their way into
// the others by 16-byte cp.async.cg (L2 only: the row is read once). Step 1 of softmax_rows then
// reads the row's 32 values a thread from shared memory instead of global memory; steps 2 and 3
// are unchanged. Dynamic shared memory: STAGES buffers × Nk bf16 = 2·STAGES·Nk bytes (64 KiB for
// two, 96 KiB for three at 16384 keys; the host opts in above 48 KiB), 16-byte aligned as Nk is
// a multiple of 8 (checked by the host).
// Bytes moved: the same as the block per row, 2T less the wholly masked vectors (read once from
// DRAM into shared memory, written once from registers). bf16 with 128-bit access only.
// ptxas 13.x (NVRTC from PyPI) for sm_90a: 61 registers with two buffers, 56 with three (≤ 64
// for two 512-thread blocks an SM), no spill, 64 bytes of static shared memory; step 1's reads
// compile to ld.shared.v4 (the generic pointer is known to be shared). Measured against the
// 512-thread block in the benchmark (`fused_block_prefetch`, `fused_block_prefetch3`) before the
// host's automatic choice uses either.

// The copies: copy16, copy_commit and copy_wait of async_copy.cuh (prepended by the host).

#define PREFETCH_THREADS 512

// Start copying the vectors of `row` that softmax_rows will read (vector k is read when it
// overlaps [lo, hi): k·8 < hi and k·8 + 8 > lo, i.e. ⌊lo/8⌋ ≤ k < ⌈hi/8⌉) into `buffer`, spread
// over the block's threads, and commit them as one group. Every thread commits a group, even an
// empty one (no row left, no visible key), so that the groups counted by copy_wait stay in step
// with the rows.
__device__ __forceinline__ void prefetch_row(const bf16_t* __restrict__ x, long long row, Interval keys, int nk,
                                             bf16_t* buffer) {
    const int first = keys.lo / BF16_PER_VECTOR;
    const int last = (keys.hi + BF16_PER_VECTOR - 1) / BF16_PER_VECTOR;
    const bf16_t* source = x + row * nk;
    for (int k = first + threadIdx.x; k < last; k += blockDim.x)
        copy16(buffer + k * BF16_PER_VECTOR, source + k * BF16_PER_VECTOR, 16);
    copy_commit();
}

// STAGES row buffers: rows r + G, …, r + (STAGES − 1)·G are on their way while row r is computed
// (STAGES = 2: the next row only; 3: the next two, twice the bytes in flight per block).
template <int N, int STAGES>
__device__ __forceinline__ void softmax_block_prefetch(const bf16_t* __restrict__ x, bf16_t* __restrict__ y,
                                                       long long rows, int heads, int nq, int nk, float scale,
                                                       int causal, const int* __restrict__ key_lengths,
                                                       int window) {
    extern __shared__ __align__(16) unsigned char prefetch_buffers[];
    __shared__ float partial[PREFETCH_THREADS / WARP];
    // Buffer k mod STAGES: computed, not indexed from an array (which would sit in local memory).
    bf16_t* const buffers = reinterpret_cast<bf16_t*>(prefetch_buffers);
    const auto buffer = [&](int k) { return buffers + ((unsigned)k % STAGES) * nk; };
    // The visible keys of a row, or none past the last row (its group is committed empty).
    const auto keys_of = [&](long long r) {
        return r < rows ? visible_keys(r, heads, nq, nk, causal, key_lengths, window) : Interval{0, 0};
    };
    const long long first = blockIdx.x;
    if (first >= rows) return;  // the whole block: the host launches at most `rows` blocks anyway
#pragma unroll
    for (int k = 0; k < STAGES - 1; ++k) {
        const long long r = first + k * (long long)gridDim.x;
        prefetch_row(x, r, keys_of(r), nk, buffer(k));
    }
    const bool write[1] = {true};
    long long row = first;
    for (int k = 0; row < rows; ++k, row += gridDim.x) {
        // Refill buffer k − 1 (mod STAGES) with the row STAGES − 1 ahead. It last held row − G,
        // whose values every thread read in step 1 of the previous softmax_rows; the
        // block_reduce after that step (reduce_max) has a __syncthreads that no thread passes
        // before all have finished step 1, so no thread still reads this buffer when any thread
        // starts copying into it.
        const long long ahead = row + (STAGES - 1) * (long long)gridDim.x;
        prefetch_row(x, ahead, keys_of(ahead), nk, buffer(k + STAGES - 1));
        // This thread's copies of `row` are done when at most the STAGES − 1 groups committed
        // after it are pending; the barrier then makes every thread's copies visible to all.
        copy_wait<STAGES - 1>();
        __syncthreads();
        const Interval row_keys[1] = {keys_of(row)};
        softmax_rows<bf16_t, BF16_PER_VECTOR, N, 1>(
            buffer(k), y + row * nk, nk, scale * LOG2E, row_keys, write, threadIdx.x, blockDim.x,
            [&](float (&v)[1]) { v[0] = block_reduce(v[0], true, partial); },
            [&](float (&v)[1]) { v[0] = block_reduce(v[0], false, partial); });
    }
    copy_wait<0>();  // the last (empty) groups: nothing may be in flight when the block exits
}

// ch05_softmax_block_prefetch{,3}_bf16_vec_v32: 512 threads × 32 values (4 vectors of 8 bf16),
// two or three row buffers.
#define PREFETCH_BLOCK_ENTRY(NAME, V, STAGES)                                                             \
    extern "C" __global__ void __launch_bounds__(PREFETCH_THREADS, 2)                                     \
        NAME(const bf16_t* __restrict__ x, bf16_t* __restrict__ y, long long rows, int heads, int nq,      \
             int nk, float scale, int causal, const int* __restrict__ key_lengths, int window) {          \
        softmax_block_prefetch<(V) / BF16_PER_VECTOR, STAGES>(x, y, rows, heads, nq, nk, scale, causal,   \
                                                              key_lengths, window);                       \
    }

PREFETCH_BLOCK_ENTRY(ch05_softmax_block_prefetch_bf16_vec_v32, 32, 2)
PREFETCH_BLOCK_ENTRY(ch05_softmax_block_prefetch3_bf16_vec_v32, 32, 3)

// ---- the experiment: two passes over the row, the second from L2 --------------------------------

// Every kernel above holds its row on the chip between reading and writing it, in registers (or
// shared memory), and that caps the rows in flight: a 16 384-key bf16 row held as 32 floats a
// thread over 512 threads takes ~60 registers, two rows an SM. This kernel holds nothing. Pass 1
// streams the row from DRAM once with the online softmax's running pair per thread — a max m and
// a sum s of 2^(t − m), rescaled by 2^(m_old − m_new) when the max grows — and the block merges the
// threads' pairs: M = max m_i, S = Σ s_i · 2^(m_i − M). Pass 2 reads the row again, this time from
// L2 (the rows in flight, 4 per SM × 132 SMs × 32 KB = 17 MB, fit the H100's 50 MB L2), and
// writes 2^(t − M) / S. So a thread needs only its U vectors in flight and the pair: 32 registers,
// four 512-thread rows an SM, at the price of a second read from L2 and of the exponentials taken
// twice (pass 1 for the sum, pass 2 for the output). Row length is no longer bounded by the
// registers. Grid (rows, 1, 1), block T ≤ 512 threads (⌈Nk / 8⌉ rounded up to whole warps, at most
// 512: thread t takes vectors t, t + T, …, U at a time). bf16 with 128-bit access only (Nk a
// multiple of 8, both buffers 16-byte aligned: checked by the host). Vectors wholly outside the
// visible interval are written as zeros and never read; the mask is tested per element only in
// the two vectors the interval's ends cut, as in softmax_rows.
// Bytes moved: DRAM as the block per row (2T less the masked vectors), plus T read from L2.
// ptxas 13.x (NVRTC from PyPI) for sm_90a: 32 registers, no spill (U = 2).

// The 8 values of vector k scaled by c = scale · log₂e, −∞ where key 8k + i is masked.
__device__ __forceinline__ void scaled_vector(uint4 u, int k, Interval keys, float c, float v[BF16_PER_VECTOR]) {
    unpack_bf16x8(u, v);
#pragma unroll
    for (int i = 0; i < BF16_PER_VECTOR; ++i) v[i] *= c;
    if (BF16_PER_VECTOR * k < keys.lo || BF16_PER_VECTOR * k + BF16_PER_VECTOR > keys.hi) {
#pragma unroll
        for (int i = 0; i < BF16_PER_VECTOR; ++i) {
            const int j = BF16_PER_VECTOR * k + i;
            if (j < keys.lo || j >= keys.hi) v[i] = neg_inf();
        }
    }
}

// f(t) for every scaled value t of a batch of U vectors (−∞ where masked), unpacked again for
// each use rather than held: 8 · U more registers would cost the fourth row per SM. A function
// template, not a generic lambda: NVRTC compiles a lambda with an `auto` parameter as a host
// function and refuses it in device code.
template <int U, typename F>
__device__ __forceinline__ void each_scaled_value(const uint4 (&raw)[U], int k0, int stride, int last, Interval keys,
                                                  float c, F f) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (k0 + u * stride >= last) continue;
        float v[BF16_PER_VECTOR];
        scaled_vector(raw[u], k0 + u * stride, keys, c, v);
#pragma unroll
        for (int i = 0; i < BF16_PER_VECTOR; ++i) f(v[i]);
    }
}

template <int THREADS, int U>
__device__ __forceinline__ void softmax_two_pass(const bf16_t* __restrict__ x, bf16_t* __restrict__ y, int heads,
                                                 int nq, int nk, float scale, int causal,
                                                 const int* __restrict__ key_lengths, int window) {
    __shared__ float partial[THREADS / WARP];
    const long long row = blockIdx.x;
    const Interval keys = visible_keys(row, heads, nq, nk, causal, key_lengths, window);
    const float c = scale * LOG2E;
    const uint4* src = reinterpret_cast<const uint4*>(x + row * nk);
    uint4* dst = reinterpret_cast<uint4*>(y + row * nk);
    // The vectors with a visible key: [first, last).
    const int first = keys.lo / BF16_PER_VECTOR, last = (keys.hi + BF16_PER_VECTOR - 1) / BF16_PER_VECTOR;
    const int vectors = nk / BF16_PER_VECTOR, stride = blockDim.x;
    // Pass 1: U vectors in flight, then their max, then their exponentials against the new max.
    float m = neg_inf(), s = 0.0f;
    for (int k0 = first + (int)threadIdx.x; k0 < last; k0 += U * stride) {
        uint4 raw[U];
#pragma unroll
        for (int u = 0; u < U; ++u)
            if (k0 + u * stride < last) raw[u] = src[k0 + u * stride];
        float batch_max = neg_inf();
        each_scaled_value<U>(raw, k0, stride, last, keys, c, [&](float t) { batch_max = fmaxf(batch_max, t); });
        const float m_new = fmaxf(m, batch_max);
        if (m_new == neg_inf()) continue;  // nothing visible yet: −∞ − (−∞) would be NaN
        float added = 0.0f;
        each_scaled_value<U>(raw, k0, stride, last, keys, c, [&](float t) { added += exp2_approx(t - m_new); });
        s = s * exp2_approx(m - m_new) + added;  // 2^(−∞) = 0 on the first visible batch
        m = m_new;
    }
    // The block's pair: M = max m_i, S = Σ s_i · 2^(m_i − M) (a thread that saw nothing adds 0).
    const float row_max = block_reduce(m, true, partial);
    const float mine = m == neg_inf() ? 0.0f : s * exp2_approx(m - row_max);
    const float row_sum = block_reduce(mine, false, partial);
    // No visible key: M = −∞ and S = 0; shift by 0 and scale by 0, so that the row is zeros.
    const float shift = row_max == neg_inf() ? 0.0f : row_max;
    const float inv_sum = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
    // Pass 2: every vector of the row written once; the visible ones read again (from L2).
    for (int k0 = threadIdx.x; k0 < vectors; k0 += U * stride) {
        uint4 raw[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int k = k0 + u * stride;
            if (k < vectors && k >= first && k < last) raw[u] = src[k];
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int k = k0 + u * stride;
            if (k >= vectors) continue;
            uint4 packed = make_uint4(0u, 0u, 0u, 0u);  // zeros where no key is visible
            if (k >= first && k < last) {
                float v[BF16_PER_VECTOR];
                scaled_vector(raw[u], k, keys, c, v);
#pragma unroll
                for (int i = 0; i < BF16_PER_VECTOR; ++i) v[i] = exp2_approx(v[i] - shift) * inv_sum;
                packed = make_uint4(pack_bf16x2(v[0], v[1]), pack_bf16x2(v[2], v[3]), pack_bf16x2(v[4], v[5]),
                                    pack_bf16x2(v[6], v[7]));
            }
            dst[k] = packed;
        }
    }
}

// ch05_softmax_twopass_bf16_vec: T ≤ 512 threads, U = 2 vectors in flight per thread, and
// __launch_bounds__(512, 4): ≤ 65536 / (4 · 512) = 32 registers, four rows an SM.
#define TWOPASS_THREADS 512
#define TWOPASS_ENTRY(NAME, MIN_BLOCKS, U)                                                                \
    extern "C" __global__ void __launch_bounds__(TWOPASS_THREADS, MIN_BLOCKS)                             \
        NAME(const bf16_t* __restrict__ x, bf16_t* __restrict__ y, long long rows, int heads, int nq,      \
             int nk, float scale, int causal, const int* __restrict__ key_lengths, int window) {          \
        softmax_two_pass<TWOPASS_THREADS, U>(x, y, heads, nq, nk, scale, causal, key_lengths, window);     \
    }

TWOPASS_ENTRY(ch05_softmax_twopass_bf16_vec, 4, 2)

// ---- the unfused chain's first two passes ------------------------------------------------------

// y = x · scale over n elements, W per thread (n a multiple of W, checked by the host).
template <typename T, int W>
__device__ __forceinline__ void scale_pass(const T* __restrict__ x, T* __restrict__ y, long long n, float scale) {
    const long long j0 = ((long long)blockIdx.x * blockDim.x + threadIdx.x) * W;
    if (j0 >= n) return;
    float v[W];
    load<T, W>(x + j0, v);
#pragma unroll
    for (int w = 0; w < W; ++w) v[w] *= scale;
    store<T, W>(y + j0, v);
}

// y = x + mask with x, y (B, H, Nq·Nk) and mask (B, Nq·Nk): block k covers chunk k % chunks of
// plane k / chunks (plane = b·H + h), so the mask offset needs one division per block, not per
// element. plane_len = Nq·Nk is a multiple of W (checked by the host).
template <typename T, int W>
__device__ __forceinline__ void add_mask_pass(const T* __restrict__ x, const T* __restrict__ mask,
                                              T* __restrict__ y, long long plane_len, int heads, int chunks) {
    const long long plane = blockIdx.x / chunks;
    const long long chunk = blockIdx.x - plane * chunks;
    const long long j0 = (chunk * blockDim.x + threadIdx.x) * W;
    if (j0 >= plane_len) return;
    const long long b = plane / heads;
    float v[W], mk[W];
    load<T, W>(x + plane * plane_len + j0, v);
    load<T, W>(mask + b * plane_len + j0, mk);
#pragma unroll
    for (int w = 0; w < W; ++w) v[w] += mk[w];
    store<T, W>(y + plane * plane_len + j0, v);
}

#define ELEMENTWISE_ENTRIES(SUFFIX, TYPE, W)                                                              \
    extern "C" __global__ void __launch_bounds__(ELEMENTWISE_THREADS)                                     \
        ch05_scale_##SUFFIX(const TYPE* __restrict__ x, TYPE* __restrict__ y, long long n, float scale) { \
        scale_pass<TYPE, W>(x, y, n, scale);                                                              \
    }                                                                                                     \
    extern "C" __global__ void __launch_bounds__(ELEMENTWISE_THREADS)                                     \
        ch05_add_mask_##SUFFIX(const TYPE* __restrict__ x, const TYPE* __restrict__ mask,                 \
                               TYPE* __restrict__ y, long long plane_len, int heads, int chunks) {        \
        add_mask_pass<TYPE, W>(x, mask, y, plane_len, heads, chunks);                                     \
    }

ELEMENTWISE_ENTRIES(f32_vec, float, 4)
ELEMENTWISE_ENTRIES(f32_scalar, float, 1)
ELEMENTWISE_ENTRIES(bf16_vec, bf16_t, 8)
ELEMENTWISE_ENTRIES(bf16_scalar, bf16_t, 1)
