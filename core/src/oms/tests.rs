//! OMS tests: the reference tool's fixtures and the spec's test vectors
//! (`testdata/oms`, see its README), and the parsing and checking rules.

use std::path::Path;

use serde_json::{json, Value};
use sha2::Digest as _;

use super::*;
use crate::bundle::{Bundle, SigningMethod};
use crate::keys::PublicKey;

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

/// Reads a reference bundle, checks its signature, and parses its statement.
fn reference_statement(name: &str) -> OmsStatement {
    let bundle = Bundle::from_json(&testdata(&format!("reference-1.1.1/{name}"))).unwrap();
    bundle.verify_with_key(&reference_key()).unwrap();
    OmsStatement::from_envelope(&bundle.envelope).unwrap()
}

#[test]
fn reference_bundles_verify_and_their_subject_is_the_root_digest() {
    let cases = [
        (
            "tiny-files.sig",
            Method::Files,
            HashAlgorithm::Sha256,
            "218df2106f1934d3dc2e4106d999052084559277edfd81b1a843de5b870cc10e",
            3,
        ),
        (
            "tiny-shards300000.sig",
            Method::Shards {
                shard_size_bytes: 300_000,
            },
            HashAlgorithm::Sha256,
            "ec0ad2c7b3f331c370d6b506f303758ea8c4775b3d4f2b53e9cf71cf31678d7d",
            6,
        ),
        (
            "tiny-blake2.sig",
            Method::Files,
            HashAlgorithm::Blake2b,
            "8c33476701f61724f6d06476b2d25cdff3275670f414fc3fe8a9a81aeacb42d7",
            3,
        ),
    ];
    for (file, method, hash, root, count) in cases {
        let statement = reference_statement(file);
        let manifest = &statement.manifest;
        assert_eq!(statement.model_name, "tiny-model", "{file}");
        assert_eq!(manifest.serialization().method, method, "{file}");
        assert_eq!(manifest.serialization().hash_type, hash, "{file}");
        assert!(!manifest.serialization().allow_symlinks);
        let mut ignored = manifest.serialization().ignore_paths.clone();
        ignored.sort();
        assert_eq!(ignored, DEFAULT_IGNORE_PATHS, "{file}");
        assert_eq!(manifest.resources().len(), count, "{file}");
        // The subject was checked against the resources when parsing; check the
        // computation independently too.
        let digests: Vec<u8> = manifest
            .resources()
            .iter()
            .flat_map(|r| r.digest.clone())
            .collect();
        let expected: [u8; 32] = sha2::Sha256::digest(&digests).into();
        assert_eq!(hex::encode(expected), root, "{file}");
        assert_eq!(
            statement.subject_digest().to_string(),
            format!("sha256:{root}")
        );
    }
}

#[test]
fn reference_digests_match_hashes_of_the_tiny_model() {
    let config = b"hello";
    let weights: Vec<u8> = (0..4096).flat_map(|_| 0..=255u8).collect();
    let statement = reference_statement("tiny-files.sig");
    let digest_of = |name: &str| {
        statement
            .manifest
            .resources()
            .iter()
            .find(|r| r.name.to_string() == name)
            .unwrap()
            .digest
            .clone()
    };
    assert_eq!(
        digest_of("config.json"),
        HashAlgorithm::Sha256.digest(config)
    );
    assert_eq!(
        digest_of("weights.bin"),
        HashAlgorithm::Sha256.digest(&weights)
    );

    let shards = reference_statement("tiny-shards300000.sig");
    let last = shards.manifest.resources().last().unwrap();
    assert_eq!(last.name.to_string(), "weights.bin:900000:1048576");
    assert_eq!(
        last.digest,
        HashAlgorithm::Sha256.digest(&weights[900_000..])
    );

    let blake = reference_statement("tiny-blake2.sig");
    assert_eq!(
        blake.manifest.resources()[0].digest,
        HashAlgorithm::Blake2b.digest(config)
    );
}

