// ch05_qkv_epilogue.cu — the epilogue of the fused QKV GEMM (chapter 5): RoPE on q and k, then
// k and v written into the KV cache; as one kernel, and as the three passes a framework runs.
//
// What: the GEMM's output qkv is (n, C) row-major, C = (H + 2·H_kv)·d, one row per token of a
// chunk at positions start … start + n − 1; head slot s of a row is columns s·d … s·d + d − 1:
// q heads s < H, k heads H ≤ s < H + H_kv, v heads after. With h = d/2 and the tables cos, sin
// of shape (max_positions, d) (Hugging Face's duplicated halves), RoPE in the half-rotation
// layout is x·cos + rotate_half(x)·sin, rotate_half(x) = [−x[h..], x[..h]]:
//     out[i]     = x[i]·cos[p][i]         − x[i+h]·sin[p][i]
//     out[i + h] = x[i+h]·cos[p][i+h]     + x[i]·sin[p][i+h]          (i < h, p = position)
// q goes to q_out (H, n, d); rotated k to k_cache and v (unrotated) to v_cache, both
// (H_kv, cache_len, d), at row p of each head.
//
// Arithmetic: storage f32 or bf16 (the tables in the same type), arithmetic f32; bf16 is
// rounded once, at the store (cvt.rn: round to nearest even). The products and the sum are
// written __fmul_rn / __fadd_rn / __fsub_rn so that the compiler does not contract them into
// FMAs: each output is fl(fl(a·c) ∓ fl(b·s)), as the CPU computes it, so the GPU equals the CPU
// bit for bit (the tests check it).
//
// Work split: one thread takes C consecutive pairs (i … i+C−1 and their partners i+h …) of one
// head slot of one token. C = 16 bytes / element size (4 f32, 8 bf16: every access one 128-bit
// load or store) in the *_vec kernels, which the host uses when h is a multiple of C (then every
// offset is a multiple of C elements and, from cuMemAlloc's 256-byte-aligned buffers, 16-byte
// aligned); C = 1 in the *_scalar kernels otherwise. Thread index, fastest first: chunk (h/C),
// head slot, token — so a warp covers whole heads of one token (d = 64 bf16: 4 threads a head)
// and every warp-wide access is coalesced. 64-bit offsets throughout.
//
// Launch: 1-D grid of ceil(threads / EPILOGUE_THREADS) blocks of EPILOGUE_THREADS = 256, no
// shared memory. The host (chapters/ch05-fused-computation/src/gpu/qkv_epilogue.rs) checks
// every buffer length and every position (a table row and a cache row for each) before launching.
//
// Kernels, with the bytes each moves (q = n·H·d, kv = n·H_kv·d, tab = 2·n·d elements):
//   ch05_epilogue_fused_*   one pass: reads qkv once (q + 2·kv) and the cos/sin rows (tab, once
//                           from DRAM, re-read by every head from L1/L2), writes q + 2·kv;
//   ch05_rope_heads_*       passes 1 and 2: rotate `heads` heads from slot first_slot into
//                           out (heads, n, d): reads heads·n·d + tab, writes heads·n·d;
//   ch05_cache_write_*      pass 3: copies the rotated k (H_kv, n, d) and the v block of qkv
//                           into the cache rows: reads 2·kv, writes 2·kv.
// Three passes move q + 3·kv + 2·tab read, q + 3·kv written; one pass q + 2·kv + tab and q + 2·kv.

#define EPILOGUE_THREADS 256

typedef unsigned short bf16_t;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16_t x) { return __uint_as_float(((unsigned)x) << 16); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16_t from_float<bf16_t>(float x) {
    bf16_t r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
    return r;
}

// C elements moved as one access (16 bytes when C = 16 / sizeof(T)).
template <typename T, int C> struct alignas(sizeof(T) * C) Chunk {
    T v[C];
};

template <typename T, int C> __device__ __forceinline__ Chunk<T, C> load(const T *p) {
    return *reinterpret_cast<const Chunk<T, C> *>(p);
}

template <typename T, int C> __device__ __forceinline__ void store(T *p, const Chunk<T, C> &c) {
    *reinterpret_cast<Chunk<T, C> *>(p) = c;
}

// Pairs i … i+C−1 of the head vector x rotated into out, with the table rows cs (cos), sn (sin).
template <typename T, int C>
__device__ __forceinline__ void rope_chunk(const T *x, const T *cs, const T *sn, T *out, int i, int half) {
    const Chunk<T, C> a = load<T, C>(x + i), b = load<T, C>(x + i + half);
    const Chunk<T, C> ca = load<T, C>(cs + i), sa = load<T, C>(sn + i);
    const Chunk<T, C> cb = load<T, C>(cs + i + half), sb = load<T, C>(sn + i + half);
    Chunk<T, C> oa, ob;
#pragma unroll
    for (int j = 0; j < C; ++j) {
        const float xa = to_float(a.v[j]), xb = to_float(b.v[j]);
        oa.v[j] = from_float<T>(__fsub_rn(__fmul_rn(xa, to_float(ca.v[j])), __fmul_rn(xb, to_float(sa.v[j]))));
        ob.v[j] = from_float<T>(__fadd_rn(__fmul_rn(xb, to_float(cb.v[j])), __fmul_rn(xa, to_float(sb.v[j]))));
    }
    store<T, C>(out + i, oa);
    store<T, C>(out + i + half, ob);
}

template <typename T, int C> __device__ __forceinline__ void copy_chunk(const T *x, T *out, int i, int half) {
    store<T, C>(out + i, load<T, C>(x + i));
    store<T, C>(out + i + half, load<T, C>(x + i + half));
}

// One pass: every head slot of every token from qkv to its final place.
template <typename T, int C>
__device__ void epilogue_fused(const T *__restrict__ qkv, const T *__restrict__ cos_table,
                               const T *__restrict__ sin_table, T *__restrict__ q_out, T *__restrict__ k_cache,
                               T *__restrict__ v_cache, int tokens, int start, int n_heads, int n_kv_heads,
                               int head_dim, int cache_len) {
    const int half = head_dim / 2, chunks = half / C, slots = n_heads + 2 * n_kv_heads;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)tokens * slots * chunks) return;
    const int i = (int)(idx % chunks) * C;
    const long long rest = idx / chunks;
    const int slot = (int)(rest % slots), t = (int)(rest / slots);
    const long long pos = (long long)start + t;
    const T *x = qkv + ((long long)t * slots + slot) * head_dim;
    const T *cs = cos_table + pos * head_dim, *sn = sin_table + pos * head_dim;
    if (slot < n_heads) {
        rope_chunk<T, C>(x, cs, sn, q_out + ((long long)slot * tokens + t) * head_dim, i, half);
    } else if (slot < n_heads + n_kv_heads) {
        T *k = k_cache + ((long long)(slot - n_heads) * cache_len + pos) * head_dim;
        rope_chunk<T, C>(x, cs, sn, k, i, half);
    } else {
        T *v = v_cache + ((long long)(slot - n_heads - n_kv_heads) * cache_len + pos) * head_dim;
        copy_chunk<T, C>(x, v, i, half);
    }
}

