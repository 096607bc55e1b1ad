//! `cargo xtask doctor`: one OK/FAIL line per tool, with the command that fixes a FAIL.
//!
//! It is a diagnosis, so it always exits 0: `cargo xtask test` installs the Jupyter and book
//! tools itself, and CUDA is optional (without it the GPU parts are skipped, not failed).

use crate::install::{
    self, EVCXR_VERSION, LAB_PACKAGES, MATHJAX_VERSION, MDBOOK_VERSION, RUNNER_PACKAGES, VENV,
};
use crate::process::{cargo, find_tool, stdout_of};
use attn_support::cudarc;
use attn_support::gpu::Gpu;
use std::process::Command;

/// One line of the report: OK, FAIL (needed by `cargo xtask test`) or NOTE (optional).
fn report(ok: bool, required: bool, what: &str, detail: &str, fix: &str) {
    let tag = match (ok, required) {
        (true, _) => "OK  ",
        (false, true) => "FAIL",
        (false, false) => "NOTE",
    };
    println!("{tag} {what:<22} {detail}");
    if !ok && !fix.is_empty() {
        println!("     {:<22} fix: {fix}", "");
    }
}

pub fn run() -> anyhow::Result<()> {
    rust_tools();
    jupyter_tools();
    let mdbook = find_tool("mdbook").and_then(|p| stdout_of(Command::new(p).arg("--version")));
    let wanted = format!("mdbook v{MDBOOK_VERSION}");
    let detail = mdbook.clone().unwrap_or_else(|| "not found".into());
    report(
        mdbook.as_deref() == Some(wanted.as_str()),
        true,
        "mdbook",
        &detail,
        &install::mdbook_install_command(),
    );
    mathjax();
    cuda();
    println!("\nFAIL lines are installed by `cargo xtask test` itself; NOTE lines are optional.");
    Ok(())
}

fn rust_tools() {
    for (what, args, fix) in [
        ("cargo", &["--version"][..], "install Rust with rustup: https://rustup.rs"),
        ("rustfmt", &["fmt", "--version"][..], "rustup component add rustfmt"),
        ("clippy", &["clippy", "--version"][..], "rustup component add clippy"),
    ] {
        let version = stdout_of(cargo().args(args));
        report(version.is_some(), true, what, version.as_deref().unwrap_or("not found"), fix);
    }
    let rustc = stdout_of(Command::new("rustc").arg("--version"));
    report(rustc.is_some(), true, "rustc", rustc.as_deref().unwrap_or("not found"), "rustup default stable");
}

fn jupyter_tools() {
    let evcxr = find_tool("evcxr_jupyter");
    let version = install::cargo_installed_version("evcxr_jupyter");
    let detail = match (&evcxr, &version) {
        (Some(p), Some(v)) => format!("{v} at {}", p.display()),
        (Some(p), None) => format!("{} (version unknown)", p.display()),
        (None, _) => "not found".into(),
    };
    let ok = evcxr.is_some() && version.as_deref().is_none_or(|v| v == EVCXR_VERSION);
    report(ok, true, "evcxr_jupyter", &detail, &install::evcxr_install_command());

    let missing = install::venv_missing(RUNNER_PACKAGES);
    let detail = if missing.is_empty() { format!("{VENV}: nbclient and friends") } else { missing.join(" ") };
    let fix = format!("python3 -m venv {VENV} && {VENV}/bin/pip install {}", RUNNER_PACKAGES.join(" "));
    report(missing.is_empty(), true, "Jupyter venv", &detail, &fix);

    let kernel = if missing.is_empty() { install::rust_kernel_argv() } else { None };
    let detail = kernel.as_ref().and_then(|a| a.first().cloned()).unwrap_or_else(|| "not registered".into());
    report(kernel.is_some(), true, "Jupyter kernel `rust`", &detail, "evcxr_jupyter --install");

    let lab = install::venv_missing(LAB_PACKAGES).is_empty();
    let detail = if lab { LAB_PACKAGES.join(" ") } else { "not installed".into() };
    report(lab, false, "JupyterLab", &detail, "cargo xtask notebooks (installs it)");
}

/// MathJax for the book: `cargo xtask book` (and `test`) fetch it; plain `mdbook build docs`
/// fails without it.
fn mathjax() {
    let file = crate::process::root().join(crate::book::MATHJAX_FILE);
    let ok = install::mathjax_is_current(&file);
    let detail = if ok {
        format!("{MATHJAX_VERSION} in docs/mathjax/ (hash checked)")
    } else if file.is_file() {
        "docs/mathjax/tex-svg-full.js differs from the pinned file".into()
    } else {
        "not fetched".into()
    };
    report(ok, true, "MathJax (book)", &detail, "cargo xtask book (fetches it from the npm registry)");
}

fn cuda() {
    // SAFETY: these only try to dlopen the libraries; nothing is called through them yet.
    let driver = unsafe { cudarc::driver::sys::is_culib_present() };
    let nvrtc = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    let mut version = 0;
    // SAFETY: the library is present (checked above); cuDriverGetVersion needs no cuInit and
    // writes one int.
    let driver_detail =
        if driver && unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) }.result().is_ok() {
            format!("libcuda.so, CUDA {}.{}", version / 1000, version % 1000 / 10)
        } else {
            "libcuda.so not found".into()
        };
    report(
        driver,
        false,
        "CUDA driver",
        &driver_detail,
        "install the NVIDIA driver (GPU parts are skipped without)",
    );
    let (mut major, mut minor) = (0, 0);
    // SAFETY: as above, for libnvrtc; nvrtcVersion writes two ints.
    let nvrtc_ok =
        nvrtc && unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) }.result().is_ok();
    let detail =
        if nvrtc_ok { format!("libnvrtc.so {major}.{minor}") } else { "libnvrtc.so not found".into() };
    report(
        nvrtc_ok,
        false,
        "NVRTC",
        &detail,
        "install the CUDA toolkit and put its lib64 on LD_LIBRARY_PATH",
    );
    match Gpu::open() {
        Ok(gpu) => {
            let (major, minor) = gpu.compute_capability();
            let memory =
                gpu.memory().map(|(_, total)| format!(", {:.0} GiB", total as f64 / (1u64 << 30) as f64));
            let detail =
                format!("{}, compute capability {major}.{minor}{}", gpu.name(), memory.unwrap_or_default());
            report(true, false, "GPU", &detail, "");
        }
        Err(e) => report(false, false, "GPU", &format!("{e} (GPU parts are skipped)"), ""),
    }
}
