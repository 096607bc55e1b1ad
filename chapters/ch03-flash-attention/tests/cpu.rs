//! Tiled attention vs chapter 2 and the f64 reference, the online softmax, the IO model
//! against the instrumented CPU code and the paper's bounds, bad input, and the figures.

use ch03_flash_attention::SdpaMask;
use ch03_flash_attention::attn_support::data::randn;
use ch03_flash_attention::attn_support::ndarray::{Array2, Array4, s};
use ch03_flash_attention::attn_support::plot::png_bytes;
use ch03_flash_attention::attn_support::{Error, compare};
use ch03_flash_attention::ch02::reference::{sdpa_reference, softmax_reference};
use ch03_flash_attention::ch02::{SdpaDims, SdpaOptions, log_sum_exp, sdpa_with_lse, sdpa_with_options};
use ch03_flash_attention::figures::{
    TimeMemoryRow, TrafficFigure, online_softmax_example, online_softmax_figure, time_memory_chart,
};
use ch03_flash_attention::io_model::{
    LoopOrder, Operand, flash_attention_hbm, flash_bound, flash2_attention_hbm, on_chip_elements,
    paper_tiles, square_dims, standard_attention_counted, standard_attention_hbm, standard_bound,
    standard_traffic, tiled_traffic,
};
use ch03_flash_attention::tiled::kv_outer::flash_attention_kv_outer_counted;
use ch03_flash_attention::tiled::{
    OnlineSoftmax, TileSizes, TiledRun, flash_attention_counted, flash_attention_cpu, online_softmax_steps,
};
use proptest::prelude::*;

const TOL: f64 = 1e-5;

fn qkv(b: usize, h: usize, nq: usize, nk: usize, d: usize, dv: usize, seed: u64) -> [Array4<f32>; 3] {
    [randn((b, h, nq, d), seed), randn((b, h, nk, d), seed + 1), randn((b, h, nk, dv), seed + 2)]
}

type Case = ((usize, usize, usize, usize, usize, usize), SdpaMask, TileSizes, u64);

/// Shapes (B, H 1..=3; Nq, Nk 1..=`max_n`; d, dv 1..=`max_d`), a mask (none, causal, key
/// padding with lengths 0..=Nk per batch entry, or both) and tiles Br, Bc 1..=40.
fn case(max_n: usize, max_d: usize) -> impl Strategy<Value = Case> {
    (1usize..=3, 1usize..=3, 1..=max_n, 1..=max_n, 1..=max_d, 1..=max_d, 1usize..=40, 1usize..=40)
        .prop_flat_map(|(b, h, nq, nk, d, dv, br, bc)| {
            let lengths = prop::collection::vec(0..=nk, b);
            (Just((b, h, nq, nk, d, dv)), any::<bool>(), prop::option::of(lengths), any::<u64>()).prop_map(
                move |(dims, causal, lengths, seed)| {
                    let key_padding = lengths.map(|l| SdpaMask::padding_from_lengths(&l, nk));
                    (dims, SdpaMask { causal, key_padding }, TileSizes { br, bc }, seed % 1_000_000)
                },
            )
        })
}

fn dims_of((b, h, nq, nk, d, dv): (usize, usize, usize, usize, usize, usize)) -> SdpaDims {
    SdpaDims { batch: b, heads: h, nq, nk, head_dim: d, v_dim: dv }
}

