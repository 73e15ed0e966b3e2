//! Malformed and hostile requests: each gets its documented status and error code, none
//! changes the tree, and the server answers after each (spec/api.md section 5).

mod hostile;

use base64::Engine as _;
use pedigree_core::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use pedigree_core::keys::{Algorithm, PrivateKey};
use pedigree_tests::{get_json, post, request, sha256_hex, step_statement, submission, Server};
use serde_json::{json, Value};

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(name: &'static str, body: Vec<u8>, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        path: "/api/v1/entries".into(),
        content_type: "application/json",
        body,
        status,
        code,
    }
}

fn get_case(name: &'static str, path: &str, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: "GET",
        path: path.into(),
        content_type: "",
        body: Vec::new(),
        status,
        code,
    }
}

fn envelope_json(payload_type: &str, payload: &[u8], key: &PrivateKey) -> Value {
    serde_json::from_slice(&Envelope::sign(payload_type, payload.to_vec(), &[key]).to_json())
        .unwrap()
}

fn body(envelope: Value, verifiers: Vec<String>) -> Vec<u8> {
    serde_json::to_vec(&json!({"envelope": envelope, "verifiers": verifiers})).unwrap()
}

#[test]
fn malformed_requests_get_their_documented_errors_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--max-body-bytes", "65536", "--max-subjects", "4"],
    );
    let key = PrivateKey::generate(Algorithm::Ed25519);
    let other = PrivateKey::generate(Algorithm::Ed25519);
    let pem = key.public_key().to_pem();
    let good = step_statement("https://pedigree.dev/ml/train/v1", &sha256_hex(b"m"), &[]);
    let good_bytes = serde_json::to_vec(&good).unwrap();
    let env = envelope_json(IN_TOTO_PAYLOAD_TYPE, &good_bytes, &key);
    let with_statement = |s: Value| {
        body(
            envelope_json(IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&s).unwrap(), &key),
            vec![pem.clone()],
        )
    };
    let mut tampered = env.clone();
    tampered["payload"] = json!(base64::engine::general_purpose::STANDARD.encode(
        serde_json::to_vec(&step_statement(
            "https://pedigree.dev/ml/train/v1",
            &sha256_hex(b"evil"),
            &[]
        ))
        .unwrap()
    ));
    let mut truncated_sig = env.clone();
    truncated_sig["signatures"][0]["sig"] = json!("AAAA");
    let mut no_sigs = env.clone();
    no_sigs["signatures"] = json!([]);
    let mut many_sigs = env.clone();
    many_sigs["signatures"] = json!(vec![env["signatures"][0].clone(); 40]);
    let mut bad_b64 = env.clone();
    bad_b64["payload"] = json!("!!!not base64!!!");
    let mut statement_no_subject = good.clone();
    statement_no_subject["subject"] = json!([]);
    let mut short_digest = good.clone();
    short_digest["subject"][0]["digest"]["sha256"] = json!("abc123");
    let mut upper_digest = good.clone();
    upper_digest["subject"][0]["digest"]["sha256"] = json!(sha256_hex(b"m").to_uppercase());
    let mut old_type = good.clone();
    old_type["_type"] = json!("https://in-toto.io/Statement/v0.1");
    let mut many_subjects = good.clone();
    many_subjects["subject"] = json!((0..5)
        .map(|i| json!({"digest": {"sha256": sha256_hex(&[i])}}))
        .collect::<Vec<_>>());
    let mut bad_material = good.clone();
    bad_material["predicate"]["buildDefinition"]["resolvedDependencies"] =
        json!([{"digest": {"sha256": "zz"}}]);
    let mut no_build_type = good.clone();
    no_build_type["predicate"]["buildDefinition"]
        .as_object_mut()
        .unwrap()
        .remove("buildType");
    let rsa_pem = "-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDIjoJW2L71eozU0PISlTxZIqUt\n96oCSBUBn2dFk4g9yN1sEzC2RUa6TKdpsCG5Hy6QVbqem79nyLDUfJUduI+Nq5p5\nOSXPz+0zOdpaC+gIfH1YTz7tw9QdaIlxRr3DBCKmuwWCgDyvEh9y1+176xm/sJoc\nbzxrH9j6bLW0Q66dPwIDAQAB\n-----END PUBLIC KEY-----\n";
    // The small-order Ed25519 point (0, 1): every signature "verifies" without strict checks.
    let weak_pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n-----END PUBLIC KEY-----\n";

    let cases = vec![
        case("not json", b"{nope".to_vec(), 400, "invalid_json"),
        case("empty body", Vec::new(), 400, "invalid_json"),
        case("json array", b"[]".to_vec(), 400, "invalid_request"),
        case(
            "missing verifiers",
            serde_json::to_vec(&json!({"envelope": env})).unwrap(),
            400,
            "invalid_request",
        ),
        case(
            "unknown field",
            serde_json::to_vec(&json!({"envelope": env, "verifiers": [pem], "x": 1})).unwrap(),
            400,
            "invalid_request",
        ),
        case(
            "duplicate field",
            format!("{{\"verifiers\":[],\"envelope\":{env},\"verifiers\":[]}}").into_bytes(),
            400,
            "invalid_request",
        ),
        case(
            "deep nesting",
            format!(
                "{{\"envelope\":{}{},\"verifiers\":[]}}",
                "[".repeat(5000),
                "]".repeat(5000)
            )
            .into_bytes(),
            400,
            "invalid_envelope",
        ),
        case(
            "huge number",
            format!("{{\"envelope\":{env},\"verifiers\":[{}]}}", "9".repeat(400)).into_bytes(),
            400,
            "invalid_json",
        ),
        case(
            "invalid utf-8",
            b"{\"envelope\":\"\xff\xfe\",\"verifiers\":[]}".to_vec(),
            400,
            "invalid_json",
        ),
        case(
            "envelope not an object",
            body(json!(42), vec![pem.clone()]),
            400,
            "invalid_envelope",
        ),
        case(
            "bad base64 payload",
            body(bad_b64, vec![pem.clone()]),
            400,
            "invalid_envelope",
        ),
        case(
            "verifier not pem",
            body(env.clone(), vec!["hello".into()]),
            400,
            "invalid_verifier",
        ),
        case(
            "rsa verifier",
            body(env.clone(), vec![rsa_pem.into()]),
            422,
            "unsupported_key_type",
        ),
        case(
            "small-order ed25519 key",
            body(env.clone(), vec![weak_pem.into()]),
            422,
            "weak_key",
        ),
        case(
            "wrong payload type",
            body(
                envelope_json("text/plain", &good_bytes, &key),
                vec![pem.clone()],
            ),
            415,
            "unsupported_payload_type",
        ),
        case(
            "payload not a statement",
            body(
                envelope_json(IN_TOTO_PAYLOAD_TYPE, b"[1,2]", &key),
                vec![pem.clone()],
            ),
            422,
            "invalid_statement",
        ),
        case(
            "statement v0.1",
            with_statement(old_type),
            422,
            "invalid_statement",
        ),
        case(
            "empty subjects",
            with_statement(statement_no_subject),
            422,
            "invalid_statement",
        ),
        case(
            "short digest",
            with_statement(short_digest),
            422,
            "invalid_statement",
        ),
        case(
            "uppercase digest",
            with_statement(upper_digest),
            422,
            "invalid_statement",
        ),
        case(
            "too many subjects",
            with_statement(many_subjects),
            422,
            "too_many_subjects",
        ),
        case(
            "bad material digest",
            with_statement(bad_material),
            422,
            "invalid_provenance",
        ),
        case(
            "slsa without buildType",
            with_statement(no_build_type),
            422,
            "invalid_provenance",
        ),
        case(
            "tampered payload",
            body(tampered, vec![pem.clone()]),
            422,
            "signature_invalid",
        ),
        case(
            "wrong key",
            body(env.clone(), vec![other.public_key().to_pem()]),
            422,
            "signature_invalid",
        ),
        case(
            "unused extra key",
            body(env.clone(), vec![pem.clone(), other.public_key().to_pem()]),
            422,
            "unused_verifier",
        ),
        case(
            "truncated signature",
            body(truncated_sig, vec![pem.clone()]),
            422,
            "signature_invalid",
        ),
        case(
            "zero signatures",
            body(no_sigs, vec![pem.clone()]),
            422,
            "no_signatures",
        ),
        case(
            "too many signatures",
            body(many_sigs, vec![pem.clone()]),
            422,
            "too_many_signatures",
        ),
        case(
            "too many verifiers",
            body(env.clone(), vec![pem.clone(); 40]),
            422,
            "too_many_verifiers",
        ),
        case(
            "no verifiers",
            body(env.clone(), vec![]),
            422,
            "no_verifiers",
        ),
        case("body too large", vec![b' '; 70_000], 413, "body_too_large"),
        Case {
            content_type: "text/plain",
            ..case(
                "wrong content type",
                submission(&good, &key),
                415,
                "unsupported_media_type",
            )
        },
        Case {
            method: "DELETE",
            ..case("wrong method", Vec::new(), 405, "method_not_allowed")
        },
        get_case(
            "entry index not a number",
            "/api/v1/entries/abc",
            400,
            "invalid_index",
        ),
        get_case(
            "entry index negative",
            "/api/v1/entries/-1",
            400,
            "invalid_index",
        ),
        get_case(
            "entry index overflow",
            "/api/v1/entries/18446744073709551616",
            400,
            "invalid_index",
        ),
        get_case(
            "entry past the tree",
            "/api/v1/entries/99",
            404,
            "not_found",
        ),
        get_case(
            "search without filter",
            "/api/v1/entries",
            400,
            "invalid_query",
        ),
        get_case(
            "search two filters",
            &format!(
                "/api/v1/entries?subject=sha256:{0}&material=sha256:{0}",
                sha256_hex(b"m")
            ),
            400,
            "invalid_query",
        ),
        get_case(
            "search bad digest",
            "/api/v1/entries?subject=sha256:xyz",
            400,
            "invalid_digest",
        ),
        get_case(
            "search bad key",
            "/api/v1/entries?key=abc",
            400,
            "invalid_key",
        ),
        get_case(
            "search bad cursor",
            &format!(
                "/api/v1/entries?subject=sha256:{}&cursor=-5",
                sha256_hex(b"m")
            ),
            400,
            "invalid_query",
        ),
        get_case(
            "inclusion without index",
            "/api/v1/proof/inclusion",
            400,
            "invalid_query",
        ),
        get_case(
            "inclusion past the tree",
            "/api/v1/proof/inclusion?index=0&tree_size=5",
            400,
            "invalid_proof_request",
        ),
        get_case(
            "inclusion index too large",
            "/api/v1/proof/inclusion?index=7&tree_size=0",
            400,
            "invalid_proof_request",
        ),
        get_case(
            "consistency from zero",
            "/api/v1/proof/consistency?from=0&to=0",
            400,
            "invalid_proof_request",
        ),
        get_case(
            "consistency overflowing size",
            "/api/v1/proof/consistency?from=1&to=99999999999999999999",
            400,
            "invalid_query",
        ),
        get_case(
            "tile path traversal",
            "/tile/0/000%2F..%2F..%2Fetc%2Fpasswd",
            400,
            "invalid_tile_path",
        ),
        get_case(
            "tile non-canonical",
            "/tile/0/0001",
            400,
            "invalid_tile_path",
        ),
        get_case("tile beyond the tree", "/tile/0/000.p/9", 404, "not_found"),
        get_case(
            "lineage bad digest",
            "/api/v1/lineage/sha256:12",
            400,
            "invalid_digest",
        ),
        get_case(
            "lineage bad direction",
            &format!(
                "/api/v1/lineage/sha256:{}?direction=sideways",
                sha256_hex(b"m")
            ),
            400,
            "invalid_query",
        ),
        get_case(
            "lineage depth zero",
            &format!("/api/v1/lineage/sha256:{}?depth=0", sha256_hex(b"m")),
            400,
            "invalid_query",
        ),
        get_case("unknown endpoint", "/api/v2/nothing", 404, "not_found"),
    ];
    let mut cases = cases;
    cases.extend(hostile::cases(&key, &env));
    assert!(cases.len() >= 90, "{} cases", cases.len());
    println!("{} malformed and hostile requests", cases.len());
    let size = |s: &Server| {
        get_json(&format!("{}/api/v1/log", s.url)).1["tree_size"]
            .as_u64()
            .unwrap()
    };
    for c in &cases {
        let url = format!("{}{}", server.url, c.path);
        let (status, answer) = match c.method {
            "POST" => post(&url, c.content_type, &c.body),
            m => request(m, &url),
        };
        assert_eq!(
            (status, answer["error"].as_str().unwrap_or("")),
            (c.status, c.code),
            "{}: {answer}",
            c.name
        );
        assert!(
            !answer["message"].as_str().unwrap_or("").is_empty(),
            "{}: message",
            c.name
        );
        assert_eq!(size(&server), 0, "{}: changed the tree", c.name);
    }
    // The server still works after all of that.
    let (status, a) = post(
        &format!("{}/api/v1/entries", server.url),
        "application/json",
        &submission(&good, &key),
    );
    assert_eq!(status, 201, "{a}");
}
