// async_copy.cuh — asynchronous copies global → shared (cp.async, sm_80+), shared by the kernels
// that pipeline their loads: chapter 5's prefetching softmax block and chapter 7's pipelined and
// tensor-core decode kernels (prepended by kernel_source!). A copy of `bytes` 0 writes zeros and
// reads nothing (cp.async's src-size), which is how rows past a sequence's end are zero-filled.

__device__ __forceinline__ unsigned smem_addr(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}
// 16 bytes global → shared; `bytes` 16 copies, 0 writes zeros and reads nothing.
__device__ __forceinline__ void copy16(void *dst, const void *src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
// 4 bytes global → shared, zero-filled the same way.
__device__ __forceinline__ void copy4(void *dst, const void *src, int bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void copy_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int PENDING> __device__ __forceinline__ void copy_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING));
}
