// ch12_mma_common.cuh — the building blocks that every bf16 rung of chapter 12's ladder shares:
// bf16 packing, the m16n8k16 tensor-core MMA, asynchronous and synchronous tile copies into two
// shared-memory layouts, the fragment loads of each layout, the masks, the online softmax kept
// in registers, and the epilogue. Each rung's .cu file is this header followed by its kernel
// (attn_support::kernel_source! concatenates them; NVRTC has no file system to include from).
//
// Conventions of every rung (B, H, Nq, Nk, D as in chapter 2):
//   q (B,H,Nq,D), k and v (B,H,Nk,D), out (B,H,Nq,D): bf16, row-major;  lse (B,H,Nq): f32.
//   Scores s_ij = q_i·k_j accumulate in f32 on the tensor cores; the softmax works in log2
//   units, p = 2^(s·scale·log2e − m·scale·log2e), one FFMA and one EX2 per score.
//   Causal masks are bottom-right aligned: key j is visible to query i iff j ≤ i + Nk − Nq.
//   A query that sees no key gets out = 0 and lse = −∞ (chapter 2's convention).
//
// The tensor-core instruction, per warp (PTX ISA, "mma.m16n8k16"): D(16×8, f32) += A(16×16,
// bf16, row-major) · B(16×8, bf16, column-major). With g = lane/4 and t = lane%4, a thread holds
//   A: a0 = A[g][2t..2t+1], a1 = A[g+8][2t..2t+1], a2 = A[g][2t+8..+9], a3 = A[g+8][2t+8..+9]
//   B: b0 = B[2t..2t+1][g], b1 = B[2t+8..+9][g]
//   C: c0,c1 = C[g][2t..2t+1], c2,c3 = C[g+8][2t..2t+1]
// (two bf16 per 32-bit register, the lower column in the lower half). Two facts make
// FlashAttention-2's register reuse work: for S = Q Kᵀ, B[k][n] = K[n][k] is two adjacent
// elements of one K row, and the C layout of two neighbouring 16×8 score blocks is exactly the
// A layout of the 16×16 block of P that multiplies V, so P never leaves the registers.

typedef unsigned short bf16_t;

#define LADDER_LN2 0.693147180559945309f
#define LADDER_ARGS                                                                                \
    const bf16_t *__restrict__ q, const bf16_t *__restrict__ k, const bf16_t *__restrict__ v,      \
        bf16_t *__restrict__ out, float *__restrict__ lse, int heads, int nq, int nk, int causal,  \
        float scale_log2e
#define LADDER_ARG_NAMES q, k, v, out, lse, heads, nq, nk, causal, scale_log2e

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

__device__ __forceinline__ unsigned dynamic_smem_bytes() {
    unsigned bytes;
    asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(bytes));
    return bytes;
}

__device__ __forceinline__ unsigned smem_u32(const void *p) {
    unsigned addr;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(addr) : "l"(p));
    return addr;
}

