//! The log server's HTTP API end to end: concurrent submissions with proofs, checkpoint
//! consistency, tiles, search, lineage and restart, against the real binary.

use base64::Engine as _;
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::keys::{Algorithm, PrivateKey};
use pedigree_core::merkle;
use pedigree_core::tiles;
use pedigree_tests::{get, get_json, post, sha256_hex, step_statement, submission, Server};
use serde_json::Value;
use std::sync::Arc;

const ENTRIES: &str = "/api/v1/entries";

fn hexes(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
        .collect()
}

/// Checks a submission answer with core's verifier: checkpoint signed by the log, proof
/// of the returned leaf hash against it.
fn verify_answer(verifier: &LogVerifier, answer: &Value) -> SignedCheckpoint {
    let cp = verifier
        .verify(answer["checkpoint"].as_str().unwrap().as_bytes())
        .expect("checkpoint signed by the log");
    let proof = &answer["inclusion_proof"];
    assert_eq!(proof["tree_size"].as_u64().unwrap(), cp.tree_size);
    assert_eq!(
        proof["root_hash"].as_str().unwrap(),
        hex::encode(cp.root_hash.0)
    );
    let index = answer["log_index"].as_u64().unwrap();
    let leaf = hex::decode(answer["leaf_hash"].as_str().unwrap()).unwrap();
    merkle::verify_inclusion(
        index,
        cp.tree_size,
        &leaf,
        &hexes(&proof["hashes"]),
        &cp.root_hash.0,
    )
    .expect("inclusion proof verifies");
    cp
}

fn digest(label: &str) -> String {
    sha256_hex(label.as_bytes())
}

#[test]
fn concurrent_submissions_get_valid_proofs_and_the_log_stays_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--batch-wait-ms", "20"]);
    let verifier = LogVerifier::from_vkey(&server.vkey).unwrap();
    let key = Arc::new(PrivateKey::generate(Algorithm::Ed25519));
    let url = format!("{}{ENTRIES}", server.url);

    // 240 clients in flight at once, each with its own statement.
    let handles: Vec<_> = (0..240)
        .map(|i| {
            let (url, key) = (url.clone(), Arc::clone(&key));
            std::thread::spawn(move || {
                let s = step_statement(
                    "https://pedigree.dev/ml/train/v1",
                    &digest(&format!("m{i}")),
                    &[&digest("data")],
                );
                post(&url, "application/json", &submission(&s, &key))
            })
        })
        .collect();
    let mut checkpoints = Vec::new();
    let mut indices = Vec::new();
    for h in handles {
        let (status, answer) = h.join().unwrap();
        assert_eq!(status, 201, "{answer}");
        checkpoints.push(verify_answer(&verifier, &answer));
        indices.push(answer["log_index"].as_u64().unwrap());
    }
    indices.sort_unstable();
    assert_eq!(
        indices,
        (0..240).collect::<Vec<_>>(),
        "every index handed out once"
    );
    assert!(
        checkpoints
            .iter()
            .map(|c| c.tree_size)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1
            || checkpoints[0].tree_size == 240
    );

    // Every checkpoint handed out is consistent with the latest one.
    let (_, log) = get_json(&format!("{}/api/v1/log", server.url));
    let latest = verifier
        .verify(log["checkpoint"].as_str().unwrap().as_bytes())
        .unwrap();
    assert_eq!(latest.tree_size, 240);
    for cp in &checkpoints {
        let (s, p) = get_json(&format!(
            "{}/api/v1/proof/consistency?from={}&to=240",
            server.url, cp.tree_size
        ));
        assert_eq!(s, 200, "{p}");
        merkle::verify_consistency(
            cp.tree_size,
            240,
            &hexes(&p["hashes"]),
            &cp.root_hash.0,
            &latest.root_hash.0,
        )
        .expect("consistent");
    }

    // The tiles served rebuild the same root, and the entries hash to the tile's leaves.
    let mut leaves = Vec::new();
    let mut bundles = Vec::new();
    for t in ["tile/0/000.p/240", "tile/entries/000.p/240"] {
        let (s, body) = get(&format!("{}/{t}", server.url));
        assert_eq!(s, 200);
        bundles.push(body);
    }
    for chunk in bundles[0].chunks(32) {
        leaves.push(merkle::hash_from_slice("tile hash", chunk).unwrap());
    }
    let entries = tiles::parse_bundle(&bundles[1]).unwrap();
    for (e, h) in entries.iter().zip(&leaves) {
        assert_eq!(merkle::leaf_hash(e), *h);
    }
    assert_eq!(root_of(&leaves), latest.root_hash);
    let (s, cp_text) = get(&format!("{}/checkpoint", server.url));
    assert_eq!(s, 200);
    assert_eq!(verifier.verify(&cp_text).unwrap(), latest);
    // A tile the tree has not reached is 404; the full tile 0 does not exist yet.
    assert_eq!(get(&format!("{}/tile/0/000", server.url)).0, 404);
}

