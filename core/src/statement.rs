//! in-toto Statement v1: the layer of an attestation that binds a predicate to
//! the digests of its subjects.
//!
//! This is the log's admission check for statements. It follows the in-toto
//! attestation spec v1 (`statement.md`, `resource_descriptor.md`,
//! `digest_set.md`) and is stricter where the log needs it: digests must be in
//! canonical text form, because the log indexes them as `algorithm:value`
//! strings, and no JSON object may repeat a key, because two parsers that
//! resolve a repeated key differently would see two different statements.
//!
//! Predicates stay opaque JSON here; typed predicates live in their own
//! modules ([`crate::slsa`]). Size caps are the server's business, not this
//! module's.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

mod digest;

pub use digest::{validate_digest, Digest, DigestError, DigestSet, HexLength};

use digest::deserialize_digest_set;

/// The `_type` of an in-toto Statement v1, the only statement type the log
/// accepts.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";

/// An in-toto Statement v1: what a DSSE envelope in the log carries.
///
/// Fields the spec does not define are ignored on parsing, as its parsing
/// rules require, and so are not written back by [`Statement::to_json`]; the
/// log keeps the signed bytes, not this re-encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Schema of the statement; must be [`STATEMENT_TYPE_V1`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// The artifacts the attestation is about, each identified by digest.
    pub subject: Vec<ResourceDescriptor>,
    /// URI naming the schema of `predicate`.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate itself, a JSON object when present; kept untyped so the
    /// log can accept any predicate type.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_optional_unique_keys"
    )]
    pub predicate: Option<Value>,
}

/// An in-toto ResourceDescriptor: a reference to an artifact by name, URI,
/// digest or inline content.
///
/// Subjects of a statement and the materials and byproducts of a provenance
/// predicate all use this one shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    /// Name of the artifact, local to the attestation (often a file name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// URI identifying the artifact globally.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Digests of the artifact's content; empty when not given.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "deserialize_digest_set"
    )]
    pub digest: DigestSet,
    /// The artifact's bytes inline, base64 as in the protobuf JSON mapping;
    /// kept as text because the log never interprets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Where the artifact can be downloaded, if not at `uri`.
    #[serde(rename = "downloadLocation", skip_serializing_if = "Option::is_none")]
    pub download_location: Option<String>,
    /// MIME type of the artifact.
    #[serde(rename = "mediaType", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Producer-defined extra fields for policy.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_annotations"
    )]
    pub annotations: Option<Map<String, Value>>,
}

/// Why a statement was refused.
#[derive(Debug, Error)]
pub enum StatementError {
    /// The payload is not JSON of the statement's shape.
    #[error("couldn't parse statement JSON")]
    Json {
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// `_type` is not in-toto Statement v1 (this includes the legacy v0.1).
    #[error(
        "statement _type {found:?} is not supported, expected {:?}",
        STATEMENT_TYPE_V1
    )]
    UnsupportedType {
        /// The `_type` as given.
        found: String,
    },
    /// `subject` is an empty list.
    #[error("statement has no subject")]
    EmptySubject,
    /// A subject has no digest, which the spec requires of every subject.
    #[error("subject {index} has no digest")]
    SubjectWithoutDigest {
        /// Position of the subject in `subject`.
        index: usize,
    },
    /// A subject digest is not in canonical form.
    #[error("subject {index} has an invalid digest")]
    SubjectDigest {
        /// Position of the subject in `subject`.
        index: usize,
        /// What is wrong with the digest.
        #[source]
        source: DigestError,
    },
    /// `predicateType` is empty or not a URI.
    #[error("predicateType {found:?} is not a URI")]
    PredicateTypeNotUri {
        /// The `predicateType` as given.
        found: String,
    },
    /// `predicate` is present but not a JSON object.
    #[error("predicate is a JSON {found}, expected an object")]
    PredicateNotObject {
        /// Kind of JSON value found, e.g. `array`.
        found: &'static str,
    },
}
impl Statement {
    /// Parses a statement (the payload of a DSSE envelope) and checks it with
    /// [`Statement::validate`], so a statement the log holds is always valid.
    ///
    /// # Errors
    ///
    /// [`StatementError::Json`] if the bytes are not JSON of the statement's
    /// shape (including a repeated key in the predicate, an annotation map or
    /// a digest set), otherwise any error of [`Statement::validate`].
    pub fn from_json(payload: &[u8]) -> Result<Self, StatementError> {
        let statement: Statement =
            serde_json::from_slice(payload).map_err(|source| StatementError::Json { source })?;
        statement.validate()?;
        Ok(statement)
    }

