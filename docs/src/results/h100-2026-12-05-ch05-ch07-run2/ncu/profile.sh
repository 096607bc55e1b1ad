#!/bin/bash
# Nsight Compute sections for the ch05 softmax (3 shapes) and the ch07 decode kernels (16 x 16k, d128 g4).
B=$(dirname "$0"); O=${1:?outdir}; mkdir -p "$O"
SECS=(--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis)
printf '256 16 128 128\n4 16 1024 1024\n1 16 256 16384\n' > "$O/shapes.txt"
timeout 240 ncu "${SECS[@]}" --kernel-name regex:'ch05_softmax_(warp|block)_(f32|bf16)_vec' --csv --page details \
  --log-file "$O/ncu_softmax.csv" "$B/bin/ch05" --bench-softmax --softmax-shapes "$O/shapes.txt" \
  --warmup 0 --repeats 1 --csv "$O/softmax_under_ncu.csv" > "$O/ncu_softmax.log" 2>&1; echo "softmax ncu rc $?"
for k in bf16 pipelined_bf16 pipelined_int8 pipelined_nvfp4; do
  timeout 150 ncu "${SECS[@]}" --kernel-name "ch07_decode_${k}_d128_g4" --launch-skip 92 --launch-count 1 --csv --page details \
    --log-file "$O/ncu_decode_$k.csv" "$B/bin/ch07" --bench-decode --repeats 20 --out "$O/figs" --csv "$O/decode_under_ncu_$k.csv" > "$O/ncu_decode_$k.log" 2>&1
  echo "decode $k ncu rc $?"
done
