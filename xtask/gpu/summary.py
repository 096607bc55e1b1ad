"""Write summary.md of a GPU run: the device, every step's result and time, and one table that
joins the chapter benchmarks with the PyTorch baselines on the shape.

Usage: summary.py OUTDIR TOTAL_SECONDS  (prints Markdown; run.sh redirects it to summary.md)

Reads OUTDIR/logs/steps.tsv (name, status, seconds, log), OUTDIR/logs/device-info.txt,
OUTDIR/logs/notes.txt, every OUTDIR/*.csv with the benchmark columns
impl,batch,heads,seq,head_dim,causal,median_ms,tflops, and the Nsight Compute results
(OUTDIR/ncu/ch04_fused_ncu.csv, OUTDIR/ch12/ch12_roofline_dram.csv), and the benchmark CSVs
and kernel tables of chapters 5, 6 and 7 (OUTDIR/ch05, OUTDIR/ch06, OUTDIR/ch07).
"""

import csv
import sys
from pathlib import Path

import ncu_tables

BUNDLE = Path(__file__).resolve().parent

KEY = ["batch", "heads", "seq", "head_dim", "causal"]
BASELINE = "torch_math"


def causal_flag(text):
    return "causal" if str(text).strip().lower() in {"1", "true", "yes", "causal"} else "full"


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def read_rows(outdir):
    """{shape: {impl: (median_ms text, tflops text)}} and the impl names in order of appearance."""
    table, impls = {}, []
    for path in sorted(outdir.glob("*.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if not all(k in row for k in KEY + ["impl", "median_ms"]):
                    break
                shape = tuple(row[k] for k in KEY[:4]) + (causal_flag(row["causal"]),)
                table.setdefault(shape, {})[row["impl"]] = (row["median_ms"], row.get("tflops", ""))
                if row["impl"] not in impls:
                    impls.append(row["impl"])
    ours = [i for i in impls if not i.startswith("torch_")]
    peers = sorted((i for i in impls if i.startswith("torch_")), key=lambda i: (i != BASELINE, i))
    return table, ours + peers


def shape_order(shape):
    """Sizes numerically, then full before causal."""
    return tuple(int(x) for x in shape[:4]) + (shape[4] == "causal",)


def bench_table(table, impls):
    ours = [i for i in impls if not i.startswith("torch_")]
    head = ["B", "H", "N", "d", "mask"] + [f"{i} ms (TFLOP/s)" for i in impls]
    peers = [i for i in impls if i.startswith("torch_")]
    head += [f"{p} / {i}" for i in ours for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for shape in sorted(table, key=shape_order):
        cells = list(shape)
        for impl in impls:
            ms, tflops = table[shape].get(impl, ("-", ""))
            cells.append(f"{ms} ({tflops})" if number(ms) is not None else ms)
        for impl in ours:
            mine = number(table[shape].get(impl, ("",))[0])
            for peer in peers:
                theirs = number(table[shape].get(peer, ("",))[0])
                cells.append(f"{theirs / mine:.2f}×" if theirs and mine else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


LADDER = ["r0_f32_flash", "r4_ldmatrix_swizzle", "r5_tuned", "r6_wgmma", "r7_wgmma_overlap", "r8_tma", "r9_pingpong"]
# The top rungs: the ratios use the faster of them at each shape.
TOP = ["r8_tma", "r9_pingpong"]
LADDER_PEERS = ["torch_flash_bf16", "torch_cudnn_bf16", "torch_efficient_bf16"]


def ladder_table(table):
    """Chapter 12: TFLOP/s of the main rungs and of PyTorch's bf16 backends, and the best top
    rung's ratio to FLASH and CUDNN (PyTorch's time over the rung's: above 1×, the rung is
    faster)."""
    head = ["B", "H", "N", "d", "mask"] + LADDER + LADDER_PEERS + ["best", "best / FLASH", "best / CUDNN"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for shape in sorted(table, key=shape_order):
        row = table[shape]
        timed = [(number(row[t][0]), t) for t in TOP if t in row and number(row[t][0])]
        if not timed:
            continue
        mine, best = min(timed)
        cells = list(shape) + [row.get(i, ("", "-"))[1] or "-" for i in LADDER + LADDER_PEERS] + [best.split("_")[0]]
        for peer in ["torch_flash_bf16", "torch_cudnn_bf16"]:
            theirs = number(row.get(peer, ("",))[0])
            cells.append(f"{theirs / mine:.2f}×" if theirs and mine else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def fused_profile(outdir):
    """Chapter 4's Fused kernel under Nsight Compute, one row per profiled shape."""
    path = outdir / "ncu" / "ch04_fused_ncu.csv"
    if not path.exists():
        return []
    out = ["", "## Nsight Compute: chapter 4's Fused kernel (ch02_sdpa_f32, a block per query row)", ""]
    try:
        launches = ncu_tables.read_launches(path.read_text())
        out += ncu_tables.fused_table(launches, ncu_tables.read_shapes((BUNDLE / "ncu_fused_shapes.txt").read_text()))
    except (OSError, ValueError, KeyError) as e:
        return out + [f"Could not read {path.name}: {e}"]
    return out + ["", "One launch per shape, the L2 flushed before it. \"read / (Q+K+V)\": DRAM bytes read over "
                  "the bytes of Q, K and V read once (1: every K/V row came from DRAM once, the rest from L2)."]


def roofline_dram(outdir):
    """Chapter 12's roofline: modelled against measured (DRAM) bytes per kernel."""
    measured_path, timed_path = outdir / "ch12" / "ch12_roofline_dram.csv", outdir / "ch12" / "ch12_roofline.csv"
    if not (measured_path.exists() and timed_path.exists()):
        return []
    timed = {}
    for line in timed_path.read_text().splitlines()[1:]:
        if line.strip():
            label, _group, flops, modelled, seconds = line.rsplit(",", 4)
            timed[label] = (float(flops), float(modelled), float(seconds))
    head = ["kernel", "TFLOP/s", "modelled GB", "DRAM GB (median call)", "DRAM GB min–max",
            "FLOP/byte modelled", "FLOP/byte measured"]
    out = ["", "## Nsight Compute: DRAM bytes of the roofline's kernels (one call each)", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in measured_path.read_text().splitlines()[1:]:
        if not line.strip():
            continue
        label, _calls, _per_call, read, write, low, high = line.rsplit(",", 6)
        dram = float(read) + float(write)
        if label not in timed:
            out.append(f"| {label} | no timed point | | {dram / 1e9:.3f} | | | |")
            continue
        flops, modelled, seconds = timed[label]
        out.append(f"| {label} | {flops / seconds / 1e12:.2f} | {modelled / 1e9:.3f} | {dram / 1e9:.3f} | "
                   f"{float(low) / 1e9:.3f}–{float(high) / 1e9:.3f} | {flops / modelled:.2f} | {flops / dram:.2f} |")
    return out


def bandwidth_tables(outdir):
    """Chapters 5, 6 and 7: each benchmark CSV of OUTDIR/ch05, OUTDIR/ch06 and OUTDIR/ch07
    (columns impl, dtype, the shape, median_ms, modelled_bytes or kv_bytes, gbps, copy_fraction,
    or the QKV benchmark's own) as one Markdown table, and the kernel tables of OUTDIR/ch05/ncu."""
    out = []
    for chapter in ("ch05", "ch06", "ch07"):
        for path in sorted((outdir / chapter).glob("*.csv")):
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            if not rows:
                continue
            out += ["", f"## {chapter}: `{path.name}`", "", "| " + " | ".join(rows[0]) + " |",
                    "|" + "---|" * len(rows[0])]
            out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        for path in sorted((outdir / chapter / "ncu").glob("*_dram.md")):
            out += ["", f"## {chapter}: Nsight Compute, `{path.name}`", "", path.read_text().strip()]
    return out


def main():
    outdir, total = Path(sys.argv[1]), sys.argv[2]
    steps = [line.rstrip("\n").split("\t") for line in open(outdir / "logs" / "steps.tsv") if line.strip()]
    failed = [s for s in steps if s[1].startswith("FAIL")]
    out = ["# GPU run summary", ""]
    device = outdir / "logs" / "device-info.txt"
    if device.exists():
        out += ["```", device.read_text().strip(), "```", ""]
    notes = outdir / "logs" / "notes.txt"
    if notes.exists() and notes.read_text().strip():
        out += [f"- note: {line}" for line in notes.read_text().splitlines() if line.strip()] + [""]
    dry = [s for s in steps if s[1] == "dry run"]
    verdict = f"{len(failed)} of {len(steps)} steps FAILED" if failed else f"all {len(steps)} steps passed"
    if dry:
        verdict = f"dry run, {len(dry)} of {len(steps)} steps listed and not run"
    out += [f"Result: **{verdict}**, {total} s in all.", "", "| step | result | seconds |", "|---|---|---|"]
    out += [f"| {s[0]} | {s[1]} | {s[2]} |" for s in steps]
    table, impls = read_rows(outdir)
    out += ["", "## Benchmarks (median of CUDA-event timings; same run, same device)", ""]
    if table:
        out += bench_table(table, impls)
        out += ["", "\"torch_X / kernel\": PyTorch's time over the kernel's (above 1×: the kernel is faster)."]
    else:
        out.append("No benchmark CSVs.")
    ch12 = outdir / "ch12"
    if (ch12 / "ch12_ladder.csv").exists():
        table12, _ = read_rows(ch12)
        out += ["", "## Chapter 12: the ladder against PyTorch's bf16 backends (TFLOP/s)", ""]
        out += ladder_table(table12)
    out += fused_profile(outdir)
    out += roofline_dram(outdir)
    out += bandwidth_tables(outdir)
    print("\n".join(out))


if __name__ == "__main__":
    main()
