"""Tables from Nsight Compute's CSV (`ncu --csv --page raw --print-units base ...`).

That format: a header row of column names ("ID", "Process ID", ..., "Kernel Name", ..., "Block
Size", "Grid Size", ..., then one column per metric), a row of units (empty under the fixed
columns), then one row per profiled kernel launch; every field is quoted and numbers may carry
thousands separators ("10,240,000"). Lines of the tool's own (==PROF==, ==WARNING==) and of the
application can come before or between them and are skipped.

Usage:
  ncu_tables.py fused NCU_CSV SHAPES_FILE
      Markdown table of chapter 4's Fused kernel (chapter 2's ch02_sdpa_f32), one row per shape
      of SHAPES_FILE, from the run `ch04 --profile-only fused --bench-shapes SHAPES_FILE`.
  ncu_tables.py kernels NCU_CSV
      Markdown: every profiled launch in launch order (kernel, grid, block, DRAM read and
      written, L2 bytes, time), then the totals per kernel name; for chapter 5's benchmarks run
      once under ncu, whose launches follow the rows of the CSV the same run wrote.
  ncu_tables.py roofline NCU_CSV LABELS_CSV [TIMED_CSV]
      ch12_roofline_dram.csv (on stdout): the DRAM bytes of one call of each roofline kernel,
      from the run `ch12 --only roofline` under ncu. Its calls are bracketed by the marker
      kernels roofline_label_begin / roofline_label_end (grid = (label index + 1, calls, 1));
      LABELS_CSV is the ch12_roofline.csv that run wrote (its labels, in marker order), TIMED_CSV
      the one of the timed run, whose labels must be the same.
"""

import csv
import statistics
import sys

# Base units (`--print-units base`), and the scaled ones `--print-units auto` would print.
BYTE_PREFIXES = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
SECONDS = {"nsecond": 1e-9, "ns": 1e-9, "usecond": 1e-6, "us": 1e-6, "msecond": 1e-3, "ms": 1e-3,
           "second": 1.0, "s": 1.0}

ROOFLINE_HEADER = "label,calls,kernels_per_call,dram_read_bytes,dram_write_bytes,dram_bytes_min,dram_bytes_max"
BEGIN, END = "roofline_label_begin", "roofline_label_end"


def to_base(value, unit):
    """A metric's text as a number in bytes, seconds, or its own unit; None for n/a or text."""
    try:
        number = float(value.replace(",", ""))
    except ValueError:
        return None
    if unit in SECONDS:
        return number * SECONDS[unit]
    head, _, rest = unit.partition("/")
    if head.endswith("byte") and head[:-4] in BYTE_PREFIXES:
        return number * BYTE_PREFIXES[head[:-4]]
    return number


def dims(text):
    """"(16384, 8, 1)" -> (16384, 8, 1)."""
    return tuple(int(x) for x in text.strip("() ").split(","))


def read_launches(text):
    """Every profiled launch, in ID order: dicts with id, kernel, grid, block and metrics
    (name -> number in base units: bytes, seconds, %, blocks, ...)."""
    lines = [line for line in text.splitlines() if line.startswith('"')]
    rows = list(csv.reader(lines))
    start = next((i for i, r in enumerate(rows) if r[:1] == ["ID"]), None)
    if start is None:
        raise ValueError('no ncu CSV header (a row starting with "ID") found')
    header, units = rows[start], rows[start + 1] if start + 1 < len(rows) else []
    if units[:1] != [""]:
        raise ValueError("the row after the header is not ncu's row of units: was --page raw used?")
    metric_cols = [i for i, name in enumerate(header) if "__" in name]
    launches = []
    for row in rows[start + 2:]:
        if row[:1] == ["ID"] or len(row) != len(header):
            continue
        cell = dict(zip(header, row))
        launches.append({
            "id": int(cell["ID"]),
            "kernel": cell["Kernel Name"],
            "grid": dims(cell["Grid Size"]),
            "block": dims(cell["Block Size"]),
            "metrics": {header[i]: to_base(row[i], units[i]) for i in metric_cols},
        })
    return sorted(launches, key=lambda launch: launch["id"])


