"""Time Hugging Face's RoPE, the peer of chapter 6's kernel (`ch06 --bench-gpu`), in the same run
as the device's copy bandwidth.

Usage:
  python3 xtask/baselines/torch_rope.py --csv out.csv [--repeats 20]

What runs: `apply_rotary_pos_emb` imported from transformers.models.llama.modeling_llama, on q and
k of shape (1, tokens, heads, head_dim) -- the layout of chapter 6's kernel, HF's projection
output before its transpose, for which HF's docstring says unsqueeze_dim=2 -- and, as HF's
attention calls it, on (1, heads, tokens, head_dim) with unsqueeze_dim=1. cos and sin come from
LlamaRotaryEmbedding at positions 0 .. tokens-1 (rope_theta 500 000, full rotary), made once
outside the timing, as a model makes them once per forward for all its layers. Eager PyTorch
only: no torch.compile (which would fuse the elementwise ops into one kernel).
Shapes, as the Rust benchmark (chapters/ch06-rope/src/bench.rs, BENCH_SHAPES): 16 384 tokens x
32 heads x d = 128 (Llama) and 16 384 x 9 x 64 (SmolLM2-135M), in bfloat16 and float32.
Timing: CUDA events around each call, 3 warm-up calls, the median of --repeats calls.

The CSV has the Rust benchmark's columns, so the two can be joined on (dtype, shape):
  impl,dtype,tokens,heads,head_dim,rotary_dim,median_ms,modelled_bytes,gbps,copy_fraction
with impl `copy` (y.copy_(x), the ceiling), `hf_apply_rotary_pos_emb_bshd` and
`hf_apply_rotary_pos_emb_bhsd`. Their median_ms is one call, which rotates q AND k, so their
`modelled_bytes` are the least possible traffic for two tensors, 2 x (read + write) = 4*|q|, and
gbps = modelled_bytes / time is comparable with the Rust rows (one tensor, 2*|q|); copy_fraction
is gbps over the copy's.

What HF's function really moves (eager, per tensor, N = |q| bytes; cos and sin are
(tokens, head_dim), 1/heads of N, and are broadcast):
  q * cos                   read N, write N
  rotate_half(q): -x2       read N/2, write N/2    (x1, x2 are views)
                  cat(...)  read N, write N
  ... * sin                 read N, write N
  sum of the two            read 2N, write N
  in all                    about 10 N (5 times the 2 N of an in-place kernel), and 4 N of
                            temporaries allocated and freed per call by the caching allocator.
So its bandwidth-equivalent speed (bytes above / time) is bounded by about 1/5 of the copy's.
bf16 numerics differ too: HF casts cos and sin to bf16 and rounds every op to bf16 (four
roundings), where chapter 6's kernel computes in f32 and rounds once.
"""

import argparse
import csv
import statistics
import sys

import torch
import transformers
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb
from torch_timing import per_call_ms

SHAPES = [(16384, 32, 128), (16384, 9, 64)]  # (tokens, heads, head_dim)
DTYPES = {"bf16": torch.bfloat16, "f32": torch.float32}
ROPE_THETA = 500000.0
WARMUP = 3
HEADER = ["impl", "dtype", "tokens", "heads", "head_dim", "rotary_dim", "median_ms", "modelled_bytes", "gbps",
          "copy_fraction"]


def median_ms(fn, repeats):
    """Median of `repeats` CUDA-event timings of fn() after WARMUP untimed calls."""
    return statistics.median(per_call_ms(fn, WARMUP, repeats))


def cos_sin(tokens, heads, head_dim, dtype):
    """cos, sin of shape (1, tokens, head_dim) in `dtype`, from HF's LlamaRotaryEmbedding."""
    config = LlamaConfig(
        hidden_size=heads * head_dim,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=head_dim,
        max_position_embeddings=tokens,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
    )
    rotary = LlamaRotaryEmbedding(config, device="cuda")
    x = torch.empty(1, tokens, head_dim, device="cuda", dtype=dtype)
    positions = torch.arange(tokens, device="cuda").unsqueeze(0)
    with torch.no_grad():
        return rotary(x, positions)


def bench(tokens, heads, head_dim, dtype_name, repeats):
    dtype = DTYPES[dtype_name]
    gen = torch.Generator(device="cuda").manual_seed(0)
    shape = (1, tokens, heads, head_dim)
    q = torch.randn(shape, device="cuda", dtype=dtype, generator=gen)
    k = torch.randn(shape, device="cuda", dtype=dtype, generator=gen)
    y = torch.empty_like(q)
    cos, sin = cos_sin(tokens, heads, head_dim, dtype)
    n_bytes = q.numel() * q.element_size()

    rows = []
    copy_ms = median_ms(lambda: y.copy_(q), repeats)
    copy_gbps = 2 * n_bytes / (copy_ms * 1e-3) * 1e-9

    def row(impl, ms, moved):
        gbps = moved / (ms * 1e-3) * 1e-9
        rows.append([impl, dtype_name, tokens, heads, head_dim, head_dim, f"{ms:.6f}", moved, f"{gbps:.1f}",
                     f"{gbps / copy_gbps:.4f}"])

    row("copy", copy_ms, 2 * n_bytes)
    with torch.no_grad():
        ms = median_ms(lambda: apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2), repeats)
        row("hf_apply_rotary_pos_emb_bshd", ms, 4 * n_bytes)
        qt, kt = q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous()
        ms = median_ms(lambda: apply_rotary_pos_emb(qt, kt, cos, sin, unsqueeze_dim=1), repeats)
        row("hf_apply_rotary_pos_emb_bhsd", ms, 4 * n_bytes)
    del q, k, y, qt, kt
    torch.cuda.empty_cache()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True, help="output CSV path")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to time", file=sys.stderr)
        return 1
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, transformers {transformers.__version__}")
    # transformers may wrap the function to swap in a hub kernel; say what is being timed.
    print("timing", apply_rotary_pos_emb.__module__, apply_rotary_pos_emb.__qualname__,
          "(wrapped)" if hasattr(apply_rotary_pos_emb, "__wrapped__") else "")
    rows = []
    for tokens, heads, head_dim in SHAPES:
        for dtype_name in DTYPES:
            rows.extend(bench(tokens, heads, head_dim, dtype_name, args.repeats))
    with open(args.csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)
    width = max(len(r[0]) for r in rows)
    print(f"{'impl':<{width}} dtype tokens x heads x d   median ms    GB/s  of copy")
    for r in rows:
        print(f"{r[0]:<{width}} {r[1]:>5} {r[2]:>6} x {r[3]:>2} x {r[4]:>3} {float(r[6]):>11.4f} {float(r[8]):>7.0f} "
              f"{100 * float(r[9]):>7.1f} %")
    print("wrote", args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
