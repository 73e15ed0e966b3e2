//! Sigstore bundles (v0.3 JSON) carrying a DSSE envelope: the file format of OpenSSF
//! model-signing (OMS) signatures and of Pedigree's attestations.
//!
//! A bundle holds the envelope, the material that names the signer and any
//! transparency log entries:
//!
//! ```json
//! {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
//!  "verificationMaterial": {"publicKey": {"hint": "<hex>"}, "tlogEntries": []},
//!  "dsseEnvelope": {"payload": "...", "payloadType": "...", "signatures": [...]}}
//! ```
//!
//! Three kinds of verification material exist (OMS spec section 4.1): `publicKey` for
//! the key method, `x509CertificateChain` for the certificate method and `certificate`
//! plus Rekor `tlogEntries` for Sigstore keyless signing. All three are read; only
//! the key method can be verified here ([`Bundle::verify_with_key`]). The key hint is
//! an unauthenticated label and is never used to pick or trust a key.
//!
//! `tlogEntries` items of kind `pedigree` are Pedigree log receipts
//! ([`crate::receipt`]); other entries (Rekor's) are kept as they are.
//!
//! Out of scope: keyless verification (Fulcio certificates, Rekor entries, RFC 3161
//! timestamps) and the OMS payload, which [`crate::oms`] reads.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

use crate::dsse::{DsseError, Envelope, EnvelopeError, Verified};
use crate::keys::PublicKey;
use crate::receipt::{LogReceipt, ReceiptError};
use crate::statement::json_kind;

/// The media type written: Sigstore bundle v0.3.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// Media types read: v0.3 in both its spellings, and the older v0.1 and v0.2, which
/// have the same JSON shape for DSSE bundles.
const ACCEPTED_MEDIA_TYPES: [&str; 4] = [
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
];

/// A Sigstore bundle whose content is a DSSE envelope.
///
/// Equality compares the public fields only, so a bundle read back from
/// [`Bundle::to_json`] equals the bundle that wrote it.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The signed envelope.
    pub envelope: Envelope,
    /// `verificationMaterial.publicKey.hint` of the key method: a label for the key,
    /// by OMS convention the SHA-256 of its PEM text ([`key_hint`]). Not authenticated.
    /// Written only for [`SigningMethod::Key`].
    pub key_hint: Option<String>,
    /// The signing method and its material.
    pub method: SigningMethod,
    /// Pedigree log receipts from `tlogEntries`, written before the other entries.
    pub receipts: Vec<LogReceipt>,
    /// The other `tlogEntries` (Rekor entries), unchanged.
    pub other_tlog_entries: Vec<Value>,
    /// `verificationMaterial.timestampVerificationData`, unchanged.
    pub timestamp_verification_data: Option<Value>,
    /// The entries the receipts were read from, so a bundle is written back as read.
    read_receipt_entries: Vec<(LogReceipt, Value)>,
}

impl PartialEq for Bundle {
    fn eq(&self, other: &Self) -> bool {
        self.envelope == other.envelope
            && self.key_hint == other.key_hint
            && self.method == other.method
            && self.receipts == other.receipts
            && self.other_tlog_entries == other.other_tlog_entries
            && self.timestamp_verification_data == other.timestamp_verification_data
    }
}

/// The signing method, told by the kind of verification material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningMethod {
    /// A long-lived key, named by `publicKey`.
    Key {
        /// `publicKey.rawBytes` of bundles from before model-signing 1.1.0.
        raw_bytes: Option<Vec<u8>>,
    },
    /// A signing certificate and its CA chain (`x509CertificateChain`), DER, leaf first.
    Certificate {
        /// The certificates.
        chain_der: Vec<Vec<u8>>,
    },
    /// Sigstore keyless signing: a Fulcio certificate (`certificate`) and Rekor entries.
    Sigstore {
        /// The certificate, DER.
        certificate_der: Vec<u8>,
    },
}

impl SigningMethod {
    /// The OMS name of the method: `key`, `certificate` or `sigstore`.
    pub const fn name(&self) -> &'static str {
        match self {
            SigningMethod::Key { .. } => "key",
            SigningMethod::Certificate { .. } => "certificate",
            SigningMethod::Sigstore { .. } => "sigstore",
        }
    }
}