/// How many (query tile, key tile) pairs the causal mask leaves without a single visible
/// element, from the visibility matrix itself (not from the tile formula under test).
fn fully_masked_tile_pairs(dims: &SdpaDims, tiles: TileSizes, causal: bool) -> u64 {
    let visible = SdpaMask { causal, key_padding: None }.visible_matrix(0, dims.nq, dims.nk);
    let mut count = 0;
    for rows in TileSizes::ranges(dims.nq, tiles.br) {
        for cols in TileSizes::ranges(dims.nk, tiles.bc) {
            if visible.slice(s![rows.clone(), cols]).iter().all(|&v| !v) {
                count += 1;
            }
        }
    }
    count * (dims.batch * dims.heads) as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn tiled_equals_chapter_2_and_the_f64_reference((shape, mask, tiles, seed) in case(70, 40)) {
        let (b, h, nq, nk, d, dv) = shape;
        let [q, k, v] = qkv(b, h, nq, nk, d, dv, seed);
        let (out, lse) = flash_attention_cpu(q.view(), k.view(), v.view(), &mask, tiles, &SdpaOptions::default()).unwrap();
        let (ch02_out, ch02_lse) = sdpa_with_lse(q.view(), k.view(), v.view(), &mask).unwrap();
        let (ref_out, ref_lse) = sdpa_reference(q.view(), k.view(), v.view(), &mask, None).unwrap();
        for (name, c) in [
            ("out vs ch02", compare(&out, &ch02_out).unwrap()),
            ("lse vs ch02", compare(&lse, &ch02_lse).unwrap()),
            ("out vs f64", compare(&out, &ref_out).unwrap()),
            ("lse vs f64", compare(&lse, &ref_lse).unwrap()),
        ] {
            prop_assert!(c.within(TOL), "{name}: {c} (tiles {tiles:?})");
        }
        // −∞ exactly where the reference has no visible key, and zeros there.
        for (i, (&got, &want)) in lse.iter().zip(ref_lse.iter()).enumerate() {
            prop_assert_eq!(got == f32::NEG_INFINITY, want == f64::NEG_INFINITY, "lse element {}", i);
        }
        prop_assert!(out.iter().all(|x| x.is_finite()));
        // The original loop order gives the same numbers.
        let kv = flash_attention_kv_outer_counted(q.view(), k.view(), v.view(), &mask, tiles, &SdpaOptions::default())
            .unwrap();
        let (c_out, c_lse) = (compare(&kv.out, &ref_out).unwrap(), compare(&kv.lse, &ref_lse).unwrap());
        prop_assert!(c_out.within(TOL) && c_lse.within(TOL), "K/V outer: out {c_out}, lse {c_lse}");
    }

    #[test]
    fn measured_traffic_equals_the_model((shape, mask, tiles, seed) in case(50, 12)) {
        let (b, h, nq, nk, d, dv) = shape;
        let dims = dims_of(shape);
        let [q, k, v] = qkv(b, h, nq, nk, d, dv, seed);
        let opts = SdpaOptions::default();
        let runs: [(LoopOrder, TiledRun); 2] = [
            (LoopOrder::QOuter, flash_attention_counted(q.view(), k.view(), v.view(), &mask, tiles, &opts).unwrap()),
            (LoopOrder::KvOuter, flash_attention_kv_outer_counted(q.view(), k.view(), v.view(), &mask, tiles, &opts).unwrap()),
        ];
        let pairs = (nq.div_ceil(tiles.br) * nk.div_ceil(tiles.bc) * b * h) as u64;
        let skipped = fully_masked_tile_pairs(&dims, tiles, mask.causal);
        let largest_tile = TileSizes { br: tiles.br.min(nq), bc: tiles.bc.min(nk) };
        for (order, run) in &runs {
            let model = tiled_traffic(&dims, tiles, mask.causal, *order).unwrap();
            prop_assert_eq!(&run.traffic, &model, "{:?}: measured {} vs model {}", order, run.traffic, model);
            prop_assert_eq!(run.tiles_skipped, skipped, "{:?}", order);
            prop_assert_eq!(run.tiles_computed + run.tiles_skipped, pairs, "{:?}", order);
            // The working set never exceeds one full tile's, and reaches it without a mask.
            let full = on_chip_elements(largest_tile, d, dv);
            prop_assert!(run.on_chip_peak <= full && (mask.causal || run.on_chip_peak == full), "{:?}", order);
            // Tiled attention never writes S or P.
            prop_assert_eq!(run.traffic.writes_of(Operand::Scores) + run.traffic.writes_of(Operand::Weights), 0);
        }
        let (out, lse, standard) = standard_attention_counted(q.view(), k.view(), v.view(), &mask, &opts).unwrap();
        prop_assert_eq!(&standard, &standard_traffic(&dims));
        let (ref_out, ref_lse) = sdpa_reference(q.view(), k.view(), v.view(), &mask, None).unwrap();
        prop_assert!(compare(&out, &ref_out).unwrap().within(TOL) && compare(&lse, &ref_lse).unwrap().within(TOL));
    }

    #[test]
    fn online_softmax_ends_at_the_softmax(
        row in prop::collection::vec(prop_oneof![4 => -30.0f32..30.0, 1 => Just(f32::NEG_INFINITY)], 1..=50),
        block in 1usize..=20,
        seed in 0u64..1000,
    ) {
        let values: Vec<Vec<f32>> = randn((row.len(), 3), seed).outer_iter().map(|r| r.to_vec()).collect();
        let steps = online_softmax_steps(&row, &values, block).unwrap();
        prop_assert_eq!(steps.len(), row.len().div_ceil(block));
        let last = steps.last().unwrap();
        prop_assert_eq!(last.keys_seen, row.len());
        let exact = softmax_reference(&row);
        let visible = row.iter().any(|&x| x > f32::NEG_INFINITY);
        for (j, (&w, &p)) in last.weights.iter().zip(&exact).enumerate() {
            // An all-masked row has no softmax (the reference gives NaN): weights are 0.
            let want = if visible { p } else { 0.0 };
            prop_assert!((w as f64 - want).abs() < 1e-5, "weight {j}: {w} vs {want}");
        }
        for c in 0..3 {
            let want: f64 = if visible { exact.iter().zip(&values).map(|(p, v)| p * v[c] as f64).sum() } else { 0.0 };
            prop_assert!((last.output[c] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()), "output {c}");
        }
        // The state after every block is the (m, l) of the prefix seen so far.
        for st in &steps {
            let prefix = &row[..st.keys_seen];
            let m = prefix.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
            prop_assert_eq!(st.m, m);
            if m > f32::NEG_INFINITY {
                prop_assert!(((st.m + st.l.ln()) - log_sum_exp(prefix)).abs() < 1e-5 * (1.0 + m.abs()));
            } else {
                prop_assert_eq!(st.l, 0.0);
            }
        }
    }
}

