//! `pedigree-server mirror`: a read-only replica that copies a log's checkpoint, tiles,
//! entry bundles and entries from a primary (a log server or a static export), verifies
//! everything it copies, stores it as a static directory ([`crate::staticdir`]) and
//! serves the read API from it ([`http`]).
//!
//! What the mirror trusts: the primary's verifier key, given on the command line, and
//! nothing the primary says. Each round it verifies the checkpoint's signature, refuses a
//! smaller tree or a second root for the same size, proves from tiles authenticated
//! against the new root (`pedigree_core::tilereader`) that the new tree extends the one it
//! holds, authenticates every new hash tile, checks every new entry bundle against the
//! tiles, and rebuilds every new entry's leaf record from its envelope with
//! `entry::admit`. Each file is written only once it verified, and the checkpoint is
//! published last, so its directory never holds data that did not verify, and verified
//! files are never replaced (full tiles and entries are immutable; files that exist are
//! kept).
//!
//! A refusal is an alert: it is logged at error level, `/healthz` answers 503 naming it,
//! and the mirror stops following the primary (it keeps serving what it verified) until
//! an operator restarts it. An unreachable primary is only retried.

pub mod http;

use crate::staticdir::{entry_json, tiles_from, StaticDir, ENTRIES_DIR};
use anyhow::{anyhow, bail, Context as _, Result};
use base64::Engine as _;
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::dsse::Envelope;
use pedigree_core::entry::{admit, LeafRecord, Limits};
use pedigree_core::keys::PublicKey;
use pedigree_core::merkle::Hash;
use pedigree_core::tilereader::{TileProofError, TileSet};
use pedigree_core::tiles::{parse_bundle, push_bundle_entry, TileCoord};
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Largest body read from the primary: a full bundle of maximal entries is ~16 MiB.
const MAX_BODY_BYTES: u64 = 32 << 20;

/// Rounds of fetching one tile operation may take (each reads its hashes in one batch).
const MAX_TILE_ROUNDS: usize = 3;

/// `pedigree-server mirror`.
#[derive(clap::Args, Debug)]
pub struct MirrorArgs {
    /// Base URL of the primary: a Pedigree log server or a static export
    #[arg(long)]
    pub from: String,
    /// Directory to keep the verified copy in (a static directory, servable as is)
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The primary log's verifier key (C2SP note form): the only thing trusted
    #[arg(long)]
    pub log_key: String,
    /// Address to serve the read API on
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Time between rounds of following the primary, in milliseconds
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Copy once and exit (0 when the copy verified, 1 otherwise), without serving
    #[arg(long)]
    pub once: bool,
}

/// Why a round did not copy.
#[derive(Debug)]
pub enum RoundError {
    /// The primary could not be read; try again later.
    Unreachable(anyhow::Error),
    /// The primary served something that does not verify: an alert.
    Refused(String),
}

impl std::fmt::Display for RoundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoundError::Unreachable(e) => write!(f, "primary unreachable: {e:#}"),
            RoundError::Refused(why) => write!(f, "refused the primary's data: {why}"),
        }
    }
}

/// The mirror's state, shared by the follower and the HTTP handlers.
pub struct Mirror {
    /// Base URL of the primary.
    pub primary: String,
    /// The primary's verifier.
    pub verifier: LogVerifier,
    /// The verified copy.
    pub dir: PathBuf,
    /// The newest checkpoint the copy holds everything for.
    current: RwLock<Option<Arc<SignedCheckpoint>>>,
    /// Why the mirror stopped following, if it did.
    alert: Mutex<Option<String>>,
    agent: ureq::Agent,
}

