//! Reading a log's tree from the C2SP hash tiles it serves, trusting nothing but a signed
//! checkpoint.
//!
//! A client that holds a verified checkpoint (tree size and root) fetches the hash tiles
//! of `tile/<L>/<N>[.p/<W>]` and reads stored hashes out of them. Before any hash in a
//! tile is used, the tile is authenticated: the tiles on the tree's right edge must
//! rebuild the signed root, and every other tile must hash to the node its parent tile
//! holds. This is the method of Go's `tlog.TileHashReader` (the `go.sum` database
//! client), written here rather than taken from `tlog_tiles`: its port of that reader
//! skips the parent check for some tiles when several right-edge nodes share a tile, so
//! a tampered level-0 tile could pass (`tampered_tile_is_rejected` below covers it).
//!
//! With authenticated hashes a client needs no proof from the log: it computes the root
//! of any earlier tree size itself ([`TiledTree::root_at`]), builds and checks the
//! consistency proof from an older checkpoint ([`TiledTree::check_consistency`]), and
//! checks that an entry bundle holds exactly the leaves the tree commits to
//! ([`TiledTree::check_bundle`]).
//!
//! No I/O: the caller fetches tiles and hands the bytes to a [`TileSet`]. An operation
//! that needs a tile the set lacks fails with [`TileProofError::Missing`] naming every
//! tile it needs; the caller fetches those and runs the operation again. Each operation
//! reads its hashes in one batch, so one round of fetching is enough.

use crate::merkle::{self, Hash, HashReader, ProofError, EMPTY_TREE_HASH, HASH_SIZE};
use crate::tiles::{parse_bundle, TileCoord, TileError, TILE_HEIGHT};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use thiserror::Error;

/// Why tiles could not prove what was asked of them.
#[derive(Debug, Error)]
pub enum TileProofError {
    /// Tiles the operation needs are not in the set yet; fetch them and try again.
    #[error("{} hash tiles are not fetched yet", tiles.len())]
    Missing {
        /// The tiles to fetch, each once.
        tiles: Vec<TileCoord>,
    },
    /// A tile handed in is not a hash tile.
    #[error("{path} is not a hash tile")]
    NotHashTile {
        /// The tile's path.
        path: String,
    },
    /// A hash tile's bytes do not match its width.
    #[error("tile {path} is {len_bytes} bytes long, want {want_bytes}")]
    WrongLength {
        /// The tile's path.
        path: String,
        /// Bytes handed in.
        len_bytes: usize,
        /// `width * 32`.
        want_bytes: usize,
    },
    /// The tiles do not rebuild the signed root, or a tile does not hash to the node its
    /// parent tile holds: the log serves tiles of another tree than the one it signed.
    #[error("hash tiles do not rebuild the root of tree size {tree_size}: {source}")]
    TilesInconsistent {
        /// The tree the tiles were read for.
        tree_size: u64,
        /// What `tlog_tiles` found.
        #[source]
        source: tlog_tiles::Error,
    },
    /// The tree's first `old_size` leaves have another root than the one expected: the
    /// two trees are not one history.
    #[error(
        "tree size {tree_size} contains a tree of size {old_size} with root {}, not {}",
        hex::encode(computed.0),
        hex::encode(old_root.0)
    )]
    DifferentHistory {
        /// The older tree's size.
        old_size: u64,
        /// The root the older checkpoint claims.
        old_root: Hash,
        /// The newer tree's size.
        tree_size: u64,
        /// The root of the first `old_size` leaves, computed from authenticated tiles.
        computed: Hash,
    },
    /// A proof check failed: the older tree is larger, or equal sizes have different
    /// roots, or the proof built from the tiles does not verify.
    #[error("{0}")]
    Proof(#[source] ProofError),
    /// Leaves were asked for beyond the tree.
    #[error("leaves {}..{} are not all inside tree size {tree_size}", range.start, range.end)]
    OutOfRange {
        /// The leaves asked for.
        range: Range<u64>,
        /// The tree's size.
        tree_size: u64,
    },
    /// An entry bundle does not parse.
    #[error("entry bundle {path}: {source}")]
    Bundle {
        /// The bundle's path.
        path: String,
        /// The parse error.
        #[source]
        source: TileError,
    },
    /// An entry bundle holds another number of entries than its width.
    #[error("entry bundle {path} holds {count} entries, want {width}")]
    BundleWidth {
        /// The bundle's path.
        path: String,
        /// Entries found.
        count: usize,
        /// Entries the path promises.
        width: u16,
    },
    /// An entry in a bundle is not the leaf the tree commits to.
    #[error(
        "entry {leaf_index} hashes to {}, but the tree's leaf hash is {}",
        hex::encode(got.0),
        hex::encode(want.0)
    )]
    LeafMismatch {
        /// The entry's index in the log.
        leaf_index: u64,
        /// The hash of the bundle's entry.
        got: Hash,
        /// The leaf hash in the authenticated level-0 tile.
        want: Hash,
    },
}

