//! Every CPU backend against chapter 2's `sdpa_with_lse` and the f64 reference, over random
//! shapes and masks (including length 1, d = 1 and fully masked rows); bad input.

use ch04_attention_backends::attn_support::data::randn;
use ch04_attention_backends::attn_support::ndarray::Array4;
use ch04_attention_backends::attn_support::{Error, compare};
use ch04_attention_backends::ch02::reference::sdpa_reference;
use ch04_attention_backends::ch02::sdpa_with_options;
use ch04_attention_backends::{Backend, Device, SdpaMask, SdpaOptions, attention};
use proptest::prelude::*;

const TOL: f64 = 1e-5;

fn qkv(b: usize, h: usize, nq: usize, nk: usize, d: usize, dv: usize, seed: u64) -> [Array4<f32>; 3] {
    [randn((b, h, nq, d), seed), randn((b, h, nk, d), seed + 1), randn((b, h, nk, dv), seed + 2)]
}

type Shape = (usize, usize, usize, usize, usize, usize);

/// (B, H 1..=2; Nq, Nk 1..=`max_n`; d, dv from `dims`), a mask (none, causal, key padding
/// with lengths 0..=Nk per batch entry — 0 masks every key of that entry — or both), a seed.
fn case(max_n: usize, head_dims: Vec<(usize, usize)>) -> impl Strategy<Value = (Shape, SdpaMask, u64)> {
    (1usize..=2, 1usize..=2, 1..=max_n, 1..=max_n, prop::sample::select(head_dims)).prop_flat_map(
        |(b, h, nq, nk, (d, dv))| {
            let lengths = prop::collection::vec(0..=nk, b);
            (Just((b, h, nq, nk, d, dv)), any::<bool>(), prop::option::of(lengths), any::<u64>()).prop_map(
                move |(shape, causal, lengths, seed)| {
                    let key_padding = lengths.map(|l| SdpaMask::padding_from_lengths(&l, nk));
                    (shape, SdpaMask { causal, key_padding }, seed % 1_000_000)
                },
            )
        },
    )
}

/// Run `backend` on the CPU and compare output and lse with chapter 2 and the f64 reference.
fn check_backend(backend: Backend, (b, h, nq, nk, d, dv): Shape, mask: &SdpaMask, seed: u64) {
    let [q, k, v] = qkv(b, h, nq, nk, d, dv, seed);
    let options = SdpaOptions::default();
    let (out, lse) = attention(backend, Device::Cpu, q.view(), k.view(), v.view(), mask, &options).unwrap();
    let (out2, lse2) = sdpa_with_options(q.view(), k.view(), v.view(), mask, &options).unwrap();
    let (out64, lse64) = sdpa_reference(q.view(), k.view(), v.view(), mask, None).unwrap();
    for (what, c) in [
        ("out vs ch02", compare(&out, &out2).unwrap()),
        ("lse vs ch02", compare(&lse, &lse2).unwrap()),
        ("out vs f64", compare(&out, &out64).unwrap()),
        ("lse vs f64", compare(&lse, &lse64).unwrap()),
    ] {
        assert!(c.within(TOL), "{backend} {what}: {c:?} at {:?}, mask {mask:?}", (b, h, nq, nk, d, dv));
    }
    // Fully masked rows: zeros and lse = −∞, like the reference.
    for (i, l) in lse64.iter().enumerate() {
        if *l == f64::NEG_INFINITY {
            assert_eq!(lse.as_slice().unwrap()[i], f32::NEG_INFINITY, "{backend} row {i}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn unfused_and_fused_equal_chapter_2(
        (shape, mask, seed) in case(24, vec![(1, 1), (1, 3), (3, 5), (7, 2), (16, 16)])
    ) {
        check_backend(Backend::Unfused, shape, &mask, seed);
        check_backend(Backend::Fused, shape, &mask, seed);
    }

    #[test]
    fn flash_equals_chapter_2(
        (shape, mask, seed) in case(150, vec![(32, 32), (64, 64)])
    ) {
        check_backend(Backend::Flash, shape, &mask, seed);
    }
}

#[test]
fn flash_at_d128_and_length_one() {
    check_backend(Backend::Flash, (1, 2, 70, 65, 128, 128), &SdpaMask::causal(), 7);
    for backend in Backend::ALL {
        check_backend(backend, (1, 1, 1, 1, 32, 32), &SdpaMask::none(), 3);
    }
}

#[test]
fn every_row_masked_gives_zeros() {
    let pad = SdpaMask::padding_from_lengths(&[0, 3], 5);
    let mask = SdpaMask::causal().with_key_padding(pad);
    for backend in Backend::ALL {
        check_backend(backend, (2, 2, 9, 5, 32, 32), &mask, 11);
        let [q, k, v] = qkv(2, 2, 9, 5, 32, 32, 11);
        let (out, lse) =
            attention(backend, Device::Cpu, q.view(), k.view(), v.view(), &mask, &SdpaOptions::default())
                .unwrap();
        assert!(out.slice(ch04_attention_backends::ndarray::s![0, .., .., ..]).iter().all(|&x| x == 0.0));
        assert!(
            lse.slice(ch04_attention_backends::ndarray::s![0, .., ..])
                .iter()
                .all(|&x| x == f32::NEG_INFINITY)
        );
    }
}

#[test]
fn unsupported_shapes_are_clear_errors() {
    let none = SdpaMask::none();
    let opts = SdpaOptions::default();
    // Flash: d = 48 has no kernel entry point.
    let [q, k, v] = qkv(1, 1, 8, 8, 48, 48, 1);
    let e = attention(Backend::Flash, Device::Cpu, q.view(), k.view(), v.view(), &none, &opts).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("48"), "{e}");
    // Flash: dv ≠ d.
    let [q, k, v] = qkv(1, 1, 8, 8, 64, 32, 1);
    let e = attention(Backend::Flash, Device::Cpu, q.view(), k.view(), v.view(), &none, &opts).unwrap_err();
    assert!(e.to_string().contains("dv = 32"), "{e}");
    // Mismatched shapes: both named, for every backend.
    let (q, k, v) = (randn((1, 2, 8, 32), 1), randn((1, 3, 8, 32), 2), randn((1, 3, 8, 32), 3));
    for backend in Backend::ALL {
        let e = attention(backend, Device::Cpu, q.view(), k.view(), v.view(), &none, &opts).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{backend}: {e}");
        assert!(e.to_string().contains("[1, 2, 8, 32]") && e.to_string().contains("[1, 3, 8, 32]"), "{e}");
    }
    // A padding mask of the wrong shape.
    let [q, k, v] = qkv(1, 1, 4, 4, 32, 32, 1);
    let bad = SdpaMask::none().with_key_padding(SdpaMask::padding_from_lengths(&[2], 5));
    for backend in Backend::ALL {
        assert!(attention(backend, Device::Cpu, q.view(), k.view(), v.view(), &bad, &opts).is_err());
    }
}
