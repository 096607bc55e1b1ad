//! Where the model file lives, and how code that needs it says what to run when it is missing.
//!
//! `cargo xtask model` puts the file at `target/model/SmolLM2-135M-Instruct.Q4_1.gguf` under
//! the repository root, checked against its pinned SHA-256 (the hash lives in
//! `xtask/src/model.rs`). [`model_path`] finds it from any working directory, as
//! `attn_support::csv::recorded_run` finds the recorded results: through this crate's own
//! folder, fixed at compile time. `ATTN_MODEL_FILE` points elsewhere when set.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The model's file name under `target/model/`.
pub const MODEL_FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Environment variable that names another model file (a copy on another machine).
pub const MODEL_FILE_ENV: &str = "ATTN_MODEL_FILE";

/// Environment variable that turns a missing model from a skipped test into a failure, as
/// `ATTN_REQUIRE_GPU` does for the GPU.
pub const REQUIRE_MODEL_ENV: &str = "ATTN_REQUIRE_MODEL";

/// The model file's path, or [`Error::MissingModel`] ("run `cargo xtask model`") when it is not
/// there.
pub fn model_path() -> Result<PathBuf> {
    let path = match std::env::var_os(MODEL_FILE_ENV) {
        Some(p) => PathBuf::from(p),
        None => repository_root().join("target/model").join(MODEL_FILE_NAME),
    };
    if path.is_file() { Ok(path) } else { Err(Error::MissingModel { path }) }
}

/// Whether `ATTN_REQUIRE_MODEL=1` is set.
pub fn model_required() -> bool {
    std::env::var(REQUIRE_MODEL_ENV).is_ok_and(|v| v == "1")
}

/// For tests, demos and notebook cells that use the real model: its path, or `None` after
/// printing why `what` is skipped (to stdout: a notebook treats stderr as a failure). Under
/// `ATTN_REQUIRE_MODEL=1` a missing model is an error instead, so a check cannot pass by
/// skipping.
pub fn model_path_or_skip(what: &str) -> Result<Option<PathBuf>> {
    match model_path() {
        Ok(path) => Ok(Some(path)),
        Err(e) if model_required() => Err(e),
        Err(e) => {
            println!("skipped {what}: {e} ({REQUIRE_MODEL_ENV}=1 makes this an error)");
            Ok(None)
        }
    }
}

/// The repository root: two folders above this crate's manifest (`chapters/attn-model/`).
fn repository_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().and_then(Path::parent).unwrap_or(manifest).to_path_buf()
}
