// ch03_flash_forward.cu — the FlashAttention forward pass in f32 (FlashAttention-2 order:
// one block owns a tile of queries and streams every key/value tile past it).
//
// What it computes, for every batch b, head h and query row i, with s_ij = scale · q_i·k_j:
//   out_i = Σ_j softmax_j(s_i + mask) v_j,    lse_i = ln Σ_j exp(s_ij)   (visible keys only)
// without ever storing the Nq × Nk scores: a block keeps a Br × Bc tile of them on chip and
// merges it into a running row max m, row sum l and unnormalised output O (the online
// softmax): with a new tile's row max m̃,
//   m' = max(m, m̃),   l' = l·2^(m − m') + Σ_j 2^(s_j − m'),   O' = O·2^(m − m') + P̃ V_tile,
// and at the end out = O / l, lse = (m + log2 l)·ln 2. Scores are kept in log2 units: Q is
// multiplied by scale·log2(e) once when it is loaded, so every exponential is a bare exp2f.
// Masks: causal, aligned bottom-right (key j visible to query i iff j ≤ i + Nk − Nq), and an
// optional key-padding mask, uint8 (B, Nk), nonzero = padded; a null pointer means none. A
// query that sees no key gets out_i = 0 and lse_i = −∞ (chapter 2's convention).
//
// Layouts (row-major, f32): q (B,H,Nq,D), k and v (B,H,Nk,D), out (B,H,Nq,D), lse (B,H,Nq).
// Head dims D ∈ {32, 64, 128} (one entry point each, the tile sizes below); dv = D.
//
// Launch shape: grid (⌈Nq/Br⌉, B·H), block FLASH_THREADS = 128 threads (4 warps) seen as a
// TY × TX grid. Thread (ty, tx) owns RM = Br/TY query rows (groups of 4 adjacent rows, TY·4
// apart) and RN = Bc/TX key columns (tx, tx + TX, ...) of the score tile, and the same RM rows
// × RD = D/TX columns of O, so the rescaling by 2^(m − m') needs no communication: a row's max
// and sum are reduced over the TX lanes that share it with warp shuffles. Causal launches
// visit the query tiles in reverse order (the longest first).
//   D = 32:  Br = 128, Bc = 64, TY × TX = 16 × 8   (RM = 8, RN = 8, RD = 4)
//   D = 64:  Br = 128, Bc = 64, TY × TX = 16 × 8   (RM = 8, RN = 8, RD = 8)
//   D = 128: Br = 64,  Bc = 32, TY × TX = 8 × 16   (RM = 8, RN = 2, RD = 8)
//
// Shared memory (dynamic, floats; rows padded by 4 floats so that the transposing stores and
// the 16-byte reads of a warp hit distinct banks):
//   Qᵀ  D × (Br+4)    the query tile, transposed and pre-scaled (float4 reads along rows)
//   K   Bc × (D+4)    the key tile (float4 reads along d)
//   V   Bc × D        the value tile
//   Pᵀ  Bc × (Br+4)   the tile's probabilities, transposed
// = 68 096 bytes (D = 32), 101 376 (D = 64), 76 800 (D = 128): two blocks per SM on an H100.
// The host (chapters/ch03-flash-attention/src/gpu.rs) computes the same sizes and opts in above
// 48 KiB; the kernel traps if it was given less.
//
// One key tile, per block: S = Q Kᵀ from shared memory (each thread an RM × RN register tile;
// per 4 steps of d, RM + RN float4 reads feed 4·RM·RN FFMAs; no tensor cores, no TF32); mask
// (only tiles that cross the causal diagonal or the end of the keys, or when a padding mask is
// given); online softmax in registers; Pᵀ to shared memory; O += P V from shared memory. K and
// V tiles arrive by cp.async (16 bytes per request): the next K tile while P V runs, the next
// V tile while S is computed. Out-of-range query rows are computed on zeros and never
// written; out-of-range keys are zeros in shared memory and −∞ as scores, so no load or store
// leaves the arrays.
//
// Bytes moved through HBM/L2 per call (f32): Q read once (B·H·Nq·D·4), K and V read once per
// query tile (2·B·H·⌈Nq/Br⌉·Nk·D·4, about half when causal), out written once (B·H·Nq·D·4),
// lse once (B·H·Nq·4), and with a padding mask B·H·Nk bytes per query tile. The Nq × Nk
// scores never leave the chip: Θ(N·d + N²·d/Br) traffic for Θ(N²·d) FLOPs. K and V of the
// heads in flight stay in L2 (50 MB on an H100), so DRAM sees little of their re-reading.

