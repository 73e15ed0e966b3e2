//! Helpers shared by the CLI's integration tests: running the `pedigree` binary and
//! building models in temporary directories.

#![allow(dead_code)] // why: each test binary uses its own subset of these helpers

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `testdata/oms/reference-1.1.1`, the reference tool's fixtures.
pub fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/oms/reference-1.1.1")
}

/// The result of one `pedigree` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout
    }

    /// Asserts failure with one stderr line containing `reason`.
    pub fn fails_with(self, reason: &str) {
        assert_ne!(self.code, 0, "succeeded; stdout: {}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line of stderr: {}",
            self.stderr
        );
        assert!(lines[0].starts_with("pedigree: "), "{}", lines[0]);
        assert!(
            lines[0].contains(reason),
            "{:?} does not contain {reason:?}",
            lines[0]
        );
    }
}

/// Runs `pedigree` with `args` in `dir`.
pub fn pedigree_in(dir: &Path, args: &[&str]) -> Run {
    Run::from(
        Command::new(env!("CARGO_BIN_EXE_pedigree"))
            .args(args)
            .current_dir(dir)
            .output()
            .expect("pedigree runs"),
    )
}

/// Runs `pedigree` with `args` in the crate directory.
pub fn pedigree(args: &[&str]) -> Run {
    pedigree_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Writes `bytes` at `root/rel`, creating directories.
pub fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the reference fixtures' `tiny-model` in a new temporary directory, at
/// `<tmp>/tiny-model`.
pub fn tiny_model() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny-model");
    copy_dir(&reference_dir().join("tiny-model"), &model);
    (tmp, model)
}

/// A path as a `&str` argument.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Makes a key pair with `pedigree key generate` at `<dir>/<name>.{key,pub}`.
pub fn generate_key(dir: &Path, name: &str, algorithm: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    pedigree(&[
        "key",
        "generate",
        "--algorithm",
        algorithm,
        "--out",
        s(&prefix),
    ])
    .ok();
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}
