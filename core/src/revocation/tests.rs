use super::*;
use crate::checkpoint::LogSigner;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::entry::{admit, Limits};
use crate::keys::{Algorithm, PrivateKey};
use crate::merkle;
use crate::receipt::LogReceipt;

fn digest(n: u8) -> String {
    format!("sha256:{}", hex::encode([n; 32]))
}

fn statement(subject: u8, predicate: serde_json::Value) -> Statement {
    let json = serde_json::json!({
        "_type": STATEMENT_TYPE_V1,
        "subject": [{"digest": {"sha256": hex::encode([subject; 32])}}],
        "predicateType": PREDICATE_TYPE_REVOCATION_V1,
        "predicate": predicate,
    });
    Statement::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
}

/// Parses `predicate` as a revocation; `Ok(())` or the error's text.
fn check(predicate: serde_json::Value, expected: Result<(), &str>) {
    let got = Revocation::from_statement(&statement(1, predicate.clone()))
        .map(|r| assert!(r.is_some()))
        .map_err(|e| e.to_string());
    match (got, expected) {
        (Ok(()), Ok(())) => {}
        (Err(e), Err(want)) => assert!(e.contains(want), "{predicate}: {e} lacks {want}"),
        (got, want) => panic!("{predicate}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn revocation_predicates_parse_or_name_the_broken_rule() {
    use serde_json::json;
    let at = "2026-11-23T16:00:00Z";
    check(json!({"reason": "poisoned data", "revoked_at": at}), Ok(()));
    check(
        json!({"reason": "leaked", "revoked_at": "2026-11-23T17:00:00+01:00",
               "superseded_by": digest(9), "note": "unknown fields are ignored"}),
        Ok(()),
    );
    check(json!({"revoked_at": at}), Err("couldn't parse"));
    check(
        json!({"reason": " ", "revoked_at": at}),
        Err("reason is empty"),
    );
    check(
        json!({"reason": "a\nb", "revoked_at": at}),
        Err("control character"),
    );
    check(
        json!({"reason": "x".repeat(MAX_REASON_BYTES + 1), "revoked_at": at}),
        Err("more than 1024"),
    );
    check(
        json!({"reason": "r", "revoked_at": "yesterday"}),
        Err("RFC 3339"),
    );
    check(
        json!({"reason": "r", "revoked_at": 17}),
        Err("couldn't parse"),
    );
    check(
        json!({"reason": "r", "revoked_at": at, "superseded_by": "sha256:xyz"}),
        Err("superseded_by"),
    );
    let mut no_predicate = statement(1, json!({}));
    no_predicate.predicate = None;
    assert!(matches!(
        Revocation::from_statement(&no_predicate),
        Err(RevocationError::MissingPredicate)
    ));
    let mut other = statement(1, json!({}));
    other.predicate_type = "https://slsa.dev/provenance/v1".into();
    assert!(Revocation::from_statement(&other).unwrap().is_none());
}

#[test]
fn revocation_statement_round_trips() {
    let r = Revocation {
        reason: "backdoored weights".into(),
        revoked_at: "2026-11-23T16:00:00Z".into(),
        superseded_by: Some(digest(7)),
    };
    let subject = ResourceDescriptor {
        digest: [("sha256".to_string(), hex::encode([3; 32]))]
            .into_iter()
            .collect(),
        ..ResourceDescriptor::default()
    };
    let s = r.clone().into_statement(vec![subject]).unwrap();
    let back = Statement::from_json(&s.to_json()).unwrap();
    assert_eq!(Revocation::from_statement(&back).unwrap(), Some(r));
    let bad = Revocation {
        reason: String::new(),
        revoked_at: "2026-11-23T16:00:00Z".into(),
        superseded_by: None,
    };
    assert!(bad.into_statement(Vec::new()).is_err());
}

/// A log, the chain's keys, and a policy naming them.
struct Fixture {
    log: LogSigner,
    trainer: PrivateKey,
    release: PrivateKey,
    security: PrivateKey,
    intruder: PrivateKey,
}

impl Fixture {
    fn new() -> Self {
        Self {
            log: LogSigner::new(
                "log.example",
                ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
            )
            .unwrap(),
            trainer: PrivateKey::generate(Algorithm::Ed25519),
            release: PrivateKey::generate(Algorithm::Ed25519),
            security: PrivateKey::generate(Algorithm::Ed25519),
            intruder: PrivateKey::generate(Algorithm::Ed25519),
        }
    }

    fn policy(&self, revocation: &str) -> Policy {
        let text = format!(
            "log_key = \"{}\"\n{revocation}\n[[step]]\nname = \"train\"\nsigners = [\"trainer\"]\n[[step]]\nname = \"deploy\"\nsigners = [\"release\"]\n",
            self.log.verifier_key()
        );
        Policy::from_toml(&text, |name| match name {
            "trainer" => Ok(self.trainer.public_key()),
            "release" => Ok(self.release.public_key()),
            "security" => Ok(self.security.public_key()),
            _ => Err("no such key".into()),
        })
        .unwrap()
    }

    /// The verified chain: dataset 1 -> train (trainer) -> model 2 -> deploy (release) -> 3.
    fn links(&self) -> Vec<VerifiedLink> {
        let link = |step: &str, key: &PrivateKey, subject: u8, material: u8| VerifiedLink {
            step: step.into(),
            source: format!("{step}.json"),
            log_index: u64::from(subject),
            tree_size: 10,
            subjects: vec![digest(subject)],
            materials: vec![digest(material)],
            signers: vec![key.public_key().fingerprint().to_string()],
        };
        vec![
            link("train", &self.trainer, 2, 1),
            link("deploy", &self.release, 3, 2),
        ]
    }

    /// A revocation of `subject` signed by `key`, in a one-entry tree of `log`.
    fn revocation(&self, log: &LogSigner, key: &PrivateKey, subject: u8) -> Attestation {
        let predicate =
            serde_json::json!({"reason": "poisoned", "revoked_at": "2026-11-23T16:00:00Z"});
        let envelope = Envelope::sign(
            IN_TOTO_PAYLOAD_TYPE,
            statement(subject, predicate).to_json(),
            &[key],
        );
        let leaf = admit(&envelope, &[key.public_key()], &Limits::default(), 7)
            .unwrap()
            .record
            .encode();
        let receipt = LogReceipt {
            log_index: 0,
            tree_size: 1,
            hashes: Vec::new(),
            checkpoint: log
                .sign(1, merkle::leaf_hash(&leaf))
                .note_text()
                .to_string(),
            leaf,
        };
        Attestation {
            source: format!("revocation of {subject}"),
            envelope,
            receipt: Some(receipt),
        }
    }
}

#[test]
fn the_artifacts_own_signer_revokes_and_others_are_reported_and_ignored() {
    let f = Fixture::new();
    let policy = f.policy("");
    let links = f.links();
    let by_trainer = f.revocation(&f.log, &f.trainer, 2);
    let by_release = f.revocation(&f.log, &f.release, 2);
    let by_intruder = f.revocation(&f.log, &f.intruder, 3);
    let unrelated = f.revocation(&f.log, &f.intruder, 42);

    let status = check_revocations(
        &links,
        &[by_release, by_intruder, unrelated, by_trainer],
        &policy,
    );
    assert_eq!(status.revoked.len(), 1, "{status:?}");
    let r = &status.revoked[0];
    assert_eq!(
        (r.artifact.as_str(), r.step.as_deref()),
        (digest(2).as_str(), Some("train"))
    );
    assert_eq!(r.revocation.reason, "poisoned");
    assert!(r.to_string().contains("train artifact"), "{r}");
    // The release key signed model 2's deploy, not model 2 itself; the intruder nothing.
    assert_eq!(status.ignored.len(), 2, "{status:?}");
    for i in &status.ignored {
        assert!(i.why.contains("does not authorise"), "{i}");
    }
    assert_eq!(status.ignored[1].artifacts, [digest(3)]);
}

#[test]
fn policy_revokers_may_revoke_anything_in_the_chain() {
    let f = Fixture::new();
    let links = f.links();
    let by_security = [1, 2, 3].map(|n| f.revocation(&f.log, &f.security, n));
    let policy = f.policy("[revocation]\nrevokers = [\"security\"]\n");
    let status = check_revocations(&links, &by_security, &policy);
    // Nearest the target first; the dataset is a material no step produces.
    let got: Vec<_> = status
        .revoked
        .iter()
        .map(|r| (r.artifact.clone(), r.step.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (digest(3), Some("deploy".to_string())),
            (digest(2), Some("train".to_string())),
            (digest(1), None),
        ]
    );
    assert!(status.ignored.is_empty());

    // Without the table, the security key is a stranger.
    let status = check_revocations(&links, &by_security, &f.policy(""));
    assert!(status.revoked.is_empty());
    assert_eq!(status.ignored.len(), 3);

    // signer_may_revoke = false leaves only the listed revokers.
    let strict = f.policy("[revocation]\nrevokers = [\"security\"]\nsigner_may_revoke = false\n");
    let status = check_revocations(&links, &[f.revocation(&f.log, &f.trainer, 2)], &strict);
    assert!(status.revoked.is_empty());
    assert_eq!(status.ignored.len(), 1);
}

#[test]
fn unprovable_or_invalid_revocations_are_reported_not_trusted() {
    let f = Fixture::new();
    let policy = f.policy("");
    let links = f.links();
    let other_log = LogSigner::new(
        "other.example",
        ed25519_dalek::SigningKey::from_bytes(&[2; 32]),
    )
    .unwrap();
    let mut no_receipt = f.revocation(&f.log, &f.trainer, 2);
    no_receipt.receipt = None;
    let wrong_log = f.revocation(&other_log, &f.trainer, 2);
    let mut tampered = f.revocation(&f.log, &f.trainer, 2);
    tampered.receipt.as_mut().unwrap().leaf[5] ^= 1;
    let invalid = {
        let bad = statement(2, serde_json::json!({"reason": "", "revoked_at": "now"}));
        let mut a = f.revocation(&f.log, &f.trainer, 2);
        a.envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, bad.to_json(), &[&f.trainer]);
        a
    };
    let status = check_revocations(&links, &[no_receipt, wrong_log, tampered, invalid], &policy);
    assert!(status.revoked.is_empty(), "{status:?}");
    let whys: Vec<&str> = status.ignored.iter().map(|i| i.why.as_str()).collect();
    assert_eq!(whys.len(), 4, "{whys:?}");
    assert!(whys[0].contains("no log receipt"), "{whys:?}");
    assert!(
        whys[1].contains("not provably in the trusted log"),
        "{whys:?}"
    );
    assert!(
        whys[2].contains("not provably in the trusted log"),
        "{whys:?}"
    );
    assert!(whys[3].contains("invalid predicate"), "{whys:?}");
}
