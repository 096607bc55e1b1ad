//! The notebooks: executed headlessly by `cargo xtask test`, opened in JupyterLab by
//! `cargo xtask notebooks`.

use crate::install::{self, LAB_PACKAGES, RUNNER_PACKAGES};
use crate::process::{root, run, stdout_of};
use anyhow::{Result, bail};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Per-cell limit: the first cell of a notebook compiles the chapter crate and its
/// dependencies (plotters, cudarc, ...) from nothing, minutes on a 2-core machine.
const CELL_TIMEOUT_S: u32 = 1200;

/// evcxr's start-up commands, read from `$EVCXR_CONFIG_DIR/init.evcxr` by every kernel we start.
/// `:cache` keeps compiled dependencies (up to 2000 MB in ~/.cache/evcxr) so that the second
/// notebook, and every rerun, does not compile ndarray, plotters and cudarc again: measured
/// here, a notebook using attn-support took 82 s cold and 15–27 s with the cache filled.
const INIT_EVCXR: &str = ":cache 2000\n";

/// evcxr's build folder for the headless runs. Kept (not a fresh temporary folder per kernel),
/// so cargo finds the chapter crates already built by the previous notebook; the cache above
/// only covers registry crates. Only for runs one after another: two kernels at once would
/// share it, so `cargo xtask notebooks` leaves it unset. It must lie outside the repository:
/// cargo refuses a package inside our workspace's folder that is not one of its members.
/// An `EVCXR_TMPDIR` already set in the environment wins, so that two runs at once can each
/// be given a folder of their own.
fn evcxr_build_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("EVCXR_TMPDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut hasher = std::hash::DefaultHasher::new();
    root().hash(&mut hasher);
    let dir = std::env::temp_dir().join(format!("attn-book-evcxr-build-{:016x}", hasher.finish()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[derive(clap::Args)]
pub struct OpenArgs {
    /// Arguments passed on to `jupyter lab`, after `--` (e.g. `-- --no-browser --port 8890`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    jupyter_args: Vec<String>,
}

/// The chapter notebooks of the repository, `notebooks/*.ipynb`, in name order.
pub fn discover() -> Result<Vec<PathBuf>> {
    ipynb_in(&root().join("notebooks"))
}

/// The exercise solutions, `notebooks/solutions/*.ipynb`, in name order.
pub fn discover_solutions() -> Result<Vec<PathBuf>> {
    ipynb_in(&root().join("notebooks/solutions"))
}

/// Every notebook, chapters first then solutions, whose file name contains one of `filters`
/// (all of them when `filters` is empty).
pub fn select(filters: &[String]) -> Result<Vec<PathBuf>> {
    let mut all = discover()?;
    all.extend(discover_solutions()?);
    let name = |p: &PathBuf| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let chosen: Vec<PathBuf> = all
        .into_iter()
        .filter(|p| filters.is_empty() || filters.iter().any(|f| name(p).contains(f)))
        .collect();
    if chosen.is_empty() {
        bail!("no notebook's name contains any of {filters:?}");
    }
    Ok(chosen)
}

fn ipynb_in(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ipynb"))
        .collect();
    found.sort();
    Ok(found)
}

/// `EVCXR_CONFIG_DIR` for the kernels we start: a folder under target/ holding `init.evcxr`.
fn evcxr_config_dir() -> Result<PathBuf> {
    let dir = root().join("target/evcxr-config");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("init.evcxr"), INIT_EVCXR)?;
    Ok(dir)
}

#[derive(clap::Args)]
pub struct RecordArgs {
    /// Record only the notebooks whose file name contains one of these (e.g. `03` or
    /// `solutions`); all of them when none is given.
    filters: Vec<String>,
}

/// `cargo xtask record-notebooks`: execute notebooks and, where every cell passed, write their
/// outputs into the committed files (what readers see without running them).
pub fn record(args: &RecordArgs) -> Result<()> {
    let chosen = select(&args.filters)?;
    install::jupyter(RUNNER_PACKAGES)?;
    execute(&chosen, true)
}

/// Execute `notebooks` with the Rust kernel (installed beforehand by
/// `install::jupyter(RUNNER_PACKAGES)`); fail if any cell of any notebook failed. Executed
/// copies go to `target/notebooks/` for inspection; with `record`, a notebook whose cells all
/// passed also gets its outputs written into its committed file.
pub fn execute(notebooks: &[PathBuf], record: bool) -> Result<()> {
    let config_dir = evcxr_config_dir()?;
    let build_dir = evcxr_build_dir()?;
    let mut failed = Vec::new();
    let mut times = Vec::new();
    for notebook in notebooks {
        let name = notebook.file_name().expect("a notebook file").to_owned();
        let sub = if notebook.parent().is_some_and(|p| p.ends_with("solutions")) { "solutions" } else { "" };
        let copy = root().join("target/notebooks").join(sub).join(&name);
        let start = Instant::now();
        let mut cmd = Command::new(install::venv_python());
        cmd.arg(root().join("xtask/notebook_runner.py"))
            .arg(notebook)
            .arg(&copy)
            .args(["--timeout", &CELL_TIMEOUT_S.to_string()])
            .env("EVCXR_CONFIG_DIR", &config_dir)
            .env("EVCXR_TMPDIR", &build_dir);
        if record {
            cmd.arg("--record");
        }
        if let Err(e) = run(&mut cmd) {
            println!("FAILED: {e:#}; the executed copy is {}", copy.display());
            failed.push(name.to_string_lossy().into_owned());
        }
        times.push((name, start.elapsed()));
    }
    for (name, took) in &times {
        println!("{:>8.1} s  {}", took.as_secs_f64(), Path::new(name).display());
    }
    if !failed.is_empty() {
        bail!("notebooks with failing cells: {}", failed.join(", "));
    }
    Ok(())
}

/// Install what is missing, then start JupyterLab in notebooks/ (it runs until stopped).
pub fn open(args: &OpenArgs) -> Result<()> {
    let packages: Vec<&str> = RUNNER_PACKAGES.iter().chain(LAB_PACKAGES).copied().collect();
    install::jupyter(&packages)?;
    let mut cmd = Command::new(install::venv_bin("jupyter"));
    cmd.arg("lab")
        .arg(format!("--notebook-dir={}", root().join("notebooks").display()))
        .args(&args.jupyter_args)
        .env("EVCXR_CONFIG_DIR", evcxr_config_dir()?);
    // Jupyter refuses to start as root unless told; containers and CI machines often are root.
    if stdout_of(Command::new("id").arg("-u")).as_deref() == Some("0") {
        cmd.arg("--allow-root");
    }
    println!("starting JupyterLab with the Rust kernel; stop it with Ctrl-C");
    run(&mut cmd)
}
