// ch12_rung1_smem_softmax.cu — rung 1 of chapter 12's ladder: the two products of attention on
// the tensor cores (mma.sync m16n8k16, bf16 in, f32 accumulate), the softmax in between still
// done the way chapter 3 did it — through shared memory.
//
// Computes out = softmax(scale·Q Kᵀ + mask) V and lse (conventions in ch12_mma_common.cuh).
// Per key tile each warp: S (16 × BC) = Q Kᵀ with MMAs into registers; S → shared memory (f32);
// two lanes per row read it back, take the row max, the exponentials and the row sum, update the
// row's running (m, l) and write P in bf16 and the rescale factor 2^((m − m')·c) to shared
// memory; every lane rescales its O rows and loads P back as MMA A fragments; O += P V. Each
// score makes a round trip through shared memory (4 + 4 bytes out, 4 + 2 back in) and the warp
// waits at two __syncwarp() — the cost rung 2 removes.
//
// Launch: grid (⌈Nq/BR⌉, B·H), NW = 4 warps, BR = 64 query rows (16 per warp), BC = 64 keys per
// tile, loaded synchronously. Causal launches visit query tiles longest first.
// Shared memory: Q BR×(D+8), K and V BC×(D+8) bf16; per warp S 16×(BC+4) f32, P 16×(BC+8) bf16,
// and (m, l, alpha) for its 16 rows = 79 616 bytes at D = 128, 55 040 at D = 64.
// Bytes moved (HBM/L2): as rung 2 — Q and out once, K and V once per query tile, lse.

#define ROW_M 0
#define ROW_L 1
#define ROW_ALPHA 2

