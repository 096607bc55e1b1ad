//! GGUF, the single-file model format of ggml and llama.cpp (version 3), read into memory.
//!
//! A file is, in order, all little-endian:
//!
//! | part | contents |
//! | --- | --- |
//! | header | magic `"GGUF"`, u32 version (3), u64 tensor count, u64 metadata count |
//! | metadata | key/value entries ([`metadata`]): hyper-parameters, the tokenizer's vocabulary, merges and chat template |
//! | tensor index | per tensor: name (u64 length + UTF-8), u32 number of dims, u64 dims fastest first, u32 ggml type, u64 offset ([`tensor`]) |
//! | padding | zeros up to a multiple of the alignment: `general.alignment` if the metadata sets it, else 32 |
//! | data section | the tensors' bytes; each offset is counted from the section's start and is a multiple of the alignment |
//!
//! The alignment lets a loader `mmap` the file and use each tensor in place. Strings carry no
//! terminating NUL. [`GgufFile::parse`] checks every count and offset against the bytes it has,
//! so a truncated or corrupt file is an error that names what is wrong, never a panic.

mod cursor;
pub mod dequant;
mod error;
pub mod metadata;
pub mod tensor;
pub mod writer;

pub use error::GgufError;
pub use metadata::{Metadata, Value};
pub use tensor::{GgmlType, TensorInfo};
pub use writer::GgufWriter;

use crate::error::{Error, Result};
use attn_support::ndarray::{ArrayD, IxDyn};
use cursor::Cursor;
use std::path::Path;

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The version this reader reads.
pub const VERSION: u32 = 3;
/// The data section's alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that sets the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// A GGUF file in memory: its metadata, its tensor index and all its bytes.
#[derive(Clone, Debug)]
pub struct GgufFile {
    /// Where the bytes came from (a path), for error messages.
    pub source: String,
    pub version: u32,
    pub metadata: Metadata,
    /// The tensors in file order.
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Where the data section starts, in bytes from the start of the file.
    pub data_offset: u64,
    bytes: Vec<u8>,
}

impl GgufFile {
    /// Read and parse the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        GgufFile::parse(bytes, path.display().to_string())
    }

    /// Parse a whole file held in `bytes`; `source` names it in errors.
    pub fn parse(bytes: Vec<u8>, source: impl Into<String>) -> Result<Self> {
        let source = source.into();
        match parse_layout(&bytes) {
            Ok((version, metadata, tensors, alignment, data_offset)) => {
                Ok(GgufFile { source, version, metadata, tensors, alignment, data_offset, bytes })
            }
            Err(error) => Err(Error::Gguf { file: source, error }),
        }
    }

    /// The file's size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The index entry of tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| self.error(GgufError::NoTensor { name: name.to_string() }))
    }

    /// The raw bytes of a tensor of this file's index (checked to lie inside the file at parse).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + info.offset) as usize;
        &self.bytes[start..start + info.byte_len()]
    }

    /// Tensor `name` dequantised to f32, in its row-major shape ([`TensorInfo::shape`]).
    pub fn dequantize(&self, name: &str) -> Result<ArrayD<f32>> {
        let info = self.tensor(name)?;
        let values =
            dequant::dequantize(info.ggml_type, self.tensor_bytes(info)).map_err(|e| self.error(e))?;
        Ok(ArrayD::from_shape_vec(IxDyn(&info.shape()), values)
            .expect("the index's shape matches its byte count"))
    }

    /// A [`GgufError`] about this file as the crate's error.
    pub fn error(&self, error: GgufError) -> Error {
        Error::Gguf { file: self.source.clone(), error }
    }
}

type Layout = (u32, Metadata, Vec<TensorInfo>, u64, u64);

/// Header, metadata and tensor index, every tensor checked to lie inside `bytes`.
fn parse_layout(bytes: &[u8]) -> Result<Layout, GgufError> {
    let mut cur = Cursor::new(bytes);
    let magic = cur.take(4, "the magic number").map_err(|_| GgufError::BadMagic { found: bytes.to_vec() })?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic { found: magic.to_vec() });
    }
    let version = cur.u32("the version")?;
    if version != VERSION {
        return Err(GgufError::UnsupportedVersion { version });
    }
    let n_tensors = cur.u64("the tensor count")?;
    let n_entries = cur.u64("the metadata count")?;
    // No reservation from the counts: a corrupt count fails as truncation, not as a huge allocation.
    let mut entries = Vec::new();
    for i in 0..n_entries {
        entries.push(metadata::read_entry(&mut cur, i)?);
    }
    let metadata = Metadata::from_entries(entries)?;
    let alignment = match metadata.get(ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
            Some(value) => return Err(GgufError::BadAlignment { value }),
            None => {
                return Err(GgufError::WrongType {
                    key: ALIGNMENT_KEY.into(),
                    expected: "a u32",
                    found: v.describe(),
                });
            }
        },
    };
    let mut tensors: Vec<TensorInfo> = Vec::new();
    for i in 0..n_tensors {
        let info = read_tensor_info(&mut cur, i)?;
        if tensors.iter().any(|t| t.name == info.name) {
            return Err(GgufError::DuplicateTensor { tensor: info.name });
        }
        tensors.push(info);
    }
    let data_offset = cur.position().next_multiple_of(alignment);
    let file_len = bytes.len() as u64;
    for t in &tensors {
        if !t.offset.is_multiple_of(alignment) {
            return Err(GgufError::BadTensor {
                tensor: t.name.clone(),
                problem: format!("offset {} is not a multiple of the alignment {alignment}", t.offset),
            });
        }
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.byte_len() as u64));
        match (start, end) {
            (Some(_), Some(end)) if end <= file_len => {}
            _ => {
                return Err(GgufError::TensorPastEnd {
                    tensor: t.name.clone(),
                    start: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    file_len,
                });
            }
        }
    }
    Ok((version, metadata, tensors, alignment, data_offset))
}

fn read_tensor_info(cur: &mut Cursor, index: u64) -> Result<TensorInfo, GgufError> {
    let name = cur.string(&format!("the name of tensor {index}"))?;
    let n_dims = cur.u32(&format!("the dimension count of tensor {name:?}"))?;
    if n_dims as usize > tensor::MAX_DIMS {
        return Err(GgufError::BadTensor {
            tensor: name,
            problem: format!("{n_dims} dimensions; ggml allows 1 to {}", tensor::MAX_DIMS),
        });
    }
    let dims = (0..n_dims)
        .map(|d| cur.u64(&format!("dimension {d} of tensor {name:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let type_id = cur.u32(&format!("the type of tensor {name:?}"))?;
    let offset = cur.u64(&format!("the offset of tensor {name:?}"))?;
    let ggml_type = GgmlType::from_id(type_id, &name)?;
    TensorInfo::new(name, dims, ggml_type, offset)
}