#[test]
fn rebuilding_a_reference_manifest_gives_the_same_root_digest() {
    for file in ["tiny-files.sig", "tiny-shards300000.sig", "tiny-blake2.sig"] {
        let statement = reference_statement(file);
        let mut resources = statement.manifest.resources().to_vec();
        resources.reverse();
        let rebuilt = Manifest::new(statement.manifest.serialization().clone(), resources).unwrap();
        assert_eq!(
            rebuilt.root_digest(),
            statement.manifest.root_digest(),
            "{file}"
        );
        let again = OmsStatement {
            model_name: statement.model_name.clone(),
            manifest: rebuilt,
        };
        let reparsed = OmsStatement::from_payload(&again.to_payload()).unwrap();
        assert_eq!(reparsed, again, "{file}");
    }
}

#[test]
fn written_payload_follows_the_spec_schema() {
    let statement = reference_statement("tiny-shards300000.sig");
    let payload: Value = serde_json::from_slice(&statement.to_payload()).unwrap();
    assert_eq!(payload["predicateType"], PREDICATE_TYPE);
    assert_eq!(
        payload["predicate"]["serialization"]["shard_size"],
        json!(300_000)
    );
    assert!(payload["predicate"]["serialization"]["shard_size"].is_u64());
    for resource in payload["predicate"]["resources"].as_array().unwrap() {
        assert_eq!(resource["algorithm"], "sha256");
    }
}

#[test]
fn spec_vectors_valid_parse_for_all_three_methods() {
    let cases = [
        ("key.bundle.json", "key"),
        ("certificate.bundle.json", "certificate"),
        ("sigstore.bundle.json", "sigstore"),
    ];
    for (file, method) in cases {
        let bundle = Bundle::from_json(&testdata(&format!("spec-vectors/valid/{file}"))).unwrap();
        assert_eq!(bundle.method.name(), method, "{file}");
        let statement = OmsStatement::from_envelope(&bundle.envelope).unwrap();
        assert_eq!(statement.manifest.resources().len(), 2, "{file}");
        if !matches!(bundle.method, SigningMethod::Key { .. }) {
            let err = bundle.verify_with_key(&reference_key()).unwrap_err();
            assert!(err.to_string().contains("cannot verify"), "{err}");
        }
    }
}

#[test]
fn spec_vectors_invalid_are_rejected() {
    for file in [
        "empty.bundle.json",
        "missing-envelope.bundle.json",
        "missing-tlog-entries.bundle.json",
        "missing-verification-material.bundle.json",
    ] {
        assert!(
            Bundle::from_json(&testdata(&format!("spec-vectors/invalid/{file}"))).is_err(),
            "{file}"
        );
    }
    let bundle = Bundle::from_json(&testdata(
        "spec-vectors/invalid-payload/wrong-predicate.bundle.json",
    ))
    .unwrap();
    assert!(matches!(
        OmsStatement::from_envelope(&bundle.envelope),
        Err(OmsError::PredicateType { .. })
    ));
}

const D1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// A statement over `serialization` and `resources`, with the right subject digest.
fn payload(serialization: Value, resources: Value) -> Vec<u8> {
    let digests: Vec<u8> = resources
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| hex::decode(r["digest"].as_str().unwrap_or_default()).unwrap_or_default())
        .collect();
    let root = root_digest([digests.as_slice()]);
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": hex::encode(root)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"serialization": serialization, "resources": resources},
    }))
    .unwrap()
}

fn files_sha256() -> Value {
    json!({"method": "files", "hash_type": "sha256", "allow_symlinks": false})
}

fn shards_sha256(size: Value) -> Value {
    json!({"method": "shards", "hash_type": "sha256", "allow_symlinks": false, "shard_size": size})
}

/// Parses a payload that must be refused, returning the error's text.
fn check_rejected(payload: &[u8], expected: &str) {
    match OmsStatement::from_payload(payload) {
        Ok(_) => panic!("accepted, expected {expected:?}"),
        Err(err) => {
            let text = format!("{err}");
            assert!(
                text.contains(expected),
                "{text:?} does not contain {expected:?}"
            );
        }
    }
}

#[test]
fn lenient_reading_of_reference_quirks() {
    let shards = json!([
        {"name": "w:0:10", "digest": D1, "algorithm": "sha256-sharded-10"},
        {"name": "w:10:15", "digest": D2, "algorithm": "sha256"},
    ]);
    for size in [json!(10), json!(10.0)] {
        let statement =
            OmsStatement::from_payload(&payload(shards_sha256(size), shards.clone())).unwrap();
        assert_eq!(
            statement.manifest.serialization().method,
            Method::Shards {
                shard_size_bytes: 10
            }
        );
    }
    // Missing ignore_paths, null keyid-like absences, unknown fields everywhere.
    let resources = json!([{"name": ".", "digest": D1, "algorithm": "sha256", "uri": "x"}]);
    let mut serialization = files_sha256();
    serialization["future"] = json!(1);
    OmsStatement::from_payload(&payload(serialization, resources)).unwrap();
}

