"""PyTorch's peer of `ch05 --bench-qkv`: the QKV projection as three F.linear calls against one
over the concatenated weight [W_q; W_k; W_v], on the same shapes, dtypes and timing rules.

Usage:
  python3 torch_qkv.py --csv torch_qkv.csv [--warmup 5] [--repeats 30]

Shapes: SmolLM2-135M (d_model 576, 9 query and 3 KV heads of 64) and Llama-3-8B (4096, 32:8
heads of 128), tokens 1 (decode) and 4096 (prefill); float32 (TF32 off, as the Rust side's
CUBLAS_DEFAULT_MATH) and bfloat16. Weights are (out features, d_model) as nn.Linear stores
them, N(0, 1/d_model); X is N(0, 1).

Timing, as chapter 5's Rust benchmark: CUDA events, `warmup` untimed calls, the median of
`repeats` timed ones; at decode (≤ 16 tokens) each timing covers 50 back-to-back calls and is
divided by 50, and the calls cycle through copies of the weights adding up to ≥ 128 MiB, so
that no call finds its weights in the 50 MB L2 (a decoder reads another layer's every time).

CSV columns, those of ch05_qkv.csv:
  impl,dtype,model,d_model,heads,kv_heads,head_dim,tokens,median_ms,min_ms,tflops,modelled_bytes,gbps,speedup
with impl torch_three_linear / torch_one_linear; modelled bytes as the Rust byte model (X read
three times or once, weights read and outputs written once); speedup = three's median over
this row's.
"""

import argparse
import csv
import math
import statistics

import torch
import torch.nn.functional as F
from torch_timing import per_call_ms

MODELS = [("SmolLM2-135M", 576, 9, 3, 64), ("Llama-3-8B", 4096, 32, 8, 128)]
TOKENS = [1, 4096]
DTYPES = [("f32", torch.float32, 4), ("bf16", torch.bfloat16, 2)]
L2_FLUSH_BYTES = 128 << 20
HEADER = ("impl,dtype,model,d_model,heads,kv_heads,head_dim,tokens,median_ms,min_ms,tflops,"
          "modelled_bytes,gbps,speedup").split(",")


def time_per_call(fn, warmup, repeats, calls):
    samples = per_call_ms(fn, warmup, repeats, calls)
    return statistics.median(samples), min(samples)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    dev = torch.device("cuda")
    rows = []
    for dtype_name, dtype, size in DTYPES:
        for model, d_model, heads, kv_heads, d in MODELS:
            q_cols, kv_cols = heads * d, kv_heads * d
            cols = q_cols + 2 * kv_cols
            for tokens in TOKENS:
                decode = tokens <= 16
                calls = 50 if decode else 1
                copies = max(1, math.ceil(L2_FLUSH_BYTES / (cols * d_model * size))) if decode else 1
                x = torch.randn(tokens, d_model, device=dev, dtype=dtype)
                scale = d_model ** -0.5
                ws = [[(torch.randn(r, d_model, device=dev) * scale).to(dtype) for r in (q_cols, kv_cols, kv_cols)]
                      for _ in range(copies)]
                w_cat = [torch.cat(w, 0) for w in ws]
                state = {"i": 0}

                def three():
                    w_q, w_k, w_v = ws[state["i"] % copies]
                    state["i"] += 1
                    return F.linear(x, w_q), F.linear(x, w_k), F.linear(x, w_v)

                def one():
                    w = w_cat[state["i"] % copies]
                    state["i"] += 1
                    return F.linear(x, w)

                timings = {}
                for name, fn, x_reads in (("torch_three_linear", three, 3), ("torch_one_linear", one, 1)):
                    med, mn = time_per_call(fn, args.warmup, args.repeats, calls)
                    modelled = (x_reads * tokens * d_model + cols * d_model + tokens * cols) * size
                    timings[name] = med
                    flops = 2 * tokens * d_model * cols
                    rows.append(dict(impl=name, dtype=dtype_name, model=model, d_model=d_model, heads=heads,
                                     kv_heads=kv_heads, head_dim=d, tokens=tokens, median_ms=f"{med:.6f}",
                                     min_ms=f"{mn:.6f}", tflops=f"{flops / (med * 1e-3) / 1e12:.3f}",
                                     modelled_bytes=modelled, gbps=f"{modelled / (med * 1e-3) / 1e9:.1f}",
                                     speedup=f"{timings['torch_three_linear'] / med:.4f}"))
                    print(",".join(str(rows[-1][k]) for k in HEADER), flush=True)
                del ws, w_cat, x
                torch.cuda.empty_cache()
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
