//! Revocations (`spec/predicates.md` section 6.1): signed, logged statements that an
//! artifact must no longer be trusted, and the rules that decide which of them count
//! against a verified lineage chain (`spec/policy.md` section 6).
//!
//! A transparency log cannot delete or amend an entry, and neither CT nor Sigstore's
//! Rekor has a revocation record: Sigstore leans on short-lived certificates, timestamps
//! and verifier policy instead. Pedigree's artifacts live for years, so an artifact that
//! turns out to be poisoned or leaked is marked by a new entry, a revocation statement
//! whose subject is the artifact's digest. Anyone can log one; only those the policy
//! authorises (by default, whoever signed the attestation that produced the artifact)
//! make it count. A revocation is permanent: `revoked_at` is the revoker's claim, kept
//! for people, and the log entry's inclusion is what verifiers rely on.
//!
//! Out of scope: finding revocations (the CLI searches the log or reads bundles) and
//! clocks (core reads no time).

use crate::keys::{Fingerprint, PublicKey};
use crate::lineage::{Attestation, VerifiedLink};
use crate::policy::Policy;
use crate::statement::{Digest, ResourceDescriptor, Statement, STATEMENT_TYPE_V1};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub use crate::monitor::PREDICATE_TYPE_REVOCATION_V1;

/// Longest `reason` accepted, in bytes: a sentence or two for a responder, not a report.
pub const MAX_REASON_BYTES: usize = 1024;

/// The predicate of a revocation statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Why the artifact must no longer be trusted, for people.
    pub reason: String,
    /// When the revoker decided, RFC 3339. The revoker's claim, not a log timestamp.
    pub revoked_at: String,
    /// The artifact that replaces the revoked one, if any (digest text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

/// Why a revocation statement was refused.
#[derive(Debug, Error)]
pub enum RevocationError {
    /// The statement has the revocation type but no predicate.
    #[error("revocation statement has no predicate")]
    MissingPredicate,
    /// The predicate is not of the revocation shape.
    #[error("couldn't parse revocation predicate")]
    Json(#[source] serde_json::Error),
    /// `reason` is empty or only whitespace.
    #[error("revocation reason is empty")]
    EmptyReason,
    /// `reason` is longer than [`MAX_REASON_BYTES`].
    #[error("revocation reason is {len} bytes, more than {MAX_REASON_BYTES}")]
    ReasonTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// `reason` has a line break or another control character: it is printed on one line.
    #[error("revocation reason contains a control character")]
    ReasonControl,
    /// `revoked_at` is not an RFC 3339 time.
    #[error("revoked_at {value:?} is not an RFC 3339 time")]
    RevokedAt {
        /// The value given.
        value: String,
        /// The parser's error.
        #[source]
        source: time::error::Parse,
    },
    /// `superseded_by` is not canonical digest text.
    #[error("superseded_by {value:?} is not a digest")]
    SupersededBy {
        /// The value given.
        value: String,
    },
}

impl Revocation {
    /// Reads the revocation predicate of a statement, if it is a revocation.
    ///
    /// Returns `Ok(None)` for any other `predicateType`, so callers can pass any
    /// statement. Unknown predicate fields are ignored, as in-toto parsing rules ask.
    ///
    /// # Errors
    ///
    /// For a revocation statement whose predicate is missing or breaks a rule of
    /// [`Revocation::validate`].
    pub fn from_statement(statement: &Statement) -> Result<Option<Self>, RevocationError> {
        if statement.predicate_type != PREDICATE_TYPE_REVOCATION_V1 {
            return Ok(None);
        }
        let predicate = statement
            .predicate
            .as_ref()
            .ok_or(RevocationError::MissingPredicate)?;
        let revocation = Revocation::deserialize(predicate).map_err(RevocationError::Json)?;
        revocation.validate()?;
        Ok(Some(revocation))
    }

    /// Checks the rules of `spec/predicates.md` section 6.1: a non-empty one-line reason
    /// of at most [`MAX_REASON_BYTES`], an RFC 3339 `revoked_at`, and digest text in
    /// `superseded_by`.
    ///
    /// # Errors
    ///
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), RevocationError> {
        if self.reason.trim().is_empty() {
            return Err(RevocationError::EmptyReason);
        }
        if self.reason.len() > MAX_REASON_BYTES {
            return Err(RevocationError::ReasonTooLong {
                len: self.reason.len(),
            });
        }
        if self.reason.chars().any(char::is_control) {
            return Err(RevocationError::ReasonControl);
        }
        OffsetDateTime::parse(&self.revoked_at, &Rfc3339).map_err(|source| {
            RevocationError::RevokedAt {
                value: self.revoked_at.clone(),
                source,
            }
        })?;
        if let Some(s) = &self.superseded_by {
            if s.parse::<Digest>().is_err() {
                return Err(RevocationError::SupersededBy { value: s.clone() });
            }
        }
        Ok(())
    }

