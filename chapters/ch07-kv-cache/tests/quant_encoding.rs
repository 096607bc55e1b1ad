//! The list of encodings: names and bits per element with metadata.

use ch07_kv_cache::quant::KvEncoding;
use ch07_kv_cache::quant::fp4::Fp4Format;
use ch07_kv_cache::quant::fp8::Fp8Scaling;
use ch07_kv_cache::quant::kivi::KiviConfig;

#[test]
fn bits_per_element_for_head_dim_64() {
    let kivi2 = KiviConfig::new(2, 32, 128).unwrap();
    let cases = [
        (KvEncoding::F32, 32.0),
        (KvEncoding::Bf16, 16.0),
        // K: 8 + 32/32 per channel over 32 tokens; V: 8 + 32/64 per token.
        (KvEncoding::Int8 { key_tokens_per_scale: 32 }, (9.0 + 8.5) / 2.0),
        (KvEncoding::Kivi(kivi2), 4.0),
        (KvEncoding::Fp8(Fp8Scaling::PerTensor), 8.0),
        (KvEncoding::Fp8(Fp8Scaling::PerToken), 8.5),
        (KvEncoding::Fp4(Fp4Format::Nvfp4), 4.5),
        (KvEncoding::Fp4(Fp4Format::Mxfp4), 4.25),
    ];
    let mut names = std::collections::HashSet::new();
    for (encoding, bits) in cases {
        assert_eq!(encoding.bits_per_element(64), bits, "{}", encoding.name());
        assert!(names.insert(encoding.name()), "names are distinct");
    }
    assert_eq!(KvEncoding::Kivi(kivi2).name(), "KIVI-2 (G=32, R=128)");
}
