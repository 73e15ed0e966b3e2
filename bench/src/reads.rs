//! `pedigree-bench reads`: inclusion proofs and C2SP tiles per second at 64 clients,
//! beside nginx serving the very same tile bytes as static files. `wrk` drives both,
//! so the client side is the same for each.

use crate::procs::{self, Bins, ServerProc};
use crate::report::{self, dur, rate, ratio, Table};
use crate::synth;
use anyhow::{bail, Context as _, Result};
use pedigree_core::tiles::TileCoord;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of the reads scenario.
#[derive(clap::Args, Debug, Clone)]
pub struct ReadArgs {
    /// Entries in the log (a multiple of 256 gives only full tiles)
    #[arg(long, default_value_t = 65_536)]
    pub entries: u64,
    /// Concurrent connections
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds per measurement
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Keep-alive settings to run, in milliseconds (0 = off, the server's default)
    #[arg(long, value_delimiter = ',', default_values_t = [0, 5000])]
    pub keep_alive_ms: Vec<u64>,
}

/// Runs the scenario and prints its tables.
///
/// # Errors
///
/// When wrk or nginx is missing, or a server or run fails.
pub fn run(bins: &Bins, args: &ReadArgs) -> Result<()> {
    for tool in ["wrk", "nginx"] {
        if !procs::have(tool) {
            bail!("{tool} is not installed: run bench/setup.sh");
        }
    }
    let scratch = tempfile::Builder::new()
        .prefix("pedigree-bench-reads")
        .tempdir()?;
    let data = scratch.path().join("log");
    report::progress(&format!(
        "reads: building a log of {} entries",
        args.entries
    ));
    {
        let engine = synth::open_data_dir(&data)?;
        let key = synth::seeded_key(11);
        let mut n = 0;
        while n < args.entries {
            let count = (args.entries - n).min(16_384);
            let entries = synth::admitted(&key, 3, n..n + count);
            for b in entries.chunks(1024) {
                engine.append_batch(b)?;
            }
            n += count;
        }
    }
    let size = args.entries;
    let hash_tiles = tile_paths(size, false);
    let bundles = tile_paths(size, true);
    let in_process = tile_costs(&data, &hash_tiles, &bundles)?;
    let proofs: Vec<String> = (0..10_000u64)
        .map(|i| {
            let index = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % size;
            format!("/api/v1/proof/inclusion?index={index}&tree_size={size}")
        })
        .collect();
    let www = scratch.path().join("www");
    let lists = scratch.path().join("lists");
    std::fs::create_dir_all(&lists)?;
    let write_list = |name: &str, paths: &[String]| -> Result<PathBuf> {
        let p = lists.join(name);
        std::fs::write(&p, paths.join("\n") + "\n")?;
        Ok(p)
    };
    let hash_list = write_list("hash-tiles.txt", &hash_tiles)?;
    let bundle_list = write_list("entry-bundles.txt", &bundles)?;
    let proof_list = write_list("proofs.txt", &proofs)?;

    for &ka in &args.keep_alive_ms {
        let server = ServerProc::start(bins, &data, &["--keep-alive-ms", &ka.to_string()])?;
        if !www.exists() {
            copy_tiles(&server.url, &www, hash_tiles.iter().chain(&bundles))?;
        }
        let nginx = Nginx::start(scratch.path(), &www, ka)?;
        let mode = if ka == 0 {
            "keep-alive off (server default; nginx keepalive_timeout 0)".to_string()
        } else {
            format!("keep-alive on (server --keep-alive-ms {ka}; nginx keepalive_timeout {ka}ms)")
        };
        let mut t = Table::new(
            &format!(
                "reads at {} connections, {mode}, log of {} entries",
                args.clients,
                report::thousands(size)
            ),
            &[
                "what",
                "served by",
                "requests/s",
                "p50",
                "p99",
                "errors",
                "vs nginx, same files",
            ],
        );
        let secs = Duration::from_secs(args.seconds);
        let wrk = |url: &str, list: &Path, what: &str| {
            report::progress(&format!("reads: {what} ({mode})"));
            Wrk::run(url, list, args.clients, secs)
        };
        let ng_hash = wrk(&nginx.url, &hash_list, "nginx hash tiles")?;
        let sv_hash = wrk(&server.url, &hash_list, "server hash tiles")?;
        let ng_bundle = wrk(&nginx.url, &bundle_list, "nginx entry bundles")?;
        let sv_bundle = wrk(&server.url, &bundle_list, "server entry bundles")?;
        let sv_proof = wrk(&server.url, &proof_list, "server inclusion proofs")?;
        let rows = [
            ("hash tiles (8 KiB)", "nginx", &ng_hash, ng_hash.rate),
            (
                "hash tiles (8 KiB)",
                "pedigree-server",
                &sv_hash,
                ng_hash.rate,
            ),
            ("entry bundles", "nginx", &ng_bundle, ng_bundle.rate),
            (
                "entry bundles",
                "pedigree-server",
                &sv_bundle,
                ng_bundle.rate,
            ),
            (
                "inclusion proofs (JSON)",
                "pedigree-server",
                &sv_proof,
                ng_hash.rate,
            ),
        ];
        for (what, by, r, base) in rows {
            t.row(vec![
                what.into(),
                by.into(),
                rate(r.rate),
                dur(r.p50),
                dur(r.p99),
                r.errors.clone(),
                ratio(r.rate, base),
            ]);
        }
        t.note(format!(
            "In process, LogEngine::tile on a freshly opened store: hash tile {} the first time, {} again; entry bundle {} first, {} again.",
            dur(in_process[0].0), dur(in_process[0].1), dur(in_process[1].0), dur(in_process[1].1)
        ));
        t.note(format!(
            "wrk 2 threads on the same 2 vCPUs, each request a different tile or index round-robin; nginx {} with 2 workers, sendfile, access log off. Proofs are compared with nginx's hash-tile rate. Load average after: {}.",
            nginx.version,
            report::load_average()
        ));
        t.print();
        nginx.stop();
        server.stop();
    }
    Ok(())
}

/// The engine's own time per tile, first read and repeated read: `[hash tiles, bundles]`.
fn tile_costs(
    data: &Path,
    hash_tiles: &[String],
    bundles: &[String],
) -> Result<[(Duration, Duration); 2]> {
    let engine = synth::open_data_dir(data)?;
    let mut out = [(Duration::ZERO, Duration::ZERO); 2];
    for (i, paths) in [hash_tiles, bundles].into_iter().enumerate() {
        let coords: Vec<TileCoord> = paths
            .iter()
            .map(|p| TileCoord::from_path(p.trim_start_matches('/')))
            .collect::<Result<_, _>>()?;
        for pass in 0..2 {
            let t = Instant::now();
            for c in &coords {
                std::hint::black_box(engine.tile(c)?);
            }
            let per = t.elapsed() / coords.len() as u32;
            if pass == 0 {
                out[i].0 = per;
            } else {
                out[i].1 = per;
            }
        }
    }
    Ok(out)
}

/// Paths (with a leading `/`) of every full level-0 and level-1 hash tile, or every
/// full entry bundle, of a tree of `size` leaves.
fn tile_paths(size: u64, entries: bool) -> Vec<String> {
    let mut out = Vec::new();
    for level in 0..if entries { 1 } else { 2 } {
        let nodes = size >> (8 * level);
        for index in 0..nodes / 256 {
            let c = TileCoord {
                level,
                index,
                width: 256,
                entries,
            };
            out.push(format!("/{}", c.path()));
        }
    }
    out
}

/// Fetches each tile from the server and writes it under `www` at the same path.
fn copy_tiles<'a>(url: &str, www: &Path, paths: impl Iterator<Item = &'a String>) -> Result<()> {
    let agent = ureq::AgentBuilder::new().build();
    for p in paths {
        let resp = agent.get(&format!("{url}{p}")).call()?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes)?;
        let file = www.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap_or(www))?;
        std::fs::write(&file, bytes)?;
    }
    Ok(())
}

