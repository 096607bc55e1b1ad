"""Time PyTorch's scaled_dot_product_attention on the shapes a chapter benchmarks.

Usage:
  python3 torch_sdpa.py --shapes ch02_bench_shapes.txt --backend math --dtype float32 --csv torch_math.csv

The CSV has the columns of the chapter benchmarks, so the two can be joined on the shape:
  impl,batch,heads,seq,head_dim,causal,median_ms,tflops
with impl = torch_<backend> (plus _bf16 / _f16 for those dtypes). A shape that runs out of
memory is recorded as `oom`, one the backend cannot run (e.g. FLASH in float32) as
`unsupported`, instead of stopping the run.

Timing: CUDA events around each call, 3 warm-up calls, the median of --repeats calls (10).
FLOPs: the two matrix products, 2·N·N·d multiply-adds each per (batch, head), i.e.
4·B·H·N²·d, halved when causal (half the scores are masked and the fast backends skip them).

The shapes file holds one shape per line, `batch heads seq head_dim causal` (spaces or
commas; causal as 0/1, true/false, or causal/full); `#` starts a comment; a first line of
column names is allowed and then gives the column order.
"""

import argparse
import csv
import statistics
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.functional import scaled_dot_product_attention
from torch_timing import per_call_ms

BACKENDS = {
    "math": SDPBackend.MATH,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_SUFFIX = {"float32": "", "bfloat16": "_bf16", "float16": "_f16"}
COLUMNS = ["batch", "heads", "seq", "head_dim", "causal"]
TRUE = {"1", "true", "yes", "causal"}
FALSE = {"0", "false", "no", "full", "none"}


def parse_flag(text):
    t = text.strip().lower()
    if t in TRUE:
        return True
    if t in FALSE:
        return False
    raise ValueError(f"causal must be 0/1, true/false or causal/full, not {text!r}")


def read_shapes(path):
    """[(batch, heads, seq, head_dim, causal)] from the shapes file."""
    shapes, order = [], COLUMNS
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split("#", 1)[0].replace(",", " ").split()
            if not fields:
                continue
            if not shapes and not fields[0].isdigit():
                order = [name.lower() for name in fields]
                missing = [c for c in COLUMNS[:4] if c not in order]
                if missing:
                    sys.exit(f"{path}:{number}: header lacks {missing}")
                continue
            row = dict(zip(order, fields))
            try:
                shape = tuple(int(row[c]) for c in COLUMNS[:4])
                causal = parse_flag(row["causal"]) if "causal" in row else False
            except (KeyError, ValueError) as e:
                sys.exit(f"{path}:{number}: cannot read {line.strip()!r}: {e}")
            shapes.append(shape + (causal,))
    if not shapes:
        sys.exit(f"{path}: no shapes")
    return shapes


def time_ms(fn, warmup, repeats):
    """Median milliseconds of `fn` over `repeats` calls, each between two CUDA events."""
    return statistics.median(per_call_ms(fn, warmup, repeats))


def measure(shape, backend, dtype, warmup, repeats):
    """(median_ms, tflops) or ("oom"/"unsupported", same) for one shape."""
    batch, heads, seq, head_dim, causal = shape
    gen = torch.Generator(device="cuda").manual_seed(0)
    try:
        q, k, v = (
            torch.randn(batch, heads, seq, head_dim, device="cuda", dtype=dtype, generator=gen)
            for _ in range(3)
        )
        with sdpa_kernel(backend):
            ms = time_ms(lambda: scaled_dot_product_attention(q, k, v, is_causal=causal), warmup, repeats)
    except torch.cuda.OutOfMemoryError:
        return "oom", "oom"
    except RuntimeError as e:
        text = str(e).lower()
        if "out of memory" in text:
            return "oom", "oom"
        if "no available kernel" in text or "not supported" in text or "unsupported" in text:
            return "unsupported", "unsupported"
        raise
    finally:
        q = k = v = None
        torch.cuda.empty_cache()
    flops = 4.0 * batch * heads * seq * seq * head_dim / (2.0 if causal else 1.0)
    return f"{ms:.4f}", f"{flops / (ms * 1e-3) / 1e12:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", required=True)
    parser.add_argument("--backend", choices=BACKENDS, default="math")
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--csv", required=True, help="output CSV file")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible to PyTorch")

    name = f"torch_{args.backend}{DTYPE_SUFFIX[args.dtype]}"
    print(f"{name} on {torch.cuda.get_device_name()} (torch {torch.__version__})")
    with open(args.csv, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["impl"] + COLUMNS + ["median_ms", "tflops"])
        for shape in read_shapes(args.shapes):
            ms, tflops = measure(shape, BACKENDS[args.backend], DTYPES[args.dtype], args.warmup, args.repeats)
            row = [name, *shape[:4], int(shape[4]), ms, tflops]
            out.writerow(row)
            f.flush()
            print("  ".join(str(x) for x in row))


if __name__ == "__main__":
    main()
