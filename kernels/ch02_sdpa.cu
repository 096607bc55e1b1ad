// ch02_sdpa.cu — scaled dot-product attention in f32, one thread block per query row.
//
// What it computes, for every batch b, head h and query row i:
//   s_j   = (q_i · k_j) · scale          for the keys j the masks let query i see, −∞ otherwise
//   p_j   = exp(s_j − max_k s_k) / Σ_l exp(s_l − max_k s_k)     (stable softmax)
//   out_i = Σ_j p_j v_j,   lse_i = ln Σ_j exp(s_j)
// Masks: causal, aligned bottom-right (key j visible iff j ≤ i + Nk − Nq), and an optional
// key-padding mask, uint8 (B, Nk), nonzero = padded key; a null pointer means no padding.
// A query that sees no key gets out_i = 0 and lse_i = −∞, like the CPU code of chapter 2:
// zeros keep later sums finite where the formula would give 0/0 = NaN, and −∞ is the LSE of an
// empty sum, so merging it with another block's LSE changes nothing. (FlashAttention-2 writes
// +∞ there on its usual path and −∞ only on its split-KV path.)
//
// Layouts (row-major): q (B,H,Nq,d), k (B,H,Nk,d), v (B,H,Nk,dv), out (B,H,Nq,dv), lse (B,H,Nq).
//
// Launch shape: grid (Nq, B·H), block SDPA_THREADS = 128 threads (4 warps); dynamic shared
// memory Nk floats (the row of scores, so Nk is limited by the shared memory per block), plus
// about 5 KiB static (the scaled query row, reduction scratch, per-warp partial outputs).
// Limits checked by the host (chapters/ch02-scaled-dot-product/src/gpu.rs): 1 ≤ d, dv ≤ 256,
// B·H ≤ 65535, Nk·4 + static bytes ≤ the device's opt-in shared memory per block.
//
// Algorithm of one block:
//   1. load q_i into shared memory, multiplied by scale·log2(e);
//   2. each thread computes the scores of keys tid, tid+128, ... (float4 loads when d % 4 == 0)
//      into shared memory; block max by warp shuffles (__shfl_xor_sync) then shared memory;
//   3. each thread turns its scores into 2^(s − max) in place; block sum the same way;
//   4. warp w accumulates p_j v_j over keys j ≡ w (mod 4), lane l owns columns l, l+32, ...
//      (coalesced rows of V); the 4 per-warp partial rows are summed through shared memory,
//      divided by the sum and written.
// Causally masked keys (j ≥ i + 1 + Nk − Nq) are skipped entirely, halving the work.
//
// Bytes moved by one block: it reads d floats of Q, Ke·(d + dv) floats of K and V and Ke bytes
// of padding, and writes dv + 1 floats, where Ke is the number of keys the row can reach (Nk,
// or about i + 1 + Nk − Nq when causal). Over the grid every K and V row of a head is read
// once per query row: B·H·Nq·Nk·(d + dv)·4 bytes through L2/L1 for 2·B·H·Nq·Nk·(d + dv)
// FLOPs, i.e. 0.5 FLOP per byte. DRAM sees each head's K and V about once (they stay in L2),
// but the L2→SM traffic bounds this kernel; chapter 3 reuses each K/V load across many queries.
//
// Numerics: exp(x) = 2^(x·log2 e). Folding log2(e) into the scaled query row makes the exponent
// a plain subtraction and exp2f maps to the hardware ex2 instruction. lse is converted back:
// lse = (max₂ + log2(sum))·ln 2.

#define SDPA_THREADS 128
#define SDPA_WARPS (SDPA_THREADS / 32)
#define SDPA_MAX_DIM 256
#define SDPA_COLS_PER_LANE (SDPA_MAX_DIM / 32)
#define SDPA_LN2 0.693147180559945309f

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

// ANCHOR: reductions
__device__ __forceinline__ float warp_max(float x) {
    // Butterfly: after log2(32) = 5 exchanges every lane holds the warp's maximum.
    for (int offset = 16; offset > 0; offset >>= 1) {
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
    }
    return x;
}

__device__ __forceinline__ float warp_sum(float x) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        x += __shfl_xor_sync(0xffffffffu, x, offset);
    }
    return x;
}

// Block-wide max, returned to every thread. Each warp reduces by shuffles, lane 0 parks the
// warp's value in scratch, then every warp reduces the SDPA_WARPS parked values itself (no
// broadcast step). The final barrier keeps scratch from being overwritten by the next
// reduction before every warp has read it.
__device__ float block_max(float x, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    x = warp_max(x);
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = warp_max(lane < SDPA_WARPS ? scratch[lane] : neg_inf());
    __syncthreads();
    return x;
}

__device__ float block_sum(float x, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    x = warp_sum(x);
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    x = warp_sum(lane < SDPA_WARPS ? scratch[lane] : 0.0f);
    __syncthreads();
    return x;
}
// ANCHOR_END: reductions

