//! Tile authentication, consistency from tiles and bundle checks, against trees built
//! in memory the way the log engine builds its own.

use super::*;
use crate::tiles::push_bundle_entry;

/// A tree held in memory as stored hashes, built the way the log engine builds its
/// own, so tiles cut from it are the tiles a log serves.
struct MemTree {
    hashes: Vec<Hash>,
    leaves: Vec<Vec<u8>>,
}

impl HashReader for MemTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                self.hashes
                    .get(usize::try_from(i).unwrap())
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl MemTree {
    fn new(size: u64, seed: u8) -> Self {
        let mut t = MemTree {
            hashes: Vec::new(),
            leaves: Vec::new(),
        };
        for i in 0..size {
            let leaf = format!("leaf {i} of history {seed}").into_bytes();
            let new = merkle::stored_hashes_for_leaf(i, merkle::leaf_hash(&leaf), &t).unwrap();
            t.hashes.extend(new);
            t.leaves.push(leaf);
        }
        t
    }

    fn root(&self, size: u64) -> Hash {
        merkle::tree_hash(size, self).unwrap()
    }

    fn tile(&self, coord: TileCoord) -> Vec<u8> {
        coord.read_hash_tile(self).unwrap()
    }

    fn bundle(&self, coord: TileCoord) -> Vec<u8> {
        let mut out = Vec::new();
        for i in coord.leaf_range() {
            push_bundle_entry(&mut out, &self.leaves[usize::try_from(i).unwrap()]).unwrap();
        }
        out
    }
}

/// Runs `op`, fetching what it reports missing from `log`, as a client would.
fn with_fetch<T>(
    set: &mut TileSet,
    log: &MemTree,
    op: impl Fn(&TileSet) -> Result<T, TileProofError>,
) -> (Result<T, TileProofError>, usize) {
    let mut rounds = 0;
    loop {
        match op(set) {
            Err(TileProofError::Missing { tiles }) if rounds < 4 => {
                rounds += 1;
                for coord in tiles {
                    set.insert(coord, log.tile(coord)).unwrap();
                }
            }
            other => return (other, rounds),
        }
    }
}

#[test]
fn tiles_rebuild_old_and_new_roots() {
    // Sizes that cross tile boundaries at levels 0 and 1.
    let log = MemTree::new(70_000, 1);
    for (old, new) in [
        (1, 2),
        (3, 8),
        (255, 256),
        (256, 257),
        (300, 700),
        (513, 65_536),
        (65_535, 70_000),
        (1, 70_000),
    ] {
        let mut set = TileSet::new();
        let root = log.root(new);
        let (got, rounds) = with_fetch(&mut set, &log, |s| s.tree(new, root).root_at(old));
        assert_eq!(got.unwrap(), log.root(old), "root of {old} in {new}");
        assert_eq!(rounds, 1, "one round of fetching for {old}..{new}");
        let (ok, _) = with_fetch(&mut set, &log, |s| {
            s.tree(new, root).check_consistency(old, &log.root(old))
        });
        ok.unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
    }
}

#[test]
fn consistency_rejects_another_history_under_the_same_sizes() {
    let a = MemTree::new(300, 1);
    let b = MemTree::new(700, 2);
    let mut set = TileSet::new();
    let (got, _) = with_fetch(&mut set, &b, |s| {
        s.tree(700, b.root(700))
            .check_consistency(300, &a.root(300))
    });
    match got {
        Err(TileProofError::DifferentHistory {
            old_size: 300,
            computed,
            ..
        }) => assert_eq!(computed, b.root(300)),
        other => panic!("want DifferentHistory, got {other:?}"),
    }
}

