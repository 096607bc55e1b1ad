//! The host side of `kernels/ch06_rope.cu`: RoPE in place on the GPU, on `x` of shape
//! `(tokens, heads, head_dim)` — Hugging Face's `(batch, seq, heads, head_dim)` projection output
//! with batch and seq flattened, before the transpose — with one position per token.
//!
//! A [`RopeKernel`] is made for one [`RopeConfig`] (layout, head dim, rotary dims) and one
//! [`AngleSource`]: the cos/sin table of a [`RopeCache`], or the angles computed on the fly
//! from the f32 frequencies with CUDA's `sincosf` or the `__sincosf` intrinsic. Storage is f32
//! or bf16 ([`RopeElement`]); the arithmetic is f32 either way.
//!
//! Every bound is checked here before a launch, so the kernel cannot read or write outside its
//! buffers: `x` must hold exactly `tokens · heads · head_dim` elements, there must be one
//! position per token, and every position must lie inside the cache (or, on the fly, be an
//! integer f32 holds exactly). Positions are uploaded once as [`DevicePositions`], which
//! remembers the largest, so the check costs nothing per launch.
//!
//! The kernel moves 16 bytes per load when the rotary half-width `d_rot/2` and `head_dim` are
//! multiples of 16 bytes' worth of elements (4 f32 or 8 bf16) and `x` starts 16-byte aligned;
//! otherwise (an odd head dim with partial rotary, `d_rot = 4`, …) it falls back to one element
//! per load.

use crate::rope::{MAX_EXACT_POSITION, RopeCache, RopeConfig, RopeLayout, apply_rope};
use attn_support::cudarc::driver::{
    CudaFunction, CudaSlice, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use attn_support::error::DriverContext;
use attn_support::gpu::{Gpu, KernelSource, cdiv, launch_config};
use attn_support::ndarray::{Array3, ArrayView3, ArrayViewMut3, Axis, s};
use attn_support::{Error, Result, kernel_source};
use std::marker::PhantomData;

/// The bf16 type of the kernels' bf16 storage (the `half` crate's).
pub use half::bf16;

/// The kernel file.
pub const ROPE_SOURCE: KernelSource = kernel_source!("ch06_rope.cu");
/// Threads per block (`__launch_bounds__(256)` in the .cu file): a multiple of a warp, small
/// enough that a wave of blocks spreads over every SM even at a few thousand tokens.
pub const ROPE_THREADS: usize = 256;
/// Heads one thread rotates with the same cos/sin (`HEADS_PER_THREAD` in the .cu file): four
/// 16-byte loads of each half in flight per thread, and the angles computed once per four heads.
pub const HEADS_PER_THREAD: usize = 4;
/// Bytes of one vector load.
const VECTOR_BYTES: usize = 16;

/// Where the kernel takes `cos mθ_i` and `sin mθ_i` from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AngleSource {
    /// The `(max_positions, d_rot/2)` f32 tables of a [`RopeCache`], read from device memory.
    Cache,
    /// `m·θ_i` in f32 from the f32 frequencies, then CUDA's `sincosf` (within 2 ulp).
    Sincosf,
    /// The same angle through `__sincosf` (the special-function unit): fast, with an absolute
    /// error that grows with the angle.
    FastSincosf,
}

impl AngleSource {
    pub const ALL: [AngleSource; 3] = [AngleSource::Cache, AngleSource::Sincosf, AngleSource::FastSincosf];

    /// The part of the kernel names: `cache`, `sincosf`, `fast`.
    pub fn kernel_part(self) -> &'static str {
        match self {
            AngleSource::Cache => "cache",
            AngleSource::Sincosf => "sincosf",
            AngleSource::FastSincosf => "fast",
        }
    }
}

impl std::fmt::Display for AngleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AngleSource::Cache => "cos/sin cache",
            AngleSource::Sincosf => "sincosf on the fly",
            AngleSource::FastSincosf => "__sincosf on the fly",
        })
    }
}