#[test]
fn online_softmax_corrects_only_when_the_max_rises() {
    let mut state = OnlineSoftmax::default();
    let mut first = [1.0f32, 0.0];
    // Nothing accumulated yet: the correction of the first block is e^{−∞} = 0.
    assert_eq!(state.update(&mut first), 0.0);
    assert_eq!(state.m, 1.0);
    assert!((state.l - (1.0 + (-1.0f32).exp())).abs() < 1e-6);
    // A block below the max: correction 1, weights e^{s − 1}.
    let mut lower = [0.5f32];
    assert_eq!(state.update(&mut lower), 1.0);
    assert!((lower[0] - (-0.5f32).exp()).abs() < 1e-6);
    // A block that raises the max to 3: everything before is scaled by e^{1 − 3}.
    let l_before = state.l;
    let mut higher = [3.0f32, f32::NEG_INFINITY];
    let correction = state.update(&mut higher);
    assert!((correction - (-2.0f32).exp()).abs() < 1e-7);
    assert_eq!(higher, [1.0, 0.0]);
    assert!((state.l - (l_before * correction + 1.0)).abs() < 1e-6);
    let (inv_l, lse) = state.finish();
    assert!((inv_l * state.l - 1.0).abs() < 1e-6);
    assert!((lse - log_sum_exp(&[1.0, 0.0, 0.5, 3.0])).abs() < 1e-6);
    // A row whose every score is masked: no NaN, zero weights, lse −∞.
    let mut masked = OnlineSoftmax::default();
    let mut block = [f32::NEG_INFINITY; 3];
    assert_eq!(masked.update(&mut block), 1.0);
    assert_eq!(block, [0.0; 3]);
    assert_eq!(masked.finish(), (0.0, f32::NEG_INFINITY));
    let steps = online_softmax_steps(&[f32::NEG_INFINITY; 3], &[vec![1.0], vec![2.0], vec![3.0]], 2).unwrap();
    assert!(steps.iter().all(|st| st.output == [0.0] && st.weights == [0.0; 3] && st.correction == 1.0));
}

