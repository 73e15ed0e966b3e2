//! DSSE envelopes: the signed wrapper around the in-toto statements Pedigree logs.
//!
//! Implements DSSE v1 as specified by secure-systems-lab/dsse (`protocol.md`,
//! `envelope.md`): signatures are taken over the pre-authentication encoding
//! ([`pae`]) of the payload type and the exact payload bytes, never over a
//! re-serialization of the payload. Reading is as lenient as the envelope spec
//! allows (unknown fields, either base64 alphabet, padding optional); writing
//! produces one canonical form ([`Envelope::to_json`]). Verification is strict and
//! fails closed: see [`Envelope::verify`].

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::{Deserialize, Serialize, Serializer};

use crate::keys::{Fingerprint, PrivateKey, PublicKey, SignatureError};

/// The payload type of in-toto statements, the only kind Pedigree logs today.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The DSSE v1 pre-authentication encoding, the exact bytes that are signed:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, with each `LEN` the byte
/// length in ASCII decimal. Binding the type into the signed bytes stops a payload
/// signed as one type from being accepted as another.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let type_len = payload_type.len().to_string();
    let payload_len = payload.len().to_string();
    let mut out = Vec::with_capacity(
        "DSSEv1".len()
            + 4
            + type_len.len()
            + payload_type.len()
            + payload_len.len()
            + payload.len(),
    );
    for part in [
        b"DSSEv1".as_slice(),
        type_len.as_bytes(),
        payload_type.as_bytes(),
        payload_len.as_bytes(),
    ] {
        out.extend_from_slice(part);
        out.push(b' ');
    }
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope. The JSON field order of this struct is the canonical order
/// [`Envelope::to_json`] writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawEnvelope")]
pub struct Envelope {
    /// The signed payload, exactly as signed; base64 in JSON.
    #[serde(serialize_with = "serialize_base64")]
    pub payload: Vec<u8>,
    /// How to interpret `payload`, for example [`IN_TOTO_PAYLOAD_TYPE`]; never empty
    /// in an envelope read by [`Envelope::from_json`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Signatures over [`Envelope::pae`].
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature in an [`Envelope`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnvelopeSignature {
    /// An unauthenticated hint naming the key; Pedigree writes the signer's
    /// [`Fingerprint`] in hex. Empty when absent, and then omitted from JSON.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// The signature bytes; base64 in JSON.
    #[serde(serialize_with = "serialize_base64")]
    pub sig: Vec<u8>,
}

/// The keys that verified an envelope, the result of [`Envelope::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Fingerprints of the keys that verified at least one signature, sorted and
    /// deduplicated. Since `verify` rejects unused keys, these are all supplied keys.
    pub signers: Vec<Fingerprint>,
}

/// Why bytes are not a DSSE envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or JSON without the envelope's required fields and types.
    #[error("couldn't parse envelope json")]
    Json {
        /// What the JSON decoder rejected.
        #[source]
        source: serde_json::Error,
    },
    /// The `payload` field is not base64.
    #[error("envelope payload is not base64")]
    PayloadBase64 {
        /// What the base64 decoder rejected.
        #[source]
        source: base64::DecodeError,
    },
    /// A signature's `sig` field is not base64.
    #[error("envelope signature {index} is not base64")]
    SignatureBase64 {
        /// Position of the signature in `signatures`, from 0.
        index: usize,
        /// What the base64 decoder rejected.
        #[source]
        source: base64::DecodeError,
    },
    /// The `payloadType` field is the empty string.
    #[error("envelope payloadType is empty")]
    EmptyPayloadType,
}

/// Why an envelope did not verify.
#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    /// The envelope carries no signatures at all.
    #[error("envelope has no signatures")]
    NoSignatures,
    /// The caller supplied no keys, so nothing can verify.
    #[error("no keys to verify the envelope with")]
    NoKeys,
    /// A signature verified under none of the supplied keys.
    #[error("signature {index} (keyid {keyid:?}) does not verify under any supplied key")]
    UnverifiedSignature {
        /// Position of the signature in `signatures`, from 0.
        index: usize,
        /// The signature's unauthenticated keyid hint, possibly empty.
        keyid: String,
        /// Why the first key tried (the one the keyid names, if supplied) rejected it.
        #[source]
        source: SignatureError,
    },
    /// A supplied key verified none of the signatures.
    #[error("key {fingerprint} verified none of the envelope's signatures")]
    UnusedKey {
        /// The unused key.
        fingerprint: Fingerprint,
    },
}