fn root_of(leaves: &[merkle::Hash]) -> merkle::Hash {
    match leaves.len() {
        0 => merkle::EMPTY_TREE_HASH,
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            merkle::node_hash(root_of(&leaves[..k]), root_of(&leaves[k..]))
        }
    }
}

#[test]
fn resubmission_is_idempotent_and_search_lineage_and_restart_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let verifier = LogVerifier::from_vkey(&server.vkey).unwrap();
    let url = format!("{}{ENTRIES}", server.url);
    let ed = PrivateKey::generate(Algorithm::Ed25519);
    let ec = PrivateKey::generate(Algorithm::EcdsaP256Sha256);

    // dataset -> train -> quantize, with an unrelated entry in between.
    let (data, model, quant) = (digest("dataset"), digest("model"), digest("model-q4"));
    let steps = [
        step_statement("https://pedigree.dev/ml/dataset/v1", &data, &[]),
        step_statement("https://pedigree.dev/ml/train/v1", &model, &[&data]),
        step_statement(
            "https://pedigree.dev/ml/train/v1",
            &digest("other"),
            &[&digest("x")],
        ),
        step_statement("https://pedigree.dev/ml/quantize/v1", &quant, &[&model]),
    ];
    let mut answers = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let key = if i == 1 { &ec } else { &ed };
        let (status, a) = post(&url, "application/json", &submission(s, key));
        assert_eq!(status, 201, "{a}");
        verify_answer(&verifier, &a);
        answers.push(a);
    }
    // Same envelope again: 200, same index, nothing appended.
    let evaluation = step_statement(
        "https://pedigree.dev/ml/evaluate/v1",
        &digest("eval-report"),
        &[&quant],
    );
    let body = submission(&evaluation, &ed);
    let (s1, first) = post(&url, "application/json", &body);
    let (s2, again) = post(&url, "application/json", &body);
    assert_eq!((s1, s2), (201, 200), "{first} {again}");
    assert_eq!(first["log_index"], again["log_index"]);
    verify_answer(&verifier, &again);
    let (_, log) = get_json(&format!("{}/api/v1/log", server.url));
    assert_eq!(log["tree_size"], 5);

    // Entry by index carries envelope, keys and a proof; the record rebuilds from them.
    let (s, e) = get_json(&format!("{}/api/v1/entries/1", server.url));
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["record"]["subjects"][0], format!("sha256:{model}"));
    assert_eq!(
        e["verifiers"][0].as_str().unwrap(),
        ec.public_key().to_pem()
    );
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(e["leaf"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        hex::encode(merkle::leaf_hash(&leaf).0),
        e["leaf_hash"].as_str().unwrap()
    );
    let env =
        pedigree_core::dsse::Envelope::from_json(e["envelope"].to_string().as_bytes()).unwrap();
    let rebuilt = pedigree_core::entry::admit(
        &env,
        &[ec.public_key()],
        &pedigree_core::entry::Limits::default(),
        e["record"]["integrated_time_ms"].as_u64().unwrap(),
    )
    .unwrap();
    assert_eq!(rebuilt.record.encode(), leaf);

    // Search by subject, key, material and predicate type, with pagination.
    let q = |query: &str| get_json(&format!("{}{ENTRIES}?{query}", server.url));
    let idx = |v: &Value| -> Vec<u64> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["log_index"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(idx(&q(&format!("subject=sha256:{model}")).1), vec![1]);
    assert_eq!(idx(&q(&format!("material=sha256:{model}")).1), vec![3]);
    let ed_fp = ed.public_key().fingerprint().to_string();
    let (_, page1) = q(&format!("key={ed_fp}&limit=2"));
    assert_eq!(idx(&page1), vec![0, 2]);
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = q(&format!("key={ed_fp}&limit=2&cursor={cursor}"));
    assert_eq!(idx(&page2), vec![3, 4]);
    assert_eq!(
        idx(&q("predicate_type=https://slsa.dev/provenance/v1&limit=10").1),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        idx(&q(&format!("subject=sha256:{}", digest("nothing"))).1),
        Vec::<u64>::new()
    );

    // Lineage upstream of the quantized model: quantize <- train <- dataset.
    let (s, g) = get_json(&format!(
        "{}/api/v1/lineage/sha256:{quant}?direction=upstream",
        server.url
    ));
    assert_eq!(s, 200, "{g}");
    let edges: Vec<(String, String, Vec<u64>)> = g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
                e["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert!(edges.contains(&(
        format!("sha256:{model}"),
        format!("sha256:{quant}"),
        vec![3]
    )));
    assert!(edges.contains(&(format!("sha256:{data}"), format!("sha256:{model}"), vec![1])));
    assert_eq!(edges.len(), 2, "{g}");
    let steps_seen: Vec<&str> = g["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["step"].as_str())
        .collect();
    assert!(
        steps_seen.contains(&"quantize")
            && steps_seen.contains(&"train")
            && steps_seen.contains(&"dataset")
    );
    let (_, down) = get_json(&format!(
        "{}/api/v1/lineage/sha256:{data}?direction=downstream",
        server.url
    ));
    assert_eq!(down["nodes"].as_array().unwrap().len(), 4, "{down}");
    let (_, depth1) = get_json(&format!(
        "{}/api/v1/lineage/sha256:{data}?direction=downstream&depth=1",
        server.url
    ));
    assert_eq!(depth1["nodes"].as_array().unwrap().len(), 2, "{depth1}");

    // Metrics and health.
    let (s, m) = get(&format!("{}/metrics", server.url));
    assert_eq!(s, 200);
    let m = String::from_utf8(m).unwrap();
    assert!(m.contains("pedigree_tree_size 5"), "{m}");
    assert!(
        m.contains("pedigree_http_responses_total{status=\"201\"} 5"),
        "{m}"
    );

    // Restart keeps everything: same checkpoint, same entries, same search answers.
    let before = log["checkpoint"].as_str().unwrap().to_string();
    server.kill();
    let server = Server::start(dir.path(), &[]);
    let (_, log) = get_json(&format!("{}/api/v1/log", server.url));
    assert_eq!(log["checkpoint"].as_str().unwrap(), before);
    let q = |query: &str| get_json(&format!("{}{ENTRIES}?{query}", server.url));
    assert_eq!(idx(&q(&format!("subject=sha256:{model}")).1), vec![1]);
    let (s, again) = post(
        &format!("{}{ENTRIES}", server.url),
        "application/json",
        &body,
    );
    assert_eq!(s, 200);
    assert_eq!(again["log_index"], first["log_index"]);
}

