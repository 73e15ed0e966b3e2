//! Manifest verification (spec section 8.4) without I/O: which files and shards to
//! hash, and whether what was hashed matches what was signed.
//!
//! The caller lists the model's files (after ignore paths), asks [`Manifest::plan`]
//! what to hash, hashes it, and hands the digests to [`Manifest::compare`].

use std::collections::{BTreeMap, HashMap};

use thiserror::Error;

use super::{Manifest, Method, Resource, ResourceName, SINGLE_FILE_NAME};

/// A regular file of the model as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalFile {
    /// Canonical path relative to the model root; for a single-file model, its
    /// basename.
    pub path: String,
    /// Its size.
    pub size_bytes: u64,
}

/// Something to hash: one file, or one shard of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    /// The resource as the manifest names it (the range, if any, is what to read).
    pub name: ResourceName,
    /// Index of the file in the slice given to [`Manifest::plan`].
    pub file: usize,
}

/// One way a model differs from its signed manifest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Error)]
pub enum Mismatch {
    /// A signed file is not in the model.
    #[error("missing file {path}")]
    Missing {
        /// The file's path in the manifest.
        path: String,
    },
    /// The model has a file the manifest does not list.
    #[error("unsigned file {path}")]
    Unsigned {
        /// The file's path in the model.
        path: String,
    },
    /// A sharded file's size differs from the size its shards add up to.
    #[error("file {path} has {found_bytes} bytes, signed {signed_bytes}")]
    Size {
        /// The file's path.
        path: String,
        /// The size the signed shards cover.
        signed_bytes: u64,
        /// The size on disk.
        found_bytes: u64,
    },
    /// A file or shard hashes to another digest than signed.
    #[error("digest mismatch for {name}: signed {signed}, found {found}")]
    Digest {
        /// The resource name.
        name: String,
        /// The signed digest, hex.
        signed: String,
        /// The digest computed, hex.
        found: String,
    },
}

impl Manifest {
    /// Matches the model's files (already filtered by the ignore paths) against the
    /// manifest and returns what to hash: each signed file, or each signed shard.
    ///
    /// A model whose manifest names its one resource `.` (the reference tool's name
    /// for a single-file model) matches a model of exactly one file. Under the shards
    /// method, empty files have no resources, so an unlisted empty file is not
    /// unsigned.
    ///
    /// # Errors
    ///
    /// Every missing file, every unsigned file (unless `ignore_unsigned`) and every
    /// sharded file whose size differs from the signed one, sorted.
    pub fn plan(
        &self,
        files: &[LocalFile],
        ignore_unsigned: bool,
    ) -> Result<Vec<Unit>, Vec<Mismatch>> {
        let mut expected: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
        for resource in &self.resources {
            expected
                .entry(&resource.name.path)
                .or_default()
                .push(resource);
        }
        let single_file_alias =
            files.len() == 1 && expected.len() == 1 && expected.contains_key(SINGLE_FILE_NAME);
        let sharded = matches!(self.serialization.method, Method::Shards { .. });

        let mut units = Vec::new();
        let mut mismatches = Vec::new();
        for (index, file) in files.iter().enumerate() {
            let key = if single_file_alias {
                SINGLE_FILE_NAME
            } else {
                file.path.as_str()
            };
            let Some(resources) = expected.remove(key) else {
                // Under the shards method an empty file has no resources to list.
                let listable = !(sharded && file.size_bytes == 0);
                if listable && !ignore_unsigned {
                    mismatches.push(Mismatch::Unsigned {
                        path: file.path.clone(),
                    });
                }
                continue;
            };
            if sharded {
                let signed_bytes = resources
                    .iter()
                    .filter_map(|r| r.name.range)
                    .map(|r| r.end)
                    .max()
                    .unwrap_or(0);
                if signed_bytes != file.size_bytes {
                    mismatches.push(Mismatch::Size {
                        path: file.path.clone(),
                        signed_bytes,
                        found_bytes: file.size_bytes,
                    });
                    continue;
                }
            }
            units.extend(resources.iter().map(|r| Unit {
                name: r.name.clone(),
                file: index,
            }));
        }
        mismatches.extend(expected.into_keys().map(|path| Mismatch::Missing {
            path: path.to_owned(),
        }));
        if mismatches.is_empty() {
            Ok(units)
        } else {
            mismatches.sort();
            Err(mismatches)
        }
    }

    /// Compares computed digests with the signed ones. Every resource must have been
    /// computed (a resource without a digest counts as a missing file).
    ///
    /// Returns the differences in manifest order; empty when the model matches.
    pub fn compare(&self, computed: &[(ResourceName, Vec<u8>)]) -> Vec<Mismatch> {
        let computed: HashMap<&ResourceName, &Vec<u8>> = computed
            .iter()
            .map(|(name, digest)| (name, digest))
            .collect();
        self.resources
            .iter()
            .filter_map(|resource| match computed.get(&resource.name) {
                None => Some(Mismatch::Missing {
                    path: resource.name.path.clone(),
                }),
                Some(found) if **found != resource.digest => Some(Mismatch::Digest {
                    name: resource.name.to_string(),
                    signed: hex::encode(&resource.digest),
                    found: hex::encode(found),
                }),
                Some(_) => None,
            })
            .collect()
    }
}
