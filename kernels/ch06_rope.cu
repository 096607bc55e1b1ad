// ch06_rope.cu — rotary position embedding (RoPE), in place, on x of shape (tokens, heads, d):
// the layout Hugging Face's q and k have straight out of the projection, (batch, seq, heads, d)
// with batch·seq flattened, before any transpose. Token t sits at position positions[t] (any
// integers: a prefill 0…n−1, a decode step at n, or packed sequences each starting at 0).
//
// Pair i of a head vector (i < P = rotary_dim/2) is rotated by the angle m·θ_i:
//   (a, b) ↦ (a·cos − b·sin, b·cos + a·sin)
// with the pair's dims (i, i + P) in the half-rotation layout (GPT-NeoX, Hugging Face Llama) or
// (2i, 2i + 1) in the interleaved layout (GPT-J, Meta, GGUF). Dims from rotary_dim to d (partial
// rotary) are neither read nor written. Storage is f32 or bf16; the arithmetic is f32 in both,
// with bf16 rounded once, at the store (round to nearest even).
//
// The products and sums are written __fmul_rn / __fadd_rn so that the compiler does not contract
// them into FMAs: with the CPU's cos/sin table they give the CPU's RopeCache::apply bit for bit
// (both compute fl(fl(a·c) − fl(b·s))), which the tests check.
//
// Angle sources (template parameter SOURCE):
//   FROM_CACHE    cos/sin tables (max_positions, P) f32, made on the host (RopeCache);
//   SINCOSF       θ_i from an inv_freq table (P floats), angle fl(m·θ_i) as transformers forms it
//                 (integer position to f32, one f32 product), then CUDA's sincosf (≤ 2 ulp; for
//                 |angle| > 105 615 it takes a slow, exact range reduction through local memory),
//                 both times attention_factor (1 but for YaRN-style scalings), as the table is;
//   FAST_SINCOSF  the same angle through the __sincosf intrinsic (the SFU's MUFU.SIN/COS after a
//                 multiplication by 1/2π in f32): a few instructions, but its absolute error grows
//                 with the angle, so long contexts pay for it — the ch06 binary measures by how much.
//
// Work split: one thread takes C pairs of one token in two chunks of C elements (C = 16 bytes /
// element size: 4 f32 or 8 bf16, one 128-bit load per chunk; C = 1 in the scalar variant, used
// when the host finds P or d not a multiple of C) — the C pairs' two halves in the half-rotation
// layout, two runs of C/2 adjacent pairs, P/2 pairs apart, in the interleaved one, so that in
// both a warp's load instruction reads contiguous bytes — and HEADS_PER_THREAD heads of that
// token, so that its C cos/sin values (read or computed once) serve all of them. It loads every
// head's data before rotating any (in place, the compiler may not move a load above an earlier
// store), so 2·HEADS_PER_THREAD independent 16-byte loads are in flight per thread.
//   Thread index, fastest first: chunk (P/C), head slot (ceil(heads / HEADS_PER_THREAD)), token;
//   slot s takes heads s, s + slots, s + 2·slots, …. A warp thus touches whole rows of
//   neighbouring heads of one token: for d = 128 bf16, 8 threads cover one head's 256 bytes.
// Launch (chapters/ch06-rope/src/gpu.rs): 1-D grid of ceil(tokens · slots · P/C / 256) blocks
//   of ROPE_THREADS = 256 threads, fewer than 2^32 threads in all. The host checks every size
//   and every position (below the cache's max_positions, at most 2^24 so that f32 holds it)
//   before launching, and that x starts 16-byte aligned for the vector variants.
// Bytes moved: tokens·heads·rotary_dim·size read and as many written (2·tokens·heads·d·size at
//   full rotary, the same as copying x), plus positions (4·tokens) and, from the cache,
//   2·tokens·P·4 bytes of cos/sin (3 % of x's traffic for bf16, d = 128; heads reuse them).

typedef unsigned short bf16_t;

#define HEADS_PER_THREAD 4

enum AngleSource { FROM_CACHE = 0, SINCOSF = 1, FAST_SINCOSF = 2 };
enum Layout { HALF_ROTATION = 0, INTERLEAVED = 1 };

__device__ __forceinline__ float bf16_bits_to_f32(unsigned bits16) { return __uint_as_float(bits16 << 16); }

// Round to nearest even, as `half::bf16::from_f32` does on the host (a NaN stays a NaN, though
// not necessarily the same one): one cvt instruction from sm_80 on, the bit trick before.
__device__ __forceinline__ unsigned f32_to_bf16_bits(float f) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
    return r;
#else
    const unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
#endif
}

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(bf16_t v) { return bf16_bits_to_f32(v); }
__device__ __forceinline__ void from_f32(float f, float *p) { *p = f; }
__device__ __forceinline__ void from_f32(float f, bf16_t *p) { *p = (bf16_t)f32_to_bf16_bits(f); }

