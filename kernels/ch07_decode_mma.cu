// ch07_decode_mma.cu — the decode attention of ch07_decode_attention.cu for the quantised caches
// (INT8, FP8, NVFP4), with both products on the tensor cores: the scores S = K·qᵀ and the output
// O = Vᵀ·p are `mma.sync.m16n8k16` (f16 operands, f32 accumulators). Same inputs, same output,
// same split-K partials and combine kernel as the other two versions.
//
// Why: the register and pipelined kernels spend about 128 of their ~230 instructions per token
// and lane on the f32 FMAs of q·k and p·v (G of them per element); a quantised cache moves fewer
// bytes but the FMAs stay, so INT8 ran at 1.05× and FP8/NVFP4 at ~1.3× the bf16 cache instead of
// ~2× and ~3.5×. One m16n8k16 does 2048 of those multiply-adds.
//
// The shapes (per warp, 16 tokens of one sequence and KV head at a time; g = lane/4, q = lane%4):
//   Sᵀ[16 tokens × 8 heads]  = K[16 × d] · Q'[d × 8]      A = K rows (ldmatrix), B = q in registers
//   Oᵀ[d × 8 heads]         += Vᵀ[d × 16 tokens] · P[16 × 8] A = V rows (ldmatrix.trans), B = p
// The G ≤ 4 query heads of a GQA group fill half of the 8 columns (the rest are zero). The
// accumulator of Sᵀ holds (token, head) pairs as the B operand of the second product wants them
// transposed; `movmatrix.trans` turns one into the other in registers.
//
// Exact operands, f32 results: the tensor cores see only values f16 holds exactly —
//   INT8 codes (|c| ≤ 127), E4M3 codes × 2⁻⁸, E2M1 codes × their E4M3 block scale × 2⁻⁸ —
// and every other factor is applied in f32 outside the products: INT8 K's per-channel scales
// are folded into q (so a 16-token tile must lie in one key group: key_group % 16 == 0, checked
// on the host), FP8's per-token K scales multiply the scores, the per-token V scales (FP8, INT8)
// multiply p, the NVFP4 tensor scales multiply the scores and the output. q and p, which f16
// would round, are each split into two f16 parts, hi = f16(x) and lo = f16(x − hi), and both
// parts go through the tensor cores (twice the mma, still few): x is then carried to about 2⁻²²
// relative. q is first scaled by a power of two so that its largest element lies in [2¹⁴, 2¹⁵)
// (exact; undone on the scores), which keeps hi and lo out of f16's subnormal range.
//
// Launch: grid (splits, kv_heads, batch) as the other kernels, DECODE_THREADS = 128 threads;
// each warp takes a quarter of the block's chunk (chunks are multiples of 128 tokens, so a
// quarter starts on a multiple of 16) and runs its own cp.async pipeline of STAGES 16-token
// tiles: no block barrier until the final merge. Dynamic shared memory per warp: STAGES ×
// Stage::BYTES of codes and scales, then one 16 × d f16 tile that K and then V of the current
// tile are decoded into (host: mma_shared_bytes in launch.rs); the final merge reuses it.
//
// Bytes moved: as the other kernels (each cached byte read once from HBM).

#define WARP_TILE 16

// ---- PTX primitives (xtask/emulate/mma_host.h has their host versions) --------------------------

// Four 8 × 8 matrices of 16-bit elements from shared memory; lane l gives the address of row
// l % 8 of matrix l / 8 (16 bytes). r[i] = matrix i's (row g, columns 2q, 2q + 1).
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
}
// The same, transposed: r[i] = matrix i's (rows 2q, 2q + 1, column g).
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void *row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
}
// An 8 × 8 matrix held one pair per lane (row g, columns 2q, 2q + 1), transposed across the warp.
__device__ __forceinline__ unsigned movmatrix_trans(unsigned x) {
    unsigned y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}