// Two f32 → one register of two bf16 (round to nearest even), `lo` in the lower half.
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// c += a · b on the tensor cores (HMMA.16816.F32.BF16 in SASS).
__device__ __forceinline__ void mma_16816(float c[4], const unsigned a[4], const unsigned b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ---- copies: global → shared, 16 bytes (8 bf16, one "chunk") per request ----------------------

// Asynchronous (sm_80+): the copy engine writes shared memory while the thread goes on. With
// src_size 0 nothing is read and the 16 bytes are zero-filled (rows past the end of the tensor);
// `src` is still a valid address so that no tool sees an out-of-bounds pointer.
__device__ __forceinline__ void cp_async_16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// Shared-memory layouts of a ROWS × D bf16 tile, addressed by (row, column in elements).
//  Padded: each row padded by one chunk (8 bf16 = 16 bytes), so 8 consecutive rows start in 8
//    different 4-bank groups and the 32-bit fragment loads of a warp are conflict-free
//    (chapter 3's trick). Costs D/8+1 chunks per row.
//  Swizzled: no padding; chunk c of row r is stored at chunk c ^ (r mod 8). The 8 rows of an
//    8×8 ldmatrix block (same c, consecutive r) land in 8 distinct chunk slots of 128 bytes,
//    i.e. all 32 banks once: conflict-free with no wasted bytes (needs D ≥ 64).
template <int D> struct PaddedLayout {
    static constexpr int STRIDE = D + 8;
    __device__ static int at(int row, int col) { return row * STRIDE + col; }
    __host__ __device__ static constexpr int tile_elems(int rows) { return rows * STRIDE; }
};
template <int D> struct SwizzledLayout {
    static_assert(D % 64 == 0, "the XOR swizzle needs at least 8 chunks per row");
    __device__ static int at(int row, int col) {
        return row * D + ((((col >> 3) ^ row) & 7) | ((col >> 3) & ~7)) * 8 + (col & 7);
    }
    __host__ __device__ static constexpr int tile_elems(int rows) { return rows * D; }
};

// Copy rows [row0, row0 + ROWS) of a (n, D) matrix into a shared tile; rows ≥ n become zeros.
template <int ROWS, int D, int THREADS, class Layout>
__device__ __forceinline__ void load_tile_async(bf16_t *tile, const bf16_t *src, int row0, int n) {
    constexpr int CHUNKS = D / 8;
#pragma unroll
    for (int i = threadIdx.x; i < ROWS * CHUNKS; i += THREADS) {
        const int r = i / CHUNKS, c = i % CHUNKS;
        const bool valid = row0 + r < n;
        cp_async_16(tile + Layout::at(r, c * 8), src + (size_t)(valid ? row0 + r : 0) * D + c * 8, valid);
    }
}
// The same with ordinary 16-byte loads and stores: the thread waits for each load.
template <int ROWS, int D, int THREADS, class Layout>
__device__ __forceinline__ void load_tile_sync(bf16_t *tile, const bf16_t *src, int row0, int n) {
    constexpr int CHUNKS = D / 8;
#pragma unroll
    for (int i = threadIdx.x; i < ROWS * CHUNKS; i += THREADS) {
        const int r = i / CHUNKS, c = i % CHUNKS;
        uint4 chunk = make_uint4(0, 0, 0, 0);
        if (row0 + r < n) chunk = *reinterpret_cast<const uint4 *>(src + (size_t)(row0 + r) * D + c * 8);
        *reinterpret_cast<uint4 *>(tile + Layout::at(r, c * 8)) = chunk;
    }
}

// ---- fragment loads: how a warp gets its MMA operands out of shared memory --------------------
// Both sources hand out the same registers; they differ in the instructions that fetch them.

// Scalar 32-bit loads from a padded tile (rungs 1–3). V's B fragment pairs two keys of one
// column, which are a row apart in memory: two 16-bit loads per register.
template <int D> struct ScalarFragments {
    using Layout = PaddedLayout<D>;
    __device__ static unsigned word(const bf16_t *t, int row, int col) {
        return *reinterpret_cast<const unsigned *>(t + Layout::at(row, col));
    }
    // A fragment of rows [row0, row0+16), columns [col0, col0+16).
    __device__ static void a(unsigned r[4], const bf16_t *t, int row0, int col0, int lane) {
        const int g = lane >> 2, c = col0 + 2 * (lane & 3);
        r[0] = word(t, row0 + g, c), r[1] = word(t, row0 + g + 8, c);
        r[2] = word(t, row0 + g, c + 8), r[3] = word(t, row0 + g + 8, c + 8);
    }
    // B fragments of S = Q Kᵀ for keys [key0, key0+16) (two 8-key blocks), d [col0, col0+16).
    __device__ static void k_pair(unsigned b[2][2], const bf16_t *t, int key0, int col0, int lane) {
        const int g = lane >> 2, c = col0 + 2 * (lane & 3);
#pragma unroll
        for (int h = 0; h < 2; ++h) b[h][0] = word(t, key0 + 8 * h + g, c), b[h][1] = word(t, key0 + 8 * h + g, c + 8);
    }
    // B fragments of O += P V for keys [key0, key0+16), d columns [col0, col0+16).
    __device__ static void v_pair(unsigned b[2][2], const bf16_t *t, int key0, int col0, int lane) {
        const int g = lane >> 2, kr = key0 + 2 * (lane & 3);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int col = col0 + 8 * h + g;
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int r = kr + 8 * half;
                b[h][half] = (unsigned)t[Layout::at(r, col)] | ((unsigned)t[Layout::at(r + 1, col)] << 16);
            }
        }
    }
};

