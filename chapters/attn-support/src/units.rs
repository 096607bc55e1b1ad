//! Byte counts in binary units, one definition for every chapter: KiB = 2¹⁰, MiB = 2²⁰ and
//! GiB = 2³⁰ bytes (the units `nvidia-smi` and the CUDA documentation use for memory sizes).

/// Bytes in a KiB (2¹⁰).
pub const KIB: f64 = 1024.0;
/// Bytes in a MiB (2²⁰).
pub const MIB: f64 = 1024.0 * 1024.0;
/// Bytes in a GiB (2³⁰).
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// `bytes` in KiB.
pub fn kib(bytes: f64) -> f64 {
    bytes / KIB
}

/// `bytes` in MiB.
pub fn mib(bytes: f64) -> f64 {
    bytes / MIB
}

/// `bytes` in GiB.
pub fn gib(bytes: f64) -> f64 {
    bytes / GIB
}

/// `bytes` with the largest unit that keeps the number at least 1, two decimals: "512 B",
/// "1.50 KiB", "64.00 MiB", "4.00 GiB".
pub fn format_bytes(bytes: f64) -> String {
    let a = bytes.abs();
    if a >= GIB {
        format!("{:.2} GiB", gib(bytes))
    } else if a >= MIB {
        format!("{:.2} MiB", mib(bytes))
    } else if a >= KIB {
        format!("{:.2} KiB", kib(bytes))
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_binary() {
        assert_eq!(kib(2048.0), 2.0);
        assert_eq!(mib((64u64 << 20) as f64), 64.0);
        assert_eq!(gib((4u64 << 30) as f64), 4.0);
        // An (N, N) f32 score matrix at N = 4096 is 64 MiB (kernels/ch01_three_kernels.cu).
        assert_eq!(mib(4.0 * 4096.0 * 4096.0), 64.0);
    }

    #[test]
    fn format_picks_the_largest_unit_at_least_one() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(1536.0), "1.50 KiB");
        assert_eq!(format_bytes(MIB - 1.0), "1024.00 KiB");
        assert_eq!(format_bytes(MIB), "1.00 MiB");
        assert_eq!(format_bytes(4.0 * GIB), "4.00 GiB");
    }
}
