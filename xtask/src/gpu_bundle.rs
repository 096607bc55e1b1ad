//! `cargo xtask gpu`: everything the GPU machine runs, built here (it has no Rust).
//!
//! ```text
//! target/gpu-bundle/
//!   bin/<chNN>                          chapter binaries, release, symbols stripped
//!   tests/<crate>--<target>             release test binaries of the chapter crates' GPU test
//!                                       targets (`*gpu*`: the others run on any machine, CI
//!                                       included, and would only use up the 64 MiB)
//!   baselines/torch_*.py, *.txt         the PyTorch baselines and the benchmark shapes
//!   run.sh, summary.py, sass_check.sh   what to run there (see the header of xtask/gpu/run.sh)
//!   ncu_tables.py, ncu_fused_shapes.txt the Nsight Compute steps: their tables and the shapes
//!                                       of chapter 4's Fused profile
//!   MANIFEST.txt                        commit, date, toolchain, chapters, files and sizes
//! ```
//!
//! `ATTN_CHAPTERS="ch04 ch12"` bundles only those chapters' binaries and tests (and
//! attn-support's tests), as run.sh runs only them; the device tool carries the bundle with the
//! working tree, 64 MiB in all, which every chapter's bundle no longer fits.

use crate::process::{capture, cargo, display, root, stdout_of};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of xtask/gpu/ that travel in the bundle (its tests and samples stay here).
const BUNDLED_SCRIPTS: [&str; 5] =
    ["run.sh", "summary.py", "sass_check.sh", "ncu_tables.py", "ncu_fused_shapes.txt"];

/// Larger than this and copying the bundle to the GPU machine gets slow (the device tool
/// carries at most 64 MiB with the working tree).
const MAX_BUNDLE_BYTES: u64 = 60 << 20;

/// What the device tool carries: the working tree (tracked and untracked-not-ignored files)
/// and the carried bundle together.
const DEVICE_CARRY_BYTES: u64 = 64 << 20;

/// `ATTN_CHAPTERS="ch04 ch12"` (as run.sh reads it): bundle only these chapters' binaries and
/// test binaries, plus attn-support's tests; unset or empty, every chapter's.
fn chapter_filter() -> Option<Vec<String>> {
    let chapters: Vec<String> =
        std::env::var("ATTN_CHAPTERS").unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    (!chapters.is_empty()).then_some(chapters)
}

/// Whether the bundled executable `name` (`chNN` or `<crate>--<target>`) belongs to the chosen
/// chapters: the same rule as run.sh's `selected`.
fn selected(name: &str, chapters: &Option<Vec<String>>) -> bool {
    match chapters {
        None => true,
        Some(list) => {
            name.starts_with("attn-support") || list.iter().any(|c| name.get(..4) == Some(c.as_str()))
        }
    }
}

/// One built executable and the name it gets in the bundle.
struct Artifact {
    name: String,
    path: PathBuf,
}

