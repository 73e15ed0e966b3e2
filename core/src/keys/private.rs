//! Private keys: generation, reading and writing PEM, signing.
//!
//! Split from `keys` because only signers (the log's own checkpoint key, the CLI
//! when it signs attestations, tests) ever hold a private key; verifiers use only
//! [`PublicKey`].

use std::fmt;

use p256::ecdsa::signature::Signer as _;
use pkcs8::der::asn1::{ContextSpecific, OctetStringRef};
use pkcs8::der::pem::LineEnding;
use pkcs8::der::zeroize::Zeroizing;
use pkcs8::der::{Decode as _, Reader as _, SliceReader, TagNumber};
use pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, ObjectIdentifier, PrivateKeyInfo};
use rand_core::OsRng;

use super::{
    check_curve, decode_pem, malformed, pem_error, unsupported, Algorithm, KeyError, PublicInner,
    PublicKey, EC_PUBLIC_KEY_OID, ED25519_OID,
};

const PKCS8_LABEL: &str = "PRIVATE KEY";
const ENCRYPTED_PKCS8_LABEL: &str = "ENCRYPTED PRIVATE KEY";
const SEC1_LABEL: &str = "EC PRIVATE KEY";

/// A private key that signs. Its `Debug` output shows only the public fingerprint,
/// and the key material is zeroized when dropped.
#[derive(Clone)]
pub struct PrivateKey {
    inner: PrivateInner,
}

#[derive(Clone)]
enum PrivateInner {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl PrivateKey {
    /// Makes a fresh key from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// If the operating system cannot supply random bytes; no key is better than a
    /// predictable one.
    pub fn generate(alg: Algorithm) -> Self {
        let inner = match alg {
            Algorithm::Ed25519 => {
                PrivateInner::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
            Algorithm::EcdsaP256Sha256 => {
                PrivateInner::P256(p256::ecdsa::SigningKey::random(&mut OsRng))
            }
        };
        PrivateKey { inner }
    }

    /// Reads an unencrypted PKCS#8 `PRIVATE KEY` PEM block (what `openssl genpkey`
    /// writes) or, for P-256, a SEC1 `EC PRIVATE KEY` block, optionally preceded by
    /// the `EC PARAMETERS` block that `openssl ecparam -genkey` writes.
    ///
    /// # Errors
    ///
    /// [`KeyError::Encrypted`] for passphrase-protected keys, [`KeyError::Pem`] or
    /// [`KeyError::UnexpectedLabel`] when the text is not one private key block,
    /// [`KeyError::UnsupportedAlgorithm`] for other algorithms or curves, and
    /// [`KeyError::Malformed`] for anything that is not a valid key.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pem = skip_ec_parameters(pem.trim());
        let label = pkcs8::der::pem::decode_label(pem.as_bytes()).map_err(pem_error)?;
        match label {
            ENCRYPTED_PKCS8_LABEL => return Err(KeyError::Encrypted),
            // Legacy OpenSSL encryption puts RFC 1421 headers inside the block.
            SEC1_LABEL if pem.contains("Proc-Type:") => return Err(KeyError::Encrypted),
            PKCS8_LABEL | SEC1_LABEL => {}
            other => {
                return Err(KeyError::UnexpectedLabel {
                    found: other.to_owned(),
                    expected: "PRIVATE KEY or EC PRIVATE KEY",
                })
            }
        }
        let (label, der) = decode_pem(pem)?;
        let der = Zeroizing::new(der);
        if label == PKCS8_LABEL {
            Self::from_pkcs8_der(&der)
        } else {
            Self::from_sec1_der(&der)
        }
    }

    /// Reads a key like [`PrivateKey::from_pem`], decrypting a PKCS#8
    /// `ENCRYPTED PRIVATE KEY` block (PBES2 with PBKDF2 or scrypt and AES-CBC, as
    /// `openssl pkcs8 -topk8 -v2 aes-256-cbc` and [`PrivateKey::to_encrypted_pem`]
    /// write) with `passphrase`. Unencrypted keys are read as they are.
    ///
    /// # Errors
    ///
    /// [`KeyError::Decrypt`] for a wrong passphrase, and the errors of `from_pem`.
    pub fn from_pem_with_passphrase(pem: &str, passphrase: &[u8]) -> Result<Self, KeyError> {
        let trimmed = pem.trim();
        let label = pkcs8::der::pem::decode_label(trimmed.as_bytes()).map_err(pem_error)?;
        if label != ENCRYPTED_PKCS8_LABEL {
            return Self::from_pem(pem);
        }
        let (_, der) = decode_pem(trimmed)?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(malformed)?;
        let plain = info.decrypt(passphrase).map_err(|_| KeyError::Decrypt)?;
        Self::from_pkcs8_der(plain.as_bytes())
    }