    /// The statement revoking `subjects`, ready to sign.
    ///
    /// # Errors
    ///
    /// When the predicate breaks a rule of [`Revocation::validate`].
    pub fn into_statement(
        self,
        subjects: Vec<ResourceDescriptor>,
    ) -> Result<Statement, RevocationError> {
        self.validate()?;
        Ok(Statement {
            type_: STATEMENT_TYPE_V1.to_string(),
            subject: subjects,
            predicate_type: PREDICATE_TYPE_REVOCATION_V1.to_string(),
            // A struct of strings always serializes.
            predicate: serde_json::to_value(&self).ok(),
        })
    }
}

/// Who may revoke what (`[revocation]` in the policy file, `spec/policy.md` section 6).
#[derive(Clone, Debug)]
pub struct RevocationPolicy {
    /// Keys that may revoke any artifact of the chain, its materials included.
    pub revokers: Vec<PublicKey>,
    /// Whether the key that signed the attestation producing an artifact may revoke it.
    pub signer_may_revoke: bool,
}

impl Default for RevocationPolicy {
    /// The artifact's own signer, and nobody else.
    fn default() -> Self {
        Self {
            revokers: Vec::new(),
            signer_may_revoke: true,
        }
    }
}

/// `[revocation]` as written in the policy file; keys resolved by [`crate::policy`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRevocationPolicy {
    #[serde(default)]
    pub(crate) revokers: Vec<String>,
    #[serde(default)]
    pub(crate) signer_may_revoke: Option<bool>,
}

/// A revocation that counts: authorised, valid and proven to be in the trusted log.
#[derive(Clone, Debug, Serialize)]
pub struct Revoked {
    /// The revoked artifact (digest text).
    pub artifact: String,
    /// The chain step that produced it, or `None` for a material no step attests.
    pub step: Option<String>,
    /// Where the revocation came from (`log entry 12`, a bundle file).
    pub source: String,
    /// Its log index.
    pub log_index: u64,
    /// Fingerprints of its signers.
    pub signers: Vec<String>,
    /// The predicate.
    #[serde(flatten)]
    pub revocation: Revocation,
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.step {
            Some(step) => format!("{step} artifact"),
            None => "material".to_string(),
        };
        write!(
            f,
            "{what} {} is revoked ({}, log index {}, signed by {}): {:?}",
            self.artifact,
            self.source,
            self.log_index,
            self.signers.join(", "),
            self.revocation.reason
        )?;
        if let Some(s) = &self.revocation.superseded_by {
            write!(f, ", superseded by {s}")?;
        }
        Ok(())
    }
}

/// A revocation statement about the chain that does not count, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Ignored {
    /// The artifacts of the chain it names.
    pub artifacts: Vec<String>,
    /// Where it came from.
    pub source: String,
    /// Why it does not count.
    pub why: String,
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ignored revocation of {} ({}): {}",
            self.artifacts.join(", "),
            self.source,
            self.why
        )
    }
}

/// The revocation status of a verified chain.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RevocationStatus {
    /// Revocations that count, nearest the target first.
    pub revoked: Vec<Revoked>,
    /// Revocation statements about the chain that do not count.
    pub ignored: Vec<Ignored>,
}

/// One artifact of the chain: the step that produced it and that step's signers.
struct ChainArtifact {
    /// Position of the producing link in the chain; materials of the first link that no
    /// link produces sort before it.
    order: usize,
    step: Option<String>,
    signers: BTreeSet<Fingerprint>,
}

/// Every digest of a verified chain: each link's subjects (produced by that link) and
/// each link's materials (produced by the link before, or by nobody the chain knows).
fn chain_artifacts(links: &[VerifiedLink]) -> BTreeMap<String, ChainArtifact> {
    let mut out: BTreeMap<String, ChainArtifact> = BTreeMap::new();
    for (i, link) in links.iter().enumerate() {
        let signers: BTreeSet<Fingerprint> =
            link.signers.iter().filter_map(|s| s.parse().ok()).collect();
        for s in &link.subjects {
            let a = out.entry(s.clone()).or_insert_with(|| ChainArtifact {
                order: i + 1,
                step: None,
                signers: BTreeSet::new(),
            });
            // A link about its own material (evaluate) did not produce it: it keeps the
            // earlier producer, and its signers may not revoke it (spec/policy.md 6).
            if link.materials.contains(s) {
                continue;
            }
            if a.step.is_none() {
                a.order = i + 1;
                a.step = Some(link.step.clone());
            }
            a.signers.extend(signers.iter().copied());
        }
        for m in &link.materials {
            out.entry(m.clone()).or_insert_with(|| ChainArtifact {
                order: 0,
                step: None,
                signers: BTreeSet::new(),
            });
        }
    }
    out
}

