// ch07_decode_pipelined.cu — the decode attention of ch07_decode_attention.cu (same inputs, same
// output, same split-K partials and combine kernel), with the KV cache brought into shared memory
// by an asynchronous copy pipeline instead of loaded into registers.
//
// Why: the register kernel issues an iteration's loads, then computes on them; with its ~230
// registers an SM holds 8 warps, and while those compute (shuffles, exponentials, online
// softmax) few bytes are in flight, so the memory system idles. Little's law wants
// bandwidth × latency ≈ 36 GB/s × 1–1.5 µs ≈ 36–54 KB in flight per SM at all times. Here the
// block copies tile i + STAGES − 1 of K and V (and their scales) with cp.async while it computes
// on tile i: the copies need no registers and keep going during the compute.
//
// Launch: grid (splits, kv_heads, batch) as the register kernel, DECODE_THREADS = 128 threads,
// dynamic shared memory STAGES × STAGE_BYTES (host: decode_pipelined_shared_bytes in launch.rs,
// with the opt-in above 48 KB). A tile is TILE = 64 consecutive tokens of the block's chunk:
//   K rows  TILE × ROW_BYTES      V rows  TILE × ROW_BYTES     (ROW_BYTES: 2d, d, d, d/2)
//   then per type: FP8 K and V scales (TILE f32 each); INT8 V scales (TILE f32) and the K scale
//   rows of the key groups the tile touches (at most KEY_GROUPS_STAGED rows of d f32, when the
//   key group has ≥ MIN_STAGED_KEY_GROUP tokens; smaller groups read their scales from global
//   memory); NVFP4 K and V block scales (TILE × d/16 bytes each).
// STAGES: 3 for bf16 (96 KB at d = 128), 4 for INT8 and FP8, 6 for NVFP4 (~55 KB at d = 128).
// Every thread copies 16-byte pieces (cp.async.cg; 4-byte cp.async.ca for per-token scales and
// NVFP4 block scales); pieces of tokens at or past the chunk's end are zero-filled (src-size 0)
// and never read from global memory, so a partial tile computes on zeros, which the mask then
// ignores (a weight of exactly 0 times a finite 0).
//
// Compute: as the register kernel, a token row spread over LPT = d/16 lanes (16 elements
// each), NG = 128/LPT lane groups; group j takes tokens j, j + NG, j + 2·NG, ... of the tile
// (U = TILE/NG of them), so that the lane groups reading at once read consecutive rows and the
// shared-memory reads are free of bank conflicts: a quarter warp (8 lanes) reads 128 contiguous
// bytes. INT8 instead gives group j the U consecutive tokens j·U … (its K scales change with the
// key group) and stores the tile transposed, token j·U + u in row u·NG + j, which keeps the rows
// read at once consecutive. For bf16 a lane's 16 elements are two 16-byte pieces, piece `sub` and `sub + LPT` of
// the row (channels 8·sub … and 8·(sub + LPT) …), so that the 8 lanes of a d = 128 row read
// 128 contiguous bytes per instruction; at d = 64 two rows (two lane groups) share a quarter
// warp, and the pieces of odd rows are stored with their halves swapped (piece index XOR LPT)
// so the two rows land on different banks.
//
// Bytes moved: as the register kernel (each cached byte read once from HBM).

#define TILE 64
#define MIN_STAGED_KEY_GROUP 16
#define KEY_GROUPS_STAGED (TILE / MIN_STAGED_KEY_GROUP + 1)

// ---- the shared-memory tile of one stage --------------------------------------------------------

