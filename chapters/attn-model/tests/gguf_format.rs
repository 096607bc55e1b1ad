//! The GGUF reader on hand-made files: every metadata type, the tensor index and alignment,
//! every tensor type read back, and each kind of bad file refused with an error that names it.

use attn_model::Error;
use attn_model::gguf::dequant::{Q4_1_BLOCK_BYTES, Q8_0_BLOCK_BYTES};
use attn_model::gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value};
use half::{bf16, f16};

/// A small file with metadata of every type and one tensor of each supported type.
fn sample() -> GgufWriter {
    let f32_values: Vec<u8> =
        [1.0f32, -2.5, 3.25, 0.0, 7.0, -8.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let f16_values: Vec<u8> =
        [0.5f32, -1.0, 2048.0].iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
    let bf16_values: Vec<u8> = [1.5f32, -3.0].iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect();
    let mut q8 = vec![0u8; Q8_0_BLOCK_BYTES];
    q8[..2].copy_from_slice(&f16::from_f32(0.125).to_le_bytes());
    q8[2..].iter_mut().enumerate().for_each(|(i, b)| *b = (i as i8 - 16) as u8);
    let mut q4 = vec![0u8; 2 * Q4_1_BLOCK_BYTES];
    for (k, block) in q4.chunks_exact_mut(Q4_1_BLOCK_BYTES).enumerate() {
        block[..2].copy_from_slice(&f16::from_f32(2.0).to_le_bytes());
        block[2..4].copy_from_slice(&f16::from_f32(-10.0 * k as f32).to_le_bytes());
        block[4..].iter_mut().enumerate().for_each(|(j, b)| *b = (j as u8) | (0xF << 4));
    }
    GgufWriter::new()
        .metadata("u8", Value::U8(200))
        .metadata("i8", Value::I8(-100))
        .metadata("u16", Value::U16(60000))
        .metadata("i16", Value::I16(-30000))
        .metadata("u32", Value::U32(4_000_000_000))
        .metadata("i32", Value::I32(-2_000_000_000))
        .metadata("f32", Value::F32(1e-5))
        .metadata("bool", Value::Bool(true))
        .metadata("string", Value::String("naïve café".into()))
        .metadata("u64", Value::U64(u64::MAX))
        .metadata("i64", Value::I64(i64::MIN))
        .metadata("f64", Value::F64(-0.1))
        .metadata(
            "strings",
            Value::Array(vec![
                Value::String("a b".into()),
                Value::String(String::new()),
                Value::String("Ġthe".into()),
            ]),
        )
        .metadata("ints", Value::Array(vec![Value::I32(1), Value::I32(3)]))
        .metadata(
            "nested",
            Value::Array(vec![
                Value::Array(vec![Value::U8(1)]),
                Value::Array(vec![Value::U8(2), Value::U8(3)]),
            ]),
        )
        .tensor("f32", &[3, 2], GgmlType::F32, f32_values)
        .tensor("f16", &[3], GgmlType::F16, f16_values)
        .tensor("bf16", &[2, 1], GgmlType::BF16, bf16_values)
        .tensor("q8_0", &[32], GgmlType::Q8_0, q8)
        .tensor("q4_1", &[32, 2], GgmlType::Q4_1, q4)
}

fn parse(bytes: Vec<u8>) -> Result<GgufFile, Error> {
    GgufFile::parse(bytes, "test.gguf")
}

/// The GGUF error of a file that must fail to parse.
fn gguf_error(bytes: Vec<u8>) -> GgufError {
    match parse(bytes) {
        Err(Error::Gguf { file, error }) => {
            assert_eq!(file, "test.gguf");
            error
        }
        Err(other) => panic!("expected a GGUF error, got {other}"),
        Ok(_) => panic!("a bad file parsed"),
    }
}

#[test]
fn every_metadata_type_reads_back() {
    let file = parse(sample().to_bytes()).unwrap();
    let m = &file.metadata;
    assert_eq!(m.len(), 15);
    assert_eq!(m.get("u8"), Some(&Value::U8(200)));
    assert_eq!(m.get("i8"), Some(&Value::I8(-100)));
    assert_eq!(m.get("u16"), Some(&Value::U16(60000)));
    assert_eq!(m.get("i16"), Some(&Value::I16(-30000)));
    assert_eq!(m.u64("u32").unwrap(), 4_000_000_000);
    assert_eq!(m.get("i32"), Some(&Value::I32(-2_000_000_000)));
    assert_eq!(m.get("f32"), Some(&Value::F32(1e-5)));
    assert!(m.bool("bool").unwrap());
    assert_eq!(m.str("string").unwrap(), "naïve café");
    assert_eq!(m.u64("u64").unwrap(), u64::MAX);
    assert_eq!(m.get("i64"), Some(&Value::I64(i64::MIN)));
    assert_eq!(m.f64("f64").unwrap(), -0.1);
    assert_eq!(m.strings("strings").unwrap(), ["a b", "", "Ġthe"]);
    assert_eq!(m.integers("ints").unwrap(), [1, 3]);
    assert_eq!(
        m.require("nested").unwrap().as_array().unwrap()[1],
        Value::Array(vec![Value::U8(2), Value::U8(3)])
    );
    let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
    assert_eq!(keys[..3], ["u8", "i8", "u16"], "file order kept");
}

#[test]
fn metadata_lookups_name_the_missing_key_or_the_wrong_type() {
    let file = parse(sample().to_bytes()).unwrap();
    let m = &file.metadata;
    assert_eq!(m.u64("absent").unwrap_err(), GgufError::MissingKey { key: "absent".into() });
    let err = m.u64("i64").unwrap_err().to_string();
    assert!(err.contains("\"i64\"") && err.contains("non-negative integer"), "{err}");
    let err = m.strings("ints").unwrap_err().to_string();
    assert!(err.contains("array of strings") && err.contains("I32(1)"), "{err}");
    assert!(m.str("u8").unwrap_err().to_string().contains("U8(200)"));
}

#[test]
fn tensor_index_and_data_section_follow_the_alignment() {
    let bytes = sample().to_bytes();
    let file = parse(bytes.clone()).unwrap();
    assert_eq!((file.version, file.alignment), (3, 32));
    assert_eq!(file.data_offset % 32, 0);
    let names: Vec<&str> = file.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["f32", "f16", "bf16", "q8_0", "q4_1"]);
    let q4 = file.tensor("q4_1").unwrap();
    assert_eq!(
        (q4.dims.as_slice(), q4.shape(), q4.n_elements(), q4.byte_len()),
        (&[32u64, 2][..], vec![2, 32], 64, 40)
    );
    for t in &file.tensors {
        assert_eq!(t.offset % 32, 0, "{}", t.name);
    }
    assert_eq!(file.tensor_bytes(q4), &bytes[(file.data_offset + q4.offset) as usize..][..40]);
    let err = file.tensor("nope").unwrap_err().to_string();
    assert!(err.contains("test.gguf") && err.contains("\"nope\""), "{err}");
}