/// A storage type the kernel supports: f32 or bf16.
pub trait RopeElement: DeviceRepr + ValidAsZeroBits + Copy + Default + Unpin + 'static {
    /// The kernel-name part: `f32`, `bf16`.
    const NAME: &'static str;
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl RopeElement for f32 {
    const NAME: &'static str = "f32";
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl RopeElement for bf16 {
    const NAME: &'static str = "bf16";
    /// Round to nearest even, as the kernel's store does.
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

/// One position per token on the device, checked on upload: each at most
/// [`MAX_EXACT_POSITION`] (2²⁴, the last integer f32 holds exactly).
pub struct DevicePositions {
    buf: CudaSlice<u32>,
    /// The largest position and the token that has it, for the cache check.
    max: (u32, usize),
}

impl DevicePositions {
    pub fn upload(gpu: &Gpu, positions: &[u32]) -> Result<DevicePositions> {
        let max = largest_position(positions)?;
        let buf = gpu.stream.clone_htod(positions).ctx("copying the positions to the device")?;
        Ok(DevicePositions { buf, max })
    }

    /// Positions `0 … n − 1` (a prefill of one sequence).
    pub fn prefill(gpu: &Gpu, n: usize) -> Result<DevicePositions> {
        let n = u32::try_from(n).map_err(|_| Error::InvalidArgument(format!("{n} tokens do not fit u32")))?;
        DevicePositions::upload(gpu, &(0..n).collect::<Vec<_>>())
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Never true: an empty list is refused on upload.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == 0
    }

    /// The largest position.
    pub fn max(&self) -> u32 {
        self.max.0
    }
}

/// The largest position and the token that holds it; an error for no positions or one past
/// [`MAX_EXACT_POSITION`] (2²⁴, the last integer f32 holds exactly), naming it.
pub fn largest_position(positions: &[u32]) -> Result<(u32, usize)> {
    let Some((token, &max)) = positions.iter().enumerate().max_by_key(|&(_, p)| *p) else {
        return Err(Error::InvalidArgument("RoPE needs at least one position (one token)".into()));
    };
    if max as usize > MAX_EXACT_POSITION {
        return Err(Error::InvalidArgument(format!(
            "position {max} (token {token}) is past 2^24 = {MAX_EXACT_POSITION}, the last integer \
             position f32 holds exactly"
        )));
    }
    Ok((max, token))
}

// ANCHOR: launch_checks
/// What a launch needs, checked before it (and testable without a GPU): `x` holds exactly
/// `tokens · heads · head_dim` elements (one token per position), the sizes fit the kernel's
/// 32-bit arguments, and with a cache of `cache_positions` rows the largest position
/// (`largest`: the value and its token) lies inside it.
pub fn check_launch(
    config: &RopeConfig,
    x_len: usize,
    heads: usize,
    tokens: usize,
    largest: (u32, usize),
    cache_positions: Option<usize>,
) -> Result<()> {
    let head_dim = config.head_dim();
    if heads == 0 || tokens.checked_mul(heads).and_then(|n| n.checked_mul(head_dim)) != Some(x_len) {
        return Err(Error::InvalidArgument(format!(
            "x holds {x_len} elements but (tokens {tokens} (one per position), heads {heads}, \
             head_dim {head_dim}) needs {}",
            tokens.saturating_mul(heads).saturating_mul(head_dim)
        )));
    }
    if heads > i32::MAX as usize || head_dim > i32::MAX as usize {
        return Err(Error::InvalidArgument(format!("heads {heads} or head_dim {head_dim} over 2^31 − 1")));
    }
    if let Some(max_positions) = cache_positions {
        let (max, token) = largest;
        if max as usize >= max_positions {
            return Err(Error::InvalidArgument(format!(
                "position {max} (token {token}) is past the cos/sin cache of {max_positions} \
                 positions (0..={})",
                max_positions.saturating_sub(1)
            )));
        }
    }
    Ok(())
}
// ANCHOR_END: launch_checks

/// The device tables the angle source reads.
enum AngleTables {
    Cache { cos: CudaSlice<f32>, sin: CudaSlice<f32>, max_positions: usize },
    InvFreq(CudaSlice<f32>),
}

/// RoPE for one config and angle source on storage type `T`, compiled and loaded.
pub struct RopeKernel<T: RopeElement> {
    config: RopeConfig,
    source: AngleSource,
    tables: AngleTables,
    vector: CudaFunction,
    scalar: CudaFunction,
    _element: PhantomData<T>,
}

/// The kernel's name for a layout, element type, angle source and load width.
pub fn kernel_name(layout: RopeLayout, element: &str, source: AngleSource, vector: bool) -> String {
    let layout = match layout {
        RopeLayout::HalfRotation => "half",
        RopeLayout::Interleaved => "interleaved",
    };
    let width = if vector { "vec" } else { "scalar" };
    format!("ch06_rope_{layout}_{element}_{}_{width}", source.kernel_part())
}

impl<T: RopeElement> RopeKernel<T> {
    /// RoPE reading `cache`'s cos/sin tables (copied to the device once, here).
    pub fn with_cache(gpu: &Gpu, cache: &RopeCache) -> Result<Self> {
        let tables = AngleTables::Cache {
            cos: gpu.upload(&cache.cos())?,
            sin: gpu.upload(&cache.sin())?,
            max_positions: cache.max_positions(),
        };
        Self::load(gpu, cache.config(), AngleSource::Cache, tables)
    }

    /// RoPE computing the angles from the config's frequencies ([`RopeConfig::inv_freq`], scaled
    /// if the config has a scaling; cos and sin times its attention factor, as in the cache) with
    /// `source` = [`AngleSource::Sincosf`] or [`AngleSource::FastSincosf`].
    pub fn on_the_fly(gpu: &Gpu, config: &RopeConfig, source: AngleSource) -> Result<Self> {
        Self::with_inv_freq(gpu, config, &config.inv_freq(), source)
    }

    /// [`RopeKernel::on_the_fly`] with any f32 frequencies, one per pair.
    pub fn with_inv_freq(
        gpu: &Gpu,
        config: &RopeConfig,
        inv_freq: &[f32],
        source: AngleSource,
    ) -> Result<Self> {
        if source == AngleSource::Cache {
            return Err(Error::InvalidArgument(
                "the cos/sin cache is an angle source of RopeKernel::with_cache, not of on_the_fly".into(),
            ));
        }
        if inv_freq.len() != config.pairs() {
            return Err(Error::InvalidArgument(format!(
                "{} frequencies for {} rotation pairs (rotary dims {})",
                inv_freq.len(),
                config.pairs(),
                config.rotary_dim()
            )));
        }
        let tables = AngleTables::InvFreq(gpu.stream.clone_htod(inv_freq).ctx("copying the frequencies")?);
        Self::load(gpu, config, source, tables)
    }

    fn load(gpu: &Gpu, config: &RopeConfig, source: AngleSource, tables: AngleTables) -> Result<Self> {
        let name = |vector| kernel_name(config.layout(), T::NAME, source, vector);
        Ok(RopeKernel {
            config: config.clone(),
            source,
            tables,
            vector: gpu.function(&ROPE_SOURCE, &name(true))?,
            scalar: gpu.function(&ROPE_SOURCE, &name(false))?,
            _element: PhantomData,
        })
    }

    pub fn config(&self) -> &RopeConfig {
        &self.config
    }

    pub fn source(&self) -> AngleSource {
        self.source
    }

    /// Pairs per thread in the vector variant: 16 bytes of elements (4 f32, 8 bf16).
    pub fn vector_pairs() -> usize {
        VECTOR_BYTES / size_of::<T>()
    }

    /// Whether the config allows 16-byte loads: `d_rot/2` and `head_dim` multiples of
    /// [`RopeKernel::vector_pairs`], so that every chunk of a row starts 16-byte aligned.
    pub fn config_allows_vectors(&self) -> bool {
        let c = Self::vector_pairs();
        self.config.pairs().is_multiple_of(c) && self.config.head_dim().is_multiple_of(c)
    }

    /// Check a launch on `x` of shape `(tokens, heads, head_dim)` ([`check_launch`]) and make
    /// its shape: the grid covers `tokens · ⌈heads / HEADS_PER_THREAD⌉ · d_rot/(2C)` threads.
    fn launch_shape(
        &self,
        x_len: usize,
        heads: usize,
        positions: &DevicePositions,
        vector: bool,
    ) -> Result<Shape> {
        let cache_positions = match self.tables {
            AngleTables::Cache { max_positions, .. } => Some(max_positions),
            AngleTables::InvFreq(_) => None,
        };
        let tokens = positions.len();
        check_launch(&self.config, x_len, heads, tokens, positions.max, cache_positions)?;
        let pairs_per_thread = if vector { Self::vector_pairs() } else { 1 };
        let head_slots = heads.div_ceil(HEADS_PER_THREAD);
        let threads = tokens * head_slots * (self.config.pairs() / pairs_per_thread);
        let blocks = cdiv(threads, ROPE_THREADS);
        // The kernel's index arithmetic is 32-bit (2^32 threads would be hundreds of GB of x).
        if blocks * ROPE_THREADS > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "{threads} threads for {tokens} tokens × {heads} heads: over the kernel's 2^32"
            )));
        }
        let launch = launch_config((blocks, 1, 1), ROPE_THREADS, 0)?;
        Ok(Shape { launch, head_slots: head_slots as i32 })
    }

    /// Rotate `x` `(tokens, heads, head_dim)` in place (asynchronously, on `gpu.stream`); token
    /// `t` at position `positions[t]`.
    pub fn launch(
        &self,
        gpu: &Gpu,
        x: &mut CudaSlice<T>,
        heads: usize,
        positions: &DevicePositions,
    ) -> Result<()> {
        let aligned = {
            let (ptr, _sync) = x.device_ptr(&gpu.stream);
            (ptr as usize).is_multiple_of(VECTOR_BYTES)
        };
        let vector = aligned && self.config_allows_vectors();
        let shape = self.launch_shape(x.len(), heads, positions, vector)?;
        let function = if vector { &self.vector } else { &self.scalar };
        let tokens = positions.len() as i64;
        let (heads, head_dim, pairs) =
            (heads as i32, self.config.head_dim() as i32, self.config.pairs() as i32);
        // The unused table pointers are null; the kernel never reads them. The attention
        // factor is already inside the cache's table.
        let null = 0u64;
        let attention_factor = self.config.attention_factor();
        let mut builder = gpu.stream.launch_builder(function);
        builder.arg(x).arg(&positions.buf);
        match &self.tables {
            AngleTables::Cache { cos, sin, .. } => builder.arg(cos).arg(sin).arg(&null),
            AngleTables::InvFreq(inv_freq) => builder.arg(&null).arg(&null).arg(inv_freq),
        };
        builder.arg(&attention_factor);
        builder.arg(&tokens).arg(&heads).arg(&head_dim).arg(&pairs).arg(&shape.head_slots);
        // SAFETY: the arguments match the kernel's signature; x holds tokens·heads·head_dim
        // elements, positions one per token, each inside the cache (checked above); the vector
        // variant runs only on a 16-byte aligned x with chunk-aligned rows.
        unsafe { builder.launch(shape.launch) }.ctx("launching the ch06 RoPE kernel")?;
        Ok(())
    }
}

