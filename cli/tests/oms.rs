//! `pedigree sign`, `verify` and `hash` against real files: the reference tool's
//! bundles, tampered models, round trips, and log receipts from a stand-in log.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;

use common::{generate_key, pedigree, pedigree_in, reference_dir, s, tiny_model, write};
use pedigree_core::bundle::Bundle;
use pedigree_core::checkpoint::LogSigner;
use pedigree_core::entry::{admit, Limits};
use pedigree_core::merkle;
use serde_json::{json, Value};

const REFERENCE_SIGNATURES: [&str; 3] =
    ["tiny-files.sig", "tiny-shards300000.sig", "tiny-blake2.sig"];

fn verify_reference(model: &Path, signature: &str, extra: &[&str]) -> common::Run {
    let dir = reference_dir();
    let signature = dir.join(signature);
    let key = dir.join("ec-p256.pub");
    let mut args = vec![
        "verify",
        s(model),
        "--signature",
        s(&signature),
        "--key",
        s(&key),
    ];
    args.extend_from_slice(extra);
    pedigree(&args)
}

#[test]
fn reference_bundles_verify_against_the_tiny_model() {
    let model = reference_dir().join("tiny-model");
    for signature in REFERENCE_SIGNATURES {
        let out = verify_reference(&model, signature, &[]).ok();
        assert!(out.starts_with("verified "), "{out}");
    }
}

#[test]
fn verify_json_reports_what_was_checked() {
    let model = reference_dir().join("tiny-model");
    let out = verify_reference(&model, "tiny-shards300000.sig", &["--json"]).ok();
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["verified"], true);
    assert_eq!(result["method"], "shards");
    assert_eq!(result["shard_size"], 300_000);
    assert_eq!(result["resources"], 6);
    assert_eq!(
        result["subject"]["digest"],
        "sha256:ec0ad2c7b3f331c370d6b506f303758ea8c4775b3d4f2b53e9cf71cf31678d7d"
    );
}

#[test]
fn changed_byte_fails_with_the_resource_named() {
    let (_tmp, model) = tiny_model();
    let weights = model.join("weights.bin");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[400_000] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    verify_reference(&model, "tiny-files.sig", &[])
        .fails_with("digest mismatch for weights.bin: signed fbbab289");
    verify_reference(&model, "tiny-blake2.sig", &[])
        .fails_with("digest mismatch for weights.bin: signed 988b9f48");
    verify_reference(&model, "tiny-shards300000.sig", &[])
        .fails_with("digest mismatch for weights.bin:300000:600000: signed 010943f5");
}

#[test]
fn missing_extra_and_resized_files_fail() {
    let (_tmp, model) = tiny_model();
    std::fs::remove_file(model.join("sub/tok.txt")).unwrap();
    for signature in REFERENCE_SIGNATURES {
        verify_reference(&model, signature, &[]).fails_with("missing file sub/tok.txt");
        verify_reference(&model, signature, &["--ignore-unsigned-files"])
            .fails_with("missing file sub/tok.txt");
    }

    let (_tmp, model) = tiny_model();
    write(&model, "extra.txt", b"not signed");
    for signature in REFERENCE_SIGNATURES {
        verify_reference(&model, signature, &[]).fails_with("unsigned file extra.txt");
        verify_reference(&model, signature, &["--ignore-unsigned-files"]).ok();
        verify_reference(&model, signature, &["--ignore-paths", "extra.txt"]).ok();
    }
    // Ignored by default, and so never unsigned.
    write(&model, ".git/HEAD", b"ref: refs/heads/main");
    write(&model, ".gitignore", b"*.tmp");
    verify_reference(&model, "tiny-files.sig", &["--ignore-paths", "extra.txt"]).ok();

    let (_tmp, model) = tiny_model();
    write(&model, "config.json", b"hello!");
    verify_reference(&model, "tiny-shards300000.sig", &[])
        .fails_with("file config.json has 6 bytes, signed 5");
    verify_reference(&model, "tiny-files.sig", &[]).fails_with("digest mismatch for config.json");
    // Missing and unsigned files are found before anything is hashed.
    write(&model, "a", b"1");
    write(&model, "b", b"2");
    verify_reference(&model, "tiny-files.sig", &[])
        .fails_with("unsigned file a (and 1 more problem)");
}

