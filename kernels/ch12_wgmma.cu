// ch12_wgmma.cu — rung 6 of chapter 12's ladder: Hopper's warpgroup MMA (wgmma, sm_90a).
//
// Computes out = softmax(scale·Q Kᵀ + mask) V and lse (conventions in ch12_mma_common.cuh).
//
// What is new against rung 5. A warpgroup — 4 consecutive warps, 128 threads — issues one
// wgmma.mma_async for a 64 × N × 16 product, N up to 256, that the tensor cores run
// asynchronously while the threads go on; mma.sync did 16 × 8 × 16 per warp and waited. The B
// operand (and A, for S = Q Kᵀ) is read by the tensor cores straight from shared memory through
// a 64-bit *matrix descriptor*: no ldmatrix, no registers spent on operands. For O += P V, A = P
// comes from registers (the S accumulators, packed to bf16 exactly as in rungs 2–5: the wgmma
// accumulator layout of each warp is the mma.sync one), and V is read "N-major" — the hardware
// transposes it, as ldmatrix.trans did.
//
// Shared memory must be in the layout the descriptors describe: the 128-byte swizzle. A tile of
// R rows × D columns is stored as D/64 panels of R rows × 64 elements (128 bytes per row); in
// each panel, 16-byte chunk c of row r sits at chunk c ^ (r mod 8), and 8 rows make a 1024-byte
// swizzle atom (so every tile starts 1024-byte aligned). K-major operands (Q, K): the rows are
// M or N, stride between 8-row groups (SBO) 1024 bytes; a k step of 16 columns moves the start
// address 32 bytes within the panel (the hardware applies the XOR to the final address) and
// panel p starts p·R·128 bytes in. N-major V: rows are keys (the K of P V), 8-key groups 1024
// bytes apart (SBO), the 64-wide d panels R·128 bytes apart (LBO); a k step of 16 keys moves the
// start 2048 bytes. cp.async writes through the generic proxy and wgmma reads through the async
// proxy, hence fence.proxy.async between a tile's arrival and the barrier before its use.
//
// Launch: grid (⌈Nq/BR⌉, B·H), NWG warpgroups = 128·NWG threads, BR = 64·NWG query rows (64 per
// warpgroup, 16 per warp as before), BC keys per tile; K/V double-buffered with cp.async as in
// rung 3. Causal launches visit query tiles longest first.
// Shared memory: Q BR×D + 2 stages × (K + V) BC×D, bf16 = 2·(BR + 4·BC)·D bytes
// (d64: BR 128, BC 128 → 81 920; d128: BR 128, BC 64 → 98 304).
// Bytes moved (HBM/L2): Q and out once (2·B·H·Nq·D·2), K and V once per query tile
// (2·B·H·⌈Nq/BR⌉·Nk·D·2, about half when causal), lse 4·B·H·Nq.
// Needs sm_90a (compiled with --gpu-architecture=sm_90a); the host refuses other devices.

// ANCHOR: descriptors
// The tile layout of the 128-byte swizzle, in elements, for a tile of ROWS rows.
template <int D, int ROWS> struct Swizzle128Layout {
    static_assert(D % 64 == 0, "128-byte panels hold 64 bf16");
    __device__ static int at(int row, int col) {
        return (col >> 6) * ROWS * 64 + row * 64 + ((((col >> 3) & 7) ^ (row & 7)) << 3) + (col & 7);
    }
};

// A shared-memory matrix descriptor: start address, leading- and stride-byte offsets (all in
// 16-byte units), swizzle mode 1 = 128 bytes (bits 62–63); base offset 0 (1024-aligned atoms).
__device__ __forceinline__ unsigned long long smem_desc(const bf16_t *start, unsigned lbo_bytes, unsigned sbo_bytes) {
    const unsigned long long addr = smem_u32(start);
    return ((addr & 0x3FFFF) >> 4) | ((unsigned long long)(lbo_bytes >> 4) << 16) |
           ((unsigned long long)(sbo_bytes >> 4) << 32) | (1ull << 62);
}

// ANCHOR_END: descriptors
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// The four wgmma shapes this file uses. Inline PTX names every accumulator register, so the
// operand lists are written out (generated once by a loop; nothing else differs between them).
// D(64×64) (+)= A(64×16, shared, K-major) · B(16×64, shared, K-major).
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[8][4], unsigned long long a_desc,
                                              unsigned long long b_desc, int accumulate) {
    asm volatile(
        "{ .reg .pred p; setp.ne.b32 p, %34, 0; "
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "%32, %33, p, 1, 1, 0, 0; }"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
        : "l"(a_desc), "l"(b_desc), "r"(accumulate));
}

