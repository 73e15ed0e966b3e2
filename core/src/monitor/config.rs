//! The monitor's rule file (`spec/monitor.md` section 4): TOML with `[[watch_key]]` and
//! `[[watch_subject]]` tables and an optional `search_sample`.

use crate::keys::Fingerprint;
use crate::monitor::Severity;
use crate::statement::Digest;
use serde::Deserialize;
use thiserror::Error;

/// Entries per pass whose search-index rows are checked, unless the file says otherwise.
pub const DEFAULT_SEARCH_SAMPLE: usize = 16;

/// Why a rule file was rejected.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Not TOML, or not the rule file's shape (unknown fields included, a bad
    /// fingerprint or digest).
    #[error("invalid monitor config")]
    Toml(#[source] toml::de::Error),
    /// A `[[watch_subject]]` names neither or both of `digest` and `name`.
    #[error("watch_subject {index}: give exactly one of digest or name")]
    SubjectSelector {
        /// Position of the table in the file, from 0.
        index: usize,
    },
    /// A `[[watch_subject]]` has an empty `name`.
    #[error("watch_subject {index}: name is empty")]
    EmptyName {
        /// Position of the table in the file, from 0.
        index: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    search_sample: Option<usize>,
    #[serde(default)]
    watch_key: Vec<WatchKey>,
    #[serde(default)]
    watch_subject: Vec<RawWatchSubject>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatchSubject {
    #[serde(default)]
    digest: Option<Digest>,
    #[serde(default)]
    name: Option<String>,
    allowed_signers: Vec<Fingerprint>,
    #[serde(default)]
    severity: Option<Severity>,
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(serde::de::Error::custom(format!(
                "severity {other:?} is not \"warning\" or \"critical\""
            ))),
        }
    }
}

/// `[[watch_key]]`: what one signing key may sign. A list that is absent allows
/// anything; a list that is present, even empty, allows only what it names.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WatchKey {
    /// The key's fingerprint (SHA-256 of its DER SubjectPublicKeyInfo).
    pub fingerprint: Fingerprint,
    /// Build types (`buildDefinition.buildType`) the key may sign SLSA provenance for.
    #[serde(default)]
    pub allowed_build_types: Option<Vec<String>>,
    /// Builder ids (`runDetails.builder.id`) the key may sign SLSA provenance for.
    #[serde(default)]
    pub allowed_builder_ids: Option<Vec<String>>,
    /// Predicate types the key may sign at all.
    #[serde(default)]
    pub allowed_predicate_types: Option<Vec<String>>,
    /// Severity of this rule's alerts [default: warning].
    #[serde(default)]
    pub severity: Option<Severity>,
}

impl WatchKey {
    /// Whether the rule constrains SLSA provenance, which needs the envelope to check.
    pub fn checks_provenance(&self) -> bool {
        self.allowed_build_types.is_some() || self.allowed_builder_ids.is_some()
    }
}

/// How a `[[watch_subject]]` recognises its artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubjectSelector {
    /// A subject digest, read from the leaf record.
    Digest(Digest),
    /// A subject `name` in the statement, which only the envelope shows.
    Name(String),
}

/// `[[watch_subject]]`: who may make statements about one artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSubject {
    /// The artifact.
    pub selector: SubjectSelector,
    /// Fingerprints of the keys that may sign statements about it.
    pub allowed_signers: Vec<Fingerprint>,
    /// Severity of this rule's alerts [default: warning].
    pub severity: Severity,
}

/// A parsed rule file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Entries per pass whose search-index rows are checked (0: none).
    pub search_sample: usize,
    /// Watched keys.
    pub watch_keys: Vec<WatchKey>,
    /// Watched subjects.
    pub watch_subjects: Vec<WatchSubject>,
}

