//! What the benchmarks feed the log: real signed submissions (for the HTTP and
//! engine paths), and synthetic leaf records with real-shaped but unsigned envelopes
//! (for the storage-scale run, which measures storage, not verification).

use pedigree_core::checkpoint::LogSigner;
use pedigree_core::dsse::{Envelope, EnvelopeSignature, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::entry::{self, envelope_digest, Admitted, LeafRecord, Limits};
use pedigree_core::keys::{PrivateKey, PublicKey};
use pedigree_core::statement::{Digest, Statement};
use pedigree_server::engine::LogEngine;
use pedigree_server::storage::RocksStore;
use sha2::{Digest as _, Sha256};
use std::path::Path;

/// Seed of the checkpoint signing key of every log the bench builds in process.
pub const LOG_KEY_SEED: u64 = 0x0106;

/// The predicate type of every benchmark statement.
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

/// An Ed25519 key derived from `seed`, so runs sign the same kind of bytes each time.
pub fn seeded_key(seed: u64) -> PrivateKey {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey as _};
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    bytes[8] = 0xbe;
    let pem = ed25519_dalek::SigningKey::from_bytes(&bytes)
        .to_pkcs8_pem(LineEnding::LF)
        .expect("pkcs8 encoding of an ed25519 key");
    PrivateKey::from_pem(&pem).expect("a freshly encoded key parses")
}

/// Hex SHA-256 naming artifact `n` of run `tag`.
pub fn artifact_hex(tag: u64, n: u64) -> String {
    let mut h = Sha256::new();
    h.update(tag.to_be_bytes());
    h.update(n.to_be_bytes());
    hex::encode(h.finalize())
}

/// A SLSA Provenance v1 training step, as `pedigree attest train` writes it: artifact
/// `n` of run `tag` built from artifact `n - 1`. About 700 bytes of JSON.
pub fn statement_json(tag: u64, n: u64) -> Vec<u8> {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("model-{n}"), "digest": {"sha256": artifact_hex(tag, n)}}],
        "predicateType": SLSA_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://pedigree.dev/ml/train/v1",
                "externalParameters": {"epochs": 3, "lr": "0.001", "run": tag, "n": n},
                "resolvedDependencies": [
                    {"name": format!("model-{}", n.wrapping_sub(1)),
                     "digest": {"sha256": artifact_hex(tag, n.wrapping_sub(1))}}
                ],
            },
            "runDetails": {"builder": {"id": "https://ci.example.com/builders/gpu-pool/v1"}}
        }
    });
    serde_json::to_vec(&statement).expect("statement JSON")
}

/// The JSON body of `POST /api/v1/entries` for statement `n` of run `tag`, signed by `key`.
pub fn submission(key: &PrivateKey, verifier_pem: &str, tag: u64, n: u64) -> Vec<u8> {
    let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement_json(tag, n), &[key]);
    let mut body = Vec::with_capacity(1600);
    body.extend_from_slice(b"{\"envelope\":");
    body.extend_from_slice(&env.to_json());
    body.extend_from_slice(b",\"verifiers\":[");
    body.extend_from_slice(
        serde_json::to_string(verifier_pem)
            .expect("PEM as JSON")
            .as_bytes(),
    );
    body.extend_from_slice(b"]}");
    body
}

/// Runs `f(i)` for `0..count` on every core, keeping order.
pub fn par_map<T: Send>(count: u64, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let chunk = count.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                s.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(count))
                        .map(f)
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    })
}

/// `count` distinct signed request bodies for run `tag`, signed on every core.
pub fn submissions(key: &PrivateKey, tag: u64, count: u64) -> Vec<Vec<u8>> {
    let pem = key.public_key().to_pem();
    par_map(count, |n| submission(key, &pem, tag, n))
}

/// Distinct signed entries `range` of run `tag`, admitted as the server admits them.
pub fn admitted(key: &PrivateKey, tag: u64, range: std::ops::Range<u64>) -> Vec<Admitted> {
    let public = key.public_key();
    par_map(range.end - range.start, |i| {
        let n = range.start + i;
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, statement_json(tag, n), &[key]);
        entry::admit(
            &env,
            std::slice::from_ref(&public),
            &Limits::default(),
            1_700_000_000_000 + n,
        )
        .expect("bench entries are valid")
    })
}