template <int D, int BC, int NW> __device__ __forceinline__ void smem_softmax_forward(LADDER_ARGS) {
    constexpr int BR = 16 * NW, THREADS = 32 * NW, S_STRIDE = BC + 4;
    using Frag = ScalarFragments<D>;
    using Layout = typename Frag::Layout;
    using PFrag = ScalarFragments<BC>; // P is a 16 × BC bf16 tile, padded the same way
    extern __shared__ __align__(16) bf16_t smem[];
    bf16_t *q_tile = smem, *k_tile = q_tile + Layout::tile_elems(BR), *v_tile = k_tile + Layout::tile_elems(BC);
    float *s_all = reinterpret_cast<float *>(v_tile + Layout::tile_elems(BC));
    bf16_t *p_all = reinterpret_cast<bf16_t *>(s_all + NW * 16 * S_STRIDE);
    float *state_all = reinterpret_cast<float *>(p_all + NW * PFrag::Layout::tile_elems(16));
    const unsigned need = 2u * (Layout::tile_elems(BR) + 2 * Layout::tile_elems(BC)) + 4u * NW * 16 * S_STRIDE +
                          2u * NW * PFrag::Layout::tile_elems(16) + 4u * NW * 16 * 3;
    if (dynamic_smem_bytes() < need) __trap();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, bh = blockIdx.y;
    const int g = lane >> 2, t = lane & 3;
    const int q0 = first_query_row<BR>(causal), offset = nk - nq;
    const bf16_t *q_head = q + (size_t)bh * nq * D, *k_head = k + (size_t)bh * nk * D,
                 *v_head = v + (size_t)bh * nk * D;
    float *s_warp = s_all + warp * 16 * S_STRIDE, *state = state_all + warp * 16 * 3;
    bf16_t *p_warp = p_all + warp * PFrag::Layout::tile_elems(16);
    if (lane < 16) state[3 * lane + ROW_M] = neg_inf(), state[3 * lane + ROW_L] = 0.f;

    load_tile_sync<BR, D, THREADS, Layout>(q_tile, q_head, q0, nq);
    __syncthreads();
    unsigned qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) Frag::a(qf[kk], q_tile, 16 * warp, 16 * kk, lane);

    float o[D / 8][4] = {};
    const int tiles = key_tiles<BC>(q0, BR, nq, nk, causal);
    for (int jt = 0; jt < tiles; ++jt) {
        const int key0 = jt * BC;
        __syncthreads();
        load_tile_sync<BC, D, THREADS, Layout>(k_tile, k_head, key0, nk);
        load_tile_sync<BC, D, THREADS, Layout>(v_tile, v_head, key0, nk);
        __syncthreads();
        float s[BC / 8][4];
        warp_scores<Frag, D, BC>(s, qf, k_tile, lane);
        const TileMask mask{q0 + 16 * warp, key0, nk, causal, offset, tile_needs_mask<BC>(key0, q0, nk, causal, offset)};
        mask_scores<BC>(s, mask, lane);
        // The round trip: scores out to shared memory in the accumulator layout ...
#pragma unroll
        for (int j = 0; j < BC / 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) s_warp[(g + 8 * (e >> 1)) * S_STRIDE + 8 * j + 2 * t + (e & 1)] = s[j][e];
        __syncwarp();
        // ... and back in by rows: lanes 2r and 2r+1 share row r, half of its columns each.
        {
            const int r = lane >> 1, c0 = (lane & 1) * (BC / 2);
            const float *row = s_warp + r * S_STRIDE + c0;
            float mx = state[3 * r + ROW_M];
            for (int c = 0; c < BC / 2; ++c) mx = fmaxf(mx, row[c]);
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, 1));
            const float base = mx == neg_inf() ? 0.f : mx * scale_log2e;
            const float alpha = exp2f(state[3 * r + ROW_M] * scale_log2e - base);
            float sum = 0.f;
            for (int c = 0; c < BC / 2; c += 2) {
                const float p0 = exp2f(fmaf(row[c], scale_log2e, -base));
                const float p1 = exp2f(fmaf(row[c + 1], scale_log2e, -base));
                sum += p0 + p1;
                *reinterpret_cast<unsigned *>(p_warp + PFrag::Layout::at(r, c0 + c)) = pack_bf16x2(p0, p1);
            }
            sum += __shfl_xor_sync(0xffffffff, sum, 1);
            __syncwarp(); // both lanes of the row have read the old state
            if ((lane & 1) == 0) {
                state[3 * r + ROW_L] = state[3 * r + ROW_L] * alpha + sum;
                state[3 * r + ROW_M] = mx;
                state[3 * r + ROW_ALPHA] = alpha;
            }
        }
        __syncwarp();
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float alpha = state[3 * (g + 8 * r) + ROW_ALPHA];
#pragma unroll
            for (int n = 0; n < D / 8; ++n) o[n][2 * r] *= alpha, o[n][2 * r + 1] *= alpha;
        }
        unsigned p[BC / 16][4];
#pragma unroll
        for (int kk = 0; kk < BC / 16; ++kk) PFrag::a(p[kk], p_warp, 0, 16 * kk, lane);
        warp_pv<Frag, D, BC>(o, p, v_tile, lane);
        __syncwarp(); // P and the state are read before the next tile overwrites them
    }
    // write_output sums l over the quad: give the whole row sum to one lane of it.
    float m[2], l[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        m[r] = state[3 * (g + 8 * r) + ROW_M];
        l[r] = t == 0 ? state[3 * (g + 8 * r) + ROW_L] : 0.f;
    }
    write_output<D>(o, m, l, out + (size_t)bh * nq * D, lse + (size_t)bh * nq, q0 + 16 * warp, nq, scale_log2e,
                    lane);
}

extern "C" __global__ void __launch_bounds__(128) ch12_smem_softmax_d64(LADDER_ARGS) {
    smem_softmax_forward<64, 64, 4>(LADDER_ARG_NAMES);
}
extern "C" __global__ void __launch_bounds__(128) ch12_smem_softmax_d128(LADDER_ARGS) {
    smem_softmax_forward<128, 64, 4>(LADDER_ARG_NAMES);
}