pub fn build() -> Result<()> {
    let tests = executables(&["test", "--no-run"], true)?;
    let bins = executables(&["build", "--bins"], false)?;
    let bundle = root().join("target/gpu-bundle");
    if bundle.exists() {
        std::fs::remove_dir_all(&bundle).with_context(|| format!("removing the old {}", bundle.display()))?;
    }
    for dir in ["bin", "tests", "baselines"] {
        std::fs::create_dir_all(bundle.join(dir))?;
    }
    let have_strip = stdout_of(Command::new("strip").arg("--version")).is_some();
    if !have_strip {
        println!("warning: `strip` not found, binaries are copied with their debug info");
    }
    let chapters = chapter_filter();
    let (bins, tests): (Vec<&Artifact>, Vec<&Artifact>) = (
        bins.iter().filter(|a| selected(&a.name, &chapters)).collect(),
        tests.iter().filter(|a| selected(&a.name, &chapters)).collect(),
    );
    for (dir, artifacts) in [("bin", &bins), ("tests", &tests)] {
        for a in artifacts {
            copy_stripped(&a.path, &bundle.join(dir).join(&a.name), have_strip)?;
        }
    }
    let xtask = root().join("xtask");
    for entry in std::fs::read_dir(xtask.join("baselines"))? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::copy(&path, bundle.join("baselines").join(path.file_name().expect("a file")))?;
        }
    }
    for file in BUNDLED_SCRIPTS {
        std::fs::copy(xtask.join("gpu").join(file), bundle.join(file))?;
    }
    let size = write_manifest(&bundle, &chapters)?;
    println!("{}", std::fs::read_to_string(bundle.join("MANIFEST.txt"))?);
    let mib = size as f64 / (1 << 20) as f64;
    if size > MAX_BUNDLE_BYTES {
        bail!("the bundle is {mib:.1} MiB, over the {} MiB limit", MAX_BUNDLE_BYTES >> 20);
    }
    println!("target/gpu-bundle: {} binaries, {} test binaries, {mib:.1} MiB", bins.len(), tests.len());
    let tree = working_tree_bytes()?;
    let carried = (size + tree) as f64 / (1 << 20) as f64;
    println!(
        "with the working tree ({:.1} MiB): {carried:.1} MiB of the {} MiB the device tool carries",
        tree as f64 / (1 << 20) as f64,
        DEVICE_CARRY_BYTES >> 20
    );
    if size + tree > DEVICE_CARRY_BYTES {
        println!(
            "warning: too large for the device tool; bundle fewer chapters, e.g. \
             ATTN_CHAPTERS=\"ch04 ch12\" cargo xtask gpu (run.sh then runs those alone)"
        );
    }
    println!("on the GPU machine, from the repository root: bash target/gpu-bundle/run.sh [OUTDIR]");
    Ok(())
}

/// Bytes of the files the device tool sends besides a carried path: tracked files and
/// untracked ones git does not ignore.
fn working_tree_bytes() -> Result<u64> {
    let out = capture(
        Command::new("git")
            .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
            .current_dir(root()),
    )?;
    if !out.status.success() {
        bail!("git ls-files failed ({})", out.status);
    }
    let paths = out.stdout.split(|&b| b == 0).filter(|p| !p.is_empty());
    Ok(paths
        .filter_map(|p| std::fs::metadata(root().join(String::from_utf8_lossy(p).as_ref())).ok())
        .map(|m| m.len())
        .sum())
}

/// Build with `cargo <args> --release --workspace --exclude xtask` and return the executables
/// of the chapter crates (test executables when `tests`, binaries otherwise), read from cargo's
/// JSON messages.
fn executables(args: &[&str], tests: bool) -> Result<Vec<Artifact>> {
    let mut cmd = cargo();
    cmd.args(args).args(["--release", "--workspace", "--exclude", "xtask", "--message-format=json"]);
    cmd.stderr(std::process::Stdio::inherit());
    println!("$ {}", display(&cmd));
    let out = capture(&mut cmd)?;
    if !out.status.success() {
        bail!("`{}` failed ({})", display(&cmd), out.status);
    }
    let chapters = root().join("chapters");
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(exe), Some(manifest)) = (msg["executable"].as_str(), msg["manifest_path"].as_str()) else {
            continue;
        };
        let target = msg["target"]["name"].as_str().unwrap_or("unknown");
        let kind = msg["target"]["kind"][0].as_str().unwrap_or("");
        // The unit-test harness of a binary target holds no tests in this project's layout
        // (tests live in the library and tests/), so it is left out; so are the test targets
        // that need no GPU (every test that opens one is in a target named `*gpu*`).
        if msg["reason"] != "compiler-artifact"
            || msg["profile"]["test"].as_bool() != Some(tests)
            || !Path::new(manifest).starts_with(&chapters)
            || (tests && (kind == "bin" || !target.contains("gpu")))
        {
            continue;
        }
        let name = if !tests {
            target.to_owned()
        } else {
            let package = package_name(msg["package_id"].as_str().unwrap_or(""), manifest);
            let part = if kind == "lib" { "lib".to_owned() } else { target.to_owned() };
            format!("{package}--{part}")
        };
        found.push(Artifact { name, path: PathBuf::from(exe) });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The package name of a cargo package id: `path+file:///…/ch02-x#0.1.0` (the folder is the
/// name) or `path+file:///…/folder#name@0.1.0`.
fn package_name(package_id: &str, manifest: &str) -> String {
    if let Some((_, fragment)) = package_id.split_once('#')
        && let Some((name, _)) = fragment.split_once('@')
    {
        return name.to_owned();
    }
    let dir = Path::new(manifest).parent().and_then(|d| d.file_name());
    dir.map(|d| d.to_string_lossy().into_owned()).unwrap_or_else(|| "unknown".into())
}

fn copy_stripped(from: &Path, to: &Path, strip: bool) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    if strip {
        // Debug info and symbols are most of a binary's size; panics still print their message
        // and location (the backtrace loses function names).
        let status = Command::new("strip").arg("--strip-all").arg(to).status()?;
        if !status.success() {
            bail!("strip --strip-all {} failed", to.display());
        }
    }
    Ok(())
}

