//! Cases for the CPU emulation of the decode kernels (`xtask/emulate/`, see its README): for
//! every element type (INT8 with key groups 32, 20, 5 and 1), the four head shapes of
//! `tests/decode_gpu.rs`, batches of mixed lengths and one long sequence, split plans for a
//! large and a small GPU, this writes the quantised cache, q, the lengths, the f64 reference
//! output and the per-row tolerance of `tests/decode_gpu.rs` as raw little-endian files, one
//! folder per case. Ignored: it only prepares input for a tool, and runs with
//! `EMULATION_CASES_DIR=/tmp/decode_cases cargo test -p ch07-kv-cache --test emulation_cases -- --ignored`.

use ch07_kv_cache::attn_support::data::randn;
use ch07_kv_cache::attn_support::ndarray::s;
use ch07_kv_cache::gpu::{CacheElement, decode_attention_reference, plan_splits, quantize_cache};
use std::path::Path;

/// The GPU tests' tolerance unit, f32's unit roundoff.
const U: f64 = f32::EPSILON as f64 / 2.0;

fn write(dir: &Path, name: &str, bytes: impl IntoIterator<Item = u8>) {
    std::fs::write(dir.join(name), bytes.into_iter().collect::<Vec<u8>>()).expect("writing a case file");
}

fn f32s(v: &[f32]) -> impl Iterator<Item = u8> + '_ {
    v.iter().flat_map(|x| x.to_le_bytes())
}

#[test]
#[ignore = "prepares input for xtask/emulate; run with EMULATION_CASES_DIR set"]
fn emulation_cases() {
    let root = std::env::var("EMULATION_CASES_DIR").expect("EMULATION_CASES_DIR names the output folder");
    let root = Path::new(&root);
    let mut elements = CacheElement::all(32).to_vec();
    elements.extend([128, 20, 5, 1].map(|key_group| CacheElement::Int8 { key_group }));
    // The last: 36 splits of 128 tokens at 264 blocks a wave, more than the combine kernel's 32
    // split lanes, beside an empty sequence.
    let cases: [(&[u32], usize); 4] =
        [(&[1, 0, 333, 1000], 1037), (&[0, 77, 5], 100), (&[3001], 3001), (&[4500, 0], 4500)];
    let mut n = 0;
    for element in elements {
        for (kvh, g, d) in [(3, 3, 64), (2, 4, 128), (1, 1, 64), (2, 2, 128)] {
            for &(lengths, capacity) in &cases {
                // Split plans as on a GPU of 264 blocks per wave, and of 4 (many splits).
                for wave in [264, 4] {
                    let batch = lengths.len();
                    let seed = n as u64 * 7 + 1;
                    let mut k = randn((batch, kvh, capacity, d), seed);
                    for c in (0..d).step_by(17) {
                        k.slice_mut(s![.., .., .., c]).mapv_inplace(|x| 8.0 * x);
                    }
                    let v = randn((batch, kvh, capacity, d), seed + 1);
                    let q = randn((batch, kvh * g, d), seed + 2).mapv(|x| 0.5 * x);
                    let qc = quantize_cache(element, k.view(), v.view(), lengths).expect("quantising");
                    let want =
                        decode_attention_reference(q.view(), qc.k_read.view(), qc.v_read.view(), lengths)
                            .expect("the reference");
                    let max_len = *lengths.iter().max().expect("a batch") as usize;
                    let plan = plan_splits(batch * kvh, max_len, wave);
                    let dir = root.join(format!("{n:04}"));
                    std::fs::create_dir_all(&dir).expect("creating a case folder");
                    let id = match element {
                        CacheElement::Bf16 => 0,
                        CacheElement::Int8 { .. } => 1,
                        CacheElement::Fp8 => 2,
                        CacheElement::Nvfp4 => 3,
                    };
                    let meta = format!(
                        "{id} {d} {g} {kvh} {batch} {capacity} {} {} {}\n",
                        element.key_group(),
                        plan.splits,
                        plan.chunk
                    );
                    write(&dir, "meta.txt", meta.into_bytes());
                    let c = &qc.cache;
                    write(&dir, "q", f32s(q.as_slice().expect("standard layout")));
                    write(&dir, "kc", c.k.codes.iter().copied());
                    write(&dir, "vc", c.v.codes.iter().copied());
                    write(&dir, "ks", f32s(&c.k.scales));
                    write(&dir, "vs", f32s(&c.v.scales));
                    write(&dir, "kb", c.k.block_scales.iter().copied());
                    write(&dir, "vb", c.v.block_scales.iter().copied());
                    write(&dir, "kt", f32s(&c.k.tensor_scales));
                    write(&dir, "vt", f32s(&c.v.tensor_scales));
                    write(&dir, "len", lengths.iter().flat_map(|l| l.to_le_bytes()));
                    write(&dir, "want", want.iter().flat_map(|x| x.to_le_bytes()));
                    // The tolerance of tests/decode_gpu.rs, per (sequence, query head).
                    let mut tol = vec![0f64; batch * kvh * g];
                    for b in 0..batch {
                        let len = lengths[b] as usize;
                        for hq in 0..kvh * g {
                            if len == 0 {
                                continue;
                            }
                            let kr = qc.k_read.slice(s![b, hq / g, ..len, ..]);
                            let vr = qc.v_read.slice(s![b, hq / g, ..len, ..]);
                            let qr = q.slice(s![b, hq, ..]);
                            let big_s = kr
                                .rows()
                                .into_iter()
                                .map(|kt| {
                                    kt.iter().zip(qr).map(|(a, b)| f64::from((a * b).abs())).sum::<f64>()
                                })
                                .fold(0.0, f64::max)
                                / (d as f64).sqrt();
                            let vmax = vr.iter().fold(0.0f64, |m, &x| m.max(f64::from(x.abs())));
                            tol[b * kvh * g + hq] = 16.0 * U * (1.0 + big_s + (len as f64).sqrt()) * vmax;
                        }
                    }
                    write(&dir, "tol", tol.iter().flat_map(|x| x.to_le_bytes()));
                    n += 1;
                }
            }
        }
    }
    println!("{n} cases in {}", root.display());
}
