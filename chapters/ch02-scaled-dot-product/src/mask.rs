//! Masks: which keys each query may attend to.
//!
//! A masked score is set to −∞ before the softmax, so `exp(−∞) = 0` gives it weight zero and
//! the remaining weights still sum to one. Two masks cover most uses:
//!
//! - **causal**: query `i` sees key `j` iff `j ≤ i + (Nk − Nq)`. The diagonal is aligned to
//!   the bottom-right corner of the (Nq × Nk) score matrix, so the *last* query sees every key.
//!   That is what a decoder with a KV cache needs (the Nq new queries are the last Nq positions
//!   of a sequence of Nk keys) and what FlashAttention-2 does; with Nq = Nk it is the usual
//!   lower triangle. With Nq > Nk the first Nq − Nk queries see no key at all.
//! - **key padding**: a (batch, Nk) boolean array where `true` marks a padded key that no
//!   query may see (the convention of PyTorch's `key_padding_mask`).
//!
//! A query that sees no key has an empty softmax. See [`crate::sdpa_with_options`] for what it returns.

use attn_support::ndarray::Array2;
use attn_support::{Error, Result};

// ANCHOR: mask
/// The masks of one attention call. The default masks nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SdpaMask {
    /// Bottom-right aligned causal mask: query `i` sees key `j` iff `j ≤ i + (Nk − Nq)`.
    pub causal: bool,
    /// Shape (batch, Nk); `true` marks a padded key that is ignored.
    pub key_padding: Option<Array2<bool>>,
}
// ANCHOR_END: mask

impl SdpaMask {
    /// No mask: every query sees every key.
    pub fn none() -> SdpaMask {
        SdpaMask::default()
    }

    /// The causal mask alone.
    pub fn causal() -> SdpaMask {
        SdpaMask { causal: true, key_padding: None }
    }

    /// This mask with a key-padding mask added.
    pub fn with_key_padding(self, key_padding: Array2<bool>) -> SdpaMask {
        SdpaMask { key_padding: Some(key_padding), ..self }
    }

    /// A (batch, nk) key-padding mask from the number of real keys in each batch entry:
    /// keys at positions `≥ lengths[b]` are padding.
    pub fn padding_from_lengths(lengths: &[usize], nk: usize) -> Array2<bool> {
        Array2::from_shape_fn((lengths.len(), nk), |(b, j)| j >= lengths[b])
    }

    /// Check that the key-padding mask, if any, is (batch, nk).
    pub fn check(&self, batch: usize, nk: usize) -> Result<()> {
        match &self.key_padding {
            Some(pad) if pad.shape() != [batch, nk] => Err(Error::shapes(
                "key_padding must be (batch, keys)",
                "key_padding",
                pad.shape(),
                "(batch, keys)",
                &[batch, nk],
            )),
            _ => Ok(()),
        }
    }

    // ANCHOR: causal_end
    /// How many leading keys query `i` may see under the causal rule (all `nk` when not
    /// causal): `clamp(i + 1 + nk − nq, 0, nk)`. Keys at or after this index are masked.
    pub fn causal_end(&self, i: usize, nq: usize, nk: usize) -> usize {
        if !self.causal {
            return nk;
        }
        // i + 1 + nk − nq in signed arithmetic: negative when nq > nk and i is early.
        let end = (i + 1 + nk) as isize - nq as isize;
        end.clamp(0, nk as isize) as usize
    }
    // ANCHOR_END: causal_end

    /// May query `i` of batch entry `b` see key `j`?
    pub fn is_visible(&self, b: usize, i: usize, j: usize, nq: usize, nk: usize) -> bool {
        let padded = self.key_padding.as_ref().is_some_and(|pad| pad[[b, j]]);
        j < self.causal_end(i, nq, nk) && !padded
    }

    /// The (nq, nk) visibility matrix of batch entry `b` (for printing and heatmaps).
    pub fn visible_matrix(&self, b: usize, nq: usize, nk: usize) -> Array2<bool> {
        Array2::from_shape_fn((nq, nk), |(i, j)| self.is_visible(b, i, j, nq, nk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_is_bottom_right_aligned() {
        let m = SdpaMask::causal();
        // Square: the usual lower triangle.
        assert_eq!((0..3).map(|i| m.causal_end(i, 3, 3)).collect::<Vec<_>>(), [1, 2, 3]);
        // Fewer queries than keys (decoding with a cache): the last query sees all keys.
        assert_eq!((0..2).map(|i| m.causal_end(i, 2, 5)).collect::<Vec<_>>(), [4, 5]);
        // More queries than keys: the first two queries see nothing.
        assert_eq!((0..4).map(|i| m.causal_end(i, 4, 2)).collect::<Vec<_>>(), [0, 0, 1, 2]);
        assert_eq!(SdpaMask::none().causal_end(0, 4, 2), 2);
    }

    #[test]
    fn padding_from_lengths_marks_the_tail() {
        let pad = SdpaMask::padding_from_lengths(&[2, 0], 3);
        assert_eq!(pad, attn_support::ndarray::array![[false, false, true], [true, true, true]]);
        let m = SdpaMask::causal().with_key_padding(pad);
        assert!(m.is_visible(0, 2, 1, 3, 3) && !m.is_visible(0, 2, 2, 3, 3) && !m.is_visible(1, 2, 0, 3, 3));
        assert!(m.check(2, 3).is_ok());
        let e = m.check(2, 4).unwrap_err().to_string();
        assert!(e.contains("[2, 3]") && e.contains("[2, 4]"), "{e}");
    }
}
