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
//   Sᵀ[16 tokens × 8 columns]  = K[16 × d] · Q'[d × 8]       A = K codes, B = q' in registers
//   Oᵀ[d × 8 columns]         += Vᵀ[d × 16 tokens] · P[16 × 8]  A = V codes, B = p
// Each lane reads the codes of its A fragments from shared memory and decodes them in registers
// (see "decoding codes straight into the mma operands").
// Column 2h holds query head h's hi part, column 2h + 1 its lo part (below), so the G ≤ 4 heads
// of a GQA group fill the 8 columns and one mma carries both parts. In the accumulators lane q
// then holds head q's two parts side by side: a score is s[0] + s[1], an output acc[0] + acc[1].
// The accumulator of Sᵀ holds (token, column) pairs as the B operand of the second product wants
// them transposed; `movmatrix.trans` turns one into the other in registers.
//
// Exact operands, f32 results: the tensor cores see only values f16 holds exactly —
//   INT8 codes (|c| ≤ 127), E4M3 codes × 2⁻⁸, E2M1 codes × their E4M3 block scale × 2⁻⁸ —
// and every other factor is applied in f32 outside the products: INT8 K's per-channel scales
// are folded into q (so a 16-token tile must lie in one key group: key_group % 16 == 0, checked
// on the host), FP8's per-token K scales multiply the scores, the per-token V scales (FP8, INT8)
// multiply p, the NVFP4 tensor scales multiply the scores and the output. q and p, which f16
// would round, are each split into two f16 parts, hi = f16(x) and lo = f16(x − hi), and both
// parts go through the tensor cores, in columns of their own: x is then carried to about 2⁻²²
// relative. (Before run 28 hi and lo went through an mma each, with 4 columns left empty: twice
// the mma, and each lane kept the softmax of 2 heads.) q is first scaled by a power of two so
// that its largest element lies in [2¹⁴, 2¹⁵) (exact; undone on the scores), which keeps hi and
// lo out of f16's subnormal range.
//
// Launch: grid (splits, kv_heads, batch) as the other kernels, DECODE_THREADS = 128 threads;
// each warp takes a quarter of the block's chunk (chunks are multiples of 128 tokens, so a
// quarter starts on a multiple of 32) and runs its own cp.async pipeline of STAGES 16-token
// tiles, taken STEP_TILES at a time (one online-softmax round per step): no block barrier until
// the final merge. Dynamic shared memory per warp: STAGES ×
// Stage::BYTES of codes and scales (host: mma_shared_bytes in launch.rs); the final merge reuses
// it.
//
// Bytes moved: as the other kernels (each cached byte read once from HBM).

#define WARP_TILE 16

// ---- PTX primitives (xtask/emulate/mma_host.h has their host versions) --------------------------

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

// x as its hi part (low half) and lo part (high half): one lane's two columns of P.
__device__ __forceinline__ unsigned hi_lo_f16x2(float x) {
    return pack_f16x2(x, x - f16_lo(pack_f16x2(x, x)));
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
    // Tiles per step of the loop: 2 (32 tokens: one online-softmax round, its shuffles and vote,
    // for both, and two independent mma chains to interleave) wherever 4 stages still let 4
    // blocks fit an SM; 1 for INT8 and FP8 at d = 128, whose 4 stages of 4.2–4.7 KB would let 3
    // fit. (H100 run 29: NVFP4 3–5 % faster at d = 128 and 2–10 % at d = 64, INT8 and FP8 at
    // d = 64 up to 6 %.)
    static constexpr int STEP_TILES = D == 64 || ELEM == NVFP4 ? 2 : 1;
    // The step's tiles plus those in flight: 4 for a step of 2 tiles, 3 for a step of 1 (2 in
    // flight either way), 6 for NVFP4 at d = 64, whose tiles are the smallest (1.2 KB). NVFP4 at
    // d = 128 had 6 until run 25 and 5 until run 31: 4 timed 1–3 % faster than 5 there, 6 1–2 %
    // slower (run 30).
    static constexpr int STAGES = ELEM == NVFP4 && D == 64 ? 6 : STEP_TILES == 2 ? 4 : 3;
    static_assert(STAGES >= 2 * STEP_TILES, "a step's tiles and the next step's in flight");
    static constexpr int WARP_BYTES = STAGES * BYTES;
};

// Where piece `piece` (16 bytes) of row `row` lies in a stage's K or V codes (see "decoding
// codes" below for the swizzle of 128-byte rows).
template <int ELEM, int D> __device__ __forceinline__ int stored_offset(int row, int piece) {
    constexpr int ROW = Stage<ELEM, D>::ROW_BYTES;
    return row * ROW + 16 * (ROW == 128 ? piece ^ (row & 7) : piece);
}

