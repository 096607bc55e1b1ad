#!/bin/bash
# tests + sanitizers + bench via run.sh, then ncu of the mma kernels (one launch each, d128 g4, 16 x 16k).
R=/tmp/r5; mkdir -p $R
ATTN_CHAPTERS=ch07 ATTN_PROFILE=0 ATTN_RUN_SANITIZER_JOBS=8 bash target/gpu-bundle/run.sh $R/run > $R/log.txt 2>&1
SECS=(--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis)
for k in mma_fp8 mma_nvfp4 mma_int8; do
  timeout 120 ncu "${SECS[@]}" --kernel-name "ch07_decode_${k}_d128_g4" --launch-skip 100 --launch-count 1 --csv --page details \
    --log-file $R/ncu_$k.csv target/gpu-bundle/bin/ch07 --bench-decode --repeats 20 --out $R/ncufigs --csv $R/ncu_$k.bench.csv > $R/ncu_$k.log 2>&1
  echo "ncu $k rc $?"
done
tar czf $OUT/run.tgz -C $R .
