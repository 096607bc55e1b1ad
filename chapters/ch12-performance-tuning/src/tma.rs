//! Tensor maps for the Tensor Memory Accelerator (TMA) of rungs 8 and 9.
//!
//! A TMA copy is described by a *tensor map*: 128 opaque bytes that the driver encodes once
//! (`cuTensorMapEncodeTiled`) from a buffer's address, its shape and strides, the box one copy
//! moves, and the shared-memory swizzle to apply. The kernel receives the maps by value (as
//! `__grid_constant__` parameters) and names a box by its coordinates. Here every bf16 tensor of
//! shape (B, H, N, d) is seen as 3-D, (d, N, B·H) innermost first, so that a box never crosses from
//! one head into the next: rows past N read as zeros.

use attn_support::cudarc::driver::sys::{
    self, CUtensorMapDataType, CUtensorMapFloatOOBfill, CUtensorMapInterleave, CUtensorMapL2promotion,
    CUtensorMapSwizzle,
};
use attn_support::cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DeviceRepr};
use attn_support::error::DriverContext;
use attn_support::{Error, Result};
use half::bf16;

/// A `CUtensorMap`, 64-byte aligned as the driver and the kernel require.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug)]
pub struct TensorMap(pub [u64; 16]);

// SAFETY: plain bytes, passed by value as the kernel's `TensorMap` parameter (same size and
// alignment).
unsafe impl DeviceRepr for TensorMap {}

/// The columns one TMA box covers: 64 bf16 = 128 bytes, the width of the 128-byte swizzle.
pub const BOX_COLUMNS: usize = 64;

/// The tensor map of a (B·H, rows, d) bf16 buffer read in boxes of `box_rows` × 64 columns, with
/// the 128-byte swizzle and zero fill past the last row.
pub fn bf16_tile_map(
    stream: &CudaStream,
    buf: &CudaSlice<bf16>,
    heads: usize,
    rows: usize,
    d: usize,
    box_rows: usize,
) -> Result<TensorMap> {
    if !d.is_multiple_of(BOX_COLUMNS) || !(1..=256).contains(&box_rows) || heads * rows * d != buf.len() {
        return Err(Error::InvalidArgument(format!(
            "tensor map: d = {d} must be a multiple of {BOX_COLUMNS}, box rows {box_rows} in 1..=256, and \
             B·H × N × d = {heads} × {rows} × {d} must equal the buffer's {} elements",
            buf.len()
        )));
    }
    let dims: [u64; 3] = [d as u64, rows as u64, heads as u64];
    let strides: [u64; 2] = [2 * d as u64, 2 * (rows * d) as u64]; // bytes, dims 1 and 2
    let boxes: [u32; 3] = [BOX_COLUMNS as u32, box_rows as u32, 1];
    let element_strides: [u32; 3] = [1, 1, 1];
    let mut map = TensorMap([0; 16]);
    let (ptr, _sync) = buf.device_ptr(stream);
    // SAFETY: every array has the rank's length, the address is the live buffer's (16-byte
    // aligned, as every allocation), the strides are multiples of 16, and `map` is 128 bytes,
    // 64-byte aligned, as CUtensorMap.
    unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map as *mut TensorMap as *mut sys::CUtensorMap,
            CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            3,
            ptr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            element_strides.as_ptr(),
            CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    }
    .result()
    .ctx("encoding a TMA tensor map (cuTensorMapEncodeTiled)")?;
    Ok(map)
}
