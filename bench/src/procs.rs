//! The real binaries: locating them, starting `pedigree-server` on 127.0.0.1 with a
//! data directory, and timing child processes.

use anyhow::{anyhow, bail, Context as _, Result};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the workspace binaries are: next to `pedigree-bench` (`target/release`).
#[derive(Clone, Debug)]
pub struct Bins {
    /// `pedigree-server`.
    pub server: PathBuf,
    /// `pedigree`.
    pub cli: PathBuf,
}

impl Bins {
    /// Finds the binaries in `dir`, or beside this executable.
    ///
    /// # Errors
    ///
    /// When either binary is missing (build them first).
    pub fn locate(dir: Option<&Path>) -> Result<Self> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()?
                .parent()
                .ok_or_else(|| anyhow!("executable has no directory"))?
                .to_path_buf(),
        };
        let bins = Bins {
            server: dir.join("pedigree-server"),
            cli: dir.join("pedigree"),
        };
        for b in [&bins.server, &bins.cli] {
            if !b.exists() {
                bail!(
                    "{} not found: run `cargo build --release -p pedigree-server -p pedigree-cli -p pedigree-bench`",
                    b.display()
                );
            }
        }
        Ok(bins)
    }
}

/// A running `pedigree-server` started by the bench; stopped when dropped.
pub struct ServerProc {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// The log's verifier key, as printed at start.
    pub vkey: String,
    /// From spawn to the first `200` from `/healthz`.
    pub startup: Duration,
}

/// The origin every bench log uses.
pub const ORIGIN: &str = "bench.pedigree.test/log";

impl ServerProc {
    /// Starts the server on a free loopback port with `data_dir` and `extra` flags and
    /// waits until `/healthz` answers 200.
    ///
    /// # Errors
    ///
    /// When the process fails to start or never becomes healthy.
    pub fn start(bins: &Bins, data_dir: &Path, extra: &[&str]) -> Result<Self> {
        let t0 = Instant::now();
        let mut child = Command::new(&bins.server)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--origin", ORIGIN])
            .args(extra)
            .env("PEDIGREE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("couldn't start {}", bins.server.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut url, mut vkey) = (None, None);
        while vkey.is_none() {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(u) = line.strip_prefix("pedigree-server listening on ") {
                        url = Some(u.to_string());
                    } else if let Some(k) = line.strip_prefix("verifier key: ") {
                        vkey = Some(k.to_string());
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("pedigree-server exited before listening");
                }
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let url = url.ok_or_else(|| anyhow!("no listen line"))?;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let deadline = t0 + Duration::from_secs(120);
        let mut server = ServerProc {
            child,
            url,
            vkey: vkey.unwrap_or_default(),
            startup: Duration::ZERO,
        };
        while Instant::now() < deadline {
            if let Ok(r) = agent.get(&format!("{}/healthz", server.url)).call() {
                if r.status() == 200 {
                    server.startup = t0.elapsed();
                    return Ok(server);
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bail!("pedigree-server never became healthy")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM (SIGKILL after 10 s) and waits for it.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// Runs a command to completion, returning its wall time.
///
/// # Errors
///
/// When it cannot start or exits non-zero (with its stderr).
pub fn timed(cmd: &mut Command) -> Result<Duration> {
    let t0 = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("couldn't run {cmd:?}"))?;
    let elapsed = t0.elapsed();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(elapsed)
}

/// Runs a command and returns its stdout.
///
/// # Errors
///
/// When it cannot start or exits non-zero (with its stderr).
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("couldn't run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a program is on `PATH`.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes a private key file with mode 0600, as the server requires.
///
/// # Errors
///
/// When the file cannot be written.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("couldn't create {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// Total size of the files under `dir`, in bytes.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}

/// CPU time a process has used so far, `(user, system)`, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> (Duration, Duration) {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        output(Command::new("getconf").arg("CLK_TCK"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let secs = |ticks_used: u64| Duration::from_secs_f64(ticks_used as f64 / ticks);
    (secs(field(14)), secs(field(15)))
}
