// ch12_rung2_register_softmax.cu — rung 2 of chapter 12's ladder: FlashAttention-2's forward
// pass on the tensor cores with the softmax kept in registers.
//
// Computes out = softmax(scale·Q Kᵀ + mask) V and lse (conventions in ch12_mma_common.cuh), bf16
// in and out, f32 accumulation. What is new against rung 1: the scores never leave the
// registers. The accumulator layout of two 16×8 score blocks is the A-operand layout of a 16×16
// block of P, so after the online softmax (row max and sum over the 4 lanes of a quad with two
// shuffles each) the probabilities are packed to bf16 in place and fed straight to P V. No
// shared-memory round trip, no __syncwarp, 16 + 8 fewer shared accesses per score.
//
// Launch: grid (⌈Nq/BR⌉, B·H), NW = 4 warps; warp w owns query rows q0 + 16w … q0 + 16w + 15 of
// the block's tile (BR = 64) and keeps its Q fragments (D/4 registers) and its O accumulator
// (D/2 f32 registers) for the whole key loop. Causal launches visit query tiles longest first.
// Key tiles of BC = 64 are loaded synchronously (every thread waits for its 16-byte loads, then
// a barrier): the loads and the MMAs do not overlap — that is rung 3's job.
// Shared memory (padded rows, ScalarFragments): Q BR×(D+8), K and V BC×(D+8) bf16
// = 52 224 bytes at D = 128, 27 648 at D = 64.
// Bytes moved (HBM/L2): Q and out once (2·B·H·Nq·D·2), K and V once per query tile
// (2·B·H·⌈Nq/BR⌉·Nk·D·2, about half when causal), lse 4·B·H·Nq.

template <int D, int BC, int NW> __device__ __forceinline__ void register_softmax_forward(LADDER_ARGS) {
    constexpr int BR = 16 * NW, THREADS = 32 * NW;
    using Frag = ScalarFragments<D>;
    using Layout = typename Frag::Layout;
    extern __shared__ __align__(16) bf16_t smem[];
    bf16_t *q_tile = smem, *k_tile = q_tile + Layout::tile_elems(BR), *v_tile = k_tile + Layout::tile_elems(BC);
    if (dynamic_smem_bytes() < 2u * (Layout::tile_elems(BR) + 2 * Layout::tile_elems(BC))) __trap();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.y;
    const int q0 = first_query_row<BR>(causal), offset = nk - nq;
    const bf16_t *q_head = q + (size_t)bh * nq * D, *k_head = k + (size_t)bh * nk * D,
                 *v_head = v + (size_t)bh * nk * D;

    load_tile_sync<BR, D, THREADS, Layout>(q_tile, q_head, q0, nq);
    __syncthreads();
    unsigned qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) Frag::a(qf[kk], q_tile, 16 * warp, 16 * kk, lane);

    float o[D / 8][4] = {}, m[2] = {neg_inf(), neg_inf()}, l[2] = {0.f, 0.f};
    const int tiles = key_tiles<BC>(q0, BR, nq, nk, causal);
    for (int jt = 0; jt < tiles; ++jt) {
        const int key0 = jt * BC;
        __syncthreads(); // every warp is done with the previous K and V tiles
        load_tile_sync<BC, D, THREADS, Layout>(k_tile, k_head, key0, nk);
        load_tile_sync<BC, D, THREADS, Layout>(v_tile, v_head, key0, nk);
        __syncthreads();
        float s[BC / 8][4];
        warp_scores<Frag, D, BC>(s, qf, k_tile, lane);
        const TileMask mask{q0 + 16 * warp, key0, nk, causal, offset, tile_needs_mask<BC>(key0, q0, nk, causal, offset)};
        unsigned p[BC / 16][4];
        online_softmax<BC, D>(s, mask, m, l, o, p, scale_log2e, lane);
        warp_pv<Frag, D, BC>(o, p, v_tile, lane);
    }
    write_output<D>(o, m, l, out + (size_t)bh * nq * D, lse + (size_t)bh * nq, q0 + 16 * warp, nq, scale_log2e,
                    lane);
}

extern "C" __global__ void __launch_bounds__(128) ch12_register_softmax_d64(LADDER_ARGS) {
    register_softmax_forward<64, 64, 4>(LADDER_ARG_NAMES);
}
extern "C" __global__ void __launch_bounds__(128) ch12_register_softmax_d128(LADDER_ARGS) {
    register_softmax_forward<128, 64, 4>(LADDER_ARG_NAMES);
}