    /// Checks the rules the log enforces on every statement: the v1 `_type`,
    /// at least one subject, a canonical digest on every subject, a URI
    /// `predicateType` and an object `predicate` if one is given.
    ///
    /// # Errors
    ///
    /// The first rule broken, as a [`StatementError`].
    pub fn validate(&self) -> Result<(), StatementError> {
        if self.type_ != STATEMENT_TYPE_V1 {
            return Err(StatementError::UnsupportedType {
                found: self.type_.clone(),
            });
        }
        if self.subject.is_empty() {
            return Err(StatementError::EmptySubject);
        }
        for (index, subject) in self.subject.iter().enumerate() {
            if subject.digest.is_empty() {
                return Err(StatementError::SubjectWithoutDigest { index });
            }
            for (algorithm, value) in &subject.digest {
                validate_digest(algorithm, value)
                    .map_err(|source| StatementError::SubjectDigest { index, source })?;
            }
        }
        if !is_uri(&self.predicate_type) {
            return Err(StatementError::PredicateTypeNotUri {
                found: self.predicate_type.clone(),
            });
        }
        if let Some(predicate) = &self.predicate {
            if !predicate.is_object() {
                return Err(StatementError::PredicateNotObject {
                    found: json_kind(predicate),
                });
            }
        }
        Ok(())
    }

    /// Encodes the statement as compact JSON, for producers that build a
    /// statement and then sign it.
    pub fn to_json(&self) -> Vec<u8> {
        // Every map in a statement has string keys and every number is
        // finite, the only two ways serde_json serialization can fail.
        serde_json::to_vec(self).expect("a statement always serializes to JSON")
    }
}

impl ResourceDescriptor {
    /// Every digest of the artifact in canonical form, ordered by algorithm,
    /// for indexing and matching.
    ///
    /// The digests are not checked here; [`Statement::validate`] checks them
    /// for subjects.
    pub fn digests(&self) -> impl Iterator<Item = Digest> + '_ {
        self.digest.iter().map(|(algorithm, value)| Digest {
            algorithm: algorithm.clone(),
            value: value.clone(),
        })
    }

    /// Whether the descriptor sets `uri`, `digest` or `content`, the minimum
    /// `resource_descriptor.md` requires for it to refer to anything.
    pub fn identifies_resource(&self) -> bool {
        self.uri.is_some() || !self.digest.is_empty() || self.content.is_some()
    }
}

/// Whether `text` looks like a URI, as in-toto's TypeURI and ResourceURI
/// fields must: an RFC 3986 scheme, a `:`, something after it, and no
/// whitespace or control characters anywhere.
pub(crate) fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok && !rest.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Name of the kind of a JSON value, for error messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Reads an optional JSON value with [`UniqueKeys`]; `null` reads as `None`.
fn deserialize_optional_unique_keys<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Ok(Option::<UniqueKeys>::deserialize(deserializer)?.map(|UniqueKeys(value)| value))
}

/// Reads `annotations` with [`UniqueKeys`]; it must be an object or `null`.
fn deserialize_annotations<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Map<String, Value>>, D::Error> {
    match deserialize_optional_unique_keys(deserializer)? {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(de::Error::custom(format_args!(
            "annotations is a JSON {}, expected an object",
            json_kind(&other)
        ))),
    }
}