// The warp's copies of its 16-token tiles into the stages of its ring, one tile per call, in
// order. A warp's tiles are contiguous in the cache, so piece i (16 bytes) of a tile's codes
// starts 16·i bytes after the tile's first byte: the lane copies pieces lane, lane + 32, … of
// every tile, and its source pointers only move on by one tile's bytes per call. For FP8 and
// NVFP4 a whole tile (every tile but a warp's last, mostly) is copied from those pointers
// alone, with no bounds test per piece; the general path, which INT8 takes for every tile,
// tests each piece's token and zero-fills the tokens past `end`, and a tile wholly past `end`
// (a two-tile step's second) gets no codes, only zeros for its scales. (Before run 40 every
// tile took the general path: its 64-bit offsets, selects and swizzles, worked out again per
// tile, were 125 of NVFP4's 573 instructions per 32-token step at d = 64; 527 now.)
// The ring position and INT8's key-group row advance by additions, with no division in the
// loop (each tile computed `tile % STAGES`, a division by 6 for NVFP4, and INT8's
// `first / key_group` by a key group known only at run time).
template <int ELEM, int D> struct TileCopier {
    using S = Stage<ELEM, D>;
    static constexpr int LANE_PIECES = WARP_TILE * S::PIECES / 32;  // code pieces per lane and side
    static_assert(WARP_TILE * S::PIECES % 32 == 0, "a tile's code pieces spread evenly over the lanes");
    static constexpr int TILE_BYTES = WARP_TILE * S::ROW_BYTES;  // one side's codes of a tile
    // Whole tiles from the moving pointers: FP8 and NVFP4 (H100 runs 40–41: SmolLM2's NVFP4
    // 7–11 % faster, FP8 up to 1.6 %). INT8 keeps the general path for every tile: with whole
    // tiles it timed 0.8–1.9 % slower at SmolLM2's shapes (run 40).
    static constexpr bool WHOLE_TILES = ELEM != INT8;
    static constexpr int SCALE_WORDS = WARP_TILE * S::BLOCKS_PER_ROW / 4;  // NVFP4: 4-byte words per side
    static_assert(ELEM != NVFP4 || SCALE_WORDS <= 32, "one word of block scales per lane");

    unsigned char *region;  // the warp's STAGES stages
    int write_off;          // byte offset of the next tile's stage in the ring
    int next, end;          // the next tile's first token; the warp's end
    // The lane's sources in the next tile (whole tiles only): piece `lane` of its K and V codes;
    // NVFP4: word `lane` of its block scales; FP8: the per-token scales of token lane % 16.
    const unsigned char *k_src, *v_src, *kb_src, *vb_src;
    const float *ks_src, *vs_src;
    int group_end;          // INT8: the first token past the next tile's key group
    const float *group_row; // INT8: that key group's K scale row
    bool row_due;           // INT8: the next tile is the first of its key group the warp reads

    __device__ __forceinline__ TileCopier(unsigned char *region_, const Plane &p, int first, int end_, int key_group,
                                          int lane)
        : region(region_), write_off(0), next(first), end(end_), group_end(0), group_row(nullptr), row_due(true) {
        const long long codes = (long long)first * S::ROW_BYTES + 16 * lane;
        k_src = p.k + codes;
        v_src = p.v + codes;
        const long long words = (long long)first * S::BLOCKS_PER_ROW + 4 * lane;
        kb_src = ELEM == NVFP4 ? p.k_blocks + words : nullptr;
        vb_src = ELEM == NVFP4 ? p.v_blocks + words : nullptr;
        ks_src = ELEM == FP8 ? p.k_scales + first + lane % WARP_TILE : nullptr;
        vs_src = ELEM == FP8 ? p.v_scales + first + lane % WARP_TILE : nullptr;
        if constexpr (ELEM == INT8) {
            const int group = first / key_group;
            group_end = (group + 1) * key_group;
            group_row = p.k_scales + (long long)group * D;
        }
    }

    // Copies the next tile into the next stage (if the warp has one left) and commits a group.
    __device__ __forceinline__ void copy_next(const Plane &p, int key_group, int lane) {
        unsigned char *st = region + write_off;
        if (WHOLE_TILES && next + WARP_TILE <= end) {
#pragma unroll
            for (int k = 0; k < LANE_PIECES; ++k) {
                const int i = lane + 32 * k;
                const int dst = stored_offset<ELEM, D>(i / S::PIECES, i % S::PIECES);
                copy16(st + S::K_OFF + dst, k_src + 16 * 32 * k, 16);  // piece lane + 32k
                copy16(st + S::V_OFF + dst, v_src + 16 * 32 * k, 16);
            }
            if constexpr (ELEM == FP8)
                copy4(reinterpret_cast<float *>(st + (lane < WARP_TILE ? S::EXTRA_OFF : S::SECOND_OFF)) +
                          lane % WARP_TILE,
                      lane < WARP_TILE ? ks_src : vs_src, 4);
            if constexpr (ELEM == NVFP4) {
                if (lane < SCALE_WORDS) {
                    copy4(st + S::EXTRA_OFF + 4 * lane, kb_src, 4);
                    copy4(st + S::SECOND_OFF + 4 * lane, vb_src, 4);
                }
            }
        } else if (next < end) {
            copy_tested(st, p, lane);
            if constexpr (ELEM == INT8) {
                // The tile's one key group (key_group % 16 == 0): its row, advanced by additions,
                // copied with the group's first tile only (the one that rebuilds q').
                if (next >= group_end) {
                    group_end += key_group;
                    group_row += D;
                    row_due = true;
                }
                static_assert(D / 4 <= 32, "one 16-byte piece of the row per lane");
                if (row_due && lane < D / 4) copy16(st + S::SECOND_OFF + 16 * lane, group_row + 4 * lane, 16);
                row_due = false;
            }
        } else if constexpr (ELEM == INT8 || ELEM == FP8) {
            // Past the warp's end: no codes, but the second tile of a two-tile step may lie here,
            // and its p (weight 0) is multiplied by V's scales, which must then be finite (0 ·
            // NaN is NaN): the per-token scales are zero-filled (FP8's K scales with V's; the
            // scores there are −∞ by a select anyway). Stale codes decode to finite values.
            if (ELEM == FP8 || lane < WARP_TILE)
                copy4(reinterpret_cast<float *>(st + (lane < WARP_TILE ? S::EXTRA_OFF : S::SECOND_OFF)) + lane % WARP_TILE,
                      p.v_scales, 0);
        }
        next += WARP_TILE;
        if constexpr (WHOLE_TILES) k_src += TILE_BYTES, v_src += TILE_BYTES;
        if constexpr (ELEM == NVFP4) kb_src += WARP_TILE * S::BLOCKS_PER_ROW, vb_src += WARP_TILE * S::BLOCKS_PER_ROW;
        if constexpr (ELEM == FP8) ks_src += WARP_TILE, vs_src += WARP_TILE;
        write_off = write_off + S::BYTES == S::WARP_BYTES ? 0 : write_off + S::BYTES;
        copy_commit();
    }

    // The general path (FP8 and NVFP4: a warp's last tile, which ends past `end`; INT8: every
    // tile but its key-group row): every copy tests its token, and a token past `end` reads
    // nothing (its bytes and scales zero-filled) from the plane's start.
    __device__ __forceinline__ void copy_tested(unsigned char *st, const Plane &p, int lane) {
        const long long base = (long long)next * S::ROW_BYTES;
#pragma unroll
        for (int k = 0; k < LANE_PIECES; ++k) {
            const int i = lane + 32 * k, token = i / S::PIECES, piece = i % S::PIECES;
            const bool ok = next + token < end;
            const long long offset = ok ? base + 16 * i : 0;
            const int dst = stored_offset<ELEM, D>(token, piece);
            copy16(st + S::K_OFF + dst, p.k + offset, ok ? 16 : 0);
            copy16(st + S::V_OFF + dst, p.v + offset, ok ? 16 : 0);
        }
        if constexpr (ELEM == FP8) {
            const int i = lane % WARP_TILE;
            const bool ok = next + i < end;
            float *dst = reinterpret_cast<float *>(st + (lane < WARP_TILE ? S::EXTRA_OFF : S::SECOND_OFF)) + i;
            const float *src = lane < WARP_TILE ? p.k_scales : p.v_scales;
            copy4(dst, src + (ok ? next + i : 0), ok ? 4 : 0);
        }
        if constexpr (ELEM == INT8) {
            if (lane < WARP_TILE) {
                const bool ok = next + lane < end;
                copy4(reinterpret_cast<float *>(st + S::EXTRA_OFF) + lane, p.v_scales + (ok ? next + lane : 0),
                      ok ? 4 : 0);
            }
        }
        if constexpr (ELEM == NVFP4) {
            if (lane < SCALE_WORDS) {
                const int token = 4 * lane / S::BLOCKS_PER_ROW;
                const bool ok = next + token < end;
                const long long offset = ok ? (long long)next * S::BLOCKS_PER_ROW + 4 * lane : 0;
                copy4(st + S::EXTRA_OFF + 4 * lane, p.k_blocks + offset, ok ? 4 : 0);
                copy4(st + S::SECOND_OFF + 4 * lane, p.v_blocks + offset, ok ? 4 : 0);
            }
        }
    }
};