// C elements of T as raw storage: one uint4 for the 16-byte vector chunks, else C elements.
template <typename T, int C> struct alignas(C * sizeof(T) == 16 ? 16 : sizeof(T)) Chunk {
    static constexpr bool VECTOR = C * sizeof(T) == 16;
    T v[C];
};
template <typename T, int C>
__device__ __forceinline__ void load_chunk(const T *p, Chunk<T, C> &c) {
    if constexpr (Chunk<T, C>::VECTOR) {
        *reinterpret_cast<uint4 *>(c.v) = *reinterpret_cast<const uint4 *>(p);
    } else {
#pragma unroll
        for (int j = 0; j < C; ++j) c.v[j] = p[j];
    }
}
template <typename T, int C>
__device__ __forceinline__ void store_chunk(T *p, const Chunk<T, C> &c) {
    if constexpr (Chunk<T, C>::VECTOR) {
        *reinterpret_cast<uint4 *>(p) = *reinterpret_cast<const uint4 *>(c.v);
    } else {
#pragma unroll
        for (int j = 0; j < C; ++j) p[j] = c.v[j];
    }
}

// N consecutive floats of a table row, as float4 or float2 loads where N allows (the host makes
// the rows and the chunks aligned).
template <int N>
__device__ __forceinline__ void load_floats(const float *__restrict__ p, float *out) {
    if constexpr (N % 4 == 0) {
#pragma unroll
        for (int j = 0; j < N; j += 4) *reinterpret_cast<float4 *>(out + j) = *reinterpret_cast<const float4 *>(p + j);
    } else if constexpr (N % 2 == 0) {
#pragma unroll
        for (int j = 0; j < N; j += 2) *reinterpret_cast<float2 *>(out + j) = *reinterpret_cast<const float2 *>(p + j);
    } else {
#pragma unroll
        for (int j = 0; j < N; ++j) out[j] = p[j];
    }
}

template <typename T, int LAYOUT, int SOURCE, int C>
__device__ __forceinline__ void rope_inplace(T *__restrict__ x, const unsigned *__restrict__ positions,
                                             const float *__restrict__ cos_table, const float *__restrict__ sin_table,
                                             const float *__restrict__ inv_freq, float attention_factor,
                                             long long tokens, int heads,
                                             int head_dim, int pairs, int head_slots) {
    // 32-bit index arithmetic (64-bit division is a long subroutine): the host checks that the
    // grid has fewer than 2^32 threads.
    const unsigned chunks = pairs / C;
    const unsigned idx = blockIdx.x * blockDim.x + threadIdx.x;
    const int chunk = (int)(idx % chunks);
    const unsigned rest = idx / chunks;
    const int slot = (int)(rest % (unsigned)head_slots);
    const long long token = rest / (unsigned)head_slots;
    if (token >= tokens) return;
    const unsigned m = positions[token];

    // The thread's two chunks of C elements (lo and hi, concatenated as e[0 … 2C−1] below) and
    // the C pairs they hold, pair j of the thread being (e[j], e[C+j]) or (e[2j], e[2j+1]):
    //  half-rotation: lo = dims i0 …, hi = dims P + i0 …, with i0 = chunk·C; pair j is i0 + j.
    //  interleaved, vector (SPLIT): lo = dims chunk·C …, hi = dims (chunk + chunks)·C …, C/2
    //    adjacent pairs each, so that neighbouring threads read neighbouring 16 bytes in both
    //    loads; pair j is chunk·C/2 + j for j < C/2, then (chunk + chunks)·C/2 + j − C/2.
    //  interleaved, scalar (C = 1): lo = dim 2·chunk, hi = dim 2·chunk + 1; pair chunk.
    constexpr bool SPLIT = LAYOUT == INTERLEAVED && C > 1;
    const int lo_pair = LAYOUT == HALF_ROTATION ? chunk * C : (SPLIT ? chunk * (C / 2) : chunk);
    const int hi_pair = SPLIT ? (chunk + (int)chunks) * (C / 2) : lo_pair;
    const int lo_dim = LAYOUT == HALF_ROTATION ? lo_pair : (SPLIT ? chunk * C : 2 * chunk);
    const int hi_dim = LAYOUT == HALF_ROTATION ? pairs + lo_pair : (SPLIT ? (chunk + (int)chunks) * C : 2 * chunk + 1);

    // cos and sin of m·θ_i for the thread's C pairs, once for all its heads.
    alignas(16) float c[C], s[C];
    if constexpr (SOURCE == FROM_CACHE) {
        const long long row = (long long)m * pairs;
        if constexpr (SPLIT) {
            load_floats<C / 2>(cos_table + row + lo_pair, c);
            load_floats<C / 2>(cos_table + row + hi_pair, c + C / 2);
            load_floats<C / 2>(sin_table + row + lo_pair, s);
            load_floats<C / 2>(sin_table + row + hi_pair, s + C / 2);
        } else {
            load_floats<C>(cos_table + row + lo_pair, c);
            load_floats<C>(sin_table + row + lo_pair, s);
        }
    } else {
#pragma unroll
        for (int j = 0; j < C; ++j) {
            const int pair = SPLIT && j >= C / 2 ? hi_pair + j - C / 2 : lo_pair + j;
            // The angle exactly as on the host: the integer position to f32 (exact up to 2^24),
            // one rounded product with the f32 θ_i.
            const float angle = __fmul_rn((float)m, inv_freq[pair]);
            if constexpr (SOURCE == SINCOSF) {
                sincosf(angle, &s[j], &c[j]);
            } else {
                __sincosf(angle, &s[j], &c[j]);
            }
            // Hugging Face's attention_scaling (YaRN's; 1, an exact no-op, otherwise), applied
            // as the host applies it to its table: one rounded product each.
            c[j] = __fmul_rn(c[j], attention_factor);
            s[j] = __fmul_rn(s[j], attention_factor);
        }
    }

    T *token_row = x + token * (long long)heads * head_dim;

    Chunk<T, C> lo[HEADS_PER_THREAD], hi[HEADS_PER_THREAD];
#pragma unroll
    for (int k = 0; k < HEADS_PER_THREAD; ++k) {
        const int h = slot + k * head_slots;
        if (h < heads) {
            load_chunk<T, C>(token_row + (long long)h * head_dim + lo_dim, lo[k]);
            load_chunk<T, C>(token_row + (long long)h * head_dim + hi_dim, hi[k]);
        }
    }
#pragma unroll
    for (int k = 0; k < HEADS_PER_THREAD; ++k) {
        const int h = slot + k * head_slots;
        if (h >= heads) break;
        float e[2 * C];
#pragma unroll
        for (int j = 0; j < C; ++j) {
            e[j] = to_f32(lo[k].v[j]);
            e[C + j] = to_f32(hi[k].v[j]);
        }
#pragma unroll
        for (int j = 0; j < C; ++j) {
            const int ia = LAYOUT == HALF_ROTATION ? j : 2 * j;
            const int ib = LAYOUT == HALF_ROTATION ? C + j : 2 * j + 1;
            const float a = e[ia], b = e[ib];
            e[ia] = __fsub_rn(__fmul_rn(a, c[j]), __fmul_rn(b, s[j]));
            e[ib] = __fadd_rn(__fmul_rn(b, c[j]), __fmul_rn(a, s[j]));
        }
#pragma unroll
        for (int j = 0; j < C; ++j) {
            from_f32(e[j], &lo[k].v[j]);
            from_f32(e[C + j], &hi[k].v[j]);
        }
        store_chunk<T, C>(token_row + (long long)h * head_dim + lo_dim, lo[k]);
        store_chunk<T, C>(token_row + (long long)h * head_dim + hi_dim, hi[k]);
    }
}

