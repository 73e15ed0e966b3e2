//! Incident response with the real CLI and server: `pedigree revoke`, revocations in
//! `lineage verify` (online and offline), `pedigree impact` with `--last-good`, and the
//! monitor's revocation alert.

use pedigree_tests::{binary, get_json, write_file as write, CliLog};
use serde_json::Value;
use std::fs;
use std::process::Command;

/// A fresh log and a model's life: a dataset, a trained model v1, two fine-tunes (v2
/// from v1, v3 from v2), and two deployments of v3. Every model file is `model.bin`, so
/// the three versions share a subject name.
struct Incident(CliLog);

impl std::ops::Deref for Incident {
    type Target = CliLog;

    fn deref(&self) -> &CliLog {
        &self.0
    }
}

impl Incident {
    /// The digests the CLI gave the chain's artifacts, from the verified chain of
    /// `target` (a deployment): dataset, v1, v2, v3 and the deployment.
    fn digests(&self, target: &str) -> Vec<String> {
        let v = self.json(&[
            "lineage",
            "verify",
            target,
            "--policy",
            "policy.toml",
            "--bundles",
            "bundles",
        ]);
        v["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["subjects"][0].as_str().unwrap().to_string())
            .collect()
    }

    fn tree_size(&self) -> u64 {
        let (status, info) = get_json(&format!("{}/api/v1/log", self.server.url));
        assert_eq!(status, 200);
        info["tree_size"].as_u64().unwrap()
    }

    fn verify(&self, policy: &str) -> (bool, String, String) {
        let url = self.server.url.clone();
        self.run(&[
            "lineage",
            "verify",
            "deploy.yaml",
            "--policy",
            policy,
            "--log",
            &url,
        ])
    }

    fn revoke(&self, artifact: &str, key: &str, reason: &str, out: &str) -> Value {
        let url = self.server.url.clone();
        self.json(&[
            "revoke", artifact, "--reason", reason, "--key", key, "--log", &url, "--out", out,
        ])
    }
}

fn incident() -> Incident {
    let c = Incident(CliLog::start());
    c.generate_keys(
        &["curator", "trainer", "release", "security", "intruder"],
        "ed25519",
    );
    let d = c.dir.path();
    write(d, "data/train.csv", b"x,y\n1,2\n");
    write(d, "v1/model.bin", &[1u8; 2048]);
    write(d, "v2/model.bin", &[2u8; 2048]);
    write(d, "v3/model.bin", &[3u8; 2048]);
    write(d, "deploy.yaml", b"service: chat\n");
    write(d, "canary.yaml", b"service: chat-canary\n");
    let steps = "[[step]]\nname = \"dataset\"\nsigners = [\"curator.pub\"]\n\
         [[step]]\nname = \"train\"\nsigners = [\"trainer.pub\"]\n\
         [[step]]\nname = \"finetune\"\nsigners = [\"trainer.pub\"]\nrequired = false\n\
         [[step]]\nname = \"refine\"\nbuild_type = \"https://pedigree.dev/ml/finetune/v1\"\nsigners = [\"trainer.pub\"]\nrequired = false\n\
         [[step]]\nname = \"deploy\"\nsigners = [\"release.pub\"]\n";
    let head = format!("log_key = \"{}\"\n", c.server.vkey);
    write(d, "policy.toml", format!("{head}{steps}").as_bytes());
    write(
        d,
        "security-policy.toml",
        format!("{head}[revocation]\nrevokers = [\"security.pub\"]\n{steps}").as_bytes(),
    );
    fs::create_dir(d.join("bundles")).unwrap();
    let url = c.server.url.clone();
    let attest = |step: &str, key: &str, subject: &str, material: Option<&str>, out: &str| {
        let out = format!("bundles/{out}.json");
        let mut args = vec![
            "attest",
            step,
            "--key",
            key,
            "--log",
            &url,
            "--out",
            &out,
            "--subject",
            subject,
        ];
        if let Some(m) = material {
            args.extend(["--material", m]);
        }
        c.ok(&args);
    };
    attest("dataset", "curator.key", "data", None, "dataset");
    attest(
        "train",
        "trainer.key",
        "v1/model.bin",
        Some("data"),
        "train",
    );
    attest(
        "finetune",
        "trainer.key",
        "v2/model.bin",
        Some("v1/model.bin"),
        "ft2",
    );
    attest(
        "finetune",
        "trainer.key",
        "v3/model.bin",
        Some("v2/model.bin"),
        "ft3",
    );
    attest(
        "deploy",
        "release.key",
        "deploy.yaml",
        Some("v3/model.bin"),
        "deploy",
    );
    attest(
        "deploy",
        "release.key",
        "canary.yaml",
        Some("v3/model.bin"),
        "canary",
    );
    c
}

#[test]
fn revocations_fail_verification_only_when_an_authorised_key_signed_them() {
    let c = incident();
    let (ok, out, err) = c.verify("policy.toml");
    assert!(ok, "{err}");
    assert!(out.contains("no revocation by an authorised key"), "{out}");
    let [data, _, v2, _, _] = <[String; 5]>::try_from(c.digests("deploy.yaml")).unwrap();

    // A stranger's revocation is logged, reported, and changes nothing.
    let r = c.revoke(&v2, "intruder.key", "I say so", "intruder-revocation.json");
    assert_eq!(r["revoked"], v2.as_str());
    let (ok, out, err) = c.verify("policy.toml");
    assert!(ok, "{err}");
    assert!(out.contains("ignored revocation of"), "{out}");
    assert!(out.contains("does not authorise"), "{out}");
    assert!(out.contains(&v2), "{out}");

    // The security team's key revokes the dataset: it counts only where the policy
    // lists it as a revoker.
    c.revoke(
        "data",
        "security.key",
        "license withdrawn",
        "security-revocation.json",
    );
    let err = c.fails(&[
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "security-policy.toml",
        "--log",
        &c.server.url,
    ]);
    assert!(err.contains("lineage verification failed"), "{err}");
    assert!(
        err.contains(&data) && err.contains("license withdrawn"),
        "{err}"
    );
    let (ok, out, err) = c.verify("policy.toml");
    assert!(ok, "{err}");
    assert!(out.matches("ignored revocation").count() >= 2, "{out}");

    // The fine-tuned model's own signer revokes it: verification fails, naming the
    // revoked ancestor, its step and the reason.
    c.revoke(
        "v2/model.bin",
        "trainer.key",
        "poisoned fine-tuning shard",
        "bundles/revoke-v2.json",
    );
    let (ok, _, err) = c.verify("policy.toml");
    assert!(!ok);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("finetune artifact {v2} is revoked")),
        "{err}"
    );
    assert!(err.contains("poisoned fine-tuning shard"), "{err}");

    // Offline, the bundle directory carries the revocation; without it the bundles are
    // all that is known, and the output says how fresh that is.
    let err = c.fails(&[
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "policy.toml",
        "--bundles",
        "bundles",
    ]);
    assert!(err.contains("poisoned fine-tuning shard"), "{err}");
    fs::create_dir(c.dir.path().join("stale")).unwrap();
    for f in ["dataset", "train", "ft2", "ft3", "deploy"] {
        fs::copy(
            c.dir.path().join(format!("bundles/{f}.json")),
            c.dir.path().join(format!("stale/{f}.json")),
        )
        .unwrap();
    }
    let out = c.ok(&[
        "lineage",
        "verify",
        "deploy.yaml",
        "--policy",
        "policy.toml",
        "--bundles",
        "stale",
    ]);
    assert!(
        out.contains("only as fresh as the bundle directory"),
        "{out}"
    );
}