// ---- decoding codes straight into the mma operands ----------------------------------------------
//
// No decoded copy of the tile: each lane reads the codes its fragments need from the stage and
// decodes them in registers (f16 pairs; see the header for what they hold exactly). The
// reduction index of both products may be permuted freely as long as both operands agree, and
// the kernel uses that to give each lane contiguous codes:
//   K (A of Sᵀ = K·q'ᵀ): lane (g, q) reads rows g and g + 8, the D/4 channels from D/4·q; k-step
//     j takes 4 of them, in the order the decoding tricks produce (key_channel), and q' is built
//     in that order;
//   V (A of Oᵀ = Vᵀ·p): lane (g, q) reads tokens 2q, 2q + 1, 2q + 8, 2q + 9 (the tokens its p
//     operand holds after the transpose), the D/8 channels from D/8·g; m-tile i's rows g and
//     g + 8 are channels D/8·g + 2i and + 1 (value_channel), so the output is written there.
// Two codes of different tokens in one f16 pair (V) come from byte permutes (`__byte_perm`) of
// the two tokens' words before the tricks. FP8 and INT8 rows at d = 128 are stored with their
// 16-byte pieces XOR-swizzled by the row (piece p of row r at p ^ (r & 7)), so that the 8 lanes
// of a load phase hit 8 different bank groups in both read patterns. (Shorter V rows, which the
// same reasoning says share banks when a phase reads tokens 2q + c, were tried padded to 80 and
// 48 bytes: INT8 and FP8 at d = 64 ran 5–11 % slower, NVFP4 no faster; H100 runs 24–25.)