/// One wrk measurement.
pub struct WrkResult {
    /// Requests per second.
    pub rate: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Socket errors and non-2xx answers, or `none`.
    pub errors: String,
}

/// wrk with a Lua script that requests the paths of a list file round-robin.
pub struct Wrk;

impl Wrk {
    /// Runs wrk against `url` for `duration` with `connections`, over the paths in `list`.
    ///
    /// # Errors
    ///
    /// When wrk fails or its output cannot be read.
    pub fn run(
        url: &str,
        list: &Path,
        connections: usize,
        duration: Duration,
    ) -> Result<WrkResult> {
        let script = list.with_extension("lua");
        std::fs::write(
            &script,
            format!(
                "local paths = {{}}\n\
                 for line in io.lines(\"{}\") do paths[#paths + 1] = line end\n\
                 local i = math.random(#paths)\n\
                 request = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", paths[i])\nend\n",
                list.display()
            ),
        )?;
        let out = procs::output(
            Command::new("wrk")
                .args(["-t2", "--latency", "--timeout", "10s"])
                .arg(format!("-c{connections}"))
                .arg(format!("-d{}s", duration.as_secs()))
                .arg("-s")
                .arg(&script)
                .arg(url),
        )?;
        parse_wrk(&out).with_context(|| format!("couldn't read wrk output:\n{out}"))
    }
}