impl Mirror {
    /// Opens (creating) the copy in `dir`; an existing checkpoint there must verify.
    ///
    /// # Errors
    ///
    /// When `dir` cannot be created or holds a checkpoint of another log.
    pub fn open(primary: &str, verifier: LogVerifier, dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("couldn't create {}", dir.display()))?;
        let current = StaticDir::new(&dir).checkpoint(&verifier)?.map(Arc::new);
        Ok(Self {
            primary: primary.trim_end_matches('/').to_string(),
            verifier,
            dir,
            current: RwLock::new(current),
            alert: Mutex::new(None),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
        })
    }

    /// The newest verified checkpoint.
    pub fn checkpoint(&self) -> Option<Arc<SignedCheckpoint>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why the mirror stopped following the primary, if it did.
    pub fn alert(&self) -> Option<String> {
        self.alert.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Follows the primary until a refusal, one round per `interval`.
    pub fn follow(&self, interval: Duration) {
        loop {
            match self.round() {
                Ok(_) => {}
                Err(RoundError::Unreachable(e)) => {
                    tracing::warn!(primary = %self.primary, error = %format!("{e:#}"), "primary unreachable");
                }
                Err(RoundError::Refused(why)) => {
                    tracing::error!(primary = %self.primary, alert = %why, "mirror refused the primary's data and stopped following it");
                    *self.alert.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                    return;
                }
            }
            std::thread::sleep(interval);
        }
    }

    /// Copies what the primary added since the held checkpoint, verifying all of it.
    /// Returns the tree size now held.
    ///
    /// # Errors
    ///
    /// [`RoundError::Refused`] when anything fails verification (nothing is written),
    /// [`RoundError::Unreachable`] when the primary cannot be read or a write fails.
    pub fn round(&self) -> Result<u64, RoundError> {
        let note = self
            .get_found("/checkpoint")
            .map_err(RoundError::Unreachable)?;
        let new = self.verifier.verify(&note).map_err(|e| {
            RoundError::Refused(format!(
                "the primary's checkpoint does not verify with the log key: {e}"
            ))
        })?;
        let old = self.checkpoint();
        if let Some(old) = &old {
            if new.tree_size < old.tree_size {
                return Err(RoundError::Refused(format!(
                    "the primary's tree size {} is smaller than the mirrored {}",
                    new.tree_size, old.tree_size
                )));
            }
            if new.tree_size == old.tree_size {
                if new.root_hash != old.root_hash {
                    return Err(RoundError::Refused(format!(
                        "the primary signed two roots for tree size {}: {} mirrored, {} now",
                        new.tree_size,
                        hex::encode(old.root_hash.0),
                        hex::encode(new.root_hash.0)
                    )));
                }
                return Ok(new.tree_size);
            }
        }
        let previous_size = old.as_ref().map_or(0, |o| o.tree_size);
        let mut tiles = TileSet::new();
        if let Some(old) = &old {
            self.prove(&mut tiles, |s| {
                s.tree(new.tree_size, new.root_hash)
                    .check_consistency(old.tree_size, &old.root_hash)
            })
            .map_err(|e| {
                e.refused(format!(
                    "the primary's checkpoint of tree size {} is not consistent with the mirrored checkpoint of tree size {}",
                    new.tree_size, old.tree_size
                ))
            })?;
        }
        // Each file is verified against the new signed root before it is written, and
        // written as soon as it is verified, so memory stays bounded by a bundle and the
        // hash tiles above it. Files written before a refusal are verified ones below a
        // checkpoint that is not published; a later round of the same (consistent) tree
        // finds them identical.
        let mut dir = StaticDir::new(&self.dir);
        let put = |dir: &mut StaticDir, rel: &str, bytes: &[u8]| -> Result<(), RoundError> {
            if dir.has(rel) {
                return Ok(());
            }
            dir.write(rel, bytes).map_err(RoundError::Unreachable)
        };
        for coord in tiles_from(previous_size, new.tree_size) {
            if !coord.entries {
                self.prove(&mut tiles, |s| {
                    s.tree(new.tree_size, new.root_hash).check_tile(coord)
                })
                .map_err(|e| {
                    e.refused(format!(
                        "tile {} does not match the signed tree",
                        coord.path()
                    ))
                })?;
                let bytes = tiles_bytes(&tiles, coord).map_err(RoundError::Unreachable)?;
                put(&mut dir, &coord.path(), &bytes)?;
                continue;
            }
            let bytes = self.tile(coord).map_err(RoundError::Unreachable)?;
            let entries = self
                .prove(&mut tiles, |s| {
                    s.tree(new.tree_size, new.root_hash)
                        .check_bundle(coord, &bytes)
                        .map(|entries| entries.iter().map(|e| e.to_vec()).collect::<Vec<_>>())
                })
                .map_err(|e| {
                    e.refused(format!(
                        "entry bundle {} does not match the signed tree",
                        coord.path()
                    ))
                })?;
            // The first bundle may hold leaves already mirrored.
            for (index, leaf) in coord.leaf_range().zip(&entries) {
                let rel = format!("{ENTRIES_DIR}/{index}");
                if index < previous_size || dir.has(&rel) {
                    continue;
                }
                let json = self.entry(index, leaf, &new, &mut tiles)?;
                put(&mut dir, &rel, &json)?;
            }
            put(&mut dir, &coord.path(), &bytes)?;
            // Level-0 tiles serve one bundle each; the few tiles above serve all.
            tiles.forget_leaf_tiles();
        }
        dir.publish(&new, previous_size)
            .map_err(RoundError::Unreachable)?;
        let size = new.tree_size;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(new));
        tracing::info!(tree_size = size, written = dir.counts.written, "mirrored");
        Ok(size)
    }

    /// Fetches entry `index` and checks that its envelope and keys rebuild `leaf`; returns
    /// the entry JSON to store, with an inclusion proof against `cp` built from tiles.
    fn entry(
        &self,
        index: u64,
        leaf: &[u8],
        cp: &SignedCheckpoint,
        tiles: &mut TileSet,
    ) -> Result<Vec<u8>, RoundError> {
        let body = self
            .get_found(&format!("/{ENTRIES_DIR}/{index}"))
            .map_err(RoundError::Unreachable)?;
        let refused = |why: String| {
            RoundError::Refused(format!(
                "entry {index}: the envelope the primary serves does not rebuild the leaf the signed tree holds: {why}"
            ))
        };
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| refused(format!("not JSON: {e}")))?;
        let envelope_json = value["envelope"].to_string();
        let envelope = Envelope::from_json(envelope_json.as_bytes())
            .map_err(|e| refused(format!("envelope does not parse: {e}")))?;
        let pems: Vec<String> = value["verifiers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect();
        let keys = pems
            .iter()
            .map(|p| PublicKey::from_pem(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refused(format!("a verifier does not parse: {e}")))?;
        let record = LeafRecord::decode(leaf).map_err(|e| refused(format!("leaf: {e}")))?;
        // The log's caps are admission policy, not part of the record: rebuild without.
        let limits = Limits {
            max_signatures: usize::MAX,
            max_verifiers: usize::MAX,
            max_subjects: usize::MAX,
            max_materials: usize::MAX,
        };
        let admitted = admit(&envelope, &keys, &limits, record.integrated_time_ms)
            .map_err(|e| refused(format!("the envelope fails admission: {e}")))?;
        if admitted.record.encode() != leaf {
            return Err(refused(format!(
                "the rebuilt record is not the leaf (leaf {})",
                base64::engine::general_purpose::STANDARD.encode(leaf)
            )));
        }
        let proof: Vec<Hash> = self
            .prove(tiles, |s| {
                s.tree(cp.tree_size, cp.root_hash).inclusion_proof(index)
            })
            .map_err(|e| e.refused(format!("no inclusion proof of entry {index}")))?;
        let pems: Vec<String> = keys.iter().map(PublicKey::to_pem).collect();
        entry_json(index, leaf, &record, &envelope.to_json(), &pems, &proof, cp)
            .map_err(|e| refused(format!("{e:#}")))
    }

    /// Runs a tile operation, fetching from the primary the hash tiles it reports missing.
    fn prove<T>(
        &self,
        tiles: &mut TileSet,
        op: impl Fn(&TileSet) -> Result<T, TileProofError>,
    ) -> Result<T, ProveError> {
        with_tiles(tiles, |c| self.tile(c), op)
    }

    /// GETs `path` from the primary; `Ok(None)` for 404.
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let url = format!("{}{path}", self.primary);
        let resp = match self.agent.get(&url).call() {
            Ok(resp) => resp,
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            Err(ureq::Error::Status(code, _)) => bail!("{url} answered {code}"),
            Err(e) => bail!("couldn't reach {url}: {e}"),
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
            .ok_or_else(|| anyhow!("{}{path} answered 404", self.primary))
    }

    /// A tile from the primary; a partial tile it no longer serves is read as the prefix
    /// of the full tile it grew into, as C2SP tlog-tiles allows.
    fn tile(&self, coord: TileCoord) -> Result<Vec<u8>> {
        if let Some(data) = self.get(&format!("/{}", coord.path()))? {
            return Ok(data);
        }
        if coord.is_full() {
            bail!("{}/{} answered 404", self.primary, coord.path());
        }
        let data = self.get_found(&format!("/{}", crate::staticdir::full(coord).path()))?;
        Ok(prefix_of_full(coord, data))
    }
}

