//! Digests in the canonical text form the log indexes, and the in-toto
//! DigestSet rules they are checked against (`digest_set.md`).

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

/// Digests of one artifact keyed by algorithm name (an in-toto DigestSet).
///
/// A `BTreeMap` so that iteration, serialization and indexing all see the
/// algorithms in one stable order.
pub type DigestSet = BTreeMap<String, String>;

/// A digest in the canonical text form the log indexes: `algorithm:value`,
/// for example `sha256:9f86d0…`.
///
/// The fields are public for building and matching; [`Digest::new`] and
/// [`FromStr`] check them with [`validate_digest`], so a parsed `Digest` is
/// always canonical. Serializes as its text form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    /// Algorithm name as in a DigestSet key, e.g. `sha256` or `gitCommit`.
    pub algorithm: String,
    /// The digest, lowercase hex.
    pub value: String,
}

/// How many hex characters a digest value of some algorithm may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HexLength {
    /// Exactly this many, for fixed-size hashes.
    Exactly(usize),
    /// One of two lengths, for git object ids (SHA-1 or SHA-256 repositories).
    Either(usize, usize),
    /// Any length in this inclusive range, for algorithms the log doesn't know.
    Between(usize, usize),
}

/// Why a digest was refused.
#[derive(Debug, Error)]
pub enum DigestError {
    /// The algorithm name has characters or a length no DigestSet key should.
    #[error("digest algorithm name {algorithm:?} is not 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    AlgorithmName {
        /// The name as given.
        algorithm: String,
    },
    /// The algorithm is a known one spelled differently (`SHA256`, `sha-256`).
    #[error("digest algorithm {algorithm:?} is not canonical, expected {canonical:?}")]
    NonCanonicalAlgorithm {
        /// The name as given.
        algorithm: String,
        /// The spelling the in-toto spec defines.
        canonical: &'static str,
    },
    /// The value has a character other than `0-9a-f`.
    #[error("{algorithm} digest has {character:?} at byte {offset}, expected lowercase hex")]
    NotLowercaseHex {
        /// Algorithm of the digest.
        algorithm: String,
        /// Byte offset of the first offending character.
        offset: usize,
        /// The first offending character.
        character: char,
    },
    /// The value has the wrong number of hex characters for its algorithm.
    #[error("{algorithm} digest has {found} hex characters, expected {expected}")]
    Length {
        /// Algorithm of the digest.
        algorithm: String,
        /// Allowed lengths for that algorithm.
        expected: HexLength,
        /// Length of the value.
        found: usize,
    },
    /// Digest text without the `:` between algorithm and value.
    #[error("digest text has no ':' between algorithm and value")]
    MissingSeparator,
}

/// Digest algorithms with a fixed encoding: the in-toto DigestSet standard
/// names (except `gost`, whose size depends on the variant, so it falls under
/// the unknown-name rule), `gost3411` and `blake3` as 256-bit hashes,
/// `dirHash`, and the git object ids.
///
/// Every other name is accepted under [`UNKNOWN_ALGORITHM_LENGTH`].
const KNOWN_ALGORITHMS: &[(&str, HexLength)] = &[
    ("sha256", HexLength::Exactly(64)),
    ("sha224", HexLength::Exactly(56)),
    ("sha384", HexLength::Exactly(96)),
    ("sha512", HexLength::Exactly(128)),
    ("sha512_224", HexLength::Exactly(56)),
    ("sha512_256", HexLength::Exactly(64)),
    ("sha3_224", HexLength::Exactly(56)),
    ("sha3_256", HexLength::Exactly(64)),
    ("sha3_384", HexLength::Exactly(96)),
    ("sha3_512", HexLength::Exactly(128)),
    ("shake128", HexLength::Exactly(64)),
    ("shake256", HexLength::Exactly(128)),
    ("blake2b", HexLength::Exactly(128)),
    ("blake2s", HexLength::Exactly(64)),
    ("blake3", HexLength::Exactly(64)),
    ("ripemd160", HexLength::Exactly(40)),
    ("sm3", HexLength::Exactly(64)),
    ("gost3411", HexLength::Exactly(64)),
    ("sha1", HexLength::Exactly(40)),
    ("md5", HexLength::Exactly(32)),
    ("dirHash", HexLength::Exactly(64)),
    ("gitCommit", HexLength::Either(40, 64)),
    ("gitTree", HexLength::Either(40, 64)),
    ("gitBlob", HexLength::Either(40, 64)),
    ("gitTag", HexLength::Either(40, 64)),
];

/// Lengths allowed for algorithms not in [`KNOWN_ALGORITHMS`]: lowercase hex
/// up to the size of a 512-bit hash.
const UNKNOWN_ALGORITHM_LENGTH: HexLength = HexLength::Between(1, 128);

/// Longest algorithm name accepted.
const MAX_ALGORITHM_NAME_LEN: usize = 64;

