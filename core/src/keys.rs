//! Public and private signing keys: parsing, encoding, fingerprints, signing and
//! verification.
//!
//! Two algorithms are supported, the ones ML supply-chain signers use today:
//! Ed25519 (RFC 8032, always verified strictly) and ECDSA over P-256 with SHA-256
//! (what Sigstore and the OpenSSF model-signing tool produce). Keys are read and
//! written in the encodings `openssl` uses: SPKI `PUBLIC KEY` PEM, PKCS#8
//! `PRIVATE KEY` PEM and, for P-256, SEC1 `EC PRIVATE KEY` PEM. Every other
//! algorithm, curve or encoding, and passphrase-protected keys, are rejected with a
//! typed [`KeyError`]; none is silently read as something else.
//!
//! A key is named by its [`Fingerprint`], the SHA-256 of its DER
//! SubjectPublicKeyInfo. The DER is re-encoded from the parsed key, so one key has
//! one fingerprint whatever encoding (for example a compressed P-256 point) it was
//! read from.

use std::fmt;
use std::str::FromStr;

use p256::ecdsa::signature::Verifier as _;
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePublicKey as _, EncodePublicKey as _, ObjectIdentifier};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use spki::SubjectPublicKeyInfoRef;

mod private;

pub use private::PrivateKey;

/// RFC 8410 `id-Ed25519`.
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// RFC 5480 `id-ecPublicKey`; the curve is in the algorithm parameters.
const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// RFC 5480 `secp256r1`, also called `prime256v1` and P-256.
const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// A signature algorithm, named as in Pedigree's policy files and CLI flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032), verified with the strict rules of `verify_strict`.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256, signatures in ASN.1 DER.
    #[serde(rename = "ecdsa-p256-sha256", alias = "p256")]
    EcdsaP256Sha256,
}

impl Algorithm {
    /// The canonical name, as [`fmt::Display`] prints it and [`FromStr`] reads it.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithmError;

    /// Reads `ed25519`, `ecdsa-p256-sha256` or the short form `p256`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ed25519" => Ok(Algorithm::Ed25519),
            "p256" | "ecdsa-p256-sha256" => Ok(Algorithm::EcdsaP256Sha256),
            _ => Err(UnknownAlgorithmError { name: s.to_owned() }),
        }
    }
}

/// An algorithm name that [`Algorithm::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key algorithm {name:?}, expected ed25519, p256 or ecdsa-p256-sha256")]
pub struct UnknownAlgorithmError {
    /// The name as given.
    pub name: String,
}

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The text is not a single well-formed PEM block.
    #[error("couldn't decode pem")]
    Pem {
        /// What the PEM decoder rejected (a `der::Error` of kind `Pem`, since the
        /// PEM decoder's own error type does not implement `std::error::Error`).
        #[source]
        source: pkcs8::der::Error,
    },
    /// The PEM block holds something other than the kind of key asked for.
    #[error("pem label is {found:?}, expected {expected:?}")]
    UnexpectedLabel {
        /// The label after `-----BEGIN `.
        found: String,
        /// The label (or labels) that would have been accepted.
        expected: &'static str,
    },
    /// The DER structure or the key material inside it is invalid.
    #[error("key is malformed")]
    Malformed {
        /// What the DER or key decoder rejected.
        #[source]
        source: pkcs8::Error,
    },
    /// A well-formed key of an algorithm or curve Pedigree does not accept.
    #[error(
        "unsupported key algorithm {oid}{}, expected ed25519 or ecdsa p-256",
        describe_oid(oid)
    )]
    UnsupportedAlgorithm {
        /// The algorithm OID, or for elliptic-curve keys the curve OID.
        oid: String,
    },
    /// An Ed25519 public key of small order, under which forged signatures can verify.
    #[error("ed25519 public key has small order")]
    WeakKey,
    /// A PKCS#8 `ENCRYPTED PRIVATE KEY` (read it with a passphrase) or a legacy
    /// encrypted SEC1 key (not supported).
    #[error("private key is passphrase-protected")]
    Encrypted,
    /// The passphrase does not decrypt the key, or the encryption scheme is unsupported.
    #[error("couldn't decrypt the private key: wrong passphrase or unsupported encryption")]
    Decrypt,
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is well-formed but was not made over this message by this key.
    #[error("signature does not verify with key {key}")]
    Invalid {
        /// The key that was tried.
        key: Fingerprint,
    },
    /// The signature bytes have the wrong length or encoding for the algorithm.
    #[error("{algorithm} signature of {len_bytes} bytes is malformed")]
    Malformed {
        /// The algorithm of the key that was tried.
        algorithm: Algorithm,
        /// Length of the rejected signature.
        len_bytes: usize,
    },
}

