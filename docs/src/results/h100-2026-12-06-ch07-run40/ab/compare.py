import csv,sys
def load(f):
    d={}
    for r in csv.DictReader(open(f)):
        d[(r['impl'],r['dtype'],r['q_heads'],r['batch'],r['context'])]=(float(r['median_ms'])*1000,r['splits'])
    return d
R=sys.argv[1]  # the run's folder: python3 ab/compare.py .
names=['r36','copier']
runs={n:[load(f'{R}/ab/{n}-{x}.csv') for x in 'ab'] for n in names}
shapes=[('16','1024'),('16','16384'),('16','65536'),('4','65536'),('1','262144')]
print("best of two timings, us: r36 -> copier (change %)")
for impl in ['ch07_decode','ch07_decode_pipelined','ch07_decode_mma']:
  for dt in ['bf16','int8','fp8','nvfp4']:
    for model in ['32','9']:
      if (impl,dt,model,'16','16384') not in runs['r36'][0]: continue
      s=f"{impl[12:] or 'reg':9} {dt:5} q{model:2}: "
      for b,c in shapes:
        key=(impl,dt,model,b,c)
        v={n:min(x[key][0] for x in runs[n]) for n in runs}
        s+=f"{b}x{c} {v['r36']:6.1f} {v['copier']:6.1f} ({100*(v['copier']/v['r36']-1):+5.1f}%) | "
      print(s)
print("ratios vs fastest bf16 (per timing a, b): INT8, FP8, NVFP4")
for model in ['9','32']:
  for b,c in shapes:
    line=f"q{model} {b}x{c}: "
    for n in runs:
      for d in runs[n]:
        bf=min(d[(i,'bf16',model,b,c)][0] for i in ['ch07_decode','ch07_decode_pipelined'])
        r=[bf/d[('ch07_decode_mma',e,model,b,c)][0] for e in ['int8','fp8','nvfp4']]
        line+=f"{n} {r[0]:4.2f} {r[1]:4.2f} {r[2]:4.2f} | "
    print(line)