/// Any JSON value, read like [`serde_json::Value`] except that an object
/// repeating a key at any depth is an error (see the module docs). Depth is
/// bounded by serde_json's recursion limit. Assumes serde_json without its
/// `arbitrary_precision` feature, which would hand numbers over as maps; the
/// tests reading numbers back would catch that.
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        // JSON text can't hold a non-finite number, so `from` never maps to null here.
        Ok(Value::from(n))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        UniqueKeys::deserialize(deserializer).map(|UniqueKeys(value)| value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-toto statement signed by the OpenSSF model-signing reference
    /// tool 1.1.1: the base64 `dsseEnvelope.payload` of
    /// `shared/testdata/oms/reference-1.1.1/tiny-files.sig`, decoded.
    const OMS_TINY_FILES: &str = r#"{
  "_type": "https://in-toto.io/Statement/v1",
  "subject": [
    {
      "name": "tiny-model",
      "digest": {
        "sha256": "218df2106f1934d3dc2e4106d999052084559277edfd81b1a843de5b870cc10e"
      }
    }
  ],
  "predicateType": "https://model_signing/signature/v1.0",
  "predicate": {
    "serialization": {
      "method": "files",
      "allow_symlinks": false,
      "hash_type": "sha256",
      "ignore_paths": [
        ".gitignore",
        ".git",
        ".gitattributes",
        ".github"
      ]
    },
    "resources": [
      {
        "name": "config.json",
        "digest": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "algorithm": "sha256"
      },
      {
        "name": "sub/tok.txt",
        "digest": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
        "algorithm": "sha256"
      },
      {
        "name": "weights.bin",
        "digest": "fbbab289f7f94b25736c58be46a994c441fd02552cc6022352e3d86d2fab7c83",
        "algorithm": "sha256"
      }
    ]
  }
}"#;

    const SHA256_MODEL: &str = "9372c470eeadd5ecd9c3c74c2b3cb633f8e2f2fad799250a0f70d652b6b825e4";

    /// An error and its sources joined with ": ", as a log client would see it.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        text
    }

    /// A statement with one sha256 subject and the given extra top-level fields.
    fn statement_with(subject: &str, rest: &str) -> String {
        format!(r#"{{"_type":"{STATEMENT_TYPE_V1}","subject":[{subject}]{rest}}}"#)
    }

    fn subject_with_digest(algorithm: &str, value: &str) -> String {
        statement_with(
            &format!(r#"{{"name":"m","digest":{{"{algorithm}":"{value}"}}}}"#),
            r#","predicateType":"https://example.com/p/v1""#,
        )
    }

    /// Parses `input`; `Ok` expects acceptance, `Err(text)` a refusal whose
    /// error chain contains `text`.
    fn check(input: &str, expected: Result<(), &str>) {
        match (Statement::from_json(input.as_bytes()), expected) {
            (Ok(_), Ok(())) => {}
            (Err(error), Err(want)) => {
                let got = chain(&error);
                assert!(
                    got.contains(want),
                    "input {input}\nerror {got:?}\nlacks {want:?}"
                );
            }
            (got, want) => panic!("input {input}\ngot {got:?}\nwant {want:?}"),
        }
    }

    #[test]
    fn statement_from_json_accepts_and_refuses_per_spec() {
        let p = r#","predicateType":"https://example.com/p/v1""#;
        let model = format!(r#"{{"digest":{{"sha256":"{SHA256_MODEL}"}}}}"#);
        let cases: Vec<(String, Result<(), &str>)> = vec![
            (OMS_TINY_FILES.to_owned(), Ok(())),
            (statement_with(&model, p), Ok(())),
            (statement_with(&model, &format!(r#"{p},"predicate":null"#)), Ok(())),
            (statement_with(&model, &format!(r#"{p},"predicate":{{}},"extra":[1]"#)), Ok(())),
            (
                statement_with(&format!(r#"{model},{{"uri":"x:y","digest":{{"gitCommit":"{}"}}}}"#, &SHA256_MODEL[..40]), p),
                Ok(()),
            ),
            (
                format!(r#"{{"_type":"https://in-toto.io/Statement/v0.1","subject":[{model}]{p}}}"#),
                Err(r#"statement _type "https://in-toto.io/Statement/v0.1" is not supported"#),
            ),
            (
                format!(r#"{{"_type":"https://in-toto.io/Statement/v2","subject":[{model}]{p}}}"#),
                Err("is not supported"),
            ),
            (format!(r#"{{"subject":[{model}]{p}}}"#), Err("missing field `_type`")),
            (statement_with("", p), Err("statement has no subject")),
            (statement_with(r#"{"name":"m","digest":{}}"#, p), Err("subject 0 has no digest")),
            (statement_with(r#"{"name":"m"}"#, p), Err("subject 0 has no digest")),
            (
                statement_with(&format!(r#"{model},{{"digest":{{"sha256":"abc"}}}}"#), p),
                Err("subject 1 has an invalid digest: sha256 digest has 3 hex characters, expected 64"),
            ),
            (
                subject_with_digest("sha256", &SHA256_MODEL.to_uppercase()),
                Err("sha256 digest has 'C' at byte 4, expected lowercase hex"),
            ),
            (subject_with_digest("sha256", &SHA256_MODEL.replace('9', "g")), Err("has 'g' at byte 0")),
            (subject_with_digest("SHA256", SHA256_MODEL), Err(r#"expected "sha256""#)),
            (subject_with_digest("mycoolhash", "abcd"), Ok(())),
            (subject_with_digest("mycoolhash", "q83v"), Err("mycoolhash digest has 'q' at byte 0")),
            (
                statement_with(&format!(r#"{{"digest":{{"sha256":"{SHA256_MODEL}","sha256":"{SHA256_MODEL}"}}}}"#), p),
                Err(r#"duplicate digest algorithm "sha256""#),
            ),
            (statement_with(&model, ""), Err("missing field `predicateType`")),
            (statement_with(&model, r#","predicateType":"""#), Err(r#"predicateType "" is not a URI"#)),
            (statement_with(&model, r#","predicateType":"slsa provenance""#), Err("is not a URI")),
            (statement_with(&model, r#","predicateType":"https://a b""#), Err("is not a URI")),
            (statement_with(&model, r#","predicateType":"https:""#), Err("is not a URI")),
            (statement_with(&model, r#","predicateType":"1http://x""#), Err("is not a URI")),
            (
                statement_with(&model, &format!(r#"{p},"predicate":[1,2]"#)),
                Err("predicate is a JSON array, expected an object"),
            ),
            (
                statement_with(&model, &format!(r#"{p},"predicate":{{"a":{{"b":1,"b":2}}}}"#)),
                Err(r#"duplicate key "b""#),
            ),
            (
                statement_with(&format!(r#"{{"digest":{{"sha256":"{SHA256_MODEL}"}},"annotations":{{"k":1,"k":1}}}}"#), p),
                Err(r#"duplicate key "k""#),
            ),
            (
                statement_with(&format!(r#"{{"digest":{{"sha256":"{SHA256_MODEL}"}},"annotations":"x"}}"#), p),
                Err("annotations is a JSON string"),
            ),
        ];
        for (input, expected) in cases {
            check(&input, expected);
        }
    }

    #[test]
    fn statement_from_json_refuses_odd_json_without_panicking() {
        let p = r#","predicateType":"https://example.com/p/v1""#;
        let deep = "[".repeat(100_000);
        let deep_predicate = statement_with(
            &format!(r#"{{"digest":{{"sha256":"{SHA256_MODEL}"}}}}"#),
            &format!(r#"{p},"predicate":{{"x":{}}}"#, "[".repeat(10_000)),
        );
        let cases = [
            "",
            "null",
            "0",
            "\"statement\"",
            "[]",
            "{}",
            "[[[[]]]]",
            &deep,
            &deep_predicate,
            r#"{"_type":1,"subject":[],"predicateType":2}"#,
            r#"{"_type":null,"subject":null,"predicateType":null}"#,
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":{"digest":{}},"predicateType":"a:b"}"#,
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[[["x"]]],"predicateType":"a:b"}"#,
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":64}}],"predicateType":"a:b"}"#,
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":[["sha256"]]}],"predicateType":"a:b"}"#,
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":null}],"predicateType":"a:b"}"#,
            r#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":7,"digest":{}}],"predicateType":"a:b"}"#,
            r#"{"_type":"https://in-toto.io/Statement/v1","_type":"https://in-toto.io/Statement/v1"}"#,
            "{\"_type\":\"\u{feff}\"}",
            "{\"_type\":\"https://in-toto.io/Statement/v1\"} trailing",
        ];
        for input in cases {
            assert!(
                Statement::from_json(input.as_bytes()).is_err(),
                "accepted {input:.80}"
            );
        }
    }

    #[test]
    fn statement_from_json_survives_mutated_payloads() {
        // A fixed-seed xorshift, so a failure reproduces without a rand dependency.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let original = OMS_TINY_FILES.as_bytes();
        for _ in 0..5_000 {
            let mut bytes = original.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() % bytes.len() as u64) as usize;
                match next() % 3 {
                    0 => bytes[at] = next() as u8,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b"{}[]\":,0a"[(next() % 9) as usize]),
                }
            }
            if let Ok(statement) = Statement::from_json(&bytes) {
                assert!(statement.validate().is_ok());
            }
        }
    }

    #[test]
    fn statement_round_trips_through_to_json() {
        let statement = Statement::from_json(OMS_TINY_FILES.as_bytes()).unwrap();
        let again = Statement::from_json(&statement.to_json()).unwrap();
        assert_eq!(again, statement);
        assert_eq!(again.to_json(), statement.to_json());

        let built = Statement {
            type_: STATEMENT_TYPE_V1.to_owned(),
            subject: vec![ResourceDescriptor {
                name: Some("model.safetensors".to_owned()),
                digest: DigestSet::from([("sha256".to_owned(), SHA256_MODEL.to_owned())]),
                media_type: Some("application/octet-stream".to_owned()),
                annotations: Some(Map::from_iter([("rows".to_owned(), Value::from(3))])),
                ..ResourceDescriptor::default()
            }],
            predicate_type: "https://example.com/p/v1".to_owned(),
            predicate: None,
        };
        let json = String::from_utf8(built.to_json()).unwrap();
        assert!(
            !json.contains("null") && !json.contains("\"uri\""),
            "{json}"
        );
        assert!(json.contains("\"mediaType\""), "{json}");
        assert_eq!(Statement::from_json(json.as_bytes()).unwrap(), built);
    }

    #[test]
    fn oms_statement_exposes_its_subject_digest() {
        let statement = Statement::from_json(OMS_TINY_FILES.as_bytes()).unwrap();
        assert_eq!(
            statement.predicate_type,
            "https://model_signing/signature/v1.0"
        );
        let digests: Vec<String> = statement.subject[0]
            .digests()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            digests,
            ["sha256:218df2106f1934d3dc2e4106d999052084559277edfd81b1a843de5b870cc10e"]
        );
    }

    #[test]
    fn is_uri_requires_scheme_and_no_whitespace() {
        let cases = [
            ("https://slsa.dev/provenance/v1", true),
            ("https://model_signing/signature/v1.0", true),
            ("urn:example:predicate", true),
            ("git+https://github.com/a/b", true),
            ("", false),
            ("provenance", false),
            (":nothing", false),
            ("https:", false),
            ("ht tp://x", false),
            ("https://x\n", false),
            ("https://x\u{0}", false),
            ("1abc:x", false),
        ];
        for (text, expected) in cases {
            assert_eq!(is_uri(text), expected, "{text:?}");
        }
    }
}
