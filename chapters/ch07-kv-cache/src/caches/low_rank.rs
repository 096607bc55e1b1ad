//! A low-rank cache: each KV head's keys (and values) projected on the `r` directions that
//! carry most of their energy, learnt once from calibration text.
//!
//! For one head, stack the calibration keys as rows of `X (tokens, d)`. The best rank-`r`
//! approximation of every row in the least-squares sense projects it on the top `r`
//! eigenvectors `U (d, r)` of `XᵀX` (PCA without centring, since the cache must reconstruct `x`,
//! not `x − mean`): store `c = Uᵀx` (r numbers instead of d), read back `x̂ = U c`. The energy
//! left out is `Σ_{i>r} λ_i / Σ λ_i` of the eigenvalues. Keys after RoPE are far from
//! full-rank in most heads (a few frequency pairs dominate); values less so.

use crate::caches::encoded::{KvCodec, Role};
use attn_model::{Error, Result};
use attn_support::ndarray::{Array1, Array2, Array3, ArrayView2, Axis, s};
use nalgebra::{DMatrix, SymmetricEigen};

/// One head's basis and spectrum.
#[derive(Clone, Debug)]
pub struct HeadBasis {
    /// `(d, d)`: eigenvectors of `XᵀX` as columns, by falling eigenvalue.
    pub vectors: Array2<f32>,
    /// The eigenvalues, falling.
    pub energies: Array1<f64>,
}

impl HeadBasis {
    /// PCA (uncentred) of the rows of `x (tokens, d)`.
    pub fn fit(x: ArrayView2<f32>) -> Self {
        let d = x.ncols();
        let mut gram = DMatrix::<f64>::zeros(d, d);
        for row in x.rows() {
            for i in 0..d {
                for j in 0..=i {
                    gram[(i, j)] += row[i] as f64 * row[j] as f64;
                }
            }
        }
        gram.fill_upper_triangle_with_lower_triangle();
        let eigen = SymmetricEigen::new(gram);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let vectors = Array2::from_shape_fn((d, d), |(i, k)| eigen.eigenvectors[(i, order[k])] as f32);
        let energies = order.iter().map(|&k| eigen.eigenvalues[k].max(0.0)).collect();
        HeadBasis { vectors, energies }
    }

    /// The fraction of the calibration energy rank `r` leaves out: `Σ_{i>r} λ_i / Σ λ_i`.
    pub fn residual_energy(&self, rank: usize) -> f64 {
        let total: f64 = self.energies.sum();
        if total == 0.0 { 0.0 } else { self.energies.iter().skip(rank).sum::<f64>() / total }
    }

    /// `x (tokens, d)` projected on the first `rank` directions and back.
    pub fn project(&self, x: ArrayView2<f32>, rank: usize) -> Array2<f32> {
        let u = self.vectors.slice(s![.., ..rank]);
        x.dot(&u).dot(&u.t())
    }
}

/// Bases for every layer and KV head, of keys and of values, and the rank they keep.
#[derive(Clone, Debug)]
pub struct LowRankCodec {
    /// `[layer][kv head]`.
    pub keys: Vec<Vec<HeadBasis>>,
    pub values: Vec<Vec<HeadBasis>>,
    pub key_rank: usize,
    pub value_rank: usize,
}

impl LowRankCodec {
    /// Fit the bases from calibration keys and values, one `(kv heads, tokens, d)` pair per layer.
    pub fn fit(
        calibration: &[(Array3<f32>, Array3<f32>)],
        key_rank: usize,
        value_rank: usize,
    ) -> Result<Self> {
        let d = calibration.first().map_or(0, |(k, _)| k.dim().2);
        if key_rank == 0 || value_rank == 0 || key_rank > d || value_rank > d {
            return Err(Error::Cache(format!("ranks ({key_rank}, {value_rank}) must be in 1..={d}")));
        }
        let fit_all = |x: &Array3<f32>| x.outer_iter().map(HeadBasis::fit).collect::<Vec<_>>();
        Ok(LowRankCodec {
            keys: calibration.iter().map(|(k, _)| fit_all(k)).collect(),
            values: calibration.iter().map(|(_, v)| fit_all(v)).collect(),
            key_rank,
            value_rank,
        })
    }

    /// The same bases at other ranks (fitting is the expensive part).
    pub fn with_ranks(&self, key_rank: usize, value_rank: usize) -> Self {
        LowRankCodec { key_rank, value_rank, ..self.clone() }
    }
}

impl KvCodec for LowRankCodec {
    fn round_trip(
        &self,
        layer: usize,
        head: usize,
        block: ArrayView2<f32>,
        role: Role,
    ) -> Result<Array2<f32>> {
        let (bases, rank) = match role {
            Role::Key => (&self.keys, self.key_rank),
            Role::Value => (&self.values, self.value_rank),
        };
        let basis = bases
            .get(layer)
            .and_then(|heads| heads.get(head))
            .ok_or_else(|| Error::Cache(format!("no basis for layer {layer}, KV head {head}")))?;
        if basis.vectors.nrows() != block.ncols() {
            return Err(Error::Shape(format!(
                "a basis of dim {} for a block {:?}",
                basis.vectors.nrows(),
                block.shape()
            )));
        }
        Ok(basis.project(block, rank))
    }

    /// The coefficients at f32: `32·r/d` bits per element (the bases, `d·r` numbers per head and
    /// layer, are a fixed cost that does not grow with the sequence and is left out).
    fn bits_per_element(&self, head_dim: usize) -> (f64, f64) {
        let bits = |r: usize| 32.0 * r as f64 / head_dim as f64;
        (bits(self.key_rank), bits(self.value_rank))
    }

    fn grouping(&self) -> (usize, usize) {
        (1, 0)
    }

    fn name(&self) -> String {
        format!("low rank K {} / V {}", self.key_rank, self.value_rank)
    }
}

/// Mean over heads of the residual energy at each rank `0..=d` (the error-against-rank curve).
pub fn mean_residual_energy(bases: &[Vec<HeadBasis>]) -> Vec<f64> {
    let heads: Vec<&HeadBasis> = bases.iter().flatten().collect();
    let d = heads.first().map_or(0, |h| h.energies.len());
    (0..=d)
        .map(|r| heads.iter().map(|h| h.residual_energy(r)).sum::<f64>() / heads.len().max(1) as f64)
        .collect()
}

/// The relative error `‖X − X̂‖² / ‖X‖²` of held-out `x (kv heads, tokens, d)` at `rank`.
pub fn held_out_error(bases: &[HeadBasis], x: &Array3<f32>, rank: usize) -> f64 {
    let (mut err, mut total) = (0.0f64, 0.0f64);
    for (basis, head) in bases.iter().zip(x.axis_iter(Axis(0))) {
        let approx = basis.project(head, rank);
        err += (&head - &approx).iter().map(|e| (*e as f64).powi(2)).sum::<f64>();
        total += head.iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
    }
    if total == 0.0 { 0.0 } else { err / total }
}
