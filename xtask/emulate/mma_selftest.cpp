// mma_selftest.cpp — checks mma_host.h, the host versions of the tensor-core primitives of
// kernels/ch07_decode_mma.cu, on one emulated warp (README.md):
//   (a) ldmatrix_x4 / ldmatrix_x4_trans deliver the fragments the PTX ISA describes, and a 16x16
//       by 16x16 product assembled from them with mma_16816 equals the plain product, for B in
//       both shared-memory layouts (n-by-k read with ldmatrix, k-by-n read with .trans);
//   (b) movmatrix_trans transposes;
//   (c) pack_f16x2, hadd2, hsub2, hmul2 on edge values (subnormals, exact ties, 65504,
//       overflow) and, where the compiler has _Float16, against its conversions and arithmetic
//       on many random values.
// Prints ok/FAIL per check; exits non-zero on any failure.
#include "shim.h"
#include "mma_host.h"
#include <cstdio>
#include <functional>
#include <random>
#include <string>

static int failures = 0;
static void check(bool ok, const std::string &what) {
    printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    failures += !ok;
}

// One warp: 32 threads with my_warp / my_lane set as decode_harness.cpp's run_grid does.
static void run_warp(const std::function<void()> &body) {
    WarpX warp;
    std::barrier<> bar(32);
    block_bar = &bar;
    gridDim = {1, 1, 1};
    blockDim = {32, 1, 1};
    std::vector<std::thread> ts;
    for (int t = 0; t < 32; ++t)
        ts.emplace_back([&, t] {
            threadIdx = {(unsigned)t, 0, 0};
            blockIdx = {0, 0, 0};
            my_warp = &warp;
            my_lane = t;
            body();
        });
    for (auto &t : ts) t.join();
}

static unsigned lo16(unsigned x) { return x & 0xffff; }
static unsigned hi16(unsigned x) { return x >> 16; }

// ---- (a) ldmatrix and mma -------------------------------------------------------------------

static void check_ldmatrix_raw() {
    // Four 8x8 matrices of distinct b16 tags, each row at its own (shuffled) 16-byte slot, so a
    // wrong row, column or matrix index shows up as a wrong tag.
    alignas(16) static unsigned short smem[32][8];
    int slot_of[4][8];
    for (int i = 0; i < 4; ++i)
        for (int r = 0; r < 8; ++r) slot_of[i][r] = (8 * i + r) * 13 % 32;  // a permutation of 0..31
    auto tag = [](int i, int r, int c) { return (unsigned)(0x1000 * (i + 1) + 0x100 * r + c); };
    for (int i = 0; i < 4; ++i)
        for (int r = 0; r < 8; ++r)
            for (int c = 0; c < 8; ++c) smem[slot_of[i][r]][c] = (unsigned short)tag(i, r, c);
    unsigned plain[32][4], trans[32][4];
    run_warp([&] {
        const int l = my_lane;
        const void *row = smem[slot_of[l / 8][l % 8]];
        ldmatrix_x4(plain[l], row);
        ldmatrix_x4_trans(trans[l], row);
    });
    bool ok_plain = true, ok_trans = true;
    for (int l = 0; l < 32; ++l) {
        const int g = l / 4, q = l % 4;
        for (int i = 0; i < 4; ++i) {
            ok_plain &= lo16(plain[l][i]) == tag(i, g, 2 * q) && hi16(plain[l][i]) == tag(i, g, 2 * q + 1);
            ok_trans &= lo16(trans[l][i]) == tag(i, 2 * q, g) && hi16(trans[l][i]) == tag(i, 2 * q + 1, g);
        }
    }
    check(ok_plain, "ldmatrix_x4: r[i] = matrix i (row g, cols 2q, 2q+1)");
    check(ok_trans, "ldmatrix_x4_trans: r[i] = matrix i (rows 2q, 2q+1; col g)");
}

