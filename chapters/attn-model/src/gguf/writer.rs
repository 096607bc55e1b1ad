//! Writing GGUF files: the inverse of the reader, for the tests' hand-made files and for small
//! seeded checkpoints of the model's shape.
//!
//! Tensors are laid out in the order they are added, each at the next multiple of the alignment
//! (`general.alignment` if set to an integer, else 32). Every array in the metadata must hold
//! values of one type, as GGUF requires.

use super::metadata::{self, Value};
use super::tensor::GgmlType;
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, VERSION};

/// A GGUF file being put together in memory.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    /// (name, dims fastest first, ggml type id, bytes).
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

impl GgufWriter {
    pub fn new() -> Self {
        GgufWriter::default()
    }

    /// Add a metadata entry.
    pub fn metadata(mut self, key: &str, value: Value) -> Self {
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Add a tensor of `ty` with dims fastest first and its raw (already quantised) bytes.
    pub fn tensor(self, name: &str, dims: &[u64], ty: GgmlType, bytes: Vec<u8>) -> Self {
        self.tensor_with_type_id(name, dims, ty.id(), bytes)
    }

    /// [`GgufWriter::tensor`] with any type id, supported or not: for tests of the reader's
    /// errors.
    pub fn tensor_with_type_id(mut self, name: &str, dims: &[u64], type_id: u32, bytes: Vec<u8>) -> Self {
        self.tensors.push((name.to_string(), dims.to_vec(), type_id, bytes));
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let alignment = self
            .metadata
            .iter()
            .find(|(k, _)| k == ALIGNMENT_KEY)
            .and_then(|(_, v)| v.as_u64())
            .filter(|a| a.is_power_of_two())
            .unwrap_or(DEFAULT_ALIGNMENT) as usize;
        let mut out = Vec::new();
        out.extend(MAGIC);
        out.extend(VERSION.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            metadata::write_string(&mut out, key);
            out.extend(value.type_id().to_le_bytes());
            metadata::write_value(&mut out, value);
        }
        let mut offset = 0usize;
        for (name, dims, type_id, bytes) in &self.tensors {
            metadata::write_string(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(type_id.to_le_bytes());
            out.extend((offset as u64).to_le_bytes());
            offset = (offset + bytes.len()).next_multiple_of(alignment);
        }
        out.resize(out.len().next_multiple_of(alignment), 0);
        for (_, _, _, bytes) in &self.tensors {
            out.extend(bytes);
            out.resize(out.len().next_multiple_of(alignment), 0);
        }
        out
    }
}