/// Write MANIFEST.txt (provenance and every file with its size); return the bundle's size.
fn write_manifest(bundle: &Path, chapters: &Option<Vec<String>>) -> Result<u64> {
    let commit = stdout_of(Command::new("git").args(["rev-parse", "HEAD"]).current_dir(root()))
        .unwrap_or_else(|| "unknown".into());
    let dirty = stdout_of(Command::new("git").args(["status", "--porcelain"]).current_dir(root()))
        .is_some_and(|s| !s.is_empty());
    let date = stdout_of(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])).unwrap_or_default();
    let rustc = stdout_of(Command::new("rustc").arg("--version")).unwrap_or_default();
    let mut files = Vec::new();
    list_files(bundle, bundle, &mut files)?;
    files.sort();
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    let mut text = format!(
        "attention book GPU bundle: commit {commit}{}\nbuilt {date} with {rustc}\n\
         run from the repository root: bash target/gpu-bundle/run.sh [OUTDIR]\nchapters: {}\n\n",
        if dirty { " (with uncommitted changes)" } else { "" },
        chapters.as_ref().map_or("all".to_owned(), |c| c.join(" ")),
    );
    for (path, size) in &files {
        text += &format!("{:>10}  {path}\n", size);
    }
    text += &format!("{total:>10}  total bytes\n");
    std::fs::write(bundle.join("MANIFEST.txt"), &text)?;
    Ok(total + text.len() as u64)
}