impl Config {
    /// Parses a rule file.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming what is wrong.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(ConfigError::Toml)?;
        let mut watch_subjects = Vec::with_capacity(raw.watch_subject.len());
        for (index, s) in raw.watch_subject.into_iter().enumerate() {
            let selector = match (s.digest, s.name) {
                (Some(d), None) => SubjectSelector::Digest(d),
                (None, Some(n)) if n.is_empty() => return Err(ConfigError::EmptyName { index }),
                (None, Some(n)) => SubjectSelector::Name(n),
                _ => return Err(ConfigError::SubjectSelector { index }),
            };
            watch_subjects.push(WatchSubject {
                selector,
                allowed_signers: s.allowed_signers,
                severity: s.severity.unwrap_or(Severity::Warning),
            });
        }
        Ok(Self {
            search_sample: raw.search_sample.unwrap_or(DEFAULT_SEARCH_SAMPLE),
            watch_keys: raw.watch_key,
            watch_subjects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "fbff60443ba1deb427f783692908a1c35e2bce36f21916905c5ce229863546e0";
    const MODEL: &str = "sha256:18fa6357423dc43124d45a6e61be9815c8e80d4eba69cbc5aeb0dc1cc232f7ed";

    #[test]
    fn spec_example_parses() {
        let text = format!(
            r#"
search_sample = 4

[[watch_key]]
fingerprint = "{FP}"
allowed_build_types = ["https://pedigree.dev/ml/train/v1"]
allowed_builder_ids = ["https://ci.example.com/builders/gpu-pool/v1"]

[[watch_subject]]
digest = "{MODEL}"
allowed_signers = ["{FP}"]
severity = "critical"

[[watch_subject]]
name = "reviews-7b"
allowed_signers = ["{FP}"]
"#
        );
        let c = Config::from_toml(&text).unwrap();
        assert_eq!(c.search_sample, 4);
        assert_eq!(c.watch_keys[0].fingerprint.to_string(), FP);
        assert!(c.watch_keys[0].checks_provenance());
        assert_eq!(c.watch_keys[0].allowed_predicate_types, None);
        assert_eq!(
            c.watch_subjects[0].selector,
            SubjectSelector::Digest(MODEL.parse().unwrap())
        );
        assert_eq!(c.watch_subjects[0].severity, Severity::Critical);
        assert_eq!(
            c.watch_subjects[1].selector,
            SubjectSelector::Name("reviews-7b".into())
        );
        assert_eq!(c.watch_subjects[1].severity, Severity::Warning);
    }

    /// The rule files shown in the docs, taken from their ```toml blocks.
    fn documented_rule_files(doc: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(doc);
        let text = std::fs::read_to_string(&path).unwrap();
        text.split("```toml\n")
            .skip(1)
            .filter_map(|block| block.split("```").next())
            .filter(|block| block.contains("[[watch_"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn rule_files_in_spec_and_readme_parse() {
        for doc in ["spec/monitor.md", "README.md"] {
            let files = documented_rule_files(doc);
            assert!(!files.is_empty(), "{doc} shows no rule file");
            for text in files {
                let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{doc}: {e:?}"));
                assert!(!c.watch_keys.is_empty() && !c.watch_subjects.is_empty());
            }
        }
    }

    #[test]
    fn empty_file_is_no_rules_and_default_sample() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.search_sample, DEFAULT_SEARCH_SAMPLE);
        assert!(c.watch_keys.is_empty() && c.watch_subjects.is_empty());
    }

    #[test]
    fn bad_files_are_rejected() {
        let cases = [
            "[[watch_key]]\nfingerprint = \"abc\"\n".to_string(),
            format!("[[watch_key]]\nfingerprint = \"{FP}\"\nallowed = []\n"),
            format!("[[watch_key]]\nfingerprint = \"{FP}\"\nseverity = \"loud\"\n"),
            format!("[[watch_subject]]\nallowed_signers = [\"{FP}\"]\n"),
            format!(
                "[[watch_subject]]\nname = \"m\"\ndigest = \"{MODEL}\"\nallowed_signers = []\n"
            ),
            "[[watch_subject]]\nname = \"\"\nallowed_signers = []\n".to_string(),
            "[[watch_subject]]\ndigest = \"sha256:ABC\"\nallowed_signers = []\n".to_string(),
            "watch_key = 3\n".to_string(),
        ];
        for text in cases {
            assert!(Config::from_toml(&text).is_err(), "accepted:\n{text}");
        }
    }
}
