#!/bin/bash
# A/B of one binary (branch free-merge-bound): base (main's behaviour), skip (ATTN_SKIP_COMBINE=1:
# no combine, no early allowance; timing only) and ww2 (--whole-waves 2), alternating, three rounds.
xz -dk target/fmb/ch07.xz 2>/dev/null; B=target/fmb/ch07
R=/tmp/res; mkdir -p $R/ab $R/logs
nvidia-smi --query-gpu=name,uuid,driver_version,clocks.max.sm,clocks.max.mem --format=csv > "$R/gpu.txt"
date -u >> "$R/gpu.txt"
start=$(date +%s)
lap() { echo "[$(( $(date +%s) - start )) s] $1 rc=$2" | tee -a "$R/laps.txt"; }
for r in a b c; do
  timeout 150 $B --bench-decode --out /tmp/fig --csv "$R/ab/base-$r.csv" > "$R/logs/base-$r.log" 2>&1; lap base-$r $?
  ATTN_SKIP_COMBINE=1 timeout 150 $B --bench-decode --out /tmp/fig --csv "$R/ab/skip-$r.csv" > "$R/logs/skip-$r.log" 2>&1; lap skip-$r $?
  if true; then
    timeout 150 $B --bench-decode --whole-waves 2 --out /tmp/fig --csv "$R/ab/ww2-$r.csv" > "$R/logs/ww2-$r.log" 2>&1; lap ww2-$r $?
  fi
done
tar czf "$OUT/res.tgz" -C $R .