#[test]
fn fully_masked_rows_and_fully_padded_batches() {
    // Causal with Nq = 9 > Nk = 4: queries 0..5 see no key. Batch entry 1 pads every key.
    let [q, k, v] = qkv(2, 2, 9, 4, 5, 3, 11);
    let mask = SdpaMask::causal().with_key_padding(SdpaMask::padding_from_lengths(&[4, 0], 4));
    for tiles in [TileSizes { br: 2, bc: 3 }, TileSizes { br: 16, bc: 1 }, TileSizes { br: 1, bc: 64 }] {
        let run =
            flash_attention_counted(q.view(), k.view(), v.view(), &mask, tiles, &SdpaOptions::default())
                .unwrap();
        for h in 0..2 {
            for i in 0..9 {
                let masked = i < 5;
                assert_eq!(
                    run.out.slice(s![0, h, i, ..]).iter().all(|&x| x == 0.0),
                    masked,
                    "{tiles:?} row {i}"
                );
                assert_eq!(run.lse[[0, h, i]] == f32::NEG_INFINITY, masked);
                assert!(run.out.slice(s![1, h, i, ..]).iter().all(|&x| x == 0.0));
                assert_eq!(run.lse[[1, h, i]], f32::NEG_INFINITY);
            }
        }
    }
    // Br = 2, Bc = 3 (key tiles 0..3, 3..4): the last row of query tile {0,1} or {2,3} sees
    // no key (both key tiles skipped), of {4,5} and {6,7} keys 0..1 and 0..3 (one skipped),
    // of {8} every key (none skipped).
    let run = flash_attention_counted(
        q.view(),
        k.view(),
        v.view(),
        &mask,
        TileSizes { br: 2, bc: 3 },
        &SdpaOptions::default(),
    )
    .unwrap();
    assert_eq!(run.tiles_skipped, (2 + 2 + 1 + 1) * 4);
}

#[test]
fn causal_square_skips_the_upper_triangle_of_tiles() {
    let [q, k, v] = qkv(1, 1, 64, 64, 8, 8, 3);
    let tiles = TileSizes { br: 16, bc: 16 };
    let run = flash_attention_counted(
        q.view(),
        k.view(),
        v.view(),
        &SdpaMask::causal(),
        tiles,
        &SdpaOptions::default(),
    )
    .unwrap();
    // 4 × 4 tiles, 6 strictly above the diagonal.
    assert_eq!((run.tiles_computed, run.tiles_skipped), (10, 6));
    assert_eq!(run.traffic.reads_of(Operand::K), (16 + 32 + 48 + 64) * 8);
}

#[test]
fn explicit_scale_and_strided_inputs() {
    let [q, k, v] = qkv(2, 3, 9, 11, 6, 7, 5);
    let options = SdpaOptions { scale: Some(0.9) };
    let tiles = TileSizes { br: 4, bc: 5 };
    let (out, lse) =
        flash_attention_cpu(q.view(), k.view(), v.view(), &SdpaMask::causal(), tiles, &options).unwrap();
    let (want_out, want_lse) =
        sdpa_with_options(q.view(), k.view(), v.view(), &SdpaMask::causal(), &options).unwrap();
    assert!(compare(&out, &want_out).unwrap().within(TOL) && compare(&lse, &want_lse).unwrap().within(TOL));
    // K stored transposed and viewed back: not row-major, same answer.
    let k_t = k.view().permuted_axes([0, 1, 3, 2]).as_standard_layout().into_owned();
    let k_strided = k_t.view().permuted_axes([0, 1, 3, 2]);
    assert!(!k_strided.is_standard_layout());
    let (strided, _) =
        flash_attention_cpu(q.view(), k_strided, v.view(), &SdpaMask::none(), tiles, &options).unwrap();
    let (plain, _) =
        flash_attention_cpu(q.view(), k.view(), v.view(), &SdpaMask::none(), tiles, &options).unwrap();
    assert!(compare(&strided, &plain).unwrap().within(1e-6));
}

