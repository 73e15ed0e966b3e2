//! OpenSSF Model Signing (OMS) v1.0: the `https://model_signing/signature/v1.0`
//! predicate, its manifest of file digests, and the root digest that names a model.
//!
//! An OMS signature is a Sigstore bundle ([`crate::bundle`]) whose DSSE envelope
//! carries an in-toto Statement v1. Its one subject is the model: its name and its
//! root digest, SHA-256 over the digests of the resources in the order listed (spec
//! section 6.5.1). The predicate lists every file of the model, or every shard of
//! every file, with its digest, and the serialization parameters needed to recompute
//! them: the method (`files` or `shards` with a `shard_size`), the hash
//! (`sha256`, `blake2b` or `blake3`), the symlink policy and the ignored paths.
//!
//! Producing follows the spec and the reference tool (PyPI `model-signing` 1.1.1)
//! where they agree. Where they differ, both forms are read, and what is written is
//! chosen so that the reference tool and spec-conforming verifiers both accept it
//! wherever possible:
//!
//! - the reference writes a shard resource's `algorithm` as `sha256-sharded-300000`
//!   and `shard_size` as a float (`300000.0`); both are read, the spec's `sha256` and
//!   an integer are written (the reference CLI cannot verify shards in any case);
//! - the reference names the one resource of a single-file model `.` and its verifier
//!   accepts nothing else; the spec asks for the basename. Both are read and `.`
//!   ([`SINGLE_FILE_NAME`]) is written, since a verifier that rejected it would
//!   reject every single-file signature the reference tool has made;
//! - resources are listed in the reference's order (see
//!   [`ResourceName::canonical_cmp`]); a manifest read is kept in its own order, and its
//!   root digest is taken in that order, as both the spec and the reference do.
//!
//! In scope: building, encoding, parsing and checking manifests and statements, and the
//! comparison of a manifest with the files found on disk ([`Manifest::plan`],
//! [`Manifest::compare`]). Out of scope: reading directories and files, which the
//! CLI does, and DSSE signatures, which [`crate::dsse`] checks.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::statement::{json_kind, Digest, Statement, StatementError, STATEMENT_TYPE_V1};

mod check;
mod hash;
mod name;

pub use check::{LocalFile, Mismatch, Unit};
pub use hash::{root_digest, ContentHasher, HashAlgorithm, UnknownHashError};
pub use name::{
    is_ignored_by, normalize_ignore_path, shard_ranges, validate_path, ByteRange, NameError,
    ResourceName, SINGLE_FILE_NAME,
};

/// The OMS v1.0 predicate type.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";

/// Paths every OMS signer and verifier ignores at the top of the model (spec section
/// 6.2), whatever the payload's `ignore_paths` says.
pub const DEFAULT_IGNORE_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// The shard size the spec recommends as default, 10^9 bytes.
pub const DEFAULT_SHARD_SIZE_BYTES: u64 = 1_000_000_000;

/// How files become resources (`serialization.method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// One resource per file.
    Files,
    /// One resource per shard of `shard_size_bytes` of each non-empty file.
    Shards {
        /// Bytes per shard; positive.
        shard_size_bytes: u64,
    },
}

impl Method {
    /// The name in `serialization.method`.
    pub const fn name(self) -> &'static str {
        match self {
            Method::Files => "files",
            Method::Shards { .. } => "shards",
        }
    }
}

/// The predicate's `serialization` object: what a verifier needs to recompute the
/// resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serialization {
    /// Files or shards.
    pub method: Method,
    /// The hash of every resource digest.
    pub hash_type: HashAlgorithm,
    /// Whether symbolic links were followed; if not, a symlink is an error.
    pub allow_symlinks: bool,
    /// Paths left out of the manifest, canonical and relative to the model root (see
    /// [`normalize_ignore_path`]); the [`DEFAULT_IGNORE_PATHS`] apply in any case.
    pub ignore_paths: Vec<String>,
}

/// One entry of the predicate's `resources`: a file or shard and its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// The file or shard.
    pub name: ResourceName,
    /// Its digest under the manifest's hash.
    pub digest: Vec<u8>,
}

/// A checked OMS predicate: serialization parameters and resources.
///
/// Invariants, checked by [`Manifest::new`] and when parsing: at least one resource,
/// no name twice, every digest of the hash's length, shard names exactly for the
/// shards method, the shards of each file consecutive from byte 0 and each (but the
/// last) `shard_size` long, and `.` only as the one file of a single-file model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    serialization: Serialization,
    resources: Vec<Resource>,
}