// The E2M1 pair at nibbles J and J + 4 of w (× 2⁻¹⁴), J known after unrolling.
__device__ __forceinline__ unsigned e2m1_pair(unsigned w, int j) {
    return j == 0 ? e2m1x2_to_f16x2<0>(w) : j == 1 ? e2m1x2_to_f16x2<1>(w) : j == 2 ? e2m1x2_to_f16x2<2>(w)
                                                                              : e2m1x2_to_f16x2<3>(w);
}
// Two NVFP4 block scales (E4M3 bytes at bits 0..7 and 16..23 of w) as an f16 pair, each the
// scale × 2⁶ (exact; 0x7400 is 2¹⁴).
__device__ __forceinline__ unsigned block_scales_f16x2(unsigned w) {
    return hmul2(e4m3x2_even_to_f16x2(w), 0x74007400u);
}
// INT8 codes (XOR 0x80 already applied) at bytes 0 and 2 of x (sel 0x4140) or 1 and 3 (0x4342)
// as an exact f16 pair: bits 0x64XX are 1024 + XX, minus 1152.
__device__ __forceinline__ unsigned int8_pair(unsigned x, unsigned sel) {
    return hadd2(__byte_perm(x, 0x64646464u, sel), 0xE480E480u);
}

// The channel of K's k-slot t (0..3: 2q, 2q + 1, 2q + 8, 2q + 9) of k-step j, for lane q.
template <int ELEM, int D> __device__ __forceinline__ int key_channel(int q, int j, int t) {
    if constexpr (ELEM == FP8) {
        return D / 4 * q + 4 * j + (t == 1 ? 2 : t == 2 ? 1 : t);  // (b0, b2), (b1, b3)
    } else if constexpr (ELEM == NVFP4) {
        const int off = (j & 1) ? (t == 0 ? 2 : t == 1 ? 6 : t == 2 ? 3 : 7) : (t == 0 ? 0 : t == 1 ? 4 : t == 2 ? 1 : 5);
        return D / 4 * q + 8 * (j >> 1) + off;  // nibble pairs (J, J + 4)
    } else {
        return D / 4 * q + 4 * j + t;
    }
}
// The channel of V's m-tile i, row g (upper = 0) or g + 8 (upper = 1).
template <int D> __device__ __forceinline__ int value_channel(int g, int i, int upper) {
    return D / 8 * g + 2 * i + upper;
}

