//! Which tiles a causal FlashAttention computes: for each (query tile, key tile) the fraction of
//! its scores the mask leaves visible, and the map of those fractions that notebook 03 draws.
//! A tile with nothing visible is the one [`crate::tiled::key_tiles_visited`] skips.

use crate::tiled::TileSizes;
use attn_support::ndarray::{Array2, s};
use attn_support::plot::Heatmap;
use ch02_scaled_dot_product::SdpaMask;

/// The visible fraction of each (query tile, key tile) of an `nq` × `nk` score matrix under
/// `mask` (batch entry 0), NaN where nothing is visible (a skipped tile).
pub fn visible_fractions(mask: &SdpaMask, nq: usize, nk: usize, tiles: TileSizes) -> Array2<f64> {
    let visible = mask.visible_matrix(0, nq, nk);
    let mut frac = Array2::<f64>::zeros((nq.div_ceil(tiles.br), nk.div_ceil(tiles.bc)));
    for (i, rows) in TileSizes::ranges(nq, tiles.br).enumerate() {
        for (j, cols) in TileSizes::ranges(nk, tiles.bc).enumerate() {
            let tile = visible.slice(s![rows.clone(), cols]);
            let seen = tile.iter().filter(|&&v| v).count() as f64 / tile.len() as f64;
            frac[[i, j]] = if seen > 0.0 { seen } else { f64::NAN };
        }
    }
    frac
}

/// The causal mask's tiles for an `n` × `n` matrix, each annotated with its visible fraction,
/// "skipped" where none is visible.
pub fn causal_tile_map(n: usize, tiles: TileSizes) -> Heatmap {
    Heatmap {
        annotate: true,
        masked_text: "skipped".into(),
        x_desc: format!("key tile j (Bc = {})", tiles.bc),
        y_desc: format!("query tile i (Br = {})", tiles.br),
        size: (760, 420),
        value_range: Some((0.0, 1.0)),
        ..Heatmap::new(
            format!("Causal, N = {n}: visible fraction of each tile"),
            visible_fractions(&SdpaMask::causal(), n, n, tiles),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiled::key_tiles_visited;
    use ch02_scaled_dot_product::SdpaDims;

    #[test]
    fn skipped_tiles_are_the_ones_the_kernel_skips() {
        for (n, br, bc) in [(512, 128, 64), (100, 7, 13), (64, 64, 64)] {
            let tiles = TileSizes::new(br, bc).unwrap();
            let frac = visible_fractions(&SdpaMask::causal(), n, n, tiles);
            let dims = SdpaDims { batch: 1, heads: 1, nq: n, nk: n, head_dim: 1, v_dim: 1 };
            for (i, rows) in TileSizes::ranges(n, br).enumerate() {
                let computed = frac.row(i).iter().filter(|f| !f.is_nan()).count();
                assert_eq!(computed, key_tiles_visited(&SdpaMask::causal(), &rows, &dims, bc), "n={n} i={i}");
            }
        }
        // N = 512, 128 × 64: tile (0, 0) sees 1..=64 keys in its first 64 rows and all 64 in the
        // next 64; a tile below the diagonal sees everything.
        let frac = visible_fractions(&SdpaMask::causal(), 512, 512, TileSizes::new(128, 64).unwrap());
        assert_eq!(frac.dim(), (4, 8));
        assert_eq!(frac[[1, 0]], 1.0);
        assert_eq!(frac[[0, 0]], (64.0 * 65.0 / 2.0 + 64.0 * 64.0) / 8192.0);
        assert!(frac[[0, 2]].is_nan());
        assert_eq!(causal_tile_map(512, TileSizes::new(128, 64).unwrap()).data.dim(), (4, 8));
    }
}
