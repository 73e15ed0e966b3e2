//! Hostile requests for the malformed-request table: invalid and small-order keys,
//! malformed signatures, thousands of signatures or verifiers under the body cap, and
//! negative or overflowing numbers in paths and queries.

use super::{body, case, envelope_json, get_case, Case};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use pedigree_core::dsse::IN_TOTO_PAYLOAD_TYPE;
use pedigree_core::keys::{Algorithm, PrivateKey};
use pedigree_tests::{sha256_hex, step_statement};
use serde_json::{json, Value};

/// A `PUBLIC KEY` PEM block around `der`.
fn pem(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// An Ed25519 SubjectPublicKeyInfo around `key` (normally 32 bytes).
fn ed25519_spki(key: &[u8]) -> Vec<u8> {
    let n = u8::try_from(key.len()).unwrap();
    let mut der = vec![0x30, 10 + n, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    der.extend_from_slice(&[0x03, n + 1, 0x00]);
    der.extend_from_slice(key);
    der
}

fn ed25519_point(hex_point: &str) -> String {
    pem(&ed25519_spki(&hex::decode(hex_point).unwrap()))
}

/// An EC SubjectPublicKeyInfo with the curve OID `curve` (DER, tag included) and an
/// uncompressed point `x || y`.
fn ec_spki(curve: &[u8], xy: &[u8]) -> Vec<u8> {
    let mut alg = vec![0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    alg.extend_from_slice(curve);
    let mut bits = vec![0x03, 0x42, 0x00, 0x04];
    bits.extend_from_slice(xy);
    let mut inner = vec![0x30, u8::try_from(alg.len()).unwrap()];
    inner.extend(alg);
    inner.extend(bits);
    let mut der = vec![0x30, u8::try_from(inner.len()).unwrap()];
    der.extend(inner);
    der
}

const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const SECP256K1_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];
const SECP256K1_G: &str = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
                           483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
/// The order of P-256's base point.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
/// The order of Ed25519's base point, little-endian.
const ED25519_L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `env` with its first signature replaced by `sig`.
fn with_sig(env: &Value, sig: &[u8]) -> Value {
    let mut e = env.clone();
    e["signatures"][0]["sig"] = json!(B64.encode(sig));
    e
}

/// A valid Ed25519 signature with `L` added to its scalar `S`: the same signature to a
/// lax verifier, malformed to `verify_strict`.
fn non_canonical_s(sig: &[u8]) -> Vec<u8> {
    let mut out = sig.to_vec();
    let mut carry = 0u16;
    for (b, l) in out[32..].iter_mut().zip(ED25519_L) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = sum as u8;
        carry = sum >> 8;
    }
    out
}

/// The request-level hostile cases, against a server with a 64 KiB body cap and the
/// default caps on signatures, verifiers and materials.
pub fn cases(key: &PrivateKey, env: &Value) -> Vec<Case> {
    let pem_ok = key.public_key().to_pem();
    let good = step_statement("https://pedigree.dev/ml/train/v1", &sha256_hex(b"m"), &[]);
    let good_bytes = serde_json::to_vec(&good).unwrap();
    let ec = PrivateKey::generate(Algorithm::EcdsaP256Sha256);
    let ec_pem = ec.public_key().to_pem();
    let ec_env = envelope_json(IN_TOTO_PAYLOAD_TYPE, &good_bytes, &ec);
    let ec_sig = B64
        .decode(ec_env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let ed_sig = B64
        .decode(env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let ec_case = |name, sig: Vec<u8>| {
        case(
            name,
            body(with_sig(&ec_env, &sig), vec![ec_pem.clone()]),
            422,
            "signature_invalid",
        )
    };
    let key_case =
        |name, pem: String, status, code| case(name, body(env.clone(), vec![pem]), status, code);

    let mut ber_long_form = vec![0x30, 0x81];
    ber_long_form.extend_from_slice(&ec_sig[1..]);
    let mut trailing = ec_sig.clone();
    trailing.push(0);
    let mut s_is_n = vec![0x30, 0x26, 0x02, 0x01, 0x01, 0x02, 0x21, 0x00];
    s_is_n.extend(hex::decode(P256_N).unwrap());

    let mut thousands_of_sigs = env.clone();
    thousands_of_sigs["signatures"] = json!(vec![json!({"sig": "AAAA"}); 3000]);
    let mut many_materials = good.clone();
    many_materials["predicate"]["buildDefinition"]["resolvedDependencies"] = json!((0..400u32)
        .map(|i| json!({"digest": {"sha256": sha256_hex(&i.to_be_bytes())}}))
        .collect::<Vec<_>>());
    let mut long_payload_type = envelope_json("x", &good_bytes, key);
    long_payload_type["payloadType"] = json!("a".repeat(50_000));
    let m = sha256_hex(b"m");

    vec![
        // Ed25519 keys: every small-order point, a non-canonical encoding, a point off
        // the curve, wrong lengths.
        key_case(
            "ed25519 key of order 2",
            ed25519_point("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            422,
            "weak_key",
        ),
        key_case(
            "ed25519 key of order 4",
            ed25519_point("0000000000000000000000000000000000000000000000000000000000000000"),
            422,
            "weak_key",
        ),
        key_case(
            "ed25519 key of order 8",
            ed25519_point("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
            422,
            "weak_key",
        ),
        key_case(
            "ed25519 key with y = p (non-canonical 0)",
            ed25519_point("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            422,
            "weak_key",
        ),
        key_case(
            "ed25519 key off the curve",
            ed25519_point("0200000000000000000000000000000000000000000000000000000000000000"),
            400,
            "invalid_verifier",
        ),
        key_case(
            "ed25519 key of 31 bytes",
            pem(&ed25519_spki(&[7; 31])),
            400,
            "invalid_verifier",
        ),
        key_case(
            "ed25519 key of 33 bytes",
            pem(&ed25519_spki(&[7; 33])),
            400,
            "invalid_verifier",
        ),
        key_case(
            "p-256 point off the curve",
            pem(&ec_spki(P256_OID, &[1; 64])),
            400,
            "invalid_verifier",
        ),
        key_case(
            "secp256k1 key",
            pem(&ec_spki(SECP256K1_OID, &hex::decode(SECP256K1_G).unwrap())),
            422,
            "unsupported_key_type",
        ),
        key_case(
            "private key as verifier",
            key.to_pkcs8_pem(),
            400,
            "invalid_verifier",
        ),
        key_case(
            "pem with a nul byte",
            pem_ok.replacen('M', "\0", 1),
            400,
            "invalid_verifier",
        ),
        // Signatures: DER garbage and near-misses of valid signatures.
        ec_case("ecdsa signature of der garbage", vec![0xff; 70]),
        ec_case("ecdsa signature empty", Vec::new()),
        ec_case(
            "ecdsa signature with r = 0",
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01],
        ),
        ec_case("ecdsa signature with s = n", s_is_n),
        ec_case("ecdsa signature with trailing byte", trailing),
        ec_case("ecdsa signature in ber long form", ber_long_form),
        ec_case("ecdsa signature of 64 zero bytes", vec![0; 64]),
        case(
            "ed25519 signature with non-canonical s",
            body(
                with_sig(env, &non_canonical_s(&ed_sig)),
                vec![pem_ok.clone()],
            ),
            422,
            "signature_invalid",
        ),
        // Hundreds or thousands of items in a body under the 64 KiB cap: refused by
        // count, before any key is parsed or signature checked.
        case(
            "3000 signatures",
            body(thousands_of_sigs, vec![pem_ok.clone()]),
            422,
            "too_many_signatures",
        ),
        case(
            "500 verifiers",
            body(env.clone(), vec![pem_ok.clone(); 500]),
            422,
            "too_many_verifiers",
        ),
        case(
            "10000 junk verifiers",
            body(env.clone(), vec!["x".into(); 10_000]),
            422,
            "too_many_verifiers",
        ),
        case(
            "400 materials",
            body(
                envelope_json(
                    IN_TOTO_PAYLOAD_TYPE,
                    &serde_json::to_vec(&many_materials).unwrap(),
                    key,
                ),
                vec![pem_ok.clone()],
            ),
            422,
            "too_many_materials",
        ),
        case(
            "payload type of 50000 bytes",
            body(long_payload_type, vec![pem_ok.clone()]),
            415,
            "unsupported_payload_type",
        ),
        case(
            "verifiers nested 5000 deep",
            format!(
                "{{\"envelope\":{env},\"verifiers\":{}{}}}",
                "[".repeat(5000),
                "]".repeat(5000)
            )
            .into_bytes(),
            400,
            "invalid_request",
        ),
        case(
            "envelope with a repeated field",
            format!(
                "{{\"envelope\":{{\"payload\":\"\",\"payload\":\"\",\"payloadType\":\"x\",\
                 \"signatures\":[]}},\"verifiers\":[{}]}}",
                serde_json::to_string(&pem_ok).unwrap()
            )
            .into_bytes(),
            400,
            "invalid_envelope",
        ),
        // Negative and overflowing numbers.
        get_case(
            "entry index u64::MAX",
            "/api/v1/entries/18446744073709551615",
            404,
            "not_found",
        ),
        get_case(
            "entry index with plus",
            "/api/v1/entries/+1",
            400,
            "invalid_index",
        ),
        get_case(
            "entry index percent-encoded negative",
            "/api/v1/entries/%2D1",
            400,
            "invalid_index",
        ),
        get_case(
            "inclusion index negative",
            "/api/v1/proof/inclusion?index=-1",
            400,
            "invalid_query",
        ),
        get_case(
            "inclusion index overflowing",
            "/api/v1/proof/inclusion?index=18446744073709551616",
            400,
            "invalid_query",
        ),
        get_case(
            "inclusion at u64::MAX",
            "/api/v1/proof/inclusion?index=18446744073709551615&tree_size=18446744073709551615",
            400,
            "invalid_proof_request",
        ),
        get_case(
            "inclusion tree size negative",
            "/api/v1/proof/inclusion?index=0&tree_size=-1",
            400,
            "invalid_query",
        ),
        get_case(
            "consistency from negative",
            "/api/v1/proof/consistency?from=-1",
            400,
            "invalid_query",
        ),
        get_case(
            "consistency from u64::MAX",
            "/api/v1/proof/consistency?from=18446744073709551615",
            400,
            "invalid_proof_request",
        ),
        get_case(
            "search cursor overflowing",
            &format!("/api/v1/entries?subject=sha256:{m}&cursor=18446744073709551616"),
            400,
            "invalid_query",
        ),
        get_case(
            "search limit negative",
            &format!("/api/v1/entries?subject=sha256:{m}&limit=-1"),
            400,
            "invalid_query",
        ),
        get_case(
            "search limit overflowing",
            &format!("/api/v1/entries?subject=sha256:{m}&limit=99999999999999999999"),
            400,
            "invalid_query",
        ),
        get_case(
            "lineage depth negative",
            &format!("/api/v1/lineage/sha256:{m}?depth=-1"),
            400,
            "invalid_query",
        ),
        get_case(
            "lineage depth overflowing",
            &format!("/api/v1/lineage/sha256:{m}?depth=18446744073709551616"),
            400,
            "invalid_query",
        ),
        get_case(
            "lineage depth over the maximum",
            &format!("/api/v1/lineage/sha256:{m}?depth=65"),
            400,
            "invalid_query",
        ),
        get_case(
            "tile index overflowing u64",
            "/tile/0/x999/x999/x999/x999/x999/x999/x999/999",
            400,
            "invalid_tile_path",
        ),
        get_case("tile level 64", "/tile/64/000", 400, "invalid_tile_path"),
        get_case("tile width 0", "/tile/0/000.p/0", 400, "invalid_tile_path"),
        get_case(
            "tile width 256",
            "/tile/0/000.p/256",
            400,
            "invalid_tile_path",
        ),
        get_case(
            "tile index negative",
            "/tile/entries/-01",
            400,
            "invalid_tile_path",
        ),
    ]
}
