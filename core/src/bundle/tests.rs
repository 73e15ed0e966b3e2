//! Bundle tests: reading and writing the reference tool's and the spec's bundles, and
//! Pedigree receipts in `tlogEntries`.

use std::path::Path;

use serde_json::{json, Value};

use super::*;
use crate::checkpoint::LogSigner;
use crate::dsse::IN_TOTO_PAYLOAD_TYPE;
use crate::entry::{admit, Limits};
use crate::keys::{Algorithm, PrivateKey};
use crate::merkle;

fn testdata(path: &str) -> Vec<u8> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/oms")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn reference_key() -> PublicKey {
    PublicKey::from_pem(&String::from_utf8(testdata("reference-1.1.1/ec-p256.pub")).unwrap())
        .unwrap()
}

const REFERENCE_HINT: &str = "0065964939c6278f0bacb19c05fed13af9c1a6643737c576545da5c2b9533d81";

fn edit(bytes: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(bytes).unwrap();
    f(&mut value);
    serde_json::to_vec(&value).unwrap()
}

fn check_rejected(bytes: &[u8], expected: &str) {
    match Bundle::from_json(bytes) {
        Ok(_) => panic!("accepted, expected {expected:?}"),
        Err(err) => {
            let text = err.to_string();
            assert!(
                text.contains(expected),
                "{text:?} does not contain {expected:?}"
            );
        }
    }
}

#[test]
fn key_hint_is_sha256_of_the_pem_as_the_reference_writes_it() {
    assert_eq!(key_hint(&reference_key()), REFERENCE_HINT);
}

#[test]
fn reference_bundles_read_verify_and_round_trip() {
    for file in ["tiny-files.sig", "tiny-shards300000.sig", "tiny-blake2.sig"] {
        let bytes = testdata(&format!("reference-1.1.1/{file}"));
        let bundle = Bundle::from_json(&bytes).unwrap();
        assert_eq!(bundle.key_hint.as_deref(), Some(REFERENCE_HINT), "{file}");
        assert_eq!(bundle.method, SigningMethod::Key { raw_bytes: None });
        assert!(bundle.receipts.is_empty() && bundle.other_tlog_entries.is_empty());
        bundle.verify_with_key(&reference_key()).unwrap();
        let again = Bundle::from_json(&bundle.to_json()).unwrap();
        assert_eq!(again, bundle, "{file}");
        again.verify_with_key(&reference_key()).unwrap();
    }
}

#[test]
fn spec_bundles_round_trip_with_their_material_and_rekor_entries() {
    for file in ["key", "certificate", "sigstore"] {
        let bytes = testdata(&format!("spec-vectors/valid/{file}.bundle.json"));
        let bundle = Bundle::from_json(&bytes).unwrap();
        let written = bundle.to_json();
        assert_eq!(Bundle::from_json(&written).unwrap(), bundle, "{file}");
        let original: Value = serde_json::from_slice(&bytes).unwrap();
        let written: Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(
            written["verificationMaterial"], original["verificationMaterial"],
            "{file}"
        );
    }
    let sigstore = Bundle::from_json(&testdata("spec-vectors/valid/sigstore.bundle.json")).unwrap();
    assert_eq!(sigstore.other_tlog_entries.len(), 1);
    assert!(sigstore.timestamp_verification_data.is_some());
}

#[test]
fn wrong_key_does_not_verify() {
    let bundle = Bundle::from_json(&testdata("reference-1.1.1/tiny-files.sig")).unwrap();
    let other = PrivateKey::generate(Algorithm::EcdsaP256Sha256).public_key();
    assert!(matches!(
        bundle.verify_with_key(&other),
        Err(BundleVerifyError::Signature { .. })
    ));
}

#[test]
fn older_bundle_forms_are_read() {
    let bytes = testdata("reference-1.1.1/tiny-files.sig");
    let legacy = edit(&bytes, |v| {
        v["verificationMaterial"] =
            json!({"publicKey": {"rawBytes": "AAEC", "keyDetails": "PKIX_ECDSA_P256_SHA_256"}});
        v["dsseEnvelope"]["signatures"][0]["keyid"] = Value::Null;
    });
    let bundle = Bundle::from_json(&legacy).unwrap();
    assert_eq!(
        bundle.method,
        SigningMethod::Key {
            raw_bytes: Some(vec![0, 1, 2])
        }
    );
    assert_eq!(bundle.key_hint, None);
    bundle.verify_with_key(&reference_key()).unwrap();
    let no_keyid = edit(&bytes, |v| {
        v["dsseEnvelope"]["signatures"][0]
            .as_object_mut()
            .unwrap()
            .remove("keyid");
    });
    Bundle::from_json(&no_keyid).unwrap();
}

