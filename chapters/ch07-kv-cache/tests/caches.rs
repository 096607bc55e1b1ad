//! Every cache of chapter 7 against the full-precision cache on small seeded random models: the
//! same logits where the cache loses nothing (f32 encoding, a budget that evicts nothing, full
//! rank, every growth policy), exactly the encoding's round trip where it does, and the
//! bookkeeping (what is kept, what growing copies) checked directly.

use ch07_kv_cache::attn_model::{DenseKvCache, GqaSdpa, KvCache, Llama, LlamaConfig, LlamaWeights};
use ch07_kv_cache::caches::encoded::{EncodedKvCache, Role, round_trip};
use ch07_kv_cache::caches::eviction::{EvictingKvCache, Eviction};
use ch07_kv_cache::caches::growing::{GrowingKvCache, Growth};
use ch07_kv_cache::caches::low_rank::{LowRankCodec, held_out_error};
use ch07_kv_cache::calibration::record_kv;
use ch07_kv_cache::ndarray::{Array2, Array3, s};
use ch07_kv_cache::quant::KvEncoding;
use ch07_kv_cache::quant::kivi::KiviConfig;
use proptest::prelude::*;

fn model(seed: u64) -> Llama {
    Llama::new(LlamaWeights::random(&LlamaConfig::tiny(2, 4, 2, 8, 41), seed).unwrap()).unwrap()
}

fn ids(n: usize, seed: u64) -> Vec<u32> {
    (0..n).map(|i| ((i as u64 * 131 + seed * 17) % 41) as u32).collect()
}

/// Logits of `ids` fed in chunks through `cache`, stacked `(tokens, vocab)`.
fn logits_through(model: &Llama, ids: &[u32], chunk: usize, cache: &mut dyn KvCache) -> Array2<f32> {
    let parts: Vec<Array2<f32>> =
        ids.chunks(chunk).map(|p| model.forward(p, cache, &GqaSdpa).unwrap()).collect();
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ch07_kv_cache::ndarray::concatenate(ch07_kv_cache::ndarray::Axis(0), &views).unwrap()
}

fn dense_logits(model: &Llama, ids: &[u32], chunk: usize) -> Array2<f32> {
    logits_through(model, ids, chunk, &mut DenseKvCache::new(model.config(), ids.len()).unwrap())
}