// c += A·B for A 16 × 16 (a[0..3]), B 16 × 8 (b0, b1), f16 operands, f32 accumulators.
__device__ __forceinline__ void mma_16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Two f32 to an f16 pair (round to nearest even), `lo` in the low half.
__device__ __forceinline__ unsigned pack_f16x2(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}
__device__ __forceinline__ unsigned hadd2(unsigned a, unsigned b) {
    unsigned r;
    asm("add.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
__device__ __forceinline__ unsigned hmul2(unsigned a, unsigned b) {
    unsigned r;
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
__device__ __forceinline__ float f16_lo(unsigned x) { return f16_to_f32(x); }
__device__ __forceinline__ float f16_hi(unsigned x) { return f16_to_f32(x >> 16); }

// ---- end of PTX primitives ----------------------------------------------------------------------

// x as hi + lo, two f16 (see the header), packed with their neighbours y: (hi_x, hi_y), (lo_x, lo_y).
__device__ __forceinline__ void split_f16x2(float x, float y, unsigned &hi, unsigned &lo) {
    hi = pack_f16x2(x, y);
    lo = pack_f16x2(x - f16_lo(hi), y - f16_hi(hi));
}

// 2^e as an f32, for |e| ≤ 126.
__device__ __forceinline__ float pow2(int e) { return __int_as_float((e + 127) << 23); }

// ---- one stage of a warp's pipeline: the codes and scales of 16 tokens --------------------------

template <int ELEM, int D> struct Stage {
    static constexpr int ROW_BYTES = ELEM == NVFP4 ? D / 2 : D;
    static constexpr int PIECES = ROW_BYTES / 16;  // 16-byte pieces per row
    static constexpr int BLOCKS_PER_ROW = D / 16;  // NVFP4 block scales per row
    static constexpr int K_OFF = 0;
    static constexpr int V_OFF = WARP_TILE * ROW_BYTES;
    static constexpr int EXTRA_OFF = 2 * WARP_TILE * ROW_BYTES;
    // FP8: K scales [16] f32, V scales [16] f32. INT8: V scales [16] f32, then the key group's
    // K scale row [D] f32. NVFP4: K block scales [16][D/16] bytes, then V's.
    static constexpr int SECOND_OFF = EXTRA_OFF + (ELEM == NVFP4 ? WARP_TILE * BLOCKS_PER_ROW : WARP_TILE * 4);
    static constexpr int EXTRA_BYTES = ELEM == FP8 ? 2 * WARP_TILE * 4
                                       : ELEM == INT8 ? WARP_TILE * 4 + D * 4
                                                      : 2 * WARP_TILE * BLOCKS_PER_ROW;
    static constexpr int BYTES = (EXTRA_OFF + EXTRA_BYTES + 15) / 16 * 16;
    // Enough tiles in flight, few enough that 3–4 blocks (12–16 warps) fit an SM: with 16 warps
    // each holding STAGES − 1 tiles of ~2–4 KB in flight, an SM has 35–65 KB on its way.
    static constexpr int STAGES = ELEM == NVFP4 ? 4 : ELEM == INT8 ? 3 : 2;
    static constexpr int HALF_TILE_BYTES = WARP_TILE * D * 2;  // the decoded f16 tile
    static constexpr int WARP_BYTES = STAGES * BYTES + HALF_TILE_BYTES;
};

// The warp's copies of tokens [first, first + 16) ∩ [first, end) into stage `st` (zero-filled
// past `end`, never read there).
template <int ELEM, int D>
__device__ __forceinline__ void copy_warp_tile(unsigned char *st, const Plane &p, int first, int end, int key_group,
                                               int lane) {
    using S = Stage<ELEM, D>;
    const int valid = min(WARP_TILE, end - first);
    for (int i = lane; i < WARP_TILE * S::PIECES; i += 32) {
        const int token = i / S::PIECES, piece = i % S::PIECES;
        const bool ok = token < valid;
        const long long offset = (long long)(first + token) * S::ROW_BYTES + piece * 16;
        const int dst = token * S::ROW_BYTES + piece * 16;
        copy16(st + S::K_OFF + dst, ok ? p.k + offset : p.k, ok ? 16 : 0);
        copy16(st + S::V_OFF + dst, ok ? p.v + offset : p.v, ok ? 16 : 0);
    }
    if constexpr (ELEM == FP8) {
        const int i = lane % WARP_TILE;
        const bool ok = i < valid;
        float *dst = reinterpret_cast<float *>(st + (lane < WARP_TILE ? S::EXTRA_OFF : S::SECOND_OFF)) + i;
        const float *src = lane < WARP_TILE ? p.k_scales : p.v_scales;
        copy4(dst, ok ? src + first + i : src, ok ? 4 : 0);
    }
    if constexpr (ELEM == INT8) {
        if (lane < WARP_TILE) {
            const bool ok = lane < valid;
            copy4(reinterpret_cast<float *>(st + S::EXTRA_OFF) + lane, ok ? p.v_scales + first + lane : p.v_scales,
                  ok ? 4 : 0);
        }
        const float *row = p.k_scales + (long long)(first / key_group) * D;  // the tile's one key group
        for (int i = lane; i < D / 4; i += 32) copy16(st + S::SECOND_OFF + 16 * i, row + 4 * i, 16);
    }
    if constexpr (ELEM == NVFP4) {
        constexpr int WORDS = WARP_TILE * S::BLOCKS_PER_ROW / 4;  // 4-byte words per side
        for (int i = lane; i < WORDS; i += 32) {
            const int token = 4 * i / S::BLOCKS_PER_ROW;
            const bool ok = token < valid;
            const long long offset = (long long)first * S::BLOCKS_PER_ROW + 4 * i;
            copy4(st + S::EXTRA_OFF + 4 * i, ok ? p.k_blocks + offset : p.k_blocks, ok ? 4 : 0);
            copy4(st + S::SECOND_OFF + 4 * i, ok ? p.v_blocks + offset : p.v_blocks, ok ? 4 : 0);
        }
    }
}

// ---- decoding codes to the f16 tile --------------------------------------------------------------
//
// The f16 tile is 16 rows (tokens) of D halves; its 16-byte chunk c of row r is stored at chunk
// c ^ (r % 8), so that the 8 rows one ldmatrix matrix reads fall on 8 different bank groups.
// A tile column holds the channel `channel_of<ELEM>(column)`: the decoding tricks produce pairs
// (0, 2), (1, 3) of each 4 E4M3 bytes and (0, 4), (1, 5), ... of each 8 E2M1 nibbles, and rather
// than reorder them the kernel reads q and writes the output in the same order.

template <int ELEM> __device__ __forceinline__ int channel_of(int column) {
    if constexpr (ELEM == FP8) {
        const int j = column & 3;  // stored 0, 2, 1, 3
        return (column & ~3) | (j == 1 ? 2 : j == 2 ? 1 : j);
    } else if constexpr (ELEM == NVFP4) {
        const int j = column & 7;  // stored 0, 4, 1, 5, 2, 6, 3, 7
        return (column & ~7) | ((j >> 1) + 4 * (j & 1));
    } else {
        return column;
    }
}

template <int D> __device__ __forceinline__ int half_chunk(int row, int chunk) {
    return row * (D / 8) + (chunk ^ (row & 7));
}

// 16 elements of one row (one piece: 16 bytes of INT8 or E4M3, 8 bytes of E2M1) to 8 f16 pairs
// in tile-column order; `block_scale` is the NVFP4 block's E4M3 byte.
template <int ELEM>
__device__ __forceinline__ void decode_piece(const unsigned char *src, unsigned block_scale, unsigned (&h)[8]) {
    if constexpr (ELEM == INT8) {
        // f16 bits 0x64XX are 1024 + XX; XX = code + 128 (the sign bit flipped); − 1152 is exact.
        const uint4 w = *reinterpret_cast<const uint4 *>(src);
        const unsigned minus_1152 = 0xE480E480u;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const unsigned x = word_of(w, i) ^ 0x80808080u;
            h[2 * i] = hadd2(__byte_perm(x, 0x64646464u, 0x4140), minus_1152);
            h[2 * i + 1] = hadd2(__byte_perm(x, 0x64646464u, 0x4342), minus_1152);
        }
    } else if constexpr (ELEM == FP8) {
        const uint4 w = *reinterpret_cast<const uint4 *>(src);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            h[2 * i] = e4m3x2_even_to_f16x2(word_of(w, i));  // bytes 0, 2 (× 2⁻⁸)
            h[2 * i + 1] = e4m3x2_odd_to_f16x2(word_of(w, i));  // bytes 1, 3
        }
    } else {
        // E2M1 × 2⁻¹⁴ times (scale × 2⁻⁸ · 2¹⁴ = scale × 2⁶): the value × scale × 2⁻⁸, exact in
        // f16 (at most 6 × 448 × 2⁻⁸; a multiple of 2⁻¹⁸, so exact even when subnormal).
        const unsigned s = hmul2(e4m3x2_even_to_f16x2(block_scale), 0x74007400u) & 0xFFFFu;
        const unsigned s2 = s | (s << 16);
        const uint2 w = *reinterpret_cast<const uint2 *>(src);
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const unsigned x = i == 0 ? w.x : w.y;
            h[4 * i] = hmul2(e2m1x2_to_f16x2<0>(x), s2);
            h[4 * i + 1] = hmul2(e2m1x2_to_f16x2<1>(x), s2);
            h[4 * i + 2] = hmul2(e2m1x2_to_f16x2<2>(x), s2);
            h[4 * i + 3] = hmul2(e2m1x2_to_f16x2<3>(x), s2);
        }
    }
}

