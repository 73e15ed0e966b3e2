//! The stack as plain processes (`scripts/stack.sh`, the docker-compose.yml topology with
//! the same deploy/*.toml files): it comes up healthy, an attestation submitted to the
//! server is cosigned by the witness and read by the monitor, and it stops cleanly.

use pedigree_tests::{
    agent, binary, get, get_json, seeded_ed25519_key, sha256_hex, step_statement, submission,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn stack(action: &str, dir: &Path, ports: (u16, u16)) -> (bool, String) {
    let bin = binary("pedigree-server");
    let out = Command::new(repo().join("scripts/stack.sh"))
        .arg(action)
        .arg(dir)
        .env("PEDIGREE_BIN", bin.parent().expect("bin dir"))
        .env("PEDIGREE_STACK_SERVER_PORT", ports.0.to_string())
        .env("PEDIGREE_STACK_WITNESS_PORT", ports.1.to_string())
        .env("PEDIGREE_MONITOR_INTERVAL", "1")
        .env("PEDIGREE_LOG", "info,pedigree_server=debug")
        .output()
        .expect("run scripts/stack.sh");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Stops the stack even when an assertion fails.
struct Running<'a> {
    dir: &'a Path,
    ports: (u16, u16),
    stopped: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = stack("stop", self.dir, self.ports);
        }
    }
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn stack_script_starts_server_witness_and_monitor_which_cosign_and_audit_an_entry() {
    let dir = tempfile::tempdir().unwrap();
    let ports = (free_port(), free_port());
    let (ok, out) = stack("start", dir.path(), ports);
    let mut running = Running {
        dir: dir.path(),
        ports,
        stopped: false,
    };
    assert!(ok, "stack start failed:\n{out}");
    for service in ["pedigree-server", "pedigree-witness", "pedigree-monitor"] {
        assert!(out.contains(&format!("{service} healthy")), "{out}");
    }
    let server = format!("http://127.0.0.1:{}", ports.0);
    let log_vkey = std::fs::read_to_string(dir.path().join("public/log.vkey")).unwrap();
    assert!(log_vkey.starts_with("pedigree.local/stack+"), "{log_vkey}");

    // Submit with a request id: it comes back, and the server's JSON log lines carry it.
    let key = seeded_ed25519_key(4_401);
    let body = submission(
        &step_statement(
            "https://pedigree.dev/ml/train/v1",
            &sha256_hex(b"stack"),
            &[],
        ),
        &key,
    );
    let resp = agent()
        .post(&format!("{server}/api/v1/entries"))
        .set("Content-Type", "application/json")
        .set("X-Request-Id", "stack-test-1")
        .send_bytes(&body)
        .expect("submit");
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.header("X-Request-Id"), Some("stack-test-1"));

    // Error bodies name the request too.
    let resp = agent()
        .get(&format!("{server}/api/v1/entries/99"))
        .set("X-Request-Id", "stack-test-2")
        .call();
    let Err(ureq::Error::Status(404, resp)) = resp else {
        panic!("entry 99 should be 404: {resp:?}");
    };
    let error: serde_json::Value = resp.into_json().expect("error body");
    assert_eq!(error["request_id"], "stack-test-2", "{error}");
    assert_eq!(error["error"], "not_found", "{error}");

    // The witness cosigns it: /checkpoint publishes size 1 with the witness's line.
    eventually("a cosigned checkpoint of size 1", || {
        let (s, note) = get(&format!("{server}/checkpoint"));
        let note = String::from_utf8_lossy(&note);
        s == 200
            && note.lines().nth(1) == Some("1")
            && note.contains("\n— pedigree.local/witness-1 ")
    });
    // The monitor reads it: its state file moves past entry 0.
    eventually("the monitor to read entry 0", || {
        std::fs::read_to_string(dir.path().join("monitor-state/state.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["next_index"].as_u64())
            == Some(1)
    });
    let (s, health) = get_json(&format!("{server}/healthz"));
    assert_eq!(s, 200, "{health}");

    let (ok, out) = stack("stop", dir.path(), ports);
    running.stopped = true;
    assert!(ok, "stack stop failed:\n{out}");
    for service in ["pedigree-server", "pedigree-witness", "pedigree-monitor"] {
        assert!(out.contains(&format!("{service} stopped")), "{out}");
    }
    assert_eq!(
        get(&format!("{server}/healthz")).0,
        0,
        "server still answers"
    );

    let log = std::fs::read_to_string(dir.path().join("logs/pedigree-server.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == "stack-test-1" && l["fields"]["status"] == 201),
        "no log line of request stack-test-1 in:\n{log}"
    );
    assert!(
        log.contains("every accepted submission is committed"),
        "{log}"
    );
    let monitor = std::fs::read_to_string(dir.path().join("logs/pedigree-monitor.out")).unwrap();
    assert!(monitor.trim().is_empty(), "monitor alerts: {monitor}");
}