fn list_files(base: &Path, dir: &Path, out: &mut Vec<(String, u64)>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            list_files(base, &path, out)?;
        } else {
            let rel = path.strip_prefix(base).expect("under the bundle").display().to_string();
            out.push((rel, entry.metadata()?.len()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::BUNDLED_SCRIPTS;
    use crate::process::root;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The scripts run on the GPU machine only, so their syntax and their parsers are checked
    /// here: `bash -n` on the shell scripts, and the Python tests of ncu_tables.py (on
    /// synthetic samples in the layout ncu writes).
    #[test]
    fn gpu_scripts_parse_and_their_tests_pass() {
        let dir = root().join("xtask/gpu");
        for file in BUNDLED_SCRIPTS.iter().filter(|f| f.ends_with(".sh")) {
            let out = Command::new("bash").arg("-n").arg(dir.join(file)).output().expect("running bash");
            assert!(out.status.success(), "bash -n {file}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let out = Command::new("python3")
            .args(["-m", "unittest", "discover", "-s"])
            .arg(&dir)
            .args(["-p", "test_*.py"])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("running python3 (the notebooks need it too)");
        assert!(out.status.success(), "python tests of xtask/gpu:\n{}", String::from_utf8_lossy(&out.stderr));
        for file in BUNDLED_SCRIPTS {
            assert!(dir.join(file).is_file(), "xtask/gpu/{file} is bundled but missing");
        }
    }

    #[test]
    fn attn_chapters_selects_what_is_bundled_as_run_sh_does() {
        let some = Some(vec!["ch04".to_string(), "ch12".to_string()]);
        for (name, want) in [
            ("ch04", true),
            ("ch04-attention-backends--gpu", true),
            ("ch12-performance-tuning--roofline_measured", true),
            ("attn-support--gpu", true),
            ("ch01", false),
            ("ch02-scaled-dot-product--gpu", false),
        ] {
            assert_eq!(super::selected(name, &some), want, "{name}");
            assert!(super::selected(name, &None), "{name} without ATTN_CHAPTERS");
        }
    }

    /// A bundle of stand-ins (chapter binaries and a GPU test binary that only answer `--help`
    /// and `--list`) beside the real scripts, in a fresh temporary folder.
    fn stand_in_bundle(name: &str) -> PathBuf {
        let bundle = std::env::temp_dir().join(format!("attn-bundle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&bundle);
        for sub in ["bin", "tests", "baselines"] {
            std::fs::create_dir_all(bundle.join(sub)).unwrap();
        }
        for file in BUNDLED_SCRIPTS {
            std::fs::copy(root().join("xtask/gpu").join(file), bundle.join(file)).unwrap();
        }
        let stub = "#!/bin/sh\n[ \"$1\" = --help ] && echo '--out DIR'\n[ \"$1\" = --list ] && printf 'a: test\\nb: test\\n'\nexit 0\n";
        for exe in ["bin/ch04", "bin/ch12", "tests/ch04-attention-backends--gpu"] {
            std::fs::write(bundle.join(exe), stub).unwrap();
            Command::new("chmod").arg("+x").arg(bundle.join(exe)).status().unwrap();
        }
        std::fs::write(bundle.join("MANIFEST.txt"), "stand-in bundle\n").unwrap();
        bundle
    }

    /// The steps a dry run of run.sh lists under `env`, or its exit status when it refuses.
    fn dry_run_steps(bundle: &Path, env: &[(&str, &str)]) -> Result<Vec<String>, i32> {
        let out_dir = bundle.join("out");
        let _ = std::fs::remove_dir_all(&out_dir);
        let mut cmd = Command::new("bash");
        cmd.arg(bundle.join("run.sh")).arg(&out_dir).env("ATTN_DRY_RUN", "1").env_remove("OUT");
        for var in ["ATTN_SANITIZE", "ATTN_SANITIZE_JOBS", "ATTN_SANITIZER", "ATTN_CHAPTERS", "ATTN_PROFILE"]
        {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        let status = cmd.output().expect("running bash").status;
        if !status.success() {
            return Err(status.code().unwrap_or(-1));
        }
        let steps = std::fs::read_to_string(out_dir.join("logs/steps.tsv")).unwrap();
        Ok(steps.lines().map(|l| l.split('\t').next().unwrap_or("").to_string()).collect())
    }

    #[test]
    fn run_sh_knobs_choose_the_steps() {
        let bundle = stand_in_bundle("knobs");
        let profile =
            ["device", "ncu-fused-ch04", "ncu-fused-table", "roofline-timed-ch12", "ncu-roofline-ch12"];
        let profile: Vec<String> = profile
            .iter()
            .chain(&["roofline-dram-ch12", "figures-ch12", "sanitizer"])
            .map(|s| s.to_string())
            .collect();
        assert_eq!(dry_run_steps(&bundle, &[("ATTN_PROFILE", "only")]).unwrap(), profile);

        let sanitizers =
            ["device", "memcheck-ch04-attention-backends--gpu-a", "memcheck-ch04-attention-backends--gpu-b"];
        let only = dry_run_steps(&bundle, &[("ATTN_RUN_SANITIZERS", "only")]).unwrap();
        assert_eq!(only[..3], sanitizers.map(String::from), "{only:?}");
        assert_eq!(only.len(), 5, "memcheck and racecheck of tests a and b: {only:?}");
        // The old name still works, and says so in the summary.
        assert_eq!(dry_run_steps(&bundle, &[("ATTN_SANITIZE", "only")]).unwrap(), only);
        let summary = std::fs::read_to_string(bundle.join("out/summary.md")).unwrap();
        assert!(summary.contains("ATTN_SANITIZE is deprecated: use ATTN_RUN_SANITIZERS=only"), "{summary}");

        let all = dry_run_steps(&bundle, &[("ATTN_CHAPTERS", "ch04")]).unwrap();
        for name in [
            "test-ch04-attention-backends--gpu",
            "bin-ch04",
            "ncu-fused-ch04",
            "racecheck-ch04-attention-backends--gpu-b",
        ] {
            assert!(all.contains(&name.to_string()), "{name} missing from {all:?}");
        }
        assert!(!all.iter().any(|s| s.contains("ch12")), "ATTN_CHAPTERS=ch04 ran {all:?}");
        let no_profile = dry_run_steps(&bundle, &[("ATTN_PROFILE", "0")]).unwrap();
        assert!(!no_profile.iter().any(|s| s.starts_with("ncu")), "{no_profile:?}");

        // ATTN_SANITIZER is the tests' flag, not a knob: the run unsets it and says so.
        dry_run_steps(&bundle, &[("ATTN_SANITIZER", "1"), ("ATTN_PROFILE", "only")]).unwrap();
        let summary = std::fs::read_to_string(bundle.join("out/summary.md")).unwrap();
        assert!(summary.contains("ATTN_SANITIZER was set by the caller and is unset"), "{summary}");

        for bad in [("ATTN_PROFILE", "yes"), ("ATTN_RUN_SANITIZERS", "2"), ("ATTN_RUN_SANITIZER_JOBS", "0")] {
            assert_eq!(dry_run_steps(&bundle, &[bad]), Err(2), "{bad:?} accepted");
        }
        std::fs::remove_dir_all(&bundle).ok();
    }

    #[test]
    fn run_sh_runs_chapters_5_and_6_benchmarks_peers_and_profiles() {
        let bundle = stand_in_bundle("ch05-ch06");
        let stub = std::fs::read(bundle.join("bin/ch04")).unwrap();
        for exe in ["bin/ch05", "bin/ch06"] {
            std::fs::write(bundle.join(exe), &stub).unwrap();
            Command::new("chmod").arg("+x").arg(bundle.join(exe)).status().unwrap();
        }
        let steps = dry_run_steps(&bundle, &[("ATTN_CHAPTERS", "ch05 ch06")]).unwrap();
        for name in [
            "bin-ch05",
            "bench-softmax-ch05",
            "bench-qkv-ch05",
            "bench-epilogue-ch05",
            "bin-ch06",
            "bench-rope-ch06",
            "torch-softmax-ch05",
            "torch-qkv-ch05",
            "torch-rope-ch06",
            "hf-fixtures-ch06",
            "ncu-softmax-ch05",
            "ncu-epilogue-table-ch05",
        ] {
            assert!(steps.contains(&name.to_string()), "{name} missing from {steps:?}");
        }
        assert!(!steps.iter().any(|s| s.contains("ch04") || s.contains("ch12")), "{steps:?}");
        std::fs::remove_dir_all(&bundle).ok();
    }

    #[test]
    fn run_sh_runs_chapter_7_tests_benchmark_peer_and_sanitizers() {
        let bundle = stand_in_bundle("ch07");
        let stub = std::fs::read(bundle.join("bin/ch04")).unwrap();
        // The GPU test target is `decode_gpu`, so that step 7's `tests/*gpu` glob takes it.
        for exe in ["bin/ch07", "tests/ch07-kv-cache--decode_gpu", "tests/ch07-kv-cache--quant_int8"] {
            std::fs::write(bundle.join(exe), &stub).unwrap();
            Command::new("chmod").arg("+x").arg(bundle.join(exe)).status().unwrap();
        }
        let steps = dry_run_steps(&bundle, &[("ATTN_CHAPTERS", "ch07")]).unwrap();
        for name in [
            "test-ch07-kv-cache--decode_gpu",
            "test-ch07-kv-cache--quant_int8",
            "bin-ch07",
            "bench-decode-ch07",
            "torch-decode-ch07",
            "memcheck-ch07-kv-cache--decode_gpu-a",
            "racecheck-ch07-kv-cache--decode_gpu-b",
        ] {
            assert!(steps.contains(&name.to_string()), "{name} missing from {steps:?}");
        }
        assert!(!steps.iter().any(|s| s.contains("memcheck-ch07-kv-cache--quant")), "{steps:?}");
        assert!(!steps.iter().any(|s| s.contains("ch04") || s.contains("ch12")), "{steps:?}");
        let bench = std::fs::read_to_string(bundle.join("out/logs/bench-decode-ch07.log")).unwrap();
        assert!(bench.contains("--bench-decode") && bench.contains("ch07/ch07_decode.csv"), "{bench}");
        std::fs::remove_dir_all(&bundle).ok();
    }
}
