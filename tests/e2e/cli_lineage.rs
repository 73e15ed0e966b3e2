//! The `pedigree` CLI against a real server: attesting each step of a model's life and
//! verifying the lineage from creator to deployer, online and offline, and each way it
//! must fail.

use pedigree_tests::{write_file as write, CliLog, Server};
use std::fs;

const STEPS: [&str; 6] = [
    "dataset", "train", "finetune", "quantize", "evaluate", "deploy",
];

/// Keys, artifacts, a policy, and the six attestations submitted to a fresh log.
fn chain() -> CliLog {
    let c = CliLog::start();
    c.generate_keys(&["curator", "trainer", "intruder"], "ed25519");
    c.generate_keys(&["release"], "p256");
    let d = c.dir.path();
    write(d, "data/train.csv", b"x,y\n1,2\n3,4\n");
    write(d, "data/README", b"toy dataset\n");
    write(d, "model-v1/weights.bin", &[1u8; 4096]);
    write(d, "model-v1/config.json", b"{\"layers\": 2}");
    write(d, "model-v2/weights.bin", &[2u8; 4096]);
    write(d, "model-v2/config.json", b"{\"layers\": 2}");
    write(d, "model-q4/weights.bin", &[3u8; 1024]);
    write(d, "model-q4/config.json", b"{\"layers\": 2, \"bits\": 4}");
    write(d, "eval.json", b"{\"accuracy\": 0.91}");
    write(d, "deploy.yaml", b"service: chat\nmodel: model-q4\n");
    let policy = format!(
        "log_key = \"{}\"\n\
         [[step]]\nname = \"dataset\"\nsigners = [\"curator.pub\"]\n\
         [[step]]\nname = \"train\"\nsigners = [\"trainer.pub\"]\n\
         [[step]]\nname = \"finetune\"\nsigners = [\"trainer.pub\"]\n\
         [[step]]\nname = \"quantize\"\nsigners = [\"release.pub\"]\n\
         [[step]]\nname = \"evaluate\"\nsigners = [\"release.pub\"]\n\
         [[step]]\nname = \"deploy\"\nsigners = [\"release.pub\"]\n",
        c.server.vkey
    );
    write(d, "policy.toml", policy.as_bytes());
    fs::create_dir(d.join("bundles")).unwrap();
    let url = c.server.url.clone();
    let attest = |step: &str, key: &str, subjects: &[&str], materials: &[&str], extra: &[&str]| {
        let out = format!("bundles/{step}.json");
        let mut args = vec!["attest", step, "--key", key, "--log", &url, "--out", &out];
        for s in subjects {
            args.extend(["--subject", s]);
        }
        for m in materials {
            args.extend(["--material", m]);
        }
        args.extend(extra);
        c.ok(&args);
    };
    attest("dataset", "curator.key", &["data"], &[], &[]);
    attest(
        "train",
        "trainer.key",
        &["model-v1"],
        &["data"],
        &["--param", "epochs=3", "--param", "lr=0.001"],
    );
    attest("finetune", "trainer.key", &["model-v2"], &["model-v1"], &[]);
    attest(
        "quantize",
        "release.key",
        &["model-q4"],
        &["model-v2"],
        &["--param", "bits=4"],
    );
    attest(
        "evaluate",
        "release.key",
        &["model-q4", "eval.json"],
        &["model-q4"],
        &[],
    );
    attest(
        "deploy",
        "release.key",
        &["deploy.yaml"],
        &["model-q4"],
        &[],
    );
    c
}