/// An OMS statement: the model's name and its manifest. The subject digest is the
/// manifest's root digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OmsStatement {
    /// `subject[0].name`: informational, the basename of the model path.
    pub model_name: String,
    /// The predicate.
    pub manifest: Manifest,
}

/// Why a payload is not a valid OMS statement, or a manifest not a valid manifest.
#[derive(Debug, Error)]
pub enum OmsError {
    /// The envelope does not carry an in-toto statement.
    #[error("envelope payloadType is {found:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}")]
    PayloadType {
        /// The payload type found.
        found: String,
    },
    /// The payload is not a valid in-toto Statement v1.
    #[error("payload is not an in-toto statement")]
    Statement {
        /// What the statement parser rejected.
        #[source]
        source: StatementError,
    },
    /// The statement is about something other than an OMS signature.
    #[error("predicateType is {found:?}, expected {PREDICATE_TYPE:?}")]
    PredicateType {
        /// The predicate type found.
        found: String,
    },
    /// OMS statements have exactly one subject, the model.
    #[error("statement has {count} subjects, expected exactly 1")]
    SubjectCount {
        /// Number of subjects found.
        count: usize,
    },
    /// The subject has no name, or an empty one.
    #[error("subject has no name")]
    SubjectName,
    /// The subject has no `sha256` digest.
    #[error("subject has no sha256 digest")]
    SubjectDigest,
    /// The subject digest is not the root digest of the resources listed.
    #[error("subject digest {subject} does not match the resources' root digest {resources}")]
    RootDigest {
        /// The subject's `sha256`, hex.
        subject: String,
        /// SHA-256 over the listed resource digests, hex.
        resources: String,
    },
    /// A required field is absent.
    #[error("{field} is missing")]
    MissingField {
        /// JSON path of the field.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("{field} is a JSON {found}, expected {expected}")]
    FieldType {
        /// JSON path of the field.
        field: String,
        /// The type required.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// `serialization.method` is neither `files` nor `shards`.
    #[error("serialization method {found:?} is not supported, expected files or shards")]
    Method {
        /// The method found.
        found: String,
    },
    /// `serialization.hash_type` is not a supported hash.
    #[error("serialization hash_type is not supported")]
    HashType {
        /// The unknown name.
        #[source]
        source: UnknownHashError,
    },
    /// `shard_size` is zero, negative, fractional or too large.
    #[error("shard_size {found} is not a positive whole number of bytes")]
    ShardSize {
        /// The value as JSON text.
        found: String,
    },
    /// `shard_size` is given for the files method.
    #[error("shard_size is set but the serialization method is files")]
    ShardSizeWithFiles,
    /// The manifest lists nothing; an empty model cannot be signed.
    #[error("manifest lists no resources")]
    NoResources,
    /// A resource name is not canonical or not a valid shard name.
    #[error("resource {index} name {name:?} is invalid")]
    ResourceName {
        /// Position in `resources`.
        index: usize,
        /// The name as written.
        name: String,
        /// What is wrong with it.
        #[source]
        source: NameError,
    },
    /// A resource digest is not lowercase hex.
    #[error("resource {name} digest is not lowercase hex")]
    DigestNotHex {
        /// The resource name.
        name: String,
    },
    /// A resource digest has the wrong length for the hash.
    #[error("resource {name} digest has {found} bytes, expected {expected} for {algorithm}")]
    DigestLength {
        /// The resource name.
        name: String,
        /// Bytes found.
        found: usize,
        /// Bytes the hash produces.
        expected: usize,
        /// The manifest's hash.
        algorithm: HashAlgorithm,
    },
    /// A resource's `algorithm` is not the manifest's `hash_type`.
    #[error("resource {name} algorithm {found:?} does not match hash_type {expected}")]
    Algorithm {
        /// The resource name.
        name: String,
        /// The algorithm written.
        found: String,
        /// The manifest's hash.
        expected: HashAlgorithm,
    },
    /// Two resources have the same name.
    #[error("resource {name} is listed twice")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
    /// A shard name given for the files method, or a plain name for shards.
    #[error("resource {name} does not fit the {method} method")]
    WrongMethod {
        /// The resource name.
        name: String,
        /// The manifest's method name.
        method: &'static str,
    },
    /// The shards of a file leave a gap, overlap, or have the wrong size.
    #[error("shard {name} does not continue its file's shards of {shard_size_bytes} bytes")]
    ShardLayout {
        /// The first shard out of place.
        name: String,
        /// The manifest's shard size.
        shard_size_bytes: u64,
    },
    /// `.` is listed beside other files.
    #[error("single-file resource \".\" is listed beside other files")]
    MixedSingleFile,
    /// An ignore path is absolute or leaves the model.
    #[error("ignore path {path:?} is invalid")]
    IgnorePath {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        #[source]
        source: NameError,
    },
}

impl Manifest {
    /// Builds a manifest from freshly computed resources, sorting them into the
    /// canonical order ([`ResourceName::canonical_cmp`]).
    ///
    /// # Errors
    ///
    /// An [`OmsError`] when the resources break an invariant of [`Manifest`] or an
    /// ignore path is not canonical.
    pub fn new(
        serialization: Serialization,
        mut resources: Vec<Resource>,
    ) -> Result<Self, OmsError> {
        resources.sort_by(|a, b| a.name.canonical_cmp(&b.name));
        for path in &serialization.ignore_paths {
            validate_path(path).map_err(|source| OmsError::IgnorePath {
                path: path.clone(),
                source,
            })?;
        }
        let manifest = Manifest {
            serialization,
            resources,
        };
        manifest.check()?;
        Ok(manifest)
    }

    /// The serialization parameters.
    pub fn serialization(&self) -> &Serialization {
        &self.serialization
    }

    /// The resources, in the order they are listed.
    pub fn resources(&self) -> &[Resource] {
        &self.resources
    }

    /// The root digest: SHA-256 over the resource digests in the order listed.
    pub fn root_digest(&self) -> [u8; 32] {
        root_digest(self.resources.iter().map(|r| r.digest.as_slice()))
    }

    /// The `resources[].algorithm` value this module writes: the hash name.
    fn algorithm_name(&self) -> &'static str {
        self.serialization.hash_type.name()
    }

    /// The predicate as JSON, in the field order [`OmsStatement::to_payload`] writes.
    pub fn to_predicate(&self) -> Value {
        serde_json::to_value(self.predicate_out())
            .expect("a predicate of strings, numbers and booleans always serializes")
    }

    fn predicate_out(&self) -> PredicateOut<'_> {
        let s = &self.serialization;
        PredicateOut {
            serialization: SerializationOut {
                method: s.method.name(),
                hash_type: s.hash_type.name(),
                shard_size: match s.method {
                    Method::Files => None,
                    Method::Shards { shard_size_bytes } => Some(shard_size_bytes),
                },
                allow_symlinks: s.allow_symlinks,
                ignore_paths: &s.ignore_paths,
            },
            resources: self
                .resources
                .iter()
                .map(|r| ResourceOut {
                    name: r.name.to_string(),
                    digest: hex::encode(&r.digest),
                    algorithm: self.algorithm_name(),
                })
                .collect(),
        }
    }