#[test]
fn invalid_predicates_are_rejected() {
    let one = |name: &str, digest: &str, algorithm: &str| json!([{"name": name, "digest": digest, "algorithm": algorithm}]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (payload(files_sha256(), json!([])), "no resources"),
        (
            payload(files_sha256(), one("a", D1, "blake2b")),
            "does not match hash_type",
        ),
        (
            payload(files_sha256(), one("a", &D1[2..], "sha256")),
            "has 31 bytes",
        ),
        (
            payload(files_sha256(), one("a", &"AB".repeat(32), "sha256")),
            "not lowercase hex",
        ),
        (
            payload(files_sha256(), one("../a", D1, "sha256")),
            "is invalid",
        ),
        (
            payload(files_sha256(), one("/a", D1, "sha256")),
            "is invalid",
        ),
        (
            payload(
                files_sha256(),
                json!([{"name": "a", "digest": D1, "algorithm": "sha256"},
                       {"name": "a", "digest": D2, "algorithm": "sha256"}]),
            ),
            "listed twice",
        ),
        (
            payload(
                files_sha256(),
                json!([{"name": ".", "digest": D1, "algorithm": "sha256"},
                       {"name": "a", "digest": D2, "algorithm": "sha256"}]),
            ),
            "beside other files",
        ),
        (
            payload(shards_sha256(json!(10)), one("a", D1, "sha256")),
            "is invalid",
        ),
        (
            payload(shards_sha256(json!(0)), one("a:0:1", D1, "sha256")),
            "not a positive",
        ),
        (
            payload(shards_sha256(json!(10.5)), one("a:0:1", D1, "sha256")),
            "not a positive",
        ),
        (
            payload(shards_sha256(json!(-10)), one("a:0:1", D1, "sha256")),
            "not a positive",
        ),
        (
            payload(shards_sha256(json!("10")), one("a:0:1", D1, "sha256")),
            "expected number",
        ),
        (
            payload(shards_sha256(json!(10)), one("a:5:10", D1, "sha256")),
            "does not continue",
        ),
        (
            payload(shards_sha256(json!(10)), one("a:0:11", D1, "sha256")),
            "does not continue",
        ),
        (
            payload(
                shards_sha256(json!(10)),
                json!([{"name": "a:0:5", "digest": D1, "algorithm": "sha256"},
                       {"name": "a:5:10", "digest": D2, "algorithm": "sha256"}]),
            ),
            "does not continue",
        ),
        (
            payload(
                shards_sha256(json!(10)),
                one("a:0:5", D1, "sha256-sharded-20"),
            ),
            "does not match hash_type",
        ),
        (
            payload(
                json!({"method": "files", "hash_type": "sha256", "allow_symlinks": false, "shard_size": 5}),
                one("a", D1, "sha256"),
            ),
            "shard_size is set",
        ),
        (
            payload(
                json!({"method": "tensors", "hash_type": "sha256", "allow_symlinks": false}),
                one("a", D1, "sha256"),
            ),
            "not supported",
        ),
        (
            payload(
                json!({"method": "files", "hash_type": "md5", "allow_symlinks": false}),
                one("a", D1, "sha256"),
            ),
            "hash_type is not supported",
        ),
        (
            payload(
                json!({"method": "files", "hash_type": "sha256"}),
                one("a", D1, "sha256"),
            ),
            "allow_symlinks is missing",
        ),
        (
            payload(
                json!({"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": ["/etc"]}),
                one("a", D1, "sha256"),
            ),
            "ignore path",
        ),
    ];
    for (payload, expected) in cases {
        check_rejected(&payload, expected);
    }
}