#[test]
fn impact_lists_every_descendant_and_deployment_and_the_last_good_version() {
    let c = incident();
    let url = c.server.url.clone();
    let [_, v1, v2, v3, deploy] = <[String; 5]>::try_from(c.digests("deploy.yaml")).unwrap();
    let canary = c.digests("canary.yaml")[4].clone();

    let text = c.ok(&["impact", "v1/model.bin", "--log", &url]);
    for d in [&v1, &v2, &v3, &deploy, &canary] {
        assert!(text.contains(d.as_str()), "{d} in {text}");
    }
    assert!(text.contains("2 deployment(s) affected"), "{text}");
    assert!(!text.contains("REVOKED"), "{text}");

    c.revoke("v3/model.bin", "trainer.key", "jailbreak found", "r3.json");
    let v = c.json(&["impact", &v1, "--log", &url, "--policy", "policy.toml"]);
    let tree = &v["tree"];
    assert_eq!(tree["digest"], v1.as_str());
    assert_eq!(tree["revoked"], false);
    let n2 = &tree["children"][0];
    assert_eq!(
        (n2["digest"].as_str(), n2["step"].as_str()),
        (Some(v2.as_str()), Some("finetune"))
    );
    let n3 = &n2["children"][0];
    assert_eq!(n3["digest"], v3.as_str());
    assert_eq!(n3["revoked"], true, "{n3}");
    assert_eq!(n3["revocations"][0]["reason"], "jailbreak found");
    assert_eq!(n3["revocations"][0]["proven"], true, "{n3}");
    let deployed: Vec<&str> = n3["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["deployment"], true);
            assert_eq!(n["step"], "deploy");
            assert!(
                n["log_index"].is_u64() && n["signers"][0].is_string(),
                "{n}"
            );
            n["digest"].as_str().unwrap()
        })
        .collect();
    assert_eq!(deployed.len(), 2);
    assert!(deployed.contains(&deploy.as_str()) && deployed.contains(&canary.as_str()));
    assert_eq!(v["deployments"].as_array().unwrap().len(), 2, "{v}");

    // The newest earlier version that nothing revoked: v2, then v1 once v2 goes too.
    let v = c.json(&["impact", "v3/model.bin", "--log", &url, "--last-good"]);
    assert_eq!(v["last_good"]["digest"], v2.as_str(), "{v}");
    assert_eq!(v["tree"]["revoked"], true);
    assert_eq!(
        v["tree"]["revocations"][0]["proven"], false,
        "no --policy, no log key"
    );

    // A revoker the policy names counts with --policy, and only with it.
    c.revoke(&canary, "security.key", "canary leaked", "rc.json");
    let revoked_canary = |args: &[&str]| {
        let mut all = vec!["impact", &v3, "--log", &url];
        all.extend(args);
        let v = c.json(&all);
        let canary_node = v["tree"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["digest"] == canary.as_str())
            .cloned()
            .unwrap();
        canary_node["revoked"].as_bool().unwrap()
    };
    assert!(!revoked_canary(&[]));
    assert!(revoked_canary(&["--policy", "security-policy.toml"]));
    c.revoke("v2/model.bin", "trainer.key", "poisoned shard", "r2.json");
    let text = c.ok(&["impact", "v3/model.bin", "--log", &url, "--last-good"]);
    assert!(text.contains(&format!("last good: {v1}")), "{text}");
    assert!(text.contains(&format!("skipped {v2}")), "{text}");
    assert!(text.contains("DEPLOYMENT"), "{text}");

    // Revoking the dataset taints every version.
    c.revoke("data", "curator.key", "license withdrawn", "rd.json");
    let v = c.json(&["impact", "v3/model.bin", "--log", &url, "--last-good"]);
    assert!(v["last_good"]["digest"].is_null(), "{v}");
    assert!(
        v["last_good"]["skipped"]
            .to_string()
            .contains("derived from"),
        "{v}"
    );
}