    /// Checks the invariants documented on [`Manifest`].
    fn check(&self) -> Result<(), OmsError> {
        if self.resources.is_empty() {
            return Err(OmsError::NoResources);
        }
        let hash = self.serialization.hash_type;
        let mut seen = HashSet::with_capacity(self.resources.len());
        let mut shards: BTreeMap<&str, Vec<&ResourceName>> = BTreeMap::new();
        for resource in &self.resources {
            let name = &resource.name;
            if resource.digest.len() != hash.digest_len_bytes() {
                return Err(OmsError::DigestLength {
                    name: name.to_string(),
                    found: resource.digest.len(),
                    expected: hash.digest_len_bytes(),
                    algorithm: hash,
                });
            }
            let sharded = matches!(self.serialization.method, Method::Shards { .. });
            if name.range.is_some() != sharded {
                return Err(OmsError::WrongMethod {
                    name: name.to_string(),
                    method: self.serialization.method.name(),
                });
            }
            if !seen.insert(name) {
                return Err(OmsError::Duplicate {
                    name: name.to_string(),
                });
            }
            shards.entry(&name.path).or_default().push(name);
        }
        if shards.contains_key(SINGLE_FILE_NAME) && shards.len() > 1 {
            return Err(OmsError::MixedSingleFile);
        }
        if let Method::Shards { shard_size_bytes } = self.serialization.method {
            for names in shards.values_mut() {
                names.sort_by_key(|n| n.range);
                check_shard_layout(names, shard_size_bytes)?;
            }
        }
        Ok(())
    }
}

/// The shards of one file, sorted by range, must be `0..s, s..2s, ...` with only the
/// last one possibly shorter.
fn check_shard_layout(names: &[&ResourceName], shard_size_bytes: u64) -> Result<(), OmsError> {
    let mut expected_start = 0;
    for (i, name) in names.iter().enumerate() {
        let range = name.range.expect("shard names have ranges");
        let last = i + 1 == names.len();
        let len_ok = if last {
            range.len_bytes() <= shard_size_bytes
        } else {
            range.len_bytes() == shard_size_bytes
        };
        if range.start != expected_start || !len_ok {
            return Err(OmsError::ShardLayout {
                name: name.to_string(),
                shard_size_bytes,
            });
        }
        expected_start = range.end;
    }
    Ok(())
}