#define FLASH_THREADS 128
#define FLASH_LN2 0.693147180559945309f

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// The byte size of the dynamic shared memory this launch was given.
__device__ __forceinline__ unsigned dynamic_smem_bytes() {
    unsigned bytes;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(bytes));
    return bytes;
}

// 16-byte asynchronous copy global → shared (sm_80+): the copy runs while the thread computes;
// cp.async.wait_all then a barrier make it visible to the block.
__device__ __forceinline__ void cp_async_16(float* smem_dst, const float* gmem_src) {
    unsigned dst;
    asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }"
                 : "=r"(dst)
                 : "l"(smem_dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(gmem_src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }
// Wait until at most one commit group (the newest) is still in flight.
__device__ __forceinline__ void cp_async_wait_group_1() {
    asm volatile("cp.async.wait_group 1;" ::: "memory");
}

__device__ __forceinline__ float4 zero4() { return make_float4(0.0f, 0.0f, 0.0f, 0.0f); }

// Tile sizes and shared-memory layout of one instantiation.
template <int D, int BR, int BC, int TY, int TX>
struct FlashTiles {
    static_assert(TY * TX == FLASH_THREADS, "the thread grid must hold FLASH_THREADS threads");
    static_assert(32 % TX == 0, "a row's TX threads must be lanes of one warp");
    static constexpr int RM = BR / TY;  // query rows per thread
    static constexpr int RN = BC / TX;  // key columns per thread
    static constexpr int RD = D / TX;   // output columns per thread
    static_assert(RM % 4 == 0 && RD % 4 == 0 && RN >= 1, "rows and output columns are groups of float4");
    static_assert(BR % 16 == 0 && D % 8 == 0, "the transposing loads move 16 rows × 8 floats");
    static constexpr int BRP = BR + 4;  // padded row lengths of Qᵀ/Pᵀ and K
    static constexpr int DP = D + 4;
    static constexpr int Q_FLOATS = D * BRP;
    static constexpr int K_FLOATS = BC * DP;
    static constexpr int V_FLOATS = BC * D;
    static constexpr int P_FLOATS = BC * BRP;
    static constexpr int SHARED_BYTES = 4 * (Q_FLOATS + K_FLOATS + V_FLOATS + P_FLOATS);
    static constexpr int Q_LOADS = BR * D / 4 / FLASH_THREADS;   // float4 loads per thread
    static constexpr int KV_LOADS = BC * D / 4 / FLASH_THREADS;
    static_assert(Q_LOADS * 4 * FLASH_THREADS == BR * D && KV_LOADS * 4 * FLASH_THREADS == BC * D, "");
};

// Load float4 number `it` of this thread from a (rows × D) row-major tile starting at `src`
// row `row0`; rows ≥ `rows` read as zeros. Within a warp, lane pairs read the 32 bytes of one
// row (full sectors) over 16 rows, so that the transposing stores into Qᵀ (row stride ≡ 4 mod
// 32 floats) hit 32 different banks. Sets the tile row r and the first column c of the four.
template <int D>
__device__ __forceinline__ float4 load_row_chunk(const float* __restrict__ src, int row0, int rows, int it,
                                                 int tid, int& r, int& c) {
    const int f = it * FLASH_THREADS + tid;
    const int lane = f & 31, chunk = f >> 5;
    r = (chunk / (D / 8)) * 16 + (lane >> 1);
    c = 4 * (2 * (chunk % (D / 8)) + (lane & 1));
    if (row0 + r < rows) return *reinterpret_cast<const float4*>(src + (size_t)(row0 + r) * D + c);
    return zero4();
}

template <int D, int BR, int BC, int TY, int TX>
__device__ __forceinline__ void flash_forward(const float* __restrict__ q, const float* __restrict__ k,
                                              const float* __restrict__ v,
                                              const unsigned char* __restrict__ key_padding,
                                              float* __restrict__ out, float* __restrict__ lse, int heads,
                                              int nq, int nk, int causal, float scale_log2e) {
    typedef FlashTiles<D, BR, BC, TY, TX> T;
    constexpr int RM = T::RM, RN = T::RN, RD = T::RD, BRP = T::BRP, DP = T::DP;
    extern __shared__ __align__(16) float smem[];
    float* q_t = smem;               // Qᵀ: D × BRP
    float* k_s = q_t + T::Q_FLOATS;  // K:  BC × DP
    float* v_s = k_s + T::K_FLOATS;  // V:  BC × D
    float* p_t = v_s + T::V_FLOATS;  // Pᵀ: BC × BRP

    // Layout constants are compiled in; a launch with another block size or less shared
    // memory is a host bug that would corrupt memory, so stop it here.
    if (blockDim.x != FLASH_THREADS || dynamic_smem_bytes() < (unsigned)T::SHARED_BYTES) __trap();

    const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
    const int q_tile = causal ? (int)(gridDim.x - 1 - blockIdx.x) : (int)blockIdx.x;
    const int q0 = q_tile * BR;
    const int bh = blockIdx.y, b = bh / heads;
    const float* q_head = q + (size_t)bh * nq * D;
    const float* k_head = k + (size_t)bh * nk * D;
    const float* v_head = v + (size_t)bh * nk * D;
    const unsigned char* pad = key_padding ? key_padding + (size_t)b * nk : nullptr;

    // Key j is visible to query i iff j ≤ i + diag. The block's last row (q_last) sees the
    // most keys; tiles at or past kv_end are skipped entirely.
    const long long diag = (long long)nk - nq;
    const int q_last = (q0 + BR < nq ? q0 + BR : nq) - 1;
    long long kv_end_ll = causal ? q_last + 1 + diag : nk;
    const int kv_end = (int)(kv_end_ll < 0 ? 0 : (kv_end_ll > nk ? nk : kv_end_ll));
    const int n_tiles = (kv_end + BC - 1) / BC;

    // The thread's rows (groups of 4 adjacent ones, TY·4 apart: one float4 of Qᵀ or Pᵀ) and
    // key columns (TX apart: a warp's float4 reads of K rows fall in distinct banks).
#define ROW_OF(i) (((i) / 4) * (TY * 4) + ty * 4 + ((i) % 4))
#define COL_OF(j) ((j) * TX + tx)

    // The query tile, transposed and scaled into log2 units.
#pragma unroll
    for (int it = 0; it < T::Q_LOADS; ++it) {
        int r, c;
        const float4 x = load_row_chunk<D>(q_head, q0, nq, it, tid, r, c);
        q_t[(c + 0) * BRP + r] = x.x * scale_log2e;
        q_t[(c + 1) * BRP + r] = x.y * scale_log2e;
        q_t[(c + 2) * BRP + r] = x.z * scale_log2e;
        q_t[(c + 3) * BRP + r] = x.w * scale_log2e;
    }

    // A (BC × D) tile of K or V, rows j0.. of the head, into shared memory with row stride
    // `stride`, by cp.async; rows past the last key are zero-filled (P is exactly 0 there, but
    // 0 · garbage could be NaN). One commit group per tile.
    auto load_tile = [&](float* dst, const float* src, int stride, int j0) {
#pragma unroll
        for (int it = 0; it < T::KV_LOADS; ++it) {
            const int f = it * FLASH_THREADS + tid;
            const int r = f / (D / 4), c = 4 * (f % (D / 4));
            float* to = dst + r * stride + c;
            if (j0 + r < nk) {
                cp_async_16(to, src + (size_t)(j0 + r) * D + c);
            } else {
                *reinterpret_cast<float4*>(to) = zero4();
            }
        }
        cp_async_commit();
    };

    // Running state of the thread's rows: max m (log2 units), partial sum l over the thread's
    // own columns (reduced over the row's TX lanes at the end), unnormalised output O.
    float o[RM][RD], m[RM], l[RM];
#pragma unroll
    for (int i = 0; i < RM; ++i) {
        m[i] = neg_inf();
        l[i] = 0.0f;
#pragma unroll
        for (int c = 0; c < RD; ++c) o[i][c] = 0.0f;
    }

    if (n_tiles > 0) {
        load_tile(k_s, k_head, DP, 0);
        load_tile(v_s, v_head, D, 0);
    }
    for (int t = 0; t < n_tiles; ++t) {
        const int j0 = t * BC;
        cp_async_wait_group_1();  // this K tile has landed (the V tile may still be in flight)
        __syncthreads();          // (A) ... for every thread's copies, and Qᵀ is written

        // ANCHOR: scores
        // S = (Q·scale·log2e) Kᵀ: per 4 steps of d, RN float4 reads of K rows and RM float4
        // reads of Qᵀ columns feed 4·RM·RN FFMAs.
        float s[RM][RN];
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) s[i][j] = 0.0f;
#pragma unroll 2
        for (int c = 0; c < D; c += 4) {
            float kk[RN][4];
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                const float4 y = *reinterpret_cast<const float4*>(k_s + COL_OF(j) * DP + c);
                kk[j][0] = y.x, kk[j][1] = y.y, kk[j][2] = y.z, kk[j][3] = y.w;
            }
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                float a[RM];
#pragma unroll
                for (int g = 0; g < RM / 4; ++g) {
                    const float4 x =
                        *reinterpret_cast<const float4*>(q_t + (c + e) * BRP + g * TY * 4 + ty * 4);
                    a[4 * g] = x.x, a[4 * g + 1] = x.y, a[4 * g + 2] = x.z, a[4 * g + 3] = x.w;
                }
#pragma unroll
                for (int i = 0; i < RM; ++i)
#pragma unroll
                    for (int j = 0; j < RN; ++j) s[i][j] = fmaf(a[i], kk[j][e], s[i][j]);
            }
        }
        // ANCHOR_END: scores

        // ANCHOR: mask
        // Masks, only where a tile needs them: past the last key, across the causal diagonal
        // (a block's first row q0 sees keys ≤ q0 + diag), or with a padding mask.
        const bool past_end = j0 + BC > nk;
        const bool crosses_diagonal = causal && (long long)j0 + BC > q0 + 1 + diag;
        if (past_end || crosses_diagonal || pad != nullptr) {
            bool key_ok[RN];
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                const int col = j0 + COL_OF(j);
                key_ok[j] = col < nk && (pad == nullptr || pad[col] == 0);
            }
