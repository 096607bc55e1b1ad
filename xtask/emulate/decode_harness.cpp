// decode_harness.cpp — chapter 7's two decode kernels run on the CPU (shim.h) against the f64
// reference the GPU tests use, on cases written by the ignored test `emulation_cases` of
// chapters/ch07-kv-cache/tests (see README.md). PIPELINED=1 runs the pipelined kernel, MMA=1 the
// tensor-core kernel (quantised caches with INT8 key groups a multiple of 16; other cases are
// skipped).
#include "shim.h"
#include "decode_host.cu"
#include <cstdio>
#include <fstream>
#include <string>
#include <functional>
#include <algorithm>
#include <map>

template <class T> std::vector<T> readf(const std::string &p) {
    std::ifstream f(p, std::ios::binary | std::ios::ate);
    size_t n = f.tellg(); f.seekg(0);
    std::vector<T> v(n / sizeof(T) + 1);  // +1: never empty
    f.read((char *)v.data(), n);
    v.resize(n / sizeof(T));
    return v;
}
typedef void (*MainFn)(const float *, const unsigned char *, const unsigned char *, const float *, const float *,
                       const unsigned char *, const unsigned char *, const float *, const float *, const unsigned *,
                       float *, float *, float *, int, int, int, int, float);
std::map<std::string, MainFn> fns;
#define REG(E, D, G) fns[#E "_" #D "_" #G] = ch07_decode_##E##_d##D##_g##G;
#define REGG(E, D) REG(E, D, 1) REG(E, D, 2) REG(E, D, 3) REG(E, D, 4)
#define REGD(E) REGG(E, 64) REGG(E, 128)
std::map<std::string, MainFn> pfns;
#define PREG(E, D, G) pfns[#E "_" #D "_" #G] = ch07_decode_pipelined_##E##_d##D##_g##G;
#define PREGG(E, D) PREG(E, D, 1) PREG(E, D, 2) PREG(E, D, 3) PREG(E, D, 4)
#define PREGD(E) PREGG(E, 64) PREGG(E, 128)
std::map<std::string, MainFn> mfns;
#define MREG(E, D, G) mfns[#E "_" #D "_" #G] = ch07_decode_mma_##E##_d##D##_g##G;
#define MREGG(E, D) MREG(E, D, 1) MREG(E, D, 2) MREG(E, D, 3) MREG(E, D, 4)
#define MREGD(E) MREGG(E, 64) MREGG(E, 128)

// The combine's block size as the host picks it (launch.rs, combine_threads): 16 channels times
// a power of two of split lanes from 2 to 32, about 8 splits a lane.
int combine_threads(int splits) {
    int lanes = 1;
    while (lanes < (splits + 7) / 8) lanes *= 2;
    return COMBINE_SLICE * std::min(std::max(lanes, 2), COMBINE_MAX_LANES);
}

template <class F> void run_grid(Dim grid, int threads, F body) {
    gridDim = grid; blockDim = {(unsigned)threads, 1, 1};
    for (unsigned z = 0; z < grid.z; ++z) for (unsigned y = 0; y < grid.y; ++y) for (unsigned x = 0; x < grid.x; ++x) {
        std::barrier<> bar(threads);
        block_bar = &bar;
        std::vector<WarpX> warps((threads + 31) / 32);
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t)
            ts.emplace_back([&, t] {
                threadIdx = {(unsigned)t, 0, 0}; blockIdx = {x, y, z};
                my_warp = &warps[t / 32]; my_lane = t % 32;
                body();
            });
        for (auto &t : ts) t.join();
    }
}

int main(int argc, char **argv) {
    REGD(bf16) REGD(int8) REGD(fp8) REGD(nvfp4)
    PREGD(bf16) PREGD(int8) PREGD(fp8) PREGD(nvfp4)
    MREGD(int8) MREGD(fp8) MREGD(nvfp4)
    static std::vector<unsigned char> dyn(232 * 1024);
    g_dyn_smem = dyn.data();
    const bool pipelined = getenv("PIPELINED") != nullptr, mma = getenv("MMA") != nullptr;
    const char *names[] = {"bf16", "int8", "fp8", "nvfp4"};
    int failures = 0;
    for (int i = 1; i < argc; ++i) {
        std::string dir = argv[i];
        int eid, D, G, kvh, batch, cap, kg, splits, chunk;
        FILE *m = fopen((dir + "/meta.txt").c_str(), "r");
        fscanf(m, "%d %d %d %d %d %d %d %d %d", &eid, &D, &G, &kvh, &batch, &cap, &kg, &splits, &chunk);
        fclose(m);
        if (mma && (eid == 0 || (eid == 1 && kg % 16 != 0))) continue;  // not the tensor-core kernel's
        auto q = readf<float>(dir + "/q");
        auto kc = readf<unsigned char>(dir + "/kc"), vc = readf<unsigned char>(dir + "/vc");
        auto ks = readf<float>(dir + "/ks"), vs = readf<float>(dir + "/vs");
        auto kb = readf<unsigned char>(dir + "/kb"), vb = readf<unsigned char>(dir + "/vb");
        auto kt = readf<float>(dir + "/kt"), vt = readf<float>(dir + "/vt");
        auto len = readf<unsigned>(dir + "/len");
        auto want = readf<double>(dir + "/want"), tol = readf<double>(dir + "/tol");
        std::fill(dyn.begin(), dyn.end(), 0xFF);
        int qh = kvh * G;
        std::vector<float> out(batch * qh * D, 12345.0f), acc(batch * qh * splits * D, NAN), ml(batch * qh * splits * 2, NAN);
        auto fn = (mma ? mfns : pipelined ? pfns : fns)[std::string(names[eid]) + "_" + std::to_string(D) + "_" + std::to_string(G)];
        float qk = (float)(1.4426950408889634 / std::sqrt((double)D));
        auto nz = [](auto &v) { return v.empty() ? nullptr : v.data(); };
        run_grid({(unsigned)splits, (unsigned)kvh, (unsigned)batch}, 128, [&] {
            fn(q.data(), kc.data(), vc.data(), nz(ks), nz(vs), nz(kb), nz(vb), nz(kt), nz(vt), len.data(),
               splits > 1 ? acc.data() : nullptr, splits > 1 ? ml.data() : nullptr, out.data(), kvh, cap, chunk, kg, qk);
        });
        if (splits > 1)
            run_grid({(unsigned)(batch * qh), (unsigned)(D / COMBINE_SLICE), 1}, combine_threads(splits), [&] {
                ch07_decode_combine(acc.data(), ml.data(), len.data(), out.data(), qh, D, splits, chunk);
            });
        double worst = 0; int bad = 0;
        for (int b = 0; b < batch; ++b) for (int h = 0; h < qh; ++h) for (int d = 0; d < D; ++d) {
            size_t idx = ((size_t)b * qh + h) * D + d;
            double err = std::fabs(out[idx] - want[idx]);
            double t = tol[b * qh + h];
            if (len[b] == 0 ? out[idx] != 0.0f : !(err <= t)) {
                if (bad < 3) printf("  %s b%d h%d d%d got %g want %g tol %g\n", dir.c_str(), b, h, d, out[idx], want[idx], t);
                ++bad;
            }
            if (t > 0) worst = std::max(worst, err / t);
        }
        printf("%s %s D%d G%d kvh%d batch%d splits%d chunk%d kg%d: %s (worst err/tol %.3f)\n", dir.c_str(), names[eid], D, G, kvh,
               batch, splits, chunk, kg, bad ? "FAIL" : "ok", worst);
        failures += bad != 0;
    }
    printf("%d failing cases\n", failures);
    return failures != 0;
}
