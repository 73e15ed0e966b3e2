//! One check per parser of untrusted input, and valid seed inputs for each.
//!
//! A check parses the bytes and, when the parse succeeds, asserts the property that makes
//! the result safe to rely on (a canonical format re-encodes to the same bytes; anything
//! that still verifies is what was signed). A check must never panic except on a broken
//! property. Shared by the seeded mutation test (`core/tests/mutation.rs`, run in CI) and
//! the cargo-fuzz targets (`fuzz/`), which include this file by path.

use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey as _};
use pedigree_core::checkpoint::{LogSigner, LogVerifier};
use pedigree_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::entry::{self, LeafRecord, Limits};
use pedigree_core::keys::{PrivateKey, PublicKey};
use pedigree_core::merkle::{self, Hash, HashReader};
use pedigree_core::policy::Policy;
use pedigree_core::receipt::LogReceipt;
use pedigree_core::revocation::Revocation;
use pedigree_core::slsa::{statement_materials, Provenance};
use pedigree_core::statement::Statement;
use pedigree_core::tiles::{self, TileCoord};
use pedigree_core::tlogproof::TlogProof;
use pedigree_core::witness::protocol::AddCheckpoint;
use pedigree_core::witness::{
    append_cosignatures, note_body, Cosignature, WitnessPolicy, WitnessSigner, WitnessVerifier,
};
use std::sync::LazyLock;

/// Everything the checks verify against: a log, a signer key, one logged envelope and its
/// receipt, built from fixed seeds.
pub struct Fixtures {
    pub signer: LogSigner,
    pub verifier: LogVerifier,
    pub key: PrivateKey,
    pub envelope: Envelope,
    pub receipt: LogReceipt,
    /// A valid inclusion proof: (index, tree size, proof, root).
    pub proof: (u64, u64, Vec<Hash>, Hash),
}

pub static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| {
    let signer = LogSigner::new(
        "fuzz.pedigree.dev/log",
        ed25519_dalek::SigningKey::from_bytes(&[42; 32]),
    )
    .expect("valid origin");
    let pem = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .to_pkcs8_pem(LineEnding::LF)
        .expect("pkcs8");
    let key = PrivateKey::from_pem(&pem).expect("key");
    let envelopes: Vec<Envelope> = (0..13u8)
        .map(|i| {
            Envelope::sign(
                IN_TOTO_PAYLOAD_TYPE,
                provenance_statement(i).into_bytes(),
                &[&key],
            )
        })
        .collect();
    let leaves: Vec<Vec<u8>> = envelopes
        .iter()
        .map(|e| {
            entry::admit(
                e,
                &[key.public_key()],
                &Limits::default(),
                1_700_000_000_000,
            )
            .expect("admitted")
            .record
            .encode()
        })
        .collect();
    let mut tree = MemTree(Vec::new());
    for (i, leaf) in leaves.iter().enumerate() {
        let new = merkle::stored_hashes_for_leaf(i as u64, merkle::leaf_hash(leaf), &tree)
            .expect("stored hashes");
        tree.0.extend(new);
    }
    let size = leaves.len() as u64;
    let root = merkle::tree_hash(size, &tree).expect("root");
    let index = 5;
    let hashes = merkle::prove_inclusion(index, size, &tree).expect("proof");
    let receipt = LogReceipt {
        log_index: index,
        leaf: leaves[index as usize].clone(),
        tree_size: size,
        hashes: hashes.iter().map(|h| h.0).collect(),
        checkpoint: String::from_utf8(signer.sign(size, root).note).expect("utf-8 note"),
    };
    Fixtures {
        verifier: signer.verifier(),
        signer,
        key,
        envelope: envelopes[index as usize].clone(),
        receipt,
        proof: (index, size, hashes, root),
    }
});

struct MemTree(Vec<Hash>);

impl HashReader for MemTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, merkle::HashReaderError> {
        indexes
            .iter()
            .map(|&i| {
                self.0
                    .get(i as usize)
                    .copied()
                    .ok_or(merkle::HashReaderError::IndexesNotInTree)
            })
            .collect()
    }
}

fn provenance_statement(i: u8) -> String {
    let digest = |x: &str| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(x.as_bytes()));
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": format!("model-{i}"), "digest": {"sha256": digest(&format!("m{i}")), "sha512": digest("x").repeat(2)}},
            {"name": "tokenizer", "digest": {"sha256": digest("t")}}
        ],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://pedigree.dev/ml/train/v1",
                "externalParameters": {"epochs": 3, "lr": 0.001, "nested": [[1], {"a": null}]},
                "internalParameters": {"seed": i},
                "resolvedDependencies": [
                    {"name": "dataset", "uri": "https://data.example/d", "digest": {"sha256": digest("d")}},
                    {"name": "base", "digest": {"sha256": digest("b")}}
                ]
            },
            "runDetails": {
                "builder": {"id": "https://ci.example/builder", "version": {"ci": "1"}},
                "metadata": {"invocationId": "run-1", "startedOn": "2025-11-23T12:00:00Z"}
            }
        }
    })
    .to_string()
}