/// Hash tiles fetched from one log, keyed by coordinates (width included: a partial
/// tile and the full tile it grows into are different tiles).
///
/// Tiles are stored as handed in; nothing in a set is trusted until a [`TiledTree`]
/// authenticates it against a signed root, which it does on every read.
#[derive(Debug, Default)]
pub struct TileSet {
    tiles: HashMap<TileCoord, Vec<u8>>,
    /// Tiles the last read asked for and did not find. Interior mutability because
    /// [`HashReader::read_hashes`] reads through `&self`.
    missing: RefCell<Vec<TileCoord>>,
}

impl TileSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a hash tile's bytes.
    ///
    /// # Errors
    ///
    /// [`TileProofError::NotHashTile`] for an entry bundle's coordinates and
    /// [`TileProofError::WrongLength`] when the bytes are not `width * 32` long.
    pub fn insert(&mut self, coord: TileCoord, data: Vec<u8>) -> Result<(), TileProofError> {
        if coord.entries {
            return Err(TileProofError::NotHashTile { path: coord.path() });
        }
        let want_bytes = usize::from(coord.width) * HASH_SIZE;
        if data.len() != want_bytes {
            return Err(TileProofError::WrongLength {
                path: coord.path(),
                len_bytes: data.len(),
                want_bytes,
            });
        }
        self.tiles.insert(coord, data);
        Ok(())
    }

    /// The bytes held for `coord`, as inserted (authenticated only once a read of the
    /// tree has used them, e.g. [`TiledTree::check_tile`]).
    pub fn get(&self, coord: TileCoord) -> Option<&[u8]> {
        self.tiles.get(&coord).map(Vec::as_slice)
    }

    /// Number of tiles held.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether no tile is held.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// Drops the level-0 tiles (the leaf hashes): a client reading the log in order needs
    /// each only once, while the few tiles above it serve every read.
    pub fn forget_leaf_tiles(&mut self) {
        self.tiles.retain(|coord, _| coord.level > 0);
    }

    /// The tree of `tree_size` leaves with root `root_hash`, read from these tiles.
    /// Both must come from a checkpoint the caller has verified.
    pub fn tree(&self, tree_size: u64, root_hash: Hash) -> TiledTree<'_> {
        TiledTree {
            tree_size,
            root_hash,
            tiles: self,
        }
    }

    fn take_missing(&self) -> Vec<TileCoord> {
        std::mem::take(&mut *self.missing.borrow_mut())
    }
}

/// A tree known by a verified checkpoint, whose stored hashes are read from a
/// [`TileSet`]. Every hash it returns comes from tiles authenticated against the root.
#[derive(Clone, Copy, Debug)]
pub struct TiledTree<'a> {
    tree_size: u64,
    root_hash: Hash,
    tiles: &'a TileSet,
}

/// Where a stored hash lives: the tile (at the tree's width) and the slice of the
/// tile's hashes whose subtree hash it is.
struct NodeSpot {
    coord: TileCoord,
    first: usize,
    count: usize,
}

