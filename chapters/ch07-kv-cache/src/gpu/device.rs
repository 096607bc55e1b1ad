//! The cache, the lengths and the splits' scratch space on the device.

use super::cache::{CacheDims, CacheElement, HostKvCache, HostKvTensor, Side, TensorLens, tensor_lens};
use attn_support::cudarc::driver::{CudaSlice, DeviceRepr};
use attn_support::error::DriverContext;
use attn_support::gpu::Gpu;
use attn_support::{Error, Result};

/// A host vector on the device, or nothing for an empty one (cudarc cannot allocate 0 bytes;
/// the kernel is passed a null pointer it never reads).
fn upload_or_none<T: DeviceRepr + Copy>(gpu: &Gpu, v: &[T], what: &str) -> Result<Option<CudaSlice<T>>> {
    if v.is_empty() {
        return Ok(None);
    }
    gpu.stream.clone_htod(v).map(Some).ctx(&format!("copying the {what} to the device"))
}

/// One of K or V on the device.
pub struct DeviceKvTensor {
    pub(crate) codes: CudaSlice<u8>,
    pub(crate) scales: Option<CudaSlice<f32>>,
    pub(crate) block_scales: Option<CudaSlice<u8>>,
    pub(crate) tensor_scales: Option<CudaSlice<f32>>,
}

impl DeviceKvTensor {
    fn upload(gpu: &Gpu, t: &HostKvTensor) -> Result<DeviceKvTensor> {
        if t.codes.is_empty() {
            return Err(Error::InvalidArgument(
                "a KV cache with no slots (batch, heads or capacity 0)".into(),
            ));
        }
        Ok(DeviceKvTensor {
            codes: gpu.stream.clone_htod(&t.codes).ctx("copying the cache's codes to the device")?,
            scales: upload_or_none(gpu, &t.scales, "cache's scales")?,
            block_scales: upload_or_none(gpu, &t.block_scales, "cache's block scales")?,
            tensor_scales: upload_or_none(gpu, &t.tensor_scales, "cache's tensor scales")?,
        })
    }

    /// What the buffers hold, to check a launch against.
    fn lens(&self) -> TensorLens {
        TensorLens {
            codes: self.codes.len(),
            scales: self.scales.as_ref().map_or(0, |s| s.len()),
            block_scales: self.block_scales.as_ref().map_or(0, |s| s.len()),
            tensor_scales: self.tensor_scales.as_ref().map_or(0, |s| s.len()),
        }
    }
}

/// A quantised cache on the device, read as `dims` (by default the shape it was made with; the
/// benchmark reads one allocation as several `(batch, capacity)` shapes of no more slots).
pub struct DeviceKvCache {
    pub(crate) element: CacheElement,
    pub(crate) dims: CacheDims,
    pub(crate) k: DeviceKvTensor,
    pub(crate) v: DeviceKvTensor,
}

impl DeviceKvCache {
    pub fn upload(gpu: &Gpu, cache: &HostKvCache) -> Result<DeviceKvCache> {
        let lens = |t: &HostKvTensor| TensorLens {
            codes: t.codes.len(),
            scales: t.scales.len(),
            block_scales: t.block_scales.len(),
            tensor_scales: t.tensor_scales.len(),
        };
        check_buffers(cache.element, cache.dims, lens(&cache.k), lens(&cache.v))?;
        Ok(DeviceKvCache {
            element: cache.element,
            dims: cache.dims,
            k: DeviceKvTensor::upload(gpu, &cache.k)?,
            v: DeviceKvTensor::upload(gpu, &cache.v)?,
        })
    }

    pub fn element(&self) -> CacheElement {
        self.element
    }

    pub fn dims(&self) -> CacheDims {
        self.dims
    }

    /// Read the same buffers as `dims` (same KV heads and head dim): an error unless every
    /// buffer holds what `dims` needs.
    pub fn reshape(&mut self, dims: CacheDims) -> Result<()> {
        if dims.kv_heads != self.dims.kv_heads || dims.head_dim != self.dims.head_dim {
            return Err(Error::InvalidArgument(format!(
                "reshaping a cache of {:?} to {dims:?}: KV heads and head dim stay",
                self.dims
            )));
        }
        check_buffers(self.element, dims, self.k.lens(), self.v.lens())?;
        self.dims = dims;
        Ok(())
    }

    /// Device bytes of the cache's buffers.
    pub fn bytes(&self) -> usize {
        let t = |x: &DeviceKvTensor| {
            let l = x.lens();
            l.codes + 4 * l.scales + l.block_scales + 4 * l.tensor_scales
        };
        t(&self.k) + t(&self.v)
    }
}

/// Every buffer of K and V holds at least what `dims` needs, so that no kernel index can leave
/// them.
pub fn check_buffers(element: CacheElement, dims: CacheDims, k: TensorLens, v: TensorLens) -> Result<()> {
    for (side, name, have) in [(Side::Key, "K", k), (Side::Value, "V", v)] {
        let need = tensor_lens(element, side, dims)?;
        let short = [
            ("codes (bytes)", have.codes, need.codes),
            ("scales", have.scales, need.scales),
            ("block scales", have.block_scales, need.block_scales),
            ("tensor scales", have.tensor_scales, need.tensor_scales),
        ]
        .into_iter()
        .find(|(_, have, need)| have < need);
        if let Some((what, have, need)) = short {
            return Err(Error::InvalidArgument(format!(
                "{name} {what} of a {} cache hold {have} elements, {dims:?} needs {need}",
                element.name()
            )));
        }
    }
    Ok(())
}

/// One length per sequence on the device, with the largest (and its sequence) kept for the
/// launch checks.
pub struct DeviceLengths {
    pub(crate) buf: CudaSlice<u32>,
    pub(crate) max: (u32, usize),
    pub(crate) total: u64,
}

impl DeviceLengths {
    pub fn upload(gpu: &Gpu, lengths: &[u32]) -> Result<DeviceLengths> {
        let Some((b, &max)) = lengths.iter().enumerate().max_by_key(|&(_, l)| *l) else {
            return Err(Error::InvalidArgument("decode attention needs at least one sequence".into()));
        };
        let buf = gpu.stream.clone_htod(lengths).ctx("copying the lengths to the device")?;
        Ok(DeviceLengths { buf, max: (max, b), total: lengths.iter().map(|&l| u64::from(l)).sum() })
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Never true: an empty list is refused on upload.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == 0
    }

    /// Cached tokens over all sequences.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// The splits' partial results `(batch, q_heads, splits, d)` and `(…, 2)`, grown on demand.
#[derive(Default)]
pub struct DecodeWorkspace {
    pub(crate) acc: Option<CudaSlice<f32>>,
    pub(crate) ml: Option<CudaSlice<f32>>,
}

impl DecodeWorkspace {
    pub fn new() -> DecodeWorkspace {
        DecodeWorkspace::default()
    }

    /// At least `acc` and `ml` floats.
    pub(crate) fn ensure(&mut self, gpu: &Gpu, acc: usize, ml: usize) -> Result<()> {
        if self.acc.as_ref().is_none_or(|b| b.len() < acc) {
            self.acc = Some(gpu.zeros(acc)?);
        }
        if self.ml.as_ref().is_none_or(|b| b.len() < ml) {
            self.ml = Some(gpu.zeros(ml)?);
        }
        Ok(())
    }
}
