#pragma once
// shim.h — just enough of CUDA to compile a kernel source as C++ on the CPU: a block runs as
// one std::thread per CUDA thread, a warp's shuffles go through a 32-party std::barrier, and
// __syncthreads through a block-wide one. Blocks run one after another. Used by
// decode_harness.cpp and softmax_harness.cpp (see README.md).
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <thread>
#include <vector>
using std::min; using std::max;
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
struct uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
struct float2 { float x, y; };
struct float4 { float x, y, z, w; };
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
inline uint2 make_uint2(unsigned a, unsigned b) { return {a, b}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
template <class T> inline T __ldg(const T *p) { return *p; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int u) { float f; memcpy(&f, &u, 4); return f; }
// Funnel shifts (the high word of (hi:lo) << s, the low word of (hi:lo) >> s; s mod 32).
inline unsigned __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    const unsigned long long v = ((unsigned long long)hi << 32) | lo;
    return (unsigned)((v << (s & 31)) >> 32);
}
inline unsigned __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    const unsigned long long v = ((unsigned long long)hi << 32) | lo;
    return (unsigned)(v >> (s & 31));
}
inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    uint64_t v = (uint64_t)x | ((uint64_t)y << 32);
    unsigned r = 0;
    for (int i = 0; i < 4; ++i) { unsigned sel = (s >> (4 * i)) & 7; r |= (unsigned)((v >> (8 * sel)) & 0xff) << (8 * i); }
    return r;
}
inline float host_f16_to_f32(unsigned short h) {
    unsigned sign = (h >> 15) & 1, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = std::ldexp((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = std::ldexp((float)(m + 1024), (int)e - 25);
    return sign ? -v : v;
}
struct Dim { unsigned x, y, z; };
inline thread_local Dim threadIdx, blockIdx;
inline Dim gridDim, blockDim;
struct WarpX { std::barrier<> bar{32}; float v[32]; };
inline thread_local WarpX *my_warp;
inline thread_local int my_lane;
inline std::barrier<> *block_bar;
inline float __shfl_xor_sync(unsigned, float v, int off) {
    my_warp->v[my_lane] = v;
    my_warp->bar.arrive_and_wait();
    float r = my_warp->v[my_lane ^ off];
    my_warp->bar.arrive_and_wait();
    return r;
}
// A warp vote: true in every lane when `pred` holds in any (the emulated warps are always full).
inline bool __any_sync(unsigned, bool pred) {
    my_warp->v[my_lane] = pred ? 1.0f : 0.0f;
    my_warp->bar.arrive_and_wait();
    bool any = false;
    for (int i = 0; i < 32; ++i) any = any || my_warp->v[i] != 0.0f;
    my_warp->bar.arrive_and_wait();
    return any;
}
inline void __syncthreads() { block_bar->arrive_and_wait(); }
inline unsigned host_bf16(float x) { unsigned u; memcpy(&u, &x, 4); if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0; return (u + 0x7fff + ((u >> 16) & 1)) >> 16; }
inline unsigned host_pack_bf16x2(float lo, float hi) { return host_bf16(lo) | (host_bf16(hi) << 16); }
