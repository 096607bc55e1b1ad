#!/usr/bin/env bash
# The GPU checks and benchmarks of the attention book, run on a machine with an NVIDIA GPU and
# no Rust toolchain. `cargo xtask gpu` builds this bundle on any machine; copy the repository
# (or just target/gpu-bundle) to the GPU machine and run, from the repository root:
#
#   bash target/gpu-bundle/run.sh [OUTDIR]
#
# OUTDIR: where results go; default $OUT if set, else target/gpu-results.
# Steps (each logged, timed, and recorded as pass/fail/skip; a failure does not stop the run):
#   1. the device: nvidia-smi -L, driver, date
#   2. every test binary in tests/ with ATTN_REQUIRE_GPU=1 (a missing GPU fails)
#   3. every chapter binary in bin/ (figures to OUTDIR/figures/<chNN>; ch02 and ch03 also
#      benchmark, ch03 also measures time and peak memory vs N and runs N = 65536)
#   4. PyTorch SDPA on the benchmark shapes of ch02–ch04 (MATH and EFFICIENT, float32) and of
#      ch12 (FLASH, EFFICIENT and CUDNN, bfloat16), then ch12's figures
#   5. compute-sanitizer memcheck and racecheck over the GPU test binaries (tests/*gpu: the
#      `gpu` targets and ch12's `ceilings_gpu` and `streams_gpu`), one step per test function,
#      with ATTN_SANITIZER=1 so that tests shrink their largest sizes
#   6. OUTDIR/summary.md (steps table, merged benchmark table) and OUTDIR/results.tar.gz
# Environment:
#   ATTN_STEP_TIMEOUT  seconds one step may take before it is stopped and failed (default 240)
#   ATTN_SANITIZE=0    skip step 5
#   ATTN_SANITIZE=only run steps 1 and 5 only (the sanitizers take most of a run's time)
#   ATTN_SANITIZE_JOBS=N  run up to N sanitizer steps at once (default 1; each is a process of
#                      its own on the same GPU, so that the slow racecheck steps overlap)
#   ATTN_CHAPTERS="ch03 ch04"  run only these chapters' tests, binaries, baselines and sanitizer
#                      checks (attn-support's tests always run); default: every chapter
#   ATTN_PACK_ONLY=1   keep only summary.md and results.tar.gz at OUTDIR's top, deleting
#                      logs/, figures/ and the CSVs after packing them (the default when OUTDIR
#                      comes from $OUT, whose copy-back takes few files)
# Exit status: 0 when every step passed or was skipped, 1 otherwise.
set -uo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -ge 1 ]]; then
    OUTDIR="$1"
    PACK_ONLY="${ATTN_PACK_ONLY:-0}"
elif [[ -n "${OUT:-}" ]]; then
    OUTDIR="$OUT"
    PACK_ONLY="${ATTN_PACK_ONLY:-1}"
else
    OUTDIR="target/gpu-results"
    PACK_ONLY="${ATTN_PACK_ONLY:-0}"
fi
mkdir -p "$OUTDIR/logs" "$OUTDIR/figures"
OUTDIR="$(cd "$OUTDIR" && pwd)"
STEP_TIMEOUT="${ATTN_STEP_TIMEOUT:-240}"
STEPS="$OUTDIR/logs/steps.tsv"
SHAPES="$BUNDLE/baselines/ch02_bench_shapes.txt"
CH03_SHAPES="$BUNDLE/baselines/ch03_bench_shapes.txt"
CH04_SHAPES="$BUNDLE/baselines/ch04_grid_shapes.txt"
CH12_SHAPES="$BUNDLE/baselines/ch12_bench_shapes.txt"
export ATTN_REQUIRE_GPU=1
: > "$STEPS"
FAILED=0
RUN_START=$(date +%s.%N)

# step NAME COMMAND...: run COMMAND with its output in logs/NAME.log, record pass/fail and time.
step() {
    local name="$1"; shift
    local log="$OUTDIR/logs/$name.log"
    local start end secs rc status
    start=$(date +%s.%N)
    echo "\$ $*" > "$log"
    timeout --kill-after=10 "$STEP_TIMEOUT" "$@" >> "$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [[ $rc -eq 0 ]]; then
        status=pass
    else
        status=FAIL
        [[ $rc -eq 124 || $rc -eq 137 ]] && status="FAIL (timeout ${STEP_TIMEOUT}s)"
        FAILED=1
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$secs" "logs/$name.log" >> "$STEPS"
    printf '%-48s %-22s %7s s\n' "$name" "$status" "$secs"
    if [[ $status != pass ]]; then
        echo "---- last lines of logs/$name.log:"
        tail -n 25 "$log" | sed 's/^/    /'
    fi
}

