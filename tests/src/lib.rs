//! Helpers shared by the end-to-end tests: starting the real `pedigree-server` binary on
//! 127.0.0.1 with a temporary RocksDB directory, a small HTTP client, and signed test
//! attestations made with real keys.

use pedigree_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::keys::PrivateKey;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary, next to the test executable's directory
/// (`target/<profile>/deps/e2e-*` -> `target/<profile>/<name>`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A running `pedigree-server`, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The log's verifier key (C2SP note form), as printed at start.
    pub vkey: String,
    /// The log's origin.
    pub origin: String,
    /// The data directory (kept by the caller's `TempDir`).
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts the server on a free port with `data_dir` and extra flags, and waits until
    /// it has printed its address and verifier key.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::try_start(data_dir, extra).unwrap_or_else(|e| panic!("server did not start: {e}"))
    }

    /// Like [`Server::start`] but returns the server's stderr when it fails to start.
    pub fn try_start(data_dir: &Path, extra: &[&str]) -> Result<Server, String> {
        let mut child = Command::new(binary("pedigree-server"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(if extra.contains(&"--origin") {
                &[][..]
            } else {
                &["--origin", E2E_ORIGIN][..]
            })
            .args(extra)
            .env("PEDIGREE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut url, mut vkey, mut origin) = (None, None, None);
        while vkey.is_none() {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(u) = line.strip_prefix("pedigree-server listening on ") {
                        url = Some(u.to_string());
                    } else if let Some(o) = line.strip_prefix("origin: ") {
                        origin = Some(o.to_string());
                    } else if let Some(k) = line.strip_prefix("verifier key: ") {
                        vkey = Some(k.to_string());
                    }
                }
                _ => {
                    let out = child.wait_with_output().map_err(|e| e.to_string())?;
                    return Err(String::from_utf8_lossy(&out.stderr).into_owned());
                }
            }
        }
        // Keep draining stdout and stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut { stderr }, &mut std::io::sink()));
        }
        let server = Server {
            child,
            url: url.ok_or("no listen line")?,
            vkey: vkey.ok_or("no verifier key line")?,
            origin: origin.ok_or("no origin line")?,
            data_dir: data_dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if get(&format!("{}/healthz", server.url)).0 == 200 {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("server never became healthy".into())
    }

    /// Kills the server with SIGKILL and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `limit` for the server to exit; returns its exit
    /// status, or `None` (after killing it) when it did not exit in time.
    pub fn terminate(mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        sigterm(self.child.id());
        wait_for_exit(&mut self.child, limit)
    }
}

/// Sends SIGTERM to a process this test started.
pub fn sigterm(pid: u32) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits in i32"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
}

/// Waits up to `limit` for `child` to exit; kills it and returns `None` if it does not.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Origin of the logs [`Server::start`] runs unless told otherwise.
pub const E2E_ORIGIN: &str = "e2e.pedigree.test/log";

/// Writes a seeded checkpoint signing key as `<data_dir>/log-signing.key` (mode 0600),
/// so a test knows the log's verifier key before the server starts (witnesses need it),
/// and returns that verifier key for `origin`.
pub fn write_log_key(data_dir: &Path, seed: u64, origin: &str) -> String {
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = seeded_ed25519_key(seed);
    std::fs::create_dir_all(data_dir).expect("create data dir");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data_dir.join("log-signing.key"))
        .expect("create log key");
    std::io::Write::write_all(&mut f, key.to_pkcs8_pem().as_bytes()).expect("write log key");
    let signing = key.as_ed25519().expect("ed25519").clone();
    pedigree_core::checkpoint::LogSigner::new(origin, signing)
        .expect("valid origin")
        .verifier_key()
}

/// A running `pedigree witness serve`, killed when dropped.
pub struct Witness {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The witness's cosignature verifier key, as printed at start.
    pub vkey: String,
}