// One side (K or V codes at `codes`) of a stage into the warp's f16 tile.
template <int ELEM, int D>
__device__ __forceinline__ void decode_side(const unsigned char *codes, const unsigned char *blocks,
                                            unsigned char *half_tile, int lane) {
    using S = Stage<ELEM, D>;
    constexpr int PIECES_PER_ROW = D / 16;
#pragma unroll
    for (int i = 0; i < WARP_TILE * PIECES_PER_ROW / 32; ++i) {
        const int piece = lane + 32 * i;
        const int row = piece / PIECES_PER_ROW, col16 = piece % PIECES_PER_ROW;
        const unsigned scale = ELEM == NVFP4 ? blocks[row * S::BLOCKS_PER_ROW + col16] : 0u;
        unsigned h[8];
        decode_piece<ELEM>(codes + row * S::ROW_BYTES + col16 * (ELEM == NVFP4 ? 8 : 16), scale, h);
        // At d = 128 the 8 lanes of one store phase write one row's chunks 2·col16: half of them
        // write their odd chunk first, so that the 8 chunks of a phase cover all 32 banks.
        const int odd_first = D == 128 ? (col16 >> 2) & 1 : 0;
        uint4 *dst = reinterpret_cast<uint4 *>(half_tile);
        const uint4 even = make_uint4(h[0], h[1], h[2], h[3]), odd = make_uint4(h[4], h[5], h[6], h[7]);
        dst[half_chunk<D>(row, 2 * col16 + odd_first)] = odd_first ? odd : even;
        dst[half_chunk<D>(row, 2 * col16 + 1 - odd_first)] = odd_first ? even : odd;
    }
}

