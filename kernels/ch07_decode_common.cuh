// ch07_decode_common.cuh — what both decode kernels of chapter 7 share (prepended to
// ch07_decode_attention.cu and ch07_decode_pipelined.cu by kernel_source!): decoding each storage
// type to f32 in registers, the online-softmax step over a few tokens, the accumulation of V, and
// the block's final merge. The storage types, their layouts and the decoding tricks are described
// at the top of ch07_decode_attention.cu.

#define DECODE_WARPS 4
#define DECODE_THREADS (32 * DECODE_WARPS)
#define EPL 16  // elements of a row per lane

enum Element { BF16 = 0, INT8 = 1, FP8 = 2, NVFP4 = 3 };

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// f16 bits (in the low 16 bits of `h`) to f32, exactly.
__device__ __forceinline__ float f16_to_f32(unsigned h) {
    float f;
    unsigned short s = (unsigned short)h;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(s));
    return f;
}

// Two E4M3 bytes at bits 0..7 and 16..23 of `w` to an f16 pair (values × 2^-8).
__device__ __forceinline__ unsigned e4m3x2_even_to_f16x2(unsigned w) {
    return ((w << 7) & 0x3F803F80u) | ((w << 8) & 0x80008000u);
}
// Two E4M3 bytes at bits 8..15 and 24..31 of `w` to an f16 pair (values × 2^-8).
__device__ __forceinline__ unsigned e4m3x2_odd_to_f16x2(unsigned w) {
    return ((w >> 1) & 0x3F803F80u) | (w & 0x80008000u);
}
// The E2M1 codes at nibbles J and J + 4 of `w` to an f16 pair (values × 2^-14): each code's
// magnitude bits EEM go to f16 bits 9–11 of its half and its sign to bit 15, six places above —
// but in the nibble the sign sits right above EEM. So first every sign is moved three places up
// (w rotated left by 3; a rotation, so that nibble 7's sign comes round to bit 2) and merged with
// the magnitudes of the even nibbles (EEM of nibbles 0, 2, 4, 6, each now with its sign 6 bits
// higher: `merged` for J = 0, 2) or of the odd ones (J = 1, 3); then one shift and one mask per
// pair: J = 0: << 9, J = 1: << 5, J = 2: << 1, J = 3: rotated right by 3. The rotation and the two
// merges are shared by a word's four pairs: 11 instructions per 8 codes instead of 15 with a
// shift and a mask each for magnitude and sign (in the tensor-core NVFP4 loop at d = 128, 563
// instructions per 16-token tile instead of 623).
__device__ __forceinline__ unsigned rotate_left(unsigned w, int n) { return __funnelshift_l(w, w, n); }
__device__ __forceinline__ unsigned rotate_right(unsigned w, int n) { return __funnelshift_r(w, w, n); }
// (a & mask) | (b & ~mask) in one lop3, written in PTX so that the compiler keeps it whole: left
// to itself it pushes each pair's final mask into the merge and builds a merge per pair.
__device__ __forceinline__ unsigned bit_select(unsigned a, unsigned b, unsigned mask) {
    unsigned r;
    asm("lop3.b32 %0, %1, %2, %3, 0xE4;" : "=r"(r) : "r"(a), "r"(b), "r"(mask));
    return r;
}
template <int J>
__device__ __forceinline__ unsigned e2m1x2_to_f16x2(unsigned w) {
    const unsigned merged = bit_select(w, rotate_left(w, 3), J % 2 == 0 ? 0x07070707u : 0x70707070u);
    const unsigned placed =
        J == 0 ? merged << 9 : J == 1 ? merged << 5 : J == 2 ? merged << 1 : rotate_right(merged, 3);
    return placed & 0x8E008E00u;
}

// One E4M3 byte to f32 (value × 2^-8).
__device__ __forceinline__ float e4m3_to_f32_scaled(unsigned byte) {
    return f16_to_f32(e4m3x2_even_to_f16x2(byte));
}
// Signed INT8 byte J of `w` to f32, exactly.
template <int J>
__device__ __forceinline__ float int8_to_f32(unsigned w_biased) {
    return __uint_as_float(__byte_perm(w_biased, 0x4B000000u, 0x7440 | J)) - 8388736.0f;
}

