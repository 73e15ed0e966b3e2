//! `pedigree bom` against a real server: the CycloneDX ML-BOM of a model whose chain was
//! attested step by step, validated against the official CycloneDX 1.6 schema, with and
//! without a policy, and each way it must fail.

use pedigree_core::witness::WitnessSigner;
use pedigree_tests::{binary, get_json, write_file as write, CliLog, Server};
use serde_json::{json, Value};
use std::fs;
use std::process::Command;

const SCHEMA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/cyclonedx");

/// The official CycloneDX 1.6 schema (`testdata/cyclonedx/README.md`), with the SPDX
/// and JSF schemas it refers to registered under the URIs its `$ref`s resolve to, so
/// validation fetches nothing.
fn validator() -> jsonschema::Validator {
    let read = |name: &str| -> Value {
        serde_json::from_str(&fs::read_to_string(format!("{SCHEMA_DIR}/{name}")).unwrap()).unwrap()
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
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

struct Setup(CliLog);

impl std::ops::Deref for Setup {
    type Target = CliLog;

    fn deref(&self) -> &CliLog {
        &self.0
    }
}

impl Setup {
    fn digest(&self, path: &str) -> String {
        self.ok(&["hash", path]).trim().to_string()
    }

    /// Attests one step and returns its log index.
    fn attest(
        &self,
        step: &str,
        key: &str,
        subjects: &[&str],
        materials: &[&str],
        params: &[&str],
    ) -> u64 {
        let out = format!("{step}-{key}.json");
        let url = self.server.url.clone();
        let mut args = vec![
            "--json", "attest", step, "--key", key, "--log", &url, "--out", &out,
        ];
        for s in subjects {
            args.extend(["--subject", s]);
        }
        for m in materials {
            args.extend(["--material", m]);
        }
        for p in params {
            args.extend(["--param", p]);
        }
        let v: Value = serde_json::from_str(&self.ok(&args)).unwrap();
        v["log_index"].as_u64().unwrap()
    }
}

/// Log indexes of the chain's steps.
struct Steps {
    dataset: u64,
    train: u64,
    finetune: u64,
    quantize: u64,
    evaluate: u64,
}

/// Dataset -> train -> finetune -> quantize, an evaluation of the quantized model (the
/// report as subject, the model as material) and a deployment, on a fresh log.
fn setup() -> (Setup, Steps) {
    let s = Setup(CliLog::start());
    s.generate_keys(&["curator", "trainer", "release", "intruder"], "ed25519");
    let d = s.dir.path();
    write(d, "data/train.csv", b"x,y\n1,2\n3,4\n");
    write(d, "model-v1/weights.bin", &[1u8; 4096]);
    write(d, "model-v2/weights.bin", &[2u8; 4096]);
    write(d, "model-q4/weights.bin", &[3u8; 1024]);
    write(d, "model-q4/config.json", b"{\"bits\": 4}");
    write(d, "eval.json", b"{\"accuracy\": 0.91}");
    write(d, "deploy.yaml", b"model: model-q4\n");
    let steps = Steps {
        dataset: s.attest(
            "dataset",
            "curator.key",
            &["data"],
            &[],
            &["filters=[\"dedup\"]"],
        ),
        train: s.attest(
            "train",
            "trainer.key",
            &["model-v1"],
            &["data"],
            &[
                "architecture=llama",
                "task=text-classification",
                "epochs=3",
                "lr=0.001",
            ],
        ),
        finetune: s.attest(
            "finetune",
            "trainer.key",
            &["model-v2"],
            &["model-v1"],
            &["method=lora"],
        ),
        quantize: s.attest(
            "quantize",
            "release.key",
            &["model-q4"],
            &["model-v2"],
            &["bits=4"],
        ),
        evaluate: s.attest(
            "evaluate",
            "release.key",
            &["eval.json"],
            &["model-q4"],
            &[
                "benchmark=toy-reviews",
                "results={\"accuracy\": 0.91, \"f1\": 0.88}",
            ],
        ),
    };
    s.attest(
        "deploy",
        "release.key",
        &["deploy.yaml"],
        &["model-q4"],
        &[],
    );
    (s, steps)
}

fn read_bom(s: &Setup, name: &str) -> Value {
    serde_json::from_str(&fs::read_to_string(s.dir.path().join(name)).unwrap()).unwrap()
}

fn metrics(bom: &Value) -> Vec<(String, String)> {
    bom["components"][0]["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["type"].as_str().unwrap().into(),
                m["value"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn bom_of_a_logged_chain_is_valid_cyclonedx_built_from_verified_entries() {
    let (s, steps) = setup();
    let url = s.server.url.clone();
    let vkey = s.server.vkey.clone();
    let validator = validator();
    s.ok(&[
        "bom",
        "model-q4",
        "--log",
        &url,
        "--log-key",
        &vkey,
        "--out",
        "bom.json",
    ]);
    let bom = read_bom(&s, "bom.json");
    let errors = schema_errors(&validator, &bom);
    assert!(errors.is_empty(), "{errors:#?}\n{bom:#}");
    assert_eq!(bom["specVersion"], "1.6");

    // The model: its hash is the digest `pedigree attest` named it by.
    let q4 = s.digest("model-q4");
    let model = &bom["components"][0];
    assert_eq!(model["type"], "machine-learning-model");
    assert_eq!(model["bom-ref"], q4);
    assert_eq!(
        model["hashes"],
        json!([{"alg": "SHA-256", "content": q4.strip_prefix("sha256:").unwrap()}])
    );
    // Ancestors: the fine-tuned model, made from the trained one.
    let v2 = &model["pedigree"]["ancestors"][0];
    assert_eq!(v2["bom-ref"], s.digest("model-v2"));
    assert_eq!(
        v2["pedigree"]["ancestors"][0]["bom-ref"],
        s.digest("model-v1")
    );
    // The dataset is a data component, and the model card refers to it.
    let data_digest = s.digest("data");
    let data = &bom["components"][1];
    assert_eq!(data["type"], "data");
    assert_eq!(data["bom-ref"], data_digest);
    assert_eq!(data["data"][0]["type"], "dataset");
    let card = &model["modelCard"];
    assert_eq!(
        card["modelParameters"]["datasets"],
        json!([{"ref": data_digest}])
    );
    assert_eq!(card["modelParameters"]["architectureFamily"], "llama");
    assert_eq!(card["modelParameters"]["task"], "text-classification");
    let props = card["properties"].as_array().unwrap();
    assert!(
        props.contains(&json!({"name": "pedigree:train:epochs", "value": "3"})),
        "{props:?}"
    );
    assert!(
        props.contains(&json!({"name": "pedigree:quantize:bits", "value": "4"})),
        "{props:?}"
    );
    assert_eq!(
        metrics(&bom),
        [
            ("accuracy".into(), "0.91".into()),
            ("f1".into(), "0.88".into())
        ]
    );
    assert_eq!(
        card["quantitativeAnalysis"]["performanceMetrics"][0]["slice"],
        "toy-reviews"
    );

    // External references: the log entries, each with its envelope's digest.
    let refs = |c: &Value| -> Vec<(String, String)> {
        c["externalReferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["type"], "attestation");
                (
                    r["url"].as_str().unwrap().into(),
                    r["hashes"][0]["content"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let expect = |indexes: &[u64]| -> Vec<(String, String)> {
        indexes
            .iter()
            .map(|i| {
                let (status, entry) = get_json(&format!("{url}/api/v1/entries/{i}"));
                assert_eq!(status, 200);
                (
                    format!("{url}/api/v1/entries/{i}"),
                    entry["record"]["envelope_sha256"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(refs(model), expect(&[steps.quantize, steps.evaluate]));
    assert_eq!(refs(v2), expect(&[steps.finetune]));
    assert_eq!(
        refs(&v2["pedigree"]["ancestors"][0]),
        expect(&[steps.train])
    );
    assert_eq!(refs(data), expect(&[steps.dataset]));
    // The deployment is downstream and not an evaluation: not in the BOM.
    assert_eq!(bom["components"].as_array().unwrap().len(), 2);

    // Same inputs, same BOM (SOURCE_DATE_EPOCH fixes the timestamp); a digest works
    // as well as the directory.
    let run = |artifact: &str| {
        let out = Command::new(binary("pedigree"))
            .current_dir(s.dir.path())
            .env("SOURCE_DATE_EPOCH", "1790000000")
            .args(["bom", artifact, "--log", &url, "--log-key", &vkey])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let first = run("model-q4");
    assert_eq!(first, run(&q4));
    let doc: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(doc["metadata"]["timestamp"], "2026-09-21T14:13:20Z");
    assert_eq!(doc["serialNumber"], bom["serialNumber"]);
}

#[test]
fn with_a_policy_only_the_accepted_chain_and_its_evaluators_count() {
    let (s, _) = setup();
    let url = s.server.url.clone();
    // Anyone can log an evaluation naming the model.
    s.attest(
        "evaluate",
        "intruder.key",
        &["eval.json"],
        &["model-q4"],
        &["results={\"accuracy\": 0.99}"],
    );
    let policy = format!(
        "log_key = \"{}\"\n\
         [[step]]\nname = \"dataset\"\nsigners = [\"curator.pub\"]\n\
         [[step]]\nname = \"train\"\nsigners = [\"trainer.pub\"]\n\
         [[step]]\nname = \"finetune\"\nsigners = [\"trainer.pub\"]\n\
         [[step]]\nname = \"quantize\"\nsigners = [\"release.pub\"]\n\
         [[step]]\nname = \"evaluate\"\nsigners = [\"release.pub\"]\nrequired = false\n",
        s.server.vkey
    );
    write(s.dir.path(), "policy.toml", policy.as_bytes());
    s.ok(&[
        "bom",
        "model-q4",
        "--log",
        &url,
        "--policy",
        "policy.toml",
        "--out",
        "p.json",
    ]);
    let bom = read_bom(&s, "p.json");
    assert!(schema_errors(&validator(), &bom).is_empty());
    assert_eq!(
        metrics(&bom),
        [
            ("accuracy".into(), "0.91".into()),
            ("f1".into(), "0.88".into())
        ],
        "the intruder's evaluation is left out"
    );
    assert!(bom["metadata"]["properties"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "pedigree:verification", "value": "policy"})));

    // Without a policy every logged evaluation is listed, with who signed it.
    s.ok(&[
        "bom",
        "model-q4",
        "--log",
        &url,
        "--log-key",
        &s.server.vkey,
        "--out",
        "k.json",
    ]);
    let open = read_bom(&s, "k.json");
    assert!(metrics(&open).contains(&("accuracy".into(), "0.99".into())));
    let intruder = s
        .ok(&["key", "fingerprint", "intruder.pub"])
        .trim()
        .to_string();
    assert!(
        open.to_string().contains(&intruder),
        "signer named: {open:#}"
    );

    // A policy whose train step another key must sign: the chain breaks, no BOM.
    let strict = policy.replace(
        "name = \"train\"\nsigners = [\"trainer.pub\"]",
        "name = \"train\"\nsigners = [\"intruder.pub\"]",
    );
    write(s.dir.path(), "strict.toml", strict.as_bytes());
    let err = s.fails(&[
        "bom",
        "model-q4",
        "--log",
        &url,
        "--policy",
        "strict.toml",
        "--out",
        "x.json",
    ]);
    assert!(err.contains("unknown signer at step train"), "{err}");
    assert!(!s.dir.path().join("x.json").exists());
}

#[test]
fn bom_fails_closed_with_one_line() {
    let (s, _) = setup();
    let url = s.server.url.clone();
    let vkey = s.server.vkey.clone();
    let unknown = format!("sha256:{}", "ab".repeat(32));
    let err = s.fails(&["bom", &unknown, "--log", &url, "--log-key", &vkey]);
    assert!(err.contains("no attestation about"), "{err}");

    // Another log's key: no checkpoint of this log verifies.
    let other_data = tempfile::tempdir().unwrap();
    let other = Server::start(other_data.path(), &[]);
    let err = s.fails(&["bom", "model-q4", "--log", &url, "--log-key", &other.vkey]);
    assert!(err.contains("inconsistent checkpoint"), "{err}");

    // The dataset is no model.
    let err = s.fails(&["bom", "data", "--log", &url, "--log-key", &vkey]);
    assert!(
        err.contains("no verified train, finetune or quantize attestation"),
        "{err}"
    );

    // A witness requirement the log cannot meet: no receipt's checkpoint is cosigned.
    let witness = WitnessSigner::new(
        "witness.example/w",
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    )
    .unwrap()
    .verifier()
    .to_vkey();
    let err = s.fails(&[
        "bom",
        "model-q4",
        "--log",
        &url,
        "--log-key",
        &vkey,
        "--witness",
        &witness,
    ]);
    assert!(err.contains("not witnessed"), "{err}");
}

#[test]
fn the_schema_rejects_a_broken_bom() {
    let (s, _) = setup();
    s.ok(&[
        "bom",
        "model-q4",
        "--log",
        &s.server.url,
        "--log-key",
        &s.server.vkey,
        "--out",
        "bom.json",
    ]);
    let good = read_bom(&s, "bom.json");
    let validator = validator();
    assert!(schema_errors(&validator, &good).is_empty());
    let mut no_type = good.clone();
    no_type["components"][1]
        .as_object_mut()
        .unwrap()
        .remove("type");
    let mut bad_data = good.clone();
    bad_data["components"][1]["data"][0]["type"] = json!("spreadsheet");
    let mut bad_ref = good.clone();
    bad_ref["components"][0]["externalReferences"][0]["type"] = json!("transparency-log");
    for (what, broken) in [
        ("no type", no_type),
        ("bad data type", bad_data),
        ("bad reference type", bad_ref),
    ] {
        assert!(
            !schema_errors(&validator, &broken).is_empty(),
            "{what} should be refused"
        );
    }
}
