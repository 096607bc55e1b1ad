//! The forward pass against an independent f64 reference written here from the equations
//! (embedding, RMSNorm, half-rotation RoPE with f64 angles, causal GQA softmax attention, SwiGLU,
//! tied output), on small seeded random checkpoints; the cache against running all at once; the
//! GGUF loader's W_q/W_k conversion against a permutation written here.

use attn_model::gguf::{GgmlType, GgufFile, GgufWriter, Value};
use attn_model::llama::{DenseKvCache, GqaSdpa, KvCache, Llama, LlamaConfig, LlamaWeights};
use attn_model::ndarray::{Array2, ArrayView2};
use proptest::prelude::*;

fn matvec(w: &Array2<f32>, x: &[f64]) -> Vec<f64> {
    w.rows().into_iter().map(|r| r.iter().zip(x).map(|(&a, b)| a as f64 * b).sum()).collect()
}

fn rms(x: &[f64], w: &[f32], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    x.iter().zip(w).map(|(v, &g)| v / (ms + eps).sqrt() * g as f64).collect()
}

/// Half-rotation RoPE of one head vector at position `m`, angles in f64.
fn rope(v: &mut [f64], m: usize, base: f64) {
    let d = v.len();
    for i in 0..d / 2 {
        let theta = m as f64 * base.powf(-(2.0 * i as f64) / d as f64);
        let (a, b) = (v[i], v[i + d / 2]);
        v[i] = a * theta.cos() - b * theta.sin();
        v[i + d / 2] = b * theta.cos() + a * theta.sin();
    }
}

/// Logits of every token of `tokens`, `(tokens, vocab)`, in f64.
fn reference_logits(w: &LlamaWeights, tokens: &[u32]) -> Vec<Vec<f64>> {
    let c = &w.config;
    let (d, hd, group) = (c.d_model, c.head_dim, c.n_heads / c.n_kv_heads);
    let eps = c.rms_eps as f64;
    let mut xs: Vec<Vec<f64>> =
        tokens.iter().map(|&t| w.embedding.row(t as usize).iter().map(|&v| v as f64).collect()).collect();
    for layer in &w.layers {
        let norm = |x: &Vec<f64>, g: &attn_model::ndarray::Array1<f32>| rms(x, g.as_slice().unwrap(), eps);
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for (m, x) in xs.iter().enumerate() {
            let h = norm(x, &layer.attn_norm);
            let (mut q, mut k) = (matvec(&layer.wq, &h), matvec(&layer.wk, &h));
            q.chunks_mut(hd).for_each(|head| rope(head, m, c.rope_theta as f64));
            k.chunks_mut(hd).for_each(|head| rope(head, m, c.rope_theta as f64));
            qs.push(q);
            ks.push(k);
            vs.push(matvec(&layer.wv, &h));
        }
        for (i, x) in xs.iter_mut().enumerate() {
            let mut attended = vec![0.0; c.n_heads * hd];
            for head in 0..c.n_heads {
                let kv = head / group;
                let q = &qs[i][head * hd..(head + 1) * hd];
                let scores: Vec<f64> = (0..=i)
                    .map(|j| {
                        q.iter().zip(&ks[j][kv * hd..(kv + 1) * hd]).map(|(a, b)| a * b).sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for (j, p) in e.iter().enumerate() {
                    for t in 0..hd {
                        attended[head * hd + t] += p / sum * vs[j][kv * hd + t];
                    }
                }
            }
            let o = matvec(&layer.wo, &attended);
            x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let h = norm(x, &layer.ffn_norm);
            let gate = matvec(&layer.w_gate, &h);
            let up = matvec(&layer.w_up, &h);
            let act: Vec<f64> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            let down = matvec(&layer.w_down, &act);
            x.iter_mut().zip(&down).for_each(|(a, b)| *a += b);
        }
        let _ = d;
    }
    xs.iter().map(|x| matvec(w.output_matrix(), &rms(x, w.final_norm.as_slice().unwrap(), eps))).collect()
}

fn assert_close(got: ArrayView2<f32>, want: &[Vec<f64>], what: &str) {
    let scale = want.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (row, want_row)) in got.rows().into_iter().zip(want).enumerate() {
        for (j, (&g, &w)) in row.iter().zip(want_row).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 2e-4 * scale.max(1.0),
                "{what}: token {i} logit {j}: {g} vs {w} (scale {scale})"
            );
        }
    }
}

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    (0..n).map(|i| ((i as u64 * 7919 + seed * 104_729) % vocab as u64) as u32).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn forward_matches_the_f64_reference_at_once_and_in_cached_chunks(
        shape in prop_oneof![Just((4usize, 2usize, 8usize)), Just((3, 1, 6)), Just((2, 2, 4)), Just((6, 3, 10))],
        n in 1usize..20,
        chunk in 1usize..7,
        seed in 0u64..1000,
    ) {
        let (heads, kv_heads, head_dim) = shape;
        let config = LlamaConfig::tiny(2, heads, kv_heads, head_dim, 37);
        let model = Llama::new(LlamaWeights::random(&config, seed).unwrap()).unwrap();
        let ids = tokens(n, config.vocab_size, seed);
        let want = reference_logits(&model.weights, &ids);

        let mut cache = DenseKvCache::new(&config, n).unwrap();
        let all = model.forward(&ids, &mut cache, &GqaSdpa).unwrap();
        assert_close(all.view(), &want, "all at once");

        let mut cache = DenseKvCache::new(&config, n).unwrap();
        for (c, part) in ids.chunks(chunk).enumerate() {
            let logits = model.forward(part, &mut cache, &GqaSdpa).unwrap();
            assert_close(logits.view(), &want[c * chunk..c * chunk + part.len()], "in chunks");
        }
        prop_assert_eq!(cache.next_position(), n);
    }
}