/// Valid inputs for the check named `target`, to mutate from.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let f = &*FIXTURES;
    match target {
        "envelope" => vec![
            f.envelope.to_json(),
            br#"{"payloadType":"x","payload":"YQ","signatures":[{"sig":"AA-_"},{"keyid":"k","sig":""}],"extra":1}"#.to_vec(),
        ],
        "provenance" => vec![provenance_statement(1).into_bytes()],
        "revocation" => vec![
            br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"model","digest":{"sha256":"18fa6357423dc43124d45a6e61be9815c8e80d4eba69cbc5aeb0dc1cc232f7ed"}}],"predicateType":"https://pedigree.dev/revocation/v1","predicate":{"reason":"poisoned","revoked_at":"2026-11-23T16:00:00.5+01:00","superseded_by":"sha256:2276c751d6425f2bd63aeb5f8b158be34077beb297d82c05f13c88f3158f6490"}}"#.to_vec(),
        ],
        "statement" => vec![
            provenance_statement(1).into_bytes(),
            br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"uri":"https://x","digest":{"gitCommit":"0123456789abcdef0123456789abcdef01234567"}}],"predicateType":"https://example.com/p","predicate":{}}"#.to_vec(),
        ],
        "leaf_record" => vec![f.receipt.leaf.clone()],
        "entry_bundle" => {
            let mut bundle = Vec::new();
            for leaf in [&f.receipt.leaf[..], b"", &[0u8; 300][..]] {
                tiles::push_bundle_entry(&mut bundle, leaf).expect("small entry");
            }
            vec![bundle]
        }
        "tile_path" => [
            "tile/0/000",
            "tile/0/x001/234.p/5",
            "tile/entries/x123/x456/789",
            "tile/8/001.p/255",
            "tile/63/x018/x446/x744/x073/x709/x551/615",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect(),
        "checkpoint" => vec![
            f.receipt.checkpoint.clone().into_bytes(),
            f.signer.sign(0, merkle::EMPTY_TREE_HASH).note,
        ],
        "verifier_key" => vec![f.signer.verifier_key().into_bytes()],
        "receipt" => vec![serde_json::to_vec(&f.receipt.to_tlog_entry()).expect("json")],
        "policy" => vec![format!(
            "log_key = \"{}\"\nmin_witnesses = 0\n\n[[step]]\nname = \"dataset\"\nsigners = [\"{}\"]\n\n[[step]]\nname = \"distill\"\nbuild_type = \"https://example.com/distill/v1\"\nsigners = [\"k\"]\nrequired = false\n",
            f.signer.verifier_key(),
            f.key.public_key().to_pem().replace('\n', "\\n"),
        )
        .into_bytes()],
        "public_key" => vec![
            f.key.public_key().to_pem().into_bytes(),
            f.key.public_key().spki_der().to_vec(),
            b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\nq9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n-----END PUBLIC KEY-----\n".to_vec(),
        ],
        "inclusion_proof" => {
            let (index, size, proof, _) = &f.proof;
            let mut bytes = index.to_be_bytes().to_vec();
            bytes.extend_from_slice(&size.to_be_bytes());
            for h in proof {
                bytes.extend_from_slice(&h.0);
            }
            vec![bytes]
        }
        "add_checkpoint" => {
            let (_, _, proof, _) = &f.proof;
            vec![
                AddCheckpoint {
                    old_size: 3,
                    proof: proof.clone(),
                    checkpoint: f.receipt.checkpoint.clone().into_bytes(),
                }
                .encode(),
                AddCheckpoint {
                    old_size: 0,
                    proof: Vec::new(),
                    checkpoint: f.receipt.checkpoint.clone().into_bytes(),
                }
                .encode(),
            ]
        }
        "cosignature" => {
            let note = cosigned_note();
            let text = String::from_utf8(note).expect("utf-8");
            vec![
                text.lines().last().expect("a line").as_bytes().to_vec(),
                witness().verifier().to_vkey().into_bytes(),
            ]
        }
        "tlog_proof" => {
            let (index, _, proof, _) = &f.proof;
            vec![TlogProof {
                extra: Some(f.receipt.leaf.clone()),
                index: *index,
                hashes: proof.iter().map(|h| h.0).collect(),
                checkpoint: cosigned_note(),
            }
            .encode()]
        }
        // A protocol 2 dict (with _codecs.encode), a framed protocol 4 dict, a protocol
        // 0 list, a PyTorch-like zip, an .npy and a safetensors file (written by
        // CPython's pickle and zipfile, spec/scan.md).
        "scan" => [
            "80027d71002858010000006171015d7102284b014740040000000000005801000000787103635f636f646563730a656e636f64650a7104580100000079710558060000006c6174696e3171068671075271084e884b014b028671096558010000006f710a63636f6c6c656374696f6e730a4f726465726564446963740a710b2952710c58010000006b710d4b0173752e",
            "80049527000000000000007d94288c0161945d94284b018c0178944b0168034b016803658c0173948f94284b014b0290752e",
            "286c70300a49310a6156780a70310a6146322e350a612e",
            "504b03041400000000006784775d1b1a404ba8000000a800000010000000617263686976652f646174612e706b6c800263636f6c6c656374696f6e730a4f726465726564446963740a71002952710158010000007763746f7263682e5f7574696c730a5f72656275696c645f74656e736f725f76320a2828580700000073746f7261676563746f7263680a466c6f617453746f726167650a58010000003058030000006370754b0474514b004b024b02864b024b01868963636f6c6c656374696f6e730a4f726465726564446963740a29527452732e504b03041400000000006784775d554bbbec10000000100000000e000000617263686976652f646174612f3000000000000000000000000000000000504b03041400000000006784775dd19e675502000000020000000f000000617263686976652f76657273696f6e330a504b010214031400000000006784775d1b1a404ba8000000a8000000100000000000000000000000800100000000617263686976652f646174612e706b6c504b010214031400000000006784775d554bbbec10000000100000000e00000000000000000000008001d6000000617263686976652f646174612f30504b010214031400000000006784775dd19e675502000000020000000f0000000000000000000000800112010000617263686976652f76657273696f6e504b05060000000003000300b7000000410100000000",
            "934e554d505901003a007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d0a0000000000000000",
            "36000000000000007b2261223a7b226474797065223a22463136222c227368617065223a5b325d2c22646174615f6f666673657473223a5b302c345d7d7d00000000",
        ]
        .iter()
        .map(|h| hex::decode(h).expect("hex"))
        .collect(),
        other => panic!("no seeds for {other}"),
    }
}