// The 16 elements of one row a lane holds, raw, and how a row is loaded.
template <int ELEM> struct Row;
template <> struct Row<BF16> {
    uint4 w[2];
    static constexpr int U = 4;
    static constexpr int BYTES = 32;
};
template <> struct Row<INT8> {
    uint4 w[1];
    static constexpr int U = 4;
    static constexpr int BYTES = 16;
};
template <> struct Row<FP8> {
    uint4 w[1];
    static constexpr int U = 4;
    static constexpr int BYTES = 16;
};
template <> struct Row<NVFP4> {
    uint2 w[1];
    static constexpr int U = 4;
    static constexpr int BYTES = 8;
};

template <int ELEM>
__device__ __forceinline__ void load_row(const unsigned char *__restrict__ p, Row<ELEM> &r) {
    if constexpr (ELEM == NVFP4) {
        r.w[0] = __ldg(reinterpret_cast<const uint2 *>(p));
    } else {
#pragma unroll
        for (int i = 0; i < Row<ELEM>::BYTES / 16; ++i) r.w[i] = __ldg(reinterpret_cast<const uint4 *>(p) + i);
    }
}
template <int ELEM> __device__ __forceinline__ void clear_row(Row<ELEM> &r) {
    if constexpr (ELEM == NVFP4) {
        r.w[0] = make_uint2(0u, 0u);
    } else {
#pragma unroll
        for (int i = 0; i < Row<ELEM>::BYTES / 16; ++i) r.w[i] = make_uint4(0u, 0u, 0u, 0u);
    }
}

__device__ __forceinline__ unsigned word_of(const uint4 &v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// The 16 elements of a raw row as f32, without their scale: bf16 and INT8 exactly, E4M3 × 2^-8,
// E2M1 × 2^-14. Element e of the lane's 16 is x[e].
template <int ELEM>
__device__ __forceinline__ void decode_row(const Row<ELEM> &r, float (&x)[EPL]) {
    if constexpr (ELEM == BF16) {
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const unsigned w = word_of(r.w[i / 4], i % 4);
            x[2 * i] = __uint_as_float(w << 16);
            x[2 * i + 1] = __uint_as_float(w & 0xFFFF0000u);
        }
    } else if constexpr (ELEM == INT8) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const unsigned w = word_of(r.w[0], i) ^ 0x80808080u;
            x[4 * i] = int8_to_f32<0>(w);
            x[4 * i + 1] = int8_to_f32<1>(w);
            x[4 * i + 2] = int8_to_f32<2>(w);
            x[4 * i + 3] = int8_to_f32<3>(w);
        }
    } else if constexpr (ELEM == FP8) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const unsigned w = word_of(r.w[0], i);
            const unsigned even = e4m3x2_even_to_f16x2(w), odd = e4m3x2_odd_to_f16x2(w);
            x[4 * i] = f16_to_f32(even);
            x[4 * i + 2] = f16_to_f32(even >> 16);
            x[4 * i + 1] = f16_to_f32(odd);
            x[4 * i + 3] = f16_to_f32(odd >> 16);
        }
    } else {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const unsigned w = i == 0 ? r.w[0].x : r.w[0].y;
            unsigned h;
            h = e2m1x2_to_f16x2<0>(w);
            x[8 * i + 0] = f16_to_f32(h);
            x[8 * i + 4] = f16_to_f32(h >> 16);
            h = e2m1x2_to_f16x2<1>(w);
            x[8 * i + 1] = f16_to_f32(h);
            x[8 * i + 5] = f16_to_f32(h >> 16);
            h = e2m1x2_to_f16x2<2>(w);
            x[8 * i + 2] = f16_to_f32(h);
            x[8 * i + 6] = f16_to_f32(h >> 16);
            h = e2m1x2_to_f16x2<3>(w);
            x[8 * i + 3] = f16_to_f32(h);
            x[8 * i + 7] = f16_to_f32(h >> 16);
        }
    }
}

// Everything a launch reads, by (b, kvh) plane: the pointers already offset to the plane.
struct Plane {
    const unsigned char *k, *v;        // codes, plane start
    const float *k_scales, *v_scales;  // INT8 / FP8 scales, plane start
    const unsigned char *k_blocks, *v_blocks;  // NVFP4 block scales, plane start
    float k_tensor, v_tensor;          // NVFP4 tensor scales × 2^22 (E2M1's 2^14, E4M3's 2^8)
};

