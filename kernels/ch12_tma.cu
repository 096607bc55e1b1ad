// ch12_tma.cu — rungs 8 and 9 of chapter 12's ladder: rung 7's loop fed by the Tensor Memory
// Accelerator (TMA) from a producer warpgroup, with per-stage mbarriers instead of block-wide
// barriers (warp specialisation, as FlashAttention-3 does; sm_90a); rung 9 adds ping-pong
// scheduling of the two consumer warpgroups (wait_turn / pass_turn below).
//
// Computes out = softmax(scale·Q Kᵀ + mask) V and lse (conventions in ch12_mma_common.cuh).
//
// What is new against rung 7. Loads are no longer issued by every thread: one thread of a
// producer warpgroup asks the TMA, with one instruction per 64-column panel, for a whole tile
// (cp.async.bulk.tensor.3d), described by a tensor map that the host encodes once per buffer
// (cuTensorMapEncodeTiled: shape (D, N, B·H), box (64, rows, 1), the 128-byte swizzle, rows past N
// zero-filled). The TMA writes shared memory in exactly the swizzled layout wgmma reads, through
// the async proxy, and completes each tile on an mbarrier by counting its bytes
// (mbarrier::complete_tx). The two consumer warpgroups (64 query rows each) wait on the "full"
// barrier of a stage, never on each other: there is no __syncthreads in the loop, so one
// warpgroup's softmax can run under the other's MMAs. When a consumer has finished a stage (its
// P V waited), its 128 threads arrive on the stage's "empty" barrier, and the producer refills
// the stage once both consumers have. setmaxnreg hands the producer's registers to the consumers:
// 40 per producer thread, 232 per consumer thread (128·40 + 256·232 ≤ 65 536).
//
// Launch: grid (⌈Nq/128⌉, B·H), 384 threads = 3 warpgroups (warpgroup 0: producer; 1–2: consumers,
// query rows q0 + 64·(w−1) …), BR = 128, BC keys per tile, 3 K/V stages. Causal launches visit
// query tiles longest first. Shared memory: Q 128×D + 3 × (K + V) BC×D bf16 + 10 mbarriers
// (d128/BC128: 229 376 + 80 bytes). Bytes moved: as rungs 1–7 (K and V once per query tile).

// The CUtensorMap the host encodes: 128 opaque bytes, 64-byte aligned, passed by value.
struct __align__(64) TensorMap {
    unsigned long long opaque[16];
};

__device__ __forceinline__ void mbar_init(unsigned long long *bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(unsigned long long *bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned long long *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}
// Spin until the barrier's phase with parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(unsigned long long *bar, unsigned parity) {
    unsigned done = 0;
    while (!done)
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done)
                     : "r"(smem_u32(bar)), "r"(parity)
                     : "memory");
}
// One TMA copy of box (64 columns, rows, 1) at (col, row, head) into shared memory.
__device__ __forceinline__ void tma_load(bf16_t *dst, const TensorMap *map, int col, int row, int head,
                                         unsigned long long *bar) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];"
                 ::"r"(smem_u32(dst)), "l"(reinterpret_cast<unsigned long long>(map)), "r"(col), "r"(row), "r"(head),
                 "r"(smem_u32(bar))
                 : "memory");
}
// A tile of `rows` × D as D/64 panels (the Swizzle128Layout of ch12_wgmma.cu).
template <int D>
__device__ __forceinline__ void tma_tile(bf16_t *dst, const TensorMap *map, int rows, int row0, int head,
                                         unsigned long long *bar) {
#pragma unroll
    for (int p = 0; p < D / 64; ++p) tma_load(dst + p * rows * 64, map, 64 * p, row0, head, bar);
}

// ANCHOR: pingpong
// Rung 9, ping-pong: the two consumers take turns at the tensor cores. Each issues its MMAs
// only in its turn and hands the turn over as soon as they are issued, so the MMAs of one
// warpgroup run while the other computes its softmax, instead of both issuing at once and then
// both leaving the tensor cores idle through their softmax. Named barriers 1 and 2 (barrier 0 is
// __syncthreads) each join 256 threads: the 128 of the consumer whose turn it is (bar.sync) and
// the 128 of the other, handing the turn over (bar.arrive, which does not wait).
// (Immediate barrier ids: with an id in a register, ptxas must reserve all 16 barriers.)
template <bool PINGPONG> __device__ __forceinline__ void wait_turn(int c) {
    if (PINGPONG && c == 0) asm volatile("bar.sync 1, 256;" ::: "memory");
    if (PINGPONG && c == 1) asm volatile("bar.sync 2, 256;" ::: "memory");
}
template <bool PINGPONG> __device__ __forceinline__ void pass_turn(int c) {
    if (PINGPONG && c == 0) asm volatile("bar.arrive 2, 256;" ::: "memory");
    if (PINGPONG && c == 1) asm volatile("bar.arrive 1, 256;" ::: "memory");
}
// ANCHOR_END: pingpong