/// A check: whether the input was accepted (panics when a property breaks).
pub type Check = fn(&[u8]) -> bool;

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("envelope", envelope),
    ("statement", statement),
    ("provenance", provenance),
    ("revocation", revocation),
    ("leaf_record", leaf_record),
    ("entry_bundle", entry_bundle),
    ("tile_path", tile_path),
    ("checkpoint", checkpoint),
    ("verifier_key", verifier_key),
    ("receipt", receipt),
    ("policy", policy),
    ("public_key", public_key),
    ("inclusion_proof", inclusion_proof),
    ("add_checkpoint", add_checkpoint),
    ("cosignature", cosignature),
    ("tlog_proof", tlog_proof),
    ("scan", scan),
];

/// The fixtures' witness.
fn witness() -> WitnessSigner {
    WitnessSigner::new(
        "fuzz.pedigree.dev/witness",
        ed25519_dalek::SigningKey::from_bytes(&[43; 32]),
    )
    .expect("valid name")
}

/// The receipt's checkpoint with the fixtures' witness's cosignature.
fn cosigned_note() -> Vec<u8> {
    let note = FIXTURES.receipt.checkpoint.as_bytes();
    let body = note_body(note).expect("a signed note");
    append_cosignatures(note, &[witness().cosign(&body, 1_700_000_000)]).expect("a signed note")
}

/// `AddCheckpoint::parse`: what parses re-encodes to the same bytes.
pub fn add_checkpoint(data: &[u8]) -> bool {
    let Ok(req) = AddCheckpoint::parse(data) else {
        return false;
    };
    assert_eq!(
        req.encode(),
        data,
        "add-checkpoint body does not round-trip"
    );
    true
}

