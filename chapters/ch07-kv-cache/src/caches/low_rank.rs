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
    /// `(d, d)`: eigenvectors as columns, by falling eigenvalue.
    pub vectors: Array2<f32>,
    /// The eigenvalues, falling.
    pub energies: Array1<f64>,
    /// For a basis fitted for the scores: `(A, A⁻¹)` with `A = Σ_q^{1/2}`; the projection
    /// happens in the coordinates `y = x A`.
    pub metric: Option<(Array2<f32>, Array2<f32>)>,
}

/// `Σ xᵢ xᵢᵀ` over the rows of `x`, in f64.
fn gram(x: ArrayView2<f32>) -> DMatrix<f64> {
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
    gram
}

/// Eigenvectors (columns) and eigenvalues of a symmetric matrix, by falling eigenvalue.
fn sorted_eigen(m: DMatrix<f64>) -> (Array2<f64>, Vec<f64>) {
    let d = m.nrows();
    let eigen = SymmetricEigen::new(m);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let vectors = Array2::from_shape_fn((d, d), |(i, k)| eigen.eigenvectors[(i, order[k])]);
    (vectors, order.iter().map(|&k| eigen.eigenvalues[k].max(0.0)).collect())
}

impl HeadBasis {
    /// PCA (uncentred) of the rows of `x (tokens, d)`: the directions of most energy of `x`.
    pub fn fit(x: ArrayView2<f32>) -> Self {
        let (vectors, energies) = sorted_eigen(gram(x));
        HeadBasis { vectors: vectors.mapv(|v| v as f32), energies: energies.into(), metric: None }
    }

    /// The basis that keeps the *scores* best: the error that matters in a key is
    /// `q·(k − k̂)`, whose mean square over the queries is `(k − k̂)ᵀ Σ_q (k − k̂)` with
    /// `Σ_q = E[q qᵀ]`. With `A = Σ_q^{1/2}` that is `‖(k − k̂) A‖²`: PCA of the keys in the
    /// coordinates `y = k A`, then back with `A⁻¹`. Directions the queries never look along
    /// cost nothing; the small channels the queries weigh are kept.
    pub fn fit_for_scores(keys: ArrayView2<f32>, queries: ArrayView2<f32>) -> Self {
        let (q_vectors, q_energies) = sorted_eigen(gram(queries) / queries.nrows().max(1) as f64);
        // A = V √Λ Vᵀ and A⁻¹ = V Λ^{-1/2} Vᵀ, directions with almost no query energy clamped
        // (they cost nothing in the scores, and their inverse would blow up rounding).
        let floor = q_energies.first().copied().unwrap_or(0.0) * 1e-8;
        let scaled = |f: &dyn Fn(f64) -> f64| {
            let d = q_energies.len();
            Array2::from_shape_fn((d, d), |(i, j)| {
                (0..d)
                    .map(|k| q_vectors[[i, k]] * f(q_energies[k].max(floor)) * q_vectors[[j, k]])
                    .sum::<f64>()
            })
        };
        let a = scaled(&|l| l.sqrt());
        let a_inv = scaled(&|l| 1.0 / l.sqrt());
        let y = keys.mapv(|v| v as f64).dot(&a).mapv(|v| v as f32);
        let (vectors, energies) = sorted_eigen(gram(y.view()));
        HeadBasis {
            vectors: vectors.mapv(|v| v as f32),
            energies: energies.into(),
            metric: Some((a.mapv(|v| v as f32), a_inv.mapv(|v| v as f32))),
        }
    }

    /// The fraction of the calibration energy rank `r` leaves out: `Σ_{i>r} λ_i / Σ λ_i`.
    pub fn residual_energy(&self, rank: usize) -> f64 {
        let total: f64 = self.energies.sum();
        if total == 0.0 { 0.0 } else { self.energies.iter().skip(rank).sum::<f64>() / total }
    }

    /// `x (tokens, d)` projected on the first `rank` directions and back (in the score
    /// metric's coordinates when the basis has one).
    pub fn project(&self, x: ArrayView2<f32>, rank: usize) -> Array2<f32> {
        let u = self.vectors.slice(s![.., ..rank]);
        match &self.metric {
            None => x.dot(&u).dot(&u.t()),
            Some((a, a_inv)) => x.dot(a).dot(&u).dot(&u.t()).dot(a_inv),
        }
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

    /// Key bases fitted for the scores ([`HeadBasis::fit_for_scores`]) from each layer's
    /// calibration queries `(n_heads, tokens, d)`, pooled over the query heads of each KV
    /// head's group; value bases by energy as in [`LowRankCodec::fit`].
    pub fn fit_for_scores(
        calibration: &[(Array3<f32>, Array3<f32>)],
        queries: &[Array3<f32>],
        key_rank: usize,
        value_rank: usize,
    ) -> Result<Self> {
        let plain = Self::fit(calibration, key_rank, value_rank)?;
        if queries.len() != calibration.len() {
            return Err(Error::Shape(format!(
                "{} layers of queries for {} of keys",
                queries.len(),
                calibration.len()
            )));
        }
        let keys = calibration
            .iter()
            .zip(queries)
            .map(|((k, _), q)| {
                let group = q.dim().0 / k.dim().0;
                k.outer_iter()
                    .enumerate()
                    .map(|(h, kh)| {
                        let q_group = q.slice(s![h * group..(h + 1) * group, .., ..]);
                        let pooled = q_group
                            .to_shape((group * q.dim().1, q.dim().2))
                            .expect("a contiguous slice")
                            .to_owned();
                        HeadBasis::fit_for_scores(kh, pooled.view())
                    })
                    .collect()
            })
            .collect();
        Ok(LowRankCodec { keys, ..plain })
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
        let how =
            if self.keys.iter().flatten().any(|b| b.metric.is_some()) { "for scores" } else { "by energy" };
        format!("low rank ({how}) K {} / V {}", self.key_rank, self.value_rank)
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