impl HashReader for TiledTree<'_> {
    /// Reads stored hashes (Go `tlog` numbering) in one batch: every tile they need is
    /// authenticated first, or nothing is returned.
    ///
    /// The tiles on the tree's right edge (the partial tile of each level) must rebuild
    /// the signed root; every full tile must hash to the node its parent tile holds,
    /// up to a right-edge tile. A missing tile is recorded for [`TileProofError::Missing`].
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        let spots = indexes
            .iter()
            .map(|&index| self.spot(index))
            .collect::<Result<Vec<_>, _>>()?;
        let edge = self.right_edge();
        // Every tile any hash depends on: the right edge, the tiles holding the hashes,
        // and the chain of parents from each of those up to the right edge.
        let mut needed: Vec<TileCoord> = edge.clone();
        for spot in &spots {
            let mut coord = spot.coord;
            while !needed.contains(&coord) {
                needed.push(coord);
                coord = self.parent(coord)?;
            }
        }
        let missing: Vec<TileCoord> = needed
            .iter()
            .filter(|c| !self.tiles.tiles.contains_key(c))
            .copied()
            .collect();
        if !missing.is_empty() {
            *self.tiles.missing.borrow_mut() = missing;
            return Err(tlog_tiles::Error::InvalidInput(
                "hash tiles not fetched".into(),
            ));
        }
        self.check_right_edge(&edge)?;
        let mut trusted = edge;
        for spot in &spots {
            self.authenticate(spot.coord, &mut trusted)?;
        }
        Ok(spots
            .iter()
            .map(|spot| {
                let data = &self.tiles.tiles[&spot.coord];
                subtree_hash(&data[spot.first * HASH_SIZE..(spot.first + spot.count) * HASH_SIZE])
            })
            .collect())
    }
}

/// RFC 6962 hash of the perfect subtree whose leaves (at some level) are `data`'s
/// 32-byte hashes; `data` holds a power of two of them.
fn subtree_hash(data: &[u8]) -> Hash {
    if data.len() <= HASH_SIZE {
        let mut h = [0; HASH_SIZE];
        h[..data.len()].copy_from_slice(data);
        return Hash(h);
    }
    let half = data.len() / 2;
    merkle::node_hash(subtree_hash(&data[..half]), subtree_hash(&data[half..]))
}

