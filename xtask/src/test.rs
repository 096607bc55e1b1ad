//! `cargo xtask test`: the one test command of the project (README, CONTRIBUTING and `.ci/run`
//! name it). Steps run in order and the first failure stops the run.

use crate::install::{self, RUNNER_PACKAGES};
use crate::process::{StepTimes, cargo, run};
use crate::{book, notebooks};
use anyhow::Result;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    Fmt,
    Clippy,
    Test,
    Notebooks,
    Book,
}

#[derive(clap::Args)]
pub struct Args {
    /// Steps to leave out, for quicker local iterations (CI runs them all): fmt, clippy, test,
    /// notebooks, book.
    #[arg(long, value_enum, value_delimiter = ',')]
    skip: Vec<Step>,
}

pub fn run_all(args: &Args) -> Result<()> {
    let mut times = StepTimes::default();
    let result = steps(args, &mut times);
    times.print();
    match &result {
        Ok(()) => println!("\ncargo xtask test: all steps passed"),
        Err(e) => println!("\ncargo xtask test FAILED: {e:#}"),
    }
    result
}

fn steps(args: &Args, times: &mut StepTimes) -> Result<()> {
    let wanted = |step| !args.skip.contains(&step);
    if wanted(Step::Fmt) {
        times.step("rustfmt check", || run(cargo().args(["fmt", "--all", "--", "--check"])))?;
    }
    if wanted(Step::Clippy) {
        times.step("clippy", || {
            run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
        })?;
    }
    if wanted(Step::Test) {
        // Release: the numeric property tests run many times faster optimised, which pays
        // for the longer compile (see CONTRIBUTING.md for the measurement), and the GPU
        // bundle builds the same release artifacts.
        times.step("cargo test (release)", || run(cargo().args(["test", "--workspace", "--release"])))?;
    }
    // The tools are installed in steps of their own, so the table tells installing (minutes,
    // once per machine) from running.
    if wanted(Step::Notebooks) {
        let found = notebooks::discover()?;
        if found.is_empty() {
            println!("\nno notebooks in notebooks/: nothing to execute");
        } else {
            times.step("notebook tools", || install::jupyter(RUNNER_PACKAGES))?;
            times.step("notebooks", || notebooks::execute(&found))?;
        }
    }
    if wanted(Step::Book) {
        times.step("book tools", || install::mdbook().map(drop))?;
        times.step("book", book::build)?;
    }
    Ok(())
}
