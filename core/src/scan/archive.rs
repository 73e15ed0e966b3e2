//! Zip archives: PyTorch checkpoints, `.npz`, and any zip a model ships
//! (`spec/scan.md` section 5.1).
//!
//! The archive is read from memory with the `zip` crate. Limits are checked twice:
//! from the central directory before anything is inflated (entry count, declared
//! sizes, compression ratio), and again while inflating, where a member must produce
//! exactly its declared size (the crate checks its CRC at the end). Members are scanned
//! as files of their own, archives in archives up to [`super::Limits::max_depth`].
//!
//! A PyTorch archive is a zip whose members all sit under one folder holding
//! `data.pkl`; its pickle may name storages by persistent id, and each storage it names
//! must be a member under `data/`. Those storage members are raw tensor bytes: they are
//! inflated to check their size and CRC but not scanned as files.

use std::collections::HashSet;
use std::io::{Cursor, Read};

use zip::CompressionMethod;

use super::{pickle, Scanner, Severity};

/// Members at most this large are never judged by their compression ratio: small
/// members of zeros compress very well and cannot be a bomb.
const RATIO_FLOOR_BYTES: u64 = 1 << 20;

struct Entry {
    name: String,
    size: u64,
    is_dir: bool,
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}!/{name}")
    }
}

/// The folder of a PyTorch archive (`archive/`), when this zip is one.
fn torch_prefix(entries: &[Entry]) -> Option<String> {
    let mut pkls = entries.iter().filter_map(|e| {
        let dir = e.name.strip_suffix("data.pkl")?;
        (dir.ends_with('/') && dir.matches('/').count() == 1).then(|| dir.to_owned())
    });
    let prefix = pkls.next()?;
    if pkls.next().is_some() || !entries.iter().all(|e| e.name.starts_with(&prefix)) {
        return None;
    }
    Some(prefix)
}