// The factor a token's partial dot product (K) or softmax weight (V) is multiplied by: its
// per-token scale (FP8 × 2^8), its block's scale (NVFP4), or 1 (bf16; INT8, whose K scales are
// per channel and whose V scale the caller reads).
template <int ELEM>
__device__ __forceinline__ float token_factor(const float *__restrict__ scales, const unsigned char *__restrict__ blocks,
                                              float tensor, int t, int sub, int blocks_per_row) {
    if constexpr (ELEM == FP8) {
        return __ldg(scales + t) * 256.0f;
    } else if constexpr (ELEM == NVFP4) {
        return e4m3_to_f32_scaled(__ldg(blocks + (long long)t * blocks_per_row + sub)) * tensor;
    } else {
        return 1.0f;
    }
}

// INT8 K: the lane's 16 per-channel scales of one key group.
__device__ __forceinline__ void load_key_scales(const float *__restrict__ src, float (&sigma)[EPL]) {
#pragma unroll
    for (int i = 0; i < EPL / 4; ++i) {
        const float4 v = __ldg(reinterpret_cast<const float4 *>(src) + i);
        sigma[4 * i] = v.x;
        sigma[4 * i + 1] = v.y;
        sigma[4 * i + 2] = v.z;
        sigma[4 * i + 3] = v.w;
    }
}

// The parameters of both decode kernels' entry points (launch.rs passes them in this order).
#define DECODE_KERNEL_PARAMS                                                                                       \
    const float *__restrict__ q, const unsigned char *__restrict__ k_codes,                                        \
        const unsigned char *__restrict__ v_codes, const float *__restrict__ k_scales,                             \
        const float *__restrict__ v_scales, const unsigned char *__restrict__ k_blocks,                            \
        const unsigned char *__restrict__ v_blocks, const float *__restrict__ k_tensor,                            \
        const float *__restrict__ v_tensor, const unsigned *__restrict__ lengths, float *__restrict__ part_acc,     \
        float *__restrict__ part_ml, float *__restrict__ out, int kv_heads, int capacity, int chunk, int key_group, \
        float qk_scale
#define DECODE_KERNEL_ARGS                                                                                        \
    q, k_codes, v_codes, k_scales, v_scales, k_blocks, v_blocks, k_tensor, v_tensor, lengths, part_acc, part_ml, \
        out, kv_heads, capacity, chunk, key_group, qk_scale

