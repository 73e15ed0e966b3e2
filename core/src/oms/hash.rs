//! The content hashes of OMS resource digests, and the root digest over them.

use std::fmt;
use std::str::FromStr;

use blake2::Blake2b512;
use sha2::{Digest as _, Sha256};

/// A hash algorithm for resource digests (`serialization.hash_type`), as listed in the
/// OMS algorithm registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256, the default and the only one every OMS verifier must support.
    Sha256,
    /// BLAKE2b with its full 512-bit output (Python's `hashlib.blake2b()` default).
    Blake2b,
    /// BLAKE3 with its default 256-bit output.
    Blake3,
}

impl HashAlgorithm {
    /// The identifier in `hash_type` and in resource `algorithm` fields.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Blake2b => "blake2b",
            HashAlgorithm::Blake3 => "blake3",
        }
    }

    /// Length of one digest in bytes.
    pub const fn digest_len_bytes(self) -> usize {
        match self {
            HashAlgorithm::Sha256 | HashAlgorithm::Blake3 => 32,
            HashAlgorithm::Blake2b => 64,
        }
    }

    /// A fresh streaming hasher of this algorithm.
    pub fn hasher(self) -> ContentHasher {
        ContentHasher {
            inner: match self {
                HashAlgorithm::Sha256 => HasherInner::Sha256(Sha256::new()),
                HashAlgorithm::Blake2b => HasherInner::Blake2b(Blake2b512::new()),
                HashAlgorithm::Blake3 => HasherInner::Blake3(Box::new(blake3::Hasher::new())),
            },
        }
    }

    /// The digest of `bytes`, for callers that have them all in memory.
    pub fn digest(self, bytes: &[u8]) -> Vec<u8> {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        hasher.finalize()
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = UnknownHashError;

    /// Reads `sha256`, `blake2b` or `blake3`, and `blake2`, the name the reference
    /// tool's API uses for BLAKE2b.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(HashAlgorithm::Sha256),
            "blake2b" | "blake2" => Ok(HashAlgorithm::Blake2b),
            "blake3" => Ok(HashAlgorithm::Blake3),
            _ => Err(UnknownHashError { name: s.to_owned() }),
        }
    }
}

/// A hash name that [`HashAlgorithm::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash algorithm {name:?}, expected sha256, blake2b or blake3")]
pub struct UnknownHashError {
    /// The name as given.
    pub name: String,
}

/// A streaming hasher: feed it a file's bytes in chunks of any size, in order.
#[derive(Clone)]
pub struct ContentHasher {
    inner: HasherInner,
}

#[derive(Clone)]
enum HasherInner {
    Sha256(Sha256),
    Blake2b(Blake2b512),
    // Boxed: a BLAKE3 hasher keeps a chunk stack of about 1.9 KiB.
    Blake3(Box<blake3::Hasher>),
}

impl ContentHasher {
    /// Adds `bytes` to the hashed content.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.inner {
            HasherInner::Sha256(h) => h.update(bytes),
            HasherInner::Blake2b(h) => h.update(bytes),
            HasherInner::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    /// The digest of everything added, [`HashAlgorithm::digest_len_bytes`] long.
    pub fn finalize(self) -> Vec<u8> {
        match self.inner {
            HasherInner::Sha256(h) => h.finalize().to_vec(),
            HasherInner::Blake2b(h) => h.finalize().to_vec(),
            HasherInner::Blake3(h) => h.finalize().as_bytes().to_vec(),
        }
    }
}

impl fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.inner {
            HasherInner::Sha256(_) => "sha256",
            HasherInner::Blake2b(_) => "blake2b",
            HasherInner::Blake3(_) => "blake3",
        };
        f.debug_tuple("ContentHasher").field(&name).finish()
    }
}

/// The OMS root digest (spec section 6.5.1): SHA-256 over the concatenated raw bytes
/// of the resource digests, in the order given. It is SHA-256 whatever the resources'
/// hash algorithm.
pub fn root_digest<'a>(digests: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for digest in digests {
        hasher.update(digest);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_answers_and_python_hashlib() {
        // `hashlib.sha256(b"hello")`, `hashlib.blake2b(b"hello")`, `blake3.blake3(b"hello")`.
        let cases = [
            (
                HashAlgorithm::Sha256,
                "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            ),
            (
                HashAlgorithm::Blake2b,
                "e4cfa39a3d37be31c59609e807970799caa68a19bfaa15135f165085e01d41a6\
                 5ba1e1b146aeb6bd0092b49eac214c103ccfa3a365954bbbe52f74a2b3620c94",
            ),
            (
                HashAlgorithm::Blake3,
                "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f",
            ),
        ];
        for (alg, hex_digest) in cases {
            let digest = alg.digest(b"hello");
            assert_eq!(hex::encode(&digest), hex_digest, "{alg}");
            assert_eq!(digest.len(), alg.digest_len_bytes());
        }
    }

    #[test]
    fn chunking_does_not_change_the_digest() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for alg in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Blake2b,
            HashAlgorithm::Blake3,
        ] {
            let mut hasher = alg.hasher();
            for chunk in data.chunks(777) {
                hasher.update(chunk);
            }
            assert_eq!(hasher.finalize(), alg.digest(&data));
        }
    }

    #[test]
    fn hash_names_parse_and_print() {
        for alg in [
            HashAlgorithm::Sha256,
            HashAlgorithm::Blake2b,
            HashAlgorithm::Blake3,
        ] {
            assert_eq!(alg.name().parse::<HashAlgorithm>().unwrap(), alg);
        }
        assert_eq!(
            "blake2".parse::<HashAlgorithm>().unwrap(),
            HashAlgorithm::Blake2b
        );
        assert!("sha512".parse::<HashAlgorithm>().is_err());
    }

    #[test]
    fn root_digest_is_sha256_of_concatenated_digests() {
        let a = [1u8; 32];
        let b = [2u8; 64];
        let mut concatenated = a.to_vec();
        concatenated.extend_from_slice(&b);
        let expected: [u8; 32] = Sha256::digest(&concatenated).into();
        assert_eq!(root_digest([a.as_slice(), b.as_slice()]), expected);
    }
}