#pragma unroll
            for (int i = 0; i < RM; ++i) {
                const long long end = causal ? (long long)(q0 + ROW_OF(i)) + 1 + diag : (long long)nk;
#pragma unroll
                for (int j = 0; j < RN; ++j) {
                    if (!key_ok[j] || j0 + COL_OF(j) >= end) s[i][j] = neg_inf();
                }
            }
        }
        // ANCHOR_END: mask

        // ANCHOR: online_softmax
        // Online softmax: the row max over the tile (shuffles among the row's TX lanes), the
        // correction 2^(m − m') for what was accumulated so far, and P̃ = 2^(S − m'). A row with
        // no visible key yet has m' = −∞; it uses 0 instead so that no −∞ − (−∞) = NaN appears
        // and its weights stay exactly 0.
#pragma unroll
        for (int i = 0; i < RM; ++i) {
            float tile_max = s[i][0];
#pragma unroll
            for (int j = 1; j < RN; ++j) tile_max = fmaxf(tile_max, s[i][j]);
#pragma unroll
            for (int offset = TX / 2; offset > 0; offset >>= 1)
                tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, offset));
            const float m_new = fmaxf(m[i], tile_max);
            const float m_use = m_new == neg_inf() ? 0.0f : m_new;
            const float correction = exp2f(m[i] - m_use);
            m[i] = m_new;
            float sum = 0.0f;
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                s[i][j] = exp2f(s[i][j] - m_use);
                sum += s[i][j];
            }
            l[i] = l[i] * correction + sum;
