// ch12_copy.cu — the two smallest kernels of chapter 12: a copy that measures the memory roof
// of the roofline, and an increment that shows what a CUDA graph saves per launch.
//
// ch12_copy:  dst[i] = src[i] for n floats, moved as float4 (16-byte) vectors.
//   No arithmetic at all: its time is the time to read n·4 bytes and write n·4 bytes, so
//   (bytes read + bytes written) / time = 8·n / t is the copy bandwidth, the slope of the
//   roofline. With buffers far larger than the 50 MB L2 of an H100 every byte goes to HBM.
//   Launch: 1-D grid of ceil(n/4 / 256) blocks of 256 threads, one float4 per thread (no
//   grid-stride loop: a block is so short that scheduling more blocks costs nothing and
//   keeps enough loads in flight). The host checks that n is a multiple of 4; cudarc's
//   allocations are 256-byte aligned, so every float4 access is aligned.
//   Bytes moved: 4·n read + 4·n written = 8·n.
//
// ch12_increment:  x[i] += delta for n floats.
//   The smallest kernel that leaves a trace: k launches add k·delta to every element, so a
//   CUDA graph that captured k launches can be checked against k direct launches, and with n
//   small (a few thousand) its run time (~2 µs) is of the order of the launch overhead the
//   graph removes. Launch: 1-D grid of ceil(n / 256) blocks of 256 threads, one element each.
//   Bytes moved: 4·n read + 4·n written = 8·n; n FLOPs.

extern "C" __global__ void ch12_copy(const float4* __restrict__ src, float4* __restrict__ dst,
                                     long long n_vectors) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n_vectors) {
        dst[i] = src[i];
    }
}

extern "C" __global__ void ch12_increment(float* x, float delta, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        x[i] += delta;
    }
}