impl OmsStatement {
    /// The subject digest, `sha256:<root digest>`: the name of the model in Pedigree.
    pub fn subject_digest(&self) -> Digest {
        Digest {
            algorithm: "sha256".into(),
            value: hex::encode(self.manifest.root_digest()),
        }
    }

    /// The statement as a DSSE payload: pretty-printed JSON, as the reference tool
    /// writes it (any JSON would do: signatures cover the exact bytes).
    pub fn to_payload(&self) -> Vec<u8> {
        let statement = StatementOut {
            type_: STATEMENT_TYPE_V1,
            subject: [SubjectOut {
                name: &self.model_name,
                digest: DigestOut {
                    sha256: hex::encode(self.manifest.root_digest()),
                },
            }],
            predicate_type: PREDICATE_TYPE,
            predicate: self.manifest.predicate_out(),
        };
        serde_json::to_vec_pretty(&statement).expect("a statement always serializes")
    }

    /// Reads the statement of an OMS envelope. The envelope's signatures are not
    /// checked here; check them first with [`Envelope::verify`].
    ///
    /// # Errors
    ///
    /// [`OmsError::PayloadType`] for a payload that is not in-toto, and otherwise as
    /// [`OmsStatement::from_payload`].
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, OmsError> {
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(OmsError::PayloadType {
                found: envelope.payload_type.clone(),
            });
        }
        Self::from_payload(&envelope.payload)
    }

    /// Parses and checks an OMS statement, accepting what the reference tool writes
    /// (see the module docs). The resources keep their listed order, and the subject
    /// digest must equal the root digest taken in that order.
    ///
    /// # Errors
    ///
    /// The first problem found, as an [`OmsError`].
    pub fn from_payload(payload: &[u8]) -> Result<Self, OmsError> {
        let statement =
            Statement::from_json(payload).map_err(|source| OmsError::Statement { source })?;
        if statement.predicate_type != PREDICATE_TYPE {
            return Err(OmsError::PredicateType {
                found: statement.predicate_type,
            });
        }
        let [subject] = statement.subject.as_slice() else {
            return Err(OmsError::SubjectCount {
                count: statement.subject.len(),
            });
        };
        let model_name = match &subject.name {
            Some(name) if !name.is_empty() => name.clone(),
            _ => return Err(OmsError::SubjectName),
        };
        let subject_digest = subject
            .digest
            .get("sha256")
            .ok_or(OmsError::SubjectDigest)?;
        let predicate = statement.predicate.ok_or_else(|| OmsError::MissingField {
            field: "predicate".into(),
        })?;
        let predicate = as_object(&predicate, "predicate")?;
        let serialization = parse_serialization(field(predicate, "predicate", "serialization")?)?;
        let resources =
            parse_resources(field(predicate, "predicate", "resources")?, &serialization)?;
        let manifest = Manifest {
            serialization,
            resources,
        };
        manifest.check()?;
        let root = hex::encode(manifest.root_digest());
        if *subject_digest != root {
            return Err(OmsError::RootDigest {
                subject: subject_digest.clone(),
                resources: root,
            });
        }
        Ok(OmsStatement {
            model_name,
            manifest,
        })
    }
}

fn field<'a>(
    object: &'a Map<String, Value>,
    parent: &str,
    name: &str,
) -> Result<&'a Value, OmsError> {
    object.get(name).ok_or_else(|| OmsError::MissingField {
        field: format!("{parent}.{name}"),
    })
}

fn type_error(value: &Value, field: &str, expected: &'static str) -> OmsError {
    OmsError::FieldType {
        field: field.to_owned(),
        expected,
        found: json_kind(value),
    }
}

fn as_object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, OmsError> {
    value
        .as_object()
        .ok_or_else(|| type_error(value, field, "object"))
}

fn as_str<'a>(value: &'a Value, field: &str) -> Result<&'a str, OmsError> {
    value
        .as_str()
        .ok_or_else(|| type_error(value, field, "string"))
}

