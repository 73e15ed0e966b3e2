//! The storage trait under the log engine, and its RocksDB implementation.
//!
//! The trait is deliberately small (point reads, ordered scans, one atomic synced write)
//! so that tests can wrap it to inject faults, and so that the engine's durability
//! argument rests on one promise: [`Store::write`] applies a whole batch or none of it,
//! and returns only once the batch is on stable storage. Column names and key layouts
//! are specified in `spec/storage.md` section 3.

use std::path::Path;
use thiserror::Error;

/// The column families of a Pedigree log (`spec/storage.md` section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// Leaf index (u64 BE) -> leaf record bytes.
    Leaves,
    /// Envelope SHA-256 -> canonical envelope JSON.
    Envelopes,
    /// Key fingerprint -> DER SubjectPublicKeyInfo.
    Keys,
    /// Stored-hash index (u64 BE) -> 32-byte Merkle hash.
    Hashes,
    /// Fixed names -> log metadata (the latest signed checkpoint).
    Meta,
    /// SHA-256(subject digest text) || leaf index -> empty.
    IdxSubject,
    /// Signer key fingerprint || leaf index -> empty.
    IdxSigner,
    /// SHA-256(material digest text) || leaf index -> empty.
    IdxMaterial,
    /// SHA-256(predicate type) || leaf index -> empty.
    IdxPredicate,
    /// Envelope SHA-256 -> leaf index (u64 BE), for idempotent submission.
    Dedup,
}

impl Column {
    /// Every column, in a fixed order.
    pub const ALL: [Column; 10] = [
        Column::Leaves,
        Column::Envelopes,
        Column::Keys,
        Column::Hashes,
        Column::Meta,
        Column::IdxSubject,
        Column::IdxSigner,
        Column::IdxMaterial,
        Column::IdxPredicate,
        Column::Dedup,
    ];

    /// The RocksDB column family name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Leaves => "leaves",
            Column::Envelopes => "envelopes",
            Column::Keys => "keys",
            Column::Hashes => "hashes",
            Column::Meta => "meta",
            Column::IdxSubject => "idx_subject",
            Column::IdxSigner => "idx_signer",
            Column::IdxMaterial => "idx_material",
            Column::IdxPredicate => "idx_predicate",
            Column::Dedup => "dedup",
        }
    }
}

/// A storage failure. Always transient from the client's point of view (503); the
/// engine decides whether its own state is still trustworthy.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The underlying database failed.
    #[error("storage error: {0}")]
    Db(#[from] rocksdb::Error),
    /// An injected or simulated failure (tests), or an I/O failure outside the database.
    #[error("storage error: {0}")]
    Io(String),
}

/// A key and its value, as scans return them.
pub type Row = (Vec<u8>, Vec<u8>);

/// Writes to apply together.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    /// `(column, key, value)` puts, applied in order.
    pub puts: Vec<(Column, Vec<u8>, Vec<u8>)>,
}

impl WriteBatch {
    /// Adds a put.
    pub fn put(&mut self, col: Column, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.puts.push((col, key.into(), value.into()));
    }
}

/// Key-value storage for one log.
pub trait Store: Send + Sync + 'static {
    /// Reads one value.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the read fails.
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Reads several values of one column.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when any read fails.
    fn multi_get(&self, col: Column, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Up to `limit` pairs whose key starts with `prefix` and is `>= start`, in key order.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the scan fails.
    fn scan(
        &self,
        col: Column,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<Row>, StoreError>;

    /// Applies `batch` atomically and durably: when this returns `Ok`, every put is on
    /// stable storage; if the process dies at any point, either all puts survive or none.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the write fails. The batch may or may not have been applied;
    /// the caller must re-read to find out.
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError>;
}

/// A log stored in a RocksDB directory.
pub struct RocksStore {
    db: rocksdb::DB,
}

impl RocksStore {
    /// Opens (creating if needed) the RocksDB database at `path` with every column family.
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`] when RocksDB cannot open the directory.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Self::db_options();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf_descriptors(&opts, path, Self::column_families())?;
        Ok(Self { db })
    }

    /// Opens an existing database without writing to it (for `fsck`): nothing is created,
    /// and the write-ahead log of a crashed server is replayed in memory only.
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`] when there is no database at `path` or RocksDB cannot read it.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let db = rocksdb::DB::open_cf_descriptors_read_only(
            &Self::db_options(),
            path,
            Self::column_families(),
            false,
        )?;
        Ok(Self { db })
    }

    /// Opens the database at `path` as a RocksDB secondary instance, beside a server
    /// that may be writing it (for `export-tiles`). `secondary_path` is a scratch
    /// directory for the instance's own info log. Every table file is kept open
    /// (`max_open_files = -1`, as RocksDB asks of secondaries) so that files the writer
    /// deletes after compactions stay readable for as long as this instance lives.
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`] when there is no database at `path` or RocksDB cannot read it.
    pub fn open_secondary(path: &Path, secondary_path: &Path) -> Result<Self, StoreError> {
        let mut opts = Self::db_options();
        opts.set_max_open_files(-1);
        let db = rocksdb::DB::open_cf_descriptors_as_secondary(
            &opts,
            path,
            secondary_path,
            Self::column_families(),
        )?;
        Ok(Self { db })
    }

    fn db_options() -> rocksdb::Options {
        let mut opts = rocksdb::Options::default();
        opts.set_paranoid_checks(true);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        opts
    }

    fn column_families() -> impl Iterator<Item = rocksdb::ColumnFamilyDescriptor> {
        Column::ALL.iter().map(|c| {
            let mut cf = rocksdb::Options::default();
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_bloom_filter(10.0, false);
            cf.set_block_based_table_factory(&table);
            if *c == Column::Envelopes {
                cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
            } else {
                cf.set_compression_type(rocksdb::DBCompressionType::None);
            }
            rocksdb::ColumnFamilyDescriptor::new(c.name(), cf)
        })
    }

    fn cf(&self, col: Column) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(col.name())
            .ok_or_else(|| StoreError::Io(format!("column family {} missing", col.name())))
    }

    /// Takes a consistent RocksDB checkpoint (hard links where possible) into `to`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Db`] when RocksDB fails.
    pub fn checkpoint_to(&self, to: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(to)?;
        Ok(())
    }
}

impl Store for RocksStore {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(col)?, key)?)
    }

    fn multi_get(&self, col: Column, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let cf = self.cf(col)?;
        self.db
            .batched_multi_get_cf(cf, keys.iter(), false)
            .into_iter()
            .map(|r| Ok(r?.map(|v| v.to_vec())))
            .collect()
    }

    fn scan(
        &self,
        col: Column,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let cf = self.cf(col)?;
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            cf,
            rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward),
        );
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut wb = rocksdb::WriteBatch::default();
        for (col, k, v) in &batch.puts {
            wb.put_cf(self.cf(*col)?, k, v);
        }
        let mut opts = rocksdb::WriteOptions::default();
        // Invariant: nothing is acknowledged before it is fsynced.
        opts.set_sync(true);
        self.db.write_opt(wb, &opts)?;
        Ok(())
    }
}