# skip NAME REASON: record a step that could not run here.
skip() {
    printf '%s\tskipped: %s\t0\t-\n' "$1" "$2" >> "$STEPS"
    printf '%-48s skipped: %s\n' "$1" "$2"
}

# The extra arguments of a chapter binary (beyond --out).
chapter_args() {
    case "$1" in
        ch02)
            if [[ -f "$SHAPES" ]]; then
                echo --bench-gpu --bench-shapes "$SHAPES" --csv "$OUTDIR/ch02_gpu_bench.csv"
            fi
            ;;
        ch03)
            # The kernel on its shapes, then time and peak memory vs N (ch02 vs ch03) and the
            # N = 65536 run.
            if [[ -f "$CH03_SHAPES" ]]; then
                echo --bench-gpu --bench-shapes "$CH03_SHAPES" --csv "$OUTDIR/ch03_gpu_bench.csv"
            fi
            echo --memory-sweep
            ;;
        ch12)
            # The ladder: check, autotune + benchmark, ceilings, roofline, CUDA graphs, streams and
            # the CPU experiment; results (CSV, JSON) to OUTDIR/ch12, figures after the PyTorch step.
            echo --only ladder,check,bench,ceilings,roofline,graphs,streams,approximate --results "$OUTDIR/ch12" \
                --bench-shapes "$CH12_SHAPES"
            ;;
        ch04)
            # Every backend on the grid (time, peak memory, the dispatcher's picks).
            if [[ -f "$CH04_SHAPES" ]]; then
                echo --bench-grid --shapes "$CH04_SHAPES" --csv "$OUTDIR/ch04_grid.csv" \
                    --table "$OUTDIR/ch04_autotune.json"
            fi
            ;;
    esac
}

# selected NAME: true when NAME (a test binary `<crate>--<target>` or a binary `chNN`) belongs
# to a chapter in ATTN_CHAPTERS, or ATTN_CHAPTERS is unset, or it is attn-support's.
selected() {
    local chapter="${1:0:4}"
    [[ -z "${ATTN_CHAPTERS:-}" || "$1" == attn-support* || " $ATTN_CHAPTERS " == *" $chapter "* ]]
}

echo "== 1. device"
{
    date -u '+%Y-%m-%d %H:%M:%S UTC'
    nvidia-smi -L
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
    head -n 3 "$BUNDLE/MANIFEST.txt"
} 2>&1 | tee "$OUTDIR/logs/device-info.txt"
step device nvidia-smi -L

# steps_2_to_4: false under ATTN_SANITIZE=only.
steps_2_to_4() { [[ "${ATTN_SANITIZE:-1}" != only ]]; }

