//! Reading a log over HTTP for the monitor: the checkpoint, C2SP tiles and entry
//! bundles, single entries and search pages. One keep-alive agent per log; every body is
//! read with a size cap, since the log is the party being checked.

use anyhow::{anyhow, bail, Context as _, Result};
use pedigree_core::tilereader::{TileProofError, TileSet};
use pedigree_core::tiles::{parse_bundle, push_bundle_entry, TileCoord, TILE_WIDTH};
use serde_json::Value;
use std::io::Read as _;
use std::time::Duration;

/// Largest body read from a log: a full entry bundle of maximal entries is ~16 MiB.
const MAX_BODY_BYTES: u64 = 32 << 20;

/// Rounds of fetching one tile operation may take; each operation reads its hashes in
/// one batch, so more than two means the log keeps serving tiles that do not fit.
const MAX_TILE_ROUNDS: usize = 3;

/// A log (or a peer) reached over HTTP.
pub struct Remote {
    base: String,
    agent: ureq::Agent,
}

impl Remote {
    /// A client for the log at `base` (`http://host:port`, with or without a slash).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path`; `Ok(None)` for 404.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let url = format!("{}{path}", self.base);
        let resp = match self.agent.get(&url).call() {
            Ok(resp) => resp,
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            Err(ureq::Error::Status(code, resp)) => {
                let body = resp.into_string().unwrap_or_default();
                let body: String = body.chars().take(200).collect();
                bail!("{url} answered {code}: {body}")
            }
            Err(e) => bail!("couldn't reach {e}"),
        };
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_BODY_BYTES + 1)
            .read_to_end(&mut body)
            .with_context(|| format!("couldn't read answer of {url}"))?;
        if body.len() as u64 > MAX_BODY_BYTES {
            bail!("{url} answered with more than {MAX_BODY_BYTES} bytes");
        }
        Ok(Some(body))
    }

    fn get_found(&self, path: &str) -> Result<Vec<u8>> {
        self.get(path)?
            .ok_or_else(|| anyhow!("{}{path} answered 404", self.base))
    }

    /// `GET /checkpoint`, unverified.
    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        self.get_found("/checkpoint")
    }

    /// A hash tile or entry bundle. A partial tile the log no longer serves is read as
    /// the prefix of the full tile it grew into, as C2SP tlog-tiles allows.
    pub fn tile(&self, coord: TileCoord) -> Result<Vec<u8>> {
        if let Some(data) = self.get(&format!("/{}", coord.path()))? {
            return Ok(data);
        }
        if coord.is_full() {
            bail!("{}/{} answered 404", self.base, coord.path());
        }
        let full = TileCoord {
            width: TILE_WIDTH as u16,
            ..coord
        };
        let data = self.get_found(&format!("/{}", full.path()))?;
        let width = usize::from(coord.width);
        if !coord.entries {
            return Ok(data.get(..width * 32).unwrap_or(&data).to_vec());
        }
        // A malformed full bundle is passed on whole: the bundle check reports it.
        let Ok(entries) = parse_bundle(&data) else {
            return Ok(data);
        };
        let mut out = Vec::new();
        for entry in entries.iter().take(width) {
            push_bundle_entry(&mut out, entry)?;
        }
        Ok(out)
    }

    /// Runs a tile operation, fetching the hash tiles it reports missing.
    ///
    /// The outer error is a failed fetch; the inner result is what the tiles proved,
    /// including a tile of the wrong length ([`TileProofError::WrongLength`]).
    pub fn with_tiles<T>(
        &self,
        tiles: &mut TileSet,
        op: impl Fn(&TileSet) -> Result<T, TileProofError>,
    ) -> Result<Result<T, TileProofError>> {
        for _ in 0..MAX_TILE_ROUNDS {
            match op(tiles) {
                Err(TileProofError::Missing { tiles: coords }) => {
                    for coord in coords {
                        let data = self.tile(coord)?;
                        if let Err(e) = tiles.insert(coord, data) {
                            return Ok(Err(e));
                        }
                    }
                }
                other => return Ok(other),
            }
        }
        Ok(op(tiles))
    }

    /// `GET /api/v1/entries/{index}` as JSON.
    pub fn entry(&self, index: u64) -> Result<Value> {
        let body = self.get_found(&format!("/api/v1/entries/{index}"))?;
        serde_json::from_slice(&body)
            .with_context(|| format!("entry {index} from {} is not JSON", self.base))
    }

    /// One page of `GET /api/v1/entries?subject=…`, entries after `cursor`.
    pub fn search_subject(&self, digest: &str, cursor: Option<u64>) -> Result<Value> {
        let mut path = format!("/api/v1/entries?subject={digest}&limit=16");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let body = self.get_found(&path)?;
        serde_json::from_slice(&body)
            .with_context(|| format!("search answer from {} is not JSON", self.base))
    }

    /// POSTs one alert line as JSON (the webhook).
    pub fn post_json(&self, body: &str) -> Result<()> {
        self.agent
            .post(&self.base)
            .timeout(Duration::from_secs(10))
            .set("Content-Type", "application/json")
            .send_string(body)
            .map_err(|e| anyhow!("couldn't post to {e}"))?;
        Ok(())
    }
}
