//! Lineage policy files (`spec/policy.md`): which steps an artifact's history must show,
//! in which order, who may sign each, which log must have recorded them, and which
//! witnesses must have cosigned the checkpoints that prove it.

use crate::checkpoint::{CheckpointError, LogVerifier};
use crate::keys::PublicKey;
use crate::revocation::{RawRevocationPolicy, RevocationPolicy};
use crate::slsa::Step;
use crate::witness::{WitnessError, WitnessPolicy, WitnessVerifier};
use serde::Deserialize;
use thiserror::Error;

/// Why a policy file was rejected.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// Not valid TOML or not the policy shape.
    #[error("invalid policy file")]
    Toml(#[source] toml::de::Error),
    /// The log key does not parse.
    #[error("invalid log_key")]
    LogKey(#[source] CheckpointError),
    /// A step names neither a known step nor a build type.
    #[error("step {index}: {reason}")]
    Step {
        /// Position in the file.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// No steps at all.
    #[error("policy lists no steps")]
    NoSteps,
    /// A witness key does not parse, or `min_witnesses` exceeds the keys listed.
    #[error("invalid witnesses")]
    Witness(#[source] WitnessError),
    /// A key in `[revocation] revokers` does not resolve.
    #[error("revocation: revoker {name:?}: {reason}")]
    Revoker {
        /// The key as written.
        name: String,
        /// Why it does not resolve.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    log_key: String,
    #[serde(default)]
    min_witnesses: usize,
    #[serde(default)]
    witnesses: Vec<String>,
    #[serde(default)]
    step: Vec<RawStep>,
    #[serde(default)]
    revocation: RawRevocationPolicy,
    #[serde(default)]
    require_scan: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: String,
    #[serde(default)]
    build_type: Option<String>,
    signers: Vec<String>,
    #[serde(default = "yes")]
    required: bool,
}

fn yes() -> bool {
    true
}

/// One step the chain must (or may) show.
#[derive(Clone, Debug)]
pub struct PolicyStep {
    /// Name used in messages (`dataset`, `train`, ...).
    pub name: String,
    /// The SLSA build type an attestation for this step carries.
    pub build_type: String,
    /// The keys allowed to sign this step.
    pub signers: Vec<PublicKey>,
    /// Whether the chain fails without this step.
    pub required: bool,
}

/// A parsed, validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The log that must have recorded every attestation.
    pub log: LogVerifier,
    /// Steps from creator to deployer.
    pub steps: Vec<PolicyStep>,
    /// The witnesses trusted and how many of them must cosign each receipt's
    /// checkpoint (`min_witnesses`; 0 asks for none).
    pub witnesses: WitnessPolicy,
    /// Who may revoke the chain's artifacts (`[revocation]`).
    pub revocation: RevocationPolicy,
    /// The artifact's local files must pass a model scan (`spec/scan.md`) before its
    /// lineage counts as verified.
    pub require_scan: bool,
}

impl Policy {
    /// Parses a policy file. A signer is an inline SPKI PEM public key or a name (such as
    /// a file path) that `resolve_key` turns into a key; core reads no files itself.
    ///
    /// # Errors
    ///
    /// A [`PolicyError`] naming the field that is wrong.
    pub fn from_toml(
        text: &str,
        mut resolve_key: impl FnMut(&str) -> Result<PublicKey, String>,
    ) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(PolicyError::Toml)?;
        let log = LogVerifier::from_vkey(&raw.log_key).map_err(PolicyError::LogKey)?;
        if raw.step.is_empty() {
            return Err(PolicyError::NoSteps);
        }
        let witness_keys = raw
            .witnesses
            .iter()
            .map(|v| WitnessVerifier::from_vkey(v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(PolicyError::Witness)?;
        let witnesses =
            WitnessPolicy::new(witness_keys, raw.min_witnesses).map_err(PolicyError::Witness)?;
        let revocation = RevocationPolicy {
            revokers: raw
                .revocation
                .revokers
                .iter()
                .map(|f| {
                    parse_key(f, &mut resolve_key).map_err(|reason| PolicyError::Revoker {
                        name: f.chars().take(80).collect(),
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?,
            signer_may_revoke: raw.revocation.signer_may_revoke.unwrap_or(true),
        };
        let mut steps = Vec::with_capacity(raw.step.len());
        for (index, s) in raw.step.into_iter().enumerate() {
            let build_type = match (&s.build_type, s.name.parse::<Step>()) {
                (Some(bt), _) => bt.clone(),
                (None, Ok(step)) => step.build_type().to_string(),
                (None, Err(_)) => {
                    return Err(PolicyError::Step {
                        index,
                        reason: format!("{:?} is not a known step; give build_type", s.name),
                    })
                }
            };
            if s.signers.is_empty() {
                return Err(PolicyError::Step {
                    index,
                    reason: format!("step {:?} allows no signers", s.name),
                });
            }
            let signers = s
                .signers
                .iter()
                .map(|f| {
                    parse_key(f, &mut resolve_key).map_err(|e| PolicyError::Step {
                        index,
                        reason: format!("signer {:?}: {e}", f.chars().take(80).collect::<String>()),
                    })
                })
                .collect::<Result<_, _>>()?;
            steps.push(PolicyStep {
                name: s.name,
                build_type,
                signers,
                required: s.required,
            });
        }
        Ok(Policy {
            log,
            steps,
            witnesses,
            revocation,
            require_scan: raw.require_scan,
        })
    }
}

/// A key as the policy names it: inline SPKI PEM, or a name `resolve_key` resolves.
fn parse_key(
    text: &str,
    resolve_key: &mut impl FnMut(&str) -> Result<PublicKey, String>,
) -> Result<PublicKey, String> {
    if text.trim_start().starts_with("-----BEGIN") {
        PublicKey::from_pem(text).map_err(|e| e.to_string())
    } else {
        resolve_key(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vkey() -> String {
        crate::checkpoint::LogSigner::new(
            "log.example",
            ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        )
        .unwrap()
        .verifier_key()
    }

    fn resolve(name: &str) -> Result<PublicKey, String> {
        match name {
            "ab" => {
                Ok(crate::keys::PrivateKey::generate(crate::keys::Algorithm::Ed25519).public_key())
            }
            _ => Err("no such key".into()),
        }
    }

    #[test]
    fn policy_parses_known_and_custom_steps() {
        let fp = "ab";
        let text = format!(
            "log_key = \"{}\"\n[[step]]\nname = \"dataset\"\nsigners = [\"{fp}\"]\n[[step]]\nname = \"distill\"\nbuild_type = \"https://example.com/distill/v1\"\nsigners = [\"{fp}\"]\nrequired = false\n",
            vkey()
        );
        let p = Policy::from_toml(&text, resolve).unwrap();
        assert_eq!(p.steps[0].build_type, "https://pedigree.dev/ml/dataset/v1");
        assert_eq!(p.steps[1].build_type, "https://example.com/distill/v1");
        assert!(!p.steps[1].required);
        assert!(!p.require_scan);
        let p = Policy::from_toml(&format!("require_scan = true\n{text}"), resolve).unwrap();
        assert!(p.require_scan);
    }

    fn witness_vkey(seed: u8) -> String {
        crate::witness::WitnessSigner::new(
            "witness.example/w",
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        )
        .unwrap()
        .verifier()
        .to_vkey()
    }

    #[test]
    fn policy_reads_witnesses() {
        let text = format!(
            "log_key = \"{}\"\nmin_witnesses = 2\nwitnesses = [\"{}\", \"{}\"]\n[[step]]\nname = \"train\"\nsigners = [\"ab\"]\n",
            vkey(),
            witness_vkey(4),
            witness_vkey(5)
        );
        let p = Policy::from_toml(&text, resolve).unwrap();
        assert_eq!(p.witnesses.min(), 2);
        assert_eq!(p.witnesses.witnesses().len(), 2);
    }

    #[test]
    fn bad_policies_are_rejected() {
        let fp = "ab";
        let cases = [
            String::new(),
            format!("log_key = \"{}\"\n", vkey()),
            format!("log_key = \"nope\"\n[[step]]\nname = \"train\"\nsigners = [\"{fp}\"]\n"),
            format!(
                "log_key = \"{}\"\n[[step]]\nname = \"brew\"\nsigners = [\"{fp}\"]\n",
                vkey()
            ),
            format!(
                "log_key = \"{}\"\n[[step]]\nname = \"train\"\nsigners = []\n",
                vkey()
            ),
            format!(
                "log_key = \"{}\"\n[[step]]\nname = \"train\"\nsigners = [\"xyz\"]\n",
                vkey()
            ),
            format!(
                "log_key = \"{}\"\nextra = 1\n[[step]]\nname = \"train\"\nsigners = [\"{fp}\"]\n",
                vkey()
            ),
            // More cosignatures than witnesses, a log key as a witness, a bad key.
            format!(
                "log_key = \"{}\"\nmin_witnesses = 2\nwitnesses = [\"{}\"]\n[[step]]\nname = \"train\"\nsigners = [\"{fp}\"]\n",
                vkey(),
                witness_vkey(4)
            ),
            format!(
                "log_key = \"{0}\"\nmin_witnesses = 1\nwitnesses = [\"{0}\"]\n[[step]]\nname = \"train\"\nsigners = [\"{fp}\"]\n",
                vkey()
            ),
            format!(
                "log_key = \"{}\"\nmin_witnesses = 1\n[[step]]\nname = \"train\"\nsigners = [\"{fp}\"]\n",
                vkey()
            ),
            // A revoker that does not resolve, a misspelt revocation field.
            format!(
                "log_key = \"{}\"\n[revocation]\nrevokers = [\"xyz\"]\n[[step]]\nname = \"train\"\nsigners = [\"{fp}\"]\n",
                vkey()
            ),
            format!(
                "log_key = \"{}\"\n[revocation]\nsigner_may_revok = false\n[[step]]\nname = \"train\"\nsigners = [\"{fp}\"]\n",
                vkey()
            ),
        ];
        for c in cases {
            assert!(Policy::from_toml(&c, resolve).is_err(), "{c}");
        }
    }
}