    /// The key as an encrypted PKCS#8 `ENCRYPTED PRIVATE KEY` PEM block (PBES2: scrypt
    /// and AES-256-CBC, readable by `openssl pkey`).
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> String {
        let plain = Zeroizing::new(self.to_pkcs8_pem());
        let (_, der) = decode_pem(&plain).expect("our own pkcs#8 pem decodes");
        let info = PrivateKeyInfo::try_from(der.as_slice()).expect("our own pkcs#8 parses");
        let doc = info
            .encrypt(OsRng, passphrase)
            .expect("encrypting a valid key with fresh randomness succeeds");
        doc.to_pem(ENCRYPTED_PKCS8_LABEL, LineEnding::LF)
            .expect("an encrypted key encodes as pem")
            .as_str()
            .to_owned()
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = PrivateKeyInfo::try_from(der).map_err(malformed)?;
        let oid = info.algorithm.oid;
        let inner = if oid == ED25519_OID {
            PrivateInner::Ed25519(
                ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(malformed)?,
            )
        } else if oid == EC_PUBLIC_KEY_OID {
            check_curve(info.algorithm.parameters_oid().map_err(malformed)?)?;
            PrivateInner::P256(p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(malformed)?)
        } else {
            return Err(unsupported(oid));
        };
        Ok(PrivateKey { inner })
    }

    /// Reads an RFC 5915 ECPrivateKey. The p256 crate does not check its curve
    /// parameters, so they are checked here before the key is handed over.
    fn from_sec1_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Some(curve) = sec1_curve(der).map_err(malformed)? {
            check_curve(curve)?;
        }
        let key = p256::SecretKey::from_sec1_der(der).map_err(|_| KeyError::Malformed {
            source: pkcs8::Error::KeyMalformed,
        })?;
        Ok(PrivateKey {
            inner: PrivateInner::P256(key.into()),
        })
    }

    /// The key as an unencrypted PKCS#8 `PRIVATE KEY` PEM block with LF line
    /// endings, in the layout `openssl genpkey` writes (for Ed25519, version 1
    /// without the optional public key). The returned `String` holds the secret and
    /// is not zeroized on drop: write it out and let it go.
    pub fn to_pkcs8_pem(&self) -> String {
        let pem = match &self.inner {
            PrivateInner::Ed25519(key) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: key.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(LineEnding::LF),
            PrivateInner::P256(key) => key.to_pkcs8_pem(LineEnding::LF),
        }
        .expect("a valid private key always encodes as pkcs#8");
        pem.as_str().to_owned()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_inner(match &self.inner {
            PrivateInner::Ed25519(key) => PublicInner::Ed25519(key.verifying_key()),
            PrivateInner::P256(key) => PublicInner::P256(*key.verifying_key()),
        })
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            PrivateInner::Ed25519(_) => Algorithm::Ed25519,
            PrivateInner::P256(_) => Algorithm::EcdsaP256Sha256,
        }
    }

    /// Signs `msg`: 64 bytes for Ed25519; for P-256, SHA-256 then ECDSA with
    /// RFC 6979 nonces, encoded in ASN.1 DER as OpenSSL and model-signing do.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match &self.inner {
            PrivateInner::Ed25519(key) => {
                let sig: ed25519_dalek::Signature = key.sign(msg);
                sig.to_vec()
            }
            PrivateInner::P256(key) => {
                let sig: p256::ecdsa::Signature = key.sign(msg);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }

    /// The Ed25519 key inside, for code that must hand it to a dalek-based API
    /// (signed notes); `None` for P-256 keys.
    pub fn as_ed25519(&self) -> Option<&ed25519_dalek::SigningKey> {
        match &self.inner {
            PrivateInner::Ed25519(key) => Some(key),
            PrivateInner::P256(_) => None,
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm())
            .field("public_key", &self.public_key().fingerprint())
            .finish_non_exhaustive()
    }
}

