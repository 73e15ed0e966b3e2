//! `pedigree-server export-tiles`: static tiles from a running server, extended
//! incrementally, served by a plain static file server and read by `pedigree monitor`.

use pedigree_core::keys::PrivateKey;
use pedigree_tests::Server;
use pedigree_tests::{agent, binary, post_with, seeded_ed25519_key, step_statement, submission};
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TRAIN: &str = "https://pedigree.dev/ml/train/v1";

pub(crate) fn submit_many(server: &Server, key: &PrivateKey, from: u64, count: u64) {
    let http = agent();
    let url = format!("{}/api/v1/entries", server.url);
    for n in from..from + count {
        let body = submission(&step_statement(TRAIN, &format!("{n:064x}"), &[]), key);
        let (status, answer) = post_with(&http, &url, "application/json", &body);
        assert_eq!(status, 201, "{answer}");
    }
}

pub(crate) fn export(data: &Path, out: &Path) -> String {
    let o = Command::new(binary("pedigree-server"))
        .args(["export-tiles", "--data-dir"])
        .arg(data)
        .arg("--to")
        .arg(out)
        .output()
        .expect("run export-tiles");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout
}

/// Every file under `dir` with its inode and modification time.
fn files(dir: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, i64, i64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                let m = e.metadata().unwrap();
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, (m.ino(), m.mtime(), m.mtime_nsec()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `python3 -m http.server` on a free loopback port, killed when dropped.
pub(crate) struct StaticServer {
    child: Child,
    pub(crate) url: String,
}

impl StaticServer {
    pub(crate) fn start(dir: &Path) -> StaticServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while pedigree_tests::get(&format!("{url}/checkpoint")).0 != 200 {
            assert!(Instant::now() < deadline, "static server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        StaticServer { child, url }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `pedigree monitor --once --json` against `url` with a rule that needs every
/// entry's envelope; returns (exit code, alerts, summary).
pub(crate) fn monitor(
    dir: &Path,
    url: &str,
    vkey: &str,
    key: &PrivateKey,
) -> (i32, Vec<Value>, Value) {
    std::fs::write(
        dir.join("monitor.toml"),
        format!(
            "search_sample = 0\n\n[[watch_key]]\nfingerprint = \"{}\"\nallowed_build_types = [\"{TRAIN}\"]\n",
            key.public_key().fingerprint()
        ),
    )
    .unwrap();
    let out = Command::new(binary("pedigree"))
        .current_dir(dir)
        .args([
            "--json",
            "monitor",
            "--once",
            "--log",
            url,
            "--log-key",
            vkey,
        ])
        .args(["--config", "monitor.toml", "--state", "state.json"])
        .output()
        .expect("run pedigree monitor");
    let alerts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("processed").is_some())
        .unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), alerts, summary)
}

#[test]
fn incremental_export_is_a_verifiable_static_read_path() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out: PathBuf = tmp.path().join("static");
    let server = Server::start(&data, &["--batch-wait-ms", "1"]);
    let key = seeded_ed25519_key(41);
    submit_many(&server, &key, 0, 300);

    // The server keeps running: the export reads the store beside it.
    let report = export(&data, &out);
    assert!(report.contains("tree size 300 (was 0)"), "{report}");
    let first = files(&out);
    for want in [
        "checkpoint",
        "tile/0/000",
        "tile/0/001.p/44",
        "tile/1/000.p/1",
        "tile/entries/000",
        "tile/entries/001.p/44",
        "api/v1/entries/0",
        "api/v1/entries/299",
    ] {
        assert!(first.contains_key(want), "{want} not exported: {first:?}");
    }
    // Byte for byte what the server answers.
    for tile in ["tile/0/000", "tile/entries/001.p/44", "tile/1/000.p/1"] {
        let (status, body) = pedigree_tests::get(&format!("{}/{tile}", server.url));
        assert_eq!(status, 200);
        assert_eq!(std::fs::read(out.join(tile)).unwrap(), body, "{tile}");
    }

    submit_many(&server, &key, 300, 20);
    let report = export(&data, &out);
    assert!(report.contains("tree size 320 (was 300)"), "{report}");
    let second = files(&out);
    let written: Vec<&String> = second
        .iter()
        .filter(|(p, meta)| first.get(*p) != Some(meta))
        .map(|(p, _)| p)
        .collect();
    let mut expected: Vec<String> = vec![
        "checkpoint".into(),
        "tile/0/001.p/64".into(),
        "tile/entries/001.p/64".into(),
    ];
    expected.extend((300..320).map(|i| format!("api/v1/entries/{i}")));
    expected.sort();
    let mut written: Vec<String> = written.into_iter().cloned().collect();
    written.sort();
    assert_eq!(written, expected, "only new files are written");
    assert!(
        second.contains_key("tile/0/001.p/44"),
        "the previous checkpoint's partial tile stays for readers that hold it"
    );
    assert!(report.contains("23 files written"), "{report}");

    // A third run with nothing new rewrites only the checkpoint, and drops the partial
    // tiles no recent checkpoint needs.
    submit_many(&server, &key, 320, 1);
    export(&data, &out);
    let third = files(&out);
    assert!(
        !third.contains_key("tile/0/001.p/44"),
        "stale partial removed"
    );
    assert!(third.contains_key("tile/0/001.p/64"));

    // Any static file server now answers the read URLs a monitor uses.
    let web = StaticServer::start(&out);
    let mon = tempfile::tempdir().unwrap();
    let (code, alerts, summary) = monitor(mon.path(), &web.url, &server.vkey, &key);
    assert_eq!(code, 0, "alerts {alerts:?} summary {summary}");
    assert_eq!(summary["tree_size"], 321, "{summary}");
    assert_eq!(summary["processed"], 321, "{summary}");
    assert_eq!(summary["envelopes_fetched"], 321, "{summary}");
    drop(web);

    // A tampered copy is caught: change one leaf in a full entry bundle.
    let tampered = tmp.path().join("tampered");
    copy_tree(&out, &tampered);
    let bundle = tampered.join("tile/entries/000");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bundle, bytes).unwrap();
    let web = StaticServer::start(&tampered);
    let mon = tempfile::tempdir().unwrap();
    let (code, alerts, _) = monitor(mon.path(), &web.url, &server.vkey, &key);
    assert_eq!(code, 2, "a tampered bundle is a critical alert: {alerts:?}");
    assert_eq!(alerts[0]["rule"], "entry_bundle", "{alerts:?}");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
