#!/usr/bin/env bash
# Compile each chapter-12 kernel file with nvcc for the H100 (the same source the binaries hand
# to NVRTC: the shared header followed by the rung's file) and count, per entry point, the SASS
# instructions that tell which units a kernel uses: HMMA (mma.sync tensor cores), HGMMA (wgmma),
# UTMALDG (TMA tensor loads),
# LDSM (ldmatrix), LDGSTS (cp.async), FFMA (f32 multiply-add on the CUDA cores), and the local
# memory traffic of spills (LDL/STL). Usage: sass_check.sh REPO_ROOT OUTFILE
set -euo pipefail
ROOT="$1"; OUTFILE="$2"
K="$ROOT/kernels"
TMP="$(mktemp -d)"
{
    printf '| kernel file | entry point | HMMA | HGMMA | LDSM | LDGSTS | UTMALDG | FFMA | LDL+STL |\n|---|---|---|---|---|---|---|---|---|\n'
    for f in ch12_rung1_smem_softmax.cu ch12_rung2_register_softmax.cu ch12_pipelined.cu ch12_wgmma.cu ch12_tma.cu; do
        arch=sm_90; headers=("$K/ch12_mma_common.cuh")
        if [[ $f == ch12_wgmma.cu || $f == ch12_tma.cu ]]; then
            arch=sm_90a; headers+=("$K/ch12_wgmma_common.cuh")
        fi
        cat "${headers[@]}" "$K/$f" > "$TMP/$f"
        nvcc -cubin -std=c++17 -gencode "arch=compute_${arch#sm_},code=$arch" -o "$TMP/${f%.cu}.cubin" "$TMP/$f"
        cuobjdump -sass "$TMP/${f%.cu}.cubin" | awk -v file="$f" '
            /Function :/ { if (name != "") print_row(); name = $3; delete c; next }
            { for (i = 1; i <= NF; i++) { op = $i; sub(/\..*/, "", op); if (op ~ /^(HMMA|HGMMA|LDSM|LDGSTS|UTMALDG|FFMA|LDL|STL)$/) c[op]++ } }
            function print_row() { printf "| %s | %s | %d | %d | %d | %d | %d | %d | %d |\n", file, name, c["HMMA"], c["HGMMA"], c["LDSM"], c["LDGSTS"], c["UTMALDG"], c["FFMA"], c["LDL"] + c["STL"] }
            END { if (name != "") print_row() }'
    done
    cat "$K/ch03_flash_forward.cu" > "$TMP/ch03.cu"
    nvcc -cubin -std=c++17 -arch=sm_90 -o "$TMP/ch03.cubin" "$TMP/ch03.cu"
    cuobjdump -sass "$TMP/ch03.cubin" | awk '
        /Function :/ { if (name != "") print_row(); name = $3; delete c; next }
        { for (i = 1; i <= NF; i++) { op = $i; sub(/\..*/, "", op); if (op ~ /^(HMMA|HGMMA|LDSM|LDGSTS|UTMALDG|FFMA|LDL|STL)$/) c[op]++ } }
        function print_row() { printf "| ch03_flash_forward.cu | %s | %d | %d | %d | %d | %d | %d | %d |\n", name, c["HMMA"], c["HGMMA"], c["LDSM"], c["LDGSTS"], c["UTMALDG"], c["FFMA"], c["LDL"] + c["STL"] }
        END { if (name != "") print_row() }'
} > "$OUTFILE"
cat "$OUTFILE"
rm -rf "$TMP"