/// A failed tile operation: the tiles could not be fetched, or they proved otherwise.
pub enum ProveError {
    /// A tile could not be fetched.
    Fetch(anyhow::Error),
    /// The tiles do not prove what was asked.
    Proof(TileProofError),
}

impl ProveError {
    fn refused(self, what: String) -> RoundError {
        match self {
            ProveError::Fetch(e) => RoundError::Unreachable(e),
            ProveError::Proof(e) => RoundError::Refused(format!("{what}: {e}")),
        }
    }
}

/// Runs `op`, inserting the hash tiles it reports missing from `fetch`; a tile of the
/// wrong length is a proof failure.
///
/// # Errors
///
/// [`ProveError::Fetch`] when a tile cannot be fetched, [`ProveError::Proof`] otherwise.
pub fn with_tiles<T>(
    tiles: &mut TileSet,
    fetch: impl Fn(TileCoord) -> Result<Vec<u8>>,
    op: impl Fn(&TileSet) -> Result<T, TileProofError>,
) -> Result<T, ProveError> {
    for _ in 0..MAX_TILE_ROUNDS {
        match op(tiles) {
            Err(TileProofError::Missing { tiles: coords }) => {
                for coord in coords {
                    let data = fetch(coord).map_err(ProveError::Fetch)?;
                    tiles.insert(coord, data).map_err(ProveError::Proof)?;
                }
            }
            other => return other.map_err(ProveError::Proof),
        }
    }
    op(tiles).map_err(ProveError::Proof)
}

