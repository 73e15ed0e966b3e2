//! The local admin socket: how `pedigree-server backup` asks a running server for a
//! consistent copy of its store (`spec/storage.md` section 6).
//!
//! Why the server takes the backup itself: RocksDB lets one process open a store for
//! writing, and the other ways to read a live store cannot copy it soundly. A read-only
//! open does not stop the writer from deleting files it is reading, and a secondary
//! instance cannot create a RocksDB checkpoint (`GetLiveFilesStorageInfo` is not
//! implemented for secondaries, and nothing stops the primary from deleting the files a
//! secondary copies). A RocksDB checkpoint taken by the process that owns the store is
//! the documented online backup: it flushes the memtables and links or copies a
//! point-in-time set of files while writes continue. Every batch the engine writes is
//! one `WriteBatch`, so that point in time holds whole batches with the checkpoint note
//! that covers them, never part of one.
//!
//! Why a Unix socket in the data directory: it needs no new listening address or flag,
//! it is reachable only on this machine, and its mode (0600, like the signing key)
//! leaves it to the user who owns the log. The protocol is one JSON line each way,
//! simple enough that the client needs no HTTP stack.

use crate::engine::LogEngine;
use crate::storage::RocksStore;
use serde::{Deserialize, Serialize};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// File name of the admin socket inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// Longest request line accepted; a request is a short JSON object.
const MAX_REQUEST_BYTES: u64 = 8 << 10;

/// One admin request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create a RocksDB checkpoint of the store at `to`, an absolute path that must not
    /// exist yet.
    Checkpoint {
        /// Where the checkpoint goes.
        to: PathBuf,
    },
}

/// The answer to one request.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Tree size of the checkpoint note the server held when it took the copy; the copy
    /// holds at least this much of the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_size: Option<u64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why an admin request failed.
#[derive(Debug, Error)]
pub enum AdminError {
    /// Nothing listens on the socket (no server runs on this data directory).
    #[error("no server answers on {path}: {source}")]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed part way.
    #[error("admin socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server answered something that is not a response.
    #[error("admin socket {path} answered something that is not a response: {answer:?}")]
    BadAnswer {
        /// The socket path.
        path: PathBuf,
        /// The first bytes of the answer.
        answer: String,
    },
    /// The server refused or failed the request.
    #[error("server refused: {0}")]
    Refused(String),
}

/// The admin socket of the log in `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Binds the admin socket of `data_dir` and answers requests on a thread of its own
/// until the process exits. Requests are answered one at a time: they are rare, and a
/// second checkpoint while one is being written would only compete for the disk.
///
/// Call only while holding the store open for writing: that lock is what makes a socket
/// file left by a dead server safe to replace.
///
/// # Errors
///
/// When the socket cannot be bound or its mode set.
pub fn start(data_dir: &Path, engine: Arc<LogEngine<RocksStore>>) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = socket_path(data_dir);
    // Bound under a temporary name and renamed once its mode is 0600, so that no other
    // user can connect in between.
    let temp = data_dir.join(format!(".{SOCKET_NAME}.{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp)?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&temp, &path)?;
    std::thread::Builder::new()
        .name("admin-socket".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(conn) => {
                        if let Err(e) = answer(conn, &engine) {
                            tracing::warn!(error = %e, "admin request failed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "admin socket accept failed"),
                }
            }
        })?;
    Ok(path)
}

fn answer(conn: UnixStream, engine: &LogEngine<RocksStore>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new((&conn).take(MAX_REQUEST_BYTES)).read_line(&mut line)?;
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response {
            ok: false,
            tree_size: None,
            error: Some(format!("invalid request: {e}")),
        },
        Ok(Request::Checkpoint { to }) => checkpoint(engine, &to),
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    (&conn).write_all(&out)
}

fn checkpoint(engine: &LogEngine<RocksStore>, to: &Path) -> Response {
    if !to.is_absolute() {
        return Response {
            ok: false,
            tree_size: None,
            error: Some(format!("{} is not an absolute path", to.display())),
        };
    }
    // Read before the copy: every note stored up to now is in the copy, so the copy
    // holds at least this tree.
    let tree_size = engine.checkpoint().tree_size;
    match engine.store().checkpoint_to(to) {
        Ok(()) => {
            tracing::info!(to = %to.display(), tree_size, "backup checkpoint written");
            Response {
                ok: true,
                tree_size: Some(tree_size),
                error: None,
            }
        }
        Err(e) => Response {
            ok: false,
            tree_size: None,
            error: Some(format!("couldn't create checkpoint {}: {e}", to.display())),
        },
    }
}

/// Asks the server of `data_dir` to write a checkpoint of its store to `to` (absolute,
/// not existing). Returns the tree size the server held when it took the copy.
///
/// # Errors
///
/// [`AdminError::NotRunning`] when no server listens; other variants when the exchange
/// or the checkpoint fails.
pub fn request_checkpoint(data_dir: &Path, to: &Path) -> Result<u64, AdminError> {
    let path = socket_path(data_dir);
    let conn = UnixStream::connect(&path).map_err(|source| AdminError::NotRunning {
        path: path.clone(),
        source,
    })?;
    let io = |source| AdminError::Io {
        path: path.clone(),
        source,
    };
    let mut request = serde_json::to_vec(&Request::Checkpoint {
        to: to.to_path_buf(),
    })
    .map_err(|e| io(std::io::Error::other(e)))?;
    request.push(b'\n');
    (&conn).write_all(&request).map_err(io)?;
    let mut line = String::new();
    BufReader::new((&conn).take(MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .map_err(io)?;
    let response: Response = serde_json::from_str(&line).map_err(|_| AdminError::BadAnswer {
        path: path.clone(),
        answer: line.chars().take(200).collect(),
    })?;
    match (response.ok, response.tree_size) {
        (true, Some(size)) => Ok(size),
        _ => Err(AdminError::Refused(
            response.error.unwrap_or_else(|| "no reason given".into()),
        )),
    }
}
