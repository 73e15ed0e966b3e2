//! Lineage verification: checks an artifact's chain of attestations, from creator to
//! deployer, against a [`Policy`] (`spec/policy.md`).
//!
//! The walk starts at the target artifact and goes backwards through the policy's
//! steps: the last step must have an attestation whose subject is the target; each
//! earlier step must have one whose subject is among the materials of the step after it.
//! Every attestation used must be signed only by keys the policy allows for its step,
//! carry the step's build type, and come with a receipt proving it is in the trusted log;
//! when the policy names witnesses, the receipt's checkpoint must carry at least
//! `min_witnesses` of their cosignatures.
//! Attestations that fail a check are skipped if another one for the same link passes,
//! so that anyone logging bogus attestations about an artifact cannot break its chain;
//! when none passes, the first failure is reported.

use crate::checkpoint::LogVerifier;
use crate::dsse::Envelope;
use crate::keys::{Fingerprint, PublicKey};
use crate::policy::{Policy, PolicyStep};
use crate::receipt::{LogReceipt, ReceiptError};
use crate::slsa::{statement_materials, Provenance};
use crate::statement::{Digest, Statement};
use crate::witness::WitnessPolicy;
use std::collections::BTreeSet;
use thiserror::Error;

/// An attestation to check: the signed envelope and its log receipt, if any.
#[derive(Clone, Debug)]
pub struct Attestation {
    /// Where it came from, for messages (a file name, `log entry 12`).
    pub source: String,
    /// The signed envelope.
    pub envelope: Envelope,
    /// Proof that the log included it.
    pub receipt: Option<LogReceipt>,
}

/// The first broken link of a chain.
#[derive(Debug, Error)]
pub enum LineageError {
    /// No attestation for a required step at all.
    #[error("step {step} missing: no attestation with build type {build_type} has subject {want}")]
    StepMissing {
        /// Policy step name.
        step: String,
        /// Its build type.
        build_type: String,
        /// The digests it should have been about.
        want: String,
    },
    /// Attestations for the step exist, but none is about the artifact the next step used.
    #[error("digest mismatch at step {step}: the chain needs subject {want}, but {step} attestations are about {found}")]
    DigestMismatch {
        /// Policy step name.
        step: String,
        /// The digests the chain needs.
        want: String,
        /// The subjects found instead.
        found: String,
    },
    /// Signed by a key the policy does not allow for the step.
    #[error(
        "unknown signer at step {step}: {source_name} has a signature by no key allowed for {step}"
    )]
    UnknownSigner {
        /// Policy step name.
        step: String,
        /// The attestation.
        source_name: String,
    },
    /// No receipt, or a receipt whose proof does not verify.
    #[error("not in log at step {step}: {source_name}: {reason}")]
    NotInLog {
        /// Policy step name.
        step: String,
        /// The attestation.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The receipt's checkpoint is not signed by the trusted log key.
    #[error("inconsistent checkpoint at step {step}: {source_name}: checkpoint is not signed by the trusted log key {log}")]
    UntrustedCheckpoint {
        /// Policy step name.
        step: String,
        /// The attestation.
        source_name: String,
        /// The trusted log's origin.
        log: String,
    },
    /// The receipt's checkpoint lacks the witness cosignatures the policy requires.
    #[error("not witnessed at step {step}: {source_name}: {reason}")]
    NotWitnessed {
        /// Policy step name.
        step: String,
        /// The attestation.
        source_name: String,
        /// Why (how many cosignatures verified, or which one was bad).
        reason: String,
    },
    /// The envelope's payload is not a valid statement for a step.
    #[error("invalid attestation at step {step}: {source_name}: {reason}")]
    Invalid {
        /// Policy step name.
        step: String,
        /// The attestation.
        source_name: String,
        /// Why.
        reason: String,
    },
}

/// One verified link of the chain.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifiedLink {
    /// Policy step name.
    pub step: String,
    /// The attestation's source.
    pub source: String,
    /// Its index in the log.
    pub log_index: u64,
    /// Size of the checkpoint its proof is against.
    pub tree_size: u64,
    /// Its subjects.
    pub subjects: Vec<String>,
    /// Its materials.
    pub materials: Vec<String>,
    /// Fingerprints of its signers.
    pub signers: Vec<String>,
}

fn join(d: &BTreeSet<Digest>) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Signers of `envelope` among `allowed`: every signature must verify with one of them.
fn allowed_signers(envelope: &Envelope, allowed: &[PublicKey]) -> Option<Vec<Fingerprint>> {
    if envelope.signatures.is_empty() {
        return None;
    }
    let pae = envelope.pae();
    let mut signers = BTreeSet::new();
    for sig in &envelope.signatures {
        let key = allowed.iter().find(|k| k.verify(&pae, &sig.sig).is_ok())?;
        signers.insert(key.fingerprint());
    }
    Some(signers.into_iter().collect())
}

