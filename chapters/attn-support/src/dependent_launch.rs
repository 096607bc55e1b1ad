//! Programmatic dependent launch (compute capability 9.0 and later): a kernel launched with the
//! attribute `CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION` may start before the kernel
//! ahead of it on the stream has finished, as soon as every block of that kernel has executed
//! `griddepcontrol.launch_dependents` or exited. Its own `griddepcontrol.wait` then blocks until
//! the earlier kernel has completed and its writes are visible, so everything before the wait
//! (the launch itself, the blocks' start, reads of inputs the earlier kernel does not write)
//! overlaps the earlier kernel's last blocks instead of following them.
//!
//! A kernel launched this way must wait before it reads what the earlier kernel writes; launched
//! without the attribute (or on an older GPU, where the instructions are compiled out), the wait
//! returns at once and the stream orders the two kernels as usual.
//!
//! [`DependentArgs::launch`] makes the same call with or without the attribute, so that a caller
//! has one argument list for both orders.

use crate::error::{DriverContext, Result};
use cudarc::driver::sys::{self, CUlaunchAttributeID, CUlaunchAttributeValue};
use cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, DevicePtr, DevicePtrMut, LaunchConfig, SyncOnDrop,
};
use std::ffi::c_void;

/// The parameters of one kernel launch, in the kernel's order: device pointers and 32-bit
/// scalars, each stored until [`DependentArgs::launch`].
pub struct DependentArgs<'a> {
    stream: &'a CudaStream,
    /// One 8-byte slot per parameter: the driver reads as many bytes as the parameter's type has.
    slots: Vec<u64>,
    /// What the device pointers' borrows record when they end (nothing on a single stream).
    guards: Vec<SyncOnDrop<'a>>,
}

impl<'a> DependentArgs<'a> {
    pub fn new(stream: &'a CudaStream) -> DependentArgs<'a> {
        DependentArgs { stream, slots: Vec::new(), guards: Vec::new() }
    }

    /// A buffer the kernel reads.
    pub fn slice<T>(&mut self, buf: &'a CudaSlice<T>) -> &mut Self {
        let (ptr, guard) = buf.device_ptr(self.stream);
        self.slots.push(ptr);
        self.guards.push(guard);
        self
    }

    /// A buffer the kernel writes.
    pub fn slice_mut<T>(&mut self, buf: &'a mut CudaSlice<T>) -> &mut Self {
        let (ptr, guard) = buf.device_ptr_mut(self.stream);
        self.slots.push(ptr);
        self.guards.push(guard);
        self
    }

    /// A buffer the kernel reads, or a null pointer where there is none.
    pub fn optional<T>(&mut self, buf: Option<&'a CudaSlice<T>>) -> &mut Self {
        match buf {
            Some(buf) => self.slice(buf),
            None => {
                self.slots.push(0);
                self
            }
        }
    }

    /// A buffer the kernel writes, or a null pointer where there is none.
    pub fn optional_mut<T>(&mut self, buf: Option<&'a mut CudaSlice<T>>) -> &mut Self {
        match buf {
            Some(buf) => self.slice_mut(buf),
            None => {
                self.slots.push(0);
                self
            }
        }
    }

    /// An `int` parameter.
    pub fn i32(&mut self, value: i32) -> &mut Self {
        self.slots.push(value as u32 as u64);
        self
    }

    /// A `float` parameter.
    pub fn f32(&mut self, value: f32) -> &mut Self {
        self.slots.push(value.to_bits() as u64);
        self
    }

    /// Launch `func` on the stream: as a programmatic dependent of the kernel before it when
    /// `dependent` is true, after it in stream order when false (the same call, without the
    /// launch attribute).
    ///
    /// # Safety
    /// As cudarc's `LaunchArgs::launch`: the parameters match the kernel's signature in number,
    /// order and type, and every buffer is large enough for what the kernel reads and writes
    /// with `cfg`. The kernel calls `griddepcontrol.wait` before it reads anything the earlier
    /// kernel writes (and before it writes anything the earlier kernel reads).
    pub unsafe fn launch(&mut self, func: &CudaFunction, cfg: LaunchConfig, dependent: bool) -> Result<()> {
        let mut value = CUlaunchAttributeValue { pad: [0; 64] };
        value.programmaticStreamSerializationAllowed = 1;
        let mut attr = sys::CUlaunchAttribute {
            id: CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION,
            pad: [0; 4],
            value,
        };
        let config = sys::CUlaunchConfig {
            gridDimX: cfg.grid_dim.0,
            gridDimY: cfg.grid_dim.1,
            gridDimZ: cfg.grid_dim.2,
            blockDimX: cfg.block_dim.0,
            blockDimY: cfg.block_dim.1,
            blockDimZ: cfg.block_dim.2,
            sharedMemBytes: cfg.shared_mem_bytes,
            hStream: self.stream.cu_stream(),
            attrs: &mut attr,
            numAttrs: u32::from(dependent),
        };
        let mut params: Vec<*mut c_void> =
            self.slots.iter_mut().map(|s| s as *mut u64 as *mut c_void).collect();
        self.stream.context().bind_to_thread().ctx("binding the context for a dependent launch")?;
        // SAFETY: config and attr live until the call returns; params point into self.slots,
        // one per kernel parameter (the caller's promise).
        unsafe {
            sys::cuLaunchKernelEx(&config, func.cu_function(), params.as_mut_ptr(), std::ptr::null_mut())
        }
        .result()
        .ctx(if dependent {
            "launching a kernel as a programmatic dependent"
        } else {
            "launching a kernel"
        })
    }
}
