//! Seeded random tensors, so every test and figure is reproducible.

use ndarray::{Array, Dimension, IntoDimension, ShapeBuilder};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// A tensor of the given shape filled with N(0, 1) samples from a fixed seed.
pub fn randn<Sh>(shape: Sh, seed: u64) -> Array<f32, Sh::Dim>
where
    Sh: ShapeBuilder,
    Sh::Dim: Dimension,
{
    let mut rng = StdRng::seed_from_u64(seed);
    Array::from_shape_simple_fn(shape, || StandardNormal.sample(&mut rng))
}

/// A tensor of N(0, σ²) samples.
pub fn randn_scaled<D: Dimension>(
    shape: impl IntoDimension<Dim = D>,
    sigma: f32,
    seed: u64,
) -> Array<f32, D> {
    randn(shape.into_dimension(), seed).mapv(|x| x * sigma)
}