echo "== 2. tests (ATTN_REQUIRE_GPU=1)"
for t in "$BUNDLE"/tests/*; do
    steps_2_to_4 || break
    selected "$(basename "$t")" || continue
    step "test-$(basename "$t")" "$t"
done

echo "== 3. chapter binaries"
for b in "$BUNDLE"/bin/*; do
    steps_2_to_4 || break
    name="$(basename "$b")"
    selected "$name" || continue
    out_args=()
    # A chapter binary that draws figures takes --out (a chapter without figures yet does not).
    if "$b" --help 2>/dev/null | grep -q -- '--out'; then
        mkdir -p "$OUTDIR/figures/$name"
        out_args=(--out "$OUTDIR/figures/$name")
    fi
    # shellcheck disable=SC2046 # chapter_args yields separate words, paths have no spaces
    step "bin-$name" "$b" "${out_args[@]}" $(chapter_args "$name")
done

echo "== 4. PyTorch baselines"
if ! steps_2_to_4; then
    skip torch "ATTN_SANITIZE=only"
elif ! python3 -c 'import torch' 2>/dev/null; then
    skip torch "python3 cannot import torch"
else
    # Each chapter's shapes through MATH and EFFICIENT (float32); a shape that does not fit is
    # recorded as `oom` (MATH at B=8, H=16, N=16384 asks for the 128 GiB score matrix).
    for entry in "ch02:$SHAPES:" "ch03:$CH03_SHAPES:_ch03" "ch04:$CH04_SHAPES:_ch04"; do
        IFS=: read -r chapter shapes suffix <<< "$entry"
        selected "$chapter" || continue
        [[ -f "$shapes" ]] || { skip "torch-$chapter" "no $shapes"; continue; }
        for backend in math efficient; do
            step "torch-$backend${suffix//_/-}" python3 "$BUNDLE/baselines/torch_sdpa.py" --shapes "$shapes" \
                --backend "$backend" --dtype float32 --csv "$OUTDIR/torch_${backend}${suffix}.csv"
        done
    done
    # Chapter 12: bf16 through FLASH, EFFICIENT and CUDNN, beside the ladder's results; then its
    # figures, which join the two.
    if selected ch12 && [[ -f "$CH12_SHAPES" ]]; then
        mkdir -p "$OUTDIR/ch12"
        for backend in flash efficient cudnn; do
            step "torch-$backend-bf16-ch12" python3 "$BUNDLE/baselines/torch_sdpa.py" --shapes "$CH12_SHAPES" \
                --backend "$backend" --dtype bfloat16 --csv "$OUTDIR/ch12/torch_${backend}_ch12.csv"
        done
    fi
fi
if steps_2_to_4 && selected ch12 && command -v nvcc > /dev/null && command -v cuobjdump > /dev/null; then
    # Which instructions each ladder kernel compiles to (HMMA / HGMMA / LDSM / ...).
    mkdir -p "$OUTDIR/ch12"
    step sass-ch12 bash "$BUNDLE/sass_check.sh" "$PWD" "$OUTDIR/ch12/ch12_sass.md"
fi
if steps_2_to_4 && selected ch12 && [[ -x "$BUNDLE/bin/ch12" ]]; then
    mkdir -p "$OUTDIR/figures/ch12"
    step figures-ch12 "$BUNDLE/bin/ch12" --only figures --results "$OUTDIR/ch12" --out "$OUTDIR/figures/ch12"
fi

echo "== 5. compute-sanitizer (ATTN_SANITIZER=1)"
SANITIZER="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if [[ "${ATTN_SANITIZE:-1}" == 0 ]]; then
    skip sanitizer "ATTN_SANITIZE=0"
elif [[ ! -x "$SANITIZER" ]]; then
    step sanitizer-missing false
else
    for t in "$BUNDLE"/tests/*gpu; do
        [[ -e "$t" ]] || { skip sanitizer "no GPU test binaries (tests/*gpu)"; break; }
        selected "$(basename "$t")" || continue
        # One step per test function, so that a slow one (racecheck costs in proportion to the
        # blocks launched) gets its own time limit and the others still report.
        mapfile -t names < <("$t" --list --format terse 2>/dev/null | sed -n 's/: test$//p')
        for tool in memcheck racecheck; do
            for name in "${names[@]}"; do
                while (( $(jobs -rp | wc -l) >= ${ATTN_SANITIZE_JOBS:-1} )); do wait -n; done
                step "$tool-$(basename "$t")-$name" env ATTN_SANITIZER=1 "$SANITIZER" --tool "$tool" \
                    --error-exitcode 1 "$t" --exact "$name" --test-threads=1 &
            done
        done
    done
    wait
    # Steps run in the background set FAILED in their own subshell: read it back from the record.
    grep -q "$(printf '\t')FAIL" "$STEPS" && FAILED=1
fi

echo "== 6. summary"
TOTAL=$(awk -v a="$RUN_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
python3 "$BUNDLE/summary.py" "$OUTDIR" "$TOTAL" > "$OUTDIR/summary.md" \
    || { echo "summary.py failed; the steps:"; cat "$STEPS" > "$OUTDIR/summary.md"; FAILED=1; }
(cd "$OUTDIR" && shopt -s nullglob && extra=(./*.csv ./*.json ./ch12) \
    && tar -czf results.tar.gz logs figures summary.md "${extra[@]}")
if [[ "$PACK_ONLY" == 1 ]]; then
    # The device tool copies back at most 8 files: keep summary.md and the tarball (which holds
    # the CSVs too).
    rm -rf "$OUTDIR/logs" "$OUTDIR/figures" "$OUTDIR"/*.csv "$OUTDIR"/*.json "$OUTDIR/ch12"
fi
cat "$OUTDIR/summary.md"
echo "results: $OUTDIR (summary.md, results.tar.gz); total ${TOTAL} s"
exit "$FAILED"