// One random trial; returns whether both B layouts gave A·B + C exactly.
static std::pair<bool, bool> mma_trial(std::mt19937 &rng) {
    // Values k/8 with |k| <= 64: every product and every partial sum (and the C values, also
    // multiples of 1/64 below 2^10) is exact in f32, so any accumulation order gives the exact
    // product and the comparison can be bit for bit.
    std::uniform_int_distribution<int> small(-64, 64);
    alignas(16) static unsigned short sA[16][16];   // A, row-major (m by k)
    alignas(16) static unsigned short sBt[16][16];  // B stored n by k (each row a column of B)
    alignas(16) static unsigned short sB[16][16];   // B stored k by n (row-major B)
    double A[16][16], B[16][16], C[16][16];
    for (int m = 0; m < 16; ++m)
        for (int k = 0; k < 16; ++k) {
            A[m][k] = small(rng) / 8.0;
            sA[m][k] = (unsigned short)host_f16_from_double(A[m][k]);
        }
    for (int k = 0; k < 16; ++k)
        for (int n = 0; n < 16; ++n) {
            B[k][n] = small(rng) / 8.0;
            sB[k][n] = sBt[n][k] = (unsigned short)host_f16_from_double(B[k][n]);
        }
    for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 16; ++n) C[m][n] = small(rng) / 64.0;
    float got_nk[16][16], got_kn[16][16];
    run_warp([&] {
        const int l = my_lane, g = l / 4, q = l % 4, i = l / 8, r = l % 8;
        // A: matrices 0..3 = (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15),
        // (rows 8-15, k 8-15), which is exactly a[0..3].
        unsigned a[4];
        ldmatrix_x4(a, &sA[r + 8 * (i % 2)][8 * (i / 2)]);
        // B from n-by-k: a row of 8 n's k values is b0 / b1 without transposition. Matrices
        // (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
        unsigned bnk[4];
        ldmatrix_x4(bnk, &sBt[r + 8 * (i / 2)][8 * (i % 2)]);
        // B from k-by-n: rows are k, so .trans. Matrices (k 0-7, n 0-7), (k 8-15, n 0-7),
        // (k 0-7, n 8-15), (k 8-15, n 8-15).
        unsigned bkn[4];
        ldmatrix_x4_trans(bkn, &sB[r + 8 * (i % 2)][8 * (i / 2)]);
        for (int half = 0; half < 2; ++half) {  // output columns 8·half .. 8·half + 7
            float c1[4], c2[4];
            for (int j = 0; j < 4; ++j) c1[j] = c2[j] = (float)C[g + 8 * (j / 2)][8 * half + 2 * q + j % 2];
            mma_16816(c1, a, bnk[2 * half], bnk[2 * half + 1]);
            mma_16816(c2, a, bkn[2 * half], bkn[2 * half + 1]);
            for (int j = 0; j < 4; ++j) {
                got_nk[g + 8 * (j / 2)][8 * half + 2 * q + j % 2] = c1[j];
                got_kn[g + 8 * (j / 2)][8 * half + 2 * q + j % 2] = c2[j];
            }
        }
    });
    bool ok_nk = true, ok_kn = true;
    for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 16; ++n) {
            double want = C[m][n];
            for (int k = 0; k < 16; ++k) want += A[m][k] * B[k][n];
            ok_nk &= got_nk[m][n] == want;
            ok_kn &= got_kn[m][n] == want;
            static int shown = 0;
            if ((got_nk[m][n] != want || got_kn[m][n] != want) && shown++ < 5)
                printf("  D[%d][%d] = %g (B n-by-k) / %g (B k-by-n), want %g\n", m, n, got_nk[m][n], got_kn[m][n], want);
        }
    return {ok_nk, ok_kn};
}

static void check_mma(std::mt19937 &rng, int trials) {
    bool ok_nk = true, ok_kn = true;
    for (int t = 0; t < trials; ++t) {
        const auto [nk, kn] = mma_trial(rng);
        ok_nk &= nk;
        ok_kn &= kn;
    }
    check(ok_nk, "mma_16816 with A by ldmatrix_x4 and B (n-by-k) by ldmatrix_x4 = A·B + C (" + std::to_string(trials) + " random 16x16x16 products)");
    check(ok_kn, "mma_16816 with A by ldmatrix_x4 and B (k-by-n) by ldmatrix_x4_trans = A·B + C (" + std::to_string(trials) + " random 16x16x16 products)");
}

