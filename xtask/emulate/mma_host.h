#pragma once
// mma_host.h — host versions of the inline-PTX primitives of kernels/ch07_decode_mma.cu, for the
// CPU emulation (README.md). host_sources.py puts `#include "mma_host.h"` where the kernel's PTX
// section was; include shim.h first.
//
// An `unsigned` holds two f16 values, the first (lower-index) element in bits 0..15. Notation as
// in the PTX ISA: lane = my_lane, g = lane / 4 (groupID), q = lane % 4 (threadID_in_group).
//
// Warp-collective instructions (ldmatrix, movmatrix, mma) work like shim.h's __shfl_xor_sync:
// every lane writes its operands into a per-warp scratch area, the warp barrier makes them
// visible, each lane reads what its result needs and computes it, and a second barrier keeps a
// fast lane's next collective from overwriting scratch another lane is still reading. Like the
// hardware's .sync.aligned, all 32 lanes must call the same collective (here: or deadlock).
//
// Arithmetic: f16 results are rounded to nearest even from the exact value (a sum, difference or
// product of two f16 values is exact in double), with IEEE subnormals and overflow to infinity;
// a NaN result is the quiet NaN 0x7fff (its payload is not modelled).
#include "shim.h"
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

// ---- f16 <-> f32/f64 ------------------------------------------------------------------------

// x rounded to the nearest f16, ties to even, as IEEE 754 binary16 bits. Rounds once from the
// exact double, so a float argument gives exactly cvt.rn.f16.f32.
inline unsigned host_f16_from_double(double x) {
    if (std::isnan(x)) return 0x7fff;
    const unsigned sign = std::signbit(x) ? 0x8000u : 0u;
    const double a = std::fabs(x);
    // 65504 = (2 - 2^-10)·2^15 is the largest finite f16; its odd last bit makes the tie at
    // 65504 + 16 round up, to 2^16, which is infinity.
    if (a >= 65520.0) return sign | 0x7c00u;
    if (a < 0x1p-14) {
        // Subnormal (or zero): a multiple of 2^-24. Scaling by a power of two is exact, and
        // nearbyint rounds to even in the default rounding mode. 1024 (a rounding up into the
        // smallest normal) is also the right bit pattern, 0x0400.
        return sign | (unsigned)std::nearbyint(a * 0x1p24);
    }
    int e;
    const double m = std::frexp(a, &e);               // a = m·2^e, m in [0.5, 1)
    unsigned mant = (unsigned)std::nearbyint(m * 2048.0);  // 11 significant bits, in [1024, 2048]
    int exp = e - 1 + 15;                             // biased exponent of 2^(e-1)
    if (mant == 2048) { mant = 1024; ++exp; }         // rounded up to the next binade
    if (exp >= 31) return sign | 0x7c00u;
    return sign | ((unsigned)exp << 10) | (mant - 1024);
}

// The two halves of an f16x2 word, converted exactly (cvt.f32.f16).
inline float f16_lo(unsigned x) { return host_f16_to_f32((unsigned short)(x & 0xffffu)); }
inline float f16_hi(unsigned x) { return host_f16_to_f32((unsigned short)(x >> 16)); }

// cvt.rn.f16x2.f32: lo into bits 0..15, hi into bits 16..31, each rounded to nearest even.
inline unsigned pack_f16x2(float lo, float hi) {
    return host_f16_from_double(lo) | (host_f16_from_double(hi) << 16);
}

// add/sub/mul.rn.f16x2, lane-wise on both halves. The exact result of one operation on two f16
// values fits a double (at most 22 significant bits for a product, 51 for a sum), so rounding
// that double once is the correctly rounded f16 result.
template <class Op> inline unsigned host_f16x2_op(unsigned a, unsigned b, Op op) {
    const unsigned lo = host_f16_from_double(op((double)f16_lo(a), (double)f16_lo(b)));
    const unsigned hi = host_f16_from_double(op((double)f16_hi(a), (double)f16_hi(b)));
    return lo | (hi << 16);
}
inline unsigned hadd2(unsigned a, unsigned b) { return host_f16x2_op(a, b, [](double x, double y) { return x + y; }); }
inline unsigned hsub2(unsigned a, unsigned b) { return host_f16x2_op(a, b, [](double x, double y) { return x - y; }); }
inline unsigned hmul2(unsigned a, unsigned b) { return host_f16x2_op(a, b, [](double x, double y) { return x * y; }); }

// ---- per-warp scratch for the collectives ---------------------------------------------------

struct MmaScratch {
    const unsigned char *row[32];  // ldmatrix: the row address each lane supplies
    unsigned a[32][4];             // mma: each lane's A fragment
    unsigned b[32][2];             // mma: each lane's B fragment
    unsigned x[32];                // movmatrix: each lane's source fragment
};

// The scratch of the calling thread's warp (my_warp). A static map keyed by the WarpX address:
// run_grid's WarpX objects live for one block, and a later block's warp at the same address
// reuses the entry, which is harmless because every collective writes before it reads.
inline MmaScratch &mma_scratch() {
    static std::mutex mu;
    static std::map<const WarpX *, MmaScratch> scratch;
    thread_local const WarpX *cached_warp = nullptr;
    thread_local MmaScratch *cached = nullptr;
    if (cached_warp != my_warp) {
        std::lock_guard<std::mutex> lock(mu);
        cached = &scratch[my_warp];  // std::map never moves its elements
        cached_warp = my_warp;
    }
    return *cached;
}