template <int ELEM, int D> struct Tile {
    static constexpr int ROW_BYTES = ELEM == BF16 ? 2 * D : ELEM == NVFP4 ? D / 2 : D;
    static constexpr int PIECES = ROW_BYTES / 16;  // 16-byte pieces per row
    static constexpr int BLOCKS_PER_ROW = D / 16;  // NVFP4 block scales per row
    static constexpr int K_OFF = 0;
    static constexpr int V_OFF = TILE * ROW_BYTES;
    static constexpr int EXTRA_OFF = 2 * TILE * ROW_BYTES;
    // FP8: k scales at EXTRA_OFF, v scales after. INT8: v scales at EXTRA_OFF, key-group scale
    // rows after. NVFP4: k block scales at EXTRA_OFF, v block scales after.
    static constexpr int SECOND_OFF =
        EXTRA_OFF + (ELEM == NVFP4 ? TILE * BLOCKS_PER_ROW : (ELEM == BF16 ? 0 : TILE * 4));
    static constexpr int EXTRA_BYTES = ELEM == BF16    ? 0
                                       : ELEM == FP8   ? 2 * TILE * 4
                                       : ELEM == INT8  ? TILE * 4 + KEY_GROUPS_STAGED * D * 4
                                                       : 2 * TILE * BLOCKS_PER_ROW;
    static constexpr int BYTES = (EXTRA_OFF + EXTRA_BYTES + 15) / 16 * 16;
    static constexpr int STAGES = ELEM == BF16 ? 3 : ELEM == NVFP4 ? 6 : 4;
    // Lane groups per block and tokens per lane group per tile (see the header).
    static constexpr int NG = DECODE_THREADS * EPL / D;
    static constexpr int U = TILE / NG;
    // Which tokens of the tile lane group j takes: j, j + NG, … (strided), or, for INT8, the U
    // consecutive tokens j·U … j·U + U − 1, so that a lane group meets a new key group (and
    // reloads its 16 K scales) once per key group rather than at nearly every token.
    static constexpr bool CONSECUTIVE = ELEM == INT8;
    __device__ static __forceinline__ int token_of(int group, int u) {
        return CONSECUTIVE ? group * U + u : group + NG * u;
    }
    // The shared-memory row of a token: the lane groups reading at once must read consecutive
    // rows (bank-conflict free), so consecutive assignment stores the tile transposed, token
    // j·U + u in row u·NG + j.
    __device__ static __forceinline__ int row(int token) {
        return CONSECUTIVE ? (token % U) * NG + token / U : token;
    }
    // bf16 at d = 64: two rows share a quarter warp; odd rows have their halves swapped.
    __device__ static __forceinline__ int piece(int token, int p) {
        return (ELEM == BF16 && D == 64) ? (p ^ ((token & 1) * (PIECES / 2))) : p;
    }
};

// Issue the copies of the tile of tokens [first, first + TILE) ∩ [first, end) into `st`.
template <int ELEM, int D>
__device__ __forceinline__ void copy_tile(unsigned char *st, const Plane &p, int first, int end, int key_group) {
    using T = Tile<ELEM, D>;
    const int valid = min(TILE, end - first);
    for (int i = threadIdx.x; i < TILE * T::PIECES; i += DECODE_THREADS) {
        const int token = i / T::PIECES, piece = i % T::PIECES;
        const bool ok = token < valid;
        const long long offset = (long long)(first + token) * T::ROW_BYTES + piece * 16;
        const int dst = T::row(token) * T::ROW_BYTES + T::piece(token, piece) * 16;
        copy16(st + T::K_OFF + dst, ok ? p.k + offset : p.k, ok ? 16 : 0);
        copy16(st + T::V_OFF + dst, ok ? p.v + offset : p.v, ok ? 16 : 0);
    }
    if constexpr (ELEM == FP8 || ELEM == INT8) {
        float *k_sc = reinterpret_cast<float *>(st + T::EXTRA_OFF);
        for (int i = threadIdx.x; i < TILE; i += DECODE_THREADS) {
            const bool ok = i < valid;
            if constexpr (ELEM == FP8) {
                float *v_sc = reinterpret_cast<float *>(st + T::SECOND_OFF);
                copy4(k_sc + i, ok ? p.k_scales + first + i : p.k_scales, ok ? 4 : 0);
                copy4(v_sc + i, ok ? p.v_scales + first + i : p.v_scales, ok ? 4 : 0);
            } else {
                copy4(k_sc + i, ok ? p.v_scales + first + i : p.v_scales, ok ? 4 : 0);  // INT8: V's
            }
        }
    }
    if constexpr (ELEM == INT8) {
        // The K scale rows (d f32 each) of the key groups [first / G, (first + valid − 1) / G].
        if (key_group >= MIN_STAGED_KEY_GROUP) {
            const int g0 = first / key_group, g1 = (first + valid - 1) / key_group;
            const int pieces = (g1 - g0 + 1) * D / 4;
            const float *src = p.k_scales + (long long)g0 * D;
            unsigned char *dst = st + T::SECOND_OFF;
            for (int i = threadIdx.x; i < pieces; i += DECODE_THREADS) copy16(dst + 16 * i, src + 4 * i, 16);
        }
    }
    if constexpr (ELEM == NVFP4) {
        constexpr int WORDS = T::BLOCKS_PER_ROW / 4;  // 4-byte words of block scales per row
        for (int i = threadIdx.x; i < TILE * WORDS; i += DECODE_THREADS) {
            const int token = i / WORDS;
            const bool ok = token < valid;
            const long long offset = (long long)first * T::BLOCKS_PER_ROW + 4 * i;
            copy4(st + T::EXTRA_OFF + 4 * i, ok ? p.k_blocks + offset : p.k_blocks, ok ? 4 : 0);
            copy4(st + T::SECOND_OFF + 4 * i, ok ? p.v_blocks + offset : p.v_blocks, ok ? 4 : 0);
        }
    }
}

