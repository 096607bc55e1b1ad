//! What several of chapter 12's test files share (a folder, so cargo does not take it for a
//! test file of its own).

use ch12_performance_tuning::ceilings::Ceilings;

/// Ceilings of the H100's order (3 TB/s copy, 700 TFLOP/s bf16, 50 TFLOP/s f32), made up for
/// tests: the ridge points and the figures' ranges follow from these numbers, not from a run.
pub fn h100_like_ceilings() -> Ceilings {
    Ceilings {
        device: "test device".into(),
        copy_buffer_bytes: 1 << 30,
        copy_kernel_bytes_per_s: 3.0e12,
        memcpy_bytes_per_s: 2.8e12,
        copy_bytes_per_s: 3.0e12,
        gemm_size: 8192,
        bf16_gemm_flops_per_s: 7.0e14,
        f32_gemm_flops_per_s: 5.0e13,
    }
}