#[test]
fn subject_must_be_one_named_root_digest() {
    let good = payload(
        files_sha256(),
        json!([{"name": "a", "digest": D1, "algorithm": "sha256"}]),
    );
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    check_rejected(
        &edit(&|v| v["subject"][0]["digest"]["sha256"] = json!(D2)),
        "does not match the resources' root digest",
    );
    check_rejected(
        &edit(&|v| {
            let s = v["subject"][0].clone();
            v["subject"] = json!([s.clone(), s]);
        }),
        "2 subjects",
    );
    check_rejected(&edit(&|v| v["subject"][0]["name"] = json!("")), "no name");
    check_rejected(
        &edit(&|v| v["subject"][0]["digest"] = json!({"sha512": "ab".repeat(64)})),
        "no sha256",
    );
    check_rejected(
        &edit(&|v| v["predicateType"] = json!("https://x/y")),
        "predicateType",
    );
    check_rejected(
        &edit(&|v| v["_type"] = json!("https://in-toto.io/Statement/v0.1")),
        "not an in-toto statement",
    );
    check_rejected(b"not json", "not an in-toto statement");
}

fn resource(name: &str, digest: u8) -> Resource {
    let sharded = name.matches(':').count() >= 2;
    Resource {
        name: ResourceName::parse(name, sharded).unwrap(),
        digest: vec![digest; 32],
    }
}

fn manifest(method: Method, names: &[&str]) -> Manifest {
    Manifest::new(
        Serialization {
            method,
            hash_type: HashAlgorithm::Sha256,
            allow_symlinks: false,
            ignore_paths: Vec::new(),
        },
        names.iter().map(|n| resource(n, 1)).collect(),
    )
    .unwrap()
}

fn local(path: &str, size_bytes: u64) -> LocalFile {
    LocalFile {
        path: path.into(),
        size_bytes,
    }
}

#[test]
fn manifest_new_sorts_in_reference_order() {
    let m = manifest(Method::Files, &["b", "a.b", "a/b"]);
    let names: Vec<_> = m.resources().iter().map(|r| r.name.to_string()).collect();
    assert_eq!(names, ["a/b", "a.b", "b"]);
}

#[test]
fn plan_finds_missing_unsigned_and_resized_files() {
    let files = manifest(Method::Files, &["a", "b"]);
    let units = files.plan(&[local("b", 3), local("a", 0)], false).unwrap();
    assert_eq!(units.len(), 2);
    assert_eq!(units[0].name, ResourceName::file("b"));
    assert_eq!(units[0].file, 0);

    let problems = files
        .plan(&[local("a", 1), local("c", 1)], false)
        .unwrap_err();
    let text: Vec<_> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(text, ["missing file b", "unsigned file c"]);
    let problems = files
        .plan(&[local("a", 1), local("c", 1)], true)
        .unwrap_err();
    assert_eq!(problems, [Mismatch::Missing { path: "b".into() }]);
    assert_eq!(
        files
            .plan(&[local("a", 1), local("b", 1), local("c", 1)], true)
            .unwrap()
            .len(),
        2
    );

    let shards = manifest(
        Method::Shards {
            shard_size_bytes: 10,
        },
        &["w:0:10", "w:10:12"],
    );
    assert_eq!(
        shards
            .plan(&[local("w", 12), local("empty", 0)], false)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        shards.plan(&[local("w", 13)], false).unwrap_err(),
        [Mismatch::Size {
            path: "w".into(),
            signed_bytes: 12,
            found_bytes: 13
        }]
    );
    assert!(files
        .plan(&[local("a", 0), local("b", 0), local("empty", 0)], false)
        .is_err());
}

#[test]
fn plan_maps_the_reference_single_file_name() {
    let single = manifest(Method::Files, &["."]);
    let units = single.plan(&[local("model.bin", 5)], false).unwrap();
    assert_eq!(
        units,
        [Unit {
            name: ResourceName::file("."),
            file: 0
        }]
    );
    assert!(single.plan(&[local("a", 5), local("b", 5)], false).is_err());
}

#[test]
fn compare_reports_digest_mismatches() {
    let m = manifest(Method::Files, &["a", "b"]);
    let ok = vec![
        (ResourceName::file("a"), vec![1; 32]),
        (ResourceName::file("b"), vec![1; 32]),
    ];
    assert!(m.compare(&ok).is_empty());
    let bad = vec![(ResourceName::file("a"), vec![2; 32])];
    let problems: Vec<_> = m.compare(&bad).iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            format!(
                "digest mismatch for a: signed {}, found {}",
                "01".repeat(32),
                "02".repeat(32)
            ),
            "missing file b".to_string(),
        ]
    );
}