// ---- the kernel ----------------------------------------------------------------------------------

// q' = q · log2(e)/√d · σ_c (σ: INT8's K scales of the key group, else 1) at the lane's
// B-fragment columns (k-step j: columns 16j + 2q, +1, +8, +9; head g, zero for g ≥ G), scaled by
// 2^e so that the warp's largest |q'| lies in [2¹⁴, 2¹⁵); returns e. q is read again from
// global memory (L1) at every key group rather than held in 32 more registers.
template <int ELEM, int D, int G>
__device__ __forceinline__ int build_query(const float *__restrict__ q_row, float qk_scale, const float *sigma,
                                           unsigned (&q_hi)[D / 8], unsigned (&q_lo)[D / 8], int lane) {
    float x[D / 4];
    float big = 0.0f;
    const bool head = (lane >> 2) < G;
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            const int column = 16 * j + 2 * (lane & 3) + (t & 1) + 8 * (t >> 1);
            const float qs = head ? __ldg(q_row + channel_of<ELEM>(column)) * qk_scale : 0.0f;
            x[4 * j + t] = sigma ? qs * sigma[column] : qs;
            big = fmaxf(big, fabsf(x[4 * j + t]));
        }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) big = fmaxf(big, __shfl_xor_sync(0xffffffffu, big, off));
    // big in [2^b, 2^(b+1)) → e = 14 − b; 0 for an all-zero (or non-finite) query.
    const int b = (__float_as_int(big) >> 23) - 127;
    const int e = (big > 0.0f && big < 3.0e38f) ? max(-100, min(100, 14 - b)) : 0;
    const float f = pow2(e);
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
        split_f16x2(x[4 * j] * f, x[4 * j + 1] * f, q_hi[2 * j], q_lo[2 * j]);
        split_f16x2(x[4 * j + 2] * f, x[4 * j + 3] * f, q_hi[2 * j + 1], q_lo[2 * j + 1]);
    }
    return e;
}