#pragma unroll
            for (int c = 0; c < RD; ++c) o[i][c] *= correction;
        }
        // ANCHOR_END: online_softmax

        // Pᵀ (key-major), so that P V reads 4 rows of P with one float4.
#pragma unroll
        for (int j = 0; j < RN; ++j) {
#pragma unroll
            for (int g = 0; g < RM / 4; ++g) {
                *reinterpret_cast<float4*>(p_t + COL_OF(j) * BRP + g * TY * 4 + ty * 4) =
                    make_float4(s[4 * g][j], s[4 * g + 1][j], s[4 * g + 2][j], s[4 * g + 3][j]);
            }
        }
        cp_async_wait_all();
        __syncthreads();  // (B) Pᵀ and this V tile visible; every thread is done with K

        // The next K tile now: it arrives while P V runs.
        const bool more = t + 1 < n_tiles;
        if (more) load_tile(k_s, k_head, DP, j0 + BC);

        // ANCHOR: pv
        // O += P V: for each key, RM/4 + RD/4 float4 reads feed RM·RD FFMAs.
#pragma unroll 8
        for (int j = 0; j < BC; ++j) {
            float p[RM], vv[RD];
#pragma unroll
            for (int g = 0; g < RM / 4; ++g) {
                const float4 x = *reinterpret_cast<const float4*>(p_t + j * BRP + g * TY * 4 + ty * 4);
                p[4 * g] = x.x, p[4 * g + 1] = x.y, p[4 * g + 2] = x.z, p[4 * g + 3] = x.w;
            }
#pragma unroll
            for (int g = 0; g < RD / 4; ++g) {
                const float4 y = *reinterpret_cast<const float4*>(v_s + j * D + g * TX * 4 + tx * 4);
                vv[4 * g] = y.x, vv[4 * g + 1] = y.y, vv[4 * g + 2] = y.z, vv[4 * g + 3] = y.w;
            }
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int c = 0; c < RD; ++c) o[i][c] = fmaf(p[i], vv[c], o[i][c]);
        }
        // ANCHOR_END: pv
        __syncthreads();  // (C) every thread is done with V and Pᵀ
        if (more) load_tile(v_s, v_head, D, j0 + BC);  // arrives while the next S is computed
    }

    // ANCHOR: epilogue
    // out = O / l and lse = (m + log2 l)·ln 2, where l is summed over the row's TX lanes
    // (all lanes take part in the shuffles, then only real rows are written).