#[test]
fn general_alignment_moves_the_data_section() {
    let bytes = sample().metadata("general.alignment", Value::U32(256)).to_bytes();
    let file = parse(bytes).unwrap();
    assert_eq!(file.alignment, 256);
    assert_eq!(file.data_offset % 256, 0);
    assert!(file.tensors.iter().all(|t| t.offset % 256 == 0));
    assert_eq!(file.dequantize("q8_0").unwrap().as_slice().unwrap()[0], -2.0);
}

#[test]
fn every_tensor_type_dequantises_in_its_row_major_shape() {
    let file = parse(sample().to_bytes()).unwrap();
    let f32s = file.dequantize("f32").unwrap();
    assert_eq!(f32s.shape(), &[2, 3]);
    assert_eq!(f32s.as_slice().unwrap(), &[1.0, -2.5, 3.25, 0.0, 7.0, -8.0]);
    assert_eq!(file.dequantize("f16").unwrap().as_slice().unwrap(), &[0.5, -1.0, 2048.0]);
    assert_eq!(file.dequantize("bf16").unwrap().shape(), &[1, 2]);
    assert_eq!(file.dequantize("bf16").unwrap().as_slice().unwrap(), &[1.5, -3.0]);
    let q8 = file.dequantize("q8_0").unwrap();
    let want: Vec<f32> = (0..32).map(|i| 0.125 * (i - 16) as f32).collect();
    assert_eq!(q8.as_slice().unwrap(), want.as_slice());
    // Row k of the Q4_1 tensor: d = 2, m = −10k; low nibbles j, high nibbles 15.
    let q4 = file.dequantize("q4_1").unwrap();
    assert_eq!(q4.shape(), &[2, 32]);
    for k in 0..2 {
        for j in 0..16 {
            assert_eq!(q4[[k, j]], 2.0 * j as f32 - 10.0 * k as f32);
            assert_eq!(q4[[k, 16 + j]], 30.0 - 10.0 * k as f32);
        }
    }
}