#[test]
fn bad_tiles_shapes_and_memory_are_errors() {
    let [q, k, v] = qkv(1, 2, 3, 4, 5, 6, 1);
    let opts = SdpaOptions::default();
    for (br, bc) in [(0, 4), (4, 0), (0, 0)] {
        let e =
            flash_attention_cpu(q.view(), k.view(), v.view(), &SdpaMask::none(), TileSizes { br, bc }, &opts)
                .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert!(
            e.to_string().contains(&format!("Br = {br}")) && e.to_string().contains(&format!("Bc = {bc}")),
            "{e}"
        );
        assert!(TileSizes::new(br, bc).is_err());
        let dims = square_dims(8, 4).unwrap();
        assert!(tiled_traffic(&dims, TileSizes { br, bc }, false, LoopOrder::QOuter).is_err());
        let kv = flash_attention_kv_outer_counted(
            q.view(),
            k.view(),
            v.view(),
            &SdpaMask::none(),
            TileSizes { br, bc },
            &opts,
        );
        assert!(kv.is_err());
    }
    let k_bad = randn((1, 2, 4, 7), 2);
    let tiles = TileSizes::new(2, 2).unwrap();
    let text = flash_attention_cpu(q.view(), k_bad.view(), v.view(), &SdpaMask::none(), tiles, &opts)
        .unwrap_err()
        .to_string();
    assert!(text.contains("[1, 2, 3, 5]") && text.contains("[1, 2, 4, 7]"), "{text}");
    let pad = SdpaMask::none().with_key_padding(Array2::from_elem((1, 5), false));
    assert!(flash_attention_cpu(q.view(), k.view(), v.view(), &pad, tiles, &opts).is_err());
    assert!(standard_attention_counted(q.view(), k_bad.view(), v.view(), &SdpaMask::none(), &opts).is_err());
    // On-chip memory that cannot hold a row of Q, K, V and O; empty sizes.
    let e = paper_tiles(64, 255, LoopOrder::KvOuter).unwrap_err().to_string();
    assert!(e.contains("255") && e.contains("256"), "{e}");
    assert!(flash_attention_hbm(1024, 64, 100).is_err() && flash2_attention_hbm(1024, 0, 4096).is_err());
    assert!(standard_attention_hbm(0, 64).is_err());
    assert!(online_softmax_steps(&[1.0], &[vec![1.0]], 0).is_err());
    assert!(online_softmax_steps(&[1.0, 2.0], &[vec![1.0]], 1).is_err());
    assert!(online_softmax_steps(&[1.0, 2.0], &[vec![1.0], vec![1.0, 2.0]], 1).is_err());
}

#[test]
fn model_matches_the_paper_formulas_when_tiles_divide_n() {
    let (n, d) = (1024usize, 64usize);
    let standard = standard_attention_hbm(n, d).unwrap();
    assert_eq!(standard.total() as usize, 4 * n * d + 4 * n * n + n);
    assert_eq!(standard.reads_of(Operand::Scores), (n * n) as u64);
    // K/V outer, M = 32 768: Bc = ⌈M/4d⌉ = 128, Br = min(128, d) = 64, Tc = 8.
    let m = 32 * 1024;
    assert_eq!(paper_tiles(d, m, LoopOrder::KvOuter).unwrap(), TileSizes { br: 64, bc: 128 });
    let tc = n / 128;
    let fa1 = flash_attention_hbm(n, d, m).unwrap();
    // init O, m, l; K, V once; per key tile Q, O (read + write), m, l (read + write); lse pass.
    let want = (n * d + 2 * n) + 2 * n * d + tc * (3 * n * d + 4 * n) + 3 * n;
    assert_eq!(fa1.total() as usize, want, "{fa1}");
    assert_eq!(fa1.reads_of(Operand::Q) as usize, tc * n * d);
    // Q outer: Br = 128, Bc = 64, Tr = 8: Q once, K and V once per query tile, O and lse once.
    assert_eq!(paper_tiles(d, m, LoopOrder::QOuter).unwrap(), TileSizes { br: 128, bc: 64 });
    let fa2 = flash2_attention_hbm(n, d, m).unwrap();
    assert_eq!(fa2.total() as usize, n * d + 2 * (n / 128) * n * d + n * d + n, "{fa2}");
    assert_eq!(fa2.writes(), (n * d + n) as u64);
    // Batch and heads multiply everything; causal halves (about) the K/V reads of Q outer.
    let dims = SdpaDims { batch: 3, heads: 5, ..square_dims(n, d).unwrap() };
    let tiles = TileSizes { br: 128, bc: 64 };
    assert_eq!(tiled_traffic(&dims, tiles, false, LoopOrder::QOuter).unwrap().total(), 15 * fa2.total());
    let causal = tiled_traffic(&dims, tiles, true, LoopOrder::QOuter).unwrap();
    // Query tile i (of 128 rows) reads keys 0..128(i+1): Σ = 128·(1 + … + 8) = 128·36.
    assert_eq!(causal.reads_of(Operand::K) as usize, 15 * 128 * 36 * d);
}