impl Envelope {
    /// Builds an envelope over `payload` with one signature per key, in the order
    /// given, each with its signer's fingerprint as keyid.
    ///
    /// No keys gives an envelope with no signatures, which [`Envelope::verify`]
    /// rejects; an empty `payload_type` gives one that [`Envelope::from_json`]
    /// rejects.
    pub fn sign(payload_type: &str, payload: Vec<u8>, keys: &[&PrivateKey]) -> Self {
        let message = pae(payload_type, &payload);
        let signatures = keys
            .iter()
            .map(|key| EnvelopeSignature {
                keyid: key.public_key().fingerprint().to_string(),
                sig: key.sign(&message),
            })
            .collect();
        Envelope {
            payload,
            payload_type: payload_type.to_owned(),
            signatures,
        }
    }

    /// Reads an envelope from JSON. Unknown fields are ignored and `keyid` may be
    /// absent, as DSSE allows; base64 may use the standard or URL-safe alphabet,
    /// padded or not.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::Json`] when the bytes are not a JSON object with `payload`,
    /// `payloadType` and `signatures` (each signature with `sig`) of the right
    /// types, or repeat a field; [`EnvelopeError::PayloadBase64`] or
    /// [`EnvelopeError::SignatureBase64`] for bad base64;
    /// [`EnvelopeError::EmptyPayloadType`] for an empty `payloadType`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let raw: RawEnvelope =
            serde_json::from_slice(bytes).map_err(|source| EnvelopeError::Json { source })?;
        Envelope::try_from(raw)
    }

    /// The canonical stored form: compact JSON with fields in the order `payload`,
    /// `payloadType`, `signatures`, base64 in the standard alphabet with padding.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope of strings and byte vectors always serializes")
    }

    /// The bytes every signature is over: [`pae`] of this envelope's payload type
    /// and payload.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// Checks the envelope against `keys`, failing closed: every signature must
    /// verify under some supplied key, and every supplied key must verify some
    /// signature. A signature's keyid only decides which key is tried first; it is
    /// never trusted to rule a key out. Duplicate keys count once.
    ///
    /// # Errors
    ///
    /// [`DsseError::NoSignatures`], [`DsseError::NoKeys`],
    /// [`DsseError::UnverifiedSignature`] for the first signature no key verifies,
    /// and [`DsseError::UnusedKey`] for the first key that verified nothing.
    pub fn verify(&self, keys: &[PublicKey]) -> Result<Verified, DsseError> {
        if self.signatures.is_empty() {
            return Err(DsseError::NoSignatures);
        }
        if keys.is_empty() {
            return Err(DsseError::NoKeys);
        }
        let mut unique: Vec<&PublicKey> = Vec::with_capacity(keys.len());
        for key in keys {
            if !unique.iter().any(|k| k.fingerprint() == key.fingerprint()) {
                unique.push(key);
            }
        }

        let message = self.pae();
        let mut used = vec![false; unique.len()];
        for (index, signature) in self.signatures.iter().enumerate() {
            let hinted = signature
                .keyid
                .parse::<Fingerprint>()
                .ok()
                .and_then(|keyid| unique.iter().position(|k| k.fingerprint() == keyid));
            let order = hinted
                .into_iter()
                .chain((0..unique.len()).filter(|&i| Some(i) != hinted));
            let mut first_error = None;
            for i in order {
                match unique[i].verify(&message, &signature.sig) {
                    Ok(()) => {
                        used[i] = true;
                        first_error = None;
                        break;
                    }
                    Err(err) => {
                        first_error.get_or_insert(err);
                    }
                }
            }
            if let Some(source) = first_error {
                return Err(DsseError::UnverifiedSignature {
                    index,
                    keyid: signature.keyid.clone(),
                    source,
                });
            }
        }
        if let Some(unused) = used.iter().position(|&u| !u) {
            return Err(DsseError::UnusedKey {
                fingerprint: unique[unused].fingerprint(),
            });
        }

        let mut signers: Vec<Fingerprint> = unique.iter().map(|k| k.fingerprint()).collect();
        signers.sort();
        Ok(Verified { signers })
    }
}

