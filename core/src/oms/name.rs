//! Resource names: canonical relative paths (spec section 6.1.2), the `path:start:end`
//! names of shards (section 6.3.2), ignore-path matching (section 6.2.1) and the order
//! resources are listed in.

use std::cmp::Ordering;
use std::fmt;

use thiserror::Error;

/// The name the reference tool (model-signing 1.1.1) gives the one resource of a
/// single-file model, and the only one its verifier accepts. The spec asks for the
/// file's basename; [`crate::oms::Manifest::plan`] accepts both.
pub const SINGLE_FILE_NAME: &str = ".";

/// A shard: the bytes `start..end` of a file, `start` included, `end` excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteRange {
    /// Offset of the first byte.
    pub start: u64,
    /// Offset one past the last byte; always greater than `start`.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len_bytes(&self) -> u64 {
        self.end - self.start
    }
}

/// What a resource names: a whole file, or one shard of it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceName {
    /// The file's canonical path relative to the model root, `/`-separated.
    pub path: String,
    /// The shard, for the shards method; `None` for the files method.
    pub range: Option<ByteRange>,
}

/// Why a resource name or an ignore path is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The path is the empty string.
    #[error("path is empty")]
    Empty,
    /// The path starts with `/`.
    #[error("path is absolute")]
    Absolute,
    /// The path ends with `/`.
    #[error("path ends with '/'")]
    TrailingSlash,
    /// The path has an empty, `.` or `..` component.
    #[error("path has a {component:?} component")]
    NotCanonical {
        /// The offending component (empty for `//`).
        component: String,
    },
    /// The path has a NUL byte, which no file system allows in a name.
    #[error("path has a NUL byte")]
    Nul,
    /// A shard name without two `:`-separated decimal offsets at its end.
    #[error("shard name does not end in ':<start>:<end>'")]
    NoShardSuffix,
    /// A shard whose end is not after its start.
    #[error("shard range {start}..{end} is empty or reversed")]
    EmptyRange {
        /// The start offset as written.
        start: u64,
        /// The end offset as written.
        end: u64,
    },
}

impl ResourceName {
    /// A whole-file name.
    pub fn file(path: impl Into<String>) -> Self {
        ResourceName {
            path: path.into(),
            range: None,
        }
    }

    /// A shard name.
    pub fn shard(path: impl Into<String>, range: ByteRange) -> Self {
        ResourceName {
            path: path.into(),
            range: Some(range),
        }
    }

    /// Reads a resource `name` field. With `sharded`, the last two `:`-separated parts
    /// are the offsets, so the path itself may contain `:`. The path must be canonical
    /// (see [`validate_path`]), or be [`SINGLE_FILE_NAME`].
    ///
    /// # Errors
    ///
    /// A [`NameError`] saying what is wrong.
    pub fn parse(name: &str, sharded: bool) -> Result<Self, NameError> {
        if !sharded {
            validate_resource_path(name)?;
            return Ok(ResourceName::file(name));
        }
        let mut parts = name.rsplitn(3, ':');
        let (Some(end), Some(start), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NameError::NoShardSuffix);
        };
        let (Some(start), Some(end)) = (parse_offset(start), parse_offset(end)) else {
            return Err(NameError::NoShardSuffix);
        };
        if end <= start {
            return Err(NameError::EmptyRange { start, end });
        }
        validate_resource_path(path)?;
        Ok(ResourceName::shard(path, ByteRange { start, end }))
    }

    /// The order resources are listed in, and so the order the root digest is taken
    /// in: the order of the reference tool, which sorts by path component by component
    /// (Python's `PurePosixPath` order), then by shard offsets as numbers.
    ///
    /// It equals the spec's plain code-point order of the names except where a path
    /// component is a prefix of another one's (`a/b` before `a.b`) or shard offsets
    /// have different numbers of digits (`w:900:1000` before `w:1000:1100`).
    pub fn canonical_cmp(&self, other: &Self) -> Ordering {
        self.path
            .split('/')
            .cmp(other.path.split('/'))
            .then_with(|| self.range.cmp(&other.range))
    }
}