extern "C" __global__ void __launch_bounds__(SDPA_THREADS)
ch02_sdpa_f32(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
              const unsigned char* __restrict__ key_padding, float* __restrict__ out,
              float* __restrict__ lse, int heads, int nq, int nk, int d, int dv, int causal,
              float scale_log2e) {
    extern __shared__ float scores[];  // nk floats: scores, then probabilities
    __shared__ __align__(16) float q_row[SDPA_MAX_DIM];
    __shared__ float scratch[SDPA_WARPS];
    __shared__ float partial[SDPA_WARPS][SDPA_MAX_DIM];

    // The arrays above are sized for SDPA_THREADS; any other block size is a host bug.
    if (blockDim.x != SDPA_THREADS || d < 1 || d > SDPA_MAX_DIM || dv < 1 || dv > SDPA_MAX_DIM) __trap();
    const int i = blockIdx.x;   // query row
    const int bh = blockIdx.y;  // b·H + h
    if (i >= nq) return;        // whole block leaves together
    const int b = bh / heads;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    const size_t row = (size_t)bh * nq + i;  // index of this query row among all B·H·Nq rows
    const float* k_head = k + (size_t)bh * nk * d;
    const float* v_head = v + (size_t)bh * nk * dv;
    const unsigned char* pad = key_padding ? key_padding + (size_t)b * nk : nullptr;

    // Keys at or after `end` are causally masked: no score is computed for them.
    long long end_ll = causal ? (long long)i + 1 + nk - nq : (long long)nk;
    const int end = (int)(end_ll < 0 ? 0 : (end_ll > nk ? nk : end_ll));

    // 1. The query row, pre-multiplied by scale·log2(e).
    for (int c = tid; c < d; c += SDPA_THREADS) q_row[c] = q[row * d + c] * scale_log2e;
    __syncthreads();

    // ANCHOR: softmax
    // 2. Scores (in log2 units), one key per thread.
    float local_max = neg_inf();
    for (int j = tid; j < end; j += SDPA_THREADS) {
        float s = neg_inf();
        if (pad == nullptr || pad[j] == 0) {
            const float* k_row = k_head + (size_t)j * d;
            float dot = 0.0f;
            if ((d & 3) == 0) {
                // 16-byte loads: rows start at multiples of d floats, d % 4 == 0, and device
                // allocations are 256-byte aligned, so k_row is 16-byte aligned.
                const float4* k4 = reinterpret_cast<const float4*>(k_row);
                const float4* q4 = reinterpret_cast<const float4*>(q_row);
                for (int c = 0; c < (d >> 2); ++c) {
                    const float4 a = q4[c], kk = k4[c];
                    dot += a.x * kk.x + a.y * kk.y + a.z * kk.z + a.w * kk.w;
                }
            } else {
                for (int c = 0; c < d; ++c) dot += q_row[c] * k_row[c];
            }
            s = dot;
        }
        scores[j] = s;
        local_max = fmaxf(local_max, s);
    }
    const float row_max = block_max(local_max, scratch);

    if (row_max == neg_inf()) {
        // No visible key (the same answer for the whole block): zeros and lse = −∞.
        for (int c = tid; c < dv; c += SDPA_THREADS) out[row * dv + c] = 0.0f;
        if (tid == 0) lse[row] = neg_inf();
        return;
    }

    // 3. p_j = 2^(s_j − max) (exactly 0 for masked keys) and their sum. Each thread reads
    //    back only the scores it wrote itself, so no barrier is needed before this loop.
    float local_sum = 0.0f;
    for (int j = tid; j < end; j += SDPA_THREADS) {
        const float p = exp2f(scores[j] - row_max);
        scores[j] = p;
        local_sum += p;
    }
    const float row_sum = block_sum(local_sum, scratch);  // its barrier publishes scores[]
    // ANCHOR_END: softmax

    // ANCHOR: output
    // 4. Σ_j p_j v_j: warp w takes keys w, w+4, ...; lane l takes columns l, l+32, ...
    float acc[SDPA_COLS_PER_LANE];
#pragma unroll
    for (int t = 0; t < SDPA_COLS_PER_LANE; ++t) acc[t] = 0.0f;
    for (int j = warp; j < end; j += SDPA_WARPS) {
        const float p = scores[j];
        if (p == 0.0f) continue;  // masked (or underflowed) key; j is warp-uniform: no divergence
        const float* v_row = v_head + (size_t)j * dv;
#pragma unroll
        for (int t = 0; t < SDPA_COLS_PER_LANE; ++t) {
            const int c = lane + 32 * t;
            if (c < dv) acc[t] += p * v_row[c];
        }
    }
#pragma unroll
    for (int t = 0; t < SDPA_COLS_PER_LANE; ++t) {
        const int c = lane + 32 * t;
        if (c < dv) partial[warp][c] = acc[t];
    }
    __syncthreads();
    const float inv_sum = 1.0f / row_sum;
    for (int c = tid; c < dv; c += SDPA_THREADS) {
        float o = 0.0f;
#pragma unroll
        for (int w = 0; w < SDPA_WARPS; ++w) o += partial[w][c];
        out[row * dv + c] = o * inv_sum;
    }
    if (tid == 0) lse[row] = (row_max + log2f(row_sum)) * SDPA_LN2;
    // ANCHOR_END: output
}
