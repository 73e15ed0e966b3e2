//! Test data shared by the server's integration tests: a chain of training statements,
//! entry `n` about model `n` and built from model `n - 1`.

use sha2::Digest as _;

/// Hex SHA-256 of `n`: the digest of model `n`.
pub fn digest(n: u64) -> String {
    hex::encode(sha2::Sha256::digest(n.to_be_bytes()))
}

/// The in-toto statement of entry `n`: a SLSA train step with subject model `n` and, if
/// given, `material` as its one resolved dependency.
pub fn train_statement(n: u64, material: Option<u64>) -> Vec<u8> {
    let deps: Vec<_> = material
        .map(|m| serde_json::json!({"name": "input", "digest": {"sha256": digest(m)}}))
        .into_iter()
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("model-{n}"), "digest": {"sha256": digest(n)}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://pedigree.dev/ml/train/v1",
                "externalParameters": {"n": n},
                "resolvedDependencies": deps,
            },
            "runDetails": {"builder": {"id": "https://ci.example/builder"}}
        }
    }))
    .expect("statement JSON")
}
