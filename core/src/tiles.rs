//! C2SP `tlog-tiles`: tile coordinates, paths and entry bundles.
//!
//! Tiles have height 8: a full tile holds 256 hashes (8 KiB) or 256 entries. Paths are
//!
//! ```text
//! tile/<L>/<N>[.p/<W>]        hashes at tree level 8*L, tile number N, partial width W
//! tile/entries/<N>[.p/<W>]    the leaf entries themselves (an "entry bundle")
//! ```
//!
//! where N is written in groups of three digits, all but the last prefixed with `x`
//! (`1234067` is `x001/x234/067`). `tlog_tiles` implements Go's `sumdb` paths, which
//! carry the height in the path, so the C2SP form is parsed here; tile contents come from
//! `tlog_tiles::Tile::read_data`.

use crate::merkle::{HashReader, ProofError};
use thiserror::Error;

/// Tile height fixed by C2SP tlog-tiles.
pub const TILE_HEIGHT: u8 = 8;
/// Hashes or entries in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
/// Largest entry an entry bundle can carry (its length prefix is 16 bits).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// Why a tile path or entry bundle was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TileError {
    /// The path is not a canonical C2SP tile path.
    #[error("invalid tile path {path:?}")]
    BadPath {
        /// The rejected path (truncated to 100 bytes).
        path: String,
    },
    /// An entry bundle did not parse: a length prefix runs past the end.
    #[error("entry bundle truncated at entry {index}")]
    TruncatedBundle {
        /// Position of the broken entry in the bundle.
        index: usize,
    },
    /// An entry is larger than a bundle can hold.
    #[error("entry of {len} bytes exceeds the {MAX_ENTRY_BYTES}-byte entry limit")]
    EntryTooLarge {
        /// The entry's size.
        len: usize,
    },
}

/// A tile's coordinates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TileCoord {
    /// Tile level (tree level `8 * level`); ignored for entry bundles.
    pub level: u8,
    /// Tile number within the level.
    pub index: u64,
    /// Number of hashes or entries: 1..=256; 256 is a full tile.
    pub width: u16,
    /// An entry bundle (`tile/entries/...`) rather than a hash tile.
    pub entries: bool,
}

impl TileCoord {
    /// Whether this is a full tile (immutable once published).
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// Parses a path relative to the log prefix, e.g. `tile/0/x001/234.p/7`.
    ///
    /// Only the canonical form is accepted (no leading zeros beyond the three-digit
    /// groups, no `.p/256`), so one tile has exactly one path and caches cannot be
    /// poisoned through aliases.
    ///
    /// # Errors
    ///
    /// [`TileError::BadPath`] for anything else.
    pub fn from_path(path: &str) -> Result<Self, TileError> {
        let bad = || TileError::BadPath {
            path: path.chars().take(100).collect(),
        };
        // Bound work on hostile input: the longest canonical path is well under 100 bytes.
        if path.len() > 100 || !path.is_ascii() {
            return Err(bad());
        }
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (kind, rest) = rest.split_once('/').ok_or_else(bad)?;
        let (level, entries) = if kind == "entries" {
            (0, true)
        } else {
            if kind.is_empty() || kind.len() > 2 || !kind.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let level: u8 = kind.parse().map_err(|_| bad())?;
            if level > 63 {
                return Err(bad());
            }
            (level, false)
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((n, w)) => {
                if w.is_empty() || w.len() > 3 || !w.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let w: u16 = w.parse().map_err(|_| bad())?;
                if w == 0 || u64::from(w) >= TILE_WIDTH {
                    return Err(bad());
                }
                (n, w)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let mut index: u64 = 0;
        let groups: Vec<&str> = index_part.split('/').collect();
        for (i, group) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                group.strip_prefix('x').ok_or_else(bad)?
            } else {
                group
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let d: u64 = digits.parse().map_err(|_| bad())?;
            index = index
                .checked_mul(1000)
                .and_then(|n| n.checked_add(d))
                .ok_or_else(bad)?;
        }
        let coord = TileCoord {
            level,
            index,
            width,
            entries,
        };
        if coord.path() != path {
            return Err(bad());
        }
        Ok(coord)
    }

    /// The canonical path of this tile.
    pub fn path(&self) -> String {
        let mut n = self.index;
        let mut s = format!("{:03}", n % 1000);
        while n >= 1000 {
            n /= 1000;
            s = format!("x{:03}/{s}", n % 1000);
        }
        let kind = if self.entries {
            "entries".to_string()
        } else {
            self.level.to_string()
        };
        if self.is_full() {
            format!("tile/{kind}/{s}")
        } else {
            format!("tile/{kind}/{s}.p/{}", self.width)
        }
    }

    /// Number of nodes at this tile's tree level in a tree of `tree_size` leaves.
    fn nodes_at_level(&self, tree_size: u64) -> u64 {
        let shift = u32::from(self.level) * u32::from(TILE_HEIGHT);
        if self.entries || shift == 0 {
            tree_size
        } else if shift >= 64 {
            0
        } else {
            tree_size >> shift
        }
    }

    /// Whether a tree of `tree_size` contains this tile, full or partial: the tile's last
    /// node must exist. A tile may be served at any width the tree has reached.
    pub fn exists_in(&self, tree_size: u64) -> bool {
        let first = self.index.checked_mul(TILE_WIDTH);
        let end = first.and_then(|f| f.checked_add(u64::from(self.width)));
        match end {
            Some(end) => end <= self.nodes_at_level(tree_size),
            None => false,
        }
    }

    /// Leaf indices covered by an entry bundle: `first..first + width`.
    pub fn leaf_range(&self) -> std::ops::Range<u64> {
        let first = self.index.saturating_mul(TILE_WIDTH);
        first..first.saturating_add(u64::from(self.width))
    }

    /// The hash tile's bytes: `width` 32-byte hashes at tree level `8 * level`.
    ///
    /// # Errors
    ///
    /// [`ProofError::Storage`] when the reader fails.
    pub fn read_hash_tile(&self, reader: &impl HashReader) -> Result<Vec<u8>, ProofError> {
        tlog_tiles::Tile::new(
            TILE_HEIGHT,
            self.level,
            self.index,
            u32::from(self.width),
            false,
        )
        .read_data(reader)
        .map_err(ProofError::Storage)
    }
}

/// Appends one entry to an entry bundle: a big-endian u16 length, then the bytes.
///
/// # Errors
///
/// [`TileError::EntryTooLarge`] when the entry exceeds [`MAX_ENTRY_BYTES`].
pub fn push_bundle_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), TileError> {
    let len =
        u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLarge { len: entry.len() })?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// Splits an entry bundle into its entries.
