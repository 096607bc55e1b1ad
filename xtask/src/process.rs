//! Running commands and finding tools: every command is echoed before it runs, and a failure
//! names the command that failed.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The repository root (the folder above `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the repository").to_path_buf()
}

/// `cargo` as the one that runs us (`$CARGO`), so the same toolchain does every step.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// The command line as a person would type it (`cargo` for the toolchain's cargo).
pub fn display(cmd: &Command) -> String {
    let program = cmd.get_program();
    let is_cargo = std::env::var_os("CARGO").is_some_and(|c| c == program);
    let mut s = if is_cargo { "cargo".into() } else { program.to_string_lossy().into_owned() };
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.contains(' ') { s += &format!(" '{arg}'") } else { s += &format!(" {arg}") }
    }
    s
}

/// Run `cmd` with its output going to ours; fail naming the command if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    println!("$ {}", display(cmd));
    let status = cmd.status().with_context(|| format!("could not start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Like [`run`], but also hands every line of the command's stdout to `on_line` as it passes.
pub fn run_watching(cmd: &mut Command, mut on_line: impl FnMut(&str)) -> Result<()> {
    use std::io::BufRead;
    println!("$ {}", display(cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", display(cmd)))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        on_line(&line);
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Run `cmd` quietly and return its output, whether it succeeded or not.
pub fn capture(cmd: &mut Command) -> Result<Output> {
    cmd.output().with_context(|| format!("could not start `{}`", display(cmd)))
}

/// Run `cmd` quietly and return its stdout if it succeeded, `None` otherwise.
pub fn stdout_of(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Where `name` is: on PATH, or in cargo's bin folder (where `cargo install` puts it, which a
/// fresh shell may not have on PATH yet).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|dir| dir.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain(cargo_bin().map(|d| d.join(name))).find(|p| p.is_file())
}

/// `$CARGO_HOME/bin`, by default `~/.cargo/bin`.
fn cargo_bin() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("bin"))
}

/// Print the `==> name` banner of a step.
pub fn announce(name: &str) {
    println!("\n==> {name}");
}

/// Durations of the steps of one task, printed as a table at the end.
#[derive(Default)]
pub struct StepTimes {
    steps: Vec<(String, Duration, bool)>,
}

impl StepTimes {
    /// Announce `name`, run `f`, and record how long it took and whether it passed.
    pub fn step(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
        announce(name);
        let start = Instant::now();
        let result = f();
        self.steps.push((name.to_owned(), start.elapsed(), result.is_ok()));
        result.with_context(|| format!("step `{name}` failed"))
    }

    pub fn print(&self) {
        println!("\n{:<28} {:>9}  result", "step", "seconds");
        for (name, took, ok) in &self.steps {
            println!("{name:<28} {:>9.1}  {}", took.as_secs_f64(), if *ok { "ok" } else { "FAILED" });
        }
        let total: Duration = self.steps.iter().map(|s| s.1).sum();
        println!("{:<28} {:>9.1}", "total", total.as_secs_f64());
    }
}
