//! Models on disk: listing a model's files the way OpenSSF model signing (OMS) does,
//! and hashing them, on all cores, with bounded memory.
//!
//! A model is a directory tree or a single file. Its files are named by canonical
//! relative paths with `/` (core's [`pedigree_core::oms::validate_path`]); paths
//! under the ignore paths are skipped, always including the OMS defaults (`.git`,
//! `.gitattributes`, `.github`, `.gitignore` at the top). Symbolic links are refused
//! unless allowed; then they are followed, and a cycle is an error.
//!
//! Hashing maps each large file (or shard) into memory and hashes it in place; small
//! ones stream through a fixed 1 MiB buffer per worker thread. Either way memory does
//! not grow with the model (mapped pages are the page cache's, not ours). Files and
//! shards are hashed in parallel with rayon.
//!
//! Why map: `read()` copies every byte out of the page cache before the hash sees it,
//! and on these machines that copy alone costs 15% on top of SHA-256 itself
//! (`BENCHMARKS.md`, hashing). The cost of mapping is what happens when a file shrinks
//! while it is hashed: touching a page past the new end raises SIGBUS and the process
//! dies. That fails closed (no digest is produced), like the error `read()` gives.
//! The model scan (`cmd/scan.rs`) maps large files through [`map_file`] too, so that
//! scanning a multi-gigabyte checkpoint does not need its size in memory.
//!
//! Also here: how Pedigree names an artifact on disk ([`artifact_digest`]) and a
//! model directory ([`model_digest`]).

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use pedigree_core::oms::{
    is_ignored_by, normalize_ignore_path, shard_ranges, validate_path, HashAlgorithm, LocalFile,
    Manifest, Method, Resource, ResourceName, Serialization, Unit, DEFAULT_IGNORE_PATHS,
    SINGLE_FILE_NAME,
};
use pedigree_core::statement::Digest;
use rayon::prelude::*;

/// Bytes read at a time by each hashing thread.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Files and shards at least this large are hashed through a memory map; below it the
/// map's set-up costs more than the copy it saves.
pub const MAP_MIN_BYTES: u64 = 4 << 20;

/// How to serialize a model into an OMS manifest.
#[derive(Clone, Debug)]
pub struct HashOptions {
    /// Files or shards.
    pub method: Method,
    /// The resource hash.
    pub hash: HashAlgorithm,
    /// Paths to leave out besides the OMS defaults: canonical, relative to the model
    /// root (see [`ignore_path_arg`]).
    pub ignore_paths: Vec<String>,
    /// Follow symbolic links instead of refusing them.
    pub allow_symlinks: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for HashOptions {
    /// Files, SHA-256, the default ignore paths, no symlinks, no progress bar: the
    /// settings of [`artifact_digest`].
    fn default() -> Self {
        HashOptions {
            method: Method::Files,
            hash: HashAlgorithm::Sha256,
            ignore_paths: Vec::new(),
            allow_symlinks: false,
            progress: false,
        }
    }
}

/// The files of a model, as found on disk.
#[derive(Debug)]
pub struct ModelFiles {
    /// The files, sorted in OMS order, with their sizes.
    pub files: Vec<LocalFile>,
    /// Where each file of `files` is, at the same index.
    pub fs_paths: Vec<PathBuf>,
    /// Whether the model is a single file rather than a directory.
    pub single_file: bool,
    /// Things a person should know that do not stop signing: symlinks that point
    /// outside the model.
    pub warnings: Vec<String>,
}

/// The OMS name of a model (the statement subject's name): the last component of
/// its path, of the absolute path for `.` and `..`.
pub fn model_name(model: &Path) -> String {
    let name = match model.file_name() {
        Some(name) => Some(name.to_owned()),
        None => std::fs::canonicalize(model)
            .ok()
            .and_then(|p| p.file_name().map(ToOwned::to_owned)),
    };
    name.map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned())
}

/// Turns an `--ignore-paths` argument into a canonical path relative to the model
/// root. A relative path is taken relative to the model root (as in the OMS
/// predicate); an absolute one must lie inside the model.
///
/// # Errors
///
/// When the path is outside the model or not a valid relative path.
pub fn ignore_path_arg(model: &Path, arg: &str) -> Result<String> {
    let path = Path::new(arg);
    let relative = if path.is_absolute() {
        let root = std::fs::canonicalize(model)
            .with_context(|| format!("couldn't resolve model path {}", model.display()))?;
        let parent = path
            .parent()
            .and_then(|p| std::fs::canonicalize(p).ok())
            .ok_or_else(|| anyhow!("ignore path {arg} does not exist"))?;
        let full = parent.join(path.file_name().unwrap_or_default());
        let inside = full
            .strip_prefix(&root)
            .map_err(|_| anyhow!("ignore path {arg} is outside the model {}", model.display()))?;
        utf8_relative(inside)?
    } else {
        arg.to_owned()
    };
    normalize_ignore_path(&relative).with_context(|| format!("invalid ignore path {arg:?}"))
}