// ENTRY(name, ELEM, D, G) for every compiled head dim (64, 128) and group (1–4), named
// <PREFIX><ENAME>_d<D>_g<G> (the host's kernel names, launch.rs).
#define ENTRIES_FOR_HEADS(ENTRY, PREFIX, ENAME, ELEM)                                       \
    ENTRY(PREFIX##ENAME##_d64_g1, ELEM, 64, 1) ENTRY(PREFIX##ENAME##_d64_g2, ELEM, 64, 2)     \
    ENTRY(PREFIX##ENAME##_d64_g3, ELEM, 64, 3) ENTRY(PREFIX##ENAME##_d64_g4, ELEM, 64, 4)     \
    ENTRY(PREFIX##ENAME##_d128_g1, ELEM, 128, 1) ENTRY(PREFIX##ENAME##_d128_g2, ELEM, 128, 2) \
    ENTRY(PREFIX##ENAME##_d128_g3, ELEM, 128, 3) ENTRY(PREFIX##ENAME##_d128_g4, ELEM, 128, 4)

// Programmatic dependent launch (sm_90; attn-support's dependent_launch.rs). Both kernels are
// launched as dependents of the kernel before them. With several splits the combine is the main
// kernel's dependent: every main block allows it at its start, so the combine's launch and its
// blocks' start overlap the main kernel's last blocks, and the combine waits for the main
// kernel's partials before reading them. The main kernel is the dependent of whatever ran before
// it (in a decoder, the kernel that made q and appended this token's K and V; in the benchmark,
// the previous step's combine) and waits at its very start, before any load or store. Nothing
// allows it early: the kernel before it lets it launch as it exits, so its blocks are placed on
// SMs the earlier kernels have left, one wave spread evenly as the split plan assumes (placed
// while the earlier blocks still ran, the tensor-core kernel's blocks piled up where slots were
// free, and it ran up to 38 % slower: H100 run 35). What it saves is the gap between the two
// kernels. Without the launch attribute (or before sm_90, where these compile to nothing) the
// wait returns at once and the stream orders the kernels.
__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_prerequisite_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// What block (split, kvh, b) works on: the tokens [t0, t1) of plane (b, kvh), and its first
// query head. `has_tokens` is false when the split starts at or past the sequence's end; then,
// with one split, the block owns the output and writes zeros (a sequence of length 0 attends to
// nothing), and with several the combine skips it. Every main kernel's blocks start here: they
// wait for the kernel ahead before they read or write anything, and allow the combine, when
// there is one, as soon as they know their work (the launch order above).
struct BlockWork {
    int split, splits, t0, t1;
    long long plane, head0;
    bool has_tokens;
};
template <int D, int G>
__device__ __forceinline__ BlockWork block_work(const unsigned *__restrict__ lengths, int kv_heads, int chunk,
                                                float *__restrict__ out) {
    wait_for_prerequisite_grid();
    BlockWork w;
    w.split = blockIdx.x;
    w.splits = gridDim.x;
    const int kvh = blockIdx.y, b = blockIdx.z;
    const int len = (int)lengths[b];
    w.t0 = w.split * chunk;
    w.t1 = min(len, w.t0 + chunk);
    w.plane = (long long)b * kv_heads + kvh;
    w.head0 = (long long)b * kv_heads * G + (long long)kvh * G;
    w.has_tokens = w.t0 < len;
    if (!w.has_tokens && w.splits == 1)
        for (int i = threadIdx.x; i < G * D; i += DECODE_THREADS) out[w.head0 * D + i] = 0.0f;
    if (w.splits > 1) allow_dependent_launch();
    return w;
}

// q · log2(e)/√d for the lane's 16 channels of each of the G query heads (`channel(e)`: the
// channel of element e, 4 consecutive e on 4 consecutive channels), and the online-softmax
// state at its start: m = −∞, l = 0, acc = 0.
template <int D, int G, typename ChannelFn>
__device__ __forceinline__ void start_heads(const float *__restrict__ q, long long head0, float qk_scale,
                                            ChannelFn channel, float (&qr)[G][EPL], float (&m)[G], float (&l)[G],
                                            float (&acc)[G][EPL]) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
#pragma unroll
        for (int e = 0; e < EPL; e += 4) {
            const float4 v = __ldg(reinterpret_cast<const float4 *>(q + (head0 + g) * D + channel(e)));
            qr[g][e] = v.x * qk_scale;
            qr[g][e + 1] = v.y * qk_scale;
            qr[g][e + 2] = v.z * qk_scale;
            qr[g][e + 3] = v.w * qk_scale;
        }
        m[g] = neg_inf();
        l[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[g][e] = 0.0f;
    }
}

// The scores of one token for the G heads: each lane's partial dot product of its 16
// elements with q, times the token's K factor (its per-token or block scale; 1 for bf16 and
// INT8), summed over the token's LPT lanes with xor shuffles (every lane ends with the sum);
// −∞ for a token past the chunk's end.
template <int G, int LPT>
__device__ __forceinline__ void token_scores(const float (&qr)[G][EPL], const float (&x)[EPL], float factor,
                                             bool valid, float (&s)[G]) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; ++e) dot = fmaf(qr[g][e], x[e], dot);
        dot *= factor;
#pragma unroll
        for (int off = LPT / 2; off > 0; off >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        s[g] = valid ? dot : neg_inf();
    }
}

// Base-2 exponential on the special function unit: ex2(−∞) = +0, relative error about 2⁻²².
__device__ __forceinline__ float exp2_approx(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// Online softmax (chapter 3, base 2) over U new scores s[u][g] of each of G heads: the running
// max m, sum l and unnormalised accumulator acc are rescaled by 2^(m_old − m_new) (1 when the max
// did not grow; 0 when m was −∞, where l and acc are still 0), and w[u][g] = 2^(s − m_new) are the
// new tokens' weights (0 for a masked token, s = −∞; all 0 while every score so far is −∞).
// Branch-free: lane groups of one warp see different maxima, and a rescale under a branch would
// run once per distinct outcome.
template <int U, int G>
__device__ __forceinline__ void online_softmax_step(const float (&s)[U][G], float (&m)[G], float (&l)[G],
                                                    float (&acc)[G][EPL], float (&w)[U][G]) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
        float mx = m[g];
#pragma unroll
        for (int u = 0; u < U; ++u) mx = fmaxf(mx, s[u][g]);
        const float base = mx == neg_inf() ? 0.0f : mx;  // keeps −∞ − (−∞) out
        const float correction = exp2_approx(m[g] - base);
        l[g] *= correction;
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[g][e] *= correction;
        m[g] = mx;
#pragma unroll
        for (int u = 0; u < U; ++u) {
            w[u][g] = exp2_approx(s[u][g] - base);
            l[g] += w[u][g];
        }
    }
}

