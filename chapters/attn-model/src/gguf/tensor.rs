//! The tensor index: each tensor's name, shape, element type and where its bytes are.
//!
//! GGUF (like ggml) lists a tensor's dimensions **fastest first**: `token_embd.weight` is
//! `[576, 49152]`, meaning 49 152 rows of 576 contiguous values. [`TensorInfo::shape`] turns that
//! into the row-major shape of ndarray and of this book, slowest first: `(49152, 576)`.
//! Quantised types pack the fastest dimension into blocks of 32 elements, so it must be a
//! multiple of the block size.

use super::error::GgufError;

/// ggml's maximum number of dimensions.
pub const MAX_DIMS: usize = 4;

/// The element types this reader dequantises, with their ggml type ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_1,
}

impl GgmlType {
    /// Every supported type.
    pub const ALL: [GgmlType; 5] =
        [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_1];

    /// The id ggml gives the type (`enum ggml_type`).
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_1 => 3,
            GgmlType::Q8_0 => 8,
            GgmlType::BF16 => 30,
        }
    }

    /// The type of ggml id `id`, for `tensor`; an error names ids that exist but are not read
    /// here (Q4_K, …) apart from ids that exist nowhere.
    pub fn from_id(id: u32, tensor: &str) -> Result<Self, GgufError> {
        if let Some(&t) = GgmlType::ALL.iter().find(|t| t.id() == id) {
            return Ok(t);
        }
        match ggml_type_name(id) {
            Some(type_name) => {
                Err(GgufError::UnsupportedTensorType { tensor: tensor.to_string(), type_name })
            }
            None => Err(GgufError::UnknownTensorType { tensor: tensor.to_string(), type_id: id }),
        }
    }

    pub fn name(self) -> &'static str {
        ggml_type_name(self.id()).expect("every supported type has a name")
    }

    /// Elements per block: 32 for the quantised types, 1 for the float types.
    pub fn block_elements(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q8_0 | GgmlType::Q4_1 => 32,
        }
    }

    /// Bytes per block: Q8_0 is an f16 scale and 32 int8 (34 bytes, 8.5 bits a weight); Q4_1 an
    /// f16 scale, an f16 minimum and 32 nibbles (20 bytes, 5 bits a weight).
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q8_0 => 2 + 32,
            GgmlType::Q4_1 => 2 + 2 + 16,
        }
    }
}

/// The names of ggml's type ids (`ggml.h`), so an unsupported type is named in errors; ids
/// 4 and 5 (Q4_2, Q4_3) were removed from ggml.
fn ggml_type_name(id: u32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "F32", "F16", "Q4_0", "Q4_1", "", "", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
        "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8",
        "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
    ];
    NAMES.get(id as usize).copied().filter(|n| !n.is_empty())
}

/// One entry of the tensor index.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as GGUF stores them, fastest first.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Where the tensor starts, in bytes from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// A checked entry: 1 to [`MAX_DIMS`] dimensions, none zero, the fastest a whole number of
    /// blocks, and an element count that fits a `usize`.
    pub fn new(name: String, dims: Vec<u64>, ggml_type: GgmlType, offset: u64) -> Result<Self, GgufError> {
        let bad = |problem: String| GgufError::BadTensor { tensor: name.clone(), problem };
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(bad(format!("{} dimensions; ggml allows 1 to {MAX_DIMS}", dims.len())));
        }
        if let Some(i) = dims.iter().position(|&d| d == 0) {
            return Err(bad(format!("dimension {i} of {dims:?} is 0")));
        }
        let block = ggml_type.block_elements() as u64;
        if !dims[0].is_multiple_of(block) {
            return Err(bad(format!(
                "its fastest dimension {} is not a multiple of {}'s block of {block} elements",
                dims[0],
                ggml_type.name()
            )));
        }
        let elements = dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let bytes = elements.and_then(|n| (n / block).checked_mul(ggml_type.block_bytes() as u64));
        if bytes.is_none_or(|b| usize::try_from(b).is_err()) {
            return Err(bad(format!("dimensions {dims:?} hold more bytes than this machine can address")));
        }
        Ok(TensorInfo { name, dims, ggml_type, offset })
    }

    /// The number of elements.
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product::<u64>() as usize
    }

    /// The number of bytes the tensor's data takes.
    pub fn byte_len(&self) -> usize {
        self.n_elements() / self.ggml_type.block_elements() * self.ggml_type.block_bytes()
    }

    /// The row-major shape, slowest dimension first (GGUF's dims reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}
