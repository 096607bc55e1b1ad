//! Installing the tools that the notebooks and the book need, only when missing, and saying so.
//! Versions are pinned so that a fresh CI machine gets what was tested here.

use crate::process::{cargo, find_tool, root, run, stdout_of};
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256, Sha512};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Jupyter kernel for Rust (it registers a kernelspec named `rust`).
pub const EVCXR_VERSION: &str = "0.22.0";
/// The book builder.
pub const MDBOOK_VERSION: &str = "0.5.4";
/// MathJax, served from the built book so that its math renders offline (see `book.rs`). 3.2.2
/// is the last MathJax 3; MathJax 4 loads its fonts as separate files, from a CDN by default.
pub const MATHJAX_VERSION: &str = "3.2.2";
/// The npm registry's tarball of [`MATHJAX_VERSION`].
pub const MATHJAX_TARBALL: &str = "https://registry.npmjs.org/mathjax/-/mathjax-3.2.2.tgz";
/// SHA-512 of that tarball: the registry's `dist.integrity`
/// (`sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw==`)
/// in hex, so a changed or truncated download fails instead of entering the book.
pub const MATHJAX_TARBALL_SHA512: &str = "06df9249553c7811b6ef30a155ec0e89c62ced7b1db78d2a9b8f94a47c97ee4d\
    3f3bd36588f73ec7bee4d7f144b0fb2328f64626fb5164cd6f3be81e5b43a11b";
/// The one file of the tarball the book serves: TeX input, SVG output, every TeX extension
/// built in (nothing is fetched later) and the glyphs drawn as paths (no font files).
pub const MATHJAX_MEMBER: &str = "package/es5/tex-svg-full.js";
/// SHA-256 of that file, checked at every build so a stale or edited copy is replaced.
pub const MATHJAX_FILE_SHA256: &str = "a4354ff94fd868aea0cc6eaaa79a57fda0588646fc46ee3700a349ee0a11cbe6";
/// The Python packages that execute notebooks headlessly.
pub const RUNNER_PACKAGES: &[&str] = &[
    "nbclient==0.11.0",
    "nbformat==5.11.1",
    "nbconvert==7.17.2",
    "jupyter_client==8.10.0",
    "ipykernel==7.4.0",
];
/// What `cargo xtask notebooks` adds to open the notebooks in a browser.
pub const LAB_PACKAGES: &[&str] = &["jupyterlab==4.6.6"];
/// The Python virtual environment, inside `target/` so `cargo clean` removes it.
pub const VENV: &str = "target/jupyter-venv";

/// How to install evcxr_jupyter; also printed by `doctor`.
pub fn evcxr_install_command() -> String {
    format!("cargo install --locked evcxr_jupyter --version {EVCXR_VERSION}")
}

/// How to install mdbook; also printed by `doctor`. Without the `serve`/`watch` features it
/// builds in half the time, and `mdbook build docs` is all the project needs.
pub fn mdbook_install_command() -> String {
    format!(
        "cargo install --locked mdbook --version {MDBOOK_VERSION} --no-default-features --features search"
    )
}

/// The version of `krate` recorded by `cargo install`, if it was installed that way.
pub fn cargo_installed_version(krate: &str) -> Option<String> {
    let list = stdout_of(cargo().args(["install", "--list"]))?;
    let prefix = format!("{krate} v");
    list.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim_end_matches(':').to_owned())
}

/// evcxr_jupyter at the pinned version, installed if missing. Returns its path.
pub fn evcxr() -> Result<PathBuf> {
    let found = find_tool("evcxr_jupyter");
    match (&found, cargo_installed_version("evcxr_jupyter")) {
        (Some(path), Some(v)) if v == EVCXR_VERSION => return Ok(path.clone()),
        (Some(path), None) => {
            println!("using {} (not installed by cargo, version unchecked)", path.display());
            return Ok(path.clone());
        }
        (Some(_), Some(v)) => println!("evcxr_jupyter {v} is installed; installing {EVCXR_VERSION}"),
        (None, _) => println!("evcxr_jupyter is missing: installing it (about 6 minutes on 2 cores)"),
    }
    run(cargo().args(["install", "--locked", "evcxr_jupyter", "--version", EVCXR_VERSION]))?;
    find_tool("evcxr_jupyter").context("evcxr_jupyter was installed but is not on PATH nor in ~/.cargo/bin")
}

/// mdbook at the pinned version, installed if missing. Returns its path.
pub fn mdbook() -> Result<PathBuf> {
    let wanted = format!("mdbook v{MDBOOK_VERSION}");
    let found = find_tool("mdbook");
    let version = found.as_ref().and_then(|p| stdout_of(Command::new(p).arg("--version")));
    match (&found, version) {
        (Some(path), Some(v)) if v == wanted => return Ok(path.clone()),
        (Some(_), v) => println!("found {}, installing {wanted}", v.unwrap_or("an unknown mdbook".into())),
        (None, _) => println!("mdbook is missing: installing {wanted} (about 3 minutes on 2 cores)"),
    }
    let command = mdbook_install_command();
    run(cargo().args(command.split_whitespace().skip(1)))?;
    find_tool("mdbook").context("mdbook was installed but is not on PATH nor in ~/.cargo/bin")
}