fn parse_wrk_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    Some(Duration::from_secs_f64(num.parse::<f64>().ok()? * scale))
}

fn parse_wrk(out: &str) -> Option<WrkResult> {
    let field = |prefix: &str| {
        out.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let mut errors = Vec::new();
    if let Some(e) = field("Socket errors:") {
        errors.push(format!("socket {e}"));
    }
    if let Some(e) = field("Non-2xx or 3xx responses:") {
        errors.push(format!("non-2xx {e}"));
    }
    Some(WrkResult {
        rate: field("Requests/sec:")?.parse().ok()?,
        p50: parse_wrk_duration(field("50%")?)?,
        p99: parse_wrk_duration(field("99%")?)?,
        errors: if errors.is_empty() {
            "none".into()
        } else {
            errors.join("; ")
        },
    })
}

/// An nginx started by the bench in the foreground with its own config.
struct Nginx {
    child: Child,
    url: String,
    version: String,
}

impl Nginx {
    fn start(dir: &Path, www: &Path, keep_alive_ms: u64) -> Result<Self> {
        let conf_dir = dir.join(format!("nginx-ka{keep_alive_ms}"));
        std::fs::create_dir_all(&conf_dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = conf_dir.display();
        let conf = format!(
            "worker_processes 2;\ndaemon off;\nuser root;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n\
             \x20 keepalive_timeout {keep_alive_ms}ms;\n  keepalive_requests 1000000;\n\
             \x20 default_type application/octet-stream;\n\
             \x20 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             \x20 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
             \x20 scgi_temp_path {d}/scgi;\n\
             \x20 server {{\n    listen 127.0.0.1:{port};\n    root {};\n  }}\n}}\n",
            www.display()
        );
        let conf_path = conf_dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        // `nginx -v` prints its version on stderr.
        let version = Command::new("nginx")
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_default();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&conf_dir)
            .arg("-e")
            .arg(conf_dir.join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("couldn't start nginx")?;
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Self {
                    child,
                    url,
                    version: version.replace("nginx version: ", ""),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("nginx did not start; see {}/error.log", d)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let out = "  Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     99%    4.51ms\n  Socket errors: connect 0, read 3, write 0, timeout 0\nRequests/sec:  51234.56\n";
        let r = parse_wrk(out).unwrap();
        assert_eq!(r.p50, Duration::from_micros(812));
        assert!((r.rate - 51234.56).abs() < 1e-6);
        assert!(r.errors.contains("read 3"));
    }

    #[test]
    fn tile_paths_cover_full_tiles() {
        let p = tile_paths(65_536, false);
        assert_eq!(p.len(), 257);
        assert_eq!(p[0], "/tile/0/000");
        assert_eq!(p[256], "/tile/1/000");
        assert_eq!(
            tile_paths(512, true),
            ["/tile/entries/000", "/tile/entries/001"]
        );
    }
}