template <int ELEM, int D, int G>
__device__ __forceinline__ void decode_mma(DECODE_KERNEL_PARAMS) {
    using S = Stage<ELEM, D>;
    constexpr int STAGES = S::STAGES;
    constexpr int KSTEPS = D / 16;  // k-steps of the first product, m-tiles of the second
    extern __shared__ __align__(16) unsigned char stages[];

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int gq = lane >> 2, qq = lane & 3;  // g and q of the fragment layouts
    const BlockWork work = block_work<D, G>(lengths, kv_heads, chunk, out);
    if (!work.has_tokens) return;
    const long long plane = work.plane, head0 = work.head0;

    Plane p;
    p.k = k_codes + plane * capacity * S::ROW_BYTES;
    p.v = v_codes + plane * capacity * S::ROW_BYTES;
    const int key_groups = ELEM == INT8 ? (capacity + key_group - 1) / key_group : 0;
    p.k_scales = ELEM == INT8 ? k_scales + plane * key_groups * D : (ELEM == FP8 ? k_scales + plane * capacity : nullptr);
    p.v_scales = (ELEM == INT8 || ELEM == FP8) ? v_scales + plane * capacity : nullptr;
    p.k_blocks = ELEM == NVFP4 ? k_blocks + plane * capacity * S::BLOCKS_PER_ROW : nullptr;
    p.v_blocks = ELEM == NVFP4 ? v_blocks + plane * capacity * S::BLOCKS_PER_ROW : nullptr;
    // The NVFP4 tile holds values × 2⁻⁸ (decode_piece); the tensor scales and that 2⁸ are
    // applied to the scores and to the output.
    p.k_tensor = ELEM == NVFP4 ? __ldg(k_tensor + plane) * 256.0f : 1.0f;
    p.v_tensor = ELEM == NVFP4 ? __ldg(v_tensor + plane) * 256.0f : 1.0f;

    // The warp's quarter of the chunk.
    const int quarter = chunk / DECODE_WARPS;
    const int w0 = work.t0 + warp * quarter, w1 = min(work.t1, w0 + quarter);
    const int tiles = w1 > w0 ? (w1 - w0 + WARP_TILE - 1) / WARP_TILE : 0;
    unsigned char *region = stages + warp * S::WARP_BYTES;
    unsigned char *half_tile = region + STAGES * S::BYTES;
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < tiles) copy_warp_tile<ELEM, D>(region + s * S::BYTES, p, w0 + s * WARP_TILE, w1, key_group, lane);
        copy_commit();
    }

    // q · log2(e)/√d at the lane's B-fragment columns, for head g (zero for g ≥ G).
    const float *q_row = q + (head0 + min(gq, G - 1)) * D;
    unsigned q_hi[D / 8], q_lo[D / 8];
    int q_exp = 0;
    if constexpr (ELEM != INT8) q_exp = build_query<ELEM, D, G>(q_row, qk_scale, nullptr, q_hi, q_lo, lane);
    int q_group = -1;  // INT8: the key group q_hi/q_lo are built for

    // Online softmax state of heads 2q and 2q + 1 (the same in the 8 lanes of one q); l is the
    // lane's own partial sum, reduced at the end.
    float m[2] = {neg_inf(), neg_inf()}, l[2] = {0.0f, 0.0f};
    float acc[KSTEPS][4];