/// Makes synthetic entries for the scale run: each has a real-shaped envelope (the same
/// statement shape as [`submission`], base64 payload, a 64-byte signature of random
/// bytes) whose signature is never checked, and the leaf record `entry::admit` would
/// build from it. Storage cost per entry is that of a real entry.
pub struct Synthetic {
    signer: PublicKey,
    keyid: String,
    statement: Statement,
    predicate_type: String,
}

impl Synthetic {
    /// Entries signed (nominally) by `key`.
    pub fn new(key: &PrivateKey) -> Self {
        let signer = key.public_key();
        Self {
            keyid: signer.fingerprint().to_string(),
            signer,
            statement: Statement {
                type_: "https://in-toto.io/Statement/v1".into(),
                subject: Vec::new(),
                predicate_type: SLSA_V1.into(),
                predicate: None,
            },
            predicate_type: SLSA_V1.into(),
        }
    }

    /// Entry `n` of run `tag`.
    pub fn entry(&self, tag: u64, n: u64) -> Admitted {
        let mut sig = Vec::with_capacity(64);
        let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ tag;
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            sig.extend_from_slice(&x.to_le_bytes());
        }
        let envelope = Envelope {
            payload: statement_json(tag, n),
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            signatures: vec![EnvelopeSignature {
                keyid: self.keyid.clone(),
                sig,
            }],
        };
        let envelope_json = envelope.to_json();
        let digest = |m: u64| -> Digest {
            format!("sha256:{}", artifact_hex(tag, m))
                .parse()
                .expect("a sha256 digest")
        };
        let record = LeafRecord {
            envelope_sha256: envelope_digest(&envelope_json),
            integrated_time_ms: 1_700_000_000_000 + n,
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            predicate_type: self.predicate_type.clone(),
            signers: vec![self.signer.fingerprint()],
            subjects: vec![digest(n)],
            materials: vec![digest(n.wrapping_sub(1))],
        };
        Admitted {
            record,
            envelope_json,
            signer_keys: vec![self.signer.clone()],
            statement: self.statement.clone(),
        }
    }
}

/// A log signing key written into `data_dir` the way `pedigree-server` expects it
/// (`log-signing.key`, mode 0600), and the engine opened on `data_dir/db`, so that the
/// real server binary can serve what the bench appended.
///
/// # Errors
///
/// When the key or the store cannot be created.
pub fn open_data_dir(data_dir: &Path) -> anyhow::Result<LogEngine<RocksStore>> {
    std::fs::create_dir_all(data_dir)?;
    let key_path = data_dir.join("log-signing.key");
    let key = if key_path.exists() {
        PrivateKey::from_pem(&std::fs::read_to_string(&key_path)?)?
    } else {
        let key = seeded_key(LOG_KEY_SEED);
        crate::procs::write_private(&key_path, key.to_pkcs8_pem().as_bytes())?;
        key
    };
    let signing = key
        .as_ed25519()
        .ok_or_else(|| anyhow::anyhow!("log key is not ed25519"))?
        .clone();
    let signer = LogSigner::new(crate::procs::ORIGIN, signing)?;
    let store = RocksStore::open(&data_dir.join("db"))?;
    Ok(LogEngine::open(store, signer)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_records_match_what_admit_builds_from_the_same_statement() {
        let key = seeded_key(1);
        let s = Synthetic::new(&key);
        let a = s.entry(7, 3);
        let real = &admitted(&key, 7, 3..4)[0];
        assert_eq!(a.record.subjects, real.record.subjects);
        assert_eq!(a.record.materials, real.record.materials);
        assert_eq!(a.record.signers, real.record.signers);
        assert_eq!(a.envelope_json.len(), real.envelope_json.len());
        assert_ne!(
            s.entry(7, 4).record.envelope_sha256,
            a.record.envelope_sha256
        );
    }

    #[test]
    fn submissions_are_distinct_and_parse() {
        let key = seeded_key(2);
        let bodies = submissions(&key, 1, 3);
        assert_eq!(bodies.len(), 3);
        assert_ne!(bodies[0], bodies[1]);
        let v: serde_json::Value = serde_json::from_slice(&bodies[2]).unwrap();
        assert!(v["envelope"]["payload"].is_string());
        assert!(v["verifiers"][0].as_str().unwrap().contains("PUBLIC KEY"));
    }
}