impl Digest {
    /// Makes a digest, checking it with [`validate_digest`].
    ///
    /// # Errors
    ///
    /// Any [`DigestError`] of [`validate_digest`].
    pub fn new(
        algorithm: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, DigestError> {
        let digest = Digest {
            algorithm: algorithm.into(),
            value: value.into(),
        };
        validate_digest(&digest.algorithm, &digest.value)?;
        Ok(digest)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.value)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Parses `algorithm:value`, splitting at the first `:` (algorithm names
    /// have none) and checking the result with [`validate_digest`].
    fn from_str(text: &str) -> Result<Self, DigestError> {
        let (algorithm, value) = text.split_once(':').ok_or(DigestError::MissingSeparator)?;
        Digest::new(algorithm, value)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl HexLength {
    /// Whether a value of `len` hex characters is allowed.
    pub fn allows(self, len: usize) -> bool {
        match self {
            HexLength::Exactly(n) => len == n,
            HexLength::Either(a, b) => len == a || len == b,
            HexLength::Between(min, max) => (min..=max).contains(&len),
        }
    }
}

impl fmt::Display for HexLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexLength::Exactly(n) => write!(f, "{n}"),
            HexLength::Either(a, b) => write!(f, "{a} or {b}"),
            HexLength::Between(min, max) => write!(f, "{min} to {max}"),
        }
    }
}

/// Checks that one DigestSet entry is in the canonical form the log indexes.
///
/// Known algorithms (the in-toto standard names, `blake3`, `gost3411`,
/// `dirHash`, and the git object ids `gitCommit`, `gitTree`, `gitBlob`,
/// `gitTag`) need lowercase hex of their exact length, 40 or 64 for git ids.
/// A known name spelled another way (`SHA256`, `sha-256`) is refused, since
/// the log would index it apart from the canonical one.
///
/// Other names are kept, to stay open to the DigestSet spec's custom
/// algorithms, but only as `[A-Za-z0-9_-]{1,64}` with a value of 1 to 128
/// lowercase hex characters: the log only indexes digests it can compare as
/// text, and a value in an unknown encoding (base64, say) can't be.
///
/// # Errors
///
/// The first rule broken, as a [`DigestError`].
pub fn validate_digest(algorithm: &str, value: &str) -> Result<(), DigestError> {
    let expected = match KNOWN_ALGORITHMS.iter().find(|(name, _)| *name == algorithm) {
        Some((_, length)) => *length,
        None => {
            let name_ok = (1..=MAX_ALGORITHM_NAME_LEN).contains(&algorithm.len())
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_ok {
                return Err(DigestError::AlgorithmName {
                    algorithm: algorithm.to_owned(),
                });
            }
            if let Some(canonical) = canonical_spelling(algorithm) {
                return Err(DigestError::NonCanonicalAlgorithm {
                    algorithm: algorithm.to_owned(),
                    canonical,
                });
            }
            UNKNOWN_ALGORITHM_LENGTH
        }
    };
    if let Some((offset, character)) = value
        .char_indices()
        .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
    {
        return Err(DigestError::NotLowercaseHex {
            algorithm: algorithm.to_owned(),
            offset,
            character,
        });
    }
    // All characters are ASCII now, so the byte length is the character count.
    if !expected.allows(value.len()) {
        return Err(DigestError::Length {
            algorithm: algorithm.to_owned(),
            expected,
            found: value.len(),
        });
    }
    Ok(())
}

/// The known algorithm `algorithm` is a variant spelling of, ignoring case,
/// `_` and `-`.
fn canonical_spelling(algorithm: &str) -> Option<&'static str> {
    fn fold(name: &str) -> impl Iterator<Item = char> + '_ {
        name.chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_lowercase())
    }
    KNOWN_ALGORITHMS
        .iter()
        .map(|(name, _)| *name)
        .find(|name| fold(name).eq(fold(algorithm)))
}