/// `Cosignature::from_line` and `WitnessVerifier::from_vkey`: both round-trip, and a
/// line that verifies on the fixtures' checkpoint is the witness's own.
pub fn cosignature(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut accepted = false;
    if let Ok(v) = WitnessVerifier::from_vkey(text) {
        let again = WitnessVerifier::from_vkey(&v.to_vkey()).expect("a printed key parses");
        assert_eq!(again, v);
        accepted = true;
    }
    if let Ok(c) = Cosignature::from_line(text) {
        assert_eq!(
            Cosignature::from_line(&c.to_line()).expect("a printed line parses"),
            c
        );
        let body = note_body(FIXTURES.receipt.checkpoint.as_bytes()).expect("a signed note");
        if witness().verifier().verify(&body, &c).is_ok() {
            let own = witness().cosign(&body, c.timestamp);
            assert_eq!(c, own, "a changed cosignature verified");
        }
        accepted = true;
    }
    accepted
}

/// `TlogProof::parse`, then `verify` with the log key and one required witness: what
/// parses re-encodes to the same bytes, and a proof that verifies proves the real leaf
/// at its real index.
pub fn tlog_proof(data: &[u8]) -> bool {
    let Ok(proof) = TlogProof::parse(data) else {
        return false;
    };
    assert_eq!(proof.encode(), data, "tlog-proof does not round-trip");
    let policy = WitnessPolicy::new(vec![witness().verifier()], 1).expect("one witness");
    if proof.verify(None, &FIXTURES.verifier, &policy).is_err() {
        return false;
    }
    let (index, _, _, _) = &FIXTURES.proof;
    assert_eq!(
        (proof.index, proof.extra.as_deref()),
        (*index, Some(&FIXTURES.receipt.leaf[..])),
        "a tlog-proof for another entry verified"
    );
    true
}

/// `Envelope::from_json`: what parses re-encodes canonically and parses back the same.
pub fn envelope(data: &[u8]) -> bool {
    let Ok(e) = Envelope::from_json(data) else {
        return false;
    };
    let canonical = e.to_json();
    let again = Envelope::from_json(&canonical).expect("canonical envelope JSON parses");
    assert_eq!(again, e, "envelope changed through its canonical JSON");
    assert_eq!(again.to_json(), canonical, "canonical JSON is not stable");
    let _ = e.verify(&[FIXTURES.key.public_key()]);
    true
}

/// `Statement::from_json`: what parses validates and survives its own JSON.
pub fn statement(data: &[u8]) -> bool {
    let Ok(s) = Statement::from_json(data) else {
        return false;
    };
    s.validate().expect("a parsed statement is valid");
    let _ = s.subject.iter().flat_map(|r| r.digests()).count();
    Statement::from_json(&s.to_json()).expect("a statement's JSON parses");
    true
}

/// `Provenance::from_statement` and the materials admission reads.
pub fn provenance(data: &[u8]) -> bool {
    let Ok(s) = Statement::from_json(data) else {
        return false;
    };
    let _ = statement_materials(&s);
    let Ok(Some(p)) = Provenance::from_statement(&s) else {
        return false;
    };
    p.validate().expect("parsed provenance is valid");
    let _ = (p.materials(), p.step());
    true
}

/// `Revocation::from_statement`: whatever it accepts is valid and survives being written
/// into a statement and read back.
pub fn revocation(data: &[u8]) -> bool {
    let Ok(s) = Statement::from_json(data) else {
        return false;
    };
    let Ok(Some(r)) = Revocation::from_statement(&s) else {
        return false;
    };
    r.validate().expect("a parsed revocation is valid");
    let again = r
        .clone()
        .into_statement(s.subject.clone())
        .expect("a parsed revocation makes a statement");
    let back = Statement::from_json(&again.to_json()).expect("its statement parses");
    assert_eq!(
        Revocation::from_statement(&back).expect("it reads back"),
        Some(r)
    );
    true
}

/// `LeafRecord::decode` accepts only canonical encodings: decode then encode is the identity.
pub fn leaf_record(data: &[u8]) -> bool {
    let Ok(r) = LeafRecord::decode(data) else {
        return false;
    };
    assert_eq!(r.encode(), data, "a non-canonical leaf record decoded");
    true
}

/// `tiles::parse_bundle`: what parses re-encodes to the same bytes.
pub fn entry_bundle(data: &[u8]) -> bool {
    let Ok(entries) = tiles::parse_bundle(data) else {
        return false;
    };
    let mut again = Vec::new();
    for e in entries {
        tiles::push_bundle_entry(&mut again, e).expect("a parsed entry fits a bundle");
    }
    assert_eq!(again, data, "entry bundle does not re-encode");
    true
}

/// `TileCoord::from_path` accepts only canonical paths.
pub fn tile_path(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(c) = TileCoord::from_path(text) else {
        return false;
    };
    assert_eq!(c.path(), text, "a non-canonical tile path parsed");
    let _ = (c.leaf_range(), c.exists_in(u64::MAX), c.is_full());
    true
}