impl fmt::Display for ResourceName {
    /// The `name` field: the path, then `:start:end` for a shard.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.range {
            None => f.write_str(&self.path),
            Some(r) => write!(f, "{}:{}:{}", self.path, r.start, r.end),
        }
    }
}

/// Decimal digits only: no sign, no spaces, no empty string.
fn parse_offset(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn validate_resource_path(path: &str) -> Result<(), NameError> {
    if path == SINGLE_FILE_NAME {
        return Ok(());
    }
    validate_path(path)
}

/// Checks that `path` is canonical as spec section 6.1.2 defines it: relative, `/` as
/// the separator, no empty, `.` or `..` component, no trailing `/`.
///
/// # Errors
///
/// A [`NameError`] naming the first rule broken.
pub fn validate_path(path: &str) -> Result<(), NameError> {
    if path.is_empty() {
        return Err(NameError::Empty);
    }
    if path.starts_with('/') {
        return Err(NameError::Absolute);
    }
    if path.ends_with('/') {
        return Err(NameError::TrailingSlash);
    }
    if path.contains('\0') {
        return Err(NameError::Nul);
    }
    if let Some(bad) = path
        .split('/')
        .find(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Err(NameError::NotCanonical {
            component: bad.to_owned(),
        });
    }
    Ok(())
}

/// Brings an ignore path into canonical form: `\` is not special, `.` components and
/// repeated or trailing `/` are dropped (as Python's `PurePosixPath` does).
///
/// # Errors
///
/// [`NameError::Absolute`] for a path starting with `/`,
/// [`NameError::NotCanonical`] for one with a `..` component (it would point outside
/// the model), [`NameError::Empty`] for one that names the model root itself.
pub fn normalize_ignore_path(path: &str) -> Result<String, NameError> {
    if path.starts_with('/') {
        return Err(NameError::Absolute);
    }
    if path.contains('\0') {
        return Err(NameError::Nul);
    }
    let mut parts = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                return Err(NameError::NotCanonical {
                    component: "..".into(),
                })
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(NameError::Empty);
    }
    Ok(parts.join("/"))
}

/// Whether `path` is `ignore` or lies under it, comparing whole components: `.git`
/// ignores `.git/HEAD` but not `.github` or `sub/.git`. Both are canonical paths.
pub fn is_ignored_by(path: &str, ignore: &str) -> bool {
    path == ignore
        || (path.len() > ignore.len()
            && path.starts_with(ignore)
            && path.as_bytes()[ignore.len()] == b'/')
}

