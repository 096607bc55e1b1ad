// softmax_harness.cpp — chapter 5's fused softmax kernels run on the CPU (shim.h) against an
// f64 softmax, for the warp (lane groups of 8, 16, 32; two rows per group) and block shapes,
// f32 and bf16, every mask kind and odd row counts, and the 1024-thread block experiment
// (block1024, 16 values a thread, rows of 8200 and 16384 keys) and the persistent prefetching block
// (block_prefetch, bf16, a grid smaller than the row count; see README.md).
#include "shim.h"
#include "softmax_host.cu"
#include <cstdio>
#include <random>
#include <functional>
typedef void (*Fn)(const float*, float*, long long, int, int, int, float, int, const int*, int);
typedef void (*FnB)(const bf16_t*, bf16_t*, long long, int, int, int, float, int, const int*, int);
template <class F> void run_grid(Dim grid, int threads, F body) {
    gridDim = grid; blockDim = {(unsigned)threads, 1, 1};
    for (unsigned x = 0; x < grid.x; ++x) {
        std::barrier<> bar(threads); block_bar = &bar;
        std::vector<WarpX> warps((threads + 31) / 32);
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { threadIdx = {(unsigned)t,0,0}; blockIdx = {x,0,0}; my_warp = &warps[t/32]; my_lane = t%32; body(); });
        for (auto &t : ts) t.join();
    }
}
int fails = 0;
// kernel, V, lanes (0 = block), threads for block
void check(const char* name, Fn fn, bool isblock, int V, int lanes, int rows_nq, int nk, int causal, int window, bool pad) {
    // One sequence of 7 queries gives an odd number of rows: half a pair for the last lane group.
    int B = rows_nq == 7 ? 1 : 2, H = 1, nq = rows_nq; long long rows = (long long)B * H * nq;
    std::mt19937 rng(nk * 131 + nq); std::normal_distribution<float> nd(0, 16);
    std::vector<float> x(rows * nk), y(rows * nk, NAN);
    for (auto &v : x) v = nd(rng);
    std::vector<int> kl = {std::max(1, nk / 2), 0};
    const int* klp = pad ? kl.data() : nullptr;
    float scale = 0.125f;
    if (isblock) {
        int threads = ((nk + V - 1) / V + 31) / 32 * 32;
        run_grid({(unsigned)rows, 1, 1}, threads, [&] { fn(x.data(), y.data(), rows, H, nq, nk, scale, causal, klp, window); });
    } else {
        int R = V <= 8 ? 2 : 1;
        int rpb = 4 * 32 / lanes * R;
        run_grid({(unsigned)((rows + rpb - 1) / rpb), 1, 1}, 128, [&] { fn(x.data(), y.data(), rows, H, nq, nk, scale, causal, klp, window); });
    }
    int bad = 0;
    for (long long r = 0; r < rows; ++r) {
        long long b = r / nq, i = r % nq;
        long long end = i + 1 + nk - nq;
        long long hi = causal ? std::clamp<long long>(end, 0, nk) : nk;
        if (pad) hi = std::min<long long>(hi, kl[b]);
        long long lo = window > 0 ? std::clamp<long long>(end - window, 0, nk) : 0;
        if (hi < lo) hi = lo;
        double m = -INFINITY; for (long long j = lo; j < hi; ++j) m = std::max(m, (double)x[r*nk+j] * scale);
        double s = 0; for (long long j = lo; j < hi; ++j) s += std::exp((double)x[r*nk+j]*scale - m);
        for (long long j = 0; j < nk; ++j) {
            double want = (j >= lo && j < hi) ? std::exp((double)x[r*nk+j]*scale - m) / s : 0.0;
            double got = y[r*nk+j];
            if (!(std::fabs(got - want) <= 3e-5 * std::fabs(want) + (want == 0 ? 0 : 1e-30)) ) { if (bad < 2) printf("  %s nk %d nq %d r %lld j %lld got %g want %g\n", name, nk, nq, r, j, got, want); ++bad; }
        }
    }
    printf("%s nk %d nq %d causal %d window %d pad %d: %s\n", name, nk, nq, causal, window, pad, bad ? "FAIL" : "ok");
    fails += bad != 0;
}