///
/// # Errors
///
/// [`TileError::TruncatedBundle`] when a length prefix runs past the end.
pub fn parse_bundle(mut bundle: &[u8]) -> Result<Vec<&[u8]>, TileError> {
    let mut out = Vec::new();
    while !bundle.is_empty() {
        let index = out.len();
        if bundle.len() < 2 {
            return Err(TileError::TruncatedBundle { index });
        }
        let len = usize::from(u16::from_be_bytes([bundle[0], bundle[1]]));
        let rest = &bundle[2..];
        if rest.len() < len {
            return Err(TileError::TruncatedBundle { index });
        }
        out.push(&rest[..len]);
        bundle = &rest[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, want: Option<(u8, u64, u16, bool)>) {
        let got = TileCoord::from_path(path)
            .ok()
            .map(|c| (c.level, c.index, c.width, c.entries));
        assert_eq!(got, want, "{path}");
    }

    #[test]
    fn tile_paths_parse_canonically() {
        check("tile/0/000", Some((0, 0, 256, false)));
        check("tile/0/x001/x234/067", Some((0, 1_234_067, 256, false)));
        check("tile/1/x001/x234/067.p/8", Some((1, 1_234_067, 8, false)));
        check("tile/entries/000.p/1", Some((0, 0, 1, true)));
        check("tile/entries/x123/456", Some((0, 123_456, 256, true)));
        check("tile/63/000", Some((63, 0, 256, false)));
    }

    #[test]
    fn non_canonical_and_hostile_paths_are_rejected() {
        for p in [
            "",
            "tile",
            "tile/0",
            "tile/0/0",
            "tile/0/0000",
            "tile/00/000",
            "tile/64/000",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/0/000.p/01",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x1/002",
            "tile/-1/000",
            "tile/0/../000",
            "tile/0/%2e%2e/000",
            "tile/data/000",
            "tile/entries/000.p/",
            "tile/0/x018/x446/x744/x073/x709/x551/616",
            "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
            "/tile/0/000",
            "tile/0/000/",
            "tile/0/٠٠٠",
        ] {
            check(p, None);
        }
    }

    #[test]
    fn tile_existence_follows_tree_size() {
        let t = TileCoord::from_path("tile/0/000.p/5").unwrap();
        assert!(!t.exists_in(4));
        assert!(t.exists_in(5));
        assert!(t.exists_in(1000));
        let full1 = TileCoord::from_path("tile/1/000").unwrap();
        assert!(!full1.exists_in(65535));
        assert!(full1.exists_in(65536));
        let huge = TileCoord::from_path("tile/entries/x018/x446/x744/x073/x709/x551/615").unwrap();
        assert!(!huge.exists_in(u64::MAX));
    }

    #[test]
    fn bundles_round_trip_and_reject_truncation() {
        let mut b = Vec::new();
        push_bundle_entry(&mut b, b"abc").unwrap();
        push_bundle_entry(&mut b, b"").unwrap();
        push_bundle_entry(&mut b, &[7; 300]).unwrap();
        let parsed = parse_bundle(&b).unwrap();
        assert_eq!(parsed, vec![&b"abc"[..], &b""[..], &[7u8; 300][..]]);
        assert_eq!(
            parse_bundle(&b[..b.len() - 1]),
            Err(TileError::TruncatedBundle { index: 2 })
        );
        assert_eq!(
            parse_bundle(&[0]),
            Err(TileError::TruncatedBundle { index: 0 })
        );
        assert!(push_bundle_entry(&mut b, &vec![0; 70_000]).is_err());
    }
}
