#!/usr/bin/env python3
"""PyTorch peers of chapter 5's softmax benchmark (`ch05 --bench-softmax`), on the same shapes
(xtask/baselines/ch05_softmax_shapes.txt: "batch heads nq nk" per line) and dtypes (f32, bf16).

Rows written (CSV header as ch05's: impl,dtype,batch,heads,nq,nk,mask,median_ms,modelled_bytes,
gbps,copy_fraction):

- torch_copy      dst.copy_(x): PyTorch's device copy of the tensor, the ceiling in this run;
- torch_softmax   torch.softmax(x, dim=-1), mask "none": the peer of ch05's fused kernel with no
                  mask and scale 1 (the same computation: a row softmax, read once, written once);
- torch_masked_fill_softmax   torch.softmax((x * scale).masked_fill(mask, -inf), dim=-1), mask
                  "causal", eager: three kernels with a stored (batch, 1, nq, nk) boolean mask
                  (True = masked, causal bottom-right aligned as in chapter 2), the peer of
                  ch05's unfused chain (scale, add a stored 0/-inf mask, softmax).

modelled_bytes is the byte model of ch05 (SoftmaxPipeline::bytes_moved): 2T for the copy and the
softmax, 7T for the three-step chain, with T the tensor's bytes, so that rates compare with ch05's
rows at equal work; copy_fraction is gbps over torch_copy's in this run. Timing: CUDA events
around each call, --warmup untimed calls, median of --repeats.

    python3 xtask/baselines/torch_softmax.py --csv out.csv [--shapes FILE] [--warmup 5] [--repeats 30]
"""
import argparse
import math
import os
import statistics
import sys

import torch
from torch_timing import per_call_ms

HEADER = "impl,dtype,batch,heads,nq,nk,mask,median_ms,modelled_bytes,gbps,copy_fraction"
SCALE = 1.0 / math.sqrt(128.0)  # as ch05's BENCH_SCALE: 1/sqrt(d) for d = 128
DTYPES = [("f32", torch.float32), ("bf16", torch.bfloat16)]


def read_shapes(path):
    shapes = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#")[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) != 4:
                sys.exit(f"{path} line {n}: want 'batch heads nq nk', got {line!r}")
            shapes.append(tuple(int(v) for v in fields))
    return shapes


def time_ms(fn, warmup, repeats):
    return statistics.median(per_call_ms(fn, warmup, repeats))


def causal_mask(batch, nq, nk, device):
    """(batch, 1, nq, nk) bool, True where masked: query i sees keys j <= i + nk - nq."""
    i = torch.arange(nq, device=device).view(nq, 1)
    j = torch.arange(nk, device=device).view(1, nk)
    return (j > i + nk - nq).view(1, 1, nq, nk).expand(batch, 1, nq, nk).contiguous()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", required=True)
    p.add_argument("--shapes", default=os.path.join(here, "ch05_softmax_shapes.txt"))
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_softmax.py needs a CUDA device")
    device = torch.device("cuda")
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(device)}")
    rows = []
    for batch, heads, nq, nk in read_shapes(args.shapes):
        mask = causal_mask(batch, nq, nk, device)
        for dtype_name, dtype in DTYPES:
            gen = torch.Generator(device=device).manual_seed(nk)
            x = torch.randn(batch, heads, nq, nk, device=device, dtype=dtype, generator=gen)
            tensor_bytes = x.numel() * x.element_size()
            dst = torch.empty_like(x)

            def record(impl, mask_name, ms, modelled, copy_gbps):
                gbps = modelled / (ms * 1e-3) / 1e9
                fraction = gbps / copy_gbps if copy_gbps else 1.0
                rows.append(f"{impl},{dtype_name},{batch},{heads},{nq},{nk},{mask_name},{ms:.5f},"
                            f"{modelled},{gbps:.1f},{fraction:.4f}")
                print(f"{impl:26} {dtype_name:5} {batch}x{heads}x{nq} x {nk:<6} {mask_name:6} "
                      f"{ms:9.4f} ms {gbps:7.0f} GB/s {fraction:6.3f}x copy")
                return gbps

            with torch.no_grad():
                ms = time_ms(lambda: dst.copy_(x), args.warmup, args.repeats)
                copy_gbps = record("torch_copy", "none", ms, 2 * tensor_bytes, None)
                ms = time_ms(lambda: torch.softmax(x, dim=-1), args.warmup, args.repeats)
                record("torch_softmax", "none", ms, 2 * tensor_bytes, copy_gbps)
                chain = lambda: torch.softmax((x * SCALE).masked_fill(mask, float("-inf")), dim=-1)
                ms = time_ms(chain, args.warmup, args.repeats)
                record("torch_masked_fill_softmax", "causal", ms, 7 * tensor_bytes, copy_gbps)
            del x, dst
            torch.cuda.empty_cache()
    os.makedirs(os.path.dirname(os.path.abspath(args.csv)), exist_ok=True)
    with open(args.csv, "w") as f:
        f.write(HEADER + "\n" + "\n".join(rows) + "\n")
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
