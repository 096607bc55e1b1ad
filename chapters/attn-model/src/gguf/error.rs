//! What can be wrong with a GGUF file, each case naming the value that is wrong.

/// A GGUF file that breaks the format or holds what this reader does not support.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GgufError {
    #[error("not a GGUF file: it starts with the bytes {found:02x?} where a GGUF file starts with \"GGUF\"")]
    BadMagic { found: Vec<u8> },
    #[error("GGUF version {version} is not supported: this reader reads version 3")]
    UnsupportedVersion { version: u32 },
    #[error("truncated file: {what} needs {needed} bytes at offset {offset}, but the file has {len} bytes")]
    Truncated { what: String, offset: u64, needed: u64, len: u64 },
    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },
    #[error("metadata key {key:?}: unknown value type id {type_id} (GGUF defines 0 to 12)")]
    UnknownValueType { key: String, type_id: u32 },
    #[error("metadata key {key:?}: arrays nested deeper than {max_depth} levels")]
    NestingTooDeep { key: String, max_depth: usize },
    #[error("metadata key {key:?}: a bool must be the byte 0 or 1, found {value}")]
    InvalidBool { key: String, value: u8 },
    #[error("metadata key {key:?} appears twice")]
    DuplicateKey { key: String },
    #[error("general.alignment is {value}, but it must be a power of two no larger than 2^20")]
    BadAlignment { value: u64 },
    #[error("tensor {tensor:?}: unknown ggml type id {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },
    #[error(
        "tensor {tensor:?} has ggml type {type_name}, which this reader does not dequantise (it reads F32, F16, BF16, Q8_0 and Q4_1)"
    )]
    UnsupportedTensorType { tensor: String, type_name: &'static str },
    #[error("tensor {tensor:?}: {problem}")]
    BadTensor { tensor: String, problem: String },
    #[error("tensor {tensor:?} spans bytes {start}..{end} of the file, but the file ends at byte {file_len}")]
    TensorPastEnd { tensor: String, start: u64, end: u64, file_len: u64 },
    #[error("tensor name {tensor:?} appears twice")]
    DuplicateTensor { tensor: String },
    #[error("no tensor named {name:?}")]
    NoTensor { name: String },
    #[error("no metadata key {key:?}")]
    MissingKey { key: String },
    #[error("metadata key {key:?} holds {found}, not {expected}")]
    WrongType { key: String, expected: &'static str, found: String },
    #[error("{0}")]
    InvalidArgument(String),
}
