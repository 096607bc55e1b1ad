//! An adaptive budget: not every layer needs as many tokens. In some layers each query puts
//! almost all its attention on a handful of keys (the first token, the previous one); in others
//! it spreads it widely. Measure, on calibration text, what fraction of the visible keys a query
//! needs to cover most (`coverage`, e.g. 90 %) of its attention, per layer; then share a total
//! budget between the layers in proportion (PyramidKV and Ada-KV make the same observation).

use attn_model::{DenseKvCache, GqaSdpa, KvCache, Llama, Result};
use attn_support::ndarray::{ArrayView3, CowArray, Ix3};

/// A full cache that also measures, per layer, the mean fraction of visible keys the queries of
/// the second half of the text need to reach `coverage` of their attention mass.
struct AttentionProfile {
    inner: DenseKvCache,
    coverage: f32,
    sums: Vec<f64>,
    counts: Vec<usize>,
}

impl KvCache for AttentionProfile {
    fn tokens_seen(&self, layer: usize) -> usize {
        self.inner.tokens_seen(layer)
    }
    fn append(&mut self, layer: usize, keys: ArrayView3<f32>, values: ArrayView3<f32>) -> Result<()> {
        self.inner.append(layer, keys, values)
    }
    fn keys_values(&self, layer: usize) -> Result<(CowArray<'_, f32, Ix3>, CowArray<'_, f32, Ix3>)> {
        self.inner.keys_values(layer)
    }
    fn next_position(&self) -> usize {
        self.inner.next_position()
    }
    fn bytes_used(&self) -> f64 {
        self.inner.bytes_used()
    }
    fn wants_attention_weights(&self) -> bool {
        true
    }
    fn observe_attention(&mut self, layer: usize, weights: ArrayView3<f32>) -> Result<()> {
        let (_, n, t) = weights.dim();
        for head in weights.outer_iter() {
            for (i, row) in head.rows().into_iter().enumerate().skip(n / 2) {
                let visible = i + 1 + t - n;
                let mut p: Vec<f32> = row.iter().take(visible).copied().collect();
                p.sort_by(|a, b| b.total_cmp(a));
                let mut mass = 0.0;
                let needed = p.iter().take_while(|&&w| {
                    let before = mass;
                    mass += w;
                    before < self.coverage
                });
                self.sums[layer] += needed.count() as f64 / visible as f64;
                self.counts[layer] += 1;
            }
        }
        Ok(())
    }
}

/// Per layer, the mean fraction of visible keys needed to cover `coverage` of the attention.
pub fn keys_needed(model: &Llama, ids: &[u32], coverage: f32) -> Result<Vec<f64>> {
    let layers = model.config().n_layers;
    let mut profile = AttentionProfile {
        inner: DenseKvCache::new(model.config(), ids.len())?,
        coverage,
        sums: vec![0.0; layers],
        counts: vec![0; layers],
    };
    model.forward_last(ids, &mut profile, &GqaSdpa)?;
    Ok(profile.sums.iter().zip(&profile.counts).map(|(s, &c)| s / c.max(1) as f64).collect())
}

/// Share `mean_budget · layers` tokens between the layers in proportion to `needed`, each at
/// least `floor`. The total is kept exactly (rounding handed to the largest remainders).
pub fn adaptive_budgets(needed: &[f64], mean_budget: usize, floor: usize) -> Vec<usize> {
    let layers = needed.len();
    let total = mean_budget * layers;
    let spare = total.saturating_sub(floor * layers) as f64;
    let sum: f64 = needed.iter().sum();
    let shares: Vec<f64> =
        needed.iter().map(|n| if sum > 0.0 { spare * n / sum } else { spare / layers as f64 }).collect();
    let mut budgets: Vec<usize> = shares.iter().map(|s| floor + s.floor() as usize).collect();
    let mut order: Vec<usize> = (0..layers).collect();
    order.sort_by(|&a, &b| (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor())));
    let assigned: usize = budgets.iter().sum();
    for &l in order.iter().take(total.saturating_sub(assigned)) {
        budgets[l] += 1;
    }
    budgets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_keep_the_total_and_the_floor() {
        let b = adaptive_budgets(&[0.1, 0.3, 0.05, 0.55], 64, 8);
        assert_eq!(b.iter().sum::<usize>(), 256);
        assert!(b.iter().all(|&x| x >= 8));
        assert!(b[3] > b[1] && b[1] > b[0] && b[0] > b[2], "{b:?}");
        assert_eq!(adaptive_budgets(&[0.0, 0.0], 10, 2), vec![10, 10]);
    }
}