/// The shards of a file of `size_bytes` (section 6.3.2): consecutive ranges of
/// `shard_size_bytes`, the last one possibly shorter; none for an empty file.
///
/// # Panics
///
/// If `shard_size_bytes` is zero.
pub fn shard_ranges(size_bytes: u64, shard_size_bytes: u64) -> impl Iterator<Item = ByteRange> {
    assert!(shard_size_bytes > 0, "shard size must be positive");
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= size_bytes {
            return None;
        }
        let end = start.saturating_add(shard_size_bytes).min(size_bytes);
        let range = ByteRange { start, end };
        start = end;
        Some(range)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(path: &str, start: u64, end: u64) -> ResourceName {
        ResourceName::shard(path, ByteRange { start, end })
    }

    #[test]
    fn shard_names_are_parsed_from_the_right() {
        let cases = [
            ("weights.bin:0:300000", shard("weights.bin", 0, 300000)),
            ("a:b/c:d.bin:10:20", shard("a:b/c:d.bin", 10, 20)),
            ("x::1:2", shard("x:", 1, 2)),
        ];
        for (text, expected) in cases {
            let name = ResourceName::parse(text, true).unwrap();
            assert_eq!(name, expected, "{text}");
            assert_eq!(name.to_string(), text);
        }
    }

    #[test]
    fn bad_shard_names_are_rejected() {
        let cases = [
            ("weights.bin", NameError::NoShardSuffix),
            ("weights.bin:5", NameError::NoShardSuffix),
            ("w:+1:2", NameError::NoShardSuffix),
            ("w:1:-2", NameError::NoShardSuffix),
            ("w: 1:2", NameError::NoShardSuffix),
            ("w:1:99999999999999999999", NameError::NoShardSuffix),
            ("w:5:5", NameError::EmptyRange { start: 5, end: 5 }),
            ("w:6:5", NameError::EmptyRange { start: 6, end: 5 }),
            (":0:5", NameError::Empty),
            (
                "../w:0:5",
                NameError::NotCanonical {
                    component: "..".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(ResourceName::parse(text, true), Err(expected), "{text}");
        }
    }

    #[test]
    fn file_names_may_contain_colons_but_must_be_canonical() {
        assert_eq!(
            ResourceName::parse("a:1:2", false).unwrap(),
            ResourceName::file("a:1:2")
        );
        assert_eq!(
            ResourceName::parse(".", false).unwrap(),
            ResourceName::file(".")
        );
        let cases = [
            ("", NameError::Empty),
            ("/etc/passwd", NameError::Absolute),
            ("dir/", NameError::TrailingSlash),
            (
                "a//b",
                NameError::NotCanonical {
                    component: String::new(),
                },
            ),
            (
                "./a",
                NameError::NotCanonical {
                    component: ".".into(),
                },
            ),
            (
                "a/../../b",
                NameError::NotCanonical {
                    component: "..".into(),
                },
            ),
            ("a\0b", NameError::Nul),
        ];
        for (text, expected) in cases {
            assert_eq!(ResourceName::parse(text, false), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn canonical_order_is_by_component_then_numeric_offsets() {
        let mut names = [
            ResourceName::file("a.b"),
            ResourceName::file("a/b"),
            ResourceName::file("B"),
            ResourceName::file("a"),
        ];
        names.sort_by(ResourceName::canonical_cmp);
        let names: Vec<_> = names.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["B", "a", "a/b", "a.b"]);

        let mut shards = [
            shard("w", 1000, 1100),
            shard("w", 900, 1000),
            shard("w", 0, 900),
        ];
        shards.sort_by(ResourceName::canonical_cmp);
        assert_eq!(
            shards,
            [
                shard("w", 0, 900),
                shard("w", 900, 1000),
                shard("w", 1000, 1100)
            ]
        );
    }

    #[test]
    fn ignore_paths_match_whole_leading_components() {
        assert!(is_ignored_by(".git", ".git"));
        assert!(is_ignored_by(".git/HEAD", ".git"));
        assert!(!is_ignored_by(".github/x", ".git"));
        assert!(!is_ignored_by("sub/.git", ".git"));
        assert!(is_ignored_by("sub/cache/x", "sub/cache"));
        assert!(!is_ignored_by("sub/cachex", "sub/cache"));
    }

    #[test]
    fn ignore_paths_are_normalized_or_refused() {
        assert_eq!(normalize_ignore_path("./a//b/").unwrap(), "a/b");
        assert_eq!(normalize_ignore_path("model.sig").unwrap(), "model.sig");
        assert_eq!(normalize_ignore_path("/abs"), Err(NameError::Absolute));
        assert_eq!(normalize_ignore_path("."), Err(NameError::Empty));
        assert!(normalize_ignore_path("a/../b").is_err());
    }

    #[test]
    fn shard_ranges_cover_the_file() {
        let ranges: Vec<_> = shard_ranges(1_048_576, 300_000).collect();
        let expected = [
            (0, 300_000),
            (300_000, 600_000),
            (600_000, 900_000),
            (900_000, 1_048_576),
        ];
        assert_eq!(ranges.len(), expected.len());
        for (r, (start, end)) in ranges.iter().zip(expected) {
            assert_eq!((r.start, r.end), (start, end));
        }
        assert_eq!(shard_ranges(0, 10).count(), 0);
        assert_eq!(shard_ranges(10, 10).count(), 1);
        assert_eq!(shard_ranges(u64::MAX, u64::MAX - 1).count(), 2);
    }
}
