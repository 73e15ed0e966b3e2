//! Interoperability with the OpenSSF reference tool, `model_signing` 1.1.1 (PyPI
//! `model-signing`), in both directions. `scripts/setup.sh` installs it in
//! `.venv-oms`; `PEDIGREE_MODEL_SIGNING` names another copy, and
//! `PEDIGREE_SKIP_MODEL_SIGNING=1` skips these tests where it cannot be installed.
//!
//! The reference CLI re-hashes models with files/sha256 whatever a bundle says, so
//! signatures for it to verify use files/sha256.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{generate_key, pedigree, reference_dir, s, write};

/// The reference tool, or `None` when skipping is asked for.
fn model_signing() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PEDIGREE_MODEL_SIGNING") {
        return Some(PathBuf::from(path));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-oms/bin/model_signing");
    if venv.is_file() {
        return Some(venv);
    }
    if std::env::var("PEDIGREE_SKIP_MODEL_SIGNING").as_deref() == Ok("1") {
        eprintln!("skipping: model_signing not installed and PEDIGREE_SKIP_MODEL_SIGNING=1");
        return None;
    }
    panic!(
        "the OpenSSF reference tool model_signing 1.1.1 is not installed: run scripts/setup.sh \
         (or set PEDIGREE_MODEL_SIGNING to its path, or PEDIGREE_SKIP_MODEL_SIGNING=1 to skip)"
    );
}

/// Runs the reference tool in `dir`; returns whether it succeeded, and its output.
fn run_reference(tool: &Path, dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("model_signing runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A model with nested files, an empty file and git metadata to be ignored.
fn sample_model(root: &Path) {
    write(root, "config.json", br#"{"layers": 2}"#);
    write(
        root,
        "weights/model.bin",
        &(0..700_000u32).map(|i| (i % 249) as u8).collect::<Vec<_>>(),
    );
    write(root, "weights/empty.bin", b"");
    write(root, "tokenizer/vocab.txt", b"a\nb\nc\n");
    write(root, ".git/HEAD", b"ref: refs/heads/main\n");
    write(root, ".gitattributes", b"*.bin filter=lfs\n");
}

#[test]
fn reference_signatures_verify_with_pedigree() {
    let Some(tool) = model_signing() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    sample_model(&model);
    let key = reference_dir().join("ec-p256.key.TESTONLY");
    let public = reference_dir().join("ec-p256.pub");

    // Signature beside the model, and inside it (the reference default, model.sig in
    // the working directory).
    let (ok, text) = run_reference(
        &tool,
        tmp.path(),
        &[
            "sign",
            "key",
            "model",
            "--private_key",
            s(&key),
            "--signature",
            "ref.sig",
        ],
    );
    assert!(ok, "{text}");
    let (ok, text) = run_reference(
        &tool,
        &model,
        &["sign", "key", ".", "--private_key", s(&key)],
    );
    assert!(ok, "{text}");
    // ref.sig was made before model.sig was in the model.
    let ref_sig = tmp.path().join("ref.sig");
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&ref_sig),
        "--key",
        s(&public),
    ])
    .fails_with("unsigned file model.sig");
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&ref_sig),
        "--key",
        s(&public),
        "--ignore-paths",
        "model.sig",
    ])
    .ok();
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&model.join("model.sig")),
        "--key",
        s(&public),
    ])
    .ok();
    // Both tools name the model by the same digest.
    let hashed = pedigree(&["hash", s(&model), "--ignore-paths", "model.sig"]).ok();
    let verified = pedigree(&[
        "--json",
        "verify",
        s(&model),
        "--signature",
        s(&ref_sig),
        "--key",
        s(&public),
        "--ignore-paths",
        "model.sig",
    ])
    .ok();
    let verified: serde_json::Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(verified["subject"]["digest"], hashed.trim());

    write(&model, "weights/model.bin", b"swapped");
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&model.join("model.sig")),
        "--key",
        s(&public),
    ])
    .fails_with("digest mismatch for weights/model.bin");

    // A single-file model, which the reference tool names ".".
    let file = tmp.path().join("single.bin");
    std::fs::write(&file, b"single file model").unwrap();
    let (ok, text) = run_reference(
        &tool,
        tmp.path(),
        &[
            "sign",
            "key",
            "single.bin",
            "--private_key",
            s(&key),
            "--signature",
            "single.sig",
        ],
    );
    assert!(ok, "{text}");
    pedigree(&[
        "verify",
        s(&file),
        "--signature",
        s(&tmp.path().join("single.sig")),
        "--key",
        s(&public),
    ])
    .ok();
}

#[test]
fn pedigree_signatures_verify_with_the_reference_tool() {
    let Some(tool) = model_signing() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    sample_model(&model);
    let reference_key = (
        reference_dir().join("ec-p256.key.TESTONLY"),
        reference_dir().join("ec-p256.pub"),
    );
    let generated = generate_key(tmp.path(), "generated", "p256");

    for (index, (key, public)) in [reference_key, generated].iter().enumerate() {
        let signature = tmp.path().join(format!("pedigree-{index}.sig"));
        pedigree(&[
            "sign",
            s(&model),
            "--key",
            s(key),
            "--signature",
            s(&signature),
        ])
        .ok();
        let (ok, text) = run_reference(
            &tool,
            tmp.path(),
            &[
                "verify",
                "key",
                "model",
                "--signature",
                s(&signature),
                "--public_key",
                s(public),
            ],
        );
        assert!(ok, "model_signing rejected pedigree's signature: {text}");
    }

    // A signature written inside the model is left out of it for both tools.
    let (key, public) = generate_key(tmp.path(), "inside", "p256");
    pedigree(&[
        "sign",
        s(&model),
        "--key",
        s(&key),
        "--signature",
        s(&model.join("model.sig")),
    ])
    .ok();
    let (ok, text) = run_reference(
        &tool,
        &model,
        &[
            "verify",
            "key",
            ".",
            "--signature",
            "model.sig",
            "--public_key",
            s(&public),
        ],
    );
    assert!(ok, "{text}");

    // A single-file model.
    let file = tmp.path().join("single.bin");
    std::fs::write(&file, b"single file model").unwrap();
    pedigree(&[
        "sign",
        s(&file),
        "--key",
        s(&key),
        "--signature",
        s(&tmp.path().join("single.sig")),
    ])
    .ok();
    let (ok, text) = run_reference(
        &tool,
        tmp.path(),
        &[
            "verify",
            "key",
            "single.bin",
            "--signature",
            "single.sig",
            "--public_key",
            s(&public),
        ],
    );
    assert!(ok, "{text}");

    // The reference tool notices tampering in pedigree's signatures too.
    write(&model, "config.json", b"{}");
    let (ok, text) = run_reference(
        &tool,
        &model,
        &[
            "verify",
            "key",
            ".",
            "--signature",
            "model.sig",
            "--public_key",
            s(&public),
        ],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("config.json"), "{text}");
}