/// `dest` holding MathJax's `tex-svg-full.js` at [`MATHJAX_VERSION`], checked against its pinned
/// SHA-256; fetched from the npm registry (through `target/mathjax/`) when missing or different.
/// Python 3 downloads and unpacks it (`xtask/fetch_npm_file.py`, standard library only: the
/// README already requires Python 3, and xtask then needs no HTTP or archive crates); the hashes
/// are checked here.
pub fn mathjax(dest: &Path) -> Result<()> {
    if mathjax_is_current(dest) {
        return Ok(());
    }
    let cache = root().join("target/mathjax");
    let tarball = cache.join(format!("mathjax-{MATHJAX_VERSION}.tgz"));
    if sha_hex::<Sha512>(&tarball).ok() != Some(MATHJAX_TARBALL_SHA512.to_owned()) {
        println!("MathJax {MATHJAX_VERSION} for the book is missing: fetching it from the npm registry");
        std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
        run(fetch_npm_file()?.args(["fetch", MATHJAX_TARBALL]).arg(&tarball))?;
        let got = sha_hex::<Sha512>(&tarball)?;
        if got != MATHJAX_TARBALL_SHA512 {
            std::fs::remove_file(&tarball).ok();
            bail!(
                "{MATHJAX_TARBALL} has SHA-512 {got}, not the pinned {MATHJAX_TARBALL_SHA512}: \
                 the download is damaged or the registry serves other bytes; nothing was installed"
            );
        }
    }
    std::fs::create_dir_all(dest.parent().expect("a file is in a folder"))?;
    run(fetch_npm_file()?.arg("extract").arg(&tarball).arg(MATHJAX_MEMBER).arg(dest))?;
    let got = sha_hex::<Sha256>(dest)?;
    if got != MATHJAX_FILE_SHA256 {
        std::fs::remove_file(dest).ok();
        bail!(
            "{MATHJAX_MEMBER} of {} has SHA-256 {got}, not the pinned {MATHJAX_FILE_SHA256}",
            tarball.display()
        );
    }
    Ok(())
}

/// Whether `file` is the pinned MathJax file.
pub fn mathjax_is_current(file: &Path) -> bool {
    sha_hex::<Sha256>(file).ok().as_deref() == Some(MATHJAX_FILE_SHA256)
}

/// `python3 xtask/fetch_npm_file.py`, run from the repository root.
fn fetch_npm_file() -> Result<Command> {
    let python = find_tool("python3").context("python3 is missing: the book's MathJax is fetched with it")?;
    let mut cmd = Command::new(python);
    cmd.arg("xtask/fetch_npm_file.py").current_dir(root());
    Ok(cmd)
}

/// The lowercase hex digest of a file's contents.
fn sha_hex<D: Digest>(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(D::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// The venv's python (`target/jupyter-venv/bin/python`).
pub fn venv_python() -> PathBuf {
    root().join(VENV).join("bin/python")
}

/// The venv's `bin/<name>` (jupyter, ...).
pub fn venv_bin(name: &str) -> PathBuf {
    root().join(VENV).join("bin").join(name)
}

/// Which of `packages` ("name==version") the venv lacks or has at another version; all of
/// them when there is no venv.
pub fn venv_missing(packages: &[&str]) -> Vec<String> {
    const CHECK: &str = "import sys, importlib.metadata as m\n\
        for spec in sys.argv[1:]:\n    name, want = spec.split('==')\n    try:\n        have = m.version(name)\n    \
        except m.PackageNotFoundError:\n        have = None\n    if have != want:\n        print(spec)\n";
    let python = venv_python();
    if !python.is_file() {
        return packages.iter().map(|s| s.to_string()).collect();
    }
    match stdout_of(Command::new(&python).arg("-c").arg(CHECK).args(packages)) {
        Some(out) => out.lines().map(str::to_owned).collect(),
        None => packages.iter().map(|s| s.to_string()).collect(),
    }
}

/// The Python venv with `packages` at their pinned versions, created and filled if needed.
pub fn venv(packages: &[&str]) -> Result<()> {
    let missing = venv_missing(packages);
    if missing.is_empty() {
        return Ok(());
    }
    if !venv_python().is_file() {
        println!("the Jupyter virtual environment {VENV} is missing: creating it");
        let python =
            find_tool("python3").context("python3 is missing: install Python 3 with its venv module")?;
        run(Command::new(python).args(["-m", "venv", VENV]).current_dir(root()))?;
    }
    println!("installing into {VENV}: {}", missing.join(" "));
    run(Command::new(venv_python())
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
        .args(&missing))?;
    let still = venv_missing(packages);
    if !still.is_empty() {
        bail!("pip ran, but {VENV} still lacks {}", still.join(" "));
    }
    Ok(())
}

/// The command (argv) of the registered `rust` kernelspec, if Jupyter knows one.
pub fn rust_kernel_argv() -> Option<Vec<String>> {
    let json = stdout_of(Command::new(venv_bin("jupyter")).args(["kernelspec", "list", "--json"]))?;
    let specs: serde_json::Value = serde_json::from_str(&json).ok()?;
    let argv = specs["kernelspecs"]["rust"]["spec"]["argv"].as_array()?;
    Some(argv.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect())
}

/// The `rust` kernelspec registered, pointing at an evcxr_jupyter that exists.
pub fn rust_kernel(evcxr: &std::path::Path) -> Result<()> {
    let usable = rust_kernel_argv()
        .and_then(|argv| argv.first().cloned())
        .is_some_and(|exe| std::path::Path::new(&exe).is_file());
    if usable {
        return Ok(());
    }
    println!("the Jupyter kernel `rust` is not registered: registering it");
    run(Command::new(evcxr).arg("--install"))?;
    if rust_kernel_argv().is_none() {
        bail!("`evcxr_jupyter --install` ran, but `jupyter kernelspec list` shows no `rust` kernel");
    }
    Ok(())
}

/// Everything the notebooks need: evcxr, the venv with `packages`, the registered kernel.
pub fn jupyter(packages: &[&str]) -> Result<()> {
    let evcxr = evcxr()?;
    venv(packages)?;
    rust_kernel(&evcxr)
}