/// `LogVerifier::verify`: only tree heads the log signed verify.
pub fn checkpoint(data: &[u8]) -> bool {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pedigree_core::checkpoint::root_from_note(text);
    }
    let Ok(cp) = FIXTURES.verifier.verify(data) else {
        return false;
    };
    {
        assert_eq!(cp.note, data);
        let (_, size, _, root) = &FIXTURES.proof;
        let signed = [(*size, *root), (0, merkle::EMPTY_TREE_HASH)];
        assert!(
            signed.contains(&(cp.tree_size, cp.root_hash)),
            "a tree head the log never signed verified: {} {}",
            cp.tree_size,
            cp.root_hash
        );
    }
    true
}

/// `LogVerifier::from_vkey`: what parses prints a key that parses to the same verifier.
pub fn verifier_key(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(v) = LogVerifier::from_vkey(text) else {
        return false;
    };
    let printed = v.to_vkey();
    let again = LogVerifier::from_vkey(&printed).expect("a printed verifier key parses");
    assert_eq!(again.to_vkey(), printed, "verifier key does not round-trip");
    assert_eq!((again.origin(), again.key_id()), (v.origin(), v.key_id()));
    true
}

/// `LogReceipt::from_tlog_entry`, then `verify`: a receipt that still verifies is the
/// receipt that was issued.
pub fn receipt(data: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let Ok(Some(r)) = LogReceipt::from_tlog_entry(&value) else {
        return false;
    };
    let f = &*FIXTURES;
    if r.verify(&f.envelope, &f.verifier, None).is_err() {
        return false;
    }
    assert_eq!(r, f.receipt, "a changed receipt verified");
    true
}

/// `Policy::from_toml` with a resolver that knows one key name.
pub fn policy(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    Policy::from_toml(text, |name| {
        if name == "k" {
            Ok(FIXTURES.key.public_key())
        } else {
            Err(format!("unknown key {name}"))
        }
    })
    .is_ok()
}

/// `PublicKey::from_pem` and `from_spki_der`: a parsed key re-encodes to a key equal to it.
pub fn public_key(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(k) = PublicKey::from_spki_der(data) {
        let again = PublicKey::from_spki_der(k.spki_der()).expect("canonical SPKI parses");
        assert_eq!(again, k);
        let _ = k.verify(b"message", data);
        accepted = true;
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = PublicKey::from_pem(text) {
            assert_eq!(PublicKey::from_pem(&k.to_pem()).expect("own PEM parses"), k);
            accepted = true;
        }
    }
    accepted
}

/// `merkle::verify_inclusion` on (index, size, proof) read from the bytes: only the real
/// proof at the real index verifies against the real root. (Another tree size with the
/// same path shape verifies too: the size is bound by the signed checkpoint, not here.)
pub fn inclusion_proof(data: &[u8]) -> bool {
    if data.len() < 16 {
        return false;
    }
    let index = u64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
    let size = u64::from_be_bytes(data[8..16].try_into().expect("8 bytes"));
    let proof: Vec<&[u8]> = data[16..].chunks(32).collect();
    let (real_index, _, real_proof, root) = &FIXTURES.proof;
    let leaf = merkle::leaf_hash(&FIXTURES.receipt.leaf);
    let _ = merkle::verify_consistency(index, size, &proof, &leaf.0, &root.0);
    if merkle::verify_inclusion(index, size, &leaf.0, &proof, &root.0).is_err() {
        return false;
    }
    let real: Vec<&[u8]> = real_proof.iter().map(|h| &h.0[..]).collect();
    assert_eq!((index, &proof), (*real_index, &real), "size {size}");
    true
}

/// `scan::scan` of a file named `model.pkl`: the status is that of the worst finding,
/// and a pickle that is safe stops being safe when its last byte is cut (nothing after
/// a broken or missing `STOP` is trusted).
pub fn scan(data: &[u8]) -> bool {
    use pedigree_core::scan::{scan, Limits, Severity, Status};
    let limits = Limits::default();
    let report = scan("model.pkl", data, &limits);
    let worst = report.findings.iter().map(|f| f.severity).max();
    let want = match worst {
        None => Status::Safe,
        Some(Severity::Warning) => Status::Unknown,
        Some(Severity::Error) => Status::Unscannable,
        Some(_) => Status::Unsafe,
    };
    assert_eq!(report.status, want, "status is not the worst finding's");
    if report.format == "pickle" && report.status == Status::Safe {
        let cut = scan("model.pkl", &data[..data.len() - 1], &limits);
        assert_ne!(
            cut.status,
            Status::Safe,
            "a safe pickle stays safe without its last byte"
        );
    }
    report.status == Status::Safe
}
