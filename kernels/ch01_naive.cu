// Chapter 1 — naive attention, one thread per query row.
//
// Computes   out = softmax(Q Kᵀ) V   (unscaled: chapter 2 adds the 1/√d)
//   Q (n_q, d), K (n_k, d), V (n_k, d_v), out (n_q, d_v), f32, row-major, contiguous.
//
// Each thread owns one query row i and walks over all keys twice:
//   pass 1: s_j = q_i · k_j for every j, keeping a running max m and a running sum
//           l = Σ_j exp(s_j − m) ("online": when a larger score arrives, the sum so far is
//           rescaled by exp(m_old − m_new)), so no array of n_k scores is needed;
//   pass 2: recomputes each s_j and adds exp(s_j − m) / l · v_j into its output row.
// The price of keeping no N-sized array is computing every score twice.
//
// Launch shape: 1-D grid of ceil(n_q / blockDim.x) blocks, any blockDim.x (the host uses 64:
// with only n_q threads in total, small blocks spread them over more SMs).
//
// Bytes moved (f32 = 4 bytes):
//   compulsory DRAM traffic: read Q, K, V once, write out once:
//     4·(n_q·d + n_k·d + n_k·d_v + n_q·d_v);
//   requested by the threads: every thread reads all of K twice and V once,
//     4·n_q·n_k·(2·d + d_v), and reads and writes its output row once per key,
//     8·n_q·n_k·d_v; most of it hits in cache, because the 32 threads of a warp read the
//     same k_j / v_j at the same time (one broadcast load serves the warp).
// Work: 2·n_q·n_k·(2·d + d_v) FLOPs (the scores twice) and 2·n_q·n_k exp().

// ANCHOR: naive_kernel
extern "C" __global__ void ch01_attention_naive(const float* __restrict__ q,
                                                const float* __restrict__ k,
                                                const float* __restrict__ v,
                                                float* __restrict__ out,
                                                int n_q, int n_k, int d, int d_v)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_q) {
        return;
    }
    const float* q_i = q + (long long)i * d;
    float* out_i = out + (long long)i * d_v;

    // Pass 1: running max m and running sum l = Σ exp(s_j − m).
    float m = __int_as_float(0xff800000);  // −∞
    float l = 0.0f;
    for (int j = 0; j < n_k; ++j) {
        const float* k_j = k + (long long)j * d;
        float s = 0.0f;
        for (int c = 0; c < d; ++c) {
            s += q_i[c] * k_j[c];
        }
        if (s > m) {
            // exp(s_old − m_new) = exp(s_old − m_old) · exp(m_old − m_new): rescale the sum.
            // On the first key m = −∞ and l = 0, so this is 0 · 0 + 1.
            l = l * expf(m - s) + 1.0f;
            m = s;
        } else {
            l += expf(s - m);
        }
    }

    // Pass 2: out_i = Σ_j exp(s_j − m) / l · v_j, accumulated in the output row itself
    // (a register array of d_v floats would need d_v known at compile time; a version that
    // keeps 32-column chunks in registers and recomputes the scores per chunk measured no
    // faster on an H100, because the serial score loop is what costs).
    for (int c = 0; c < d_v; ++c) {
        out_i[c] = 0.0f;
    }
    const float inv_l = 1.0f / l;
    for (int j = 0; j < n_k; ++j) {
        const float* k_j = k + (long long)j * d;
        float s = 0.0f;
        for (int c = 0; c < d; ++c) {
            s += q_i[c] * k_j[c];
        }
        const float w = expf(s - m) * inv_l;
        const float* v_j = v + (long long)j * d_v;
        for (int c = 0; c < d_v; ++c) {
            out_i[c] += w * v_j[c];
        }
    }
}
// ANCHOR_END: naive_kernel
