//! The yardstick of the ladder on the CPU: the naive bf16 implementation, the 2× rule (that it
//! accepts what it should and rejects what it should), and the rungs' kernel specs against the
//! kernel files they name.

use ch12_performance_tuning::SdpaMask;
use ch12_performance_tuning::attn_support::ndarray::Array4;
use ch12_performance_tuning::bf16;
use ch12_performance_tuning::ch02::sdpa;
use ch12_performance_tuning::ladder::{
    LADDER_HEAD_DIMS, Rung, TUNED_SHAPES, TileShape, overlap_shapes, tma_shapes,
};
use ch12_performance_tuning::precision::{Bf16Inputs, Bf16Yardstick, naive_bf16_attention};

fn masks() -> [SdpaMask; 2] {
    [SdpaMask::none(), SdpaMask::causal()]
}

#[test]
fn the_reference_rounded_to_bf16_follows_the_rule_and_is_closer_than_naive() {
    for (nq, nk, d) in [(1, 1, 64), (97, 97, 64), (130, 40, 128), (33, 70, 16)] {
        for mask in masks() {
            let inputs = Bf16Inputs::random(2, 2, nq, nk, d, 3);
            let y = Bf16Yardstick::new(&inputs, &mask).unwrap();
            let rounded = y.ref_out.mapv(bf16::from_f64);
            let lse = y.ref_lse.mapv(|x| x as f32);
            let acc = y.judge(&rounded, &lse).unwrap();
            assert!(acc.within_rule(), "Nq={nq} Nk={nk} d={d}: {acc}");
            // Correct rounding is at most half a bf16 step from the reference, the naive chain
            // of three roundings is further (except at N = 1, where both return V exactly).
            assert!(acc.out.max_abs_err <= acc.naive_out.max_abs_err, "{acc}");
            if nk > 1 {
                assert!(acc.naive_out.max_abs_err > 0.0, "naive bf16 cannot be exact here: {acc}");
            }
        }
    }
}

#[test]
fn the_rule_rejects_a_result_three_times_as_wrong_as_naive() {
    let inputs = Bf16Inputs::random(1, 2, 64, 64, 64, 4);
    let mask = SdpaMask::none();
    let y = Bf16Yardstick::new(&inputs, &mask).unwrap();
    let (naive, naive_lse) =
        naive_bf16_attention(inputs.q.view(), inputs.k.view(), inputs.v.view(), &mask).unwrap();
    assert!(y.judge(&naive, &naive_lse).unwrap().within_rule(), "naive itself has ratio 1");
    let naive_err = y.judge(&naive, &naive_lse).unwrap().naive_out.max_abs_err;
    let mut bad = y.ref_out.mapv(bf16::from_f64);
    bad[[0, 1, 5, 7]] = bf16::from_f64(y.ref_out[[0, 1, 5, 7]] + 3.0 * naive_err);
    let acc = y.judge(&bad, &naive_lse).unwrap();
    assert!(!acc.within_rule(), "3× the naive error must fail: {acc}");
    // A row that sees no key must be −∞ in the lse on both sides.
    let causal = SdpaMask::causal();
    let inputs = Bf16Inputs::random(1, 1, 10, 4, 64, 5); // rows 0..6 see no key
    let y = Bf16Yardstick::new(&inputs, &causal).unwrap();
    let (out, mut lse) =
        naive_bf16_attention(inputs.q.view(), inputs.k.view(), inputs.v.view(), &causal).unwrap();
    assert!(y.judge(&out, &lse).unwrap().within_rule());
    lse[[0, 0, 0]] = 0.0;
    assert!(!y.judge(&out, &lse).unwrap().masked_rows_agree);
}

#[test]
fn naive_bf16_is_close_to_f32_attention() {
    let inputs = Bf16Inputs::random(1, 3, 50, 61, 32, 6);
    for mask in masks() {
        let (q, k, v) = inputs.to_f32();
        let exact = sdpa(q.view(), k.view(), v.view(), &mask).unwrap();
        let (naive, _) =
            naive_bf16_attention(inputs.q.view(), inputs.k.view(), inputs.v.view(), &mask).unwrap();
        let naive: Array4<f32> = naive.mapv(f32::from);
        let worst = (&naive - &exact).iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(worst > 0.0 && worst < 0.05, "bf16 rounding error out of range: {worst}");
    }
}

#[test]
fn every_spec_names_an_entry_point_of_its_kernel_file_and_the_header_sizes() {
    for d in LADDER_HEAD_DIMS {
        let mut rungs: Vec<Rung> = Rung::FIXED[1..].to_vec();
        rungs.extend(TUNED_SHAPES.map(Rung::Tuned));
        rungs.extend(overlap_shapes(d).iter().map(|&t| Rung::WgmmaOverlap(t)));
        rungs.extend(tma_shapes(d).iter().flat_map(|&t| [Rung::Tma(t), Rung::PingPong(t)]));
        for rung in rungs {
            let spec = rung.spec(d).unwrap();
            let (br, bc) = (spec.tiles.block_rows, spec.tiles.block_keys);
            let entry = match rung {
                // The tuned entry points come from a macro: TUNED(D, BR, BC).
                Rung::Tuned(_) => format!("TUNED({d}, {br}, {bc})"),
                Rung::WgmmaOverlap(_) => format!("WGMMA_OVERLAP({d}, {br}, {bc})"),
                Rung::Tma(_) => format!("TMA_ENTRY(tma, false, {d}, {bc})"),
                Rung::PingPong(_) => format!("TMA_ENTRY(pingpong, true, {d}, {bc})"),
                _ => format!("{}(LADDER_ARGS)", spec.entry),
            };
            assert!(spec.source.code.contains(&entry), "{} lacks {entry}", spec.source.file);
        }
    }
    // The shared-memory sizes the kernel headers state.
    let bytes = |r: Rung, d| r.spec(d).unwrap().shared_bytes;
    assert_eq!((bytes(Rung::SmemSoftmax, 128), bytes(Rung::SmemSoftmax, 64)), (79_616, 55_040));
    assert_eq!((bytes(Rung::RegisterSoftmax, 128), bytes(Rung::RegisterSoftmax, 64)), (52_224, 27_648));
    assert_eq!(bytes(Rung::CpAsync, 128), 87_040);
    assert_eq!((bytes(Rung::LdmatrixSwizzle, 128), bytes(Rung::LdmatrixSwizzle, 64)), (81_920, 40_960));
    assert_eq!((bytes(Rung::Wgmma, 128), bytes(Rung::Wgmma, 64)), (98_304, 81_920));
    assert!(Rung::CpAsync.spec(96).unwrap_err().to_string().contains("d = 96"));
    assert!(Rung::F32Flash.spec(64).is_err());
    // A tile shape outside a rung's entry points is an error naming the rung's shapes.
    let refused = |rung: Rung, d| rung.spec(d).unwrap_err().to_string();
    assert!(refused(Rung::Tuned(TileShape::new(32, 32)), 64).contains("autotuner's space"));
    assert!(
        refused(Rung::WgmmaOverlap(TileShape::new(192, 128)), 128).contains("rung 7's shapes at d = 128")
    );
    assert!(refused(Rung::Tma(TileShape::new(128, 64)), 64).contains("rung 8's shapes at d = 64"));
    assert!(refused(Rung::PingPong(TileShape::new(128, 64)), 64).contains("rung 9's shapes at d = 64"));
}
