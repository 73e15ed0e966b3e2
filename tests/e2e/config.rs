//! One configuration scheme for the three programs (spec/config.md): files, environment
//! overrides, `--print-config`, and refusals of unsafe settings at start.

use pedigree_tests::{binary, seeded_ed25519_key, E2E_ORIGIN};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

fn run(bin: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    Command::new(binary(bin))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run binary")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn witness_and_monitor_print_their_effective_config_with_env_over_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("witness.toml"),
        "state = \"w\"\nlog = [\"log.vkey\"]\nlisten = \"127.0.0.1:7000\"\n",
    )
    .unwrap();
    let out = run(
        "pedigree",
        &[
            "witness",
            "serve",
            "--config",
            "witness.toml",
            "--print-config",
        ],
        &[
            ("PEDIGREE_WITNESS_LISTEN", "127.0.0.1:7001"),
            ("PEDIGREE_WITNESS_LOG_FORMAT", "json"),
        ],
        dir.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("listen = \"127.0.0.1:7001\""), "{stdout}");
    assert!(stdout.contains("key = \"w/witness.key\""), "{stdout}");
    assert!(stdout.contains("log_format = \"json\""), "{stdout}");

    std::fs::write(
        dir.path().join("monitor.toml"),
        format!(
            "log = \"http://127.0.0.1:1\"\nlog_key = \"k\"\nstate = \"s.json\"\ninterval = 9\n\
             [[watch_key]]\nfingerprint = \"{}\"\n",
            "00".repeat(32)
        ),
    )
    .unwrap();
    let out = run(
        "pedigree",
        &["monitor", "--config", "monitor.toml", "--print-config"],
        &[("PEDIGREE_MONITOR_INTERVAL", "3")],
        dir.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("interval = 3"), "{stdout}");
    assert!(stdout.contains("log = \"http://127.0.0.1:1\""), "{stdout}");

    // A misspelt key names itself.
    std::fs::write(
        dir.path().join("monitor.toml"),
        "log = \"x\"\nstat = \"s\"\n",
    )
    .unwrap();
    let out = run(
        "pedigree",
        &["monitor", "--config", "monitor.toml", "--once"],
        &[],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).1.contains("stat"), "{}", text(&out).1);
}

#[test]
fn keys_readable_by_others_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("witness.key");
    std::fs::write(&key, seeded_ed25519_key(17).to_pkcs8_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(
        "pedigree",
        &[
            "witness",
            "serve",
            "--key",
            "witness.key",
            "--state",
            "w",
            "--log",
            "x.vkey",
        ],
        &[],
        dir.path(),
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("readable by other users (mode 644); run chmod 600"),
        "{stderr}"
    );

    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let log_key = data.join("log-signing.key");
    std::fs::write(&log_key, seeded_ed25519_key(18).to_pkcs8_pem()).unwrap();
    std::fs::set_permissions(&log_key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = run(
        "pedigree-server",
        &[
            "--data-dir",
            "data",
            "--listen",
            "127.0.0.1:0",
            "--origin",
            E2E_ORIGIN,
        ],
        &[],
        dir.path(),
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("readable by other users (mode 640)"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