#pragma unroll
    for (int i = 0; i < KSTEPS; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;

    for (int it = 0; it < tiles; ++it) {
        copy_wait<STAGES - 2>();
        __syncwarp();  // every lane's copies of tile `it` landed; everyone is done with tile it − 1
        {
            const int next = it + STAGES - 1;
            if (next < tiles)
                copy_warp_tile<ELEM, D>(region + (next % STAGES) * S::BYTES, p, w0 + next * WARP_TILE, w1, key_group,
                                        lane);
            copy_commit();
        }
        const unsigned char *st = region + (it % STAGES) * S::BYTES;
        const int first = w0 + it * WARP_TILE;
        if constexpr (ELEM == INT8) {
            const int group = first / key_group;
            if (group != q_group) {
                q_exp = build_query<ELEM, D, G>(q_row, qk_scale, reinterpret_cast<const float *>(st + S::SECOND_OFF),
                                                q_hi, q_lo, lane);
                q_group = group;
            }
        }

        // Sᵀ = K · q'ᵀ: rows g and g + 8 (tokens), columns 2q, 2q + 1 (heads).
        decode_side<ELEM, D>(st + S::K_OFF, st + S::EXTRA_OFF, half_tile, lane);
        __syncwarp();
        float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const uint4 *tile = reinterpret_cast<const uint4 *>(half_tile);
#pragma unroll
        for (int j = 0; j < KSTEPS; ++j) {
            const int mat = lane >> 3, r = lane & 7;
            unsigned a[4];
            ldmatrix_x4(a, tile + half_chunk<D>(r + 8 * (mat & 1), 2 * j + (mat >> 1)));
            mma_16816(s, a, q_hi[2 * j], q_hi[2 * j + 1]);
            mma_16816(s, a, q_lo[2 * j], q_lo[2 * j + 1]);
        }
        __syncwarp();  // every lane has read K's f16 tile before V overwrites it

        // Scores in log2 units; −∞ past the warp's end.
        const float unscale = pow2(-q_exp) * p.k_tensor;
        float score[2][2];  // [token g, g + 8][head 2q, 2q + 1]
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int token = gq + 8 * r;
            float f = unscale;
            if constexpr (ELEM == FP8) f *= reinterpret_cast<const float *>(st + S::EXTRA_OFF)[token] * 256.0f;
            const bool valid = first + token < w1;
            score[r][0] = valid ? s[2 * r] * f : neg_inf();
            score[r][1] = valid ? s[2 * r + 1] * f : neg_inf();
        }
        // Online softmax per head over the tile's 16 tokens (8 lanes × 2 rows).
        float weight[2][2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float mx = fmaxf(score[0][h], score[1][h]);
#pragma unroll
            for (int off = 4; off < 32; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            mx = fmaxf(mx, m[h]);
            const float base = mx == neg_inf() ? 0.0f : mx;
            const float correction = exp2_approx(m[h] - base);
            m[h] = mx;
            weight[0][h] = exp2_approx(score[0][h] - base);
            weight[1][h] = exp2_approx(score[1][h] - base);
            l[h] = l[h] * correction + weight[0][h] + weight[1][h];
#pragma unroll
            for (int i = 0; i < KSTEPS; ++i) {
                acc[i][h] *= correction;
                acc[i][2 + h] *= correction;
            }
        }
        // p (times V's per-token scale) as the B operand: hi and lo parts, transposed.
        unsigned b_hi[2], b_lo[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int token = gq + 8 * r;
            float f = 1.0f;
            if constexpr (ELEM == FP8) f = reinterpret_cast<const float *>(st + S::SECOND_OFF)[token] * 256.0f;
            if constexpr (ELEM == INT8) f = reinterpret_cast<const float *>(st + S::EXTRA_OFF)[token];
            unsigned hi, lo;
            split_f16x2(weight[r][0] * f, weight[r][1] * f, hi, lo);
            b_hi[r] = movmatrix_trans(hi);
            b_lo[r] = movmatrix_trans(lo);
        }

        // Oᵀ += Vᵀ · p: m-tile i is tile columns 16i … 16i + 15.
        decode_side<ELEM, D>(st + S::V_OFF, st + S::SECOND_OFF, half_tile, lane);
        __syncwarp();
#pragma unroll
        for (int i = 0; i < KSTEPS; ++i) {
            const int mat = lane >> 3, r = lane & 7;
            unsigned a[4];
            ldmatrix_x4_trans(a, tile + half_chunk<D>(r + 8 * (mat >> 1), 2 * i + (mat & 1)));
            mma_16816(acc[i], a, b_hi[0], b_hi[1]);
            mma_16816(acc[i], a, b_lo[0], b_lo[1]);
        }
    }
    copy_wait<0>();
    __syncthreads();  // every warp is done with its region: the merge reuses the first bytes
    BlockMerge<D, G> &merge = *reinterpret_cast<BlockMerge<D, G> *>(stages);

    // The warp's l per head, then its state into shared memory for the block's merge.
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int off = 4; off < 32; off <<= 1) l[h] += __shfl_xor_sync(0xffffffffu, l[h], off);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int head = 2 * qq + h;
        if (head < G) {
            if (gq == 0) {
                merge.m[warp][head] = m[h];
                merge.l[warp][head] = l[h];
            }
#pragma unroll
            for (int i = 0; i < KSTEPS; ++i) {
                merge.acc[warp][head][channel_of<ELEM>(16 * i + gq)] = acc[i][h] * p.v_tensor;
                merge.acc[warp][head][channel_of<ELEM>(16 * i + gq + 8)] = acc[i][2 + h] * p.v_tensor;
            }
        }
    }
    __syncthreads();
    write_block_result<D, G>(merge, head0, work.split, work.splits, out, part_acc, part_ml);
}