static void check_mma_rounding() {
    // c + the exact sum, rounded once to f32: 2^24 + 1 + 1 = 2^24 + 2, where f32 partial sums
    // in this order would give 2^24 (the hardware's order is unspecified; this pins the model).
    unsigned a1 = pack_f16x2(1.0f, 1.0f), ones[4] = {a1, a1, a1, a1};
    float got[32][4];
    run_warp([&] {
        float c[4] = {16777216.0f, 16777216.0f, 16777216.0f, 16777216.0f};
        // B has a single 1 at k = 0 (lane with q = 0, low half of b0) and at k = 1 (high half),
        // so each D = C + A(row, 0) + A(row, 1) = 2^24 + 2.
        const unsigned b0 = my_lane % 4 == 0 ? pack_f16x2(1.0f, 1.0f) : 0u;
        mma_16816(c, ones, b0, 0u);
        for (int j = 0; j < 4; ++j) got[my_lane][j] = c[j];
    });
    bool ok = true;
    for (int l = 0; l < 32; ++l)
        for (int j = 0; j < 4; ++j) ok &= got[l][j] == 16777218.0f;
    check(ok, "mma_16816 rounds c + the exact sum once: 2^24 + 1 + 1 = 2^24 + 2");
}

// ---- (b) movmatrix --------------------------------------------------------------------------

static void check_movmatrix() {
    auto tag = [](int r, int c) { return (unsigned)(0xa000 + 0x10 * r + c); };
    unsigned got[32];
    run_warp([&] {
        const int l = my_lane, g = l / 4, q = l % 4;
        got[l] = movmatrix_trans(tag(g, 2 * q) | (tag(g, 2 * q + 1) << 16));
    });
    bool ok = true;
    for (int l = 0; l < 32; ++l) {
        const int g = l / 4, q = l % 4;
        ok &= lo16(got[l]) == tag(2 * q, g) && hi16(got[l]) == tag(2 * q + 1, g);
    }
    check(ok, "movmatrix_trans: low half M[2q][g], high half M[2q+1][g]");
    // Twice is the identity.
    unsigned twice[32];
    run_warp([&] {
        const int l = my_lane, g = l / 4, q = l % 4;
        twice[l] = movmatrix_trans(movmatrix_trans(tag(g, 2 * q) | (tag(g, 2 * q + 1) << 16)));
    });
    ok = true;
    for (int l = 0; l < 32; ++l) ok &= twice[l] == (tag(l / 4, 2 * (l % 4)) | (tag(l / 4, 2 * (l % 4) + 1) << 16));
    check(ok, "movmatrix_trans twice is the identity");
}

// ---- (c) f16 arithmetic ---------------------------------------------------------------------

static bool is_f16_nan(unsigned h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0; }