/// The envelope as it appears on the wire, before base64 decoding; every envelope
/// read, through [`Envelope::from_json`] or serde, passes through it.
#[derive(Deserialize)]
struct RawEnvelope {
    payload: String,
    #[serde(rename = "payloadType")]
    payload_type: String,
    signatures: Vec<RawSignature>,
}

#[derive(Deserialize)]
struct RawSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

impl TryFrom<RawEnvelope> for Envelope {
    type Error = EnvelopeError;

    fn try_from(raw: RawEnvelope) -> Result<Self, EnvelopeError> {
        if raw.payload_type.is_empty() {
            return Err(EnvelopeError::EmptyPayloadType);
        }
        let payload = decode_base64(&raw.payload)
            .map_err(|source| EnvelopeError::PayloadBase64 { source })?;
        let signatures = raw
            .signatures
            .into_iter()
            .enumerate()
            .map(|(index, s)| {
                let sig = decode_base64(&s.sig)
                    .map_err(|source| EnvelopeError::SignatureBase64 { index, source })?;
                Ok(EnvelopeSignature {
                    keyid: s.keyid,
                    sig,
                })
            })
            .collect::<Result<_, EnvelopeError>>()?;
        Ok(Envelope {
            payload,
            payload_type: raw.payload_type,
            signatures,
        })
    }
}

const PADDING_OPTIONAL: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_PADDING_OPTIONAL: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, PADDING_OPTIONAL);
const URL_SAFE_PADDING_OPTIONAL: GeneralPurpose =
    GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_OPTIONAL);

/// Decodes either base64 alphabet, padded or not, as DSSE's envelope spec allows.
/// The alphabet is picked from the text so the error names the real problem; text
/// mixing both alphabets is rejected.
fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if text.contains(['-', '_']) {
        URL_SAFE_PADDING_OPTIONAL.decode(text)
    } else {
        STANDARD_PADDING_OPTIONAL.decode(text)
    }
}