impl Witness {
    /// Starts a witness with the private key at `key`, named `name`, keeping its state in
    /// `state`, for the logs `logs` (each `ORIGIN=VKEY` or `VKEY`), on `listen`
    /// (`127.0.0.1:0` for a free port).
    pub fn start(key: &Path, name: &str, state: &Path, logs: &[&str], listen: &str) -> Witness {
        let mut cmd = Command::new(binary("pedigree"));
        cmd.args(["witness", "serve", "--name", name, "--listen", listen])
            .arg("--key")
            .arg(key)
            .arg("--state")
            .arg(state);
        for log in logs {
            cmd.args(["--log", log]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pedigree witness");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut url, mut vkey) = (None, None);
        while vkey.is_none() {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(u) = line.strip_prefix("pedigree witness listening on ") {
                        url = Some(u.to_string());
                    } else if let Some(k) = line.strip_prefix("verifier key: ") {
                        vkey = Some(k.to_string());
                    }
                }
                _ => panic!("witness did not start"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Witness {
            child,
            url: url.expect("witness listen line"),
            vkey: vkey.expect("witness key line"),
        }
    }

    /// The `127.0.0.1:<port>` it listens on, to restart it on the same address.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// Kills the witness with SIGKILL and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `pedigree` CLI in `dir`, returning (success, stdout, stderr).
pub fn pedigree(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary("pedigree"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run pedigree");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh log server and a scratch directory the `pedigree` CLI runs in: how the CLI
/// tests build and check a signed chain. The server stops before its data directory is
/// removed (fields drop in order).
pub struct CliLog {
    /// Where the CLI runs: keys, artifacts, bundles and policies.
    pub dir: tempfile::TempDir,
    /// The log.
    pub server: Server,
    _data: tempfile::TempDir,
}

impl CliLog {
    /// Starts a server with default settings on a fresh data directory.
    pub fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let server = Server::start(data.path(), &[]);
        Self {
            dir: tempfile::tempdir().unwrap(),
            server,
            _data: data,
        }
    }

    /// `p` inside the CLI's directory.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Runs the CLI, returning (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        pedigree(self.dir.path(), args)
    }

    /// Runs the CLI and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "pedigree {args:?} failed: {err}");
        out
    }

    /// Runs the CLI with `--json` and expects success; returns the parsed output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend(args);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// Runs the CLI and expects failure; returns the one-line reason.
    pub fn fails(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(!ok, "pedigree {args:?} should fail, printed {out}");
        assert_eq!(err.trim_end().lines().count(), 1, "one-line reason: {err}");
        err
    }

    /// `pedigree key generate --algorithm ALGORITHM` for each name: NAME.key and NAME.pub.
    pub fn generate_keys(&self, names: &[&str], algorithm: &str) {
        for name in names {
            self.ok(&["key", "generate", "--algorithm", algorithm, "--out", name]);
        }
    }
}

/// Writes `bytes` to `dir/name`, creating its parents.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// An HTTP client with a 60 s timeout. Reuse one per thread when making many requests:
/// it keeps connections alive instead of leaving a socket in TIME_WAIT per request.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

fn read(resp: ureq::Response) -> (u16, Vec<u8>) {
    let status = resp.status();
    let mut body = Vec::new();
    let _ = std::io::Read::read_to_end(&mut resp.into_reader(), &mut body);
    (status, body)
}

fn finish(r: Result<ureq::Response, ureq::Error>) -> (u16, Vec<u8>) {
    match r {
        Ok(resp) => read(resp),
        Err(ureq::Error::Status(_, resp)) => read(resp),
        Err(e) => (0, e.to_string().into_bytes()),
    }
}

/// GET, returning status and body (status 0 on transport failure).
pub fn get(url: &str) -> (u16, Vec<u8>) {
    finish(agent().get(url).call())
}

/// GET, returning status and parsed JSON (Null when the body is not JSON).
pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    get_json_with(&agent(), url)
}

/// [`get_json`] on a given client.
pub fn get_json_with(agent: &ureq::Agent, url: &str) -> (u16, serde_json::Value) {
    let (s, b) = finish(agent.get(url).call());
    (
        s,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// POST bytes with a content type, returning status and parsed JSON.
pub fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, serde_json::Value) {
    post_with(&agent(), url, content_type, body)
}

/// [`post`] on a given client.
pub fn post_with(
    agent: &ureq::Agent,
    url: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let (s, b) = finish(
        agent
            .post(url)
            .set("Content-Type", content_type)
            .send_bytes(body),
    );
    (
        s,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// POST bytes, returning status, the `Retry-After` header and parsed JSON.
pub fn post_full(
    url: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Option<String>, serde_json::Value) {
    let resp = match agent()
        .post(url)
        .set("Content-Type", content_type)
        .send_bytes(body)
    {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return (0, None, serde_json::Value::String(e.to_string())),
    };
    let retry = resp.header("Retry-After").map(str::to_string);
    let (s, b) = read(resp);
    (
        s,
        retry,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// A request with any method, returning status and parsed JSON.
pub fn request(method: &str, url: &str) -> (u16, serde_json::Value) {
    let (s, b) = finish(agent().request(method, url).call());
    (
        s,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// An Ed25519 key derived from `seed`, so that tests with fixed seeds sign the same bytes
/// on every run.
pub fn seeded_ed25519_key(seed: u64) -> PrivateKey {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey as _};
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    bytes[8] = 0xed;
    let pem = ed25519_dalek::SigningKey::from_bytes(&bytes)
        .to_pkcs8_pem(LineEnding::LF)
        .expect("pkcs8 encoding of an ed25519 key");
    PrivateKey::from_pem(&pem).expect("a freshly encoded key parses")
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// A SLSA Provenance v1 statement for one step: `subject` built from `materials`.
pub fn step_statement(build_type: &str, subject: &str, materials: &[&str]) -> serde_json::Value {
    let deps: Vec<_> = materials
        .iter()
        .map(|m| serde_json::json!({"name": "input", "digest": {"sha256": m}}))
        .collect();
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": subject}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": build_type,
                "externalParameters": {"step": build_type},
                "resolvedDependencies": deps,
            },
            "runDetails": {"builder": {"id": "https://ci.example/builder"}}
        }
    })
}

/// The JSON body of `POST /api/v1/entries` for `statement` signed by `key`.
pub fn submission(statement: &serde_json::Value, key: &PrivateKey) -> Vec<u8> {
    let env = Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        serde_json::to_vec(statement).expect("statement JSON"),
        &[key],
    );
    let envelope: serde_json::Value =
        serde_json::from_slice(&env.to_json()).expect("envelope JSON");
    serde_json::to_vec(&serde_json::json!({
        "envelope": envelope,
        "verifiers": [key.public_key().to_pem()],
    }))
    .expect("request JSON")
}