#pragma unroll
    for (int i = 0; i < RM; ++i) {
        float total = l[i];
#pragma unroll
        for (int offset = TX / 2; offset > 0; offset >>= 1)
            total += __shfl_xor_sync(0xffffffffu, total, offset);
        const float inv = total > 0.0f ? 1.0f / total : 0.0f;  // no visible key: zeros
        const int row = q0 + ROW_OF(i);
        if (row < nq) {
            float* out_row = out + ((size_t)bh * nq + row) * D;
#pragma unroll
            for (int g = 0; g < RD / 4; ++g) {
                *reinterpret_cast<float4*>(out_row + g * TX * 4 + tx * 4) =
                    make_float4(o[i][4 * g] * inv, o[i][4 * g + 1] * inv, o[i][4 * g + 2] * inv,
                                o[i][4 * g + 3] * inv);
            }
            if (tx == 0) {
                lse[(size_t)bh * nq + row] = total > 0.0f ? (m[i] + log2f(total)) * FLASH_LN2 : neg_inf();
            }
        }
    }
    // ANCHOR_END: epilogue
#undef ROW_OF
#undef COL_OF
}

// Entry points, one per head dim. The template arguments are the tile sizes of the header and
// must match `FlashTiles::for_head_dim` in gpu.rs (the shared-memory check above catches a
// mismatch in size).
#define FLASH_ARGS                                                                                       \
    const float *__restrict__ q, const float *__restrict__ k, const float *__restrict__ v,              \
        const unsigned char *__restrict__ key_padding, float *__restrict__ out, float *__restrict__ lse, \
        int heads, int nq, int nk, int causal, float scale_log2e
#define FLASH_PASS q, k, v, key_padding, out, lse, heads, nq, nk, causal, scale_log2e

extern "C" __global__ void __launch_bounds__(FLASH_THREADS, 2) ch03_flash_forward_d32(FLASH_ARGS) {
    flash_forward<32, 128, 64, 16, 8>(FLASH_PASS);
}
extern "C" __global__ void __launch_bounds__(FLASH_THREADS, 2) ch03_flash_forward_d64(FLASH_ARGS) {
    flash_forward<64, 128, 64, 16, 8>(FLASH_PASS);
}
extern "C" __global__ void __launch_bounds__(FLASH_THREADS, 2) ch03_flash_forward_d128(FLASH_ARGS) {
    flash_forward<128, 64, 32, 8, 16>(FLASH_PASS);
}