fn serialize_base64<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Algorithm;

    /// The `dsseEnvelope` of `shared/testdata/oms/reference-1.1.1/tiny-files.sig`,
    /// made by the OpenSSF model-signing 1.1.1 reference tool with ECDSA P-256.
    const OMS_ENVELOPE: &str = r#"{"payload":"ewogICJfdHlwZSI6ICJodHRwczovL2luLXRvdG8uaW8vU3RhdGVtZW50L3YxIiwKICAic3ViamVjdCI6IFsKICAgIHsKICAgICAgIm5hbWUiOiAidGlueS1tb2RlbCIsCiAgICAgICJkaWdlc3QiOiB7CiAgICAgICAgInNoYTI1NiI6ICIyMThkZjIxMDZmMTkzNGQzZGMyZTQxMDZkOTk5MDUyMDg0NTU5Mjc3ZWRmZDgxYjFhODQzZGU1Yjg3MGNjMTBlIgogICAgICB9CiAgICB9CiAgXSwKICAicHJlZGljYXRlVHlwZSI6ICJodHRwczovL21vZGVsX3NpZ25pbmcvc2lnbmF0dXJlL3YxLjAiLAogICJwcmVkaWNhdGUiOiB7CiAgICAic2VyaWFsaXphdGlvbiI6IHsKICAgICAgIm1ldGhvZCI6ICJmaWxlcyIsCiAgICAgICJhbGxvd19zeW1saW5rcyI6IGZhbHNlLAogICAgICAiaGFzaF90eXBlIjogInNoYTI1NiIsCiAgICAgICJpZ25vcmVfcGF0aHMiOiBbCiAgICAgICAgIi5naXRpZ25vcmUiLAogICAgICAgICIuZ2l0IiwKICAgICAgICAiLmdpdGF0dHJpYnV0ZXMiLAogICAgICAgICIuZ2l0aHViIgogICAgICBdCiAgICB9LAogICAgInJlc291cmNlcyI6IFsKICAgICAgewogICAgICAgICJuYW1lIjogImNvbmZpZy5qc29uIiwKICAgICAgICAiZGlnZXN0IjogIjJjZjI0ZGJhNWZiMGEzMGUyNmU4M2IyYWM1YjllMjllMWIxNjFlNWMxZmE3NDI1ZTczMDQzMzYyOTM4Yjk4MjQiLAogICAgICAgICJhbGdvcml0aG0iOiAic2hhMjU2IgogICAgICB9LAogICAgICB7CiAgICAgICAgIm5hbWUiOiAic3ViL3Rvay50eHQiLAogICAgICAgICJkaWdlc3QiOiAiMmQ3MTE2NDJiNzI2YjA0NDAxNjI3Y2E5ZmJhYzMyZjVjODUzMGZiMTkwM2NjNGRiMDIyNTg3MTc5MjFhNDg4MSIsCiAgICAgICAgImFsZ29yaXRobSI6ICJzaGEyNTYiCiAgICAgIH0sCiAgICAgIHsKICAgICAgICAibmFtZSI6ICJ3ZWlnaHRzLmJpbiIsCiAgICAgICAgImRpZ2VzdCI6ICJmYmJhYjI4OWY3Zjk0YjI1NzM2YzU4YmU0NmE5OTRjNDQxZmQwMjU1MmNjNjAyMjM1MmUzZDg2ZDJmYWI3YzgzIiwKICAgICAgICAiYWxnb3JpdGhtIjogInNoYTI1NiIKICAgICAgfQogICAgXQogIH0KfQ==","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"MEUCIB6Prxz3w6vjmvnVuAzGKLXgsQMiA/7iCpVZ5OGFTzqpAiEAvUXcakjNOSeTqLvvy4qGnn5NUw1PevI356DsKi5fBEE=","keyid":""}]}"#;
    /// `shared/testdata/oms/reference-1.1.1/ec-p256.pub`, which signed `OMS_ENVELOPE`.
    const OMS_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENlHs5Z5qqvZoDx79Fy8aF0Y2o8Bk