#[test]
fn a_six_step_chain_verifies_online_and_offline_and_each_break_is_named() {
    let c = chain();
    let url = c.server.url.clone();

    // The whole chain verifies, online and from bundles alone.
    let out = c.ok(&[
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "policy.toml",
        "--log",
        &url,
    ]);
    assert!(out.contains("verified lineage"), "{out}");
    for step in STEPS {
        assert!(out.contains(step), "{step} in {out}");
    }
    let json = c.ok(&[
        "--json",
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "policy.toml",
        "--bundles",
        "bundles",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["chain"].as_array().unwrap().len(), 6, "{v}");
    let show = c.ok(&["lineage", "show", "deploy.yaml", "--log", &url]);
    assert!(
        show.contains("quantize") && show.contains("dataset"),
        "{show}"
    );

    // A step signed by a key the policy does not allow.
    c.ok(&[
        "attest",
        "train",
        "--key",
        "intruder.key",
        "--subject",
        "model-v1",
        "--material",
        "data",
        "--log",
        &url,
        "--out",
        "intruder-train.json",
    ]);
    copy_bundles(
        &c,
        "bad-signer",
        &[("train.json", Some("intruder-train.json"))],
    );
    let err = c.fails(&[
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "policy.toml",
        "--bundles",
        "bad-signer",
    ]);
    assert!(err.contains("unknown signer at step train"), "{err}");

    // A missing step.
    copy_bundles(&c, "missing", &[("finetune.json", None)]);
    let err = c.fails(&[
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "policy.toml",
        "--bundles",
        "missing",
    ]);
    assert!(err.contains("step finetune missing"), "{err}");

    // A swapped material digest: quantize claims another base model.
    c.ok(&[
        "attest",
        "quantize",
        "--key",
        "release.key",
        "--subject",
        "model-q4",
        "--material",
        "model-v1",
        "--log",
        &url,
        "--out",
        "swapped.json",
    ]);
    copy_bundles(&c, "swapped", &[("quantize.json", Some("swapped.json"))]);
    let err = c.fails(&[
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "policy.toml",
        "--bundles",
        "swapped",
    ]);
    assert!(err.contains("digest mismatch at step finetune"), "{err}");

    // An attestation never submitted to the log.
    c.ok(&[
        "attest",
        "evaluate",
        "--key",
        "release.key",
        "--subject",
        "model-q4",
        "--subject",
        "eval.json",
        "--material",
        "model-q4",
        "--out",
        "unlogged.json",
    ]);
    copy_bundles(&c, "unlogged", &[("evaluate.json", Some("unlogged.json"))]);
    let err = c.fails(&[
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "policy.toml",
        "--bundles",
        "unlogged",
    ]);
    assert!(err.contains("not in log at step evaluate"), "{err}");

    // A receipt from a different log key.
    let other_data = tempfile::tempdir().unwrap();
    let other = Server::start(other_data.path(), &[]);
    c.ok(&[
        "attest",
        "dataset",
        "--key",
        "curator.key",
        "--subject",
        "data",
        "--log",
        &other.url,
        "--out",
        "other-log.json",
    ]);
    copy_bundles(&c, "other-log", &[("dataset.json", Some("other-log.json"))]);
    let err = c.fails(&[
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "policy.toml",
        "--bundles",
        "other-log",
    ]);
    assert!(
        err.contains("inconsistent checkpoint at step dataset"),
        "{err}"
    );

    // A modified model file: the consumer checks the quantized model before loading it.
    let consumer_policy = fs::read_to_string(c.path("policy.toml")).unwrap();
    let cut = consumer_policy
        .find("[[step]]\nname = \"evaluate\"")
        .unwrap();
    fs::write(c.path("consumer.toml"), &consumer_policy[..cut]).unwrap();
    c.ok(&[
        "lineage",
        "verify",
        "model-q4",
        "--policy",
        "consumer.toml",
        "--log",
        &url,
    ]);
    fs::write(c.path("model-q4/weights.bin"), [9u8; 1024]).unwrap();
    let err = c.fails(&[
        "lineage",
        "verify",
        "model-q4",
        "--policy",
        "consumer.toml",
        "--log",
        &url,
    ]);
    assert!(err.contains("digest mismatch at step quantize"), "{err}");
}

/// Copies `bundles/` to `name/`, replacing (or dropping) some files.
fn copy_bundles(c: &CliLog, name: &str, changes: &[(&str, Option<&str>)]) {
    let to = c.path(name);
    fs::create_dir(&to).unwrap();
    for entry in fs::read_dir(c.path("bundles")).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name().to_string_lossy().into_owned();
        match changes.iter().find(|(f, _)| *f == file) {
            None => {
                fs::copy(entry.path(), to.join(&file)).unwrap();
            }
            Some((_, Some(replacement))) => {
                fs::copy(c.path(replacement), to.join(&file)).unwrap();
            }
            Some((_, None)) => {}
        }
    }
}

#[test]
fn submit_adds_a_receipt_to_an_unlogged_bundle() {
    let c = chain();
    c.ok(&[
        "attest",
        "deploy",
        "--key",
        "release.key",
        "--subject",
        "deploy.yaml",
        "--material",
        "model-q4",
        "--out",
        "late.json",
    ]);
    let before = fs::read_to_string(c.path("late.json")).unwrap();
    assert!(!before.contains("pedigree"), "no receipt yet: {before}");
    let out = c.ok(&[
        "--json",
        "submit",
        "late.json",
        "--log",
        &c.server.url,
        "--key",
        "release.pub",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["log_index"].as_u64().is_some(), "{v}");
    let after = fs::read_to_string(c.path("late.json")).unwrap();
    assert!(after.contains("\"kind\": \"pedigree\""), "{after}");
}

#[test]
fn a_policy_that_requires_a_scan_scans_the_artifact_files_or_fails_closed() {
    let c = chain();
    let d = c.dir.path();
    let dataset = format!(
        "log_key = \"{}\"\nrequire_scan = true\n[[step]]\nname = \"dataset\"\nsigners = [\"curator.pub\"]\n",
        c.server.vkey
    );
    write(d, "scan-dataset.toml", dataset.as_bytes());
    let verify = [
        "lineage",
        "verify",
        "--policy",
        "scan-dataset.toml",
        "--bundles",
        "bundles",
    ];
    fn with<'a>(verify: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [verify, extra].concat()
    }

    // The artifact given as a path is scanned: a CSV file and a README are text.
    let out = c.ok(&with(&verify, &["data", "--json"]));
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["verified"], true);
    assert_eq!(result["scan"]["safe"], 2, "{result:#}");

    // A bare digest has no files to scan: refused unless --model names them.
    let digest = c.ok(&["hash", "data"]).trim().to_string();
    let err = c.fails(&with(&verify, &[&digest]));
    assert!(err.contains("requires a model scan"), "{err}");
    c.ok(&with(&verify, &[&digest, "--model", "data"]));
    let err = c.fails(&with(&verify, &[&digest, "--model", "model-v1"]));
    assert!(err.contains("the artifact is sha256:"), "{err}");

    // The trained model's weights.bin is read as a pickle (by its name) and is none: refused.
    let train = format!("{dataset}[[step]]\nname = \"train\"\nsigners = [\"trainer.pub\"]\n");
    write(d, "scan-train.toml", train.as_bytes());
    let err = c.fails(&[
        "lineage",
        "verify",
        "model-v1",
        "--policy",
        "scan-train.toml",
        "--bundles",
        "bundles",
    ]);
    assert!(
        err.contains("model scan failed: weights.bin is unscannable: pickle: unknown opcode"),
        "{err}"
    );
    // Without require_scan the same chain verifies.
    let plain = train.replace("require_scan = true\n", "");
    write(d, "plain-train.toml", plain.as_bytes());
    c.ok(&[
        "lineage",
        "verify",
        "model-v1",
        "--policy",
        "plain-train.toml",
        "--bundles",
        "bundles",
    ]);
}