/// Why bytes are not a bundle.
#[derive(Debug, Error)]
pub enum BundleError {
    /// Not a JSON object.
    #[error("couldn't parse bundle json")]
    Json {
        /// What the JSON parser rejected.
        #[source]
        source: serde_json::Error,
    },
    /// The top level is JSON but not an object.
    #[error("bundle is a JSON {found}, expected an object")]
    NotObject {
        /// Kind of JSON value found.
        found: &'static str,
    },
    /// `mediaType` is not a Sigstore bundle media type.
    #[error("bundle mediaType {found:?} is not a sigstore bundle, expected {BUNDLE_MEDIA_TYPE:?}")]
    MediaType {
        /// The media type found.
        found: String,
    },
    /// A required field is absent.
    #[error("bundle has no {field}")]
    MissingField {
        /// JSON path of the field.
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("bundle {field} is a JSON {found}, expected {expected}")]
    FieldType {
        /// JSON path of the field.
        field: &'static str,
        /// The type required.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A base64 field does not decode, or is empty where bytes are required.
    #[error("bundle {field} is not non-empty base64")]
    Base64 {
        /// JSON path of the field.
        field: &'static str,
    },
    /// `verificationMaterial` names no signer, or more than one kind of material.
    #[error("verificationMaterial must hold exactly one of publicKey, x509CertificateChain and certificate, found {found}")]
    Material {
        /// How many of the three were found.
        found: usize,
    },
    /// A certificate chain without certificates.
    #[error("verificationMaterial.x509CertificateChain has no certificates")]
    EmptyChain,
    /// Sigstore keyless bundles must carry a transparency log entry.
    #[error("bundle of the sigstore method has no tlogEntries")]
    SigstoreWithoutTlog,
    /// The bundle carries a message signature instead of a DSSE envelope.
    #[error("bundle has a messageSignature, expected a dsseEnvelope")]
    MessageSignature,
    /// The DSSE envelope is malformed.
    #[error("bundle dsseEnvelope is invalid")]
    Envelope {
        /// What the envelope parser rejected.
        #[source]
        source: EnvelopeError,
    },
    /// A Pedigree log receipt in `tlogEntries` is malformed.
    #[error("bundle tlogEntries[{index}] is not a valid pedigree receipt")]
    Receipt {
        /// Position in `tlogEntries`.
        index: usize,
        /// What the receipt parser rejected.
        #[source]
        source: ReceiptError,
    },
}

/// Why a bundle did not verify with a key.
#[derive(Debug, Error)]
pub enum BundleVerifyError {
    /// Certificate and Sigstore keyless bundles need a certificate chain or Sigstore
    /// trust root to verify, which Pedigree does not implement.
    #[error(
        "bundle uses the {method} signing method, which pedigree cannot verify; only key-method bundles are supported"
    )]
    UnsupportedMethod {
        /// The method's OMS name.
        method: &'static str,
    },
    /// The envelope's signature does not verify with the key.
    #[error("bundle signature does not verify")]
    Signature {
        /// What DSSE verification rejected.
        #[source]
        source: DsseError,
    },
}

/// The OMS key hint of a public key: SHA-256 of its SPKI PEM text, hex, as the
/// reference tool (model-signing 1.1.1) writes and checks it.
pub fn key_hint(key: &PublicKey) -> String {
    hex::encode(Sha256::digest(key.to_pem().as_bytes()))
}

impl Bundle {
    /// A key-method bundle for `envelope`, signed by `key`, with no log entries.
    pub fn new(envelope: Envelope, key: &PublicKey) -> Self {
        Bundle {
            envelope,
            key_hint: Some(key_hint(key)),
            method: SigningMethod::Key { raw_bytes: None },
            receipts: Vec::new(),
            other_tlog_entries: Vec::new(),
            timestamp_verification_data: None,
            read_receipt_entries: Vec::new(),
        }
    }

    /// Checks the envelope's signatures with `key` (see [`Envelope::verify`]). The
    /// key hint is not consulted.
    ///
    /// # Errors
    ///
    /// [`BundleVerifyError::UnsupportedMethod`] for certificate and Sigstore bundles,
    /// [`BundleVerifyError::Signature`] when the signatures do not verify.
    pub fn verify_with_key(&self, key: &PublicKey) -> Result<Verified, BundleVerifyError> {
        if !matches!(self.method, SigningMethod::Key { .. }) {
            return Err(BundleVerifyError::UnsupportedMethod {
                method: self.method.name(),
            });
        }
        self.envelope
            .verify(std::slice::from_ref(key))
            .map_err(|source| BundleVerifyError::Signature { source })
    }