struct Parsed {
    subjects: BTreeSet<Digest>,
    materials: Vec<Digest>,
}

fn parse(a: &Attestation) -> Option<(Parsed, String)> {
    let statement = Statement::from_json(&a.envelope.payload).ok()?;
    let provenance = Provenance::from_statement(&statement).ok()??;
    let materials = statement_materials(&statement).ok()?;
    let subjects = statement.subject.iter().flat_map(|s| s.digests()).collect();
    Some((
        Parsed {
            subjects,
            materials,
        },
        provenance.build_definition.build_type,
    ))
}

fn check_one(
    a: &Attestation,
    step: &PolicyStep,
    policy: &Policy,
    parsed: &Parsed,
) -> Result<VerifiedLink, LineageError> {
    check_signed_and_logged(
        a,
        &step.name,
        &step.signers,
        &policy.log,
        &policy.witnesses,
        parsed,
    )
}

/// The checks every link passes, whoever chose the keys: every signature by one of
/// `allowed`, each signer listed in the leaf record, the receipt proving inclusion under
/// a checkpoint signed by `log`, and the witness cosignatures `witnesses` asks for.
fn check_signed_and_logged(
    a: &Attestation,
    step: &str,
    allowed: &[PublicKey],
    log: &LogVerifier,
    witnesses: &WitnessPolicy,
    parsed: &Parsed,
) -> Result<VerifiedLink, LineageError> {
    let Some(signers) = allowed_signers(&a.envelope, allowed) else {
        return Err(LineageError::UnknownSigner {
            step: step.to_string(),
            source_name: a.source.clone(),
        });
    };
    let Some(receipt) = &a.receipt else {
        return Err(LineageError::NotInLog {
            step: step.to_string(),
            source_name: a.source.clone(),
            reason: "no log receipt (never submitted?)".into(),
        });
    };
    let (cp, record) = receipt
        .verify(&a.envelope, log, signers.first())
        .map_err(|e| match e {
            ReceiptError::Checkpoint(_) => LineageError::UntrustedCheckpoint {
                step: step.to_string(),
                source_name: a.source.clone(),
                log: log.origin().to_string(),
            },
            other => LineageError::NotInLog {
                step: step.to_string(),
                source_name: a.source.clone(),
                reason: other.to_string(),
            },
        })?;
    if let Some(missing) = signers.iter().find(|fp| !record.signers.contains(fp)) {
        return Err(LineageError::NotInLog {
            step: step.to_string(),
            source_name: a.source.clone(),
            reason: format!("leaf record does not list signer {missing}"),
        });
    }
    witnesses
        .check(receipt.checkpoint.as_bytes())
        .map_err(|e| LineageError::NotWitnessed {
            step: step.to_string(),
            source_name: a.source.clone(),
            reason: e.to_string(),
        })?;
    Ok(VerifiedLink {
        step: step.to_string(),
        source: a.source.clone(),
        log_index: receipt.log_index,
        tree_size: cp.tree_size,
        subjects: parsed.subjects.iter().map(ToString::to_string).collect(),
        materials: parsed.materials.iter().map(ToString::to_string).collect(),
        signers: signers.iter().map(ToString::to_string).collect(),
    })
}

/// Verifies one attestation outside a policy chain: every signature by one of `allowed`
/// (each listed in the leaf record), included in the log of `log`, cosigned as
/// `witnesses` requires. The link's step is the Pedigree step its build type names, or
/// `attestation` for any other statement. Used where the keys come from elsewhere than
/// a policy step, such as the keys the log recorded for the entry (`pedigree bom`
/// without a policy); the caller decides what those keys are worth.
///
/// # Errors
///
/// [`LineageError::Invalid`] when the payload is not an in-toto statement, else the
/// first check that failed, as for a link of [`verify_chain`].
pub fn verify_attestation(
    a: &Attestation,
    allowed: &[PublicKey],
    log: &LogVerifier,
    witnesses: &WitnessPolicy,
) -> Result<VerifiedLink, LineageError> {
    let statement =
        Statement::from_json(&a.envelope.payload).map_err(|e| LineageError::Invalid {
            step: "attestation".into(),
            source_name: a.source.clone(),
            reason: e.to_string(),
        })?;
    let provenance = Provenance::from_statement(&statement).ok().flatten();
    let step = provenance
        .as_ref()
        .and_then(Provenance::step)
        .map_or("attestation", |s| s.name());
    let parsed = Parsed {
        subjects: statement.subject.iter().flat_map(|s| s.digests()).collect(),
        materials: provenance.map(|p| p.materials()).unwrap_or_default(),
    };
    check_signed_and_logged(a, step, allowed, log, witnesses, &parsed)
}