static void check_f16_edges() {
    struct Case { double x; unsigned want; const char *what; };
    const Case cases[] = {
        {65504.0, 0x7bff, "65504, the largest f16"},
        {65519.0, 0x7bff, "65519 rounds down to 65504"},
        {65520.0, 0x7c00, "65520, the tie above 65504, rounds to even = infinity"},
        {1e10, 0x7c00, "1e10 overflows to infinity"},
        {-1e10, 0xfc00, "-1e10 overflows to -infinity"},
        {INFINITY, 0x7c00, "infinity"},
        {0x1p-24, 0x0001, "2^-24, the smallest subnormal"},
        {0x1p-25, 0x0000, "2^-25, the tie between 0 and 2^-24, rounds to 0"},
        {0x1.000002p-25, 0x0001, "just above 2^-25 rounds to 2^-24"},
        {0x3p-25, 0x0002, "3·2^-25, a subnormal tie, rounds to even 2·2^-24"},
        {-0x1p-26, 0x8000, "-2^-26 rounds to -0"},
        {1023 * 0x1p-24, 0x03ff, "the largest subnormal"},
        {1023.5 * 0x1p-24, 0x0400, "the tie between the largest subnormal and 2^-14 rounds to 2^-14"},
        {0x1p-14, 0x0400, "2^-14, the smallest normal"},
        {1.0 + 0x1p-11, 0x3c00, "1 + 2^-11, a tie, rounds to even 1"},
        {1.0 + 3 * 0x1p-11, 0x3c02, "1 + 3·2^-11, a tie, rounds to even 1 + 2^-9"},
        {2049.0, 0x6800, "2049, a tie, rounds to even 2048"},
        {2051.0, 0x6802, "2051, a tie, rounds to even 2052"},
        {-0.0, 0x8000, "-0 keeps its sign"},
        {-2.0, 0xc000, "-2"},
    };
    bool ok = true;
    for (const Case &c : cases) {
        const float f = (float)c.x;
        if ((double)f != c.x) { printf("  test value %s is not a float\n", c.what); ok = false; continue; }
        const unsigned p = pack_f16x2(f, 0.0f), ph = pack_f16x2(0.0f, f);
        if (lo16(p) != c.want || hi16(p) != 0 || hi16(ph) != c.want || lo16(ph) != 0) {
            printf("  pack_f16x2(%a): got %04x want %04x (%s)\n", c.x, lo16(p), c.want, c.what);
            ok = false;
        }
    }
    ok &= is_f16_nan(lo16(pack_f16x2(NAN, 1.0f))) && hi16(pack_f16x2(NAN, 1.0f)) == 0x3c00;
    ok &= pack_f16x2(1.0f, -2.0f) == 0xc0003c00u;
    check(ok, "pack_f16x2 on edge values (ties, subnormals, 65504, overflow, NaN, lo/hi order)");

    auto h2 = [](unsigned lo, unsigned hi) { return lo | (hi << 16); };
    struct Op2 { unsigned got, want; const char *what; };
    const Op2 ops[] = {
        {hsub2(h2(0x7bff, 0x3c00), h2(0xfbff, 0x3c00)), h2(0x7c00, 0x0000), "hsub2: 65504 - (-65504) = inf; 1 - 1 = +0"},
        {hsub2(h2(0x0400, 0x6800), h2(0x0001, 0xbc00)), h2(0x03ff, 0x6800), "hsub2: 2^-14 - 2^-24 = largest subnormal; 2048 - (-1) = 2049 -> 2048"},
        {hsub2(h2(0x6803, 0x8000), h2(0xbc00, 0x0000)), h2(0x6804, 0x8000), "hsub2: 2054 - (-1) = 2055 -> 2056 (tie to even); -0 - 0 = -0"},
        {hsub2(h2(0x6802, 0x0000), h2(0xbc00, 0x0000)), h2(0x6802, 0x0000), "hsub2: 2052 - (-1) = 2053 -> 2052 (tie to even); 0 - 0 = +0"},
        {hsub2(h2(0x7c00, 0x3c00), h2(0x7c00, 0x3c01)), h2(0x7fff, 0x9400), "hsub2: inf - inf = NaN; 1 - (1 + 2^-10) = -2^-10"},
        {hadd2(h2(0x7bff, 0x7bff), h2(0x4c00, 0x4800)), h2(0x7c00, 0x7bff), "hadd2: 65504 + 16 = inf (tie to even); 65504 + 8 = 65504"},
        {hadd2(h2(0x0001, 0x3c00), h2(0x0001, 0x1000)), h2(0x0002, 0x3c00), "hadd2: 2^-24 + 2^-24; 1 + 2^-11 = 1 (tie to even)"},
        {hmul2(h2(0x0400, 0x0400), h2(0x1400, 0x1000)), h2(0x0001, 0x0000), "hmul2: 2^-14·2^-10 = 2^-24; 2^-14·2^-11 = 2^-25 -> 0 (tie to even)"},
        {hmul2(h2(0x0600, 0x5c00), h2(0x1400, 0x5c00)), h2(0x0002, 0x7c00), "hmul2: 1.5·2^-24 -> 2·2^-24 (tie to even); 256·256 = inf"},
        {hmul2(h2(0x3c01, 0xbc00), h2(0x3c01, 0x0000)), h2(0x3c02, 0x8000), "hmul2: (1 + 2^-10)^2 -> 1 + 2^-9; -1·0 = -0"},
        {hmul2(h2(0x7bff, 0x3bff), h2(0x3c00, 0x7bff)), h2(0x7bff, 0x7bfe), "hmul2: 65504·1; (1 - 2^-11)·65504 = 65472"},
    };
    ok = true;
    for (const Op2 &o : ops) {
        const bool same = (o.got == o.want) ||
                          (is_f16_nan(lo16(o.want)) && is_f16_nan(lo16(o.got)) && hi16(o.got) == hi16(o.want));
        if (!same) { printf("  %s: got %08x want %08x\n", o.what, o.got, o.want); ok = false; }
    }
    check(ok, "hadd2 / hsub2 / hmul2 on edge values");
    ok = f16_lo(0x7bffu) == 65504.0f && f16_hi(0x00010000u) == 0x1p-24f && f16_lo(0xfc00u) == -INFINITY &&
         f16_hi(0xc0003c00u) == -2.0f && f16_lo(0xc0003c00u) == 1.0f && std::signbit(f16_lo(0x8000u));
    check(ok, "f16_lo / f16_hi");
}

