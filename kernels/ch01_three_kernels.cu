// Chapter 1 — attention as three kernels, with the (n_q, n_k) score matrix in global memory.
//
// Computes   out = softmax(Q Kᵀ) V   (unscaled: chapter 2 adds the 1/√d)
//   Q (n_q, d), K (n_k, d), V (n_k, d_v), S and P (n_q, n_k), out (n_q, d_v), f32, row-major.
//
//   1. ch01_scores:        S = Q Kᵀ              one thread per (i, j)
//   2. ch01_softmax_rows:  P = softmax_rows(S)   one block per row i, in place (P overwrites S)
//   3. ch01_weighted_sum:  out = P V             one thread per (i, c)
//
// Launch shapes (blockDim is 1-D everywhere):
//   ch01_scores:       grid (ceil(n_k / B), n_q), block B; thread (x, y) computes S[y, x].
//   ch01_softmax_rows: grid (n_q), block 256 (must be a multiple of 32, at most 1024).
//   ch01_weighted_sum: grid (ceil(d_v / B), n_q), block B; thread (x, y) computes out[y, x].
//   The host checks gridDim.y = n_q ≤ 65535.
//
// Bytes moved (f32 = 4 bytes), the point of this file: the scores make a round trip through
// global memory. S is written once (4·n_q·n_k), read by the softmax (4·n_q·n_k; its second
// and third passes over a row mostly hit in cache), written back as P (4·n_q·n_k) and read
// again by the weighted sum (4·n_q·n_k): at least 16·n_q·n_k bytes beside the compulsory
// 4·(n_q·d + n_k·d + n_k·d_v + n_q·d_v) for Q, K, V and out — 268 MB at n_q = n_k = 4096,
// and n_q·n_k·4 bytes of memory for S (64 MiB at 4096, 4 GiB at 32768).
// Work: 2·n_q·n_k·(d + d_v) FLOPs and n_q·n_k exp() (twice in the softmax).

#define NEG_INF (__int_as_float(0xff800000))

// ANCHOR: scores
// S[i, j] = q_i · k_j.
extern "C" __global__ void ch01_scores(const float* __restrict__ q,
                                       const float* __restrict__ k,
                                       float* __restrict__ s,
                                       int n_q, int n_k, int d)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y;
    if (i >= n_q || j >= n_k) {
        return;
    }
    const float* q_i = q + (long long)i * d;
    const float* k_j = k + (long long)j * d;
    float acc = 0.0f;
    for (int c = 0; c < d; ++c) {
        acc += q_i[c] * k_j[c];
    }
    s[(long long)i * n_k + j] = acc;
}
// ANCHOR_END: scores

__device__ float warp_max(float x)
{
    for (int offset = 16; offset > 0; offset >>= 1) {
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
    }
    return x;
}

__device__ float warp_sum(float x)
{
    for (int offset = 16; offset > 0; offset >>= 1) {
        x += __shfl_xor_sync(0xffffffffu, x, offset);
    }
    return x;
}

// Reduce one value per thread over the block (max or sum); every thread gets the result.
// partial holds one value per warp. The second __syncthreads makes `*result` visible to all
// threads, and also orders this call's reads of `partial` before the next call's writes.
__device__ float block_reduce(float x, bool is_max, float* partial, float* result)
{
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int n_warps = blockDim.x >> 5;
    x = is_max ? warp_max(x) : warp_sum(x);
    if (lane == 0) {
        partial[warp] = x;
    }
    __syncthreads();
    if (warp == 0) {
        float y = lane < n_warps ? partial[lane] : (is_max ? NEG_INF : 0.0f);
        y = is_max ? warp_max(y) : warp_sum(y);
        if (lane == 0) {
            *result = y;
        }
    }
    __syncthreads();
    return *result;
}

// ANCHOR: softmax
// Row i of S becomes softmax(S[i, :]) in place. Thread t handles the elements j ≡ t (mod
// blockDim.x), so no two threads touch the same element.
extern "C" __global__ void ch01_softmax_rows(float* __restrict__ s, int n_q, int n_k)
{
    __shared__ float partial[32];
    __shared__ float row_max;
    __shared__ float row_sum;
    const int i = blockIdx.x;
    if (i >= n_q) {
        return;  // uniform across the block, so no thread misses a __syncthreads
    }
    float* row = s + (long long)i * n_k;

    float m = NEG_INF;
    for (int j = threadIdx.x; j < n_k; j += blockDim.x) {
        m = fmaxf(m, row[j]);
    }
    m = block_reduce(m, true, partial, &row_max);

    // Subtracting the row max keeps expf finite (chapter 2 explains why it matters).
    float l = 0.0f;
    for (int j = threadIdx.x; j < n_k; j += blockDim.x) {
        l += expf(row[j] - m);
    }
    l = block_reduce(l, false, partial, &row_sum);

    const float inv_l = 1.0f / l;
    for (int j = threadIdx.x; j < n_k; j += blockDim.x) {
        row[j] = expf(row[j] - m) * inv_l;
    }
}
// ANCHOR_END: softmax

// ANCHOR: weighted_sum
// out[i, c] = Σ_j P[i, j] · V[j, c]. Threads of a block share row i of P (a broadcast) and read
// consecutive columns c of each V row (coalesced).
extern "C" __global__ void ch01_weighted_sum(const float* __restrict__ p,
                                             const float* __restrict__ v,
                                             float* __restrict__ out,
                                             int n_q, int n_k, int d_v)
{
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const int i = blockIdx.y;
    if (i >= n_q || c >= d_v) {
        return;
    }
    const float* p_i = p + (long long)i * n_k;
    float acc = 0.0f;
    for (int j = 0; j < n_k; ++j) {
        acc += p_i[j] * v[(long long)j * d_v + c];
    }
    out[(long long)i * d_v + c] = acc;
}
// ANCHOR_END: weighted_sum