// At most 128 registers (FP8, NVFP4: 4 blocks of 128 threads per SM) or 168 (INT8: 3 blocks).
#define MMA_MIN_BLOCKS(ELEM) ((ELEM) == INT8 ? 3 : 4)
#define MMA_ENTRY(NAME, ELEM, D, G)                                                                            \
    extern "C" __global__ void __launch_bounds__(DECODE_THREADS, MMA_MIN_BLOCKS(ELEM)) NAME(DECODE_KERNEL_PARAMS) { \
        decode_mma<ELEM, D, G>(DECODE_KERNEL_ARGS);                                           \
    }

#define MMA_GROUPS(ENAME, ELEM, D)                                  \
    MMA_ENTRY(ch07_decode_mma_##ENAME##_d##D##_g1, ELEM, D, 1) \
    MMA_ENTRY(ch07_decode_mma_##ENAME##_d##D##_g2, ELEM, D, 2) \
    MMA_ENTRY(ch07_decode_mma_##ENAME##_d##D##_g3, ELEM, D, 3) \
    MMA_ENTRY(ch07_decode_mma_##ENAME##_d##D##_g4, ELEM, D, 4)

#define MMA_DIMS(ENAME, ELEM)   \
    MMA_GROUPS(ENAME, ELEM, 64) \
    MMA_GROUPS(ENAME, ELEM, 128)

MMA_DIMS(int8, INT8)
MMA_DIMS(fp8, FP8)
MMA_DIMS(nvfp4, NVFP4)