// Lane (g, q)'s codes of K: rows g and g + 8, D/4 channels each (as 32-bit words).
template <int ELEM, int D> struct KeyCodes {
    static constexpr int WORDS = (ELEM == NVFP4 ? D / 8 : D / 4) / 4;
    unsigned w[2][WORDS];
};
template <int ELEM, int D>
__device__ __forceinline__ void load_keys(const unsigned char *side, int g, int q, KeyCodes<ELEM, D> &k) {
    using S = Stage<ELEM, D>;
    constexpr int BYTES = KeyCodes<ELEM, D>::WORDS * 4;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = g + 8 * r;
        if constexpr (BYTES >= 16) {
#pragma unroll
            for (int h = 0; h < BYTES / 16; ++h) {
                const uint4 v = *reinterpret_cast<const uint4 *>(side + stored_offset<ELEM, D>(row, BYTES / 16 * q + h));
                k.w[r][4 * h] = v.x, k.w[r][4 * h + 1] = v.y, k.w[r][4 * h + 2] = v.z, k.w[r][4 * h + 3] = v.w;
            }
        } else {
            static_assert(S::ROW_BYTES < 128, "rows stored in order");
            const uint2 v = *reinterpret_cast<const uint2 *>(side + row * S::ROW_BYTES + BYTES * q);
            k.w[r][0] = v.x, k.w[r][1] = v.y;
        }
    }
}
// NVFP4: lane (g, q)'s K block scales, rows g and g + 8, as f16 pairs with the scale in both
// halves. Its D/4 channels from D/4·q are blocks D/64·q + b, b < D/64; k-step j lies in b = j / 4.
template <int D>
__device__ __forceinline__ void key_block_scales(const unsigned char *blocks, int g, int q, unsigned (&scale)[2][D / 64]) {
    constexpr int PER_ROW = D / 16;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const unsigned char *row = blocks + (g + 8 * r) * PER_ROW + D / 64 * q;
        if constexpr (D == 128) {  // both bytes in one load: the two scales, then each doubled
            const unsigned two = block_scales_f16x2(__byte_perm(*reinterpret_cast<const unsigned short *>(row), 0, 0x4140));
            scale[r][0] = __byte_perm(two, 0, 0x1010);
            scale[r][1] = __byte_perm(two, 0, 0x3232);
        } else {
            static_assert(D == 64, "head dim 64 or 128");
            scale[r][0] = block_scales_f16x2(row[0] * 0x10001u);
        }
    }
}
// NVFP4: lane (g, q)'s V block scales (the block of its D/8 channels from D/8·g) of tokens
// (2q, 2q + 1) and (2q + 8, 2q + 9), each pair as an f16 pair.
template <int D>
__device__ __forceinline__ void value_block_scales(const unsigned char *blocks, int g, int q, unsigned (&scale)[2]) {
    constexpr int PER_ROW = D / 16;
    const unsigned char *col = blocks + D / 8 * g / 16;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int t = 2 * q + 8 * r;
        scale[r] = block_scales_f16x2(col[t * PER_ROW] | (unsigned)col[(t + 1) * PER_ROW] << 16);
    }
}

// The A operand of k-step j; `scale`: NVFP4 block scales of rows g and g + 8 for this k-step.
template <int ELEM, int D>
__device__ __forceinline__ void key_fragment(const KeyCodes<ELEM, D> &k, int j, const unsigned (&scale)[2],
                                             unsigned (&a)[4]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        if constexpr (ELEM == FP8) {
            a[r] = e4m3x2_even_to_f16x2(k.w[r][j]);
            a[2 + r] = e4m3x2_odd_to_f16x2(k.w[r][j]);
        } else if constexpr (ELEM == INT8) {
            const unsigned x = k.w[r][j] ^ 0x80808080u;
            a[r] = int8_pair(x, 0x4140);
            a[2 + r] = int8_pair(x, 0x4342);
        } else {
            const unsigned w = k.w[r][j >> 1];
            a[r] = hmul2(e2m1_pair(w, 2 * (j & 1)), scale[r]);
            a[2 + r] = hmul2(e2m1_pair(w, 2 * (j & 1) + 1), scale[r]);
        }
    }
}

// Lane (g, q)'s codes of V: tokens 2q, 2q + 1, 2q + 8, 2q + 9, D/8 channels each.
template <int ELEM, int D> struct ValueCodes {
    static constexpr int WORDS = (ELEM == NVFP4 ? D / 16 : D / 8) / 4;
    unsigned w[4][WORDS];
};
template <int ELEM, int D>
__device__ __forceinline__ void load_values(const unsigned char *side, int g, int q, ValueCodes<ELEM, D> &v) {
    using S = Stage<ELEM, D>;
    constexpr int BYTES = ValueCodes<ELEM, D>::WORDS * 4;
#pragma unroll
    for (int t = 0; t < 4; ++t) {
        const int row = 2 * q + (t & 1) + 8 * (t >> 1);
        if constexpr (BYTES == 16) {
            const uint4 x = *reinterpret_cast<const uint4 *>(side + stored_offset<ELEM, D>(row, g));
            v.w[t][0] = x.x, v.w[t][1] = x.y, v.w[t][2] = x.z, v.w[t][3] = x.w;
        } else if constexpr (BYTES == 8) {
            const uint2 x = *reinterpret_cast<const uint2 *>(side + row * S::ROW_BYTES + 8 * g);
            v.w[t][0] = x.x, v.w[t][1] = x.y;
        } else {
            v.w[t][0] = *reinterpret_cast<const unsigned *>(side + row * S::ROW_BYTES + 4 * g);
        }
    }
}
// The A operand of m-tile i; `scale`: NVFP4 block scales of the token pairs (value_block_scales).
template <int ELEM, int D>
__device__ __forceinline__ void value_fragment(const ValueCodes<ELEM, D> &v, int i, const unsigned (&scale)[2],
                                               unsigned (&a)[4]) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {  // tokens (2q, 2q + 1), then (2q + 8, 2q + 9)
        const int t0 = 2 * r;
        if constexpr (ELEM == FP8) {
            // [t0 b, t0 b', t1 b, t1 b'] for bytes (b, b') = (0, 1) or (2, 3): even → channel b
            // of both tokens, odd → channel b'.
            const unsigned p = __byte_perm(v.w[t0][i >> 1], v.w[t0 + 1][i >> 1], (i & 1) ? 0x7632 : 0x5410);
            a[2 * r] = e4m3x2_even_to_f16x2(p);
            a[2 * r + 1] = e4m3x2_odd_to_f16x2(p);
        } else if constexpr (ELEM == INT8) {
            // [t0 b, t1 b, t0 b', t1 b'], then each pair to f16.
            const unsigned x = __byte_perm(v.w[t0][i >> 1] ^ 0x80808080u, v.w[t0 + 1][i >> 1] ^ 0x80808080u,
                                           (i & 1) ? 0x7362 : 0x5140);
            a[2 * r] = int8_pair(x, 0x4140);
            a[2 * r + 1] = int8_pair(x, 0x4342);
        } else {
            // [t0 b, t0 b', t1 b, t1 b']: nibbles 0–3 are t0's 4 channels, 4–7 t1's, so a pair
            // (J, J + 4) is one channel of both tokens.
            const int word = i >> 2, jj = 2 * (i & 1);
            const unsigned p = __byte_perm(v.w[t0][word], v.w[t0 + 1][word], (i & 2) ? 0x7632 : 0x5410);
            a[2 * r] = hmul2(e2m1_pair(p, jj), scale[r]);
            a[2 * r + 1] = hmul2(e2m1_pair(p, jj + 1), scale[r]);
        }
    }
}