def read_shapes(text):
    """(batch, heads, seq, head_dim, causal) per non-comment line of a shapes file."""
    shapes = []
    for line in text.splitlines():
        fields = line.split("#")[0].split()
        if fields:
            shapes.append(tuple(int(f) for f in fields))
    return shapes


def fmt(value, scale=1.0, digits=1):
    return "-" if value is None else f"{value / scale:,.{digits}f}"


def fused_table(launches, shapes):
    """Markdown rows for ch02_sdpa_f32, one per shape; the launch of row k must be the k-th
    ch02_sdpa_f32 launch and have grid (N, B·H, 1)."""
    launches = [launch for launch in launches if "ch02_sdpa" in launch["kernel"]]
    if len(launches) != len(shapes):
        raise ValueError(f"{len(launches)} ch02_sdpa launches profiled for {len(shapes)} shapes")
    head = ["B", "H", "N", "d", "ms", "DRAM read MB", "DRAM write MB", "read / (Q+K+V)", "L2 hit %",
            "L2 MB", "L2 % peak", "DRAM % peak", "achieved occ. %", "theoretical occ. %",
            "blocks/SM by smem", "by regs", "smem/block KiB"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (b, h, n, d, causal), launch in zip(shapes, launches):
        if launch["grid"] != (n, b * h, 1):
            raise ValueError(f"launch {launch['id']} has grid {launch['grid']}, shape B={b} H={h} N={n} "
                             f"needs ({n}, {b * h}, 1): the launches and the shapes file disagree")
        m = launch["metrics"].get
        read = m("dram__bytes_read.sum")
        inputs = 4.0 * b * h * n * 3 * d  # Q, K and V once, f32
        out.append("| " + " | ".join([
            str(b), str(h), str(n) + (" causal" if causal else ""), str(d),
            fmt(m("gpu__time_duration.sum"), 1e-3, 2),
            fmt(read, 1e6), fmt(m("dram__bytes_write.sum"), 1e6),
            "-" if read is None else f"{read / inputs:.2f}",
            fmt(m("lts__t_sector_hit_rate.pct")), fmt(m("lts__t_bytes.sum"), 1e6, 0),
            fmt(m("lts__throughput.avg.pct_of_peak_sustained_elapsed")),
            fmt(m("dram__throughput.avg.pct_of_peak_sustained_elapsed")),
            fmt(m("sm__warps_active.avg.pct_of_peak_sustained_active")),
            fmt(m("sm__maximum_warps_per_active_cycle_pct")),
            fmt(m("launch__occupancy_limit_shared_mem"), digits=0),
            fmt(m("launch__occupancy_limit_registers"), digits=0),
            fmt(m("launch__shared_mem_per_block_dynamic"), 1024.0),
        ]) + " |")
    return out


def kernels_table(launches, width=60):
    """Markdown rows: each launch, then a total per kernel name (names cut to `width` characters:
    cuBLAS's run long)."""
    def name(launch):
        k = launch["kernel"]
        return k if len(k) <= width else k[: width - 1] + "…"

    head = ["#", "kernel", "grid", "block", "DRAM read MB", "DRAM write MB", "L2 MB", "µs"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    totals = {}
    for launch in launches:
        m = launch["metrics"].get
        read, write = m("dram__bytes_read.sum"), m("dram__bytes_write.sum")
        out.append("| " + " | ".join([
            str(launch["id"]), name(launch), str(launch["grid"]), str(launch["block"]),
            fmt(read, 1e6, 2), fmt(write, 1e6, 2), fmt(m("lts__t_bytes.sum"), 1e6, 2),
            fmt(m("gpu__time_duration.sum"), 1e-6, 1),
        ]) + " |")
        t = totals.setdefault(name(launch), [0, 0.0, 0.0])
        t[0] += 1
        t[1] += read or 0.0
        t[2] += write or 0.0
    out += ["", "| kernel | launches | DRAM read MB | DRAM write MB |", "|---|---|---|---|"]
    out += [f"| {k} | {n} | {r / 1e6:,.2f} | {w / 1e6:,.2f} |" for k, (n, r, w) in totals.items()]
    return out


def roofline_labels(text):
    """The labels of a ch12_roofline.csv (`label,group,flops,bytes,seconds`; a label may hold
    commas, so it is everything before the last four fields)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "label,group,flops,bytes,seconds":
        raise ValueError("not a ch12_roofline.csv (header label,group,flops,bytes,seconds)")
    return [line.rsplit(",", 4)[0] for line in lines[1:]]


def regular_kernels(label, kernels, calls):
    """The kernels of a label's calls, less any launched a number of times that is not a
    multiple of the calls (a library's one-time set-up in the first call, say), which are
    reported on stderr: each call then launches the same kernels."""
    if len(kernels) % calls == 0:
        return kernels
    count = {}
    for k in kernels:
        key = (k["kernel"], k["grid"], k["block"])
        count[key] = count.get(key, 0) + 1
    odd = {key for key, n in count.items() if n % calls}
    for key in odd:
        print(f"{label}: left out {count[key]} launches of {key[0]} {key[1]}: not one per call", file=sys.stderr)
    return [k for k in kernels if (k["kernel"], k["grid"], k["block"]) not in odd]


def roofline_rows(launches, labels):
    """One CSV line per label: the read and write bytes of the call with the median DRAM traffic
    among its calls, and the least and most traffic of any call (with ncu flushing the caches
    before each kernel, the calls differ little)."""
    groups, current = [], None
    for launch in launches:
        name = launch["kernel"]
        if BEGIN in name or END in name:
            index, calls = launch["grid"][0] - 1, launch["grid"][1]
            if BEGIN in name:
                if current is not None or index != len(groups):
                    raise ValueError(f"launch {launch['id']}: marker {index} begins out of order")
                current = {"index": index, "calls": calls, "kernels": []}
            else:
                if current is None or current["index"] != index:
                    raise ValueError(f"launch {launch['id']}: marker {index} ends a group it did not begin")
                groups.append(current)
                current = None
        elif current is not None:
            current["kernels"].append(launch)
    if current is not None:
        raise ValueError(f"marker {current['index']} never ends (the run stopped early?)")
    if len(groups) != len(labels):
        raise ValueError(f"{len(groups)} marked groups for {len(labels)} labels")
    out = [ROOFLINE_HEADER]
    for label, group in zip(labels, groups):
        kernels, calls = regular_kernels(label, group["kernels"], group["calls"]), group["calls"]
        if not kernels or len(kernels) % calls:
            raise ValueError(f"{label}: {len(kernels)} kernels do not split into {calls} calls")
        per_call = len(kernels) // calls
        traffic = []
        for c in range(calls):
            call = kernels[c * per_call:(c + 1) * per_call]
            read = sum(k["metrics"]["dram__bytes_read.sum"] for k in call)
            write = sum(k["metrics"]["dram__bytes_write.sum"] for k in call)
            traffic.append((read + write, read, write))
        _, read, write = statistics.median_low(traffic)
        totals = [t[0] for t in traffic]
        out.append(f"{label},{calls},{per_call},{read:.0f},{write:.0f},{min(totals):.0f},{max(totals):.0f}")
    return out


def main(argv):
    if len(argv) >= 3 and argv[0] == "fused":
        with open(argv[1]) as f, open(argv[2]) as g:
            print("\n".join(fused_table(read_launches(f.read()), read_shapes(g.read()))))
    elif len(argv) >= 2 and argv[0] == "kernels":
        with open(argv[1]) as f:
            print("\n".join(kernels_table(read_launches(f.read()))))
    elif len(argv) >= 3 and argv[0] == "roofline":
        with open(argv[1]) as f, open(argv[2]) as g:
            launches, labels = read_launches(f.read()), roofline_labels(g.read())
        if len(argv) >= 4:
            with open(argv[3]) as t:
                timed = roofline_labels(t.read())
            if timed != labels:
                raise ValueError(f"the profiled run's labels {labels} differ from the timed run's {timed}")
        print("\n".join(roofline_rows(launches, labels)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
