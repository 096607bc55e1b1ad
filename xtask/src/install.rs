//! Installing the tools that the notebooks and the book need, only when missing, and saying so.
//! Versions are pinned so that a fresh CI machine gets what was tested here.

use crate::process::{cargo, find_tool, root, run, stdout_of};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Command;

/// The Jupyter kernel for Rust (it registers a kernelspec named `rust`).
pub const EVCXR_VERSION: &str = "0.22.0";
/// The book builder.
pub const MDBOOK_VERSION: &str = "0.5.4";
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