inline unsigned host_b16_at(const unsigned char *row, int col) {
    unsigned short h;
    memcpy(&h, row + 2 * col, 2);
    return h;
}

inline void host_check_ldmatrix_row(const void *row, const char *what) {
    // The PTX ISA requires each row address to be 16-byte aligned (a misaligned one is an error
    // on the GPU), so a host run stops on one rather than reading it.
    if ((uintptr_t)row % 16 != 0) {
        fprintf(stderr, "%s: lane %d's row address %p is not 16-byte aligned\n", what, my_lane, row);
        abort();
    }
}

// ---- ldmatrix / movmatrix -------------------------------------------------------------------

// ldmatrix.sync.aligned.m8n8.x4.shared.b16: lane l supplies `row`, the 16 bytes of row l % 8 of
// matrix l / 8. r[i] = matrix i's (row g, cols 2q and 2q+1), col 2q in the low half.
inline void ldmatrix_x4(unsigned (&r)[4], const void *row) {
    host_check_ldmatrix_row(row, "ldmatrix_x4");
    MmaScratch &s = mma_scratch();
    const int lane = my_lane, g = lane / 4, q = lane % 4;
    s.row[lane] = (const unsigned char *)row;
    my_warp->bar.arrive_and_wait();
    for (int i = 0; i < 4; ++i) memcpy(&r[i], s.row[8 * i + g] + 4 * q, 4);
    my_warp->bar.arrive_and_wait();
}

// The same with .trans: each matrix is read column-major. r[i] low half = matrix i's (row 2q,
// col g), high half = (row 2q + 1, col g), where row j of matrix i is the 16 bytes lane 8i + j
// supplied and col c is its b16 element c.
inline void ldmatrix_x4_trans(unsigned (&r)[4], const void *row) {
    host_check_ldmatrix_row(row, "ldmatrix_x4_trans");
    MmaScratch &s = mma_scratch();
    const int lane = my_lane, g = lane / 4, q = lane % 4;
    s.row[lane] = (const unsigned char *)row;
    my_warp->bar.arrive_and_wait();
    for (int i = 0; i < 4; ++i)
        r[i] = host_b16_at(s.row[8 * i + 2 * q], g) | (host_b16_at(s.row[8 * i + 2 * q + 1], g) << 16);
    my_warp->bar.arrive_and_wait();
}

// movmatrix.sync.aligned.m8n8.trans.b16: lane l's x holds (row g, cols 2q, 2q+1) of an 8x8 b16
// matrix M; the result holds the same positions of M transposed: low half M[2q][g], high half
// M[2q+1][g]. M[r][c] sits in lane 4r + c/2, half c % 2.
inline unsigned movmatrix_trans(unsigned x) {
    MmaScratch &s = mma_scratch();
    const int lane = my_lane, g = lane / 4, q = lane % 4;
    s.x[lane] = x;
    my_warp->bar.arrive_and_wait();
    auto m = [&](int r, int c) { return (s.x[4 * r + c / 2] >> (16 * (c % 2))) & 0xffffu; };
    const unsigned d = m(2 * q, g) | (m(2 * q + 1, g) << 16);
    my_warp->bar.arrive_and_wait();
    return d;
}

// ---- mma ------------------------------------------------------------------------------------

// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32, C = D = c: D[16x8] = A[16x16]·B[16x8] + C.
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"):
//   a[0] = A(g, 2q..2q+1)   a[1] = A(g+8, 2q..2q+1)   a[2] = A(g, 2q+8..2q+9)   a[3] = A(g+8, 2q+8..2q+9)
//   b0 = B(2q..2q+1, g)     b1 = B(2q+8..2q+9, g)       (low half = lower k)
//   c[0], c[1] = D(g, 2q), D(g, 2q+1)                   c[2], c[3] = D(g+8, 2q), D(g+8, 2q+1)
// Each output is c + the 16 exact f16 products, summed in double (exact unless the terms span
// more than 53 bits of magnitude) and rounded to float once. The hardware accumulates in f32 in
// an order it does not specify, so this is one of the close answers, not a bit-exact model:
// compare a kernel's output against a tolerance, not bit for bit.
inline void mma_16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    MmaScratch &s = mma_scratch();
    const int lane = my_lane, g = lane / 4, q = lane % 4;
    for (int i = 0; i < 4; ++i) s.a[lane][i] = a[i];
    s.b[lane][0] = b0;
    s.b[lane][1] = b1;
    my_warp->bar.arrive_and_wait();
    // A(row, k) lives in lane 4·(row % 8) + (k % 8) / 2, register (row / 8) + 2·(k / 8), half k % 2.
    auto A = [&](int row, int k) {
        const unsigned w = s.a[4 * (row % 8) + (k % 8) / 2][row / 8 + 2 * (k / 8)];
        return (double)(k % 2 ? f16_hi(w) : f16_lo(w));
    };
    // B(k, col) lives in lane 4·col + (k % 8) / 2, register k / 8, half k % 2.
    auto B = [&](int k, int col) {
        const unsigned w = s.b[4 * col + (k % 8) / 2][k / 8];
        return (double)(k % 2 ? f16_hi(w) : f16_lo(w));
    };
    float d[4];
    for (int i = 0; i < 4; ++i) {
        const int row = g + 8 * (i / 2), col = 2 * q + i % 2;
        double acc = c[i];
        for (int k = 0; k < 16; ++k) acc += A(row, k) * B(k, col);
        d[i] = (float)acc;
    }
    my_warp->bar.arrive_and_wait();
    for (int i = 0; i < 4; ++i) c[i] = d[i];
}