fn parse_serialization(value: &Value) -> Result<Serialization, OmsError> {
    const AT: &str = "predicate.serialization";
    let object = as_object(value, AT)?;
    let hash_type = as_str(field(object, AT, "hash_type")?, "serialization.hash_type")?
        .parse()
        .map_err(|source| OmsError::HashType { source })?;
    let allow_symlinks = field(object, AT, "allow_symlinks")?;
    let allow_symlinks = allow_symlinks
        .as_bool()
        .ok_or_else(|| type_error(allow_symlinks, "serialization.allow_symlinks", "boolean"))?;
    let method = match as_str(field(object, AT, "method")?, "serialization.method")? {
        "files" if object.contains_key("shard_size") => return Err(OmsError::ShardSizeWithFiles),
        "files" => Method::Files,
        "shards" => Method::Shards {
            shard_size_bytes: parse_shard_size(field(object, AT, "shard_size")?)?,
        },
        other => {
            return Err(OmsError::Method {
                found: other.to_owned(),
            })
        }
    };
    let ignore_paths = match object.get("ignore_paths") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(paths)) => paths
            .iter()
            .map(|p| {
                let p = as_str(p, "serialization.ignore_paths[]")?;
                normalize_ignore_path(p).map_err(|source| OmsError::IgnorePath {
                    path: p.to_owned(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(type_error(other, "serialization.ignore_paths", "array")),
    };
    Ok(Serialization {
        method,
        hash_type,
        allow_symlinks,
        ignore_paths,
    })
}

/// A positive whole number; the reference tool writes it as a float (`300000.0`).
fn parse_shard_size(value: &Value) -> Result<u64, OmsError> {
    let invalid = || OmsError::ShardSize {
        found: value.to_string(),
    };
    let Value::Number(n) = value else {
        return Err(type_error(value, "serialization.shard_size", "number"));
    };
    let size = match n.as_u64() {
        Some(size) => size,
        None => {
            let f = n.as_f64().ok_or_else(invalid)?;
            // Below 2^53 every whole float is exact, so the cast loses nothing.
            if f.fract() != 0.0 || !(1.0..=9_007_199_254_740_992.0).contains(&f) {
                return Err(invalid());
            }
            f as u64
        }
    };
    if size == 0 {
        return Err(invalid());
    }
    Ok(size)
}

fn parse_resources(
    value: &Value,
    serialization: &Serialization,
) -> Result<Vec<Resource>, OmsError> {
    let list = value
        .as_array()
        .ok_or_else(|| type_error(value, "predicate.resources", "array"))?;
    let hash = serialization.hash_type;
    let sharded_name = match serialization.method {
        Method::Files => None,
        Method::Shards { shard_size_bytes } => Some(format!("{hash}-sharded-{shard_size_bytes}")),
    };
    list.iter()
        .enumerate()
        .map(|(index, item)| {
            let at = format!("predicate.resources[{index}]");
            let object = as_object(item, &at)?;
            let name_text = as_str(field(object, &at, "name")?, &format!("{at}.name"))?;
            let name =
                ResourceName::parse(name_text, sharded_name.is_some()).map_err(|source| {
                    OmsError::ResourceName {
                        index,
                        name: name_text.to_owned(),
                        source,
                    }
                })?;
            let algorithm = as_str(field(object, &at, "algorithm")?, &format!("{at}.algorithm"))?;
            if algorithm != hash.name() && Some(algorithm) != sharded_name.as_deref() {
                return Err(OmsError::Algorithm {
                    name: name_text.to_owned(),
                    found: algorithm.to_owned(),
                    expected: hash,
                });
            }
            let digest = as_str(field(object, &at, "digest")?, &format!("{at}.digest"))?;
            let lowercase_hex = digest
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            let digest = hex::decode(digest)
                .ok()
                .filter(|_| lowercase_hex)
                .ok_or_else(|| OmsError::DigestNotHex {
                    name: name_text.to_owned(),
                })?;
            Ok(Resource { name, digest })
        })
        .collect()
}

#[derive(Serialize)]
struct StatementOut<'a> {
    #[serde(rename = "_type")]
    type_: &'a str,
    subject: [SubjectOut<'a>; 1],
    #[serde(rename = "predicateType")]
    predicate_type: &'a str,
    predicate: PredicateOut<'a>,
}

#[derive(Serialize)]
struct SubjectOut<'a> {
    name: &'a str,
    digest: DigestOut,
}

#[derive(Serialize)]
struct DigestOut {
    sha256: String,
}

#[derive(Serialize)]
struct PredicateOut<'a> {
    serialization: SerializationOut<'a>,
    resources: Vec<ResourceOut>,
}

#[derive(Serialize)]
struct SerializationOut<'a> {
    method: &'a str,
    hash_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_size: Option<u64>,
    allow_symlinks: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    ignore_paths: &'a [String],
}

#[derive(Serialize)]
struct ResourceOut {
    name: String,
    digest: String,
    algorithm: &'static str,
}

#[cfg(test)]
mod tests;