// The lane's 16 elements of row `token` of a tile side (K_OFF or V_OFF).
template <int ELEM, int D, int LPT>
__device__ __forceinline__ void read_row(const unsigned char *side, int token, int sub, Row<ELEM> &r) {
    using T = Tile<ELEM, D>;
    const unsigned char *row = side + T::row(token) * T::ROW_BYTES;
    if constexpr (ELEM == BF16) {
        r.w[0] = *reinterpret_cast<const uint4 *>(row + T::piece(token, sub) * 16);
        r.w[1] = *reinterpret_cast<const uint4 *>(row + T::piece(token, sub + LPT) * 16);
    } else if constexpr (ELEM == NVFP4) {
        r.w[0] = *reinterpret_cast<const uint2 *>(row + sub * 8);
    } else {
        r.w[0] = *reinterpret_cast<const uint4 *>(row + sub * 16);
    }
}

template <int ELEM, int D, int G>
__device__ __forceinline__ void decode_pipelined(DECODE_KERNEL_PARAMS) {
    using T = Tile<ELEM, D>;
    constexpr int LPT = D / EPL;            // lanes per token row
    constexpr int U = T::U;                 // tokens per lane group per tile
    constexpr int STAGES = T::STAGES;
    extern __shared__ __align__(16) unsigned char stages[];

    const int lane = threadIdx.x & 31;
    const int sub = lane % LPT;
    const int group = threadIdx.x / LPT;
    const BlockWork work = block_work<D, G>(lengths, kv_heads, chunk, out);
    if (!work.has_tokens) return;
    const int split = work.split, splits = work.splits, t0 = work.t0, t1 = work.t1;
    const long long plane = work.plane, head0 = work.head0;

    // Plane pointers without the lane's offset: the copies move whole rows.
    Plane p;
    p.k = k_codes + plane * capacity * T::ROW_BYTES;
    p.v = v_codes + plane * capacity * T::ROW_BYTES;
    const int key_groups = ELEM == INT8 ? (capacity + key_group - 1) / key_group : 0;
    p.k_scales = ELEM == INT8 ? k_scales + plane * key_groups * D : (ELEM == FP8 ? k_scales + plane * capacity : nullptr);
    p.v_scales = (ELEM == INT8 || ELEM == FP8) ? v_scales + plane * capacity : nullptr;
    p.k_blocks = ELEM == NVFP4 ? k_blocks + plane * capacity * T::BLOCKS_PER_ROW : nullptr;
    p.v_blocks = ELEM == NVFP4 ? v_blocks + plane * capacity * T::BLOCKS_PER_ROW : nullptr;
    p.k_tensor = ELEM == NVFP4 ? __ldg(k_tensor + plane) * 4194304.0f : 1.0f;  // × 2^22
    p.v_tensor = ELEM == NVFP4 ? __ldg(v_tensor + plane) * 4194304.0f : 1.0f;

    const int tiles = (t1 - t0 + TILE - 1) / TILE;
    // The first STAGES − 1 tiles in flight before any compute; one commit group per tile slot,
    // empty ones included, so that "all but STAGES − 2 groups done" always means "this tile".
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < tiles) copy_tile<ELEM, D>(stages + s * T::BYTES, p, t0 + s * TILE, t1, key_group);
        copy_commit();
    }

    // The channel of the lane's element e (see the header).
    auto channel = [&](int e) {
        if constexpr (ELEM == BF16) return e < 8 ? 8 * sub + e : 8 * (sub + LPT) + e - 8;
        else return sub * EPL + e;
    };
    float qr[G][EPL], m[G], l[G], acc[G][EPL];
    start_heads<D, G>(q, head0, qk_scale, channel, qr, m, l, acc);
    float k_sigma[ELEM == INT8 ? EPL : 1] = {};
    int sigma_group = -1;  // the key group whose scales k_sigma holds

    for (int it = 0; it < tiles; ++it) {
        copy_wait<STAGES - 2>();  // this thread's copies of tile `it` have landed
        __syncthreads();          // everyone's have; everyone is done with tile it − 1's slot
        {
            const int next = it + STAGES - 1;
            if (next < tiles)
                copy_tile<ELEM, D>(stages + (next % STAGES) * T::BYTES, p, t0 + next * TILE, t1, key_group);
            copy_commit();
        }
        const unsigned char *st = stages + (it % STAGES) * T::BYTES;
        const int first = t0 + it * TILE;
        // INT8: the key group of the lane group's first token, and where the next one starts
        // (one division per tile; past the chunk's end a token's codes are zeros and any scale
        // will do, so the last valid token's group keeps the staged rows in range).
        int key = 0, next_key_start = 0;
        if constexpr (ELEM == INT8) {
            key = min(first + T::token_of(group, 0), t1 - 1) / key_group;
            next_key_start = (key + 1) * key_group;
        }

        float s[U][G];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int token = T::token_of(group, u);
            const int t = first + token;
            Row<ELEM> kr;
            read_row<ELEM, D, LPT>(st + T::K_OFF, token, sub, kr);
            float x[EPL];
            decode_row<ELEM>(kr, x);
            float k_factor = 1.0f;
            if constexpr (ELEM == FP8) k_factor = reinterpret_cast<const float *>(st + T::EXTRA_OFF)[token] * 256.0f;
            if constexpr (ELEM == NVFP4)
                k_factor = e4m3_to_f32_scaled(st[T::EXTRA_OFF + token * T::BLOCKS_PER_ROW + sub]) * p.k_tensor;
            if constexpr (ELEM == INT8) {
                for (const int te = min(t, t1 - 1); te >= next_key_start; next_key_start += key_group) ++key;
                const int kg = key;
                if (kg != sigma_group) {
                    const float *src = key_group >= MIN_STAGED_KEY_GROUP
                                           ? reinterpret_cast<const float *>(st + T::SECOND_OFF) +
                                                 (kg - first / key_group) * D
                                           : p.k_scales + (long long)kg * D;
                    // Generic loads: `src` is in shared memory (staged) or global memory.
#pragma unroll
                    for (int e = 0; e < EPL; e += 4) {
                        const float4 v = *reinterpret_cast<const float4 *>(src + sub * EPL + e);
                        k_sigma[e] = v.x;
                        k_sigma[e + 1] = v.y;
                        k_sigma[e + 2] = v.z;
                        k_sigma[e + 3] = v.w;
                    }
                    sigma_group = kg;
                }
#pragma unroll
                for (int e = 0; e < EPL; ++e) x[e] *= k_sigma[e];
            }
            token_scores<G, LPT>(qr, x, k_factor, t < t1, s[u]);
        }

        float w[U][G];
        online_softmax_step<U, G>(s, m, l, acc, w);
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int token = T::token_of(group, u);
            Row<ELEM> vr;
            read_row<ELEM, D, LPT>(st + T::V_OFF, token, sub, vr);
            float x[EPL];
            decode_row<ELEM>(vr, x);
            float v_factor = 1.0f;
            if constexpr (ELEM == FP8) v_factor = reinterpret_cast<const float *>(st + T::SECOND_OFF)[token] * 256.0f;
            if constexpr (ELEM == INT8) v_factor = reinterpret_cast<const float *>(st + T::EXTRA_OFF)[token];
            if constexpr (ELEM == NVFP4)
                v_factor = e4m3_to_f32_scaled(st[T::SECOND_OFF + token * T::BLOCKS_PER_ROW + sub]) * p.v_tensor;
            accumulate_value<G>(x, w[u], v_factor, acc);
        }
    }
    copy_wait<0>();  // no copy may still write into shared memory the merge reuses
    merge_and_write<D, G, LPT>(m, l, acc, channel, head0, split, splits, out, part_acc, part_ml);
}

#define PIPELINED_ENTRY(NAME, ELEM, D, G)                                         \
    extern "C" __global__ void __launch_bounds__(DECODE_THREADS) NAME(DECODE_KERNEL_PARAMS) { \
        decode_pipelined<ELEM, D, G>(DECODE_KERNEL_ARGS);                                     \
    }

ENTRIES_FOR_HEADS(PIPELINED_ENTRY, ch07_decode_pipelined_, bf16, BF16)
ENTRIES_FOR_HEADS(PIPELINED_ENTRY, ch07_decode_pipelined_, int8, INT8)
ENTRIES_FOR_HEADS(PIPELINED_ENTRY, ch07_decode_pipelined_, fp8, FP8)
ENTRIES_FOR_HEADS(PIPELINED_ENTRY, ch07_decode_pipelined_, nvfp4, NVFP4)
