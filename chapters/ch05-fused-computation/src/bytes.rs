//! Bytes moved to and from memory: the quantity a fusion saves.

/// Bytes read and written by one version of a computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BytesMoved {
    pub read: u64,
    pub written: u64,
}

impl BytesMoved {
    /// Read plus written.
    pub fn total(&self) -> u64 {
        self.read + self.written
    }
}