    /// Reads a bundle. Unknown fields are ignored; `tlogEntries` may be absent except
    /// for the sigstore method; a signature's `keyid` may be absent or `null`.
    ///
    /// # Errors
    ///
    /// The first problem found, as a [`BundleError`].
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|source| BundleError::Json { source })?;
        let top = value.as_object().ok_or(BundleError::NotObject {
            found: json_kind(&value),
        })?;
        let media_type = string(field(top, "mediaType")?, "mediaType")?;
        if !ACCEPTED_MEDIA_TYPES.contains(&media_type) {
            return Err(BundleError::MediaType {
                found: media_type.to_owned(),
            });
        }
        if top.contains_key("messageSignature") {
            return Err(BundleError::MessageSignature);
        }
        let material = object(field(top, "verificationMaterial")?, "verificationMaterial")?;
        let envelope = read_envelope(field(top, "dsseEnvelope")?)?;
        let (method, key_hint) = read_method(material)?;

        let entries = match material.get("tlogEntries") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(entries)) => entries.clone(),
            Some(other) => {
                return Err(type_error(
                    other,
                    "verificationMaterial.tlogEntries",
                    "array",
                ))
            }
        };
        if matches!(method, SigningMethod::Sigstore { .. }) && entries.is_empty() {
            return Err(BundleError::SigstoreWithoutTlog);
        }
        let mut receipts = Vec::new();
        let mut read_receipt_entries = Vec::new();
        let mut other_tlog_entries = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            match LogReceipt::from_tlog_entry(&entry)
                .map_err(|source| BundleError::Receipt { index, source })?
            {
                Some(receipt) => {
                    receipts.push(receipt.clone());
                    read_receipt_entries.push((receipt, entry));
                }
                None => other_tlog_entries.push(entry),
            }
        }
        Ok(Bundle {
            envelope,
            key_hint,
            method,
            receipts,
            other_tlog_entries,
            timestamp_verification_data: material.get("timestampVerificationData").cloned(),
            read_receipt_entries,
        })
    }

    /// The bundle as pretty-printed v0.3 JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let (public_key, chain, certificate) = match &self.method {
            SigningMethod::Key { raw_bytes } => (
                Some(PublicKeyOut {
                    hint: self.key_hint.as_deref(),
                    raw_bytes: raw_bytes.as_ref().map(|b| STANDARD.encode(b)),
                }),
                None,
                None,
            ),
            SigningMethod::Certificate { chain_der } => (
                None,
                Some(ChainOut {
                    certificates: chain_der.iter().map(|c| CertificateOut::new(c)).collect(),
                }),
                None,
            ),
            SigningMethod::Sigstore { certificate_der } => {
                (None, None, Some(CertificateOut::new(certificate_der)))
            }
        };
        let tlog_entries = self
            .receipts
            .iter()
            .map(|r| self.receipt_entry(r))
            .chain(self.other_tlog_entries.iter().cloned())
            .collect();
        let bundle = BundleOut {
            media_type: BUNDLE_MEDIA_TYPE,
            verification_material: MaterialOut {
                public_key,
                x509_certificate_chain: chain,
                certificate,
                tlog_entries,
                timestamp_verification_data: self.timestamp_verification_data.as_ref(),
            },
            dsse_envelope: serde_json::from_slice(&self.envelope.to_json())
                .expect("an envelope's json is json"),
        };
        let mut out = serde_json::to_vec_pretty(&bundle).expect("a bundle always serializes");
        out.push(b'\n');
        out
    }

    /// The `tlogEntries` item of a receipt: as read, if it was read, or else built by
    /// [`LogReceipt::to_tlog_entry`].
    fn receipt_entry(&self, receipt: &LogReceipt) -> Value {
        if let Some((_, entry)) = self.read_receipt_entries.iter().find(|(r, _)| r == receipt) {
            return entry.clone();
        }
        receipt.to_tlog_entry()
    }
}

fn field<'a>(object: &'a Map<String, Value>, name: &'static str) -> Result<&'a Value, BundleError> {
    match object.get(name) {
        None | Some(Value::Null) => Err(BundleError::MissingField { field: name }),
        Some(value) => Ok(value),
    }
}

fn type_error(value: &Value, field: &'static str, expected: &'static str) -> BundleError {
    BundleError::FieldType {
        field,
        expected,
        found: json_kind(value),
    }
}

fn object<'a>(
    value: &'a Value,
    field: &'static str,
) -> Result<&'a Map<String, Value>, BundleError> {
    value
        .as_object()
        .ok_or_else(|| type_error(value, field, "object"))
}

fn string<'a>(value: &'a Value, field: &'static str) -> Result<&'a str, BundleError> {
    value
        .as_str()
        .ok_or_else(|| type_error(value, field, "string"))
}

fn base64_field(
    object: &Map<String, Value>,
    name: &'static str,
    at: &'static str,
) -> Result<Vec<u8>, BundleError> {
    let text = string(
        field(object, name).map_err(|_| BundleError::MissingField { field: at })?,
        at,
    )?;
    STANDARD
        .decode(text)
        .ok()
        .filter(|bytes| !bytes.is_empty())
        .ok_or(BundleError::Base64 { field: at })
}

