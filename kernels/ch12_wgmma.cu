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
// Shared memory is in the 128-byte-swizzle layout of ch12_wgmma_common.cuh. cp.async writes
// through the generic proxy and wgmma reads through the async proxy, hence fence.proxy.async
// between a tile's arrival and the barrier before its use.
//
// Launch: grid (⌈Nq/BR⌉, B·H), NWG warpgroups = 128·NWG threads, BR = 64·NWG query rows (64 per
// warpgroup, 16 per warp as before), BC keys per tile; K/V double-buffered with cp.async as in
// rung 3. Causal launches visit query tiles longest first.
// Shared memory: Q BR×D + 2 stages × (K + V) BC×D, bf16 = 2·(BR + 4·BC)·D bytes
// (d64: BR 128, BC 128 → 81 920; d128: BR 128, BC 64 → 98 304).
// Bytes moved (HBM/L2): Q and out once (2·B·H·Nq·D·2), K and V once per query tile
// (2·B·H·⌈Nq/BR⌉·Nk·D·2, about half when causal), lse 4·B·H·Nq.
// Needs sm_90a (compiled with --gpu-architecture=sm_90a); the host refuses other devices.


template <int D, int BC, int NWG> __device__ __forceinline__ void wgmma_forward(LADDER_ARGS) {
    constexpr int BR = 64 * NWG, THREADS = 128 * NWG;
    using QLayout = Swizzle128Layout<D, BR>;
    using KVLayout = Swizzle128Layout<D, BC>;
    extern __shared__ __align__(1024) bf16_t smem[];
    bf16_t *q_tile = smem, *k_stages = q_tile + BR * D, *v_stages = k_stages + 2 * BC * D;
    if (dynamic_smem_bytes() < 2u * (BR + 4 * BC) * D || (smem_u32(smem) & 1023) != 0) __trap();

    const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, bh = blockIdx.y;
    const int q0 = first_query_row<BR>(causal), offset = nk - nq;
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
        issue_scores<D, BR, BC>(s, q_wg, k_tile);
        wgmma_wait_all();

        const TileMask mask{warp_row, key0, nk, causal, offset, tile_needs_mask<BC>(key0, q0, nk, causal, offset)};
        unsigned p[BC / 16][4];
        online_softmax<BC, D>(s, mask, m, l, o, p, scale_log2e, lane);

        // O += P V: BC/16 MMAs with P from registers and V N-major from shared memory.
        issue_pv<D, BC>(o, p, v_tile);
        wgmma_wait_all();
        __syncthreads(); // this stage is refilled by the prefetch of iteration j + 1
    }
    cp_async_wait<0>();
    write_output<D>(o, m, l, out + (size_t)bh * nq * D, lse + (size_t)bh * nq, warp_row, nq, scale_log2e, lane);
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
    const int q0 = first_query_row<BR>(causal), offset = nk - nq;
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
