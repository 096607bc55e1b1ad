//! One error type for the whole book: shapes that do not fit, arguments a kernel does not
//! support, and everything that can go wrong on the way to the GPU.

use cudarc::driver::DriverError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two arrays that must agree do not, e.g. `Q` is (4, 8) but `K` is (5, 7).
    #[error("shape mismatch: {what}: {left_name} is {left:?} but {right_name} is {right:?}")]
    ShapeMismatch {
        what: String,
        left_name: &'static str,
        left: Vec<usize>,
        right_name: &'static str,
        right: Vec<usize>,
    },
    /// An argument outside what the code supports (an empty array, a head dim a kernel lacks).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No GPU could be opened; the text says why (no driver library, no device, ...).
    #[error("no GPU: {0}")]
    NoGpu(String),
    /// A CUDA driver call failed.
    #[error("CUDA driver error while {context}: {source}")]
    Driver {
        context: String,
        #[source]
        source: DriverError,
    },
    /// NVRTC rejected a kernel file; `log` is the compiler's own log.
    #[error("NVRTC could not compile {kernel} for {arch}:\n{log}")]
    Compile { kernel: String, arch: String, log: String },
    /// A cuBLAS call failed.
    #[error("cuBLAS failed while {context}: {source}")]
    Cublas {
        context: String,
        #[source]
        source: cudarc::cublas::result::CublasError,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plotting error: {0}")]
    Plot(String),
}

impl Error {
    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shapes(
        what: impl Into<String>,
        left_name: &'static str,
        left: &[usize],
        right_name: &'static str,
        right: &[usize],
    ) -> Self {
        Error::ShapeMismatch {
            what: what.into(),
            left_name,
            left: left.to_vec(),
            right_name,
            right: right.to_vec(),
        }
    }
}

/// Attach what we were doing to a driver error: `stream.synchronize().ctx("synchronising")?`.
pub trait DriverContext<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> DriverContext<T> for std::result::Result<T, DriverError> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|source| Error::Driver { context: context.to_string(), source })
    }
}
