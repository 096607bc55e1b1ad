"""What PyTorch's SDPA launches for one decode step: the CUDA kernels of each backend at the long
shapes of chapter 7's benchmark, with their grids, blocks, registers and time on the GPU.

Usage:
  python3 xtask/baselines/torch_decode_kernels.py --out DIR [--calls 20]

For each model and long point of torch_decode.py (contexts of 16 k and more) and each backend
(CUDNN_ATTENTION, FLASH_ATTENTION), --calls decode steps run back to back under torch.profiler
(CUPTI) after a warm-up. Every kernel they launch is listed once, with how many times it ran per
step, its median time per launch, its grid and block, registers per thread and shared memory per
block; `span` is the time from the first kernel's start to the last one's end divided by the
steps, gaps included. This is how chapter 7 reads how cuDNN splits a decode step (its main kernel
and the merge of its splits) beside its own main and combine kernels.

Writes DIR/torch_decode_kernels.csv and prints the same table.
"""

import argparse
import csv
import json
import math
import os
import statistics
import sys
import tempfile

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch_decode import BACKENDS, MODELS, POINTS

LONG_POINTS = [(b, c) for b, c in POINTS if b * c >= 256 * 1024]  # where chapter 7's targets apply
HEADER = ["impl", "batch", "q_heads", "kv_heads", "context", "head_dim", "kernel", "launches_per_step",
          "median_us", "grid", "block", "registers", "shared_bytes", "span_us_per_step"]


def kernel_events(trace_path):
    with open(trace_path) as f:
        trace = json.load(f)
    return [e for e in trace.get("traceEvents", []) if e.get("cat") == "kernel"]


def profile_point(q_heads, kv_heads, head_dim, batch, context, backend, calls):
    gen = torch.Generator(device="cuda").manual_seed(0)
    k = torch.randn(batch, kv_heads, context, head_dim, device="cuda", dtype=torch.bfloat16, generator=gen)
    v = torch.randn_like(k)
    q = torch.randn(batch, q_heads, 1, head_dim, device="cuda", dtype=torch.bfloat16, generator=gen)

    def step():
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    with torch.no_grad():
        for _ in range(5):
            step()
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            for _ in range(calls):
                step()
            torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "trace.json")
        prof.export_chrome_trace(path)
        events = kernel_events(path)
    if not events:
        return []
    span = (max(e["ts"] + e["dur"] for e in events) - min(e["ts"] for e in events)) / calls
    by_name = {}
    for e in events:
        by_name.setdefault(e["name"], []).append(e)
    rows = []
    for name, evs in by_name.items():
        args = evs[0].get("args", {})
        rows.append([name, f"{len(evs) / calls:g}", f"{statistics.median(e['dur'] for e in evs):.2f}",
                     "x".join(str(g) for g in args.get("grid", [])), "x".join(str(b) for b in args.get("block", [])),
                     args.get("registers per thread", ""), args.get("shared memory", ""), f"{span:.2f}"])
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--calls", type=int, default=20, help="decode steps profiled back to back")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to profile", file=sys.stderr)
        return 1
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for q_heads, kv_heads, head_dim in MODELS:
        for batch, context in LONG_POINTS:
            for impl, backend in BACKENDS.items():
                try:
                    found = profile_point(q_heads, kv_heads, head_dim, batch, context, backend, args.calls)
                except RuntimeError as e:
                    print(f"{impl} refused {batch} x {context}: {str(e).splitlines()[0]}")
                    continue
                for r in found:
                    rows.append([impl, batch, q_heads, kv_heads, context, head_dim] + r)
                torch.cuda.empty_cache()
    path = os.path.join(args.out, "torch_decode_kernels.csv")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    for r in rows:
        print(f"{r[0]:<17} {r[2]:>2}/{r[3]} {r[1]:>2} x {r[4]:>6}  {r[7]:>4}/step {r[8]:>8} us  grid {r[9]:<12} "
              f"block {r[10]:<10} regs {r[11]:<4} smem {r[12]:<6} span {r[13]:>8} us  {r[6][:90]}")
    print("wrote", path, "(", math.fsum(1 for _ in rows), "kernel rows )")
    return 0


if __name__ == "__main__":
    sys.exit(main())