/// Why a string is not a [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FingerprintError {
    /// Not exactly 64 characters long.
    #[error("fingerprint is {len_bytes} bytes long, expected 64 hex digits")]
    Length {
        /// Length of the rejected string.
        len_bytes: usize,
    },
    /// 64 characters, but not all hex digits.
    #[error("fingerprint is not hex")]
    Hex {
        /// What the hex decoder rejected.
        #[source]
        source: hex::FromHexError,
    },
}

/// The SHA-256 of a public key's DER SubjectPublicKeyInfo: the name Pedigree uses
/// for a key in DSSE `keyid`s, policies and error messages.
///
/// It equals `openssl pkey -pubin -outform DER | sha256sum` for the same key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    fn of_spki_der(spki_der: &[u8]) -> Self {
        Fingerprint(Sha256::digest(spki_der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    /// Reads exactly 64 hex digits, lower or upper case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(FingerprintError::Length { len_bytes: s.len() });
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|source| FingerprintError::Hex { source })?;
        Ok(Fingerprint(bytes))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Fingerprint;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a fingerprint of 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Fingerprint, E> {
                s.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A public key that signatures are checked against.
///
/// Equality and hashing compare the canonical DER SubjectPublicKeyInfo.
#[derive(Clone)]
pub struct PublicKey {
    inner: PublicInner,
    /// Canonical re-encoding of `inner`; what the fingerprint is taken over.
    spki_der: Vec<u8>,
    fingerprint: Fingerprint,
}

#[derive(Clone)]
enum PublicInner {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Reads an SPKI `PUBLIC KEY` PEM block, as `openssl pkey -pubout` writes it.
    ///
    /// # Errors
    ///
    /// [`KeyError::Pem`] or [`KeyError::UnexpectedLabel`] when the text is not one
    /// `PUBLIC KEY` block, and otherwise as [`PublicKey::from_spki_der`].
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = decode_pem(pem)?;
        if label != PUBLIC_KEY_LABEL {
            return Err(KeyError::UnexpectedLabel {
                found: label,
                expected: PUBLIC_KEY_LABEL,
            });
        }
        Self::from_spki_der(&der)
    }

    /// Reads a DER SubjectPublicKeyInfo holding an Ed25519 or P-256 key.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnsupportedAlgorithm`] for any other algorithm or curve,
    /// [`KeyError::WeakKey`] for a small-order Ed25519 key, and
    /// [`KeyError::Malformed`] for anything that is not a valid key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = SubjectPublicKeyInfoRef::try_from(der).map_err(malformed)?;
        let oid = spki.algorithm.oid;
        let inner = if oid == ED25519_OID {
            let key = ed25519_dalek::VerifyingKey::from_public_key_der(der).map_err(malformed)?;
            if key.is_weak() {
                return Err(KeyError::WeakKey);
            }
            PublicInner::Ed25519(key)
        } else if oid == EC_PUBLIC_KEY_OID {
            check_curve(spki.algorithm.parameters_oid().map_err(malformed)?)?;
            PublicInner::P256(
                p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(malformed)?,
            )
        } else {
            return Err(unsupported(oid));
        };
        Ok(Self::from_inner(inner))
    }

    fn from_inner(inner: PublicInner) -> Self {
        let spki_der = match &inner {
            PublicInner::Ed25519(key) => key.to_public_key_der(),
            PublicInner::P256(key) => key.to_public_key_der(),
        }
        .expect("a parsed public key always encodes as spki")
        .into_vec();
        let fingerprint = Fingerprint::of_spki_der(&spki_der);
        PublicKey {
            inner,
            spki_der,
            fingerprint,
        }
    }

    /// The key as an SPKI `PUBLIC KEY` PEM block with LF line endings, byte for
    /// byte what `openssl pkey -pubout` writes.
    pub fn to_pem(&self) -> String {
        pkcs8::der::pem::encode_string(PUBLIC_KEY_LABEL, LineEnding::LF, &self.spki_der)
            .expect("pem encoding of a short der document cannot fail")
    }

    /// The canonical DER SubjectPublicKeyInfo, the bytes the fingerprint is taken over.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            PublicInner::Ed25519(_) => Algorithm::Ed25519,
            PublicInner::P256(_) => Algorithm::EcdsaP256Sha256,
        }
    }

    /// The SHA-256 of [`PublicKey::spki_der`].
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Checks that `sig` was made over `msg` by this key.
    ///
    /// Ed25519 uses `verify_strict`, which rejects non-canonical and small-order
    /// signature components. ECDSA P-256 hashes `msg` with SHA-256 and accepts the
    /// signature in ASN.1 DER (as OpenSSL, Go, Sigstore and model-signing write it)
    /// or as 64 bytes `r || s`, with either low or high `s`.
    ///
    /// # Errors
    ///
    /// [`SignatureError::Malformed`] when `sig` cannot be a signature of this
    /// algorithm, [`SignatureError::Invalid`] when it is one but does not verify.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
        let malformed = || SignatureError::Malformed {
            algorithm: self.algorithm(),
            len_bytes: sig.len(),
        };
        let invalid = || SignatureError::Invalid {
            key: self.fingerprint,
        };
        match &self.inner {
            PublicInner::Ed25519(key) => {
                let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| malformed())?;
                key.verify_strict(msg, &sig).map_err(|_| invalid())
            }
            PublicInner::P256(key) => {
                // A 64-byte string can be both valid DER and a valid r || s pair;
                // both readings are tried so neither encoding is ever refused.
                let der = p256::ecdsa::Signature::from_der(sig).ok();
                let fixed = match sig.len() {
                    64 => p256::ecdsa::Signature::from_slice(sig).ok(),
                    _ => None,
                };
                if der.is_none() && fixed.is_none() {
                    return Err(malformed());
                }
                if [der, fixed]
                    .into_iter()
                    .flatten()
                    .any(|sig| key.verify(msg, &sig).is_ok())
                {
                    Ok(())
                } else {
                    Err(invalid())
                }
            }
        }
    }

    /// The Ed25519 key inside, for code that must hand it to a dalek-based API
    /// (signed notes); `None` for P-256 keys.
    pub fn as_ed25519(&self) -> Option<&ed25519_dalek::VerifyingKey> {
        match &self.inner {
            PublicInner::Ed25519(key) => Some(key),
            PublicInner::P256(_) => None,
        }
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki_der == other.spki_der
    }
}

