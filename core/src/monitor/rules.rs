//! Applying a monitor's rules to one entry (`spec/monitor.md` section 4).
//!
//! Most rules are decided from the leaf record alone, which the monitor reads from the
//! entry bundles. Two need the statement itself: a watched key's SLSA build type and
//! builder id, and a subject watched by `name`. [`needs_envelope`] says when; the caller
//! then fetches the envelope, rebuilds the record from it, and passes the statement.

use crate::entry::LeafRecord;
use crate::keys::Fingerprint;
use crate::monitor::config::{Config, SubjectSelector, WatchKey, WatchSubject};
use crate::monitor::{Alert, Severity, PREDICATE_TYPE_REVOCATION_V1};
use crate::slsa::{Provenance, PREDICATE_TYPE_SLSA_PROVENANCE_V1};
use crate::statement::Statement;
use serde_json::Value;

/// Whether `record` needs its envelope fetched before [`check_entry`] can decide:
/// a watched key signed SLSA provenance and its rule constrains build types or builder
/// ids, or a subject is watched by name and the entry has a signer that rule does not
/// allow (or is a revocation, which names its subject).
pub fn needs_envelope(config: &Config, record: &LeafRecord) -> bool {
    let is_slsa = record.predicate_type == PREDICATE_TYPE_SLSA_PROVENANCE_V1;
    let key_rule = is_slsa
        && config
            .watch_keys
            .iter()
            .any(|k| k.checks_provenance() && record.signers.contains(&k.fingerprint));
    let is_revocation = record.predicate_type == PREDICATE_TYPE_REVOCATION_V1;
    let name_rule = config.watch_subjects.iter().any(|s| {
        matches!(s.selector, SubjectSelector::Name(_))
            && (is_revocation || unexpected_signers(s, record).next().is_some())
    });
    key_rule || name_rule
}

/// The alerts `record` raises under `config`; `statement` is the entry's statement when
/// [`needs_envelope`] asked for it (rules that need it are skipped without it).
pub fn check_entry(
    config: &Config,
    log_index: u64,
    record: &LeafRecord,
    statement: Option<&Statement>,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for key in &config.watch_keys {
        if record.signers.contains(&key.fingerprint) {
            alerts.extend(check_key(key, log_index, record, statement));
        }
    }
    for watch in &config.watch_subjects {
        if !is_about(watch, record, statement) {
            continue;
        }
        let unexpected: Vec<String> = unexpected_signers(watch, record)
            .map(ToString::to_string)
            .collect();
        if !unexpected.is_empty() {
            alerts.push(
                entry_alert(
                    watch.severity,
                    "watch_subject",
                    log_index,
                    format!(
                        "entry {log_index} about watched subject {} is signed by {} not on its allowed_signers",
                        selector_text(&watch.selector),
                        unexpected.join(", ")
                    ),
                    record,
                )
                .with("watched", selector_text(&watch.selector))
                .with("unexpected_signers", unexpected),
            );
        }
        if record.predicate_type == PREDICATE_TYPE_REVOCATION_V1 {
            alerts.push(
                entry_alert(
                    watch.severity,
                    "revocation",
                    log_index,
                    format!(
                        "entry {log_index} revokes watched subject {}",
                        selector_text(&watch.selector)
                    ),
                    record,
                )
                .with("watched", selector_text(&watch.selector)),
            );
        }
    }
    alerts
}

/// The alert for a leaf record that does not decode (rule `unparseable_entry`): the log
/// committed to bytes no consumer can read, so it is critical.
pub fn unparseable_entry(log_index: u64, leaf: &[u8], error: &dyn std::fmt::Display) -> Alert {
    use base64::Engine as _;
    Alert::new(
        Severity::Critical,
        "unparseable_entry",
        Some(log_index),
        format!("entry {log_index} is not a valid leaf record: {error}"),
    )
    .with(
        "leaf",
        base64::engine::general_purpose::STANDARD.encode(leaf),
    )
}

fn check_key(
    key: &WatchKey,
    log_index: u64,
    record: &LeafRecord,
    statement: Option<&Statement>,
) -> Option<Alert> {
    let mut violations = Vec::new();
    let mut alert = entry_alert(
        key.severity.unwrap_or(Severity::Warning),
        "watch_key",
        log_index,
        String::new(),
        record,
    )
    .with("fingerprint", key.fingerprint.to_string());
    if let Some(allowed) = &key.allowed_predicate_types {
        if !allowed.contains(&record.predicate_type) {
            violations.push(format!("predicate type {:?}", record.predicate_type));
        }
    }
    if record.predicate_type == PREDICATE_TYPE_SLSA_PROVENANCE_V1 && key.checks_provenance() {
        match statement.map(Provenance::from_statement) {
            Some(Ok(Some(p))) => {
                let build_type = &p.build_definition.build_type;
                let builder_id = &p.run_details.builder.id;
                if !allowed(&key.allowed_build_types, build_type) {
                    violations.push(format!("build type {build_type:?}"));
                }
                if !allowed(&key.allowed_builder_ids, builder_id) {
                    violations.push(format!("builder id {builder_id:?}"));
                }
                alert = alert
                    .with("build_type", build_type.as_str())
                    .with("builder_id", builder_id.as_str());
            }
            Some(Ok(None)) | None => {}
            Some(Err(e)) => violations.push(format!("provenance that does not parse ({e})")),
        }
    }
    if violations.is_empty() {
        return None;
    }
    alert.message = format!(
        "entry {log_index} signed by watched key {} has {}, outside its allowed lists",
        key.fingerprint,
        violations.join(" and ")
    );
    Some(
        alert
            .with("allowed_build_types", list(&key.allowed_build_types))
            .with("allowed_builder_ids", list(&key.allowed_builder_ids))
            .with(
                "allowed_predicate_types",
                list(&key.allowed_predicate_types),
            ),
    )
}