impl TiledTree<'_> {
    /// Nodes at tree level `8 * level`.
    fn nodes_at(&self, level: u8) -> u64 {
        self.tree_size
            .checked_shr(u32::from(level) * u32::from(TILE_HEIGHT))
            .unwrap_or(0)
    }

    /// The tile and slice holding stored hash `index`.
    fn spot(&self, index: u64) -> Result<NodeSpot, tlog_tiles::Error> {
        if index >= merkle::stored_hash_count(self.tree_size) {
            return Err(tlog_tiles::Error::IndexesNotInTree);
        }
        let (node_level, n) = merkle::split_stored_hash_index(index);
        let level = node_level / TILE_HEIGHT;
        let within = u32::from(node_level % TILE_HEIGHT);
        // The node covers `1 << within` hashes at the tile level, from `n << within`.
        let first = n.checked_shl(within).ok_or(tlog_tiles::Error::BadMath)?;
        let count = 1u64 << within;
        if first + count > self.nodes_at(level) {
            return Err(tlog_tiles::Error::IndexesNotInTree);
        }
        let coord = tile_for(level, first, self.tree_size).ok_or(tlog_tiles::Error::BadMath)?;
        let offset = first - coord.index * crate::tiles::TILE_WIDTH;
        Ok(NodeSpot {
            coord,
            first: usize::try_from(offset).map_err(|_| tlog_tiles::Error::BadMath)?,
            count: usize::try_from(count).map_err(|_| tlog_tiles::Error::BadMath)?,
        })
    }

    /// The partial tile of each level, bottom up: together they hold the roots of the
    /// perfect subtrees the tree splits into (RFC 9162 section 2.1.1), and nothing else.
    fn right_edge(&self) -> Vec<TileCoord> {
        (0..64u8)
            .map_while(|level| {
                let nodes = self.nodes_at(level);
                (nodes > 0).then_some((level, nodes))
            })
            .filter(|(_, nodes)| nodes % crate::tiles::TILE_WIDTH != 0)
            .filter_map(|(level, nodes)| tile_for(level, nodes - 1, self.tree_size))
            .collect()
    }

    /// The tile holding the hash of `coord`'s whole subtree: its parent at the tree's width.
    fn parent(&self, coord: TileCoord) -> Result<TileCoord, tlog_tiles::Error> {
        let level = coord
            .level
            .checked_add(1)
            .ok_or(tlog_tiles::Error::BadMath)?;
        tile_for(level, coord.index, self.tree_size).ok_or(tlog_tiles::Error::BadMath)
    }

    /// Checks that the right-edge tiles rebuild the signed root: each partial tile of
    /// width `w` holds, left to right, the perfect subtrees of the set bits of `w`.
    fn check_right_edge(&self, edge: &[TileCoord]) -> Result<(), tlog_tiles::Error> {
        let mut roots = Vec::new();
        for coord in edge.iter().rev() {
            let data = &self.tiles.tiles[coord];
            let mut first = 0usize;
            for bit in (0..TILE_HEIGHT).rev() {
                let count = 1usize << bit;
                if usize::from(coord.width) & count != 0 {
                    roots.push(subtree_hash(
                        &data[first * HASH_SIZE..(first + count) * HASH_SIZE],
                    ));
                    first += count;
                }
            }
        }
        let mut acc = roots.pop().ok_or(tlog_tiles::Error::BadMath)?;
        while let Some(left) = roots.pop() {
            acc = merkle::node_hash(left, acc);
        }
        if acc == self.root_hash {
            Ok(())
        } else {
            Err(tlog_tiles::Error::InconsistentTile)
        }
    }

    /// Authenticates a tile through its parents: a full tile's subtree hash must be the
    /// hash its parent holds for it, and the parent must be trusted in turn.
    fn authenticate(
        &self,
        coord: TileCoord,
        trusted: &mut Vec<TileCoord>,
    ) -> Result<(), tlog_tiles::Error> {
        if trusted.contains(&coord) {
            return Ok(());
        }
        if !coord.is_full() {
            // Only the right edge has partial tiles, and it is trusted already.
            return Err(tlog_tiles::Error::BadMath);
        }
        let parent = self.parent(coord)?;
        self.authenticate(parent, trusted)?;
        let slot = usize::try_from(coord.index % crate::tiles::TILE_WIDTH)
            .map_err(|_| tlog_tiles::Error::BadMath)?;
        let parent_data = &self.tiles.tiles[&parent];
        let held = &parent_data[slot * HASH_SIZE..(slot + 1) * HASH_SIZE];
        if subtree_hash(&self.tiles.tiles[&coord]).0 != held {
            return Err(tlog_tiles::Error::InconsistentTile);
        }
        trusted.push(coord);
        Ok(())
    }

    /// The tree's size.
    pub fn tree_size(&self) -> u64 {
        self.tree_size
    }

    /// The tree's root hash.
    pub fn root_hash(&self) -> Hash {
        self.root_hash
    }

    /// Sorts a failed read into tiles still to fetch and tiles that fail authentication.
    fn read_error(&self, err: ProofError) -> TileProofError {
        let missing = self.tiles.take_missing();
        match err {
            _ if !missing.is_empty() => TileProofError::Missing { tiles: missing },
            ProofError::Storage(source) => TileProofError::TilesInconsistent {
                tree_size: self.tree_size,
                source,
            },
            other => TileProofError::Proof(other),
        }
    }

    /// The root of the tree of the first `old_size` leaves, computed from authenticated
    /// tiles (RFC 9162 `MTH(D[0:old_size])`).
    ///
    /// # Errors
    ///
    /// [`TileProofError::Missing`] for tiles still to fetch,
    /// [`TileProofError::TilesInconsistent`] when the tiles fail authentication, and
    /// [`TileProofError::Proof`] with [`ProofError::SizeShrinks`] when `old_size` is
    /// beyond the tree.
    pub fn root_at(&self, old_size: u64) -> Result<Hash, TileProofError> {
        if old_size > self.tree_size {
            return Err(TileProofError::Proof(ProofError::SizeShrinks {
                old_size,
                new_size: self.tree_size,
            }));
        }
        if old_size == 0 {
            return Ok(EMPTY_TREE_HASH);
        }
        self.tiles.take_missing();
        merkle::tree_hash(old_size, self).map_err(|e| self.read_error(e))
    }

    /// Checks that the tree of `old_size` leaves with root `old_root` is a prefix of this
    /// tree: the root of this tree's first `old_size` leaves must be `old_root`, and the
    /// consistency proof built from the tiles must verify with
    /// [`merkle::verify_consistency`] between the two roots.
    ///
    /// # Errors
    ///
    /// [`TileProofError::DifferentHistory`] when the trees diverge,
    /// [`TileProofError::Proof`] when `old_size` is larger than this tree
    /// ([`ProofError::SizeShrinks`]) or equal with another root
    /// ([`ProofError::DifferentRootsForSize`]), and otherwise as [`TiledTree::root_at`].
    pub fn check_consistency(&self, old_size: u64, old_root: &Hash) -> Result<(), TileProofError> {
        if old_size >= self.tree_size {
            let no_proof: [Hash; 0] = [];
            return merkle::verify_consistency(
                old_size,
                self.tree_size,
                &no_proof,
                &old_root.0,
                &self.root_hash.0,
            )
            .map_err(TileProofError::Proof);
        }
        let computed = self.root_at(old_size)?;
        if computed != *old_root {
            return Err(TileProofError::DifferentHistory {
                old_size,
                old_root: *old_root,
                tree_size: self.tree_size,
                computed,
            });
        }
        if old_size == 0 {
            return Ok(());
        }
        self.tiles.take_missing();
        let proof = merkle::prove_consistency(old_size, self.tree_size, self)
            .map_err(|e| self.read_error(e))?;
        merkle::verify_consistency(
            old_size,
            self.tree_size,
            &proof,
            &old_root.0,
            &self.root_hash.0,
        )
        .map_err(TileProofError::Proof)
    }

    /// Authenticates the hash tile `coord` (at the width this tree gives it) against the
    /// root, as every read from it would: a mirror calls this on each tile it stores.
    ///
    /// # Errors
    ///
    /// [`TileProofError::NotHashTile`] for an entry bundle, [`TileProofError::OutOfRange`]
    /// for a tile this tree does not hold at that width, and otherwise as
    /// [`TiledTree::root_at`].
    pub fn check_tile(&self, coord: TileCoord) -> Result<(), TileProofError> {
        if coord.entries {
            return Err(TileProofError::NotHashTile { path: coord.path() });
        }
        let first = coord.index.saturating_mul(crate::tiles::TILE_WIDTH);
        if tile_for(coord.level, first, self.tree_size) != Some(coord) {
            let shift = u32::from(coord.level) * u32::from(TILE_HEIGHT);
            return Err(TileProofError::OutOfRange {
                range: first.checked_shl(shift).unwrap_or(u64::MAX)..u64::MAX,
                tree_size: self.tree_size,
            });
        }
        let index = merkle::stored_hash_index(coord.level * TILE_HEIGHT, first);
        self.tiles.take_missing();
        self.read_hashes(&[index])
            .map(|_| ())
            .map_err(|e| self.read_error(ProofError::Storage(e)))
    }

    /// The inclusion proof of `leaf_index` in this tree, built from authenticated tiles.
    ///
    /// # Errors
    ///
    /// [`TileProofError::Proof`] for an index outside the tree, and otherwise as
    /// [`TiledTree::root_at`].
    pub fn inclusion_proof(&self, leaf_index: u64) -> Result<Vec<Hash>, TileProofError> {
        self.tiles.take_missing();
        merkle::prove_inclusion(leaf_index, self.tree_size, self).map_err(|e| self.read_error(e))
    }

    /// The consistency proof from the tree of `old_size` leaves to this one, built from
    /// authenticated tiles.
    ///
    /// # Errors
    ///
    /// [`TileProofError::Proof`] when `old_size` is 0 or beyond the tree, and otherwise
    /// as [`TiledTree::root_at`].
    pub fn consistency_proof(&self, old_size: u64) -> Result<Vec<Hash>, TileProofError> {
        self.tiles.take_missing();
        merkle::prove_consistency(old_size, self.tree_size, self).map_err(|e| self.read_error(e))
    }

    /// The leaf hashes of `range`, from authenticated level-0 tiles.
    ///
    /// # Errors
    ///
    /// [`TileProofError::OutOfRange`] when the range reaches past the tree, and otherwise
    /// as [`TiledTree::root_at`].
    pub fn leaf_hashes(&self, range: Range<u64>) -> Result<Vec<Hash>, TileProofError> {
        if range.end > self.tree_size || range.start > range.end {
            return Err(TileProofError::OutOfRange {
                range,
                tree_size: self.tree_size,
            });
        }
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let indexes: Vec<u64> = range.map(|i| merkle::stored_hash_index(0, i)).collect();
        self.tiles.take_missing();
        self.read_hashes(&indexes)
            .map_err(|e| self.read_error(ProofError::Storage(e)))
    }

    /// Checks an entry bundle against the tree: it must hold exactly `coord.width`
    /// entries, and entry `i` must hash (RFC 6962 leaf hash) to leaf `first + i` of the
    /// authenticated level-0 tiles. Returns the entries, now proven to be the log's.
    ///
    /// # Errors
    ///
    /// [`TileProofError::Bundle`] or [`TileProofError::BundleWidth`] for a malformed
    /// bundle, [`TileProofError::LeafMismatch`] for the first entry that is not the
    /// tree's leaf, and otherwise as [`TiledTree::leaf_hashes`].
    pub fn check_bundle<'b>(
        &self,
        coord: TileCoord,
        bundle: &'b [u8],
    ) -> Result<Vec<&'b [u8]>, TileProofError> {
        let path = coord.path();
        if !coord.entries {
            return Err(TileProofError::Bundle {
                path: path.clone(),
                source: TileError::BadPath { path },
            });
        }
        let entries = parse_bundle(bundle).map_err(|source| TileProofError::Bundle {
            path: path.clone(),
            source,
        })?;
        if entries.len() != usize::from(coord.width) {
            return Err(TileProofError::BundleWidth {
                path,
                count: entries.len(),
                width: coord.width,
            });
        }
        let range = coord.leaf_range();
        let hashes = self.leaf_hashes(range.clone())?;
        for ((leaf_index, entry), want) in range.zip(&entries).zip(hashes) {
            let got = merkle::leaf_hash(entry);
            if got != want {
                return Err(TileProofError::LeafMismatch {
                    leaf_index,
                    got,
                    want,
                });
            }
        }
        Ok(entries)
    }
}

/// The hash tile of a tree of `tree_size` leaves that holds the node `index` at tile
/// level `level`, at the width that tree gives it; `None` beyond the tree.
pub fn tile_for(level: u8, index: u64, tree_size: u64) -> Option<TileCoord> {
    let shift = u32::from(level) * u32::from(TILE_HEIGHT);
    let nodes = tree_size.checked_shr(shift).unwrap_or(0);
    if index >= nodes {
        return None;
    }
    let tile = index / crate::tiles::TILE_WIDTH;
    let first = tile * crate::tiles::TILE_WIDTH;
    let width = (nodes - first).min(crate::tiles::TILE_WIDTH);
    Some(TileCoord {
        level,
        index: tile,
        width: u16::try_from(width).ok()?,
        entries: false,
    })
}

/// The entry bundle of a tree of `tree_size` leaves that holds leaf `leaf_index`, at the
/// width that tree gives it; `None` beyond the tree.
pub fn bundle_for(leaf_index: u64, tree_size: u64) -> Option<TileCoord> {
    tile_for(0, leaf_index, tree_size).map(|coord| TileCoord {
        entries: true,
        ..coord
    })
}

#[cfg(test)]
mod tests;
