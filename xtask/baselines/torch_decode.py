"""Time PyTorch's SDPA at decode, the peer of chapter 7's decode kernel (`ch07 --bench-decode`), in
the same run as the device's copy bandwidth.

Usage:
  python3 xtask/baselines/torch_decode.py --csv out.csv [--repeats 20]

What runs: torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True) with q of
shape (batch, q_heads, 1, head_dim) -- one new token per sequence -- against a contiguous bfloat16
cache k, v of shape (batch, kv_heads, context, head_dim), no mask (the one query sits after every
cached token), under torch.nn.attention.sdpa_kernel with one backend each: CUDNN_ATTENTION and
FLASH_ATTENTION. A backend that refuses a shape gives a row with median_ms nan (its reason printed).
Shapes, as the Rust benchmark (chapters/ch07-kv-cache/src/gpu/bench.rs, MODELS and bench_points):
Llama-3-8B (32 query heads over 8 KV heads, d = 128) and SmolLM2-135M (9 over 3, d = 64); batch 16
at contexts 1 k ... 64 k, and 4 x 64 k, 1 x 256 k. One allocation of 16 x 64 k slots per model
serves every point, viewed contiguously as (batch, kv_heads, context, head_dim).
Timing: CUDA events around --calls back-to-back calls (10 by default, as the Rust benchmark: a decoder
issues one step after another, while one call timed from an idle stream also counts Python's ~20 us
of dispatch), 3 warm-up rounds, the median of --repeats timings per call (torch_timing.per_call_ms).

The CSV has the Rust benchmark's columns, so the two can be joined on the shape:
  impl,dtype,batch,q_heads,kv_heads,context,head_dim,median_ms,kv_bytes,gbps,copy_fraction,splits
with impl `copy` (a uint8 buffer of the bf16 cache's size at 16 x 16 k, y.copy_(x); kv_bytes is
read + written), `torch_sdpa_cudnn` and `torch_sdpa_flash` (kv_bytes: K and V, 2 * 2 bytes per
element; splits empty). gbps = kv_bytes / time, copy_fraction = gbps / the copy's.
"""

import argparse
import csv
import math
import statistics
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch_timing import per_call_ms

MODELS = [(32, 8, 128), (9, 3, 64)]  # (q_heads, kv_heads, head_dim)
CACHE_BATCH, CACHE_CONTEXT = 16, 65536
POINTS = [(16, 1 << p) for p in range(10, 17)] + [(4, 65536), (1, 262144)]  # (batch, context)
COPY_POINT = (16, 16384)
BACKENDS = {"torch_sdpa_cudnn": SDPBackend.CUDNN_ATTENTION, "torch_sdpa_flash": SDPBackend.FLASH_ATTENTION}
WARMUP = 3
HEADER = ["impl", "dtype", "batch", "q_heads", "kv_heads", "context", "head_dim", "median_ms", "kv_bytes", "gbps",
          "copy_fraction", "splits"]


def median_ms(fn, repeats, calls):
    return statistics.median(per_call_ms(fn, WARMUP, repeats, calls))


def kv_bytes(kv_heads, head_dim, batch, context):
    """K and V in bf16: 2 tensors x 2 bytes per element."""
    return 2 * 2 * batch * kv_heads * context * head_dim


def bench_model(q_heads, kv_heads, head_dim, repeats, calls):
    rows = []
    n_copy = kv_bytes(kv_heads, head_dim, *COPY_POINT)
    src = torch.zeros(n_copy, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = median_ms(lambda: dst.copy_(src), repeats, calls)
    copy_gbps = 2 * n_copy / (copy_ms * 1e-3) * 1e-9
    rows.append(["copy", "bf16", COPY_POINT[0], q_heads, kv_heads, COPY_POINT[1], head_dim, f"{copy_ms:.6f}", 2 * n_copy,
                 f"{copy_gbps:.1f}", "1.0000", ""])
    del src, dst

    gen = torch.Generator(device="cuda").manual_seed(0)
    slots = CACHE_BATCH * kv_heads * CACHE_CONTEXT * head_dim
    k_all = torch.randn(slots, device="cuda", dtype=torch.bfloat16, generator=gen)
    v_all = torch.randn(slots, device="cuda", dtype=torch.bfloat16, generator=gen)
    for batch, context in POINTS:
        shape = (batch, kv_heads, context, head_dim)
        n = math.prod(shape)
        k, v = k_all[:n].view(shape), v_all[:n].view(shape)
        q = torch.randn(batch, q_heads, 1, head_dim, device="cuda", dtype=torch.bfloat16, generator=gen)
        moved = kv_bytes(kv_heads, head_dim, batch, context)
        for impl, backend in BACKENDS.items():
            def call():
                with sdpa_kernel(backend):
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
            try:
                with torch.no_grad():
                    ms = median_ms(call, repeats, calls)
                gbps = moved / (ms * 1e-3) * 1e-9
                rows.append([impl, "bf16", batch, q_heads, kv_heads, context, head_dim, f"{ms:.6f}", moved,
                             f"{gbps:.1f}", f"{gbps / copy_gbps:.4f}", ""])
            except RuntimeError as e:
                print(f"{impl} refused {shape}: {str(e).splitlines()[0]}")
                rows.append([impl, "bf16", batch, q_heads, kv_heads, context, head_dim, "nan", moved, "nan", "nan", ""])
    del k_all, v_all
    torch.cuda.empty_cache()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True, help="output CSV path")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--calls", type=int, default=10, help="back-to-back calls per timing")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to time", file=sys.stderr)
        return 1
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    rows = []
    for q_heads, kv_heads, head_dim in MODELS:
        rows.extend(bench_model(q_heads, kv_heads, head_dim, args.repeats, args.calls))
    with open(args.csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    width = max(len(r[0]) for r in rows)
    print(f"{'impl':<{width}} heads  batch x context    median ms    GB/s  of copy")
    for r in rows:
        print(f"{r[0]:<{width}} {r[3]:>2}/{r[4]:<2} {r[2]:>5} x {r[5]:>7} {float(r[7]):>11.4f} {float(r[9]):>7.0f} "
              f"{100 * float(r[10]):>7.1f} %")
    print("wrote", args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