#[test]
fn start_refuses_a_different_origin_for_an_existing_log() {
    let dir = tempfile::tempdir().unwrap();
    Server::start(dir.path(), &[]).kill();
    let err = Server::try_start(dir.path(), &["--origin", "other.example/log"])
        .err()
        .expect("must refuse");
    assert!(
        err.contains("does not match the stored log's origin"),
        "{err}"
    );
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    // Two submissions fit; a batch stays open for 3 s, so the rest find the queue full.
    let server = Server::start(
        dir.path(),
        &["--queue-size", "2", "--batch-wait-ms", "3000"],
    );
    let key = Arc::new(PrivateKey::generate(Algorithm::Ed25519));
    let url = format!("{}{ENTRIES}", server.url);
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let (url, key) = (url.clone(), Arc::clone(&key));
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(if i < 2 {
                    0
                } else {
                    500
                }));
                let s = step_statement(
                    "https://pedigree.dev/ml/train/v1",
                    &digest(&format!("q{i}")),
                    &[],
                );
                pedigree_tests::post_full(&url, "application/json", &submission(&s, &key))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let created = results.iter().filter(|r| r.0 == 201).count();
    let refused: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(created, 2, "{results:?}");
    assert_eq!(refused.len(), 4, "{results:?}");
    for r in refused {
        assert_eq!(r.1.as_deref(), Some("1"), "Retry-After");
        assert_eq!(r.2["error"], "overloaded");
    }
    // Once the batch is committed the queue has room again.
    let s = step_statement("https://pedigree.dev/ml/train/v1", &digest("after"), &[]);
    assert_eq!(post(&url, "application/json", &submission(&s, &key)).0, 201);
}