template <int D, int BC, bool PINGPONG>
__device__ __forceinline__ void tma_forward(const TensorMap *q_map, const TensorMap *k_map, const TensorMap *v_map,
                                            bf16_t *__restrict__ out, float *__restrict__ lse, int nq, int nk,
                                            int causal, float scale_log2e) {
    constexpr int BR = 128, STAGES = 3, KV = BC * D, CONSUMER_THREADS = 256;
    extern __shared__ __align__(1024) bf16_t smem[];
    bf16_t *q_tile = smem, *k_stages = q_tile + BR * D, *v_stages = k_stages + STAGES * KV;
    unsigned long long *q_full = reinterpret_cast<unsigned long long *>(v_stages + STAGES * KV);
    unsigned long long *k_full = q_full + 1, *v_full = k_full + STAGES, *empty = v_full + STAGES;
    if (dynamic_smem_bytes() < 2u * (BR + 2 * STAGES * BC) * D + 8u * (1 + 3 * STAGES) ||
        (smem_u32(smem) & 1023) != 0)
        __trap();

    const int wg = threadIdx.x / 128, bh = blockIdx.y;
    const int q0 = first_query_row<BR>(causal), offset = nk - nq;
    const int tiles = key_tiles<BC>(q0, BR, nq, nk, causal);
    if (threadIdx.x == 0) {
        mbar_init(q_full, 1);
        for (int s = 0; s < STAGES; ++s) mbar_init(k_full + s, 1), mbar_init(v_full + s, 1), mbar_init(empty + s, CONSUMER_THREADS);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) { // the producer
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
        if (threadIdx.x == 0) {
            mbar_expect_tx(q_full, 2u * BR * D);
            tma_tile<D>(q_tile, q_map, BR, q0, bh, q_full);
            for (int jt = 0; jt < tiles; ++jt) {
                const int s = jt % STAGES;
                if (jt >= STAGES) mbar_wait(empty + s, (jt / STAGES - 1) & 1); // both consumers are done with it
                mbar_expect_tx(k_full + s, 2u * KV);
                tma_tile<D>(k_stages + s * KV, k_map, BC, jt * BC, bh, k_full + s);
                mbar_expect_tx(v_full + s, 2u * KV);
                tma_tile<D>(v_stages + s * KV, v_map, BC, jt * BC, bh, v_full + s);
            }
        }
        return;
    }
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
    const int c = wg - 1, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const int warp_row = q0 + 64 * c + 16 * warp;
    const bf16_t *q_wg = q_tile + 64 * c * 64;
    float o[D / 8][4] = {}, m[2] = {neg_inf(), neg_inf()}, l[2] = {0.f, 0.f}, alpha[2];
    unsigned p[BC / 16][4];
    // Ping-pong: consumer 0 goes first. Each consumer has tiles + 1 turns (S of the first tile,
    // tiles − 1 of S_{j+1} with P V_j, P V of the last); consumer 1's first hand-over happens
    // here and its last is skipped, so that every barrier sees as many arrivals as waits.
    if (c == 1 && tiles > 0) pass_turn<PINGPONG>(c);
    mbar_wait(q_full, 0);
    if (tiles > 0) {
        mbar_wait(k_full, 0);
        float s[BC / 8][4];
        wait_turn<PINGPONG>(c);
        issue_scores<D, BR, BC>(s, q_wg, k_stages);
        pass_turn<PINGPONG>(c);
        wgmma_wait_all();
        const TileMask mask{warp_row, 0, nk, causal, offset, tile_needs_mask<BC>(0, q0, nk, causal, offset)};
        softmax_exponentiate<BC>(s, mask, m, l, alpha, scale_log2e, lane);
        pack_probabilities<BC>(s, p);
    }
    for (int jt = 0; jt + 1 < tiles; ++jt) {
        const int s_now = jt % STAGES, s_next = (jt + 1) % STAGES;
        mbar_wait(k_full + s_next, ((jt + 1) / STAGES) & 1);
        mbar_wait(v_full + s_now, (jt / STAGES) & 1);
        float s[BC / 8][4];
        wait_turn<PINGPONG>(c);
        issue_scores<D, BR, BC>(s, q_wg, k_stages + s_next * KV);
        issue_pv<D, BC>(o, p, v_stages + s_now * KV);
        pass_turn<PINGPONG>(c);
        asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
        const int key0 = (jt + 1) * BC;
        const TileMask mask{warp_row, key0, nk, causal, offset, tile_needs_mask<BC>(key0, q0, nk, causal, offset)};
        softmax_exponentiate<BC>(s, mask, m, l, alpha, scale_log2e, lane);
        wgmma_wait_all();
        mbar_arrive(empty + s_now); // K_j (read by last iteration's S) and V_j are no longer needed
        rescale_rows<D>(o, alpha);
        pack_probabilities<BC>(s, p);
    }
    if (tiles > 0) {
        const int s_last = (tiles - 1) % STAGES;
        mbar_wait(v_full + s_last, ((tiles - 1) / STAGES) & 1);
        wait_turn<PINGPONG>(c);
        issue_pv<D, BC>(o, p, v_stages + s_last * KV);
        if (c == 0) pass_turn<PINGPONG>(c);
        wgmma_wait_all();
    }
    write_output<D>(o, m, l, out + (size_t)bh * nq * D, lse + (size_t)bh * nq, warp_row, nq, scale_log2e, lane);
}

#define TMA_ARGS                                                                                   \
    const __grid_constant__ TensorMap q_map, const __grid_constant__ TensorMap k_map,              \
        const __grid_constant__ TensorMap v_map, bf16_t *__restrict__ out, float *__restrict__ lse, \
        int nq, int nk, int causal, float scale_log2e
#define TMA_ENTRY(NAME, PINGPONG, D, BC)                                                           \
    extern "C" __global__ void __launch_bounds__(384, 1) ch12_##NAME##_d##D##_bc##BC(TMA_ARGS) {   \
        tma_forward<D, BC, PINGPONG>(&q_map, &k_map, &v_map, out, lse, nq, nk, causal, scale_log2e); \
    }
TMA_ENTRY(tma, false, 64, 128)
TMA_ENTRY(tma, false, 128, 64)
TMA_ENTRY(tma, false, 128, 128)
TMA_ENTRY(pingpong, true, 64, 128)
TMA_ENTRY(pingpong, true, 128, 64)
TMA_ENTRY(pingpong, true, 128, 128)
