// ch12_pipelined.cu — rungs 3, 4 and 5 of chapter 12's ladder: rung 2's kernel with its key and
// value tiles copied asynchronously and double-buffered, then read with ldmatrix from swizzled
// shared memory, then with its tile shape picked by an autotuner. One template, three sets of
// entry points, so the reader sees that each rung changes exactly one thing.
//
// Computes out = softmax(scale·Q Kᵀ + mask) V and lse (conventions in ch12_mma_common.cuh).
//
// Rung 3 (`ch12_cp_async_d*`, ScalarFragments, padded tiles): while the warps multiply key tile
// j, the copy engine is already writing tile j + 1 into the other half of a two-stage buffer
// (cp.async, 16 bytes per request, no registers involved). One commit group per tile;
// `cp.async.wait_group 1` waits for every group but the newest, i.e. tile j, then a barrier
// makes it visible to all warps; a second barrier at the end of the iteration keeps the next
// copy from overwriting a stage some warp still reads.
// Rung 4 (`ch12_ldmatrix_swizzle_d*`, LdmatrixFragments, swizzled tiles): the same loop; each
// 16×16 operand now arrives with one ldmatrix.x4 instead of four 32-bit loads (eight 16-bit
// loads for V, whose transposed fragment ldmatrix.trans makes for free), and the XOR swizzle
// replaces the padding, so there are no bank conflicts and no wasted bytes.
// Rung 5 (`ch12_tuned_d{D}_br{BR}_bc{BC}`): rung 4 at every tile shape of the autotuner's space,
// BR ∈ {64, 128} query rows (4 or 8 warps of 16 rows) × BC ∈ {32, 64, 128} keys per tile.
//
// Launch: grid (⌈Nq/BR⌉, B·H), 32·BR/16 threads. Causal launches visit query tiles longest first.
// Shared memory: Q BR×D plus two stages of K and V, BC×D each (bf16; padded rows add 8 elements
// in rung 3): rung 3 = 2·(BR + 4·BC)·(D+8) bytes (87 040 at D = 128), rung 4 = 2·(BR + 4·BC)·D
// (81 920 at D = 128, 40 960 at D = 64); the host sizes each launch and the kernel traps if it
// got less than its layout needs.
// Bytes moved (HBM/L2): Q and out once (2·B·H·Nq·D·2), K and V once per query tile
// (2·B·H·⌈Nq/BR⌉·Nk·D·2, about half when causal), lse 4·B·H·Nq.

