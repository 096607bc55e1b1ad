#!/usr/bin/env bash
# The GPU checks and benchmarks of the attention book, run on a machine with an NVIDIA GPU and
# no Rust toolchain. `cargo xtask gpu` builds this bundle on any machine; copy the repository
# (or just target/gpu-bundle) to the GPU machine and run, from the repository root:
#
#   bash target/gpu-bundle/run.sh [OUTDIR]
#
# OUTDIR: where results go; default $OUT if set, else target/gpu-results.
# Steps (each logged, timed, and recorded as pass/fail/skip; a failure does not stop the run):
#   1. the device: nvidia-smi -L, driver, the host's CPU (lscpu), date
#   2. every test binary in tests/ (the GPU test targets, `*gpu*`) with ATTN_REQUIRE_GPU=1 (a missing GPU fails)
#   3. every chapter binary in bin/ (figures to OUTDIR/figures/<chNN>; ch02 and ch03 also
#      benchmark, ch03 also measures time and peak memory vs N and runs N = 65536); then
#      ch05's three benchmarks (softmax, qkv, epilogue), ch06's RoPE benchmark and ch07's decode
#      benchmark into OUTDIR/ch05/, OUTDIR/ch06/ and OUTDIR/ch07/
#   4. PyTorch SDPA on the benchmark shapes of ch02–ch04 (MATH and EFFICIENT, float32) and of
#      ch12 (FLASH, EFFICIENT and CUDNN, bfloat16); ch12's SASS check; the peers of ch05
#      (torch_softmax.py, torch_qkv.py), ch06 (torch_rope.py) and ch07 (torch_decode.py), and ch06's Hugging Face
#      fixtures (chapters/ch06-rope/fixtures/make_hf_fixtures.py into OUTDIR/ch06/fixtures)
#   5. Nsight Compute (ncu): chapter 4's Fused kernel on ncu_fused_shapes.txt (DRAM and L2
#      traffic, occupancy and its limits) into OUTDIR/ncu/, the DRAM bytes of every kernel
#      of chapter 5's benchmarks into OUTDIR/ch05/ncu/, the time of every decode kernel of
#      chapter 7's benchmark (main and combine) into OUTDIR/ch07/ncu/, and the DRAM bytes of
#      every kernel on chapter 12's roofline into OUTDIR/ch12/ch12_roofline_dram.csv
#   6. ch12's figures (after 4 and 5: the roofline uses the measured DRAM bytes when present)
#   7. compute-sanitizer memcheck and racecheck over the GPU test binaries (tests/*gpu: the
#      `gpu` targets and ch12's `ceilings_gpu` and `streams_gpu`), one step per test function,
#      with ATTN_SANITIZER=1 so that tests shrink their largest sizes
#   8. OUTDIR/summary.md (steps table, merged benchmark table, profile tables) and
#      OUTDIR/results.tar.gz
# Environment:
#   ATTN_STEP_TIMEOUT  seconds one step may take before it is stopped and failed (default 240;
#                      the ncu steps get ATTN_NCU_TIMEOUT, default 480)
#   ATTN_RUN_SANITIZERS=0|1|only   step 7 off, on (default), or steps 1 and 7 alone
#   ATTN_RUN_SANITIZER_JOBS=N      up to N sanitizer steps at once (default 1; each is a process
#                      of its own on the same GPU, so that the slow racecheck steps overlap)
#   ATTN_PROFILE=0|1|only          step 5 off, on (default; skipped when ncu is missing), or
#                      steps 1, 5 and 6 alone (with the roofline's timing run when step 3 did
#                      not run it). Two `only`s run both their steps.
#   ATTN_CHAPTERS="ch03 ch04"  run only these chapters' tests, binaries, baselines, profiles and
#                      sanitizer checks (attn-support's tests always run); default: every chapter
#   ATTN_PACK_ONLY=1   keep only summary.md and results.tar.gz at OUTDIR's top, deleting
#                      logs/, figures/ and the CSVs after packing them (the default when OUTDIR
#                      comes from $OUT, whose copy-back takes few files)
#   ATTN_DRY_RUN=1     print and record every step's command without running it (no GPU needed)
#   ATTN_SANITIZE, ATTN_SANITIZE_JOBS: the old names of ATTN_RUN_SANITIZERS and
#                      ATTN_RUN_SANITIZER_JOBS, still read (with a warning) until the runs recorded
#                      with them are redone. ATTN_SANITIZER (with an R) is not a knob of this script:
#                      step 7 sets it for the tests it runs under compute-sanitizer.
# `ATTN_CHAPTERS="ch04 ch12" cargo xtask gpu` bundles those chapters alone, for a smaller bundle:
# the device tool carries it with the working tree, 64 MiB in all.
# Exit status: 0 when every step passed or was skipped, 1 otherwise (2 for a knob's bad value).
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
NCU_TIMEOUT="${ATTN_NCU_TIMEOUT:-480}"
DRY_RUN="${ATTN_DRY_RUN:-0}"
STEPS="$OUTDIR/logs/steps.tsv"
NOTES="$OUTDIR/logs/notes.txt"
SHAPES="$BUNDLE/baselines/ch02_bench_shapes.txt"
CH03_SHAPES="$BUNDLE/baselines/ch03_bench_shapes.txt"
CH04_SHAPES="$BUNDLE/baselines/ch04_grid_shapes.txt"
CH12_SHAPES="$BUNDLE/baselines/ch12_bench_shapes.txt"
FUSED_SHAPES="$BUNDLE/ncu_fused_shapes.txt"
export ATTN_REQUIRE_GPU=1
: > "$STEPS"
: > "$NOTES"
FAILED=0
RUN_START=$(date +%s.%N)

