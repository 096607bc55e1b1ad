"""Best of the timings per point for each variant, against the first: python3 compare.py RUN base other...
(RUN/ab/<name>-<a|b>.csv, each a `ch07 --bench-decode --csv` of one variant)."""
import csv, glob, sys
def load(f):
    return {(r['impl'], r['dtype'], r['q_heads'], r['batch'], r['context']): float(r['median_ms']) * 1000
            for r in csv.DictReader(open(f))}
R, names = sys.argv[1], sys.argv[2:]
runs = {n: [load(f) for f in sorted(glob.glob(f'{R}/ab/{n}-*.csv'))] for n in names}
shapes = [('16', '1024'), ('16', '16384'), ('16', '32768'), ('16', '65536'), ('4', '65536'), ('1', '262144')]
base = names[0]
print(f"best of {min(len(v) for v in runs.values())} timings, us: {' / '.join(names)} (change against {base})")
for impl in ['ch07_decode', 'ch07_decode_pipelined', 'ch07_decode_mma']:
    for dt in ['bf16', 'int8', 'fp8', 'nvfp4']:
        for model in ['32', '9']:
            if (impl, dt, model, '16', '16384') not in runs[base][0]: continue
            s = f"{impl[12:] or 'reg':9} {dt:5} q{model:2}: "
            for b, c in shapes:
                key = (impl, dt, model, b, c)
                v = {n: min(x[key] for x in runs[n]) for n in names}
                s += f"{b}x{c} {v[base]:6.1f}" + "".join(f" {v[n]:6.1f} ({100 * (v[n] / v[base] - 1):+5.1f}%)" for n in names[1:]) + " | "
            print(s)
print("ratios vs the fastest bf16 kernel of the same variant (best of the timings): INT8, FP8, NVFP4")
for model in ['9', '32']:
    for b, c in shapes:
        line = f"q{model} {b}x{c}: "
        for n in names:
            best = lambda i, e: min(d[(i, e, model, b, c)] for d in runs[n])
            bf = min(best(i, 'bf16') for i in ['ch07_decode', 'ch07_decode_pipelined'])
            r = [bf / best('ch07_decode_mma', e) for e in ['int8', 'fp8', 'nvfp4']]
            line += f"{n} {r[0]:4.2f} {r[1]:4.2f} {r[2]:4.2f} | "
        print(line)