/// The keys allowed to revoke `artifact` under `policy`.
fn authorised_keys(artifact: &ChainArtifact, policy: &Policy) -> Vec<PublicKey> {
    let mut keys = policy.revocation.revokers.clone();
    if policy.revocation.signer_may_revoke {
        let own = policy
            .steps
            .iter()
            .flat_map(|s| s.signers.iter())
            .filter(|k| artifact.signers.contains(&k.fingerprint()));
        keys.extend(own.cloned());
    }
    keys
}

/// Decides which revocation statements among `candidates` count against the verified
/// `links` (as returned by [`crate::lineage::verify_chain`]).
///
/// A candidate counts for an artifact of the chain when it is a valid revocation whose
/// subject is that artifact, every signature verifies with a key authorised to revoke it
/// ([`RevocationPolicy`]), and its receipt proves it is in the trusted log (with the
/// policy's witness cosignatures). Candidates that are not revocations, or name nothing
/// in the chain, are passed over; every other candidate that fails a check is listed in
/// [`RevocationStatus::ignored`] with the reason, never dropped silently.
pub fn check_revocations(
    links: &[VerifiedLink],
    candidates: &[Attestation],
    policy: &Policy,
) -> RevocationStatus {
    let artifacts = chain_artifacts(links);
    let mut status = RevocationStatus::default();
    for a in candidates {
        let Ok(statement) = Statement::from_json(&a.envelope.payload) else {
            continue;
        };
        if statement.predicate_type != PREDICATE_TYPE_REVOCATION_V1 {
            continue;
        }
        let named: Vec<String> = statement
            .subject
            .iter()
            .flat_map(|s| s.digests())
            .map(|d| d.to_string())
            .filter(|d| artifacts.contains_key(d))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if named.is_empty() {
            continue;
        }
        let ignore = |why: String| Ignored {
            artifacts: named.clone(),
            source: a.source.clone(),
            why,
        };
        let revocation = match Revocation::from_statement(&statement) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                status
                    .ignored
                    .push(ignore(format!("invalid predicate: {e}")));
                continue;
            }
        };
        let Some(receipt) = &a.receipt else {
            status
                .ignored
                .push(ignore("no log receipt, so not provably in the log".into()));
            continue;
        };
        let record = match receipt.verify(&a.envelope, &policy.log, None) {
            Ok((_, record)) => record,
            Err(e) => {
                status
                    .ignored
                    .push(ignore(format!("not provably in the trusted log: {e}")));
                continue;
            }
        };
        if let Err(e) = policy.witnesses.check(receipt.checkpoint.as_bytes()) {
            status.ignored.push(ignore(format!("not witnessed: {e}")));
            continue;
        }
        for artifact in &named {
            let keys = authorised_keys(&artifacts[artifact], policy);
            if !all_signed_by(a, &keys) {
                let signers: Vec<String> = record.signers.iter().map(|f| f.to_string()).collect();
                status.ignored.push(Ignored {
                    artifacts: vec![artifact.clone()],
                    source: a.source.clone(),
                    why: format!(
                        "signed by {} which the policy does not authorise to revoke {artifact}",
                        signers.join(", ")
                    ),
                });
                continue;
            }
            status.revoked.push(Revoked {
                artifact: artifact.clone(),
                step: artifacts[artifact].step.clone(),
                source: a.source.clone(),
                log_index: receipt.log_index,
                signers: record.signers.iter().map(|f| f.to_string()).collect(),
                revocation: revocation.clone(),
            });
        }
    }
    // Nearest the target first: that is the artifact a responder looks at first.
    status
        .revoked
        .sort_by_key(|r| (std::cmp::Reverse(artifacts[&r.artifact].order), r.log_index));
    status
}

/// Whether the envelope has signatures and each verifies with one of `keys`.
fn all_signed_by(a: &Attestation, keys: &[PublicKey]) -> bool {
    let pae = a.envelope.pae();
    !a.envelope.signatures.is_empty()
        && a.envelope
            .signatures
            .iter()
            .all(|sig| keys.iter().any(|k| k.verify(&pae, &sig.sig).is_ok()))
}

#[cfg(test)]
#[path = "revocation/tests.rs"]
mod tests;