/// Drops a leading `EC PARAMETERS` block: `openssl ecparam -genkey` writes one
/// before the key, and the key repeats the curve in its own parameters.
fn skip_ec_parameters(pem: &str) -> &str {
    const END: &str = "-----END EC PARAMETERS-----";
    if pem.starts_with("-----BEGIN EC PARAMETERS-----") {
        if let Some(at) = pem.find(END) {
            return pem[at + END.len()..].trim_start();
        }
    }
    pem
}

/// The named curve in an RFC 5915 ECPrivateKey's optional `[0]` parameters.
fn sec1_curve(der: &[u8]) -> Result<Option<ObjectIdentifier>, pkcs8::der::Error> {
    let mut reader = SliceReader::new(der)?;
    let curve = reader.sequence(|r| {
        let _version = u8::decode(r)?;
        let _private_key = OctetStringRef::decode(r)?;
        let curve = ContextSpecific::<ObjectIdentifier>::decode_explicit(r, TagNumber::N0)?;
        // The optional public key is checked against the private key by p256.
        r.read_slice(r.remaining_len())?;
        Ok(curve.map(|c| c.value))
    })?;
    reader.finish(curve)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{
        unsupported_oid, OMS_P256_FINGERPRINT, OMS_P256_PUB, OPENSSL_ED25519_FINGERPRINT,
        OPENSSL_ED25519_PUB, OPENSSL_P256_FINGERPRINT, OPENSSL_P256_PUB,
    };
    use super::*;

    // Fixtures made with OpenSSL 3.0; the public halves and fingerprints are in
    // `keys.rs`. `openssl genpkey -algorithm ed25519`:
    const OPENSSL_ED25519_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGpTQxLDmcHqrvTRI8ry/8PA2cxpT/RVq0q5/QxO6Rne
-----END PRIVATE KEY-----
";
    /// `openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt`.
    const OPENSSL_P256_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLOdKz+q6vQuWMFFD
oJVXdu8VFN7UERwBnNlXfPXyNm2hRANCAATVa1jy1vGkM0T+O1uKw/suupIc2THJ
G1QybRO+Q6VxKpW0zE0RIM0iKvFdHsuJmRCrTU2bT7aFkumVkdBUIPDa
-----END PRIVATE KEY-----
";
    /// `openssl ecparam -name prime256v1 -genkey` (no `-noout`): SEC1 after an
    /// `EC PARAMETERS` block.
    const OPENSSL_ECPARAM_KEY: &str = "-----BEGIN EC PARAMETERS-----
BggqhkjOPQMBBw==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MHcCAQEEID3tIWsf1cQ1uWq8RDiwF9vtlyNuqiCEj5oEtSslOwoMoAoGCCqGSM49
AwEHoUQDQgAE5lpUf+YikmWaI5YznWGsvLdh8Lm4fMPXLN3Fa8vGAWqpnTkZxt83
S3ZUJJ+iYBIBCC77F3l06o1ikyrSGHCBiA==
-----END EC PRIVATE KEY-----
";
    const OPENSSL_ECPARAM_FINGERPRINT: &str =
        "ead650e7ab2553dcb98223206e6a76e5790ad21b86fe8029f3ba23ab3a748b52";
    /// `shared/testdata/oms/reference-1.1.1/ec-p256.key.TESTONLY` (SEC1).
    const OMS_P256_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIAmdT/WvtNKk1jRb18jGFnJ2vNE33VAzoSB4lnnp83EzoAoGCCqGSM49
AwEHoUQDQgAENlHs5Z5qqvZoDx79Fy8aF0Y2o8Bk8TgN3RTIJ8R+Hrsu03RRrsq6
pfxKz1k/eHGvuGjgGkrQMcVaSSML9+tP8A==
-----END EC PRIVATE KEY-----
";
    /// `openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-384`.
    const OPENSSL_P384_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDAWhyNCSlYuZVmUgy5W
aTYt/0wRYbRWNaLxHlQHozLPs0oJ6dL40VPMBx4f0hqXzlyhZANiAATlQ33PXSWm
ih0iLmDA2BRCSxoS0xYb18LAAkmOmR2wE8BbhwxXcXqIS9YOprW47aRJPLUjhAg+
9X3IZ93JS+OOKPtrDElp6DQMmOAhmgDp9iTGZrJ5WvthkkRMCQLuAfA=
-----END PRIVATE KEY-----
";
    /// `openssl ecparam -name secp256k1 -genkey -noout`: same scalar size as
    /// P-256, so only the curve parameters tell them apart.
    const OPENSSL_SECP256K1_KEY: &str = "-----BEGIN EC PRIVATE KEY-----
MHQCAQEEINKG36hecqpD35PhUh0vp5ZSPAie80ilNd5tqYfVI2xQoAcGBSuBBAAK
oUQDQgAEb/zkPrx0wmQAecwDxW/tZklLdOUtzFgF0ETrLSk19w/aNzy23q1UP3uB
00zcckIUm7OI1fYhhpY7ZTC2rRdCpg==
-----END EC PRIVATE KEY-----
";
    /// `openssl pkcs8 -topk8 -v2 aes-256-cbc` of `OPENSSL_ED25519_KEY`.
    const OPENSSL_ENCRYPTED_KEY: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgU9TMCEWl/yQICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEED0O++4Uv8RH4X+EekKsDrwEQID+
/RS+QkqtrszxEIUs6AFIvtBCzGjg6bZ0gPAeBTqJFDoMaTAw5KaYnfWnH0xuH3fK
wrCMd0absq4FLyvVSR4=
-----END ENCRYPTED PRIVATE KEY-----
";

    fn check_private(pem: &str, public_fingerprint: &str) -> PrivateKey {
        let key = PrivateKey::from_pem(pem).unwrap();
        assert_eq!(
            key.public_key().fingerprint().to_string(),
            public_fingerprint
        );
        let reread = PrivateKey::from_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(reread.public_key(), key.public_key());
        key
    }

    #[test]
    fn openssl_private_keys_parse_in_pkcs8_and_sec1() {
        let ed = check_private(OPENSSL_ED25519_KEY, OPENSSL_ED25519_FINGERPRINT);
        assert_eq!(
            ed.public_key(),
            PublicKey::from_pem(OPENSSL_ED25519_PUB).unwrap()
        );
        let p256 = check_private(OPENSSL_P256_KEY, OPENSSL_P256_FINGERPRINT);
        assert_eq!(
            p256.public_key(),
            PublicKey::from_pem(OPENSSL_P256_PUB).unwrap()
        );
        let oms = check_private(OMS_P256_KEY, OMS_P256_FINGERPRINT);
        assert_eq!(oms.public_key(), PublicKey::from_pem(OMS_P256_PUB).unwrap());
        check_private(OPENSSL_ECPARAM_KEY, OPENSSL_ECPARAM_FINGERPRINT);
    }

    #[test]
    fn to_pkcs8_pem_matches_openssl_byte_for_byte() {
        for pem in [OPENSSL_ED25519_KEY, OPENSSL_P256_KEY] {
            assert_eq!(PrivateKey::from_pem(pem).unwrap().to_pkcs8_pem(), pem);
        }
    }

    #[test]
    fn private_key_pem_accepts_crlf_and_surrounding_whitespace() {
        let crlf = format!("\n  {}\n\n", OPENSSL_ECPARAM_KEY.replace('\n', "\r\n"));
        let key = PrivateKey::from_pem(&crlf).unwrap();
        assert_eq!(
            key.public_key().fingerprint().to_string(),
            OPENSSL_ECPARAM_FINGERPRINT
        );
    }

    #[test]
    fn generated_keys_sign_and_verify_and_survive_pem() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let key = PrivateKey::generate(alg);
            assert_eq!(key.algorithm(), alg);
            let sig = key.sign(b"msg");
            key.public_key().verify(b"msg", &sig).unwrap();
            let reread = PrivateKey::from_pem(&key.to_pkcs8_pem()).unwrap();
            reread.public_key().verify(b"msg", &sig).unwrap();
            let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
            public.verify(b"msg", &reread.sign(b"msg")).unwrap();
        }
    }

    #[test]
    fn p256_signatures_are_der_encoded() {
        let sig = PrivateKey::from_pem(OMS_P256_KEY).unwrap().sign(b"msg");
        assert_eq!(sig[0], 0x30);
        p256::ecdsa::Signature::from_der(&sig).unwrap();
    }

    #[test]
    fn other_curves_are_unsupported_even_in_sec1() {
        let cases = [
            (OPENSSL_P384_KEY, "1.3.132.0.34"),
            (OPENSSL_SECP256K1_KEY, "1.3.132.0.10"),
        ];
        for (pem, oid) in cases {
            assert_eq!(unsupported_oid(PrivateKey::from_pem(pem).unwrap_err()), oid);
        }
    }

    #[test]
    fn encrypted_private_keys_are_refused() {
        assert!(matches!(
            PrivateKey::from_pem(OPENSSL_ENCRYPTED_KEY),
            Err(KeyError::Encrypted)
        ));
        let legacy = "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
                      DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n\
                      -----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            PrivateKey::from_pem(legacy),
            Err(KeyError::Encrypted)
        ));
    }

    #[test]
    fn public_key_pem_is_not_a_private_key() {
        let err = PrivateKey::from_pem(OPENSSL_P256_PUB).unwrap_err();
        assert!(matches!(
            &err,
            KeyError::UnexpectedLabel { found, .. } if found == "PUBLIC KEY"
        ));
    }

    #[test]
    fn garbage_gives_typed_errors_without_panicking() {
        for text in [
            "",
            "hello",
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(matches!(
                PrivateKey::from_pem(text),
                Err(KeyError::Pem { .. })
            ));
        }
        for label in ["PRIVATE KEY", "EC PRIVATE KEY"] {
            let pem = format!("-----BEGIN {label}-----\naGVsbG8=\n-----END {label}-----\n");
            assert!(matches!(
                PrivateKey::from_pem(&pem),
                Err(KeyError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn sec1_key_whose_public_half_does_not_match_is_malformed() {
        // OMS_P256_KEY's secret with OPENSSL_ECPARAM_KEY's public point.
        let (_, oms) = pkcs8::der::pem::decode_vec(OMS_P256_KEY.as_bytes()).unwrap();
        let other = skip_ec_parameters(OPENSSL_ECPARAM_KEY).trim();
        let (_, other) = pkcs8::der::pem::decode_vec(other.as_bytes()).unwrap();
        let mut mixed = oms.clone();
        let point_len = 65;
        mixed[oms.len() - point_len..].copy_from_slice(&other[other.len() - point_len..]);
        assert!(matches!(
            PrivateKey::from_sec1_der(&mixed),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn private_key_debug_shows_only_public_fingerprint() {
        let key = PrivateKey::from_pem(OPENSSL_ED25519_KEY).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(OPENSSL_ED25519_FINGERPRINT), "{debug}");
        let secret = hex::encode(key.as_ed25519().unwrap().to_bytes());
        assert!(!debug.contains(&secret));
    }

    #[test]
    fn as_ed25519_is_some_only_for_ed25519_keys() {
        let ed = PrivateKey::from_pem(OPENSSL_ED25519_KEY).unwrap();
        let p256 = PrivateKey::from_pem(OPENSSL_P256_KEY).unwrap();
        assert!(ed.as_ed25519().is_some() && ed.public_key().as_ed25519().is_some());
        assert!(p256.as_ed25519().is_none() && p256.public_key().as_ed25519().is_none());
    }

    /// Made with `openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:correct-horse`.
    const OPENSSL_ENCRYPTED_ED25519: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgqL/ig9el/ZQICCAAw\nDAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEEFl1VbRn0NCccOCd88EXL4EQANy\nAzf0wc4hNRvD0CkUdtouu2jF+BEKhwg/yY5g2P+PkkgqI3iP/80IOHctOxF5e7G3\nfQfh2B5C/N5c+GGpQLI=\n-----END ENCRYPTED PRIVATE KEY-----\n";
    const OPENSSL_ENCRYPTED_ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAtwJ3rB4XWIk5pBECS3HWx5Ye+s1gcq+bss7kTHz7xko=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn openssl_encrypted_key_decrypts_with_its_passphrase_only() {
        let key = PrivateKey::from_pem_with_passphrase(OPENSSL_ENCRYPTED_ED25519, b"correct-horse")
            .unwrap();
        assert_eq!(key.public_key().to_pem(), OPENSSL_ENCRYPTED_ED25519_PUB);
        assert!(matches!(
            PrivateKey::from_pem_with_passphrase(OPENSSL_ENCRYPTED_ED25519, b"wrong"),
            Err(KeyError::Decrypt)
        ));
        assert!(matches!(
            PrivateKey::from_pem(OPENSSL_ENCRYPTED_ED25519),
            Err(KeyError::Encrypted)
        ));
    }

    #[test]
    fn encrypted_keys_round_trip_for_both_algorithms() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256Sha256] {
            let key = PrivateKey::generate(alg);
            let pem = key.to_encrypted_pem(b"s3cret");
            assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
            let back = PrivateKey::from_pem_with_passphrase(&pem, b"s3cret").unwrap();
            assert_eq!(back.public_key(), key.public_key());
            assert!(PrivateKey::from_pem_with_passphrase(&pem, b"other").is_err());
        }
    }
}
