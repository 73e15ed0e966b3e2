//! The BOM of a synthetic chain (dataset, train, finetune, quantize, evaluate) built
//! with real keys, a real Merkle tree and a signed checkpoint, verified with
//! [`crate::lineage::verify_attestation`] and validated against the official CycloneDX
//! 1.6 JSON schema (`testdata/cyclonedx/`).

use super::*;
use crate::checkpoint::LogSigner;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::entry::{admit, Limits};
use crate::keys::{Algorithm, PrivateKey};
use crate::lineage::verify_attestation;
use crate::merkle::{self, Hash, HashReader};
use crate::receipt::LogReceipt;
use crate::witness::WitnessPolicy;
use serde_json::json;

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/cyclonedx");

/// The official CycloneDX 1.6 schema with the two schemas it refers to registered
/// under the URIs its `$ref`s resolve to, so nothing is fetched.
fn validator() -> jsonschema::Validator {
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(format!("{SCHEMA_DIR}/{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let registry = jsonschema::Registry::new()
        .add(
            "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json",
            read("spdx.SNAPSHOT.schema.json"),
        )
        .unwrap()
        .add(
            "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json",
            read("jsf-0.82.SNAPSHOT.schema.json"),
        )
        .unwrap()
        .prepare()
        .unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .with_registry(&registry)
        .build(&read("bom-1.6.SNAPSHOT.schema.json"))
        .unwrap()
}

fn schema_errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

struct MemTree(Vec<Hash>);

impl HashReader for MemTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        indexes
            .iter()
            .map(|&i| {
                self.0
                    .get(usize::try_from(i).unwrap())
                    .copied()
                    .ok_or(tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

fn sha(b: u8) -> String {
    hex::encode([b; 32])
}

fn step(
    key: &PrivateKey,
    build: &str,
    subjects: Value,
    materials: Value,
    params: Value,
) -> Envelope {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": format!("https://pedigree.dev/ml/{build}/v1"),
                "externalParameters": params,
                "resolvedDependencies": materials,
            },
            "runDetails": {"builder": {"id": "https://ci.example/builder"}},
        }
    });
    Envelope::sign(
        IN_TOTO_PAYLOAD_TYPE,
        serde_json::to_vec(&statement).unwrap(),
        &[key],
    )
}

struct Chain {
    attestations: Vec<Attestation>,
    log: LogSigner,
    key: PrivateKey,
}

/// Dataset 0xd1 -> model 0xa1 (train) -> 0xa2 (finetune) -> 0xa3 (quantize, with a
/// calibration set 0xd2), and an evaluation of 0xa3; all logged in one tree.
fn chain() -> Chain {
    let key = PrivateKey::generate(Algorithm::Ed25519);
    let envelopes = vec![
        step(
            &key,
            "dataset",
            json!([{"name": "reviews", "digest": {"sha256": sha(0xd1)}}]),
            json!([{"name": "corpus", "uri": "s3://c/x.tar", "digest": {"sha256": sha(0xc0)}}]),
            json!({"sources": ["corpus"], "filters": ["dedup"]}),
        ),
        step(
            &key,
            "train",
            json!([{"name": "reviews-7b", "digest": {"sha256": sha(0xa1), "sha512": "ab".repeat(64)}}]),
            json!([
                {"name": "dataset", "digest": {"sha256": sha(0xd1)}},
                {"name": "trainer", "digest": {"gitCommit": "12".repeat(20)}}
            ]),
            json!({"architecture": "llama", "task": "text-generation", "approach": "self-supervised",
                   "epochs": 3, "learning_rate": 0.0003, "inputs": ["text"], "outputs": "text"}),
        ),
        step(
            &key,
            "finetune",
            json!([{"name": "reviews-7b-ft", "digest": {"sha256": sha(0xa2)}}]),
            json!([{"name": "base", "digest": {"sha256": sha(0xa1)}}]),
            json!({"method": "lora", "rank": 16}),
        ),
        step(
            &key,
            "dataset",
            json!([{"name": "calibration", "digest": {"sha256": sha(0xd2)}}]),
            json!([]),
            json!({}),
        ),
        step(
            &key,
            "quantize",
            json!([{"name": "reviews-7b-q4", "digest": {"sha256": sha(0xa3)}}]),
            json!([
                {"name": "model", "digest": {"sha256": sha(0xa2)}},
                {"name": "calibration", "digest": {"sha256": sha(0xd2)}}
            ]),
            json!({"method": "gptq", "bits": 4}),
        ),
        step(
            &key,
            "evaluate",
            json!([{"name": "eval.json", "digest": {"sha256": sha(0xe1)}}]),
            json!([{"name": "model", "digest": {"sha256": sha(0xa3)}}]),
            json!({"benchmark": "mmlu", "results": {"accuracy": 0.71, "f1": 0.69}}),
        ),
    ];
    let log = LogSigner::new(
        "log.example/bom",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    let leaves: Vec<Vec<u8>> = envelopes
        .iter()
        .enumerate()
        .map(|(i, e)| {
            admit(e, &[key.public_key()], &Limits::default(), 1_000 + i as u64)
                .unwrap()
                .record
                .encode()
        })
        .collect();
    let mut tree = MemTree(Vec::new());
    for (i, leaf) in leaves.iter().enumerate() {
        let new = merkle::stored_hashes_for_leaf(i as u64, merkle::leaf_hash(leaf), &tree).unwrap();
        tree.0.extend(new);
    }
    let size = leaves.len() as u64;
    let root = merkle::tree_hash(size, &tree).unwrap();
    let checkpoint = log.sign(size, root).note_text().to_string();
    let attestations = envelopes
        .into_iter()
        .zip(leaves)
        .enumerate()
        .map(|(i, (envelope, leaf))| Attestation {
            source: format!("log entry {i}"),
            envelope,
            receipt: Some(LogReceipt {
                log_index: i as u64,
                leaf,
                tree_size: size,
                hashes: merkle::prove_inclusion(i as u64, size, &tree)
                    .unwrap()
                    .iter()
                    .map(|h| h.0)
                    .collect(),
                checkpoint: checkpoint.clone(),
            }),
        })
        .collect();
    Chain {
        attestations,
        log,
        key,
    }
}

fn verified(c: &Chain) -> Vec<VerifiedAttestation> {
    c.attestations
        .iter()
        .map(|a| {
            let link = verify_attestation(
                a,
                &[c.key.public_key()],
                &c.log.verifier(),
                &WitnessPolicy::none(),
            )
            .unwrap();
            VerifiedAttestation::new(link, a).unwrap()
        })
        .collect()
}

fn bom_of(model: &Digest, attestations: &[VerifiedAttestation]) -> Result<Value, BomError> {
    let bom = build(BomInput {
        model,
        attestations,
        log_url: "http://127.0.0.1:8080",
        log_origin: "log.example/bom",
        verification: "log-key",
        timestamp: "2026-11-23T16:00:00Z",
        tool_version: "0.1.0",
    })?;
    Ok(serde_json::to_value(bom).unwrap())
}

fn digest(b: u8) -> Digest {
    Digest::new("sha256", sha(b)).unwrap()
}

#[test]
fn bom_of_a_verified_chain_is_valid_cyclonedx_and_maps_each_step() {
    let c = chain();
    let v = verified(&c);
    let bom = bom_of(&digest(0xa3), &v).unwrap();
    let errors = schema_errors(&validator(), &bom);
    assert!(errors.is_empty(), "{errors:#?}\n{bom:#}");

    let model = &bom["components"][0];
    assert_eq!(model["type"], "machine-learning-model");
    assert_eq!(model["name"], "reviews-7b-q4");
    assert_eq!(
        model["hashes"],
        json!([{"alg": "SHA-256", "content": sha(0xa3)}])
    );
    // Ancestors nest: the quantized model comes from the fine-tune, from the base.
    let ft = &model["pedigree"]["ancestors"][0];
    assert_eq!(ft["bom-ref"], format!("sha256:{}", sha(0xa2)));
    let base = &ft["pedigree"]["ancestors"][0];
    assert_eq!(base["name"], "reviews-7b");
    assert_eq!(
        base["hashes"],
        json!([{"alg": "SHA-256", "content": sha(0xa1)}, {"alg": "SHA-512", "content": "ab".repeat(64)}])
    );
    let card = &model["modelCard"];
    let params = &card["modelParameters"];
    assert_eq!(params["architectureFamily"], "llama");
    assert_eq!(params["task"], "text-generation");
    assert_eq!(params["approach"]["type"], "self-supervised");
    assert_eq!(params["inputs"], json!([{"format": "text"}]));
    assert_eq!(
        params["datasets"],
        json!([{"ref": format!("sha256:{}", sha(0xd1))}, {"ref": format!("sha256:{}", sha(0xd2))}])
    );
    let props = card["properties"].as_array().unwrap();
    for (name, value) in [
        ("pedigree:train:epochs", "3"),
        ("pedigree:finetune:method", "lora"),
        ("pedigree:quantize:bits", "4"),
    ] {
        assert!(
            props.contains(&json!({"name": name, "value": value})),
            "{name} in {props:?}"
        );
    }
    assert_eq!(
        card["quantitativeAnalysis"]["performanceMetrics"],
        json!([
            {"type": "accuracy", "value": "0.71", "slice": "mmlu"},
            {"type": "f1", "value": "0.69", "slice": "mmlu"}
        ])
    );
    // The quantize step and the evaluation are the model's attestations.
    let refs = model["externalReferences"].as_array().unwrap();
    assert_eq!(refs.len(), 2, "{refs:?}");
    assert_eq!(refs[0]["type"], "attestation");
    assert_eq!(refs[0]["url"], "http://127.0.0.1:8080/api/v1/entries/4");
    assert_eq!(refs[1]["url"], "http://127.0.0.1:8080/api/v1/entries/5");
    assert_eq!(
        refs[0]["hashes"][0]["content"],
        hex::encode(v[4].envelope_sha256)
    );

    let data = &bom["components"][1];
    assert_eq!(data["type"], "data");
    assert_eq!(data["name"], "reviews");
    assert_eq!(data["data"][0]["type"], "dataset");
    assert!(data["data"][0]["contents"]["properties"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "pedigree:dataset:filters", "value": "[\"dedup\"]"})));
    assert_eq!(
        data["externalReferences"][0]["url"],
        "http://127.0.0.1:8080/api/v1/entries/0"
    );
    assert_eq!(bom["components"].as_array().unwrap().len(), 3);
    assert_eq!(
        bom["dependencies"][0]["dependsOn"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn same_evidence_gives_the_same_serial_number_and_other_evidence_another() {
    let c = chain();
    let v = verified(&c);
    let a = bom_of(&digest(0xa3), &v).unwrap();
    let mut reversed = v.clone();
    reversed.reverse();
    let b = bom_of(&digest(0xa3), &reversed).unwrap();
    assert_eq!(a, b, "order of the attestations does not matter");
    let without_eval = bom_of(&digest(0xa3), &v[..5]).unwrap();
    assert_ne!(a["serialNumber"], without_eval["serialNumber"]);
    assert!(without_eval["components"][0]["modelCard"]
        .get("quantitativeAnalysis")
        .is_none());
    let serial = a["serialNumber"].as_str().unwrap();
    assert_eq!(&serial[23..24], "8", "UUID version 8: {serial}");
}

#[test]
fn a_model_no_verified_step_made_is_refused() {
    let c = chain();
    let v = verified(&c);
    // The dataset is not a model; the evaluation report is not one either.
    for d in [digest(0xd1), digest(0xe1), digest(0x99)] {
        let err = bom_of(&d, &v).unwrap_err();
        assert!(matches!(err, BomError::NoModelStep { .. }), "{err}");
    }
}

#[test]
fn verification_refuses_a_wrong_key_a_wrong_log_and_a_foreign_link() {
    let c = chain();
    let a = &c.attestations[1];
    let other = PrivateKey::generate(Algorithm::Ed25519);
    let err = verify_attestation(
        a,
        &[other.public_key()],
        &c.log.verifier(),
        &WitnessPolicy::none(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown signer at step train"),
        "{err}"
    );
    let other_log = LogSigner::new(
        "log.example/bom",
        ed25519_dalek::SigningKey::from_bytes(&[8; 32]),
    )
    .unwrap();
    let err = verify_attestation(
        a,
        &[c.key.public_key()],
        &other_log.verifier(),
        &WitnessPolicy::none(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("inconsistent checkpoint at step train"),
        "{err}"
    );
    let link = verify_attestation(
        a,
        &[c.key.public_key()],
        &c.log.verifier(),
        &WitnessPolicy::none(),
    )
    .unwrap();
    assert!(matches!(
        VerifiedAttestation::new(link, &c.attestations[2]),
        Err(BomError::Mismatch { .. })
    ));
}

/// A change that makes a valid BOM invalid.
type Breakage = fn(&mut Value);

#[test]
fn the_schema_rejects_a_broken_bom() {
    let c = chain();
    let v = verified(&c);
    let good = bom_of(&digest(0xa3), &v).unwrap();
    let validator = validator();
    let breakages: [(&str, Breakage); 4] = [
        ("unknown component type", |b| {
            b["components"][0]["type"] = json!("neural-net")
        }),
        ("bad hash", |b| {
            b["components"][0]["hashes"][0]["content"] = json!("xyz")
        }),
        ("bad serial", |b| b["serialNumber"] = json!("not-a-uuid")),
        ("unknown field", |b| {
            b["components"][0]["modelCard"]["weights"] = json!(1)
        }),
    ];
    for (what, breakage) in breakages {
        let mut broken = good.clone();
        breakage(&mut broken);
        assert!(
            !schema_errors(&validator, &broken).is_empty(),
            "{what} should be refused"
        );
    }
}