#[test]
fn bad_magic_is_named() {
    let mut bytes = sample().to_bytes();
    bytes[..4].copy_from_slice(b"GGML");
    let err = gguf_error(bytes);
    assert_eq!(err, GgufError::BadMagic { found: b"GGML".to_vec() });
    assert!(err.to_string().contains("not a GGUF file"), "{err}");
    assert!(matches!(gguf_error(b"GG".to_vec()), GgufError::BadMagic { .. }));
}

#[test]
fn versions_other_than_3_are_refused() {
    for version in [1u32, 2, 4] {
        let mut bytes = sample().to_bytes();
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        let err = gguf_error(bytes);
        assert_eq!(err, GgufError::UnsupportedVersion { version });
        assert!(err.to_string().contains(&format!("version {version}")));
    }
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let bytes = sample().to_bytes();
    let full = parse(bytes.clone()).unwrap();
    let data_end = (full.data_offset as usize) + {
        let last = full.tensors.last().unwrap();
        last.offset as usize + last.byte_len()
    };
    for len in 0..data_end {
        let err = gguf_error(bytes[..len].to_vec());
        match (len, &err) {
            (0..4, GgufError::BadMagic { .. }) => {}
            (4.., GgufError::Truncated { len: l, .. }) => assert_eq!(*l, len as u64),
            (_, GgufError::TensorPastEnd { file_len, .. }) => assert_eq!(*file_len, len as u64),
            _ => panic!("cut at {len}: unexpected {err}"),
        }
    }
    // A cut inside the metadata names what it was reading.
    let err = gguf_error(bytes[..40].to_vec()).to_string();
    assert!(err.contains("truncated file") && err.contains("40 bytes"), "{err}");
}