/// Half-rotation rows of each head to interleaved ones, as llama.cpp's converter stores W_q/W_k.
fn to_interleaved(w: &Array2<f32>, heads: usize) -> Array2<f32> {
    let hd = w.nrows() / heads;
    Array2::from_shape_fn(w.raw_dim(), |(row, col)| {
        let (head, r) = (row / hd, row % hd);
        let source = if r % 2 == 0 { r / 2 } else { r / 2 + hd / 2 };
        w[[head * hd + source, col]]
    })
}

fn f32_tensor(writer: GgufWriter, name: &str, w: &[f32], dims: &[u64]) -> GgufWriter {
    writer.tensor(name, dims, GgmlType::F32, w.iter().flat_map(|v| v.to_le_bytes()).collect())
}

fn matrix_tensor(writer: GgufWriter, name: &str, w: &Array2<f32>) -> GgufWriter {
    let dims = [w.ncols() as u64, w.nrows() as u64]; // GGUF lists the fastest dimension first
    f32_tensor(writer, name, w.as_standard_layout().as_slice().unwrap(), &dims)
}

#[test]
fn a_gguf_file_with_interleaved_q_and_k_gives_the_same_logits() {
    let config = LlamaConfig::tiny(2, 4, 2, 8, 29);
    let weights = LlamaWeights::random(&config, 5).unwrap();
    let c = &config;
    let mut writer = GgufWriter::new()
        .metadata("general.architecture", Value::String("llama".into()))
        .metadata("llama.block_count", Value::U32(c.n_layers as u32))
        .metadata("llama.embedding_length", Value::U32(c.d_model as u32))
        .metadata("llama.feed_forward_length", Value::U32(c.ffn_dim as u32))
        .metadata("llama.attention.head_count", Value::U32(c.n_heads as u32))
        .metadata("llama.attention.head_count_kv", Value::U32(c.n_kv_heads as u32))
        .metadata("llama.attention.layer_norm_rms_epsilon", Value::F32(c.rms_eps))
        .metadata("llama.rope.freq_base", Value::F32(c.rope_theta))
        .metadata("llama.context_length", Value::U32(c.context_length as u32))
        .metadata("llama.vocab_size", Value::U32(c.vocab_size as u32));
    writer = matrix_tensor(writer, "token_embd.weight", &weights.embedding);
    writer =
        f32_tensor(writer, "output_norm.weight", weights.final_norm.as_slice().unwrap(), &[c.d_model as u64]);
    for (l, w) in weights.layers.iter().enumerate() {
        let name = |p: &str| format!("blk.{l}.{p}.weight");
        writer = matrix_tensor(writer, &name("attn_q"), &to_interleaved(&w.wq, c.n_heads));
        writer = matrix_tensor(writer, &name("attn_k"), &to_interleaved(&w.wk, c.n_kv_heads));
        for (part, m) in [
            ("attn_v", &w.wv),
            ("attn_output", &w.wo),
            ("ffn_gate", &w.w_gate),
            ("ffn_up", &w.w_up),
            ("ffn_down", &w.w_down),
        ] {
            writer = matrix_tensor(writer, &name(part), m);
        }
        writer = f32_tensor(writer, &name("attn_norm"), w.attn_norm.as_slice().unwrap(), &[c.d_model as u64]);
        writer = f32_tensor(writer, &name("ffn_norm"), w.ffn_norm.as_slice().unwrap(), &[c.d_model as u64]);
    }
    let file = GgufFile::parse(writer.to_bytes(), "tiny.gguf").unwrap();
    let loaded = LlamaWeights::from_gguf(&file).unwrap();
    assert_eq!(loaded.config, config);
    assert_eq!(loaded.layers[1].wq, weights.layers[1].wq);
    assert_eq!(loaded.layers[0].wk, weights.layers[0].wk);

    let ids = tokens(9, c.vocab_size, 3);
    let run = |w: LlamaWeights| {
        let model = Llama::new(w).unwrap();
        model.forward(&ids, &mut DenseKvCache::new(&config, 9).unwrap(), &GqaSdpa).unwrap()
    };
    assert_eq!(run(loaded), run(weights));
}

#[test]
fn requests_the_model_cannot_serve_are_named() {
    let config = LlamaConfig { context_length: 8, ..LlamaConfig::tiny(1, 2, 1, 4, 11) };
    let model = Llama::new(LlamaWeights::random(&config, 1).unwrap()).unwrap();
    let mut cache = DenseKvCache::new(&config, 8).unwrap();
    let err = |r: attn_model::Result<Array2<f32>>| r.unwrap_err().to_string();
    assert!(err(model.forward(&[], &mut cache, &GqaSdpa)).contains("no tokens"));
    assert!(err(model.forward(&[11], &mut cache, &GqaSdpa)).contains("token id 11"));
    assert!(err(model.forward(&[1; 9], &mut cache, &GqaSdpa)).contains("context of 8"));
    model.forward(&[1; 6], &mut cache, &GqaSdpa).unwrap();
    assert!(err(model.forward(&[1; 3], &mut cache, &GqaSdpa)).contains("3 tokens after 6"));
    let mut small = DenseKvCache::new(&config, 2).unwrap();
    assert!(err(model.forward(&[1; 3], &mut small, &GqaSdpa)).contains("capacity"));
}