#[test]
fn traffic_stays_within_constant_factors_of_the_bounds() {
    // N over a factor 16, d from 16 to 128, M from 4d² (tiles of d rows) up to 64d² but no
    // more than N·d: the paper's regime d ≤ M ≤ Nd.
    let mut seen = 0;
    for d in [16usize, 32, 64, 128] {
        for n in (0..=4).map(|k| 512usize << k) {
            let standard = standard_attention_hbm(n, d).unwrap().total() as f64 / standard_bound(n, d);
            assert!((4.0..=5.0).contains(&standard), "standard N={n} d={d}: {standard}");
            for m in [4 * d * d, 16 * d * d, 64 * d * d].into_iter().filter(|&m| m <= n * d) {
                let bound = flash_bound(n, d, m);
                let fa1 = flash_attention_hbm(n, d, m).unwrap().total() as f64 / bound;
                let fa2 = flash2_attention_hbm(n, d, m).unwrap().total() as f64 / bound;
                assert!((1.0..=16.0).contains(&fa1), "K/V outer N={n} d={d} M={m}: {fa1}");
                assert!((1.0..=10.0).contains(&fa2), "Q outer N={n} d={d} M={m}: {fa2}");
                seen += 1;
            }
        }
    }
    assert!(seen >= 30, "only {seen} (N, d, M) points checked");
    // More on-chip memory never costs traffic, and with M = 8d² tiled attention moves less
    // than standard attention by a growing margin in M.
    let (n, d) = (4096, 64);
    let sweep: Vec<u64> = (12..=18).map(|k| flash2_attention_hbm(n, d, 1 << k).unwrap().total()).collect();
    assert!(sweep.windows(2).all(|w| w[1] <= w[0]), "{sweep:?}");
    let standard = standard_attention_hbm(n, d).unwrap().total();
    assert!(flash2_attention_hbm(n, d, 8 * d * d).unwrap().total() * 3 < standard);
    assert!(flash_attention_hbm(n, d, 8 * d * d).unwrap().total() * 2 < standard);
}

#[test]
fn instrumented_run_with_the_paper_tiles_matches_its_bound() {
    // A real (if small) run with the paper's tile sizes: N = 512, d = 16, M = 1024 elements.
    let (n, d, m) = (512, 16, 1024);
    let [q, k, v] = qkv(1, 1, n, n, d, d, 21);
    for (order, model) in [
        (LoopOrder::KvOuter, flash_attention_hbm(n, d, m)),
        (LoopOrder::QOuter, flash2_attention_hbm(n, d, m)),
    ] {
        let tiles = paper_tiles(d, m, order).unwrap();
        let opts = SdpaOptions::default();
        let run = match order {
            LoopOrder::QOuter => {
                flash_attention_counted(q.view(), k.view(), v.view(), &SdpaMask::none(), tiles, &opts)
            }
            LoopOrder::KvOuter => flash_attention_kv_outer_counted(
                q.view(),
                k.view(),
                v.view(),
                &SdpaMask::none(),
                tiles,
                &opts,
            ),
        }
        .unwrap();
        assert_eq!(run.traffic, model.unwrap(), "{order:?}");
        let ratio = run.traffic.total() as f64 / flash_bound(n, d, m);
        assert!((1.0..=16.0).contains(&ratio), "{order:?}: {ratio}");
        // The paper's tiles: Q, K, V, O blocks of M/4 each, the score tile M/4 more, m and l.
        assert!(run.on_chip_peak <= m * 5 / 4 + 2 * tiles.br, "{order:?}: {} vs M = {m}", run.on_chip_peak);
    }
}

#[test]
fn figures_render() {
    let (scores, values) = online_softmax_example();
    assert_eq!(&png_bytes(&online_softmax_figure(&scores, &values, 3).unwrap()).unwrap()[1..4], b"PNG");
    assert!(online_softmax_figure(&scores, &values, 0).is_err());
    assert!(png_bytes(&TrafficFigure::default().figure().unwrap()).is_ok());
    let bad = TrafficFigure { m_onchip: 10, ..TrafficFigure::default() };
    assert!(bad.figure().is_err());
    let row = |name: &str, n, ms, peak_mib| TimeMemoryRow { implementation: name.into(), n, ms, peak_mib };
    let rows = [
        row("a", 1024, 1.0, 10.0),
        row("b", 1024, 0.5, 2.0),
        row("a", 4096, 9.0, 150.0),
        row("b", 4096, f64::NAN, f64::NAN),
    ];
    let chart = time_memory_chart(&rows, "B = 1");
    assert_eq!(chart.figures[0].lines.len(), 2);
    assert!(png_bytes(&chart).is_ok());
}