# note TEXT: a line on the console and in the summary (logs/notes.txt).
note() {
    echo "note: $*"
    echo "$*" >> "$NOTES"
}

# The sanitizer knobs under their old names (ATTN_SANITIZE, one letter from the ATTN_SANITIZER
# the tests read, meant something else): still honoured, with a warning, so that the commands
# recorded with the results of earlier runs still work.
RUN_SANITIZERS="${ATTN_RUN_SANITIZERS:-}"
SANITIZER_JOBS="${ATTN_RUN_SANITIZER_JOBS:-}"
if [[ -n "${ATTN_SANITIZE:-}" ]]; then
    note "ATTN_SANITIZE is deprecated: use ATTN_RUN_SANITIZERS=${ATTN_SANITIZE}"
    RUN_SANITIZERS="${RUN_SANITIZERS:-$ATTN_SANITIZE}"
fi
if [[ -n "${ATTN_SANITIZE_JOBS:-}" ]]; then
    note "ATTN_SANITIZE_JOBS is deprecated: use ATTN_RUN_SANITIZER_JOBS=${ATTN_SANITIZE_JOBS}"
    SANITIZER_JOBS="${SANITIZER_JOBS:-$ATTN_SANITIZE_JOBS}"
fi
RUN_SANITIZERS="${RUN_SANITIZERS:-1}"
SANITIZER_JOBS="${SANITIZER_JOBS:-1}"
PROFILE="${ATTN_PROFILE:-1}"
for knob in "ATTN_RUN_SANITIZERS=$RUN_SANITIZERS" "ATTN_PROFILE=$PROFILE"; do
    [[ "${knob#*=}" =~ ^(0|1|only)$ ]] || { echo "run.sh: $knob: expected 0, 1 or only" >&2; exit 2; }
done
[[ "$SANITIZER_JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: ATTN_RUN_SANITIZER_JOBS=$SANITIZER_JOBS: expected a count ≥ 1" >&2; exit 2; }
# ATTN_SANITIZER makes the tests shrink their sizes for compute-sanitizer; step 7 sets it for
# its own commands. Inherited from the caller it would shrink steps 2–3 too.
if [[ -n "${ATTN_SANITIZER:-}" ]]; then
    note "ATTN_SANITIZER was set by the caller and is unset for this run (step 7 sets it itself; did you mean ATTN_RUN_SANITIZERS?)"
    unset ATTN_SANITIZER
fi

# wanted GROUP: whether a group of steps runs. Groups: main (steps 2–4), profile (5), sanitizers
# (7). When a knob says `only`, just the groups whose knob says `only` run; otherwise every
# group whose knob is not 0.
wanted() {
    local mode
    case "$1" in
        main) mode=1 ;;
        profile) mode="$PROFILE" ;;
        sanitizers) mode="$RUN_SANITIZERS" ;;
    esac
    if [[ "$PROFILE" == only || "$RUN_SANITIZERS" == only ]]; then
        [[ "$mode" == only ]]
    else
        [[ "$mode" != 0 ]]
    fi
}