/// The first `coord.width` hashes or entries of the full tile's bytes.
pub fn prefix_of_full(coord: TileCoord, data: Vec<u8>) -> Vec<u8> {
    let width = usize::from(coord.width);
    if !coord.entries {
        return data.get(..width * 32).map_or(data.clone(), <[u8]>::to_vec);
    }
    // A malformed full bundle is passed on whole: the bundle check reports it.
    let Ok(entries) = parse_bundle(&data) else {
        return data;
    };
    let mut out = Vec::new();
    for entry in entries.iter().take(width) {
        if push_bundle_entry(&mut out, entry).is_err() {
            return data;
        }
    }
    out
}

/// The bytes of a hash tile held in `tiles` (authenticated by the caller).
fn tiles_bytes(tiles: &TileSet, coord: TileCoord) -> Result<Vec<u8>> {
    tiles
        .get(coord)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| anyhow!("tile {} was checked but is not held", coord.path()))
}

/// Runs `pedigree-server mirror`.
///
/// # Errors
///
/// When the copy cannot be opened, `--once` refuses or cannot reach the primary, or the
/// listen address cannot be bound.
pub fn run(args: &MirrorArgs) -> Result<()> {
    let verifier = LogVerifier::from_vkey(&args.log_key).context("invalid --log-key")?;
    let mirror = Arc::new(Mirror::open(&args.from, verifier, args.data_dir.clone())?);
    if args.once {
        let size = mirror.round().map_err(|e| anyhow!("{e}"))?;
        println!(
            "pedigree-server mirror: {}: tree size {size}, verified",
            args.data_dir.display()
        );
        return Ok(());
    }
    let follower = Arc::clone(&mirror);
    let interval = Duration::from_millis(args.interval_ms);
    std::thread::Builder::new()
        .name("mirror-follow".into())
        .spawn(move || follower.follow(interval))
        .context("couldn't start the follower")?;
    http::serve(mirror, args.listen)
}