#ifdef __FLT16_MAX__
// GCC's _Float16 conversions round to nearest even, and its arithmetic computes in float and
// rounds once to f16, which is correctly rounded for +, -, · of two f16 values (24 >= 2·11 + 2
// bits), so it is an independent reference.
static unsigned f16_bits(_Float16 h) { unsigned short u; memcpy(&u, &h, 2); return u; }
static _Float16 from_bits(unsigned u) { unsigned short s = (unsigned short)u; _Float16 h; memcpy(&h, &s, 2); return h; }
static bool same_f16(unsigned a, unsigned b) { return a == b || (is_f16_nan(a) && is_f16_nan(b)); }

static void check_f16_against_compiler(std::mt19937 &rng) {
    bool ok = true;
    int shown = 0;
    // Every 4099th float bit pattern (about a million, all exponents) and, densely, every float
    // in [2^-26, 2^17), where the f16 rounding boundaries lie, with stride 61.
    auto one = [&](unsigned u) {
        const float f = __uint_as_float(u);
        const unsigned want = f16_bits((_Float16)f), got = lo16(pack_f16x2(f, 0.0f));
        if (!same_f16(got, want)) { ok = false; if (shown++ < 5) printf("  pack_f16x2(%a): got %04x want %04x\n", f, got, want); }
    };
    for (uint64_t u = 0; u < (1ull << 32); u += 4099) one((unsigned)u);
    for (unsigned u = 0x32800000u; u < 0x48000000u; u += 61) one(u);
    check(ok, "pack_f16x2 = _Float16 conversion on 1.6 million floats");
    ok = true;
    shown = 0;
    std::uniform_int_distribution<unsigned> bits(0, 0xffff);
    for (int i = 0; i < 300000; ++i) {
        const unsigned a = bits(rng), b = bits(rng);
        const _Float16 x = from_bits(a), y = from_bits(b);
        const unsigned s = hadd2(a, b), d = hsub2(a, b), p = hmul2(a, b);
        const unsigned ws = f16_bits((_Float16)(x + y)), wd = f16_bits((_Float16)(x - y)), wp = f16_bits((_Float16)(x * y));
        if (!same_f16(lo16(s), ws) || !same_f16(lo16(d), wd) || !same_f16(lo16(p), wp)) {
            ok = false;
            if (shown++ < 5) printf("  %04x op %04x: add %04x/%04x sub %04x/%04x mul %04x/%04x\n", a, b, lo16(s), ws, lo16(d), wd, lo16(p), wp);
        }
        // The high halves, with the operands swapped between halves.
        const unsigned s2 = hadd2(b << 16, a << 16), p2 = hmul2(b << 16 | a, a << 16 | b);
        ok &= same_f16(hi16(s2), f16_bits((_Float16)(y + x))) && same_f16(hi16(p2), f16_bits((_Float16)(y * x))) &&
              same_f16(lo16(p2), wp);
    }
    check(ok, "hadd2 / hsub2 / hmul2 = _Float16 arithmetic on 300000 random f16 pairs");
}
#endif

int main() {
    std::mt19937 rng(20261205);
    check_ldmatrix_raw();
    check_mma(rng, 20);
    check_mma_rounding();
    check_movmatrix();
    check_f16_edges();
#ifdef __FLT16_MAX__
    check_f16_against_compiler(rng);
#else
    printf("skip _Float16 cross-check (this compiler has no _Float16)\n");
#endif
    printf("%s: %d failing checks\n", failures ? "FAIL" : "ok", failures);
    return failures != 0;
}