#[test]
fn consistency_rejects_shrinking_and_same_size_forks() {
    let set = TileSet::new();
    let tree = set.tree(5, Hash([1; 32]));
    assert!(matches!(
        tree.check_consistency(6, &Hash([1; 32])),
        Err(TileProofError::Proof(ProofError::SizeShrinks {
            old_size: 6,
            new_size: 5
        }))
    ));
    assert!(matches!(
        tree.check_consistency(5, &Hash([2; 32])),
        Err(TileProofError::Proof(ProofError::DifferentRootsForSize {
            tree_size: 5
        }))
    ));
    assert!(tree.check_consistency(5, &Hash([1; 32])).is_ok());
    assert!(set.tree(0, EMPTY_TREE_HASH).root_at(0).is_ok());
}

#[test]
fn tampered_tile_is_rejected() {
    let log = MemTree::new(1000, 1);
    let root = log.root(1000);
    let mut set = TileSet::new();
    let read_all = |s: &TileSet| s.tree(1000, root).leaf_hashes(0..1000);
    let (got, _) = with_fetch(&mut set, &log, read_all);
    let leaves: Vec<Hash> = log.leaves.iter().map(|l| merkle::leaf_hash(l)).collect();
    assert_eq!(got.unwrap(), leaves);
    assert_eq!(set.len(), 5, "four level-0 tiles and one level-1 tile");
    let Err(TileProofError::Missing { tiles: for_root }) =
        TileSet::new().tree(1000, root).root_at(600)
    else {
        panic!("an empty set has no tiles")
    };
    assert_eq!(
        for_root.len(),
        3,
        "tile/0/002, tile/0/003.p/232, tile/1/000.p/3"
    );
    // Flip one bit of each tile in turn, full tiles and right-edge tiles alike: every
    // read that uses the tile must fail, whichever hash of it is asked for.
    let coords: Vec<TileCoord> = set.tiles.keys().copied().collect();
    for coord in coords {
        let good = set.tiles[&coord].clone();
        let mut bad = good.clone();
        bad[7] ^= 1;
        set.insert(coord, bad).unwrap();
        let mut reads = vec![read_all(&set).map(|_| ())];
        if for_root.contains(&coord) {
            reads.push(set.tree(1000, root).root_at(600).map(|_| ()));
        }
        for got in reads {
            assert!(
                matches!(got, Err(TileProofError::TilesInconsistent { .. })),
                "tampered {} gave {got:?}",
                coord.path()
            );
        }
        set.insert(coord, good).unwrap();
    }
    assert_eq!(set.tree(1000, root).root_at(600).unwrap(), log.root(600));
}

#[test]
fn tiles_of_the_right_tree_do_not_prove_a_wrong_root() {
    let log = MemTree::new(600, 1);
    let mut set = TileSet::new();
    let (got, _) = with_fetch(&mut set, &log, |s| s.tree(600, Hash([9; 32])).root_at(10));
    assert!(matches!(
        got,
        Err(TileProofError::TilesInconsistent { tree_size: 600, .. })
    ));
}

#[test]
fn wrong_length_and_bundle_coordinates_are_refused() {
    let mut set = TileSet::new();
    let coord = tile_for(0, 0, 5).unwrap();
    assert_eq!(coord.width, 5);
    assert!(matches!(
        set.insert(coord, vec![0; 31]),
        Err(TileProofError::WrongLength {
            len_bytes: 31,
            want_bytes: 160,
            ..
        })
    ));
    assert!(matches!(
        set.insert(bundle_for(0, 5).unwrap(), vec![0; 160]),
        Err(TileProofError::NotHashTile { .. })
    ));
}