// ---- the kernel ----------------------------------------------------------------------------------

// Sᵀ += K · q'ᵀ for one tile: lane (g, q) gets head q's hi and lo parts (columns 2q, 2q + 1) of
// tokens g (s[0], s[1]) and g + 8 (s[2], s[3]).
template <int ELEM, int D>
__device__ __forceinline__ void tile_scores(const unsigned char *st, const unsigned (&q_b)[D / 8], int gq, int qq,
                                            float (&s)[4]) {
    using S = Stage<ELEM, D>;
    KeyCodes<ELEM, D> kc;
    load_keys<ELEM, D>(st + S::K_OFF, gq, qq, kc);
    unsigned kscale[2][D / 64] = {};
    if constexpr (ELEM == NVFP4) key_block_scales<D>(st + S::EXTRA_OFF, gq, qq, kscale);
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
        const unsigned scale[2] = {kscale[0][j / 4], kscale[1][j / 4]};
        unsigned a[4];
        key_fragment<ELEM, D>(kc, j, scale, a);
        mma_16816(s, a, q_b[2 * j], q_b[2 * j + 1]);
    }
}
// Oᵀ += Vᵀ · p for one tile (b: p's B operand): m-tile i's rows are channels value_channel(g, i, 0
// or 1).
template <int ELEM, int D>
__device__ __forceinline__ void tile_values(const unsigned char *st, const unsigned (&b)[2], int gq, int qq,
                                            float (&acc)[D / 16][4]) {
    using S = Stage<ELEM, D>;
    ValueCodes<ELEM, D> vc;
    load_values<ELEM, D>(st + S::V_OFF, gq, qq, vc);
    unsigned vscale[2] = {0u, 0u};
    if constexpr (ELEM == NVFP4) value_block_scales<D>(st + S::SECOND_OFF, gq, qq, vscale);
#pragma unroll
    for (int i = 0; i < D / 16; ++i) {
        unsigned a[4];
        value_fragment<ELEM, D>(vc, i, vscale, a);
        mma_16816(acc[i], a, b[0], b[1]);
    }
}

// q' = q · log2(e)/√d · σ_c (σ: INT8's K scales of the key group, else 1) at the lane's
// B-fragment k-slots (key_channel), scaled by 2^e so that the warp's largest |q'| lies in
// [2¹⁴, 2¹⁵); returns e. The lane's column g is head g/2's hi part (g even) or lo part (g odd),
// zero for a head ≥ G. The lane's k-slots are the D/4 channels from D/4·q,
// read as float4; q is read again from global memory (L1) at every INT8 key group rather than
// held in 32 more registers.
template <int ELEM, int D, int G>
__device__ __forceinline__ int build_query(const float *__restrict__ q_row, float qk_scale, const float *sigma,
                                           unsigned (&q_b)[D / 8], int lane) {
    const int first = D / 4 * (lane & 3);
    const bool head = (lane >> 3) < G, lo_part = (lane >> 2) & 1;
    float x[D / 4];  // x[c]: q · σ at channel first + c (qk_scale is applied with 2^e below)
#pragma unroll
    for (int c = 0; c < D / 4; c += 4) {
        const float4 v = head ? __ldg(reinterpret_cast<const float4 *>(q_row + first + c)) : make_float4(0, 0, 0, 0);
        x[c] = v.x, x[c + 1] = v.y, x[c + 2] = v.z, x[c + 3] = v.w;
        if (sigma) {
            const float4 sg = *reinterpret_cast<const float4 *>(sigma + first + c);
            x[c] *= sg.x, x[c + 1] *= sg.y, x[c + 2] *= sg.z, x[c + 3] *= sg.w;
        }
    }
    float big = 0.0f;
#pragma unroll
    for (int c = 0; c < D / 4; ++c) big = fmaxf(big, fabsf(x[c]));
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) big = fmaxf(big, __shfl_xor_sync(0xffffffffu, big, off));
    // The largest |q'| = big · qk_scale (rounded as every element below is) in [2^b, 2^(b+1)) →
    // e = 14 − b; 0 for an all-zero (or non-finite) query. One multiply per element by
    // qk_scale · 2^e (a power of two times qk_scale: exact) instead of two.
    big *= qk_scale;
    const int b = (__float_as_int(big) >> 23) - 127;
    const int e = (big > 0.0f && big < 3.0e38f) ? max(-100, min(100, 14 - b)) : 0;
    const float f = qk_scale * pow2(e);
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
        float y[4];  // k-slots 2q, 2q + 1, 2q + 8, 2q + 9