/// Most candidate links tried in one verification, bounding the search when many
/// attestations are about the same artifacts.
const MAX_ATTEMPTS: usize = 10_000;

struct Search<'a> {
    attestations: &'a [Attestation],
    parsed: Vec<Option<(Parsed, String)>>,
    policy: &'a Policy,
    attempts: usize,
}

impl Search<'_> {
    /// Verifies steps `..=pos` given that step `pos` must be about one of `want`; returns
    /// the links in creator-to-deployer order.
    fn walk(
        &mut self,
        pos: usize,
        want: &BTreeSet<Digest>,
    ) -> Result<Vec<VerifiedLink>, LineageError> {
        let step = &self.policy.steps[pos];
        let of_step: Vec<usize> = (0..self.attestations.len())
            .filter(|&i| matches!(&self.parsed[i], Some((_, bt)) if *bt == step.build_type))
            .collect();
        let matching: Vec<usize> = of_step
            .iter()
            .copied()
            .filter(|&i| {
                self.parsed[i]
                    .as_ref()
                    .is_some_and(|(p, _)| !p.subjects.is_disjoint(want))
            })
            .collect();
        if matching.is_empty() {
            if !step.required {
                return if pos == 0 {
                    Ok(Vec::new())
                } else {
                    self.walk(pos - 1, want)
                };
            }
            if of_step.is_empty() {
                return Err(LineageError::StepMissing {
                    step: step.name.clone(),
                    build_type: step.build_type.clone(),
                    want: join(want),
                });
            }
            let found: BTreeSet<Digest> = of_step
                .iter()
                .filter_map(|&i| self.parsed[i].as_ref())
                .flat_map(|(p, _)| p.subjects.iter().cloned())
                .collect();
            return Err(LineageError::DigestMismatch {
                step: step.name.clone(),
                want: join(want),
                found: join(&found),
            });
        }
        let mut first_err = None;
        for i in matching {
            self.attempts += 1;
            if self.attempts > MAX_ATTEMPTS {
                break;
            }
            let Some((parsed, _)) = self.parsed[i].as_ref() else {
                continue;
            };
            let link = match check_one(&self.attestations[i], step, self.policy, parsed) {
                Ok(link) => link,
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            let materials: BTreeSet<Digest> = parsed.materials.iter().cloned().collect();
            let earlier_required = self.policy.steps[..pos].iter().any(|s| s.required);
            let rest = if pos == 0 {
                Ok(Vec::new())
            } else if materials.is_empty() && earlier_required {
                Err(LineageError::StepMissing {
                    step: self.policy.steps[pos - 1].name.clone(),
                    build_type: self.policy.steps[pos - 1].build_type.clone(),
                    want: format!("(step {} names no materials)", step.name),
                })
            } else if materials.is_empty() {
                Ok(Vec::new())
            } else {
                self.walk(pos - 1, &materials)
            };
            match rest {
                Ok(mut links) => {
                    links.push(link);
                    return Ok(links);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| LineageError::StepMissing {
            step: step.name.clone(),
            build_type: step.build_type.clone(),
            want: join(want),
        }))
    }
}

/// Verifies the chain that produced `target` (the digests naming the final artifact).
///
/// When several attestations could form a link, each is tried in turn (depth first), so
/// a chain verifies if any complete path through the policy's steps does.
///
/// # Errors
///
/// The first broken link found, walking back from the target.
pub fn verify_chain(
    target: &[Digest],
    attestations: &[Attestation],
    policy: &Policy,
) -> Result<Vec<VerifiedLink>, LineageError> {
    let mut search = Search {
        attestations,
        parsed: attestations.iter().map(parse).collect(),
        policy,
        attempts: 0,
    };
    let want: BTreeSet<Digest> = target.iter().cloned().collect();
    // No attestation at all (online: the log knows nothing about the target): the
    // artifact is not one that was attested, e.g. a modified file.
    if let (Some(last), true) = (policy.steps.last(), attestations.is_empty()) {
        return Err(LineageError::DigestMismatch {
            step: last.name.clone(),
            want: join(&want),
            found: "no attestation about this digest".into(),
        });
    }
    match policy.steps.len() {
        0 => Ok(Vec::new()),
        n => search.walk(n - 1, &want),
    }
}