#[test]
fn bundles_are_checked_entry_by_entry() {
    let log = MemTree::new(600, 1);
    let root = log.root(600);
    let mut set = TileSet::new();
    for leaf in [0, 255, 256, 599] {
        let coord = bundle_for(leaf, 600).unwrap();
        let bundle = log.bundle(coord);
        let (got, _) = with_fetch(&mut set, &log, |s| {
            s.tree(600, root)
                .check_bundle(coord, &bundle)
                .map(|e| e.len())
        });
        assert_eq!(got.unwrap(), usize::from(coord.width));
    }
    // A bundle from another history, and one entry short.
    let other = MemTree::new(600, 2);
    let coord = bundle_for(300, 600).unwrap();
    assert_eq!((coord.index, coord.width), (1, 256));
    let forged = other.bundle(coord);
    assert!(matches!(
        set.tree(600, root).check_bundle(coord, &forged),
        Err(TileProofError::LeafMismatch {
            leaf_index: 256,
            ..
        })
    ));
    let good = log.bundle(coord);
    let short = &good[..good.len() - log.leaves[511].len() - 2];
    assert!(matches!(
        set.tree(600, root).check_bundle(coord, short),
        Err(TileProofError::BundleWidth { count: 255, .. })
    ));
}

#[test]
fn tile_coordinates_follow_the_tree_size() {
    let c = |l, n, size| tile_for(l, n, size).map(|t| (t.index, t.width));
    assert_eq!(c(0, 0, 1), Some((0, 1)));
    assert_eq!(c(0, 255, 256), Some((0, 256)));
    assert_eq!(c(0, 256, 256), None);
    assert_eq!(c(0, 300, 1000), Some((1, 256)));
    assert_eq!(c(0, 999, 1000), Some((3, 232)));
    assert_eq!(c(1, 0, 1000), Some((0, 3)));
    assert_eq!(c(1, 0, 255), None);
    assert_eq!(c(63, 0, u64::MAX), None);
    assert_eq!(
        bundle_for(999, 1000).unwrap().path(),
        "tile/entries/003.p/232"
    );
}

#[test]
fn check_tile_accepts_the_tree_s_tiles_and_rejects_a_tampered_one() {
    let log = MemTree::new(70_000, 4);
    let root = log.root(70_000);
    let mut set = TileSet::new();
    // Every hash tile of the tree at its width: four levels, right edges and full tiles.
    let coords: Vec<TileCoord> = (0..3u8)
        .flat_map(|level| {
            let nodes = 70_000u64 >> (8 * u32::from(level));
            (0..nodes.div_ceil(256)).filter_map(move |i| tile_for(level, i * 256, 70_000))
        })
        .collect();
    for &coord in &coords {
        let (got, _) = with_fetch(&mut set, &log, |s| s.tree(70_000, root).check_tile(coord));
        got.unwrap_or_else(|e| panic!("{}: {e}", coord.path()));
    }
    let beyond = TileCoord {
        level: 0,
        index: 300,
        width: 256,
        entries: false,
    };
    assert!(matches!(
        set.tree(70_000, root).check_tile(beyond),
        Err(TileProofError::OutOfRange { .. })
    ));
    for coord in [coords[3], *coords.last().unwrap()] {
        let good = set.tiles[&coord].clone();
        let mut bad = good.clone();
        bad[7] ^= 1;
        set.insert(coord, bad).unwrap();
        assert!(
            matches!(
                set.tree(70_000, root).check_tile(coord),
                Err(TileProofError::TilesInconsistent { .. })
            ),
            "tampered {} passed",
            coord.path()
        );
        set.insert(coord, good).unwrap();
    }
}

#[test]
fn proofs_from_tiles_verify() {
    let log = MemTree::new(1000, 5);
    let root = log.root(1000);
    let mut set = TileSet::new();
    for index in [0u64, 255, 256, 999] {
        let (proof, _) = with_fetch(&mut set, &log, |s| {
            s.tree(1000, root).inclusion_proof(index)
        });
        let leaf = merkle::leaf_hash(&log.leaves[usize::try_from(index).unwrap()]);
        merkle::verify_inclusion(index, 1000, &leaf.0, &proof.unwrap(), &root.0).unwrap();
    }
    for old in [1u64, 256, 600, 999] {
        let (proof, _) = with_fetch(&mut set, &log, |s| {
            s.tree(1000, root).consistency_proof(old)
        });
        merkle::verify_consistency(old, 1000, &proof.unwrap(), &log.root(old).0, &root.0).unwrap();
    }
}