/// The path of `file` relative to the model root, if it lies inside the model: how a
/// signature file kept inside the model is left out of it.
pub fn path_inside_model(model: &Path, file: &Path) -> Option<String> {
    let root = std::fs::canonicalize(model).ok()?;
    if !root.is_dir() {
        return None;
    }
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let full = std::fs::canonicalize(parent).ok()?.join(file.file_name()?);
    let inside = full.strip_prefix(&root).ok()?;
    utf8_relative(inside).ok().filter(|p| !p.is_empty())
}

fn utf8_relative(path: &Path) -> Result<String> {
    let parts = path
        .components()
        .map(|c| {
            c.as_os_str()
                .to_str()
                .ok_or_else(|| anyhow!("path {} is not UTF-8", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(parts.join("/"))
}

/// Lists the model's regular files, skipping `ignore_paths` and the OMS defaults.
///
/// # Errors
///
/// When the model does not exist, a name is not UTF-8, a symbolic link is found and
/// not allowed (or is broken, or makes a cycle), or an entry is neither a file nor
/// a directory.
pub fn walk(model: &Path, ignore_paths: &[String], allow_symlinks: bool) -> Result<ModelFiles> {
    let meta = std::fs::metadata(model)
        .with_context(|| format!("couldn't read model {}", model.display()))?;
    if meta.is_file() {
        let name = model
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("model file name {} is not UTF-8", model.display()))?;
        return Ok(ModelFiles {
            files: vec![LocalFile {
                path: name.to_owned(),
                size_bytes: meta.len(),
            }],
            fs_paths: vec![model.to_owned()],
            single_file: true,
            warnings: Vec::new(),
        });
    }
    if !meta.is_dir() {
        bail!(
            "model {} is neither a file nor a directory",
            model.display()
        );
    }
    let mut ignored: Vec<&str> = DEFAULT_IGNORE_PATHS.to_vec();
    ignored.extend(ignore_paths.iter().map(String::as_str));
    let root = std::fs::canonicalize(model)
        .with_context(|| format!("couldn't resolve model path {}", model.display()))?;

    let mut found: Vec<(LocalFile, PathBuf)> = Vec::new();
    let mut warnings = Vec::new();
    // Each directory still to read, with its path relative to the root and, when
    // symlinks are followed, the real paths of it and its ancestors (for cycles).
    let mut stack = vec![(model.to_owned(), String::new(), vec![root.clone()])];
    while let Some((dir, prefix, ancestors)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("couldn't list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("couldn't list {}", dir.display()))?;
            let fs_path = entry.path();
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| anyhow!("file name {} is not UTF-8", fs_path.display()))?;
            let rel = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if ignored.iter().any(|ignore| is_ignored_by(&rel, ignore)) {
                continue;
            }
            validate_path(&rel).with_context(|| format!("can't name file {rel:?}"))?;
            let file_type = entry
                .file_type()
                .with_context(|| format!("couldn't read {}", fs_path.display()))?;
            let (is_file, is_dir, size_bytes) = if file_type.is_symlink() {
                if !allow_symlinks {
                    bail!("symbolic link {rel} is refused (signing with --allow-symlinks follows symbolic links)");
                }
                let target = std::fs::metadata(&fs_path)
                    .with_context(|| format!("symbolic link {rel} is broken"))?;
                let real = std::fs::canonicalize(&fs_path)
                    .with_context(|| format!("couldn't resolve symbolic link {rel}"))?;
                if !real.starts_with(&root) {
                    warnings.push(format!(
                        "symbolic link {rel} points outside the model, to {}",
                        real.display()
                    ));
                }
                if target.is_dir() && ancestors.contains(&real) {
                    bail!("symbolic link {rel} makes a cycle");
                }
                (target.is_file(), target.is_dir(), target.len())
            } else {
                let size = if file_type.is_file() {
                    entry
                        .metadata()
                        .with_context(|| format!("couldn't read {}", fs_path.display()))?
                        .len()
                } else {
                    0
                };
                (file_type.is_file(), file_type.is_dir(), size)
            };
            if is_file {
                found.push((
                    LocalFile {
                        path: rel,
                        size_bytes,
                    },
                    fs_path,
                ));
            } else if is_dir {
                let mut ancestors = ancestors.clone();
                if allow_symlinks {
                    ancestors.push(
                        std::fs::canonicalize(&fs_path)
                            .with_context(|| format!("couldn't resolve {}", fs_path.display()))?,
                    );
                }
                stack.push((fs_path, rel, ancestors));
            } else {
                bail!("{rel} is neither a regular file nor a directory");
            }
        }
    }
    found.sort_by(|(a, _), (b, _)| a.path.split('/').cmp(b.path.split('/')));
    let (files, fs_paths) = found.into_iter().unzip();
    Ok(ModelFiles {
        files,
        fs_paths,
        single_file: false,
        warnings,
    })
}

/// What to hash to sign a model: every file, or every shard of every file. The one
/// file of a single-file model is named [`SINGLE_FILE_NAME`], as the reference tool
/// names it and requires it.
pub fn units_to_sign(model: &ModelFiles, method: Method) -> Vec<Unit> {
    model
        .files
        .iter()
        .enumerate()
        .flat_map(|(file, local)| -> Vec<Unit> {
            let path = if model.single_file {
                SINGLE_FILE_NAME
            } else {
                local.path.as_str()
            };
            match method {
                Method::Files => vec![Unit {
                    name: ResourceName::file(path),
                    file,
                }],
                Method::Shards { shard_size_bytes } => {
                    shard_ranges(local.size_bytes, shard_size_bytes)
                        .map(|range| Unit {
                            name: ResourceName::shard(path, range),
                            file,
                        })
                        .collect()
                }
            }
        })
        .collect()
}

/// Hashes `units` of `model` in parallel, returning each unit's name and digest in
/// the order given.
///
/// # Errors
///
/// When a file cannot be read, or a shard's file became shorter than planned.
pub fn hash_units(
    model: &ModelFiles,
    units: &[Unit],
    hash: HashAlgorithm,
    progress: bool,
) -> Result<Vec<(ResourceName, Vec<u8>)>> {
    let unit_len = |u: &Unit| {
        u.name
            .range
            .map_or(model.files[u.file].size_bytes, |r| r.len_bytes())
    };
    let total_bytes: u64 = units.iter().map(unit_len).sum();
    let bar = if progress {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template(
                "hashing {wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("the progress template is valid"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let result = units
        .par_iter()
        .map_init(
            || vec![0u8; READ_BUFFER_BYTES],
            |buffer, unit| {
                let path = &model.fs_paths[unit.file];
                let digest = hash_unit(path, unit.name.range, hash, buffer, &bar)
                    .with_context(|| format!("couldn't hash {}", path.display()))?;
                Ok((unit.name.clone(), digest))
            },
        )
        .collect();
    bar.finish_and_clear();
    result
}

fn hash_unit(
    path: &Path,
    range: Option<pedigree_core::oms::ByteRange>,
    hash: HashAlgorithm,
    buffer: &mut [u8],
    bar: &ProgressBar,
) -> Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let mut hasher = hash.hasher();
    let size = file.metadata()?.len();
    let (start, len) = match range {
        Some(r) => (r.start, r.len_bytes()),
        None => (0, size),
    };
    if len >= MAP_MIN_BYTES {
        if size < start + len {
            bail!("file ended at byte {size} of {}", start + len);
        }
        let map = map_file(&file, start, len)?;
        // Only a hint: read-ahead and early reclaim behind us.
        let _ = map.advise(memmap2::Advice::Sequential);
        for chunk in map.chunks(READ_BUFFER_BYTES) {
            hasher.update(chunk);
            bar.inc(chunk.len() as u64);
        }
        if range.is_none() && file.metadata()?.len() != size {
            bail!("file changed size while it was hashed");
        }
        return Ok(hasher.finalize());
    }
    match range {
        None => loop {
            let n = file.read(buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            bar.inc(n as u64);
        },
        Some(range) => {
            file.seek(SeekFrom::Start(range.start))?;
            let mut left = range.len_bytes();
            while left > 0 {
                let want = usize::try_from(left).map_or(buffer.len(), |l| l.min(buffer.len()));
                let n = file.read(&mut buffer[..want])?;
                if n == 0 {
                    bail!("file ended at byte {} of {}", range.end - left, range.end);
                }
                hasher.update(&buffer[..n]);
                bar.inc(n as u64);
                left -= n as u64;
            }
        }
    }
    Ok(hasher.finalize())
}

/// Maps `len` bytes of `file` from `offset`, read-only. Callers check the file is long
/// enough first.
///
/// # Errors
///
/// When the range does not fit in memory or the kernel refuses the map.
pub fn map_file(file: &File, offset: u64, len: u64) -> Result<memmap2::Mmap> {
    let len = usize::try_from(len).context("file too large to map")?;
    #[allow(unsafe_code)]
    // SAFETY: the map is read-only and its users only read it. Its one hazard is
    // another process truncating the file meanwhile: then the process gets SIGBUS and
    // dies without a result, which is the fail-closed outcome (module docs).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .map(file)?
    };
    Ok(map)
}

/// Lists and hashes a model into a manifest, as a signer does. The manifest's
/// `ignore_paths` are the OMS defaults and `options.ignore_paths`, sorted.
///
/// # Errors
///
/// When the model cannot be listed or read, or has no files.
pub fn build_manifest(model: &Path, options: &HashOptions) -> Result<(Manifest, ModelFiles)> {
    let files = walk(model, &options.ignore_paths, options.allow_symlinks)?;
    let units = units_to_sign(&files, options.method);
    if units.is_empty() {
        bail!(
            "model {} has no files to sign (an empty model, or only ignored or empty files)",
            model.display()
        );
    }
    let resources = hash_units(&files, &units, options.hash, options.progress)?
        .into_iter()
        .map(|(name, digest)| Resource { name, digest })
        .collect();
    let mut ignore_paths: Vec<String> = DEFAULT_IGNORE_PATHS
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    ignore_paths.extend(options.ignore_paths.iter().cloned());
    ignore_paths.sort();
    ignore_paths.dedup();
    let serialization = Serialization {
        method: options.method,
        hash_type: options.hash,
        allow_symlinks: options.allow_symlinks,
        ignore_paths,
    };
    let manifest =
        Manifest::new(serialization, resources).context("couldn't build the manifest")?;
    Ok((manifest, files))
}

/// The OMS root digest of a model, `sha256:<hex>`: the subject digest an OMS
/// signature of it with these options has.
///
/// # Errors
///
/// As [`build_manifest`].
pub fn model_digest(path: &Path, options: &HashOptions) -> Result<Digest> {
    let (manifest, files) = build_manifest(path, options)?;
    for warning in &files.warnings {
        eprintln!("pedigree: warning: {warning}");
    }
    Ok(Digest {
        algorithm: "sha256".into(),
        value: hex::encode(manifest.root_digest()),
    })
}

/// How Pedigree names an artifact on disk: a directory by its OMS root digest (files
/// method, SHA-256, default ignore paths), a regular file by the SHA-256 of its bytes.
///
/// # Errors
///
/// When the path cannot be read, or is a directory [`model_digest`] refuses.
pub fn artifact_digest(path: &Path) -> Result<Digest> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("couldn't read {}", path.display()))?;
    if meta.is_dir() {
        return model_digest(path, &HashOptions::default());
    }
    let files = walk(path, &[], false)?;
    let units = units_to_sign(&files, Method::Files);
    let (_, digest) = hash_units(&files, &units, HashAlgorithm::Sha256, false)?
        .pop()
        .expect("a single file is one unit");
    Ok(Digest {
        algorithm: "sha256".into(),
        value: hex::encode(digest),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn paths(files: &ModelFiles) -> Vec<&str> {
        files.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn walk_lists_sorted_canonical_paths_and_skips_ignored_ones() {
        let dir = tempfile::tempdir().unwrap();
        for rel in [
            "b",
            "a.b",
            "a/b",
            ".git/HEAD",
            ".github/x",
            "sub/.git/y",
            "cache/z",
            ".gitmodules",
        ] {
            write(dir.path(), rel, b"x");
        }
        std::fs::create_dir(dir.path().join("empty-dir")).unwrap();
        let files = walk(dir.path(), &["cache".into()], false).unwrap();
        assert_eq!(
            paths(&files),
            [".gitmodules", "a/b", "a.b", "b", "sub/.git/y"]
        );
        assert!(!files.single_file);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_refused_unless_allowed_and_cycles_always() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "real/f", b"x");
        std::os::unix::fs::symlink("real/f", dir.path().join("link")).unwrap();
        let err = walk(dir.path(), &[], false).unwrap_err();
        assert!(
            err.to_string().contains("symbolic link link is refused"),
            "{err}"
        );
        let files = walk(dir.path(), &[], true).unwrap();
        assert_eq!(paths(&files), ["link", "real/f"]);
        // An ignored symlink is not an error.
        walk(dir.path(), &["link".into()], false).unwrap();

        std::os::unix::fs::symlink("..", dir.path().join("real/up")).unwrap();
        let err = walk(dir.path(), &["link".into()], true).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
    }

    #[test]
    fn shards_and_files_hash_with_bounded_reads() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        write(dir.path(), "w", &data);
        write(dir.path(), "empty", b"");
        let files = walk(dir.path(), &[], false).unwrap();
        for hash in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Blake2b,
            HashAlgorithm::Blake3,
        ] {
            let units = units_to_sign(
                &files,
                Method::Shards {
                    shard_size_bytes: 1_250_000,
                },
            );
            let names: Vec<_> = units.iter().map(|u| u.name.to_string()).collect();
            assert_eq!(
                names,
                ["w:0:1250000", "w:1250000:2500000", "w:2500000:3000000"]
            );
            let digests = hash_units(&files, &units, hash, false).unwrap();
            assert_eq!(digests[1].1, hash.digest(&data[1_250_000..2_500_000]));
            let whole =
                hash_units(&files, &units_to_sign(&files, Method::Files), hash, false).unwrap();
            assert_eq!(whole[0], (ResourceName::file("empty"), hash.digest(b"")));
            assert_eq!(whole[1].1, hash.digest(&data));
        }
    }

    #[test]
    fn mapped_and_read_hashing_agree_at_every_offset() {
        // Two large shards (the second at an offset that is not page-aligned) and the
        // whole file go through the memory map; the small last shard through reads.
        let dir = tempfile::tempdir().unwrap();
        let shard = MAP_MIN_BYTES as usize + 4_097;
        let len = 2 * shard + 1_000;
        let data: Vec<u8> = (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        write(dir.path(), "big", &data);
        let files = walk(dir.path(), &[], false).unwrap();
        let units = units_to_sign(
            &files,
            Method::Shards {
                shard_size_bytes: shard as u64,
            },
        );
        assert_eq!(units.len(), 3);
        let digests = hash_units(&files, &units, HashAlgorithm::Sha256, false).unwrap();
        for (i, d) in digests.iter().enumerate() {
            let part = &data[i * shard..((i + 1) * shard).min(len)];
            assert_eq!(d.1, HashAlgorithm::Sha256.digest(part), "shard {i}");
        }
        let whole = hash_units(
            &files,
            &units_to_sign(&files, Method::Files),
            HashAlgorithm::Sha256,
            false,
        )
        .unwrap();
        assert_eq!(whole[0].1, HashAlgorithm::Sha256.digest(&data));

        // A large shard planned past the file's end is an error, not a short digest.
        std::fs::write(dir.path().join("big"), &data[..shard + 10]).unwrap();
        let err = hash_units(&files, &units[1..2], HashAlgorithm::Sha256, false).unwrap_err();
        assert!(format!("{err:#}").contains("file ended"), "{err:#}");
    }

    #[test]
    fn artifact_digest_names_files_by_content_and_directories_by_root_digest() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m/config.json", b"hello");
        let file = artifact_digest(&dir.path().join("m/config.json")).unwrap();
        assert_eq!(
            file.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let model = artifact_digest(&dir.path().join("m")).unwrap();
        let expected =
            pedigree_core::oms::root_digest([HashAlgorithm::Sha256.digest(b"hello").as_slice()]);
        assert_eq!(model.value, hex::encode(expected));
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        assert!(artifact_digest(&dir.path().join("empty")).is_err());
    }

    #[test]
    fn ignore_path_arguments_are_relative_to_the_model() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "m/sub/x", b"x");
        let model = dir.path().join("m");
        assert_eq!(ignore_path_arg(&model, "./sub/x/").unwrap(), "sub/x");
        let absolute = model.join("sub").display().to_string();
        assert_eq!(ignore_path_arg(&model, &absolute).unwrap(), "sub");
        assert!(ignore_path_arg(&model, &dir.path().display().to_string()).is_err());
        assert!(ignore_path_arg(&model, "../x").is_err());
        assert_eq!(
            path_inside_model(&model, &model.join("model.sig")).as_deref(),
            Some("model.sig")
        );
        assert_eq!(
            path_inside_model(&model, &dir.path().join("model.sig")),
            None
        );
    }
}