struct Shape {
    launch: LaunchConfig,
    head_slots: i32,
}

/// RoPE on the GPU for a host array `x` `(tokens, heads, head_dim)` of f32 or bf16 values:
/// upload, rotate in place, download. The same answer as [`RopeCache::apply`] or
/// [`crate::apply_rope`] on each token (see `tests/gpu.rs` for how close).
pub fn rope_gpu<T: RopeElement>(
    gpu: &Gpu,
    kernel: &RopeKernel<T>,
    x: ArrayView3<T>,
    positions: &[u32],
) -> Result<Array3<T>> {
    let (tokens, heads, head_dim) = x.dim();
    if head_dim != kernel.config.head_dim() || tokens != positions.len() {
        return Err(Error::shapes(
            "RoPE on the GPU: x is (tokens, heads, head_dim) with one position per token",
            "x",
            x.shape(),
            "(positions, ·, config head_dim)",
            &[positions.len(), heads, kernel.config.head_dim()],
        ));
    }
    let positions = DevicePositions::upload(gpu, positions)?;
    let mut buf = gpu.upload(&x)?;
    kernel.launch(gpu, &mut buf, heads, &positions)?;
    gpu.download(&buf, x.raw_dim())
}

/// The CPU's RoPE on the GPU kernel's layout: `x` `(tokens, heads, head_dim)` in place, token
/// `t` at `positions[t]`, from `cache` when given (as [`AngleSource::Cache`]) or on the fly. Each
/// token is a `(1, heads, 1, head_dim)` view that [`RopeCache::apply`] or [`apply_rope`] rotates
/// at offset `positions[t]`, so the bounds and errors are theirs.
pub fn cpu_rope_at_positions(
    config: &RopeConfig,
    cache: Option<&RopeCache>,
    mut x: ArrayViewMut3<f32>,
    positions: &[u32],
) -> Result<()> {
    if x.dim().0 != positions.len() {
        return Err(Error::shapes(
            "RoPE: one position per token",
            "x",
            x.shape(),
            "positions",
            &[positions.len()],
        ));
    }
    for (t, &m) in positions.iter().enumerate() {
        let token = x.slice_mut(s![t..=t, .., ..]).insert_axis(Axis(2));
        match cache {
            Some(cache) => cache.apply(token, m as usize)?,
            None => apply_rope(config, token, m as usize)?,
        }
    }
    Ok(())
}