/// Scans a zip archive and returns its format (`zip` or `pytorch-zip`).
pub(crate) fn scan_zip(
    s: &mut Scanner<'_>,
    member: &str,
    bytes: &[u8],
    depth: usize,
) -> &'static str {
    let limits = s.limits.clone();
    let mut zip = match zip::ZipArchive::new(Cursor::new(bytes)) {
        Ok(z) => z,
        Err(e) => {
            s.report(
                Severity::Error,
                member,
                None,
                format!("zip: couldn't read archive: {e}"),
            );
            return "zip";
        }
    };
    if zip.len() > limits.max_entries {
        s.report(
            Severity::Error,
            member,
            None,
            format!(
                "zip: {} members exceed the limit of {}",
                zip.len(),
                limits.max_entries
            ),
        );
        return "zip";
    }

    // Central directory pass: nothing is inflated until every member passes.
    let mut entries = Vec::with_capacity(zip.len());
    let mut names = HashSet::new();
    let mut declared_total = s.total_uncompressed;
    let mut refused = false;
    for i in 0..zip.len() {
        let f = match zip.by_index_raw(i) {
            Ok(f) => f,
            Err(e) => {
                s.report(
                    Severity::Error,
                    member,
                    None,
                    format!("zip: member {i}: {e}"),
                );
                return "zip";
            }
        };
        let name = match f.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                s.report(
                    Severity::Error,
                    member,
                    None,
                    format!("zip: member {i}: bad name: {e}"),
                );
                return "zip";
            }
        };
        let path = join(member, &name);
        let mut problem = None;
        if !names.insert(name.clone()) {
            problem = Some("appears twice in the archive".to_owned());
        } else if f.is_dir() && f.size() > 0 {
            problem = Some("is a directory with content".to_owned());
        } else if f.encrypted() {
            problem = Some("is encrypted".to_owned());
        } else if !matches!(
            f.compression(),
            CompressionMethod::Stored | CompressionMethod::Deflated
        ) {
            problem = Some(format!(
                "uses compression method {}, only stored and deflate are read",
                f.compression()
            ));
        } else if f.size() > RATIO_FLOOR_BYTES
            && f.size() / f.compressed_size().max(1) > limits.max_compression_ratio
        {
            problem = Some(format!(
                "expands {} bytes to {} (ratio over {}): refused as a possible zip bomb",
                f.compressed_size(),
                f.size(),
                limits.max_compression_ratio
            ));
        }
        declared_total = declared_total.saturating_add(f.size());
        if let Some(p) = problem {
            s.report(Severity::Error, &path, None, format!("zip: member {p}"));
            refused = true;
        }
        entries.push(Entry {
            name,
            size: f.size(),
            is_dir: f.is_dir(),
        });
    }
    if declared_total > limits.max_total_uncompressed_bytes {
        s.report(
            Severity::Error,
            member,
            None,
            format!(
                "zip: members declare {declared_total} uncompressed bytes, over the limit of {}",
                limits.max_total_uncompressed_bytes
            ),
        );
        return "zip";
    }
    if refused {
        return "zip";
    }

    let prefix = torch_prefix(&entries);
    let format = if prefix.is_some() {
        "pytorch-zip"
    } else {
        "zip"
    };
    let mut storage_keys = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.is_dir {
            continue;
        }
        let path = join(member, &entry.name);
        let is_storage = prefix.as_ref().is_some_and(|p| {
            entry
                .name
                .strip_prefix(p.as_str())
                .and_then(|rest| rest.strip_prefix("data/"))
                .is_some_and(|rest| !rest.is_empty() && !rest.ends_with(".pkl"))
        });
        if !is_storage && entry.size > limits.max_member_bytes {
            s.report(
                Severity::Error,
                &path,
                None,
                format!(
                    "zip: member of {} bytes exceeds the scan limit of {}",
                    entry.size, limits.max_member_bytes
                ),
            );
            continue;
        }
        let mut reader = match zip.by_index(i) {
            Ok(r) => r,
            Err(e) => {
                s.report(
                    Severity::Error,
                    &path,
                    None,
                    format!("zip: couldn't open member: {e}"),
                );
                continue;
            }
        };
        // One byte more than declared tells a member that inflates past its size.
        let mut limited = (&mut reader).take(entry.size.saturating_add(1));
        let (read, data) = if is_storage {
            (
                std::io::copy(&mut limited, &mut std::io::sink()),
                Vec::new(),
            )
        } else {
            let mut data = Vec::new();
            (limited.read_to_end(&mut data).map(|n| n as u64), data)
        };
        let got = match read {
            Ok(n) => n,
            Err(e) => {
                s.report(
                    Severity::Error,
                    &path,
                    None,
                    format!("zip: couldn't inflate member: {e}"),
                );
                continue;
            }
        };
        s.total_uncompressed = s.total_uncompressed.saturating_add(got);
        if got != entry.size {
            s.report(
                Severity::Error,
                &path,
                None,
                format!(
                    "zip: member inflates to {}{} bytes, the directory declares {}",
                    if got > entry.size { "more than " } else { "" },
                    got.min(entry.size),
                    entry.size
                ),
            );
            continue;
        }
        if s.total_uncompressed > limits.max_total_uncompressed_bytes {
            s.report(
                Severity::Error,
                member,
                None,
                format!(
                    "zip: over {} uncompressed bytes in total",
                    limits.max_total_uncompressed_bytes
                ),
            );
            return format;
        }
        if is_storage {
            continue;
        }
        let is_data_pkl = prefix
            .as_ref()
            .is_some_and(|p| entry.name == format!("{p}data.pkl"));
        if is_data_pkl {
            let outcome = s.pickle(
                &path,
                &data,
                0,
                pickle::Options {
                    torch: true,
                    joblib: false,
                    whole: true,
                    ..pickle::Options::default()
                },
            );
            storage_keys = outcome.storage_keys;
        } else {
            let name = entry.name.rsplit('/').next().unwrap_or(&entry.name);
            s.member(&path, name, &data, depth);
        }
    }
    if let Some(p) = &prefix {
        for key in storage_keys {
            let want = format!("{p}data/{key}");
            if !names.contains(&want) {
                s.report(
                    Severity::Error,
                    &join(member, &format!("{p}data.pkl")),
                    None,
                    format!("storage {key:?} is not in the archive"),
                );
            }
        }
    }
    format
}