// D(64×64) (+)= A(64×16, registers) · B(16×64, shared, N-major: transposed by the hardware).
__device__ __forceinline__ void wgmma_rs_n64(float (&d)[8][4], const unsigned (&a)[4],
                                              unsigned long long b_desc, int accumulate) {
    asm volatile(
        "{ .reg .pred p; setp.ne.b32 p, %37, 0; "
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1, 1; }"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate));
}

// D(64×128) (+)= A(64×16, shared, K-major) · B(16×128, shared, K-major).
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[16][4], unsigned long long a_desc,
                                              unsigned long long b_desc, int accumulate) {
    asm volatile(
        "{ .reg .pred p; setp.ne.b32 p, %66, 0; "
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "%64, %65, p, 1, 1, 0, 0; }"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
          "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
          "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
          "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
          "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
          "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
          "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
          "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
          "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
        : "l"(a_desc), "l"(b_desc), "r"(accumulate));
}

// D(64×128) (+)= A(64×16, registers) · B(16×128, shared, N-major: transposed by the hardware).
__device__ __forceinline__ void wgmma_rs_n128(float (&d)[16][4], const unsigned (&a)[4],
                                              unsigned long long b_desc, int accumulate) {
    asm volatile(
        "{ .reg .pred p; setp.ne.b32 p, %69, 0; "
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
        "{%64, %65, %66, %67}, %68, p, 1, 1, 1; }"
        : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),
          "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
          "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),
          "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
          "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
          "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
          "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
          "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]),
          "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]), "+f"(d[8][3]),
          "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]),
          "+f"(d[10][0]), "+f"(d[10][1]), "+f"(d[10][2]), "+f"(d[10][3]),
          "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]),
          "+f"(d[12][0]), "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]),
          "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
          "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]),
          "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]), "+f"(d[15][3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate));
}

template <int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 8][4], unsigned long long a, unsigned long long b, int acc) {
    if constexpr (N == 64) wgmma_ss_n64(d, a, b, acc);
    else wgmma_ss_n128(d, a, b, acc);
}
template <int N>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 8][4], const unsigned (&a)[4], unsigned long long b, int acc) {
    if constexpr (N == 64) wgmma_rs_n64(d, a, b, acc);
    else wgmma_rs_n128(d, a, b, acc);
}

template <int D, int BC, int NWG> __device__ __forceinline__ void wgmma_forward(LADDER_ARGS) {
    constexpr int BR = 64 * NWG, THREADS = 128 * NWG;
    using QLayout = Swizzle128Layout<D, BR>;
    using KVLayout = Swizzle128Layout<D, BC>;
    extern __shared__ __align__(1024) bf16_t smem[];
    bf16_t *q_tile = smem, *k_stages = q_tile + BR * D, *v_stages = k_stages + 2 * BC * D;
    if (dynamic_smem_bytes() < 2u * (BR + 4 * BC) * D || (smem_u32(smem) & 1023) != 0) __trap();

    const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, bh = blockIdx.y;
    const int q0 = (causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x) * BR, offset = nk - nq;
    const int warp_row = q0 + 64 * wg + 16 * warp; // first query row of this warp
    const bf16_t *q_head = q + (size_t)bh * nq * D, *k_head = k + (size_t)bh * nk * D,
                 *v_head = v + (size_t)bh * nk * D;
    const int tiles = key_tiles<BC>(q0, BR, nq, nk, causal);

    load_tile_async<BR, D, THREADS, QLayout>(q_tile, q_head, q0, nq);
    cp_async_commit();
    if (tiles > 0) {
        load_tile_async<BC, D, THREADS, KVLayout>(k_stages, k_head, 0, nk);
        load_tile_async<BC, D, THREADS, KVLayout>(v_stages, v_head, 0, nk);
    }
    cp_async_commit();

    // This warpgroup's 64 rows of Q: the A descriptors of the D/16 k steps never change.
    const bf16_t *q_wg = q_tile + 64 * wg * 64;
    float o[D / 8][4] = {}, m[2] = {neg_inf(), neg_inf()}, l[2] = {0.f, 0.f};
    for (int jt = 0; jt < tiles; ++jt) {
        const int key0 = jt * BC, stage = jt & 1;
        if (jt + 1 < tiles) {
            load_tile_async<BC, D, THREADS, KVLayout>(k_stages + (stage ^ 1) * BC * D, k_head, key0 + BC, nk);
            load_tile_async<BC, D, THREADS, KVLayout>(v_stages + (stage ^ 1) * BC * D, v_head, key0 + BC, nk);
        }
        cp_async_commit();
        cp_async_wait<1>(); // Q (first time) and tile j have landed
        fence_proxy_async(); // ... and are visible to the tensor cores' async proxy
        __syncthreads();
        const bf16_t *k_tile = k_stages + stage * BC * D, *v_tile = v_stages + stage * BC * D;

        // S = Q Kᵀ: D/16 asynchronous MMAs, then wait for all of them.
        float s[BC / 8][4];
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            const int panel = kk / 4, col = (kk % 4) * 16;
            const unsigned long long a = smem_desc(q_wg + panel * BR * 64 + col, 16, 1024);
            const unsigned long long b = smem_desc(k_tile + panel * BC * 64 + col, 16, 1024);
            wgmma_ss<BC>(s, a, b, kk > 0);
        }
        wgmma_commit();
        wgmma_wait_all();

        const TileMask mask{warp_row, key0, nk, causal, offset, tile_needs_mask<BC>(key0, q0, nk, causal, offset)};
        unsigned p[BC / 16][4];
        online_softmax<BC, D>(s, mask, m, l, o, p, scale_log2e, lane);

        // O += P V: BC/16 MMAs with P from registers and V N-major from shared memory.
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk)
            wgmma_rs<D>(o, p[kk], smem_desc(v_tile + kk * 16 * 64, BC * 128, 1024), 1);
        wgmma_commit();
        wgmma_wait_all();
        __syncthreads(); // this stage is refilled by the prefetch of iteration j + 1
    }
    cp_async_wait<0>();
    write_output<D>(o, m, l, out + (size_t)bh * nq * D, lse + (size_t)bh * nq, warp_row, nq, scale_log2e, lane);
}