fn random_kv(heads: usize, n: usize, d: usize, seed: u64) -> Array3<f32> {
    Array3::from_shape_fn((heads, n, d), |(h, t, c)| {
        let x = ((h * 7919 + t * 104_729 + c * 31 + seed as usize * 13) % 1009) as f32 / 1009.0 - 0.5;
        if c == 3 { 20.0 * x } else { x } // an outlier channel, as real keys have
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn lossless_caches_give_the_dense_cache_logits(n in 1usize..24, chunk in 1usize..6, seed in 0u64..100) {
        let model = model(seed);
        let config = model.config().clone();
        let ids = ids(n, seed);
        let want = dense_logits(&model, &ids, chunk);
        let mut f32_cache = EncodedKvCache::new(&config, KvEncoding::F32, n).unwrap();
        prop_assert_eq!(&logits_through(&model, &ids, chunk, &mut f32_cache), &want);
        // A budget no shorter than the text evicts nothing: sliding window and H2O.
        for policy in [Eviction::SlidingWindow { window: n }, Eviction::HeavyHitters { heavy: 1, recent: n }] {
            let mut cache = EvictingKvCache::new(&config, policy).unwrap();
            prop_assert_eq!(&logits_through(&model, &ids, chunk, &mut cache), &want);
        }
        for growth in [Growth::Preallocated { max: n }, Growth::Chunks { chunk: 5 }, Growth::Doubling { initial: 1 }] {
            let mut cache = GrowingKvCache::new(&config, growth).unwrap();
            prop_assert_eq!(&logits_through(&model, &ids, chunk, &mut cache), &want);
        }
    }

    #[test]
    fn an_encoded_cache_holds_each_full_group_round_tripped_and_the_rest_exact(
        n in 1usize..40, chunk in 1usize..9, g in 1usize..6, r in 0usize..7, seed in 0u64..100,
    ) {
        let config = LlamaConfig::tiny(1, 4, 2, 32, 11);
        let encodings = [
            KvEncoding::Int8 { key_tokens_per_scale: g },
            KvEncoding::Kivi(KiviConfig::new(2, g, r).unwrap()),
            KvEncoding::Fp4(ch07_kv_cache::quant::fp4::Fp4Format::Nvfp4),
        ];
        let (k, v) = (random_kv(2, n, 32, seed), random_kv(2, n, 32, seed + 1));
        for encoding in encodings {
            let mut cache = EncodedKvCache::new(&config, encoding, n).unwrap();
            for start in (0..n).step_by(chunk) {
                let end = (start + chunk).min(n);
                cache.append(0, k.slice(s![.., start..end, ..]), v.slice(s![.., start..end, ..])).unwrap();
            }
            let (group, residual) = ch07_kv_cache::caches::encoded::KvCodec::grouping(&encoding);
            let (quantised, tail) = cache.split(0);
            prop_assert_eq!(quantised % group, 0);
            prop_assert!(tail < residual + group && (tail >= residual.min(n)), "{}: {quantised} + {tail}", encoding.name());
            let (got_k, got_v) = cache.keys_values(0).unwrap();
            for h in 0..2 {
                for (got, want, role) in [(&got_k, &k, Role::Key), (&got_v, &v, Role::Value)] {
                    for block in (0..quantised).step_by(group) {
                        let expect = round_trip(&encoding, want.slice(s![h, block..block + group, ..]), role).unwrap();
                        prop_assert_eq!(got.slice(s![h, block..block + group, ..]), expect.view());
                    }
                    prop_assert_eq!(got.slice(s![h, quantised.., ..]), want.slice(s![h, quantised.., ..]));
                }
            }
        }
    }

    #[test]
    fn evicting_caches_keep_their_budget_in_position_order(n in 1usize..30, chunk in 1usize..5, budget in 1usize..8, seed in 0u64..50) {
        let model = model(seed);
        let ids = ids(n, seed);
        for policy in [Eviction::SlidingWindow { window: budget }, Eviction::HeavyHitters { heavy: budget.div_ceil(2), recent: budget / 2 }] {
            let mut cache = EvictingKvCache::new(model.config(), policy).unwrap();
            let mut seen = 0;
            for part in ids.chunks(chunk) {
                let before = cache.kept(0).min(policy.budget());
                model.forward(part, &mut cache, &GqaSdpa).unwrap();
                seen += part.len();
                prop_assert_eq!(cache.kept(0), before + part.len());
                for h in 0..2 {
                    let pos = cache.positions(0, h);
                    prop_assert!(pos.windows(2).all(|w| w[0] < w[1]));
                    // The new tokens are always kept, last.
                    prop_assert_eq!(&pos[pos.len() - part.len()..], &(seen - part.len()..seen).collect::<Vec<_>>()[..]);
                    if let Eviction::SlidingWindow { .. } = policy {
                        prop_assert_eq!(pos[0], seen - pos.len());
                    }
                }
            }
            prop_assert_eq!(cache.next_position(), n);
        }
    }
}

#[test]
fn heavy_hitters_keep_the_tokens_that_got_the_most_attention() {
    let config = LlamaConfig::tiny(1, 2, 1, 4, 11);
    let mut cache = EvictingKvCache::new(&config, Eviction::HeavyHitters { heavy: 2, recent: 1 }).unwrap();
    let kv = Array3::<f32>::ones((1, 6, 4));
    cache.append(0, kv.view(), kv.view()).unwrap();
    // Two query heads, one query each, over six keys: tokens 1 and 4 get the most in total.
    let w =
        Array3::from_shape_vec((2, 1, 6), vec![0.1, 0.5, 0.0, 0.1, 0.2, 0.1, 0.0, 0.3, 0.1, 0.0, 0.5, 0.1])
            .unwrap();
    cache.observe_attention(0, w.view()).unwrap();
    let one = Array3::<f32>::ones((1, 1, 4));
    cache.append(0, one.view(), one.view()).unwrap();
    // Budget 3 before the new token: the most recent (5) and the two heaviest older (1, 4).
    assert_eq!(cache.positions(0, 0), &[1, 4, 5, 6]);
    assert!(cache.observe_attention(0, Array3::<f32>::zeros((2, 1, 3)).view()).is_err());
}

#[test]
fn growing_copies_what_each_policy_predicts_and_preallocation_refuses_to_overflow() {
    let config = LlamaConfig::tiny(1, 2, 1, 4, 11);
    let one = Array3::<f32>::ones((1, 1, 4));
    let token_bytes = 4 * 4; // one KV head of 4 f32
    let grow = |growth: Growth, n: usize| {
        let mut cache = GrowingKvCache::new(&config, growth).unwrap();
        for _ in 0..n {
            cache.append(0, one.view(), one.view()).unwrap();
        }
        cache
    };
    // Doubling from 1 to 100 tokens: capacities 1, 2, 4, …, 128; copies 1 + 2 + … + 64 = 127 tokens.
    let doubling = grow(Growth::Doubling { initial: 1 }, 100);
    assert_eq!(doubling.cost().reallocations, 8);
    assert_eq!(doubling.cost().bytes_copied, 2 * 127 * token_bytes);
    assert_eq!(doubling.bytes_allocated(), 2 * 128 * token_bytes);
    // Chunks of 10: 10 allocations, copies 10 + 20 + … + 90 = 450 tokens.
    let chunks = grow(Growth::Chunks { chunk: 10 }, 100);
    assert_eq!(chunks.cost().reallocations, 10);
    assert_eq!(chunks.cost().bytes_copied, 2 * 450 * token_bytes);
    let mut full = grow(Growth::Preallocated { max: 3 }, 3);
    assert!(full.append(0, one.view(), one.view()).unwrap_err().to_string().contains("preallocated for 3"));
    assert_eq!(full.tokens_seen(0), 3);
    assert_eq!(full.cost().bytes_copied, 0);
}

#[test]
fn a_low_rank_cache_at_full_rank_is_lossless_and_its_error_is_the_energy_left_out() {
    let model = model(3);
    let calibration = record_kv(&model, &ids(30, 9)).unwrap();
    let codec = LowRankCodec::fit(&calibration, 8, 8).unwrap();
    let text = ids(12, 4);
    let want = dense_logits(&model, &text, 3);
    let mut cache = EncodedKvCache::new(model.config(), codec.clone(), 12).unwrap();
    let got = logits_through(&model, &text, 3, &mut cache);
    let worst = (&got - &want).iter().fold(0.0f32, |m, e| m.max(e.abs()));
    assert!(worst < 1e-3, "full rank differs by {worst}");
    // On the calibration keys themselves, the error at rank r is the energy left out.
    for rank in [1, 3, 6] {
        let error = held_out_error(&codec.keys[1], &calibration[1].0, rank);
        let energy = codec.keys[1].iter().map(|b| b.residual_energy(rank) * b.energies.sum()).sum::<f64>()
            / codec.keys[1].iter().map(|b| b.energies.sum()).sum::<f64>();
        assert!((error - energy).abs() < 1e-4, "rank {rank}: {error} vs {energy}");
    }
    assert!(LowRankCodec::fit(&calibration, 0, 4).is_err());
    assert!(LowRankCodec::fit(&calibration, 4, 9).is_err());
}

#[test]
fn a_basis_fitted_for_the_scores_beats_the_energy_basis_on_the_scores() {
    use ch07_kv_cache::caches::low_rank::HeadBasis;
    use ch07_kv_cache::calibration::record_kv_and_queries;
    let model = model(5);
    let (kv, queries) = record_kv_and_queries(&model, &ids(40, 2)).unwrap();
    // Layer 1, KV head 0 and the queries of its group (query heads 0 and 1).
    let keys = kv[1].0.index_axis(ch07_kv_cache::ndarray::Axis(0), 0).to_owned();
    let q = queries[1].slice(s![0..2, .., ..]).to_shape((80, 8)).unwrap().to_owned();
    let score_error = |basis: &HeadBasis, rank: usize| {
        let approx = basis.project(keys.view(), rank);
        let diff = &keys - &approx;
        q.dot(&diff.t()).iter().map(|e| (*e as f64).powi(2)).sum::<f64>()
    };
    let (energy, scores) = (HeadBasis::fit(keys.view()), HeadBasis::fit_for_scores(keys.view(), q.view()));
    for rank in 1..8 {
        let (e, s) = (score_error(&energy, rank), score_error(&scores, rank));
        assert!(s <= e * (1.0 + 1e-4), "rank {rank}: score error {s} for the score basis, {e} by energy");
    }
    assert!(score_error(&scores, 8) < 1e-6 * score_error(&scores, 1).max(1e-30) + 1e-6);
}

#[test]
fn teacher_forcing_with_the_greedy_tokens_gives_the_greedy_tokens() {
    use ch07_kv_cache::quality::{greedy, teacher_forced};
    let model = model(8);
    let prompt = ids(9, 1);
    let fresh = || DenseKvCache::new(model.config(), 32).unwrap();
    let tokens = greedy(&model, &prompt, 12, 4, &mut fresh()).unwrap();
    assert_eq!(teacher_forced(&model, &prompt, &tokens, 4, &mut fresh()).unwrap(), tokens);
    let mut other = tokens.clone();
    other[3] = (other[3] + 1) % 41;
    let forced = teacher_forced(&model, &prompt, &other, 4, &mut fresh()).unwrap();
    assert_eq!(forced[..4], tokens[..4], "the steps before the changed token are the same");
}