#[test]
fn wrong_key_or_broken_bundle_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, other) = generate_key(tmp.path(), "other", "p256");
    let dir = reference_dir();
    let model = dir.join("tiny-model");
    let signature = dir.join("tiny-files.sig");
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&signature),
        "--key",
        s(&other),
    ])
    .fails_with("signature does not verify with key");

    let bundle = std::fs::read_to_string(&signature).unwrap();
    let broken = tmp.path().join("broken.sig");
    std::fs::write(
        &broken,
        bundle.replace("application/vnd.dev.sigstore.bundle.v0.3+json", "x"),
    )
    .unwrap();
    let key = dir.join("ec-p256.pub");
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&broken),
        "--key",
        s(&key),
    ])
    .fails_with("mediaType");
    let sigstore = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/oms/spec-vectors/valid/sigstore.bundle.json");
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&sigstore),
        "--key",
        s(&key),
    ])
    .fails_with("sigstore signing method, which pedigree cannot verify");
}

/// A model with nested files, an empty file, a `:` in a name and a file spanning
/// several shards.
fn sample_model(root: &Path) {
    write(root, "config.json", br#"{"layers": 2}"#);
    write(
        root,
        "weights/part:1.bin",
        &(0..250_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    );
    write(root, "weights/empty.bin", b"");
    write(root, "tokenizer/vocab.txt", b"a\nb\nc\n");
}

#[test]
fn sign_and_verify_round_trip_with_every_key_method_and_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    sample_model(&model);
    for algorithm in ["ed25519", "p256"] {
        let (key, public) = generate_key(tmp.path(), algorithm, algorithm);
        for hash in ["sha256", "blake2b", "blake3"] {
            for shards in [None, Some("100000")] {
                let signature = tmp.path().join(format!(
                    "{algorithm}-{hash}-{}.sig",
                    shards.unwrap_or("files")
                ));
                let mut sign = vec![
                    "--json",
                    "sign",
                    s(&model),
                    "--key",
                    s(&key),
                    "--signature",
                    s(&signature),
                    "--hash",
                    hash,
                ];
                let mut hash_args = vec!["hash", s(&model), "--hash", hash];
                if let Some(size) = shards {
                    sign.extend(["--shard-size", size]);
                    hash_args.extend(["--shard-size", size]);
                }
                let signed: Value = serde_json::from_str(&pedigree(&sign).ok()).unwrap();
                // 250,000 bytes make 3 shards; the empty file has none.
                let expected_resources = if shards.is_some() { 5 } else { 4 };
                assert_eq!(signed["resources"], expected_resources, "{signed}");
                let digest = pedigree(&hash_args).ok();
                assert_eq!(
                    digest.trim(),
                    signed["subject"]["digest"],
                    "{algorithm} {hash} {shards:?}"
                );
                pedigree(&[
                    "verify",
                    s(&model),
                    "--signature",
                    s(&signature),
                    "--key",
                    s(&public),
                ])
                .ok();
            }
        }
    }
    let (_, stranger) = generate_key(tmp.path(), "stranger", "ed25519");
    let signature = tmp.path().join("ed25519-sha256-files.sig");
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&signature),
        "--key",
        s(&stranger),
    ])
    .fails_with("does not verify");
}

#[test]
fn signature_inside_the_model_is_left_out_and_default_name_is_model_sig() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    sample_model(&model);
    let (key, public) = generate_key(tmp.path(), "k", "p256");
    // Signed from inside the model with the default signature name.
    pedigree_in(&model, &["sign", ".", "--key", s(&key)]).ok();
    assert!(model.join("model.sig").is_file());
    let bundle = Bundle::from_json(&std::fs::read(model.join("model.sig")).unwrap()).unwrap();
    let payload: Value = serde_json::from_slice(&bundle.envelope.payload).unwrap();
    assert_eq!(payload["subject"][0]["name"], "model");
    let ignored = payload["predicate"]["serialization"]["ignore_paths"]
        .as_array()
        .unwrap();
    assert!(ignored.contains(&json!("model.sig")), "{ignored:?}");
    pedigree_in(
        &model,
        &[
            "verify",
            ".",
            "--signature",
            "model.sig",
            "--key",
            s(&public),
        ],
    )
    .ok();
    // Signing again over an existing signature gives the same manifest.
    pedigree_in(&model, &["sign", ".", "--key", s(&key)]).ok();
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&model.join("model.sig")),
        "--key",
        s(&public),
    ])
    .ok();
}