#[test]
fn bad_revocations_append_nothing() {
    let c = incident();
    let url = c.server.url.clone();
    let before = c.tree_size();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "revoke",
                "sha256:xyz",
                "--reason",
                "r",
                "--key",
                "trainer.key",
            ],
            "neither a digest",
        ),
        (
            &[
                "revoke",
                "v1/model.bin",
                "--reason",
                "r",
                "--key",
                "missing.key",
            ],
            "missing.key",
        ),
        (
            &[
                "revoke",
                "v1/model.bin",
                "--reason",
                " ",
                "--key",
                "trainer.key",
            ],
            "reason is empty",
        ),
        (
            &[
                "revoke",
                "v1/model.bin",
                "--reason",
                "r",
                "--key",
                "trainer.key",
                "--superseded-by",
                "v2",
            ],
            "not a digest",
        ),
    ];
    for (args, want) in cases {
        let mut args = args.to_vec();
        args.extend(["--log", &url]);
        let err = c.fails(&args);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let err = c.fails(&["impact", "sha256:12", "--log", &url]);
    assert!(err.contains("neither a digest"), "{err}");
    let unknown = format!("sha256:{}", "ab".repeat(32));
    let err = c.fails(&["impact", &unknown, "--log", &url]);
    assert!(err.contains("no attestation about"), "{err}");
    assert_eq!(c.tree_size(), before, "nothing appended");
    assert!(!c.dir.path().join("revocation.bundle.json").exists());
}

#[test]
fn the_monitor_alerts_on_a_revocation_of_a_watched_artifact() {
    let c = incident();
    let v2 = c.digests("deploy.yaml")[2].clone();
    let config = format!("[[watch_subject]]\ndigest = \"{v2}\"\nallowed_signers = []\n");
    write(c.dir.path(), "monitor.toml", config.as_bytes());
    let monitor = || {
        let out = Command::new(binary("pedigree"))
            .current_dir(c.dir.path())
            .args(["--json", "monitor", "--once", "--log", &c.server.url])
            .args(["--log-key", &c.server.vkey, "--config", "monitor.toml"])
            .args(["--state", "state.json"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|a| a["rule"] == "revocation")
            .collect::<Vec<_>>()
    };
    assert!(monitor().is_empty());
    let r = c.revoke("v2/model.bin", "trainer.key", "poisoned", "r.json");
    let alerts = monitor();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["log_index"], r["log_index"]);
    assert_eq!(alerts[0]["watched"], v2.as_str());
}
