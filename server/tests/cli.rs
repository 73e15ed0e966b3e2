//! The `pedigree-server` command line: serving is the default command, so the flags work
//! with and without `serve`; `fsck` is a separate command with its own flags.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pedigree-server"))
        .args(args)
        .env_remove("PEDIGREE_DATA_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_flags_work_with_and_without_the_serve_command() {
    let flags = [
        "--data-dir",
        "/tmp/pedigree-cli-test",
        "--listen",
        "127.0.0.1:9999",
        "--client-timeout-ms",
        "2500",
        "--keep-alive-ms",
        "100",
        "--print-config",
    ];
    let (code, bare, err) = run(&flags);
    assert_eq!(code, 0, "{err}");
    let (code, with_serve, err) = run(&[&["serve"][..], &flags[..]].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(bare, with_serve);
    for line in [
        "data_dir = \"/tmp/pedigree-cli-test\"",
        "listen = \"127.0.0.1:9999\"",
        "client_timeout_ms = 2500",
        "keep_alive_ms = 100",
    ] {
        assert!(bare.contains(line), "{line} in {bare}");
    }
}

#[test]
fn fsck_is_its_own_command_and_refuses_serve_flags() {
    let (code, _, err) = run(&["--data-dir", "/tmp/x", "fsck"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, _, err) = run(&["fsck"]);
    assert_ne!(code, 0);
    assert!(err.contains("--data-dir"), "{err}");
    let (code, out, _) = run(&["fsck", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--log-key"), "{out}");
    let (code, _, err) = run(&["--client-timeout-ms", "5", "--print-config"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("client_timeout_ms 5 must be 100..=600000"),
        "{err}"
    );
}