fn allowed(list: &Option<Vec<String>>, value: &str) -> bool {
    list.as_ref().is_none_or(|l| l.iter().any(|v| v == value))
}

fn list(list: &Option<Vec<String>>) -> Value {
    list.as_ref().map_or(Value::Null, |l| l.clone().into())
}

fn is_about(watch: &WatchSubject, record: &LeafRecord, statement: Option<&Statement>) -> bool {
    match &watch.selector {
        SubjectSelector::Digest(d) => record.subjects.contains(d),
        SubjectSelector::Name(name) => statement.is_some_and(|s| {
            s.subject
                .iter()
                .any(|r| r.name.as_deref() == Some(name.as_str()))
        }),
    }
}

fn unexpected_signers<'a>(
    watch: &'a WatchSubject,
    record: &'a LeafRecord,
) -> impl Iterator<Item = &'a Fingerprint> + 'a {
    record
        .signers
        .iter()
        .filter(|s| !watch.allowed_signers.contains(s))
}

fn selector_text(selector: &SubjectSelector) -> String {
    match selector {
        SubjectSelector::Digest(d) => d.to_string(),
        SubjectSelector::Name(n) => format!("name {n:?}"),
    }
}

/// An alert about one entry, with the record's facts as evidence.
fn entry_alert(
    severity: Severity,
    rule: &'static str,
    log_index: u64,
    message: String,
    record: &LeafRecord,
) -> Alert {
    let strings = |v: &[_]| -> Vec<String> { v.iter().map(ToString::to_string).collect() };
    Alert::new(severity, rule, Some(log_index), message)
        .with("envelope_sha256", hex::encode(record.envelope_sha256))
        .with("integrated_time_ms", record.integrated_time_ms)
        .with("predicate_type", record.predicate_type.as_str())
        .with("signers", strings(&record.signers))
        .with(
            "subjects",
            record
                .subjects
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsse::IN_TOTO_PAYLOAD_TYPE;
    use crate::statement::Digest;

    const TRAIN: &str = "https://pedigree.dev/ml/train/v1";
    const QUANTIZE: &str = "https://pedigree.dev/ml/quantize/v1";
    const BUILDER: &str = "https://ci.example/builder";

    fn fp(b: u8) -> Fingerprint {
        Fingerprint([b; 32])
    }

    fn digest(b: u8) -> Digest {
        format!("sha256:{}", hex::encode([b; 32])).parse().unwrap()
    }

    fn record(predicate_type: &str, signers: &[u8], subjects: &[u8]) -> LeafRecord {
        LeafRecord {
            envelope_sha256: [7; 32],
            integrated_time_ms: 1,
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            predicate_type: predicate_type.into(),
            signers: signers.iter().map(|&b| fp(b)).collect(),
            subjects: subjects.iter().map(|&b| digest(b)).collect(),
            materials: vec![],
        }
    }

    fn slsa(build_type: &str, builder: &str, name: &str, subject: u8) -> Statement {
        let json = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": hex::encode([subject; 32])}}],
            "predicateType": PREDICATE_TYPE_SLSA_PROVENANCE_V1,
            "predicate": {
                "buildDefinition": {"buildType": build_type, "externalParameters": {}},
                "runDetails": {"builder": {"id": builder}}
            }
        });
        Statement::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
    }

    fn config(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    fn key_config() -> Config {
        config(&format!(
            "[[watch_key]]\nfingerprint = \"{}\"\nallowed_build_types = [\"{TRAIN}\"]\nallowed_builder_ids = [\"{BUILDER}\"]\n",
            fp(1)
        ))
    }

    /// (rule, record, statement) -> the rules of the alerts raised, in order.
    fn check(c: &Config, r: &LeafRecord, s: Option<&Statement>, want: &[&str]) {
        let got: Vec<&str> = check_entry(c, 9, r, s).iter().map(|a| a.rule).collect();
        assert_eq!(got, want, "record {r:?}");
    }

    #[test]
    fn watched_key_alerts_on_build_type_and_builder_outside_its_lists() {
        let c = key_config();
        let r = record(PREDICATE_TYPE_SLSA_PROVENANCE_V1, &[1], &[5]);
        assert!(needs_envelope(&c, &r));
        check(&c, &r, Some(&slsa(TRAIN, BUILDER, "m", 5)), &[]);
        check(
            &c,
            &r,
            Some(&slsa(QUANTIZE, BUILDER, "m", 5)),
            &["watch_key"],
        );
        check(
            &c,
            &r,
            Some(&slsa(TRAIN, "https://evil.example", "m", 5)),
            &["watch_key"],
        );
        // Both wrong: still one alert, naming both.
        let alerts = check_entry(
            &c,
            9,
            &r,
            Some(&slsa(QUANTIZE, "https://evil.example", "m", 5)),
        );
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0].message.contains("build type") && alerts[0].message.contains("builder id")
        );
        assert_eq!(alerts[0].evidence["build_type"], QUANTIZE);
        assert_eq!(alerts[0].log_index, Some(9));
    }

    #[test]
    fn other_keys_and_other_predicates_need_no_envelope() {
        let c = key_config();
        assert!(!needs_envelope(
            &c,
            &record(PREDICATE_TYPE_SLSA_PROVENANCE_V1, &[2], &[5])
        ));
        assert!(!needs_envelope(
            &c,
            &record("https://model_signing/signature/v1.0", &[1], &[5])
        ));
        check(
            &c,
            &record("https://model_signing/signature/v1.0", &[1], &[5]),
            None,
            &[],
        );
        let strict = config(&format!(
            "[[watch_key]]\nfingerprint = \"{}\"\nallowed_predicate_types = [\"{PREDICATE_TYPE_SLSA_PROVENANCE_V1}\"]\n",
            fp(1)
        ));
        let r = record("https://example.com/other/v1", &[1], &[5]);
        assert!(!needs_envelope(&strict, &r));
        check(&strict, &r, None, &["watch_key"]);
    }

    #[test]
    fn watched_subject_by_digest_alerts_on_other_signers() {
        let c = config(&format!(
            "[[watch_subject]]\ndigest = \"{}\"\nallowed_signers = [\"{}\"]\n",
            digest(5),
            fp(1)
        ));
        let by_other = record(PREDICATE_TYPE_SLSA_PROVENANCE_V1, &[1, 2], &[5]);
        assert!(!needs_envelope(&c, &by_other));
        check(&c, &by_other, None, &["watch_subject"]);
        check(
            &c,
            &record(PREDICATE_TYPE_SLSA_PROVENANCE_V1, &[1], &[5]),
            None,
            &[],
        );
        check(
            &c,
            &record(PREDICATE_TYPE_SLSA_PROVENANCE_V1, &[2], &[6]),
            None,
            &[],
        );
        let alert = &check_entry(&c, 9, &by_other, None)[0];
        assert_eq!(
            alert.evidence["unexpected_signers"],
            serde_json::json!([fp(2).to_string()])
        );
    }

    #[test]
    fn watched_subject_by_name_reads_the_statement_only_when_a_signer_is_unexpected() {
        let c = config(&format!(
            "[[watch_subject]]\nname = \"reviews-7b\"\nallowed_signers = [\"{}\"]\n",
            fp(1)
        ));
        let by_allowed = record(PREDICATE_TYPE_SLSA_PROVENANCE_V1, &[1], &[5]);
        assert!(!needs_envelope(&c, &by_allowed));
        let by_other = record(PREDICATE_TYPE_SLSA_PROVENANCE_V1, &[2], &[5]);
        assert!(needs_envelope(&c, &by_other));
        check(
            &c,
            &by_other,
            Some(&slsa(TRAIN, BUILDER, "reviews-7b", 5)),
            &["watch_subject"],
        );
        check(&c, &by_other, Some(&slsa(TRAIN, BUILDER, "other", 5)), &[]);
    }

    #[test]
    fn revocation_of_a_watched_subject_alerts() {
        let c = config(&format!(
            "[[watch_subject]]\ndigest = \"{}\"\nallowed_signers = [\"{}\"]\n",
            digest(5),
            fp(1)
        ));
        let r = record(PREDICATE_TYPE_REVOCATION_V1, &[1], &[5]);
        assert!(!needs_envelope(&c, &r));
        check(&c, &r, None, &["revocation"]);
        check(
            &c,
            &record(PREDICATE_TYPE_REVOCATION_V1, &[2], &[5]),
            None,
            &["watch_subject", "revocation"],
        );
        check(
            &c,
            &record(PREDICATE_TYPE_REVOCATION_V1, &[1], &[6]),
            None,
            &[],
        );
    }

    #[test]
    fn unparseable_entry_is_critical_with_the_leaf() {
        let a = unparseable_entry(3, &[2, 0], &"unknown leaf record version 2");
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.evidence["leaf"], "AgA=");
    }
}