# have TOOL: the tool is on the PATH (or this is a dry run, which runs nothing).
have() { [[ "$DRY_RUN" == 1 ]] || command -v "$1" > /dev/null; }

# step NAME COMMAND...: run COMMAND with its output in logs/NAME.log, record pass/fail and time.
step() {
    local name="$1"; shift
    local log="$OUTDIR/logs/$name.log"
    local start end secs rc status
    start=$(date +%s.%N)
    echo "\$ $*" > "$log"
    if [[ "$DRY_RUN" == 1 ]]; then
        printf '%s\tdry run\t0\t%s\n' "$name" "logs/$name.log" >> "$STEPS"
        printf '%-48s dry run: %s\n' "$name" "$*"
        return 0
    fi
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
    return $rc
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
            # the CPU experiment; results (CSV, JSON) to OUTDIR/ch12, figures in step 6.
            echo --only ladder,check,bench,ceilings,roofline,graphs,streams,approximate --results "$OUTDIR/ch12" \
                --bench-shapes "$CH12_SHAPES"
            ;;
        ch04)
            # Every backend on the grid (time, peak memory, the dispatcher's picks).
            if [[ -f "$CH04_SHAPES" ]]; then
                echo --bench-grid --bench-shapes "$CH04_SHAPES" --csv "$OUTDIR/ch04_grid.csv" \
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
    if [[ "$DRY_RUN" == 1 ]]; then
        echo "dry run: nothing below was run on a GPU"
    else
        nvidia-smi -L
        nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
    fi
    # The host's CPU: the CPU timings of the book (chapters 1, 2 and 12) ran on it.
    if command -v lscpu > /dev/null; then
        lscpu | grep -E '^(Model name|Socket\(s\)|Core\(s\) per socket|Thread\(s\) per core|CPU\(s\)):' \
            | sed 's/  */ /g'
    else
        grep -m 1 '^model name' /proc/cpuinfo
        echo "CPU(s): $(grep -c '^processor' /proc/cpuinfo)"
    fi
    echo "usable by this run: $(nproc) CPUs"
    have ncu && [[ "$DRY_RUN" != 1 ]] && ncu --version | tail -n 1
    head -n 3 "$BUNDLE/MANIFEST.txt"
} 2>&1 | tee "$OUTDIR/logs/device-info.txt"
step device nvidia-smi -L

