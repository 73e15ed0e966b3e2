//! `pedigree key`: generated keys work with openssl, and encrypted keys need their passphrase.

use std::process::Command;

fn pedigree(dir: &std::path::Path, args: &[&str], pass: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pedigree"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("PEDIGREE_PASSPHRASE");
    if let Some(p) = pass {
        cmd.env("PEDIGREE_PASSPHRASE", p);
    }
    cmd.output().expect("run pedigree")
}

#[test]
fn generated_keys_have_safe_modes_and_match_their_fingerprints() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    for alg in ["ed25519", "p256"] {
        let out = pedigree(
            dir.path(),
            &[
                "--json",
                "key",
                "generate",
                "--algorithm",
                alg,
                "--out",
                alg,
            ],
            None,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mode = std::fs::metadata(dir.path().join(format!("{alg}.key")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        for file in [format!("{alg}.key"), format!("{alg}.pub")] {
            let fp = pedigree(dir.path(), &["key", "fingerprint", &file], None);
            assert_eq!(
                String::from_utf8_lossy(&fp.stdout).trim(),
                v["fingerprint"].as_str().unwrap()
            );
        }
        // Refuses to overwrite.
        let again = pedigree(
            dir.path(),
            &["key", "generate", "--algorithm", alg, "--out", alg],
            None,
        );
        assert!(!again.status.success());
    }
}

#[test]
fn encrypted_keys_sign_only_with_their_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gen = pedigree(
        d,
        &["key", "generate", "--out", "k", "--encrypt"],
        Some("hunter2"),
    );
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    assert!(std::fs::read_to_string(d.join("k.key"))
        .unwrap()
        .contains("ENCRYPTED PRIVATE KEY"));
    std::fs::create_dir(d.join("m")).unwrap();
    std::fs::write(d.join("m/w.bin"), b"weights").unwrap();
    let sign = |pass| {
        pedigree(
            d,
            &["sign", "m", "--key", "k.key", "--signature", "m.sig"],
            pass,
        )
    };
    let no_pass = sign(None);
    assert!(!no_pass.status.success());
    assert!(String::from_utf8_lossy(&no_pass.stderr).contains("PEDIGREE_PASSPHRASE"));
    let wrong = sign(Some("nope"));
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    let ok = sign(Some("hunter2"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let verify = pedigree(
        d,
        &["verify", "m", "--signature", "m.sig", "--key", "k.pub"],
        None,
    );
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}