// S = Q Kᵀ for one warpgroup: D/16 asynchronous MMAs into s, committed as one group (not waited).
template <int D, int BR, int BC>
__device__ __forceinline__ void issue_scores(float (&s)[BC / 8][4], const bf16_t *q_wg, const bf16_t *k_tile) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        const int panel = kk / 4, col = (kk % 4) * 16;
        wgmma_ss<BC>(s, smem_desc(q_wg + panel * BR * 64 + col, 16, 1024),
                     smem_desc(k_tile + panel * BC * 64 + col, 16, 1024), kk > 0);
    }
    wgmma_commit();
}
// O += P V for one warpgroup: BC/16 asynchronous MMAs, committed as one group (not waited).
template <int D, int BC>
__device__ __forceinline__ void issue_pv(float (&o)[D / 8][4], const unsigned (&p)[BC / 16][4], const bf16_t *v_tile) {
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < BC / 16; ++kk) wgmma_rs<D>(o, p[kk], smem_desc(v_tile + kk * 16 * 64, BC * 128, 1024), 1);
    wgmma_commit();
}

// Rung 7: rung 6 with the softmax of tile j + 1 overlapped with P V of tile j (FlashAttention-3's
// intra-warpgroup pipelining). Per iteration a warpgroup issues S' = Q K_{j+1}ᵀ, then O += P_j V_j,
// waits for S' only (wait_group 1) and computes its softmax while the tensor cores still run
// P_j V_j; the rescaling of O by 2^((m − m')·c) waits for that MMA (wait_group 0). K/V tiles need
// three stages: tile j + 1 is read and tile j's V is read while tile j + 2 arrives.
template <int D, int BC, int NWG> __device__ __forceinline__ void wgmma_overlap_forward(LADDER_ARGS) {
    constexpr int BR = 64 * NWG, THREADS = 128 * NWG, STAGES = 3, KV = BC * D;
    using QLayout = Swizzle128Layout<D, BR>;
    using KVLayout = Swizzle128Layout<D, BC>;
    extern __shared__ __align__(1024) bf16_t smem[];
    bf16_t *q_tile = smem, *k_stages = q_tile + BR * D, *v_stages = k_stages + STAGES * KV;
    if (dynamic_smem_bytes() < 2u * (BR + 2 * STAGES * BC) * D || (smem_u32(smem) & 1023) != 0) __trap();

    const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, bh = blockIdx.y;
    const int q0 = (causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x) * BR, offset = nk - nq;
    const int warp_row = q0 + 64 * wg + 16 * warp;
    const bf16_t *q_head = q + (size_t)bh * nq * D, *k_head = k + (size_t)bh * nk * D,
                 *v_head = v + (size_t)bh * nk * D;
    const int tiles = key_tiles<BC>(q0, BR, nq, nk, causal);
    // One commit group per tile. Past the last tile the copies still run, as zero fills (every
    // row ≥ Nk): a branch between an MMA's issue and its wait would make ptxas serialise them.
    auto prefetch = [&](int tile) {
        const int row0 = tile < tiles ? tile * BC : nk;
        load_tile_async<BC, D, THREADS, KVLayout>(k_stages + (tile % STAGES) * KV, k_head, row0, nk);
        load_tile_async<BC, D, THREADS, KVLayout>(v_stages + (tile % STAGES) * KV, v_head, row0, nk);
        cp_async_commit();
    };
    load_tile_async<BR, D, THREADS, QLayout>(q_tile, q_head, q0, nq);
    prefetch(0); // Q joins tile 0's group
    prefetch(1);
    const bf16_t *q_wg = q_tile + 64 * wg * 64;
    float o[D / 8][4] = {}, m[2] = {neg_inf(), neg_inf()}, l[2] = {0.f, 0.f}, alpha[2];
    unsigned p[BC / 16][4];
    if (tiles > 0) { // tile 0: scores and softmax, nothing to overlap yet
        cp_async_wait<1>();
        fence_proxy_async();
        __syncthreads();
        float s[BC / 8][4];
        issue_scores<D, BR, BC>(s, q_wg, k_stages);
        wgmma_wait_all();
        const TileMask mask{warp_row, 0, nk, causal, offset, tile_needs_mask<BC>(0, q0, nk, causal, offset)};
        softmax_exponentiate<BC>(s, mask, m, l, alpha, scale_log2e, lane);
        pack_probabilities<BC>(s, p);
    }
    // ANCHOR: overlap_loop
    // Steady state: every iteration has a next tile (the last one is peeled off below, so that
    // no branch separates the MMAs from their waits).
    for (int jt = 0; jt + 1 < tiles; ++jt) {
        cp_async_wait<0>(); // tile j + 1 (the only group in flight) has landed
        fence_proxy_async();
        // One barrier per tile: it publishes tile j + 1, and since every thread has passed
        // iteration j − 1 (whose P V was the last reader of stage (j + 2) mod 3), that stage can
        // be refilled with tile j + 2 in this iteration, while the tensor cores work.
        __syncthreads();
        float s[BC / 8][4];
        issue_scores<D, BR, BC>(s, q_wg, k_stages + ((jt + 1) % STAGES) * KV);
        issue_pv<D, BC>(o, p, v_stages + (jt % STAGES) * KV);
        prefetch(jt + 2);
        asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory"); // S' is ready; P V runs on
        const int key0 = (jt + 1) * BC;
        const TileMask mask{warp_row, key0, nk, causal, offset, tile_needs_mask<BC>(key0, q0, nk, causal, offset)};
        softmax_exponentiate<BC>(s, mask, m, l, alpha, scale_log2e, lane);
        // Only now may P and O be written: the tensor cores read an MMA's registers until it
        // completes, and the register allocator, which does not know that, would give P_{j+1}
        // the registers of P_j (ptxas then serialises the MMAs: warning C7513).
        wgmma_wait_all();
        rescale_rows<D>(o, alpha);
        pack_probabilities<BC>(s, p);
    }
    // ANCHOR_END: overlap_loop
    if (tiles > 0) { // the last tile: P V alone
        issue_pv<D, BC>(o, p, v_stages + ((tiles - 1) % STAGES) * KV);
        wgmma_wait_all();
    }
    cp_async_wait<0>();
    write_output<D>(o, m, l, out + (size_t)bh * nq * D, lse + (size_t)bh * nq, warp_row, nq, scale_log2e, lane);
}

extern "C" __global__ void __launch_bounds__(256, 1) ch12_wgmma_d64(LADDER_ARGS) {
    wgmma_forward<64, 128, 2>(LADDER_ARG_NAMES);
}
extern "C" __global__ void __launch_bounds__(256, 1) ch12_wgmma_d128(LADDER_ARGS) {
    wgmma_forward<128, 64, 2>(LADDER_ARG_NAMES);
}
// Rung 7 (and its tile shapes for the autotuner: ch12_wgmma_overlap_d{D}_br{BR}_bc{BC}).
#define WGMMA_OVERLAP(D, BR, BC)                                                                   \
    extern "C" __global__ void __launch_bounds__(2 * BR, 1) ch12_wgmma_overlap_d##D##_br##BR##_bc##BC(LADDER_ARGS) { \
        wgmma_overlap_forward<D, BC, BR / 64>(LADDER_ARG_NAMES);                                   \
    }
WGMMA_OVERLAP(64, 128, 64)
WGMMA_OVERLAP(64, 128, 128)
WGMMA_OVERLAP(64, 192, 128)
WGMMA_OVERLAP(128, 128, 64)
WGMMA_OVERLAP(128, 128, 128)
WGMMA_OVERLAP(128, 192, 64)