// acc[g] += (w[g] · factor) · x for one token's decoded row x (its V scale folded into the weight).
template <int G>
__device__ __forceinline__ void accumulate_value(const float (&x)[EPL], const float (&w)[G], float factor,
                                                 float (&acc)[G][EPL]) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
        const float wv = w[g] * factor;
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[g][e] = fmaf(wv, x[e], acc[g][e]);
    }
}

// The block's partial results, one (m, l, acc) per warp and query head, merged by
// write_block_result.
template <int D, int G> struct BlockMerge {
    float acc[DECODE_WARPS][G][D];
    float m[DECODE_WARPS][G], l[DECODE_WARPS][G];
};

// After a barrier: merge the warps' states, one (head, channel) per thread; write the
// normalised output (one split) or the split's partial (m, l, acc) per query head. At least one
// warp holds a token, so the merged max is finite and l ≥ 1.
template <int D, int G>
__device__ __forceinline__ void write_block_result(const BlockMerge<D, G> &s, long long head0, int split, int splits,
                                                   float *__restrict__ out, float *__restrict__ part_acc,
                                                   float *__restrict__ part_ml) {
    for (int i = threadIdx.x; i < G * D; i += DECODE_THREADS) {
        const int g = i / D, d = i % D;
        float mx = neg_inf();
#pragma unroll
        for (int w = 0; w < DECODE_WARPS; ++w) mx = fmaxf(mx, s.m[w][g]);
        float a = 0.0f, lsum = 0.0f;
#pragma unroll
        for (int w = 0; w < DECODE_WARPS; ++w) {
            const float f = s.m[w][g] == neg_inf() ? 0.0f : exp2_approx(s.m[w][g] - mx);
            a = fmaf(s.acc[w][g][d], f, a);
            lsum = fmaf(s.l[w][g], f, lsum);
        }
        if (splits == 1) {
            out[(head0 + g) * D + d] = a / lsum;
        } else {
            const long long row = (head0 + g) * splits + split;
            part_acc[row * D + d] = a;
            if (d == 0) {
                part_ml[2 * row] = mx;
                part_ml[2 * row + 1] = lsum;
            }
        }
    }
}

// The block's end: merge the lane groups of each warp (lanes l and l ^ (LPT·2^i) hold the same
// channels) by shuffles, then the warps through shared memory (write_block_result).
// `channel(e)` is the channel the lane's element e holds (4 consecutive e give 4 consecutive
// channels).
template <int D, int G, int LPT, typename ChannelFn>
__device__ __forceinline__ void merge_and_write(float (&m)[G], float (&l)[G], float (&acc)[G][EPL], ChannelFn channel,
                                                long long head0, int split, int splits, float *__restrict__ out,
                                                float *__restrict__ part_acc, float *__restrict__ part_ml) {
    __shared__ __align__(16) BlockMerge<D, G> s;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int g = 0; g < G; ++g) {
        float mx = m[g];
#pragma unroll
        for (int off = LPT; off < 32; off <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        const float f = m[g] == neg_inf() ? 0.0f : exp2_approx(m[g] - mx);
        float lg = l[g] * f;
#pragma unroll
        for (int off = LPT; off < 32; off <<= 1) lg += __shfl_xor_sync(0xffffffffu, lg, off);
#pragma unroll
        for (int e = 0; e < EPL; ++e) {
            float a = acc[g][e] * f;
#pragma unroll
            for (int off = LPT; off < 32; off <<= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
            acc[g][e] = a;
        }
        m[g] = mx;
        l[g] = lg;
    }
    if (lane < LPT) {
#pragma unroll
        for (int g = 0; g < G; ++g) {
#pragma unroll
            for (int e = 0; e < EPL; e += 4)
                *reinterpret_cast<float4 *>(&s.acc[warp][g][channel(e)]) =
                    make_float4(acc[g][e], acc[g][e + 1], acc[g][e + 2], acc[g][e + 3]);
            if (lane == 0) {
                s.m[warp][g] = m[g];
                s.l[warp][g] = l[g];
            }
        }
    }
    __syncthreads();
    write_block_result<D, G>(s, head0, split, splits, out, part_acc, part_ml);
}