impl Eq for PublicKey {}

impl std::hash::Hash for PublicKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.spki_der.hash(state);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm())
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

fn decode_pem(pem: &str) -> Result<(String, Vec<u8>), KeyError> {
    let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes()).map_err(pem_error)?;
    Ok((label.to_owned(), der))
}

fn pem_error(source: pkcs8::der::pem::Error) -> KeyError {
    KeyError::Pem {
        source: source.into(),
    }
}

fn check_curve(curve: ObjectIdentifier) -> Result<(), KeyError> {
    if curve == P256_OID {
        Ok(())
    } else {
        Err(unsupported(curve))
    }
}

fn malformed(source: impl Into<pkcs8::Error>) -> KeyError {
    KeyError::Malformed {
        source: source.into(),
    }
}

fn unsupported(oid: ObjectIdentifier) -> KeyError {
    KeyError::UnsupportedAlgorithm {
        oid: oid.to_string(),
    }
}

/// A readable name for the OIDs people most often try, for error messages.
fn describe_oid(oid: &str) -> &'static str {
    match oid {
        "1.2.840.113549.1.1.1" => " (rsa)",
        "1.2.840.113549.1.1.10" => " (rsa-pss)",
        "1.3.132.0.34" => " (p-384)",
        "1.3.132.0.35" => " (p-521)",
        "1.3.132.0.10" => " (secp256k1)",
        "1.3.101.110" => " (x25519)",
        "1.3.101.113" => " (ed448)",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::prelude::{Engine as _, BASE64_STANDARD};

    // Fixtures made with OpenSSL 3.0: keys with `openssl genpkey -algorithm ed25519`
    // and `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8
    // -nocrypt` (in `private.rs`), public halves with `openssl pkey -pubout`,
    // fingerprints with `openssl pkey -pubin -outform DER | sha256sum`.
    pub(super) const OPENSSL_ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAdGibeWDzE8pZgo9UiX1TjfVf8gFq0xGtrl0cw/gA1ck=
-----END PUBLIC KEY-----
";
    pub(super) const OPENSSL_ED25519_FINGERPRINT: &str =
        "0ce6c8f0a030d10d8a6e88eaa549d202c4b3c8f1c2bd915478352db942ba1e89";
    pub(super) const OPENSSL_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1WtY8tbxpDNE/jtbisP7LrqSHNkx
yRtUMm0TvkOlcSqVtMxNESDNIirxXR7LiZkQq01Nm0+2hZLplZHQVCDw2g==
-----END PUBLIC KEY-----
";
    pub(super) const OPENSSL_P256_FINGERPRINT: &str =
        "9cdd5ff703813db3359dbde2e1057c7fa626cc6d8284b4838b8ff8707313a5a0";

    /// `shared/testdata/oms/reference-1.1.1/ec-p256.pub`, the key the OpenSSF
    /// model-signing 1.1.1 fixtures were signed with.
    pub(super) const OMS_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENlHs5Z5qqvZoDx79Fy8aF0Y2o8Bk
8TgN3RTIJ8R+Hrsu03RRrsq6pfxKz1k/eHGvuGjgGkrQMcVaSSML9+tP8A==
-----END PUBLIC KEY-----
";
    pub(super) const OMS_P256_FINGERPRINT: &str =
        "26bd0308961ea3b271cca43f1e4c51a94f9c38b257673de85d7b8d4a08f60ff5";

    /// Signed with `openssl pkeyutl -sign -rawin` (Ed25519) and `openssl dgst
    /// -sha256 -sign` (ECDSA, DER) by the private halves of the `OPENSSL_*_PUB`s.
    const OPENSSL_MESSAGE: &[u8] = b"pedigree interop test message\n";
    const OPENSSL_ED25519_SIG: &str =
        "qV6T6cxx6RtHw3yrT2LDgwKzIGvW1D1zHwdewWkIjqIPI/+SAO3j8f5VnJlbZnSIbAunJmEIxyxAf8zxfZxyCg==";
    const OPENSSL_P256_SIG: &str =
        "MEQCIC3Tc5UC32TpOQ6MvPUOFFBBk6jEguq92pzI9TmuuqpkAiAKARc+xcpRuWQLxyp8HRRK815kBmGhto+VBZcEYqmi5Q==";

    const OPENSSL_X25519_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEAbhUO22drjQbmPzUVSM1cjSAXxNvif3qw1kl+os5xzl8=
-----END PUBLIC KEY-----
";
    const OPENSSL_P384_PUB: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEVjN5WhCZr9bXJ7YfrleCsog5+5X5cKav
Y+Gia9Q3yt7pHKHgGVT/FQy3A1K3JzYLX44pC4TO/4s1KZr1GeZw+fDLHJVF1NSw
AewfM9kENJb5DRMPXVsS6fGNEqhHaRKN
-----END PUBLIC KEY-----
";
    const OPENSSL_RSA_PUB: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDQHw56ocLgTZJ5K0NVjBbSN8EO
ItIit/H9ytLvlPtLY9x1YZ/jdGAQNdFf1gTrogPvlKPMJSP1tfKQ5ROK6N0hbYtW
7ky/fvjhso26QTJCBgBVP5mkMHVe9QPeNCCQFeKi/bc3zge7MDsyEIGlzvTjCJdA
EL3qgHDqdaz+hZ+/MwIDAQAB
-----END PUBLIC KEY-----
";

    fn b64(s: &str) -> Vec<u8> {
        BASE64_STANDARD.decode(s).unwrap()
    }

    fn check_public(pem: &str, algorithm: Algorithm, fingerprint: &str) {
        let key = PublicKey::from_pem(pem).unwrap();
        assert_eq!(key.algorithm(), algorithm);
        assert_eq!(key.fingerprint().to_string(), fingerprint);
        assert_eq!(key.to_pem(), pem, "to_pem must reproduce openssl's pubout");
        assert_eq!(PublicKey::from_spki_der(key.spki_der()).unwrap(), key);
    }

    pub(super) fn unsupported_oid(err: KeyError) -> String {
        match err {
            KeyError::UnsupportedAlgorithm { oid } => oid,
            other => panic!("expected UnsupportedAlgorithm, got {other:?}"),
        }
    }

    #[test]
    fn openssl_public_keys_parse_with_openssl_fingerprints_and_round_trip() {
        check_public(
            OPENSSL_ED25519_PUB,
            Algorithm::Ed25519,
            OPENSSL_ED25519_FINGERPRINT,
        );
        check_public(
            OPENSSL_P256_PUB,
            Algorithm::EcdsaP256Sha256,
            OPENSSL_P256_FINGERPRINT,
        );
        check_public(
            OMS_P256_PUB,
            Algorithm::EcdsaP256Sha256,
            OMS_P256_FINGERPRINT,
        );
    }

    #[test]
    fn compressed_p256_point_gets_the_canonical_fingerprint() {
        let key = PublicKey::from_pem(OPENSSL_P256_PUB).unwrap();
        let PublicInner::P256(point) = &key.inner else {
            panic!("not a p-256 key")
        };
        let mut der = hex::decode("3039301306072a8648ce3d020106082a8648ce3d030107032200").unwrap();
        der.extend_from_slice(point.to_encoded_point(true).as_bytes());
        let compressed = PublicKey::from_spki_der(&der).unwrap();
        assert_eq!(compressed, key);
        assert_eq!(
            compressed.fingerprint().to_string(),
            OPENSSL_P256_FINGERPRINT
        );
    }

    #[test]
    fn public_key_pem_accepts_crlf_and_surrounding_whitespace() {
        let crlf = format!("\n  {}\n\n", OPENSSL_P256_PUB.replace('\n', "\r\n"));
        let key = PublicKey::from_pem(&crlf).unwrap();
        assert_eq!(key.fingerprint().to_string(), OPENSSL_P256_FINGERPRINT);
    }

    #[test]
    fn openssl_ed25519_signature_verifies() {
        let key = PublicKey::from_pem(OPENSSL_ED25519_PUB).unwrap();
        key.verify(OPENSSL_MESSAGE, &b64(OPENSSL_ED25519_SIG))
            .unwrap();
    }

    #[test]
    fn openssl_ecdsa_signature_verifies_in_der_and_fixed_form_with_low_or_high_s() {
        let key = PublicKey::from_pem(OPENSSL_P256_PUB).unwrap();
        let der = b64(OPENSSL_P256_SIG);
        key.verify(OPENSSL_MESSAGE, &der).unwrap();

        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        key.verify(OPENSSL_MESSAGE, &sig.to_bytes()).unwrap();

        // The same signature with s replaced by n - s is also valid ECDSA.
        let (r, s) = sig.split_scalars();
        let flipped = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(flipped, sig);
        key.verify(OPENSSL_MESSAGE, flipped.to_der().as_bytes())
            .unwrap();
        key.verify(OPENSSL_MESSAGE, &flipped.to_bytes()).unwrap();
    }

    #[test]
    fn openssl_signatures_do_not_verify_over_another_message() {
        for (pem, sig) in [
            (OPENSSL_ED25519_PUB, OPENSSL_ED25519_SIG),
            (OPENSSL_P256_PUB, OPENSSL_P256_SIG),
        ] {
            let key = PublicKey::from_pem(pem).unwrap();
            assert_eq!(
                key.verify(b"another message", &b64(sig)),
                Err(SignatureError::Invalid {
                    key: key.fingerprint()
                })
            );
        }
    }

    #[test]
    fn signature_of_wrong_length_is_malformed() {
        let cases = [
            (OPENSSL_ED25519_PUB, OPENSSL_ED25519_SIG, Algorithm::Ed25519),
            (
                OPENSSL_P256_PUB,
                OPENSSL_P256_SIG,
                Algorithm::EcdsaP256Sha256,
            ),
        ];
        for (pem, sig, algorithm) in cases {
            let key = PublicKey::from_pem(pem).unwrap();
            let sig = b64(sig);
            for len_bytes in [0, 1, sig.len() - 1] {
                assert_eq!(
                    key.verify(OPENSSL_MESSAGE, &sig[..len_bytes]),
                    Err(SignatureError::Malformed {
                        algorithm,
                        len_bytes
                    })
                );
            }
        }
    }

    #[test]
    fn ed25519_signature_with_non_canonical_s_is_invalid() {
        let key = PublicKey::from_pem(OPENSSL_ED25519_PUB).unwrap();
        let mut sig = b64(OPENSSL_ED25519_SIG);
        sig[63] |= 0xf0; // s >= 2^252, above the group order
        assert!(matches!(
            key.verify(OPENSSL_MESSAGE, &sig),
            Err(SignatureError::Invalid { .. })
        ));
    }

    #[test]
    fn small_order_ed25519_public_key_is_rejected_as_weak() {
        // The identity point, in an otherwise valid Ed25519 SubjectPublicKeyInfo.
        let mut der = hex::decode("302a300506032b6570032100").unwrap();
        der.push(1);
        der.extend([0u8; 31]);
        assert!(matches!(
            PublicKey::from_spki_der(&der),
            Err(KeyError::WeakKey)
        ));
    }

    #[test]
    fn other_algorithms_and_curves_are_unsupported_and_named() {
        let cases = [
            (OPENSSL_X25519_PUB, "1.3.101.110"),
            (OPENSSL_P384_PUB, "1.3.132.0.34"),
            (OPENSSL_RSA_PUB, "1.2.840.113549.1.1.1"),
        ];
        for (pem, oid) in cases {
            assert_eq!(unsupported_oid(PublicKey::from_pem(pem).unwrap_err()), oid);
        }
        assert_eq!(
            PublicKey::from_pem(OPENSSL_RSA_PUB)
                .unwrap_err()
                .to_string(),
            "unsupported key algorithm 1.2.840.113549.1.1.1 (rsa), expected ed25519 or ecdsa p-256"
        );
    }

    #[test]
    fn private_key_pem_is_not_a_public_key() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = PublicKey::from_pem(pem).unwrap_err();
        assert!(matches!(
            &err,
            KeyError::UnexpectedLabel { found, expected: "PUBLIC KEY" } if found == "PRIVATE KEY"
        ));
        assert_eq!(
            err.to_string(),
            r#"pem label is "PRIVATE KEY", expected "PUBLIC KEY""#
        );
    }

    #[test]
    fn garbage_gives_typed_errors_without_panicking() {
        for text in [
            "",
            "hello",
            "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n",
        ] {
            assert!(matches!(
                PublicKey::from_pem(text),
                Err(KeyError::Pem { .. })
            ));
        }
        let not_der = "-----BEGIN PUBLIC KEY-----\naGVsbG8=\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            PublicKey::from_pem(not_der),
            Err(KeyError::Malformed { .. })
        ));

        let der = PublicKey::from_pem(OPENSSL_P256_PUB)
            .unwrap()
            .spki_der()
            .to_vec();
        for len in 0..der.len() {
            assert!(PublicKey::from_spki_der(&der[..len]).is_err());
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(matches!(
            PublicKey::from_spki_der(&trailing),
            Err(KeyError::Malformed { .. })
        ));
        let mut off_curve = der.clone();
        *off_curve.last_mut().unwrap() ^= 1;
        assert!(matches!(
            PublicKey::from_spki_der(&off_curve),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn fingerprint_parses_64_hex_digits_in_either_case() {
        let fp: Fingerprint = OMS_P256_FINGERPRINT.parse().unwrap();
        assert_eq!(fp.to_string(), OMS_P256_FINGERPRINT);
        assert_eq!(format!("{fp:?}"), OMS_P256_FINGERPRINT);
        assert_eq!(
            OMS_P256_FINGERPRINT.to_uppercase().parse::<Fingerprint>(),
            Ok(fp)
        );
        assert_eq!(
            OMS_P256_FINGERPRINT[1..].parse::<Fingerprint>(),
            Err(FingerprintError::Length { len_bytes: 63 })
        );
        for bad in ["g".repeat(64), "é".repeat(32)] {
            assert!(matches!(
                bad.parse::<Fingerprint>(),
                Err(FingerprintError::Hex { .. })
            ));
        }
    }

    #[test]
    fn fingerprint_serializes_as_hex_string() {
        let fp: Fingerprint = OMS_P256_FINGERPRINT.parse().unwrap();
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(json, format!("\"{OMS_P256_FINGERPRINT}\""));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
        assert!(serde_json::from_str::<Fingerprint>("\"00\"").is_err());
        assert!(serde_json::from_str::<Fingerprint>("7").is_err());
    }

    #[test]
    fn algorithm_names_round_trip_and_accept_p256_alias() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            assert_eq!(alg.to_string().parse::<Algorithm>(), Ok(alg));
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{alg}\""));
            assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), alg);
        }
        assert_eq!("p256".parse::<Algorithm>(), Ok(Algorithm::EcdsaP256Sha256));
        assert_eq!(
            serde_json::from_str::<Algorithm>("\"p256\"").unwrap(),
            Algorithm::EcdsaP256Sha256
        );
        assert_eq!(
            "rsa".parse::<Algorithm>(),
            Err(UnknownAlgorithmError { name: "rsa".into() })
        );
    }
}