if wanted main; then
    echo "== 2. tests (ATTN_REQUIRE_GPU=1)"
    for t in "$BUNDLE"/tests/*; do
        selected "$(basename "$t")" || continue
        step "test-$(basename "$t")" "$t"
    done

    echo "== 3. chapter binaries"
    for b in "$BUNDLE"/bin/*; do
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
    # Chapters 5 and 6 time one benchmark per run of their binary, each into its own folder.
    if selected ch05 && [[ -x "$BUNDLE/bin/ch05" ]]; then
        mkdir -p "$OUTDIR/ch05"
        for bench in softmax qkv epilogue; do
            step "bench-$bench-ch05" "$BUNDLE/bin/ch05" "--bench-$bench" --csv "$OUTDIR/ch05/ch05_$bench.csv"
        done
    fi
    if selected ch06 && [[ -x "$BUNDLE/bin/ch06" ]]; then
        mkdir -p "$OUTDIR/ch06"
        step bench-rope-ch06 "$BUNDLE/bin/ch06" --bench-gpu --csv "$OUTDIR/ch06/ch06_rope.csv"
    fi
    # Chapter 7's decode attention over bf16, INT8, FP8 and NVFP4 caches; its bandwidth figures go
    # beside the binary's other figures.
    if selected ch07 && [[ -x "$BUNDLE/bin/ch07" ]]; then
        mkdir -p "$OUTDIR/ch07" "$OUTDIR/figures/ch07"
        step bench-decode-ch07 "$BUNDLE/bin/ch07" --bench-decode --out "$OUTDIR/figures/ch07" \
            --csv "$OUTDIR/ch07/ch07_decode.csv"
    fi

    echo "== 4. PyTorch baselines"
    if ! python3 -c 'import torch' 2>/dev/null && [[ "$DRY_RUN" != 1 ]]; then
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
        # Chapter 12: bf16 through FLASH, EFFICIENT and CUDNN, beside the ladder's results.
        if selected ch12 && [[ -f "$CH12_SHAPES" ]]; then
            mkdir -p "$OUTDIR/ch12"
            for backend in flash efficient cudnn; do
                step "torch-$backend-bf16-ch12" python3 "$BUNDLE/baselines/torch_sdpa.py" --shapes "$CH12_SHAPES" \
                    --backend "$backend" --dtype bfloat16 --csv "$OUTDIR/ch12/torch_${backend}_ch12.csv"
            done
        fi
        # Chapter 5's peers (torch.softmax, eager masked_fill + softmax, F.linear three times
        # against once) and chapter 6's (Hugging Face's apply_rotary_pos_emb), same shapes.
        if selected ch05; then
            mkdir -p "$OUTDIR/ch05"
            for peer in softmax qkv; do
                step "torch-$peer-ch05" python3 "$BUNDLE/baselines/torch_$peer.py" --csv "$OUTDIR/ch05/torch_$peer.csv"
            done
        fi
        if selected ch06; then
            mkdir -p "$OUTDIR/ch06"
            step torch-rope-ch06 python3 "$BUNDLE/baselines/torch_rope.py" --csv "$OUTDIR/ch06/torch_rope.csv"
            # transformers' RoPE scalings and T5's buckets: the fixtures of chapter 6's tests
            # (commit them into chapters/ch06-rope/fixtures/).
            step hf-fixtures-ch06 python3 "$PWD/chapters/ch06-rope/fixtures/make_hf_fixtures.py" "$OUTDIR/ch06/fixtures"
        fi
        # Chapter 7's peer: SDPA at decode (q length 1, enable_gqa) on a contiguous bf16 cache of
        # the same shapes, cuDNN and FLASH.
        if selected ch07; then
            mkdir -p "$OUTDIR/ch07"
            step torch-decode-ch07 python3 "$BUNDLE/baselines/torch_decode.py" --csv "$OUTDIR/ch07/torch_decode.csv"
        fi
    fi
    if selected ch12 && have nvcc && have cuobjdump; then
        # Which instructions each ladder kernel compiles to (HMMA / HGMMA / LDSM / ...).
        mkdir -p "$OUTDIR/ch12"
        step sass-ch12 bash "$BUNDLE/sass_check.sh" "$PWD" "$OUTDIR/ch12/ch12_sass.md"
    fi
fi

# ncu_step NAME CSV REQUIRED EXTRA -- COMMAND...: profile COMMAND with Nsight Compute, one CSV
# row per kernel launch (`--page raw`, base units) into CSV, collecting the metrics REQUIRED and
# EXTRA (comma-separated). If ncu fails other than by the time limit (on an EXTRA metric this
# ncu does not know, say), a second step NAME-required collects REQUIRED alone; the first stays
# recorded as failed. Clocks are left unlocked (--clock-control none) so that
# gpu__time_duration compares with the timed runs.
ncu_step() {
    local name="$1" csv="$2" required="$3" extra="$4"; shift 5
    local common=(--csv --page raw --print-units base --clock-control none)
    STEP_TIMEOUT="$NCU_TIMEOUT" step "$name" ncu "${common[@]}" --metrics "$required,$extra" --log-file "$csv" "$@"
    case $? in
        0) ncu_csv_or_log "$csv" "$name"; return 0 ;;
        124 | 137) return 1 ;;
    esac
    STEP_TIMEOUT="$NCU_TIMEOUT" step "$name-required" ncu "${common[@]}" --metrics "$required" --log-file "$csv" "$@" \
        && ncu_csv_or_log "$csv" "$name-required"
}

# ncu_csv_or_log CSV STEP: should this ncu have printed its table to the console rather than to
# --log-file, take it from the step's log (the parser skips the application's lines).
ncu_csv_or_log() {
    [[ "$DRY_RUN" == 1 ]] || grep -q '^"ID"' "$1" 2> /dev/null && return 0
    note "$1 holds no ncu table: taken from logs/$2.log"
    cp "$OUTDIR/logs/$2.log" "$1"
}

if wanted profile; then
    echo "== 5. Nsight Compute"
    if ! have ncu; then
        skip ncu "ncu is not on the PATH"
    else
        if selected ch04 && [[ -x "$BUNDLE/bin/ch04" ]]; then
            # Chapter 4's Fused backend (chapter 2's kernel): where its bytes come from (DRAM or
            # L2) and how many blocks an SM holds, on the shapes where its rate falls. One launch
            # per shape, the L2 flushed before each (--cache-control all).
            mkdir -p "$OUTDIR/ncu"
            fused_required=dram__bytes_read.sum,dram__bytes_write.sum,lts__t_sector_hit_rate.pct
            fused_required+=,sm__warps_active.avg.pct_of_peak_sustained_active,launch__occupancy_limit_shared_mem
            fused_required+=,launch__occupancy_limit_registers,launch__shared_mem_per_block_dynamic,gpu__time_duration.sum
            fused_extra=lts__t_bytes.sum,lts__throughput.avg.pct_of_peak_sustained_elapsed
            fused_extra+=,dram__throughput.avg.pct_of_peak_sustained_elapsed
            fused_extra+=,sm__maximum_warps_per_active_cycle_pct,launch__occupancy_limit_blocks
            fused_extra+=,launch__occupancy_limit_warps,launch__registers_per_thread,l1tex__t_sector_hit_rate.pct
            ncu_step ncu-fused-ch04 "$OUTDIR/ncu/ch04_fused_ncu.csv" "$fused_required" "$fused_extra" -- \
                --cache-control all --kernel-name ch02_sdpa_f32 "$BUNDLE/bin/ch04" --profile-only fused --bench-shapes "$FUSED_SHAPES"
            step ncu-fused-table bash -c "python3 '$BUNDLE/ncu_tables.py' fused '$OUTDIR/ncu/ch04_fused_ncu.csv' \
                '$FUSED_SHAPES' > '$OUTDIR/ncu/ch04_fused.md' && cat '$OUTDIR/ncu/ch04_fused.md'"
        fi
        if selected ch05 && [[ -x "$BUNDLE/bin/ch05" ]]; then
            # Chapter 5's fusions, unfused against fused: the DRAM (and L2) bytes of every kernel
            # launch of one timed call per benchmark point (no warm-up, one repeat, one call per
            # timing), the caches flushed before each launch; `ncu_tables.py kernels` lists them
            # in launch order, which is the order of the benchmark CSV written beside it.
            mkdir -p "$OUTDIR/ch05/ncu"
            for bench in softmax qkv epilogue; do
                once=(--warmup 0 --repeats 1)
                [[ "$bench" == softmax ]] || once+=(--calls-per-timing 1)
                ncu_step "ncu-$bench-ch05" "$OUTDIR/ch05/ncu/ch05_${bench}_ncu.csv" \
                    dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum lts__t_bytes.sum -- \
                    --cache-control all "$BUNDLE/bin/ch05" "--bench-$bench" --csv "$OUTDIR/ch05/ncu/ch05_$bench.csv" "${once[@]}"
                step "ncu-$bench-table-ch05" bash -c "python3 '$BUNDLE/ncu_tables.py' kernels \
                    '$OUTDIR/ch05/ncu/ch05_${bench}_ncu.csv' > '$OUTDIR/ch05/ncu/ch05_${bench}_dram.md'"
            done
        fi
        if selected ch07 && [[ -x "$BUNDLE/bin/ch07" ]]; then
            # Chapter 7's decode benchmark once more, one launch per point and kernel version
            # (no warm-up, one repeat), under ncu: the time of the main kernel and, where a point
            # has several splits, of the combine kernel that merges them, in launch order beside
            # the CSV the same run writes — what merging the splits costs at each point.
            mkdir -p "$OUTDIR/ch07/ncu"
            ncu_step ncu-decode-ch07 "$OUTDIR/ch07/ncu/ch07_decode_ncu.csv" \
                gpu__time_duration.sum dram__bytes_read.sum,dram__bytes_write.sum -- \
                --kernel-name regex:ch07_decode "$BUNDLE/bin/ch07" --bench-decode --warmup 0 --repeats 1 --calls-per-timing 1 \
                --out "$OUTDIR/ch07/ncu" --csv "$OUTDIR/ch07/ncu/ch07_decode.csv"
            step ncu-decode-table-ch07 bash -c "python3 '$BUNDLE/ncu_tables.py' kernels \
                '$OUTDIR/ch07/ncu/ch07_decode_ncu.csv' > '$OUTDIR/ch07/ncu/ch07_decode_kernels.md'"
        fi
        if selected ch12 && [[ -x "$BUNDLE/bin/ch12" ]]; then
            # The roofline's kernels: their timed run (step 3's, or here when it did not run),
            # then the same run under ncu into ch12/ncu-run (whose times ncu distorts: only its
            # labels are read), then the DRAM bytes of one call per label. ncu flushes the caches
            # before every kernel (--cache-control all): a call's bytes are those of a cold L2,
            # at least the compulsory traffic. (Left warm, a kernel whose inputs fit in the L2,
            # like chapter 1's single head, reads next to nothing from DRAM and has no place on
            # an HBM roofline.)
            mkdir -p "$OUTDIR/ch12/ncu-run"
            if [[ ! -f "$OUTDIR/ch12/ch12_roofline.csv" || ! -f "$OUTDIR/ch12/ch12_ceilings.json" ]]; then
                step roofline-timed-ch12 "$BUNDLE/bin/ch12" --only ceilings,roofline --results "$OUTDIR/ch12"
            fi
            ncu_step ncu-roofline-ch12 "$OUTDIR/ch12/ncu-run/ch12_roofline_ncu.csv" \
                dram__bytes_read.sum,dram__bytes_write.sum gpu__time_duration.sum -- \
                --cache-control all "$BUNDLE/bin/ch12" --only roofline --results "$OUTDIR/ch12/ncu-run"
            step roofline-dram-ch12 bash -c "python3 '$BUNDLE/ncu_tables.py' roofline \
                '$OUTDIR/ch12/ncu-run/ch12_roofline_ncu.csv' '$OUTDIR/ch12/ncu-run/ch12_roofline.csv' \
                '$OUTDIR/ch12/ch12_roofline.csv' > '$OUTDIR/ch12/ch12_roofline_dram.csv.tmp' \
                && mv '$OUTDIR/ch12/ch12_roofline_dram.csv.tmp' '$OUTDIR/ch12/ch12_roofline_dram.csv' \
                && cat '$OUTDIR/ch12/ch12_roofline_dram.csv'"
        fi
    fi
fi

if (wanted main || wanted profile) && selected ch12 && [[ -x "$BUNDLE/bin/ch12" ]]; then
    echo "== 6. chapter 12 figures"
    mkdir -p "$OUTDIR/figures/ch12" "$OUTDIR/ch12"
    step figures-ch12 "$BUNDLE/bin/ch12" --only figures --results "$OUTDIR/ch12" --out "$OUTDIR/figures/ch12"
fi

echo "== 7. compute-sanitizer (ATTN_SANITIZER=1)"
SANITIZER="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
if ! wanted sanitizers; then
    skip sanitizer "ATTN_RUN_SANITIZERS=$RUN_SANITIZERS, ATTN_PROFILE=$PROFILE"
elif [[ ! -x "$SANITIZER" && "$DRY_RUN" != 1 ]]; then
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
                while (( $(jobs -rp | wc -l) >= SANITIZER_JOBS )); do wait -n; done
                step "$tool-$(basename "$t")-$name" env ATTN_SANITIZER=1 "$SANITIZER" --tool "$tool" \
                    --error-exitcode 1 "$t" --exact "$name" --test-threads=1 &
            done
        done
    done
    wait
fi
# Steps run in the background set FAILED in their own subshell: read it back from the record.
grep -q "$(printf '\t')FAIL" "$STEPS" && FAILED=1

echo "== 8. summary"
TOTAL=$(awk -v a="$RUN_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
python3 "$BUNDLE/summary.py" "$OUTDIR" "$TOTAL" > "$OUTDIR/summary.md" \
    || { echo "summary.py failed; the steps:"; cat "$STEPS" > "$OUTDIR/summary.md"; FAILED=1; }
(
    cd "$OUTDIR" && shopt -s nullglob && extra=(./*.csv ./*.json)
    for dir in ch05 ch06 ch07 ch12 ncu; do [[ -d $dir ]] && extra+=("./$dir"); done
    tar -czf results.tar.gz logs figures summary.md "${extra[@]}"
)
if [[ "$PACK_ONLY" == 1 ]]; then
    # The device tool copies back at most 8 files: keep summary.md and the tarball (which holds
    # the CSVs too).
    rm -rf "$OUTDIR/logs" "$OUTDIR/figures" "$OUTDIR"/*.csv "$OUTDIR"/*.json "$OUTDIR/ch05" "$OUTDIR/ch06" \
        "$OUTDIR/ch07" "$OUTDIR/ch12" "$OUTDIR/ncu"
fi
cat "$OUTDIR/summary.md"
echo "results: $OUTDIR (summary.md, results.tar.gz); total ${TOTAL} s"
exit "$FAILED"