8TgN3RTIJ8R+Hrsu03RRrsq6pfxKz1k/eHGvuGjgGkrQMcVaSSML9+tP8A==
-----END PUBLIC KEY-----
";

    const STATEMENT: &[u8] = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[]}"#;

    fn ed25519() -> PrivateKey {
        PrivateKey::generate(Algorithm::Ed25519)
    }

    fn p256() -> PrivateKey {
        PrivateKey::generate(Algorithm::EcdsaP256Sha256)
    }

    fn unverified(result: Result<Verified, DsseError>) -> (usize, SignatureError) {
        match result {
            Err(DsseError::UnverifiedSignature { index, source, .. }) => (index, source),
            other => panic!("expected UnverifiedSignature, got {other:?}"),
        }
    }

    fn parse_error(json: &str) -> EnvelopeError {
        Envelope::from_json(json.as_bytes()).expect_err(json)
    }

    #[test]
    fn pae_matches_dsse_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn pae_counts_bytes_not_characters() {
        assert_eq!(pae("é", "ü".as_bytes()), "DSSEv1 2 é 2 ü".as_bytes());
    }

    #[test]
    fn ed25519_and_p256_envelopes_sign_and_verify() {
        for key in [ed25519(), p256()] {
            let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&key]);
            let fingerprint = key.public_key().fingerprint();
            assert_eq!(env.signatures[0].keyid, fingerprint.to_string());
            let verified = env.verify(&[key.public_key()]).unwrap();
            assert_eq!(verified.signers, vec![fingerprint]);
        }
    }

    #[test]
    fn multi_signature_envelope_needs_and_names_both_keys() {
        let (a, b) = (ed25519(), p256());
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&a, &b]);
        let mut expected = vec![a.public_key().fingerprint(), b.public_key().fingerprint()];
        expected.sort();
        for keys in [
            [a.public_key(), b.public_key()],
            [b.public_key(), a.public_key()],
        ] {
            assert_eq!(env.verify(&keys).unwrap().signers, expected);
        }
        // Each key alone leaves the other's signature unverified.
        assert_eq!(unverified(env.verify(&[a.public_key()])).0, 1);
        assert_eq!(unverified(env.verify(&[b.public_key()])).0, 0);
    }

    #[test]
    fn tampered_payload_or_payload_type_does_not_verify() {
        let key = p256();
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&key]);
        let mut payload = env.clone();
        payload.payload.push(b' ');
        let mut payload_type = env.clone();
        payload_type.payload_type = "application/json".into();
        for tampered in [payload, payload_type] {
            let (index, source) = unverified(tampered.verify(&[key.public_key()]));
            assert_eq!(index, 0);
            assert!(matches!(source, SignatureError::Invalid { .. }));
        }
    }

    #[test]
    fn envelope_does_not_verify_under_wrong_key() {
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&ed25519()]);
        let other = ed25519().public_key();
        let (index, source) = unverified(env.verify(std::slice::from_ref(&other)));
        assert_eq!(index, 0);
        assert_eq!(
            source,
            SignatureError::Invalid {
                key: other.fingerprint()
            }
        );
    }

    #[test]
    fn truncated_signature_is_reported_malformed() {
        for key in [ed25519(), p256()] {
            let mut env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&key]);
            env.signatures[0].sig.truncate(10);
            let (_, source) = unverified(env.verify(&[key.public_key()]));
            assert_eq!(
                source,
                SignatureError::Malformed {
                    algorithm: key.algorithm(),
                    len_bytes: 10
                }
            );
        }
    }

    #[test]
    fn envelope_without_signatures_is_rejected() {
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[]);
        assert!(matches!(
            env.verify(&[ed25519().public_key()]),
            Err(DsseError::NoSignatures)
        ));
    }

    #[test]
    fn verifying_without_keys_is_rejected() {
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&ed25519()]);
        assert!(matches!(env.verify(&[]), Err(DsseError::NoKeys)));
    }

    #[test]
    fn key_that_verifies_no_signature_is_reported_unused() {
        let (a, b) = (ed25519(), p256());
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&a, &a]);
        match env.verify(&[a.public_key(), b.public_key()]) {
            Err(DsseError::UnusedKey { fingerprint }) => {
                assert_eq!(fingerprint, b.public_key().fingerprint());
            }
            other => panic!("expected UnusedKey, got {other:?}"),
        }
    }

    #[test]
    fn duplicate_keys_count_once() {
        let key = ed25519();
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&key]);
        let verified = env.verify(&[key.public_key(), key.public_key()]).unwrap();
        assert_eq!(verified.signers, vec![key.public_key().fingerprint()]);
    }

    #[test]
    fn keyid_is_only_a_hint() {
        let (a, b) = (ed25519(), p256());
        let mut env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&a, &b]);
        let keys = [a.public_key(), b.public_key()];
        // Swapped, empty or unrelated keyids change nothing.
        env.signatures.swap(0, 1);
        let (first, second) = (
            env.signatures[0].keyid.clone(),
            env.signatures[1].keyid.clone(),
        );
        env.signatures[0].keyid = second;
        env.signatures[1].keyid = first;
        env.verify(&keys).unwrap();
        env.signatures[0].keyid = String::new();
        env.signatures[1].keyid = "not a fingerprint".into();
        env.verify(&keys).unwrap();
        // Upper-case hex names the same key.
        env.signatures[0].keyid = b.public_key().fingerprint().to_string().to_uppercase();
        env.verify(&keys).unwrap();
    }

    #[test]
    fn json_round_trips_in_canonical_form() {
        let env = Envelope {
            payload: b"hello world".to_vec(),
            payload_type: "http://example.com/HelloWorld".into(),
            signatures: vec![
                EnvelopeSignature {
                    keyid: "k1".into(),
                    sig: vec![0xfb, 0xff],
                },
                EnvelopeSignature {
                    keyid: String::new(),
                    sig: vec![1],
                },
            ],
        };
        let json = env.to_json();
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            r#"{"payload":"aGVsbG8gd29ybGQ=","payloadType":"http://example.com/HelloWorld","signatures":[{"keyid":"k1","sig":"+/8="},{"sig":"AQ=="}]}"#
        );
        assert_eq!(Envelope::from_json(&json).unwrap(), env);
        assert_eq!(serde_json::from_slice::<Envelope>(&json).unwrap(), env);

        let signed = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&p256()]);
        assert_eq!(Envelope::from_json(&signed.to_json()).unwrap(), signed);
    }

    #[test]
    fn from_json_accepts_url_safe_unpadded_base64_and_unknown_fields() {
        let json = r#"{"payloadType":"t","payload":"aGVsbG8gd29ybGQ","extra":{"x":1},
                       "signatures":[{"sig":"-_8","keyid":"k","other":null}]}"#;
        let env = Envelope::from_json(json.as_bytes()).unwrap();
        assert_eq!(env.payload, b"hello world");
        assert_eq!(env.signatures[0].sig, vec![0xfb, 0xff]);
        assert_eq!(env.signatures[0].keyid, "k");
    }

    #[test]
    fn from_json_rejects_malformed_envelopes_with_typed_errors() {
        let cases = [
            "",
            "not json",
            "[]",
            r#"{"payload":"","payloadType":"t"}"#,
            r#"{"payload":"","signatures":[]}"#,
            r#"{"payloadType":"t","signatures":[]}"#,
            r#"{"payload":"","payloadType":"t","signatures":[{"keyid":"k"}]}"#,
            r#"{"payload":"","payloadType":"t","signatures":null}"#,
            r#"{"payload":1,"payloadType":"t","signatures":[]}"#,
            r#"{"payload":"","payloadType":"t","signatures":[{"sig":"","keyid":null}]}"#,
            r#"{"payload":"","payload":"","payloadType":"t","signatures":[]}"#,
            r#"{"payload":"","payloadType":"t","signatures":[]} trailing"#,
        ];
        for json in cases {
            assert!(
                matches!(parse_error(json), EnvelopeError::Json { .. }),
                "{json}"
            );
        }
        assert!(matches!(
            parse_error(r#"{"payload":"a!b=","payloadType":"t","signatures":[]}"#),
            EnvelopeError::PayloadBase64 { .. }
        ));
        assert!(matches!(
            parse_error(r#"{"payload":"a+b-","payloadType":"t","signatures":[]}"#),
            EnvelopeError::PayloadBase64 { .. }
        ));
        assert!(matches!(
            parse_error(
                r#"{"payload":"","payloadType":"t","signatures":[{"sig":"AQ=="},{"sig":"*"}]}"#
            ),
            EnvelopeError::SignatureBase64 { index: 1, .. }
        ));
        assert!(matches!(
            parse_error(r#"{"payload":"","payloadType":"","signatures":[]}"#),
            EnvelopeError::EmptyPayloadType
        ));
        assert!(serde_json::from_str::<Envelope>(
            r#"{"payload":"*","payloadType":"t","signatures":[]}"#
        )
        .is_err());
    }

    #[test]
    fn from_json_never_panics_on_damaged_input() {
        let json =
            Envelope::sign(IN_TOTO_PAYLOAD_TYPE, STATEMENT.to_vec(), &[&ed25519()]).to_json();
        for len in 0..json.len() {
            assert!(Envelope::from_json(&json[..len]).is_err());
        }
        for at in 0..json.len() {
            for byte in [b'"', b'{', b'=', b'\\', 0xff] {
                let mut damaged = json.clone();
                damaged[at] = byte;
                let _ = Envelope::from_json(&damaged);
            }
        }
    }

    #[test]
    fn model_signing_reference_envelope_verifies() {
        let env = Envelope::from_json(OMS_ENVELOPE.as_bytes()).unwrap();
        assert_eq!(env.payload_type, IN_TOTO_PAYLOAD_TYPE);
        let key = PublicKey::from_pem(OMS_P256_PUB).unwrap();
        let verified = env.verify(std::slice::from_ref(&key)).unwrap();
        assert_eq!(verified.signers, vec![key.fingerprint()]);

        // The canonical re-encoding keeps the signed bytes, so it still verifies.
        let stored = Envelope::from_json(&env.to_json()).unwrap();
        assert_eq!(stored, env);
        stored.verify(std::slice::from_ref(&key)).unwrap();

        let mut tampered = env.clone();
        tampered.payload[0] = b'[';
        assert_eq!(unverified(tampered.verify(&[key])).0, 0);
    }
}
