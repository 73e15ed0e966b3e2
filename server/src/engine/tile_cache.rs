//! A bounded in-memory cache of full tiles. A full tile (256 hashes or entries) never
//! changes once the tree contains it, so its bytes can be served again without reading
//! storage; partial tiles change as the tree grows and are never cached.
//!
//! Eviction is first in, first out: tiles are immutable, so which copy is dropped
//! affects only speed. The lock is held for a map lookup or insert, never during I/O.

use pedigree_core::tiles::TileCoord;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Full tiles by coordinate, at most `max_bytes` of tile data.
pub(crate) struct TileCache {
    max_bytes: usize,
    /// Guards the map, the insertion order and the byte count together.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tiles: HashMap<TileCoord, Arc<Vec<u8>>>,
    order: VecDeque<TileCoord>,
    bytes: usize,
}

impl TileCache {
    /// An empty cache holding at most `max_bytes` of tiles.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The cached bytes of a full tile.
    pub(crate) fn get(&self, coord: &TileCoord) -> Option<Arc<Vec<u8>>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.tiles.get(coord).cloned()
    }

    /// Caches a tile if it is full, evicting the oldest tiles beyond the bound.
    pub(crate) fn insert(&self, coord: TileCoord, data: Arc<Vec<u8>>) {
        if !coord.is_full() || data.len() > self.max_bytes {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.tiles.contains_key(&coord) {
            return;
        }
        inner.bytes += data.len();
        inner.tiles.insert(coord, data);
        inner.order.push_back(coord);
        while inner.bytes > self.max_bytes {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(evicted) = inner.tiles.remove(&old) {
                inner.bytes -= evicted.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coord(index: u64, width: u16) -> TileCoord {
        TileCoord {
            level: 0,
            index,
            width,
            entries: false,
        }
    }

    #[test]
    fn only_full_tiles_are_kept_and_the_oldest_go_first() {
        let cache = TileCache::new(20);
        cache.insert(coord(0, 7), Arc::new(vec![0; 8]));
        assert!(cache.get(&coord(0, 7)).is_none(), "partial tiles change");
        cache.insert(coord(1, 256), Arc::new(vec![1; 8]));
        cache.insert(coord(2, 256), Arc::new(vec![2; 8]));
        assert_eq!(cache.get(&coord(1, 256)).unwrap()[0], 1);
        cache.insert(coord(3, 256), Arc::new(vec![3; 8]));
        assert!(cache.get(&coord(1, 256)).is_none(), "evicted first");
        assert_eq!(cache.get(&coord(2, 256)).unwrap()[0], 2);
        assert_eq!(cache.get(&coord(3, 256)).unwrap()[0], 3);
        cache.insert(coord(4, 256), Arc::new(vec![4; 30]));
        assert!(cache.get(&coord(4, 256)).is_none(), "larger than the cache");
    }
}