inline float bf(unsigned short b) { return __uint_as_float((unsigned)b << 16); }
// grid 0: a block per row; grid > 0: a persistent prefetching block, `grid` blocks looping over
// the rows, with its `stages` row buffers of dynamic shared memory filled with NaN patterns first
// (a vector read without having been copied shows up as a wrong value).
void checkb(const char* name, FnB fn, int V, int nq, int nk, int causal, int window, bool pad, unsigned grid = 0,
            int stages = 2, int fixed_threads = 0) {
    int B = 2, H = 1; long long rows = (long long)B * H * nq;
    std::mt19937 rng(nk * 7 + nq); std::normal_distribution<float> nd(0, 16);
    std::vector<unsigned short> x(rows * nk), y(rows * nk, 0x7fc0);
    for (auto &v : x) v = host_bf16(nd(rng));
    std::vector<int> kl = {std::max(1, nk / 2), 0};
    const int* klp = pad ? kl.data() : nullptr;
    float scale = 0.125f;
    int threads = fixed_threads ? fixed_threads : ((nk + V - 1) / V + 31) / 32 * 32;
    std::vector<uint4> buffers(grid ? stages * nk / 8 : 0, uint4{0x7fc07fc0u, 0x7fc07fc0u, 0x7fc07fc0u, 0x7fc07fc0u});
    g_dyn_smem = reinterpret_cast<unsigned char*>(buffers.data());
    run_grid({grid ? grid : (unsigned)rows, 1, 1}, threads, [&] { fn(x.data(), y.data(), rows, H, nq, nk, scale, causal, klp, window); });
    int bad = 0;
    for (long long r = 0; r < rows; ++r) {
        long long b = r / nq, i = r % nq, end = i + 1 + nk - nq;
        long long hi = causal ? std::clamp<long long>(end, 0, nk) : nk;
        if (pad) hi = std::min<long long>(hi, kl[b]);
        long long lo = window > 0 ? std::clamp<long long>(end - window, 0, nk) : 0;
        if (hi < lo) hi = lo;
        double m = -INFINITY; for (long long j = lo; j < hi; ++j) m = std::max(m, (double)bf(x[r*nk+j]) * scale);
        double s = 0; for (long long j = lo; j < hi; ++j) s += std::exp((double)bf(x[r*nk+j])*scale - m);
        for (long long j = 0; j < nk; ++j) {
            double want = (j >= lo && j < hi) ? std::exp((double)bf(x[r*nk+j])*scale - m) / s : 0.0;
            double got = bf(y[r*nk+j]);
            if (!(std::fabs(got - want) <= 3.93e-3 * std::fabs(want)) || (want == 0 && got != 0)) { if (bad < 2) printf("  %s nk %d r %lld j %lld got %g want %g\n", name, nk, r, j, got, want); ++bad; }
        }
    }
    printf("%s nk %d nq %d causal %d window %d pad %d: %s\n", name, nk, nq, causal, window, pad, bad ? "FAIL" : "ok");
    fails += bad != 0;
}
int run_bf16() {
    struct KB { const char* n; FnB f; int V, nk; };
    KB kb[] = {{"block_bf16_vec_v16", ch05_softmax_block_bf16_vec_v16, 16, 1032}, {"block_bf16_vec_v32", ch05_softmax_block_bf16_vec_v32, 32, 8200}, {"block_bf16_vec_v64", ch05_softmax_block_bf16_vec_v64, 64, 16392}};
    for (auto &k : kb)
        for (int nq : {1, 3})
            for (auto [c, w, p] : std::vector<std::tuple<int,int,bool>>{{0,0,false},{1,0,false},{1,3,false},{0,0,true},{1,0,true}})
                checkb(k.n, k.f, k.V, nq, k.nk, c, w, p);
    // The 1024-thread block: 8200 keys take 544 threads (the last warp partly past the row),
    // 16384 keys all 1024. Three queries: causal rows end inside the row; pad leaves batch 1 empty.
    KB wide[] = {{"block1024_bf16_vec_v16", ch05_softmax_block1024_bf16_vec_v16, 16, 8200},
                 {"block1024_bf16_vec_v16", ch05_softmax_block1024_bf16_vec_v16, 16, 16384}};
    for (auto &k : wide)
        for (auto [c, w, p] : std::vector<std::tuple<int,int,bool>>{{0,0,false},{1,0,false},{1,3,false},{0,0,true},{1,3,true}})
            checkb(k.n, k.f, k.V, 3, k.nk, c, w, p);
    // The persistent prefetching blocks, two and three row buffers: 8200 keys take 288 threads
    // (the last vector of a warp past the row's end), 16384 all 512. 7 queries × 2 = 14 rows over
    // 4 blocks: blocks 0 and 1 take 4 rows, 2 and 3 take 3 (a row count not a multiple of the
    // grid; 4 rows refill every buffer of either kernel); a single block takes all 14 through
    // every buffer. Pad leaves batch 1 with no visible key.
    struct KP { const char* n; FnB f; int stages; };
    KP kp[] = {{"block_prefetch_bf16_vec_v32", ch05_softmax_block_prefetch_bf16_vec_v32, 2},
               {"block_prefetch3_bf16_vec_v32", ch05_softmax_block_prefetch3_bf16_vec_v32, 3}};
    for (auto &k : kp)
        for (int nk : {8200, 16384})
            for (unsigned grid : {4u, 1u})
                for (auto [c, w, p] : std::vector<std::tuple<int,int,bool>>{{0,0,false},{1,0,false},{1,3,false},{0,0,true},{1,3,true}})
                    checkb(k.n, k.f, 32, 7, nk, c, w, p, grid, k.stages);
    // The two-pass block: its threads as the host plans them (⌈Nk / 8⌉ in whole warps, at most
    // 512): 1032 keys one vector a thread over 160 threads, 8200 a second round for one thread,
    // 16384 two rounds of U = 2, 40000 ten vectors a thread (no register-holding kernel takes it).
    for (int nk : {1032, 8200, 16384, 40000}) {
        int threads = std::min(512, ((nk / 8) + 31) / 32 * 32);
        for (auto [c, w, p] : std::vector<std::tuple<int,int,bool>>{{0,0,false},{1,0,false},{1,3,false},{0,0,true},{1,3,true}})
            checkb("twopass_bf16_vec", ch05_softmax_twopass_bf16_vec, 8, 3, nk, c, w, p, 0, 2, threads);
    }
    return 0;
}
int run_f32() {
    struct K { const char* n; Fn f; bool blk; int V, lanes, nk; };
    K ks[] = {
        {"warp_f32_scalar_v4_lanes8", ch05_softmax_warp_f32_scalar_v4_lanes8, false, 4, 8, 3},
        {"warp_f32_scalar_v4_lanes16", ch05_softmax_warp_f32_scalar_v4_lanes16, false, 4, 16, 33},
        {"warp_f32_vec_v4", ch05_softmax_warp_f32_vec_v4, false, 4, 32, 128},
        {"warp_f32_vec_v4_lanes16", ch05_softmax_warp_f32_vec_v4_lanes16, false, 4, 16, 64},
        {"warp_f32_vec_v8", ch05_softmax_warp_f32_vec_v8, false, 8, 32, 200},
        {"warp_f32_scalar_v8", ch05_softmax_warp_f32_scalar_v8, false, 8, 32, 255},
        {"warp_f32_vec_v32", ch05_softmax_warp_f32_vec_v32, false, 32, 32, 1000},
        {"block_f32_vec_v16", ch05_softmax_block_f32_vec_v16, true, 16, 0, 1028},
        {"block_f32_scalar_v16", ch05_softmax_block_f32_scalar_v16, true, 16, 0, 1023},
    };
    for (auto &k : ks)
        for (int nq : {1, 3, 7, k.nk + 2})
            for (auto [c, w, p] : std::vector<std::tuple<int,int,bool>>{{0,0,false},{1,0,false},{1,3,false},{0,0,true},{1,0,true}})
                check(k.n, k.f, k.blk, k.V, k.lanes, nq, k.nk, c, w, p);
    for (int nk : {8200, 16384})
        for (auto [c, w, p] : std::vector<std::tuple<int,int,bool>>{{0,0,false},{1,0,false},{1,3,true}})
            check("block1024_f32_vec_v16", ch05_softmax_block1024_f32_vec_v16, true, 16, 0, 3, nk, c, w, p);
    return 0;
}
int main() {
    run_f32();
    run_bf16();
    printf("%d failing\n", fails);
    return fails != 0;
}
