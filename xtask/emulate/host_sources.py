"""Write host-compilable copies of the kernels for the CPU emulation (see README.md).

The few inline PTX instructions become C++ (cvt.f32.f16 -> host_f16_to_f32, ex2.approx -> exp2f,
cvt.rn.bf16x2 -> host_pack_bf16x2, lop3 -> its bit select; the tensor-core kernel's section of PTX primitives -> the
warp-collective host versions of mma_host.h), the cp.async helpers copy at once (a copy that
completes early is one of the orders the hardware allows), and the dynamic shared memory of the
pipelined and tensor-core kernels is a buffer the harness allocates. Usage: python3 host_sources.py OUTDIR
"""
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parents[2] / "kernels"
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)


def fix(s):
    s = s.replace('asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(s));', "f = host_f16_to_f32(s);")
    s = s.replace('asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));', "y = exp2f(x);")
    s = s.replace('asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));',
                  "r = host_pack_bf16x2(lo, hi);")
    s = s.replace('asm("lop3.b32 %0, %1, %2, %3, 0xE4;" : "=r"(r) : "r"(a), "r"(b), "r"(mask));',
                  "r = (a & mask) | (b & ~mask);")
    return s


HOST_COPIES = """__device__ __forceinline__ void copy16(void *dst, const void *src, int bytes) {
    if (bytes) memcpy(dst, src, 16); else memset(dst, 0, 16);
}
__device__ __forceinline__ void copy4(void *dst, const void *src, int bytes) {
    if (bytes) memcpy(dst, src, 4); else memset(dst, 0, 4);
}
__device__ __forceinline__ void copy_commit() {}
template <int PENDING> __device__ __forceinline__ void copy_wait() {}
inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
inline void __syncwarp() { my_warp->bar.arrive_and_wait(); }
"""


def cut(s, start, end, replacement):
    """s with the lines from the one holding `start` to the one holding `end` replaced."""
    a, b = s.index(start), s.index(end)
    return s[:a] + replacement + s[s.index("\n", b) + 1:]


# async_copy.cuh, which the host prepends to both chapters' kernels, becomes HOST_COPIES.
common = HOST_COPIES + fix((root / "ch07_decode_common.cuh").read_text())
registers = fix((root / "ch07_decode_attention.cu").read_text())
dyn = ("extern __shared__ __align__(16) unsigned char stages[];", "unsigned char *stages = g_dyn_smem;")
pipelined = fix((root / "ch07_decode_pipelined.cu").read_text()).replace(*dyn)
# The tensor-core kernel: its PTX primitives become mma_host.h's warp-collective host versions.
mma = fix((root / "ch07_decode_mma.cu").read_text()).replace(*dyn)
mma = cut(mma, "// ---- PTX primitives", "// ---- end of PTX primitives", '#include "mma_host.h"\n')
(out / "decode_host.cu").write_text("inline unsigned char *g_dyn_smem;\n" + "\n".join([common, registers, pipelined, mma]))
# Chapter 5's prefetching block: its copies (HOST_COPIES again) complete at once, its two row
# buffers are the harness's dynamic shared memory.
softmax = HOST_COPIES + fix((root / "ch05_softmax_fusion.cu").read_text())
softmax = softmax.replace("extern __shared__ __align__(16) unsigned char prefetch_buffers[];",
                          "unsigned char *prefetch_buffers = g_dyn_smem;")
(out / "softmax_host.cu").write_text("inline unsigned char *g_dyn_smem;\n" + softmax)
print(f"wrote {out}/decode_host.cu and {out}/softmax_host.cu")