/// Reads `dsseEnvelope`, accepting a `null` keyid (as bundles before model-signing
/// 1.1.0 have), which DSSE's JSON form otherwise leaves out.
fn read_envelope(value: &Value) -> Result<Envelope, BundleError> {
    let mut value = value.clone();
    if let Some(signatures) = value.get_mut("signatures").and_then(Value::as_array_mut) {
        for signature in signatures.iter_mut().filter_map(Value::as_object_mut) {
            if signature.get("keyid") == Some(&Value::Null) {
                signature.remove("keyid");
            }
        }
    }
    let bytes = serde_json::to_vec(&value).expect("a json value serializes");
    Envelope::from_json(&bytes).map_err(|source| BundleError::Envelope { source })
}

fn read_method(
    material: &Map<String, Value>,
) -> Result<(SigningMethod, Option<String>), BundleError> {
    let present = ["publicKey", "x509CertificateChain", "certificate"]
        .iter()
        .filter(|k| !matches!(material.get(**k), None | Some(Value::Null)))
        .count();
    if present != 1 {
        return Err(BundleError::Material { found: present });
    }
    if let Some(key) = material.get("publicKey").filter(|v| !v.is_null()) {
        const AT: &str = "verificationMaterial.publicKey";
        let key = object(key, AT)?;
        let key_hint = match key.get("hint") {
            None | Some(Value::Null) => None,
            Some(hint) => Some(string(hint, "verificationMaterial.publicKey.hint")?.to_owned()),
        };
        let raw_bytes = match key.get("rawBytes") {
            None | Some(Value::Null) => None,
            Some(_) => Some(base64_field(
                key,
                "rawBytes",
                "verificationMaterial.publicKey.rawBytes",
            )?),
        };
        if key_hint.is_none() && raw_bytes.is_none() {
            return Err(BundleError::MissingField {
                field: "verificationMaterial.publicKey.hint",
            });
        }
        return Ok((SigningMethod::Key { raw_bytes }, key_hint));
    }
    if let Some(chain) = material
        .get("x509CertificateChain")
        .filter(|v| !v.is_null())
    {
        const AT: &str = "verificationMaterial.x509CertificateChain";
        let chain = object(chain, AT)?;
        let certificates = field(chain, "certificates").map_err(|_| BundleError::MissingField {
            field: "verificationMaterial.x509CertificateChain.certificates",
        })?;
        let certificates = certificates.as_array().ok_or_else(|| {
            type_error(
                certificates,
                "verificationMaterial.x509CertificateChain.certificates",
                "array",
            )
        })?;
        if certificates.is_empty() {
            return Err(BundleError::EmptyChain);
        }
        let chain_der = certificates
            .iter()
            .map(|c| {
                const AT: &str =
                    "verificationMaterial.x509CertificateChain.certificates[].rawBytes";
                base64_field(object(c, AT)?, "rawBytes", AT)
            })
            .collect::<Result<_, _>>()?;
        return Ok((SigningMethod::Certificate { chain_der }, None));
    }
    const AT: &str = "verificationMaterial.certificate.rawBytes";
    let certificate = object(
        field(material, "certificate")?,
        "verificationMaterial.certificate",
    )?;
    let certificate_der = base64_field(certificate, "rawBytes", AT)?;
    Ok((SigningMethod::Sigstore { certificate_der }, None))
}

#[derive(Serialize)]
struct BundleOut<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    #[serde(rename = "verificationMaterial")]
    verification_material: MaterialOut<'a>,
    #[serde(rename = "dsseEnvelope")]
    dsse_envelope: Value,
}

#[derive(Serialize)]
struct MaterialOut<'a> {
    #[serde(rename = "publicKey", skip_serializing_if = "Option::is_none")]
    public_key: Option<PublicKeyOut<'a>>,
    #[serde(
        rename = "x509CertificateChain",
        skip_serializing_if = "Option::is_none"
    )]
    x509_certificate_chain: Option<ChainOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateOut>,
    #[serde(rename = "tlogEntries")]
    tlog_entries: Vec<Value>,
    #[serde(
        rename = "timestampVerificationData",
        skip_serializing_if = "Option::is_none"
    )]
    timestamp_verification_data: Option<&'a Value>,
}

#[derive(Serialize)]
struct PublicKeyOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<&'a str>,
    #[serde(rename = "rawBytes", skip_serializing_if = "Option::is_none")]
    raw_bytes: Option<String>,
}

#[derive(Serialize)]
struct ChainOut {
    certificates: Vec<CertificateOut>,
}

#[derive(Serialize)]
struct CertificateOut {
    #[serde(rename = "rawBytes")]
    raw_bytes: String,
}

impl CertificateOut {
    fn new(der: &[u8]) -> Self {
        CertificateOut {
            raw_bytes: STANDARD.encode(der),
        }
    }
}

#[cfg(test)]
mod tests;