#[test]
fn single_file_models_sign_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("model.safetensors");
    std::fs::write(&file, vec![7u8; 1000]).unwrap();
    let (key, public) = generate_key(tmp.path(), "k", "ed25519");
    let signature = tmp.path().join("single.sig");
    for extra in [&[][..], &["--shard-size", "300"][..]] {
        let mut args = vec![
            "sign",
            s(&file),
            "--key",
            s(&key),
            "--signature",
            s(&signature),
        ];
        args.extend_from_slice(extra);
        pedigree(&args).ok();
        pedigree(&[
            "verify",
            s(&file),
            "--signature",
            s(&signature),
            "--key",
            s(&public),
        ])
        .ok();
    }
    std::fs::write(&file, vec![8u8; 1000]).unwrap();
    pedigree(&[
        "verify",
        s(&file),
        "--signature",
        s(&signature),
        "--key",
        s(&public),
    ])
    .fails_with("digest mismatch for .:0:300");
}

#[test]
fn empty_models_and_symlinks_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, _) = generate_key(tmp.path(), "k", "ed25519");
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    write(&model, ".git/HEAD", b"x");
    let signature = tmp.path().join("m.sig");
    pedigree(&[
        "sign",
        s(&model),
        "--key",
        s(&key),
        "--signature",
        s(&signature),
    ])
    .fails_with("has no files to sign");
    pedigree(&["hash", s(&model)]).fails_with("has no files to sign");

    #[cfg(unix)]
    {
        write(&model, "real.bin", b"weights");
        std::os::unix::fs::symlink("real.bin", model.join("alias.bin")).unwrap();
        pedigree(&[
            "sign",
            s(&model),
            "--key",
            s(&key),
            "--signature",
            s(&signature),
        ])
        .fails_with("symbolic link alias.bin is refused");
        let out = pedigree(&[
            "--json",
            "sign",
            s(&model),
            "--key",
            s(&key),
            "--signature",
            s(&signature),
            "--allow-symlinks",
        ])
        .ok();
        let signed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(signed["files"], 2);
    }
}

#[test]
fn hash_prints_the_reference_root_digests() {
    let model = reference_dir().join("tiny-model");
    let cases: [(&[&str], &str); 3] = [
        (
            &[],
            "218df2106f1934d3dc2e4106d999052084559277edfd81b1a843de5b870cc10e",
        ),
        (
            &["--shard-size", "300000"],
            "ec0ad2c7b3f331c370d6b506f303758ea8c4775b3d4f2b53e9cf71cf31678d7d",
        ),
        (
            &["--hash", "blake2b"],
            "8c33476701f61724f6d06476b2d25cdff3275670f414fc3fe8a9a81aeacb42d7",
        ),
    ];
    for (extra, digest) in cases {
        let mut args = vec!["hash", s(&model)];
        args.extend_from_slice(extra);
        assert_eq!(pedigree(&args).ok().trim(), format!("sha256:{digest}"));
    }
}

/// A stand-in for a Pedigree log: answers one `POST /api/v1/entries` with a receipt
/// for a one-entry log signed by `log`, as the real server does.
fn serve_one_submission(log: LogSigner) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut content_length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; content_length];
        reader.read_exact(&mut body).unwrap();
        let request: Value = serde_json::from_slice(&body).unwrap();
        let envelope =
            pedigree_core::dsse::Envelope::from_json(request["envelope"].to_string().as_bytes())
                .unwrap();
        let keys: Vec<_> = request["verifiers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pem| pedigree_core::keys::PublicKey::from_pem(pem.as_str().unwrap()).unwrap())
            .collect();
        let leaf = admit(&envelope, &keys, &Limits::default(), 1_700_000_000_000)
            .unwrap()
            .record
            .encode();
        let checkpoint = log.sign(1, merkle::leaf_hash(&leaf));
        let answer = json!({
            "log_index": 0,
            "leaf": base64_encode(&leaf),
            "inclusion_proof": {"log_index": 0, "tree_size": 1, "hashes": []},
            "checkpoint": checkpoint.note_text(),
        })
        .to_string();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
    });
    (url, handle)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn log_signer(seed: u8) -> LogSigner {
    LogSigner::new(
        "log.example",
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    )
    .unwrap()
}