#[test]
fn malformed_bundles_are_rejected() {
    let bytes = testdata("reference-1.1.1/tiny-files.sig");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "couldn't parse"),
        (b"[]".to_vec(), "expected an object"),
        (
            edit(&bytes, |v| v["mediaType"] = json!("application/json")),
            "mediaType",
        ),
        (
            edit(&bytes, |v| {
                v.as_object_mut().unwrap().remove("mediaType");
            }),
            "no mediaType",
        ),
        (
            edit(&bytes, |v| {
                v.as_object_mut().unwrap().remove("dsseEnvelope");
            }),
            "no dsseEnvelope",
        ),
        (
            edit(&bytes, |v| v["messageSignature"] = json!({})),
            "messageSignature",
        ),
        (
            edit(&bytes, |v| v["verificationMaterial"] = json!({})),
            "found 0",
        ),
        (
            edit(&bytes, |v| {
                v["verificationMaterial"]["certificate"] = json!({"rawBytes": "AAEC"})
            }),
            "found 2",
        ),
        (
            edit(&bytes, |v| {
                v["verificationMaterial"]["publicKey"] = json!({})
            }),
            "publicKey.hint",
        ),
        (
            edit(&bytes, |v| {
                v["verificationMaterial"]["tlogEntries"] = json!({})
            }),
            "expected array",
        ),
        (
            edit(&bytes, |v| {
                v["verificationMaterial"] = json!({"x509CertificateChain": {"certificates": []}})
            }),
            "no certificates",
        ),
        (
            edit(&bytes, |v| {
                v["verificationMaterial"] = json!({"certificate": {"rawBytes": "AAEC"}})
            }),
            "no tlogEntries",
        ),
        (
            edit(&bytes, |v| v["dsseEnvelope"]["payload"] = json!("!!")),
            "dsseEnvelope is invalid",
        ),
        (
            edit(&bytes, |v| {
                v["verificationMaterial"]["tlogEntries"] =
                    json!([{"kindVersion": {"kind": "pedigree"}}])
            }),
            "not a valid pedigree receipt",
        ),
    ];
    for (bytes, expected) in cases {
        check_rejected(&bytes, expected);
    }
}

/// A one-entry log holding `envelope`, and its receipt.
fn receipt_for(log: &LogSigner, key: &PrivateKey, envelope: &Envelope) -> LogReceipt {
    let leaf = admit(envelope, &[key.public_key()], &Limits::default(), 7)
        .unwrap()
        .record
        .encode();
    let root = merkle::leaf_hash(&leaf);
    LogReceipt {
        log_index: 0,
        leaf,
        tree_size: 1,
        hashes: Vec::new(),
        checkpoint: log.sign(1, root).note_text().to_string(),
    }
}

#[test]
fn receipts_are_written_as_tlog_entries_and_read_back() {
    let log = LogSigner::new(
        "log.example",
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    )
    .unwrap();
    let key = PrivateKey::generate(Algorithm::EcdsaP256Sha256);
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": "ab".repeat(32)}}],
        "predicateType": "https://example.com/p/v1",
    });
    let envelope = Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        serde_json::to_vec(&statement).unwrap(),
        &[&key],
    );
    let mut bundle = Bundle::new(envelope, &key.public_key());
    let receipt = receipt_for(&log, &key, &bundle.envelope);
    bundle.receipts.push(receipt.clone());
    let rekor = json!({"logIndex": "1", "kindVersion": {"kind": "dsse", "version": "0.0.1"}});
    bundle.other_tlog_entries.push(rekor.clone());

    let written = bundle.to_json();
    let value: Value = serde_json::from_slice(&written).unwrap();
    let entries = value["verificationMaterial"]["tlogEntries"]
        .as_array()
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0], receipt.to_tlog_entry());
    assert_eq!(entries[1], rekor);

    let read = Bundle::from_json(&written).unwrap();
    assert_eq!(read, bundle);
    assert_eq!(read.receipts, [receipt]);
    assert_eq!(read.other_tlog_entries, [rekor]);
    let fingerprint = key.public_key().fingerprint();
    read.receipts[0]
        .verify(&read.envelope, &log.verifier(), Some(&fingerprint))
        .unwrap();
    read.verify_with_key(&key.public_key()).unwrap();
    assert_eq!(Bundle::from_json(&read.to_json()).unwrap(), read);
}