template <class Frag, int D, int BC, int NW> __device__ __forceinline__ void pipelined_forward(LADDER_ARGS) {
    constexpr int BR = 16 * NW, THREADS = 32 * NW;
    using Layout = typename Frag::Layout;
    constexpr int KV_TILE = Layout::tile_elems(BC);
    extern __shared__ __align__(128) bf16_t smem[];
    bf16_t *q_tile = smem, *k_stages = q_tile + Layout::tile_elems(BR), *v_stages = k_stages + 2 * KV_TILE;
    if (dynamic_smem_bytes() < 2u * (Layout::tile_elems(BR) + 4 * KV_TILE)) __trap();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.y;
    const int q0 = first_query_row<BR>(causal), offset = nk - nq;
    const bf16_t *q_head = q + (size_t)bh * nq * D, *k_head = k + (size_t)bh * nk * D,
                 *v_head = v + (size_t)bh * nk * D;
    const int tiles = key_tiles<BC>(q0, BR, nq, nk, causal);

    // Prologue: Q as one commit group, the first K/V stage as the next.
    load_tile_async<BR, D, THREADS, Layout>(q_tile, q_head, q0, nq);
    cp_async_commit();
    if (tiles > 0) {
        load_tile_async<BC, D, THREADS, Layout>(k_stages, k_head, 0, nk);
        load_tile_async<BC, D, THREADS, Layout>(v_stages, v_head, 0, nk);
    }
    cp_async_commit();
    cp_async_wait<1>(); // Q has landed (the first stage may still be in flight)
    __syncthreads();
    unsigned qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) Frag::a(qf[kk], q_tile, 16 * warp, 16 * kk, lane);

    float o[D / 8][4] = {}, m[2] = {neg_inf(), neg_inf()}, l[2] = {0.f, 0.f};
    for (int jt = 0; jt < tiles; ++jt) {
        const int key0 = jt * BC, stage = jt & 1;
        if (jt + 1 < tiles) { // prefetch tile j + 1 into the other stage
            load_tile_async<BC, D, THREADS, Layout>(k_stages + (stage ^ 1) * KV_TILE, k_head, key0 + BC, nk);
            load_tile_async<BC, D, THREADS, Layout>(v_stages + (stage ^ 1) * KV_TILE, v_head, key0 + BC, nk);
        }
        cp_async_commit(); // possibly empty, so that "all but the newest group" always means tile j
        cp_async_wait<1>();
        __syncthreads();
        const bf16_t *k_tile = k_stages + stage * KV_TILE, *v_tile = v_stages + stage * KV_TILE;
        float s[BC / 8][4];
        warp_scores<Frag, D, BC>(s, qf, k_tile, lane);
        const TileMask mask{q0 + 16 * warp, key0, nk, causal, offset, tile_needs_mask<BC>(key0, q0, nk, causal, offset)};
        unsigned p[BC / 16][4];
        online_softmax<BC, D>(s, mask, m, l, o, p, scale_log2e, lane);
        warp_pv<Frag, D, BC>(o, p, v_tile, lane);
        __syncthreads(); // this stage is refilled by the prefetch of iteration j + 1
    }
    cp_async_wait<0>();
    write_output<D>(o, m, l, out + (size_t)bh * nq * D, lse + (size_t)bh * nq, q0 + 16 * warp, nq, scale_log2e,
                    lane);
}

// Rung 3: asynchronous double-buffered copies, padded tiles, scalar fragment loads.
extern "C" __global__ void __launch_bounds__(128) ch12_cp_async_d64(LADDER_ARGS) {
    pipelined_forward<ScalarFragments<64>, 64, 64, 4>(LADDER_ARG_NAMES);
}
extern "C" __global__ void __launch_bounds__(128) ch12_cp_async_d128(LADDER_ARGS) {
    pipelined_forward<ScalarFragments<128>, 128, 64, 4>(LADDER_ARG_NAMES);
}
// Rung 4: the same with ldmatrix and swizzled tiles.
extern "C" __global__ void __launch_bounds__(128) ch12_ldmatrix_swizzle_d64(LADDER_ARGS) {
    pipelined_forward<LdmatrixFragments<64>, 64, 64, 4>(LADDER_ARG_NAMES);
}
extern "C" __global__ void __launch_bounds__(128) ch12_ldmatrix_swizzle_d128(LADDER_ARGS) {
    pipelined_forward<LdmatrixFragments<128>, 128, 64, 4>(LADDER_ARG_NAMES);
}
// Rung 5: the autotuner's space (kept in step with TUNED_SHAPES in chapters/ch12-*/src/ladder.rs).
#define TUNED(D, BR, BC)                                                                           \
    extern "C" __global__ void __launch_bounds__(2 * BR) ch12_tuned_d##D##_br##BR##_bc##BC(LADDER_ARGS) { \
        pipelined_forward<LdmatrixFragments<D>, D, BC, BR / 16>(LADDER_ARG_NAMES);                \
    }
TUNED(64, 64, 32)
TUNED(64, 64, 64)
TUNED(64, 64, 128)
TUNED(64, 128, 32)
TUNED(64, 128, 64)
TUNED(64, 128, 128)
TUNED(128, 64, 32)
TUNED(128, 64, 64)
TUNED(128, 64, 128)
TUNED(128, 128, 32)
TUNED(128, 128, 64)
TUNED(128, 128, 128)