#[test]
fn sign_with_log_embeds_a_receipt_that_verify_checks_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    sample_model(&model);
    let (key, public) = generate_key(tmp.path(), "k", "p256");
    let log = log_signer(9);
    let vkey = log.verifier_key();
    let (url, server) = serve_one_submission(log_signer(9));
    let signature = tmp.path().join("logged.sig");
    let out = pedigree(&[
        "sign",
        s(&model),
        "--key",
        s(&key),
        "--signature",
        s(&signature),
        "--log",
        &url,
        "--log-key",
        &vkey,
    ])
    .ok();
    server.join().unwrap();
    assert!(out.contains("logged at index 0"), "{out}");

    let bundle = Bundle::from_json(&std::fs::read(&signature).unwrap()).unwrap();
    assert_eq!(bundle.receipts.len(), 1);
    let out = pedigree(&[
        "--json",
        "verify",
        s(&model),
        "--signature",
        s(&signature),
        "--key",
        s(&public),
        "--log-key",
        &vkey,
    ])
    .ok();
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["log_receipts"][0]["origin"], "log.example");

    // The key in a file works too; another log's key does not.
    let vkey_file = tmp.path().join("log.vkey");
    std::fs::write(&vkey_file, format!("{vkey}\n")).unwrap();
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&signature),
        "--key",
        s(&public),
        "--log-key",
        s(&vkey_file),
    ])
    .ok();
    let other = log_signer(10).verifier_key();
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&signature),
        "--key",
        s(&public),
        "--log-key",
        &other,
    ])
    .fails_with("no log receipt verifies with the log key");
    // A receipt for another envelope does not count.
    write(&model, "README.md", b"changed");
    let resigned = tmp.path().join("resigned.sig");
    pedigree(&[
        "sign",
        s(&model),
        "--key",
        s(&key),
        "--signature",
        s(&resigned),
    ])
    .ok();
    let mut moved = Bundle::from_json(&std::fs::read(&resigned).unwrap()).unwrap();
    moved.receipts = bundle.receipts.clone();
    std::fs::write(&resigned, moved.to_json()).unwrap();
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&resigned),
        "--key",
        s(&public),
    ])
    .ok();
    pedigree(&[
        "verify",
        s(&model),
        "--signature",
        s(&resigned),
        "--key",
        s(&public),
        "--log-key",
        &vkey,
    ])
    .fails_with("no log receipt verifies with the log key: receipt is for envelope");

    let unlogged = reference_dir().join("tiny-files.sig");
    let reference_key = reference_dir().join("ec-p256.pub");
    pedigree(&[
        "verify",
        s(&reference_dir().join("tiny-model")),
        "--signature",
        s(&unlogged),
        "--key",
        s(&reference_key),
        "--log-key",
        &vkey,
    ])
    .fails_with("signature has no pedigree log receipt");
}

#[test]
fn sign_with_log_refuses_a_receipt_from_another_log() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    sample_model(&model);
    let (key, _) = generate_key(tmp.path(), "k", "ed25519");
    let (url, server) = serve_one_submission(log_signer(11));
    let signature = tmp.path().join("logged.sig");
    let expected = log_signer(12).verifier_key();
    pedigree(&[
        "sign",
        s(&model),
        "--key",
        s(&key),
        "--signature",
        s(&signature),
        "--log",
        &url,
        "--log-key",
        &expected,
    ])
    .fails_with("the log's receipt does not verify");
    server.join().unwrap();
    assert!(!signature.exists());
}
