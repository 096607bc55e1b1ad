// ch12_fill.cu — benchmark inputs made on the device: seeded standard-normal bf16 values, and
// their f32 copies for the f32 rung. Generating 3 × 268 M values for the largest benchmark
// shape on the host would take longer than timing every kernel.
//
// ch12_fill_normal_bf16: out[i] = bf16(z_i), z_i ~ N(0, 1) by Box–Muller from two uniforms that a
//   64-bit hash (splitmix64's finaliser) makes from (seed, i); deterministic, no state. Grid-stride
//   loop: any grid covers any n. Bytes: 2·n written.
// ch12_bf16_to_f32: out[i] = float(in[i]) (exact). Bytes: 2·n read, 4·n written.
// Launch (FILL_THREADS and FILL_MAX_BLOCKS in chapters/ch12-performance-tuning/src/bench.rs):
// ⌈n/256⌉ blocks of 256 threads, at most 1024 blocks.

typedef unsigned short bf16_t;

__device__ __forceinline__ unsigned long long mix64(unsigned long long x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

__device__ __forceinline__ bf16_t f32_to_bf16(float f) {
    unsigned short r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f));
    return r;
}

extern "C" __global__ void ch12_fill_normal_bf16(bf16_t *out, unsigned long long n, unsigned long long seed) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        const unsigned long long h = mix64(seed * 0x9e3779b97f4a7c15ull + i);
        // Two 24-bit uniforms in (0, 1] and [0, 1).
        const float u1 = ((h >> 40) + 1) * (1.0f / 16777216.0f), u2 = ((h >> 8) & 0xffffff) * (1.0f / 16777216.0f);
        out[i] = f32_to_bf16(sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2));
    }
}

extern "C" __global__ void ch12_bf16_to_f32(const bf16_t *in, float *out, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x)
        out[i] = __uint_as_float((unsigned)in[i] << 16);
}