// One extern "C" entry per (layout, storage, angle source, vector or scalar), all with the same
// arguments: ch06_rope_<half|interleaved>_<f32|bf16>_<cache|sincosf|fast>_<vec|scalar>.
#define ROPE_ENTRY(NAME, T, LAYOUT, SOURCE, C)                                                                   \
    extern "C" __global__ void __launch_bounds__(256)                                                         \
        NAME(T *x, const unsigned *positions, const float *cos_table, const float *sin_table,                  \
             const float *inv_freq, float attention_factor, long long tokens, int heads, int head_dim,         \
             int pairs, int head_slots) {                                                                      \
        rope_inplace<T, LAYOUT, SOURCE, C>(x, positions, cos_table, sin_table, inv_freq, attention_factor,    \
                                           tokens, heads,                                                    \
                                           head_dim, pairs, head_slots);                                     \
    }

#define ROPE_SOURCES(LNAME, TNAME, T, LAYOUT, C, VNAME)                                                         \
    ROPE_ENTRY(ch06_rope_##LNAME##_##TNAME##_cache_##VNAME, T, LAYOUT, FROM_CACHE, C)                           \
    ROPE_ENTRY(ch06_rope_##LNAME##_##TNAME##_sincosf_##VNAME, T, LAYOUT, SINCOSF, C)                            \
    ROPE_ENTRY(ch06_rope_##LNAME##_##TNAME##_fast_##VNAME, T, LAYOUT, FAST_SINCOSF, C)

#define ROPE_LAYOUTS(TNAME, T, C, VNAME)                                                                        \
    ROPE_SOURCES(half, TNAME, T, HALF_ROTATION, C, VNAME)                                                       \
    ROPE_SOURCES(interleaved, TNAME, T, INTERLEAVED, C, VNAME)

ROPE_LAYOUTS(f32, float, 4, vec)
ROPE_LAYOUTS(f32, float, 1, scalar)
ROPE_LAYOUTS(bf16, bf16_t, 8, vec)
ROPE_LAYOUTS(bf16, bf16_t, 1, scalar)

// The copy that gives the bandwidth ceiling is cudarc's device-to-device memcpy (the same
// cuMemcpyAsync PyTorch's y.copy_(x) uses), so no copy kernel lives here.
