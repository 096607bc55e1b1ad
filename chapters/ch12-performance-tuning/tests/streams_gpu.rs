//! Streams on the GPU: independent calls spread over several streams with fork/join events give
//! exactly the results of the same calls on one stream, and the timing helper measures both.
//! One test in its own file (its own process): it turns cudarc's event tracking off for the
//! context, which must not reach the other GPU tests. Skips without a GPU (fails under
//! ATTN_REQUIRE_GPU=1); rung 8 needs sm_90, so other devices run rung 5 only.

use ch12_performance_tuning::SdpaMask;
use ch12_performance_tuning::attn_support::gpu::Gpu;
use ch12_performance_tuning::ch02::SdpaOptions;
use ch12_performance_tuning::gpu::{Bf16Buffers, LadderKernels};
use ch12_performance_tuning::ladder::{Rung, TUNED_SHAPES, tma_shapes};
use ch12_performance_tuning::precision::Bf16Inputs;
use ch12_performance_tuning::streams::StreamSet;

const CALLS: usize = 6;

/// (Nq, Nk) of call `i`: none a multiple of a tile; Nq > Nk from call 2 on, so that under the
/// causal mask the first Nq − Nk rows see no key.
fn lengths(i: usize) -> (usize, usize) {
    (97 + 61 * i, 130 + 37 * i)
}

/// `CALLS` calls with different inputs and lengths, uploaded.
fn upload_calls(gpu: &Gpu, mask: &SdpaMask) -> Vec<Bf16Buffers> {
    (0..CALLS)
        .map(|i| {
            let (nq, nk) = lengths(i);
            let inputs = Bf16Inputs::random(1, 2, nq, nk, 128, 40 + i as u64);
            Bf16Buffers::upload(gpu, &inputs, mask, &SdpaOptions::default()).unwrap()
        })
        .collect()
}

#[test]
fn calls_on_several_streams_match_calls_on_one() {
    let Some(gpu) = Gpu::open_or_skip("the streams check").unwrap() else { return };
    let kernels = LadderKernels::new(&gpu).unwrap();
    // While cudarc tracks events, a StreamSet is refused with a reason.
    assert!(gpu.ctx.is_event_tracking());
    let refused = StreamSet::new(&gpu, 2).err().expect("a tracked context must be refused").to_string();
    assert!(refused.contains("event tracking"), "{refused}");
    // SAFETY: every buffer below is used on gpu.stream, or on a StreamSet's streams ordered by
    // its fork/join events with a synchronisation of the origin before gpu.stream reads it.
    unsafe { gpu.ctx.disable_event_tracking() };
    assert!(StreamSet::new(&gpu, 0).is_err());

    let mut rungs = vec![Rung::Tuned(TUNED_SHAPES[0])];
    if gpu.compute_capability() == (9, 0) {
        rungs.push(Rung::Tma(tma_shapes(128)[0]));
    }
    let set = StreamSet::new(&gpu, 4).unwrap();
    let no_calls = set.time_serial_vs_concurrent(0, 1, 1, |_, _| Ok(())).unwrap_err().to_string();
    assert!(no_calls.contains("at least one call"), "{no_calls}");
    for rung in rungs {
        for mask in [SdpaMask::none(), SdpaMask::causal()] {
            let mut serial = upload_calls(&gpu, &mask);
            for buffers in &mut serial {
                kernels.launch(&gpu, rung, buffers).unwrap();
            }
            let mut spread = upload_calls(&gpu, &mask);
            gpu.synchronize().unwrap(); // the uploads ran on gpu.stream; the workers don't wait on it
            set.fork_join(CALLS, |call, stream| kernels.launch_on(&gpu, stream, rung, &mut spread[call]))
                .unwrap();
            set.origin().synchronize().unwrap();
            for (call, (a, b)) in serial.iter().zip(&spread).enumerate() {
                let ((out_a, lse_a), (out_b, lse_b)) = (a.download(&gpu).unwrap(), b.download(&gpu).unwrap());
                let case = format!("{rung:?} causal={} call {call}", mask.causal);
                // Same kernel, same inputs: bit-identical, and not the zeros the lse began as:
                // −∞ exactly on the rows that see no key, finite elsewhere.
                assert!(out_a == out_b && lse_a == lse_b, "{case}: streams changed the result");
                let (nq, nk) = lengths(call);
                let blind_rows = if mask.causal { nq.saturating_sub(nk) } else { 0 };
                for (row, &x) in lse_b.iter().enumerate().map(|(i, x)| (i % nq, x)) {
                    let want_blind = row < blind_rows;
                    assert!(
                        want_blind == (x == f32::NEG_INFINITY) && (want_blind || x.is_finite()),
                        "{case} row {row}: lse {x}"
                    );
                }
            }

            let t = set
                .time_serial_vs_concurrent(CALLS, 1, 3, |call, stream| {
                    kernels.launch_on(&gpu, stream, rung, &mut spread[call])
                })
                .unwrap();
            assert_eq!((t.calls, t.streams), (CALLS, 4));
            assert!(
                t.serial_ms > 0.0 && t.concurrent_ms > 0.0 && t.graph_ms > 0.0 && t.enqueue_ms > 0.0,
                "{t:?}"
            );
            // The timed runs and graph replays leave the same results.
            for (call, (a, b)) in serial.iter().zip(&spread).enumerate() {
                assert!(
                    a.download(&gpu).unwrap() == b.download(&gpu).unwrap(),
                    "{rung:?} call {call}: graph replay"
                );
            }
        }
    }
}