/// Reads a DigestSet, refusing a repeated algorithm: parsers disagree on
/// which of two values wins, and the log must index the one verifiers see.
pub(super) fn deserialize_digest_set<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DigestSet, D::Error> {
    struct DigestSetVisitor;

    impl<'de> Visitor<'de> for DigestSetVisitor {
        type Value = DigestSet;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a digest set, an object of algorithm names to strings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DigestSet, A::Error> {
            let mut set = DigestSet::new();
            while let Some((algorithm, value)) = map.next_entry::<String, String>()? {
                match set.entry(algorithm) {
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                    Entry::Occupied(slot) => {
                        return Err(de::Error::custom(format_args!(
                            "duplicate digest algorithm {:?}",
                            slot.key()
                        )));
                    }
                }
            }
            Ok(set)
        }
    }

    deserializer.deserialize_map(DigestSetVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256_MODEL: &str = "9372c470eeadd5ecd9c3c74c2b3cb633f8e2f2fad799250a0f70d652b6b825e4";

    #[test]
    fn validate_digest_enforces_canonical_form() {
        let hex = |n: usize| {
            "0123456789abcdef"
                .chars()
                .cycle()
                .take(n)
                .collect::<String>()
        };
        let long_name = "a".repeat(65);
        let cases: Vec<(&str, String, Result<(), &str>)> = vec![
            ("sha256", hex(64), Ok(())),
            ("sha512", hex(128), Ok(())),
            ("sha512_224", hex(56), Ok(())),
            ("sha3_384", hex(96), Ok(())),
            ("blake2b", hex(128), Ok(())),
            ("blake3", hex(64), Ok(())),
            ("ripemd160", hex(40), Ok(())),
            ("md5", hex(32), Ok(())),
            ("gitCommit", hex(40), Ok(())),
            ("gitCommit", hex(64), Ok(())),
            ("gitBlob", hex(40), Ok(())),
            (
                "gitCommit",
                hex(41),
                Err("gitCommit digest has 41 hex characters, expected 40 or 64"),
            ),
            ("dirHash", hex(64), Ok(())),
            ("somecoolhash", "abcd".to_owned(), Ok(())),
            ("custom-alg_2", hex(128), Ok(())),
            (
                "custom",
                hex(129),
                Err("custom digest has 129 hex characters, expected 1 to 128"),
            ),
            ("custom", String::new(), Err("expected 1 to 128")),
            (
                "sha256",
                String::new(),
                Err("sha256 digest has 0 hex characters, expected 64"),
            ),
            ("sha256", hex(63), Err("expected 64")),
            ("sha256", hex(65), Err("expected 64")),
            (
                "sha1",
                hex(64),
                Err("sha1 digest has 64 hex characters, expected 40"),
            ),
            ("sha256", hex(63) + "A", Err("'A' at byte 63")),
            ("sha256", hex(62) + "é", Err("'é' at byte 62")),
            ("custom", "SGVsbG8=".to_owned(), Err("'S' at byte 0")),
            (
                "Sha256",
                hex(64),
                Err(r#"digest algorithm "Sha256" is not canonical, expected "sha256""#),
            ),
            ("sha-256", hex(64), Err(r#"expected "sha256""#)),
            ("SHA3-256", hex(64), Err(r#"expected "sha3_256""#)),
            ("git_commit", hex(40), Err(r#"expected "gitCommit""#)),
            (
                "",
                hex(64),
                Err(r#"digest algorithm name "" is not 1 to 64"#),
            ),
            ("sha 256", hex(64), Err("is not 1 to 64 characters")),
            ("a:b", hex(64), Err("is not 1 to 64 characters")),
            (&long_name, hex(64), Err("is not 1 to 64 characters")),
        ];
        for (algorithm, value, expected) in cases {
            let got = validate_digest(algorithm, &value).map_err(|e| e.to_string());
            match (&got, expected) {
                (Ok(()), Ok(())) => {}
                (Err(got), Err(want)) if got.contains(want) => {}
                _ => panic!("{algorithm}:{value}: got {got:?}, want {expected:?}"),
            }
        }
    }

    #[test]
    fn digest_text_round_trips_and_is_checked() {
        let text = format!("sha256:{SHA256_MODEL}");
        let digest: Digest = text.parse().unwrap();
        assert_eq!(digest.algorithm, "sha256");
        assert_eq!(digest.value, SHA256_MODEL);
        assert_eq!(digest.to_string(), text);
        assert_eq!(
            serde_json::to_string(&digest).unwrap(),
            format!("\"{text}\"")
        );
        let back: Digest = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(back, digest);

        assert!(matches!(
            "sha256".parse::<Digest>(),
            Err(DigestError::MissingSeparator)
        ));
        assert!(matches!(
            "sha256:ABCD".parse::<Digest>(),
            Err(DigestError::NotLowercaseHex { .. })
        ));
        assert!(matches!(
            "sha256::ab".parse::<Digest>(),
            Err(DigestError::NotLowercaseHex { .. })
        ));
        assert!(serde_json::from_str::<Digest>("\"md5:00\"").is_err());
        assert!(serde_json::from_str::<Digest>("5").is_err());
    }

    #[test]
    fn digests_are_ordered_by_algorithm_then_value() {
        let mut digests = [
            Digest::new("sha512", "00".repeat(64)).unwrap(),
            Digest::new("sha256", "ff".repeat(32)).unwrap(),
            Digest::new("sha256", "00".repeat(32)).unwrap(),
        ];
        digests.sort();
        let algorithms: Vec<&str> = digests.iter().map(|d| d.algorithm.as_str()).collect();
        assert_eq!(algorithms, ["sha256", "sha256", "sha512"]);
        assert!(digests[0].value < digests[1].value);
    }
}