// ldmatrix from a swizzled tile (rungs 4 and 5): one instruction gives a warp four 8×8 matrices,
// each lane naming one 16-byte row; `.trans` transposes on the way, which is V's B fragment.
__device__ __forceinline__ void ldmatrix_x4(unsigned r[4], const bf16_t *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned r[4], const bf16_t *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
template <int D> struct LdmatrixFragments {
    using Layout = SwizzledLayout<D>;
    // Lane l addresses row l%8 of matrix l/8; matrices (0,1,2,3) = (a0,a1,a2,a3).
    __device__ static void a(unsigned r[4], const bf16_t *t, int row0, int col0, int lane) {
        ldmatrix_x4(r, t + Layout::at(row0 + (lane & 15), col0 + (lane >> 4) * 8));
    }
    // Matrices: (keys 0–7, d 0–7) → b[0][0], (keys 0–7, d 8–15) → b[0][1], then keys 8–15.
    __device__ static void k_pair(unsigned b[2][2], const bf16_t *t, int key0, int col0, int lane) {
        unsigned r[4];
        ldmatrix_x4(r, t + Layout::at(key0 + (lane >> 4) * 8 + (lane & 7), col0 + ((lane >> 3) & 1) * 8));
        b[0][0] = r[0], b[0][1] = r[1], b[1][0] = r[2], b[1][1] = r[3];
    }
    // Transposed: (keys 0–7, d 0–7) → b[0][0], (keys 8–15, d 0–7) → b[0][1], then d 8–15.
    __device__ static void v_pair(unsigned b[2][2], const bf16_t *t, int key0, int col0, int lane) {
        unsigned r[4];
        ldmatrix_x4_trans(r, t + Layout::at(key0 + ((lane >> 3) & 1) * 8 + (lane & 7), col0 + (lane >> 4) * 8));
        b[0][0] = r[0], b[0][1] = r[1], b[1][0] = r[2], b[1][1] = r[3];
    }
};

// ---- the warp's pieces of one key tile ---------------------------------------------------------

// S (16 × BC) = Q_frag (16 × D) · K_tileᵀ, accumulated in f32 from zero.
template <class Frag, int D, int BC>
__device__ __forceinline__ void warp_scores(float s[BC / 8][4], const unsigned qf[D / 16][4],
                                            const bf16_t *k_tile, int lane) {
#pragma unroll
    for (int j = 0; j < BC / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
        for (int j2 = 0; j2 < BC / 16; ++j2) {
            unsigned b[2][2];
            Frag::k_pair(b, k_tile, 16 * j2, 16 * kk, lane);
            mma_16816(s[2 * j2], qf[kk], b[0]);
            mma_16816(s[2 * j2 + 1], qf[kk], b[1]);
        }
    }
}

// Which scores of a tile are visible: keys ≥ Nk (zero rows of the tile) and, when causal, keys
// after the query's diagonal are not. `row` is the warp's first row (global query index); a
// thread's rows are row + g and row + g + 8. `active` false (a tile inside the visible region)
// skips the test.
struct TileMask {
    int row, key0, nk, causal, offset;
    bool active;
    __device__ bool hides(int j, int e, int lane) const {
        const int key = key0 + 8 * j + 2 * (lane & 3) + (e & 1), i = row + (lane >> 2) + 8 * (e >> 1);
        return active && (key >= nk || (causal && key > i + offset));
    }
};

// Scores of invisible keys → −∞ (weight exactly 0 after the exponential).
template <int BC> __device__ __forceinline__ void mask_scores(float s[BC / 8][4], const TileMask &mask, int lane) {
    if (!mask.active) return;
#pragma unroll
    for (int j = 0; j < BC / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
            if (mask.hides(j, e, lane)) s[j][e] = neg_inf();
}

// ANCHOR: softmax
// The online softmax of one score tile, in registers. m (raw score units) and l are the running
// max and sum of the thread's rows g and g + 8; l stays a per-thread partial sum (the four
// threads of a quad share a row and the same rescaling, so one reduction at the end suffices).
// On return s holds P̃ = 2^(s·c − m'·c) (c = scale·log2e), masked scores 0, and alpha =
// 2^((m − m')·c) is the factor the rows of O must still be multiplied by. Rescaling O and packing
// P to bf16 are separate steps so that a kernel can do them after an MMA on O has finished.
template <int BC>
__device__ __forceinline__ void softmax_exponentiate(float s[BC / 8][4], const TileMask &mask, float m[2], float l[2],
                                                     float alpha[2], float scale_log2e, int lane) {
    mask_scores<BC>(s, mask, lane);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float mx = m[r];
#pragma unroll
        for (int j = 0; j < BC / 8; ++j) mx = fmaxf(mx, fmaxf(s[j][2 * r], s[j][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 2));
        // A row that has seen only masked keys keeps m = −∞; subtracting 0 then keeps every
        // exponent −∞ (weight 0) instead of producing −∞ − (−∞) = NaN.
        const float base = mx == neg_inf() ? 0.f : mx * scale_log2e;
        alpha[r] = exp2f(m[r] * scale_log2e - base);
        m[r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < BC / 8; ++j) {
            s[j][2 * r] = exp2f(fmaf(s[j][2 * r], scale_log2e, -base));
            s[j][2 * r + 1] = exp2f(fmaf(s[j][2 * r + 1], scale_log2e, -base));
            sum += s[j][2 * r] + s[j][2 * r + 1];
        }
        l[r] = l[r] * alpha[r] + sum;
    }
}
// ANCHOR_END: softmax

// P̃ (f32, accumulator layout) → bf16 A fragments of P V: two 16×8 blocks make one 16×16 block.
template <int BC> __device__ __forceinline__ void pack_probabilities(const float s[BC / 8][4], unsigned p[BC / 16][4]) {
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
        p[kk][0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
        p[kk][1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
        p[kk][2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        p[kk][3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
}

// O's rows g and g + 8 times alpha.
template <int D> __device__ __forceinline__ void rescale_rows(float o[D / 8][4], const float alpha[2]) {
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[n][0] *= alpha[0], o[n][1] *= alpha[0], o[n][2] *= alpha[1], o[n][3] *= alpha[1];
}

// All three: the online softmax step of rungs 2–6 (rungs 7–9 call the three apart, around the
// MMAs they overlap).
template <int BC, int D>
__device__ __forceinline__ void online_softmax(float s[BC / 8][4], const TileMask &mask, float m[2], float l[2],
                                               float o[D / 8][4], unsigned p[BC / 16][4], float scale_log2e,
                                               int lane) {
    float alpha[2];
    softmax_exponentiate<BC>(s, mask, m, l, alpha, scale_log2e, lane);
    rescale_rows<D>(o, alpha);
    pack_probabilities<BC>(s, p);
}

// O (16 × D) += P (16 × BC) · V_tile (BC × D).
template <class Frag, int D, int BC>
__device__ __forceinline__ void warp_pv(float o[D / 8][4], const unsigned p[BC / 16][4], const bf16_t *v_tile,
                                        int lane) {
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) {
#pragma unroll
        for (int n2 = 0; n2 < D / 16; ++n2) {
            unsigned b[2][2];
            Frag::v_pair(b, v_tile, 16 * kk, 16 * n2, lane);
            mma_16816(o[2 * n2], p[kk], b[0]);
            mma_16816(o[2 * n2 + 1], p[kk], b[1]);
        }
    }
}

// out = O / l in bf16 and lse = (m·c + log2 l)·ln 2 for the warp's 16 rows starting at `row`
// (global query index within this head); rows ≥ Nq are not written. l is first summed over the
// quad. A row with l = 0 saw no key: zeros and −∞.
template <int D>
__device__ __forceinline__ void write_output(float o[D / 8][4], const float m[2], float l[2], bf16_t *out_head,
                                             float *lse_head, int row, int nq, float scale_log2e, int lane) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffff, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffff, l[r], 2);
        const int i = row + g + 8 * r;
        if (i >= nq) continue;
        const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
#pragma unroll
        for (int n = 0; n < D / 8; ++n)
            *reinterpret_cast<unsigned *>(out_head + (size_t)i * D + 8 * n + 2 * t) =
                pack_bf16x2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
        if (t == 0) lse_head[i] = l[r] > 0.f ? (m[r] * scale_log2e + log2f(l[r])) * LADDER_LN2 : neg_inf();
    }
}

// The first query row of this block's BR-row tile. Causal launches visit the tiles in reverse:
// the last tiles see the most keys, so they start first and the short ones fill the last wave.
template <int BR> __device__ __forceinline__ int first_query_row(int causal) {
    return (causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x) * BR;
}

// The key tiles a query tile [q0, q0 + rows) must visit: all ⌈Nk/BC⌉, or when causal only those
// up to the last row's diagonal q0 + rows − 1 + Nk − Nq (none if even that is before key 0).
template <int BC> __device__ __forceinline__ int key_tiles(int q0, int rows, int nq, int nk, int causal) {
    if (!causal) return (nk + BC - 1) / BC;
    const int last_key = min(q0 + rows, nq) - 1 + nk - nq;
    return last_key < 0 ? 0 : min((last_key + BC) / BC, (nk + BC - 1) / BC);
}
// Does key tile [key0, key0 + BC) need masking for query rows [q0, q0 + rows)?
template <int BC>
__device__ __forceinline__ bool tile_needs_mask(int key0, int q0, int nk, int causal, int offset) {
    return key0 + BC > nk || (causal && key0 + BC - 1 > q0 + offset);
}
