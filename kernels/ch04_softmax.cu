// ch04_softmax.cu — the softmax step of Unfused attention (chapter 4).
//
// What: the scores S = scale·log₂e · Q Kᵀ (B·H·Nq rows of Nk floats, in log2 units, written
// by cuBLAS) are turned in place into the attention weights of each row:
//     s_j → −∞ where key j is masked (causal, bottom-right aligned, or padded),
//     m = max_j s_j,   p_j = 2^(s_j − m),   P_j = p_j / Σ_j p_j,
// and each row's natural-log log-sum-exp lse = ln 2 · (m + log₂ Σ_j p_j) is written.
// A row that sees no key becomes zeros with lse = −∞ (chapter 2's convention), so the
// second GEMM O = P V gives it an output row of zeros.
//
// Launch: grid (B·H·Nq, 1, 1), one block of SOFTMAX_THREADS = 256 threads per row, no
// dynamic shared memory. Threads stride over the row's Nk columns; the max and the sum are
// reduced with warp shuffles and a 32-float shared array.
//
// Bytes moved per row: three reads and two writes of Nk floats (max pass, exponentiate pass,
// normalise pass), Nk mask bytes when padding is given, one float of lse: about 20·Nk bytes,
// 20·B·H·Nq·Nk in all — the traffic the fused kernels avoid.

#define SOFTMAX_THREADS 256
#define WARPS (SOFTMAX_THREADS / 32)

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Every thread gets the block's max (is_max = true) or sum. `partial` holds WARPS floats;
// the trailing __syncthreads lets the caller reuse it for the next reduction.
__device__ float block_reduce(float v, bool is_max, float* partial) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = is_max ? warp_max(v) : warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    const float identity = is_max ? neg_inf() : 0.0f;
    v = lane < WARPS ? partial[lane] : identity;
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads();
    return v;
}

// scores: (B·H·Nq, Nk) floats, in place. key_padding: (B, Nk) bytes, 1 = padded, or null.
// lse: (B·H·Nq) floats. The host checks every length and that blockDim.x = SOFTMAX_THREADS.
extern "C" __global__ void ch04_masked_softmax_rows(float* scores, const unsigned char* key_padding,
                                                    float* lse, int heads, int nq, int nk, int causal) {
    __shared__ float partial[WARPS];
    const long long row = blockIdx.x;             // (b·H + h)·Nq + i
    const long long bh = row / nq;
    const int i = (int)(row - bh * nq);
    const int b = (int)(bh / heads);
    float* s = scores + row * (long long)nk;
    const unsigned char* pad = key_padding ? key_padding + (long long)b * nk : nullptr;

    // Query i sees keys j < end = clamp(i + 1 + Nk − Nq, 0, Nk) under the causal mask.
    long long end = nk;
    if (causal) {
        end = (long long)i + 1 + nk - nq;
        end = end < 0 ? 0 : (end > nk ? nk : end);
    }

    // Pass 1: the max over visible keys.
    float m = neg_inf();
    for (int j = threadIdx.x; j < nk; j += SOFTMAX_THREADS) {
        const bool visible = j < end && !(pad && pad[j]);
        if (visible) m = fmaxf(m, s[j]);
    }
    m = block_reduce(m, true, partial);

    // Pass 2: unnormalised weights 2^(s − m), masked ones exactly 0, and their sum.
    // With no visible key m = −∞ and every weight is written as 0.
    float sum = 0.0f;
    for (int j = threadIdx.x; j < nk; j += SOFTMAX_THREADS) {
        const bool visible = j < end && !(pad && pad[j]) && m != neg_inf();
        const float p = visible ? exp2f(s[j] - m) : 0.0f;
        s[j] = p;
        sum += p;
    }
    sum = block_reduce(sum, false, partial);

    // Pass 3: normalise (a fully masked row stays zeros).
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int j = threadIdx.x; j < nk; j += SOFTMAX_THREADS) s[j] *= inv;
    if (threadIdx.x == 0) lse[row] = sum > 0.0f ? (m + log2f(sum)) * 0.69314718055994531f : neg_inf();
}