#pragma unroll
        for (int t = 0; t < 4; ++t) y[t] = x[key_channel<ELEM, D>(0, j, t)] * f;
        unsigned hi, lo;
        split_f16x2(y[0], y[1], hi, lo);
        q_b[2 * j] = lo_part ? lo : hi;
        split_f16x2(y[2], y[3], hi, lo);
        q_b[2 * j + 1] = lo_part ? lo : hi;
    }
    return e;
}

template <int ELEM, int D, int G>
__device__ __forceinline__ void decode_mma(DECODE_KERNEL_PARAMS) {
    using S = Stage<ELEM, D>;
    constexpr int STAGES = S::STAGES, STEP_TILES = S::STEP_TILES;
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
    // NVFP4 operands hold values × 2⁻⁸ (key_fragment, value_fragment); the tensor scales and
    // that 2⁸ are applied to the scores and to the output.
    p.k_tensor = ELEM == NVFP4 ? __ldg(k_tensor + plane) * 256.0f : 1.0f;
    p.v_tensor = ELEM == NVFP4 ? __ldg(v_tensor + plane) * 256.0f : 1.0f;

    // The warp's quarter of the chunk.
    const int quarter = chunk / DECODE_WARPS;
    const int w0 = work.t0 + warp * quarter, w1 = min(work.t1, w0 + quarter);
    TileCopier<ELEM, D> copier(stages + warp * S::WARP_BYTES, p, w0, w1, key_group, lane);
#pragma unroll
    for (int s = 0; s < STAGES - STEP_TILES; ++s) copier.copy_next(p, key_group, lane);

    // q · log2(e)/√d at the lane's B-fragment columns, for head g (zero for g ≥ G).
    const float *q_row = q + (head0 + min(gq >> 1, G - 1)) * D;
    unsigned q_b[D / 8];
    int q_exp = 0;
    if constexpr (ELEM != INT8) q_exp = build_query<ELEM, D, G>(q_row, qk_scale, nullptr, q_b, lane);
    int q_group_end = w0;  // INT8: q_b holds q' of the key group that ends here (none yet)

    // Online softmax state of head q (the same in the 8 lanes of one q; meaningless for q ≥ G,
    // whose columns are zero); l is the lane's own partial sum, reduced at the end.
    float m = neg_inf(), l = 0.0f;
    float acc[KSTEPS][4];
#pragma unroll
    for (int i = 0; i < KSTEPS; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.0f;

    int read_off = 0;  // the ring offset of the next tile to read
    for (int first = w0; first < w1; first += STEP_TILES * WARP_TILE) {
        copy_wait<STAGES - 2 * STEP_TILES>();
        __syncwarp();  // every lane's copies of this step's tiles landed; all done with the last
#pragma unroll
        for (int t = 0; t < STEP_TILES; ++t) copier.copy_next(p, key_group, lane);
        const unsigned char *st[STEP_TILES];
#pragma unroll
        for (int t = 0; t < STEP_TILES; ++t) {
            st[t] = copier.region + read_off;
            read_off = read_off + S::BYTES == S::WARP_BYTES ? 0 : read_off + S::BYTES;
        }

        // Sᵀ = K · q'ᵀ per tile, then the scores in log2 units (−∞ past the warp's end).
        float score[STEP_TILES][2];  // head q at tokens g, g + 8 of each tile
#pragma unroll
        for (int t = 0; t < STEP_TILES; ++t) {
            const int tile = first + WARP_TILE * t;
            if constexpr (ELEM == INT8) {
                // A new key group (16 | key_group: a tile lies in one); its K scale row came
                // with this tile.
                if (tile >= q_group_end && tile < w1) {
                    q_exp = build_query<ELEM, D, G>(q_row, qk_scale,
                                                    reinterpret_cast<const float *>(st[t] + S::SECOND_OFF), q_b, lane);
                    q_group_end = (tile / key_group + 1) * key_group;
                }
            }
            float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            tile_scores<ELEM, D>(st[t], q_b, gq, qq, s);
            const float unscale = pow2(-q_exp) * p.k_tensor;
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int token = gq + 8 * r;
                float f = unscale;
                if constexpr (ELEM == FP8) f *= reinterpret_cast<const float *>(st[t] + S::EXTRA_OFF)[token] * 256.0f;
                score[t][r] = tile + token < w1 ? (s[2 * r] + s[2 * r + 1]) * f : neg_inf();
            }
        }
        // Online softmax of head q over the step's tokens (8 lanes × 2 rows per tile). The
        // running max seldom grows after a warp's first steps; when it grows for no lane, every
        // correction is 2⁰ = 1 and the warp skips the 4 · KSTEPS rescaling multiplies (a
        // warp-uniform branch).
        float mx = m;
#pragma unroll
        for (int t = 0; t < STEP_TILES; ++t) mx = fmaxf(mx, fmaxf(score[t][0], score[t][1]));
#pragma unroll
        for (int off = 4; off < 32; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        const float base = mx == neg_inf() ? 0.0f : mx;
        float weight[STEP_TILES][2];
#pragma unroll
        for (int t = 0; t < STEP_TILES; ++t) {
            weight[t][0] = exp2_approx(score[t][0] - base);
            weight[t][1] = exp2_approx(score[t][1] - base);
        }
        if (__any_sync(0xffffffffu, mx != m)) {
            const float correction = exp2_approx(m - base);
            m = mx;
            l *= correction;
#pragma unroll
            for (int i = 0; i < KSTEPS; ++i)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[i][c] *= correction;
        }
#pragma unroll
        for (int t = 0; t < STEP_TILES; ++t) {
            l += weight[t][0] + weight[t][1];
            // p (times V's per-token scale) as the B operand: row g holds head q's hi and lo
            // parts in columns 2q and 2q + 1, as the accumulator did; transposed.
            unsigned b[2];
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int token = gq + 8 * r;
                float f = 1.0f;
                if constexpr (ELEM == FP8) f = reinterpret_cast<const float *>(st[t] + S::SECOND_OFF)[token] * 256.0f;
                if constexpr (ELEM == INT8) f = reinterpret_cast<const float *>(st[t] + S::EXTRA_OFF)[token];
                b[r] = movmatrix_trans(hi_lo_f16x2(weight[t][r] * f));
            }
            tile_values<ELEM, D>(st[t], b, gq, qq, acc);
        }
    }
    copy_wait<0>();
    __syncthreads();  // every warp is done with its region: the merge reuses the first bytes
    BlockMerge<D, G> &merge = *reinterpret_cast<BlockMerge<D, G> *>(stages);

    // The warp's l of head q, then its state into shared memory for the block's merge (the
    // output of head q: its hi and lo columns added).
#pragma unroll
    for (int off = 4; off < 32; off <<= 1) l += __shfl_xor_sync(0xffffffffu, l, off);
    if (qq < G) {
        if (gq == 0) {
            merge.m[warp][qq] = m;
            merge.l[warp][qq] = l;
        }
#pragma unroll
        for (int i = 0; i < KSTEPS; ++i) {
            merge.acc[warp][qq][value_channel<D>(gq, i, 0)] = (acc[i][0] + acc[i][1]) * p.v_tensor;
            merge.acc[warp][qq][value_channel<D>(gq, i, 1)] = (acc[i][2] + acc[i][3]) * p.v_tensor;
        }
    }
    __syncthreads();
    write_block_result<D, G>(merge, head0, work.split, work.splits, out, part_acc, part_ml);
}

// At most 128 registers: 4 blocks of 128 threads per SM (no spills). Asking for 6 at d = 64 (80
// registers, no spills either) made INT8 and FP8 there slower still (H100 runs 24–25).
#define MMA_MIN_BLOCKS 4
#define MMA_ENTRY(NAME, ELEM, D, G)                                                               \
    extern "C" __global__ void __launch_bounds__(DECODE_THREADS, MMA_MIN_BLOCKS)            \
        NAME(DECODE_KERNEL_PARAMS) {                                                              \
        decode_mma<ELEM, D, G>(DECODE_KERNEL_ARGS);                                               \
    }

ENTRIES_FOR_HEADS(MMA_ENTRY, ch07_decode_mma_, int8, INT8)
ENTRIES_FOR_HEADS(MMA_ENTRY, ch07_decode_mma_, fp8, FP8)
ENTRIES_FOR_HEADS(MMA_ENTRY, ch07_decode_mma_, nvfp4, NVFP4)
