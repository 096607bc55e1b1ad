"""Execute one notebook headlessly and fail if any code cell failed.

Usage: notebook_runner.py NOTEBOOK EXECUTED_COPY [--timeout SECONDS] [--kernel NAME] [--record]

Why not just `jupyter nbconvert --execute`: the Rust kernel (evcxr) reports a panic or an `Err`
returned with `?` only as text on the cell's stderr stream and goes on with the next cell, so
nbconvert exits 0 on a broken notebook. Here a cell fails when it has an `error` output or any
`stderr` stream output; the skip message of a GPU cell goes to stdout and is fine.

The executed copy is written even when a cell fails, for inspection. The committed notebook is
modified only with --record (`cargo xtask record-notebooks`), and only when every cell passed:
its outputs are written into it, so a reader sees tables and figures without running anything,
with the sha256 of its cells' types and sources stamped in its metadata (`attn_book`), which
`cargo xtask test` compares with the sources to catch outputs left over from older code. Run
with the Python of target/jupyter-venv.
"""

import argparse
import hashlib
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def output_text(output):
    """The text a person would see for one output."""
    kind = output.get("output_type")
    if kind == "stream":
        return f"[{output.get('name')}] {output.get('text', '')}"
    if kind == "error":
        trace = "\n".join(output.get("traceback", [])) or output.get("evalue", "")
        return f"[error {output.get('ename', '')}] {ANSI.sub('', trace)}"
    data = output.get("data", {})
    if "text/plain" in data:
        return f"[{kind}] {data['text/plain']}"
    return f"[{kind}] ({', '.join(data)})"


def cell_failed(cell):
    """True when a code cell has an error output or wrote anything to stderr."""
    return any(
        o.get("output_type") == "error"
        or (o.get("output_type") == "stream" and o.get("name") == "stderr" and o.get("text", "").strip())
        for o in cell.get("outputs", [])
    )


def sources_sha256(nb):
    """The hash xtask's notebook lint recomputes: each cell's type and source, NUL-terminated."""
    h = hashlib.sha256()
    for cell in nb.cells:
        h.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    return h.hexdigest()


def record(nb, path):
    """Write the executed notebook over the committed one, stamped with its sources' hash and
    without the per-cell execution timestamps (they would change every line of the diff)."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata["attn_book"] = {"source_sha256": sources_sha256(nb)}
    nbformat.write(nb, path)


def report(index, cell):
    print(f"--- cell {index} failed; its source:", file=sys.stderr)
    print(cell.source, file=sys.stderr)
    print(f"--- cell {index} outputs:", file=sys.stderr)
    for output in cell.outputs:
        print(output_text(output).rstrip(), file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("executed_copy", type=Path)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    parser.add_argument("--kernel", default="rust")
    parser.add_argument("--record", action="store_true", help="write the outputs into NOTEBOOK when all cells pass")
    args = parser.parse_args()

    nb = nbformat.read(args.notebook, as_version=4)
    # Relative `:dep` paths resolve from the notebook's folder, so run the kernel there.
    client = NotebookClient(
        nb,
        timeout=args.timeout,
        kernel_name=args.kernel,
        allow_errors=True,
        resources={"metadata": {"path": str(args.notebook.parent.resolve())}},
    )
    start = time.monotonic()
    crashed = None
    try:
        client.execute()
    except (CellTimeoutError, DeadKernelError) as e:
        crashed = f"{type(e).__name__}: {e}"
    finally:
        args.executed_copy.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, args.executed_copy)

    code_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    failed = [(i, c) for i, c in code_cells if cell_failed(c)]
    for i, c in failed:
        report(i, c)
    took = time.monotonic() - start
    print(f"{args.notebook}: {len(code_cells)} code cells, {len(failed)} failed, {took:.1f} s")
    if crashed:
        print(f"{args.notebook}: execution stopped: {crashed}", file=sys.stderr)
    if failed or crashed:
        return 1
    if args.record:
        record(nb, args.notebook)
        print(f"{args.notebook}: outputs recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