#[test]
fn a_tensor_past_the_end_names_its_bytes() {
    let bytes = sample().to_bytes();
    let file = parse(bytes.clone()).unwrap();
    let last = file.tensors.last().unwrap();
    let end = file.data_offset + last.offset + last.byte_len() as u64;
    let cut = (end - 1) as usize;
    let err = gguf_error(bytes[..cut].to_vec());
    assert_eq!(
        err,
        GgufError::TensorPastEnd { tensor: "q4_1".into(), start: end - 40, end, file_len: cut as u64 }
    );
    // The same when the index itself points too far.
    let far = GgufWriter::new().tensor("far", &[4], GgmlType::F32, vec![0; 16]).to_bytes();
    let mut patched = far.clone();
    let offset_at = index_end(&parse(far).unwrap()) - 8; // the index's last field: the offset
    patched[offset_at..offset_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let err = gguf_error(patched).to_string();
    assert!(err.contains("\"far\"") && err.contains("file ends at byte"), "{err}");
}

#[test]
fn unknown_and_unsupported_tensor_types_are_named() {
    let bytes = GgufWriter::new().tensor_with_type_id("w", &[32], 99, vec![0; 32]).to_bytes();
    assert_eq!(gguf_error(bytes), GgufError::UnknownTensorType { tensor: "w".into(), type_id: 99 });
    let bytes = GgufWriter::new().tensor_with_type_id("w", &[256], 12, vec![0; 144]).to_bytes();
    let err = gguf_error(bytes);
    assert_eq!(err, GgufError::UnsupportedTensorType { tensor: "w".into(), type_name: "Q4_K" });
    assert!(err.to_string().contains("Q4_K"));
}

#[test]
fn bad_metadata_is_named() {
    // An unknown value type: patch the type id of the only entry (after magic, version, counts, key).
    let mut bytes = GgufWriter::new().metadata("k", Value::U8(1)).to_bytes();
    let type_at = 4 + 4 + 8 + 8 + 8 + 1;
    bytes[type_at..type_at + 4].copy_from_slice(&13u32.to_le_bytes());
    assert_eq!(gguf_error(bytes), GgufError::UnknownValueType { key: "k".into(), type_id: 13 });
    let mut bytes = GgufWriter::new().metadata("b", Value::Bool(true)).to_bytes();
    bytes[type_at + 4] = 2;
    assert_eq!(gguf_error(bytes), GgufError::InvalidBool { key: "b".into(), value: 2 });
    let bytes = GgufWriter::new().metadata("k", Value::U8(1)).metadata("k", Value::U8(2)).to_bytes();
    assert_eq!(gguf_error(bytes), GgufError::DuplicateKey { key: "k".into() });
    let bytes = GgufWriter::new().metadata("general.alignment", Value::U32(48)).to_bytes();
    assert_eq!(gguf_error(bytes), GgufError::BadAlignment { value: 48 });
    let mut bytes = GgufWriter::new().metadata("s", Value::String("ab".into())).to_bytes();
    bytes[type_at + 4 + 8] = 0xFF;
    assert!(matches!(gguf_error(bytes), GgufError::InvalidUtf8 { .. }));
    let mut deep = Value::U8(0);
    for _ in 0..10 {
        deep = Value::Array(vec![deep]);
    }
    let err = gguf_error(GgufWriter::new().metadata("deep", deep).to_bytes());
    assert!(matches!(err, GgufError::NestingTooDeep { .. }), "{err}");
}

#[test]
fn bad_tensor_shapes_are_named() {
    let err =
        gguf_error(GgufWriter::new().tensor("q", &[48], GgmlType::Q8_0, vec![0; 64]).to_bytes()).to_string();
    assert!(err.contains("\"q\"") && err.contains("48") && err.contains("block of 32"), "{err}");
    let err =
        gguf_error(GgufWriter::new().tensor("z", &[4, 0], GgmlType::F32, vec![]).to_bytes()).to_string();
    assert!(err.contains("dimension 1") && err.contains("is 0"), "{err}");
    let err =
        gguf_error(GgufWriter::new().tensor("five", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0; 4]).to_bytes())
            .to_string();
    assert!(err.contains("5 dimensions"), "{err}");
    let err = gguf_error(
        GgufWriter::new()
            .tensor("t", &[1], GgmlType::F32, vec![0; 4])
            .tensor("t", &[1], GgmlType::F32, vec![0; 4])
            .to_bytes(),
    );
    assert_eq!(err, GgufError::DuplicateTensor { tensor: "t".into() });
    // An offset off the alignment.
    let two = GgufWriter::new().tensor("a", &[1], GgmlType::F32, vec![0; 4]).tensor(
        "b",
        &[1],
        GgmlType::F32,
        vec![0; 4],
    );
    let mut bytes = two.to_bytes();
    let at = index_end(&parse(bytes.clone()).unwrap()) - 8;
    bytes[at..at + 8].copy_from_slice(&4u64.to_le_bytes());
    let err = gguf_error(bytes).to_string();
    assert!(err.contains("\"b\"") && err.contains("offset 4") && err.contains("alignment 32"), "{err}");
}

/// Where the tensor index of a file without metadata ends (before the padding): the header's
/// 24 bytes, then per tensor its name (u64 length + bytes), u32 dim count, u64 dims, u32 type
/// and u64 offset.
fn index_end(file: &GgufFile) -> usize {
    let mut at = 4 + 4 + 8 + 8;
    assert!(file.metadata.is_empty(), "only for files without metadata");
    for t in &file.tensors {
        at += 8 + t.name.len() + 4 + 8 * t.dims.len() + 4 + 8;
    }
    at
}

#[test]
fn opening_a_missing_file_names_it() {
    let err = GgufFile::open("/nonexistent/model.gguf").unwrap_err().to_string();
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
}