// Passes 1 and 2: `heads` heads from slot first_slot of each token, rotated into out (heads, n, d).
template <typename T, int C>
__device__ void rope_heads(const T *__restrict__ qkv, const T *__restrict__ cos_table,
                           const T *__restrict__ sin_table, T *__restrict__ out, int tokens, int start,
                           int first_slot, int heads, int slots, int head_dim) {
    const int half = head_dim / 2, chunks = half / C;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)tokens * heads * chunks) return;
    const int i = (int)(idx % chunks) * C;
    const long long rest = idx / chunks;
    const int h = (int)(rest % heads), t = (int)(rest / heads);
    const long long pos = (long long)start + t;
    const T *x = qkv + ((long long)t * slots + first_slot + h) * head_dim;
    rope_chunk<T, C>(x, cos_table + pos * head_dim, sin_table + pos * head_dim,
                     out + ((long long)h * tokens + t) * head_dim, i, half);
}

// Pass 3: the cache update — rotated k from its temporary (H_kv, n, d), v from its block of qkv.
template <typename T, int C>
__device__ void cache_write(const T *__restrict__ k_rotated, const T *__restrict__ qkv, T *__restrict__ k_cache,
                            T *__restrict__ v_cache, int tokens, int start, int n_heads, int n_kv_heads,
                            int head_dim, int cache_len) {
    const int chunks = head_dim / C, slots = n_heads + 2 * n_kv_heads;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)tokens * n_kv_heads * chunks) return;
    const int c = (int)(idx % chunks) * C;
    const long long rest = idx / chunks;
    const int h = (int)(rest % n_kv_heads), t = (int)(rest / n_kv_heads);
    const long long row = ((long long)h * cache_len + start + t) * head_dim + c;
    store<T, C>(k_cache + row, load<T, C>(k_rotated + ((long long)h * tokens + t) * head_dim + c));
    store<T, C>(v_cache + row, load<T, C>(qkv + ((long long)t * slots + n_heads + n_kv_heads + h) * head_dim + c));
}

// The entry points: element type × chunk width.
#define EPILOGUE_KERNELS(NAME, T, C)                                                                          \
    extern "C" __global__ void __launch_bounds__(EPILOGUE_THREADS)                                            \
        ch05_epilogue_fused_##NAME(const T *qkv, const T *cos_table, const T *sin_table, T *q_out,            \
                                   T *k_cache, T *v_cache, int tokens, int start, int n_heads,                \
                                   int n_kv_heads, int head_dim, int cache_len) {                             \
        epilogue_fused<T, C>(qkv, cos_table, sin_table, q_out, k_cache, v_cache, tokens, start, n_heads,      \
                             n_kv_heads, head_dim, cache_len);                                                \
    }                                                                                                         \
    extern "C" __global__ void __launch_bounds__(EPILOGUE_THREADS)                                            \
        ch05_rope_heads_##NAME(const T *qkv, const T *cos_table, const T *sin_table, T *out, int tokens,      \
                               int start, int first_slot, int heads, int slots, int head_dim) {               \
        rope_heads<T, C>(qkv, cos_table, sin_table, out, tokens, start, first_slot, heads, slots, head_dim); \
    }                                                                                                         \
    extern "C" __global__ void __launch_bounds__(EPILOGUE_THREADS)                                            \
        ch05_cache_write_##NAME(const T *k_rotated, const T *qkv, T *k_cache, T *v_cache, int tokens,         \
                                int start, int n_heads, int n_kv_heads, int head_dim, int cache_len) {        \
        cache_write<T, C>(k_rotated, qkv, k_cache, v_cache, tokens, start, n_heads, n_kv_heads, head_dim,    \
                          cache_len);                                                                         \
    }

EPILOGUE_KERNELS(f32_vec, float, 4)
EPILOGUE_KERNELS(f32_scalar, float, 1)
EPILOGUE_KERNELS(bf16_vec, bf16_t, 8)
EPILOGUE_KERNELS(bf16_scalar, bf16_t, 1)
