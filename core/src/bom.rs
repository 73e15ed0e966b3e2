//! AI-BOM: a CycloneDX 1.6 ML-BOM of a model, built from its verified lineage
//! (`spec/bom.md`).
//!
//! The input is attestations that already passed verification ([`crate::lineage`]:
//! signatures and inclusion in the trusted log); this module only maps them, reading
//! nothing and trusting nothing else. The model is the component the caller names; its
//! ancestors are the models the train, finetune and quantize steps were made from, its
//! datasets the subjects of dataset steps those steps used, its model card the
//! parameters of those steps and the results of evaluate steps about it. Every
//! attestation used is an external reference to its log entry, with the SHA-256 of its
//! DSSE envelope.
//!
//! Out of scope: fetching and verifying (the CLI does that with [`crate::lineage`]),
//! the clock (the caller passes the timestamp), SPDX.

pub mod cyclonedx;

use crate::entry::{envelope_digest, LeafRecord, RecordError};
use crate::lineage::{Attestation, VerifiedLink};
use crate::slsa::{Provenance, Step};
use crate::statement::{Digest, Statement, StatementError};
use cyclonedx::{
    Approach, Bom, Component, ComponentData, ComponentType, Considerations, DataContents,
    DatasetRef, Dependency, ExternalReference, ExternalReferenceType, Hash, Metadata, MlFormat,
    ModelCard, ModelParameters, Pedigree, PerformanceMetric, Property, QuantitativeAnalysis, Tools,
};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use thiserror::Error;

/// Why a BOM could not be built.
#[derive(Debug, Error)]
pub enum BomError {
    /// A verified link's envelope does not hold a statement (cannot happen after
    /// verification, but the mapping does not assume it).
    #[error("{source_name}: payload is not an in-toto statement")]
    Statement {
        /// The attestation.
        source_name: String,
        /// The parser's error.
        #[source]
        source: StatementError,
    },
    /// A verified link has no receipt to take the log facts from.
    #[error("{source_name}: no log receipt")]
    NoReceipt {
        /// The attestation.
        source_name: String,
    },
    /// The receipt's leaf record does not decode.
    #[error("{source_name}: invalid leaf record")]
    Record {
        /// The attestation.
        source_name: String,
        /// The decoder's error.
        #[source]
        source: RecordError,
    },
    /// The link handed in is not for the attestation handed with it.
    #[error("{source_name}: link is for {link_source}")]
    Mismatch {
        /// The attestation.
        source_name: String,
        /// The link's source.
        link_source: String,
    },
    /// No verified train, finetune or quantize attestation has the model as subject.
    #[error("no verified train, finetune or quantize attestation has subject {model}")]
    NoModelStep {
        /// The model digest.
        model: String,
    },
}

/// One verified attestation with what the BOM needs from it.
#[derive(Clone, Debug)]
pub struct VerifiedAttestation {
    /// The verification result (step, log index, signers).
    pub link: VerifiedLink,
    /// The signed statement.
    pub statement: Statement,
    /// Its SLSA provenance, when it is one.
    pub provenance: Option<Provenance>,
    /// SHA-256 of the envelope's canonical JSON, as the leaf record commits to it.
    pub envelope_sha256: [u8; 32],
    /// When the log integrated it, from the leaf record.
    pub integrated_time_ms: u64,
}

impl VerifiedAttestation {
    /// Pairs a verified link with the attestation it was verified from.
    ///
    /// # Errors
    ///
    /// A [`BomError`] when the two do not belong together or the attestation cannot
    /// be read.
    pub fn new(link: VerifiedLink, attestation: &Attestation) -> Result<Self, BomError> {
        let source_name = attestation.source.clone();
        if link.source != source_name {
            return Err(BomError::Mismatch {
                source_name,
                link_source: link.source,
            });
        }
        let statement = Statement::from_json(&attestation.envelope.payload).map_err(|source| {
            BomError::Statement {
                source_name: source_name.clone(),
                source,
            }
        })?;
        let receipt = attestation
            .receipt
            .as_ref()
            .ok_or_else(|| BomError::NoReceipt {
                source_name: source_name.clone(),
            })?;
        let record = LeafRecord::decode(&receipt.leaf).map_err(|source| BomError::Record {
            source_name: source_name.clone(),
            source,
        })?;
        Ok(VerifiedAttestation {
            link,
            provenance: Provenance::from_statement(&statement).ok().flatten(),
            statement,
            envelope_sha256: envelope_digest(&attestation.envelope.to_json()),
            integrated_time_ms: record.integrated_time_ms,
        })
    }

    fn step(&self) -> Option<Step> {
        self.provenance.as_ref().and_then(Provenance::step)
    }

    fn params(&self) -> Option<&Map<String, Value>> {
        self.provenance
            .as_ref()
            .and_then(|p| p.build_definition.external_parameters.as_object())
    }

    fn has_subject(&self, d: &Digest) -> bool {
        self.statement
            .subject
            .iter()
            .any(|s| s.digests().any(|x| x == *d))
    }

    fn has_material(&self, d: &Digest) -> bool {
        self.provenance
            .as_ref()
            .is_some_and(|p| p.materials().contains(d))
    }

    /// The name this statement gives `d`, as subject or as material.
    fn name_of(&self, d: &Digest) -> Option<String> {
        let deps = self
            .provenance
            .iter()
            .flat_map(|p| p.build_definition.resolved_dependencies.iter());
        self.statement
            .subject
            .iter()
            .chain(deps)
            .find(|r| r.digests().any(|x| x == *d))
            .and_then(|r| r.name.clone())
    }

    /// Every digest the statement lists beside `d` for the same artifact.
    fn digests_of(&self, d: &Digest) -> Vec<Digest> {
        self.statement
            .subject
            .iter()
            .find(|r| r.digests().any(|x| x == *d))
            .map(|r| r.digests().collect())
            .unwrap_or_default()
    }
}

/// What a BOM is made from.
#[derive(Clone, Copy, Debug)]
pub struct BomInput<'a> {
    /// The model the BOM describes.
    pub model: &'a Digest,
    /// Every verified attestation the BOM may use, in any order.
    pub attestations: &'a [VerifiedAttestation],
    /// The log's base URL (external references point at its entries).
    pub log_url: &'a str,
    /// The log's origin, as its checkpoints name it.
    pub log_origin: &'a str,
    /// How the attestations were verified, for `metadata.properties`
    /// (e.g. `policy` or `log-key`).
    pub verification: &'a str,
    /// RFC 3339 time the BOM is made (`metadata.timestamp`).
    pub timestamp: &'a str,
    /// Version of the tool making it.
    pub tool_version: &'a str,
}

const MODEL_STEPS: [Step; 3] = [Step::Train, Step::Finetune, Step::Quantize];

/// CycloneDX `hash-alg` for an in-toto digest algorithm, where one exists.
fn hash_alg(algorithm: &str) -> Option<&'static str> {
    Some(match algorithm {
        "md5" => "MD5",
        "sha1" => "SHA-1",
        "sha256" => "SHA-256",
        "sha384" => "SHA-384",
        "sha512" => "SHA-512",
        "sha3_256" => "SHA3-256",
        "sha3_384" => "SHA3-384",
        "sha3_512" => "SHA3-512",
        "blake2b" => "BLAKE2b-512",
        "blake3" => "BLAKE3",
        _ => return None,
    })
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string, or the strings of an array.
fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().map(value_text).collect(),
        _ => Vec::new(),
    }
}

struct Builder<'a> {
    input: BomInput<'a>,
    /// Attestations sorted by log index, so every choice below is deterministic.
    sorted: Vec<&'a VerifiedAttestation>,
}

impl<'a> Builder<'a> {
    /// The first attestation of one of `steps` with subject `d`.
    fn producer(&self, d: &Digest, steps: &[Step]) -> Option<&'a VerifiedAttestation> {
        self.sorted
            .iter()
            .copied()
            .find(|a| a.step().is_some_and(|s| steps.contains(&s)) && a.has_subject(d))
    }

    fn about(&self, d: &Digest) -> Vec<&'a VerifiedAttestation> {
        self.sorted
            .iter()
            .copied()
            .filter(|a| a.has_subject(d) || self.is_evaluation_of(a, d))
            .collect()
    }

    fn is_evaluation_of(&self, a: &VerifiedAttestation, d: &Digest) -> bool {
        a.step() == Some(Step::Evaluate) && (a.has_material(d) || a.has_subject(d))
    }

    /// The model-making steps from `d` back to the first, newest first, each once.
    fn history(&self, d: &Digest) -> Vec<&'a VerifiedAttestation> {
        let mut out: Vec<&VerifiedAttestation> = Vec::new();
        let mut todo = vec![d.clone()];
        let mut seen = BTreeSet::new();
        while let Some(cur) = todo.pop() {
            if !seen.insert(cur.clone()) {
                continue;
            }
            if let Some(p) = self.producer(&cur, &MODEL_STEPS) {
                if !out.iter().any(|a| a.link.source == p.link.source) {
                    out.push(p);
                }
                todo.extend(p.provenance.iter().flat_map(Provenance::materials).rev());
            }
        }
        out
    }

    /// Datasets the history of `d` used: materials that a dataset step has as subject.
    fn datasets(&self, d: &Digest) -> Vec<Digest> {
        let mut out = Vec::new();
        for a in self.history(d).into_iter().rev() {
            for m in a.provenance.iter().flat_map(Provenance::materials) {
                if self.producer(&m, &[Step::Dataset]).is_some() && !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }

    fn name(&self, d: &Digest) -> String {
        self.sorted
            .iter()
            .find_map(|a| a.has_subject(d).then(|| a.name_of(d)).flatten())
            .or_else(|| self.sorted.iter().find_map(|a| a.name_of(d)))
            .unwrap_or_else(|| d.to_string())
    }

    fn hashes(&self, d: &Digest) -> Vec<Hash> {
        let mut all: BTreeSet<Digest> = BTreeSet::from([d.clone()]);
        for a in &self.sorted {
            all.extend(a.digests_of(d));
        }
        all.iter()
            .filter_map(|x| {
                hash_alg(&x.algorithm).map(|alg| Hash {
                    alg,
                    content: x.value.clone(),
                })
            })
            .collect()
    }

    fn reference(&self, a: &VerifiedAttestation) -> ExternalReference {
        let step = a.step().map_or("attestation", Step::name);
        ExternalReference {
            type_: ExternalReferenceType::Attestation,
            url: format!(
                "{}/api/v1/entries/{}",
                self.input.log_url.trim_end_matches('/'),
                a.link.log_index
            ),
            comment: Some(format!(
                "{step} attestation at log index {} of {}, signed by {}; the hash is the SHA-256 of its DSSE envelope",
                a.link.log_index,
                self.input.log_origin,
                a.link.signers.join(", ")
            )),
            hashes: vec![Hash {
                alg: "SHA-256",
                content: hex::encode(a.envelope_sha256),
            }],
        }
    }

    fn references(&self, d: &Digest) -> Vec<ExternalReference> {
        self.about(d)
            .into_iter()
            .map(|a| self.reference(a))
            .collect()
    }

    fn model_card(&self, d: &Digest) -> ModelCard {
        let history = self.history(d);
        // Newest first: a fine-tune's own setting wins over the base model's.
        let param = |key: &str| -> Option<&Value> {
            history
                .iter()
                .find_map(|a| a.params().and_then(|p| p.get(key)))
        };
        let text = |key: &str| param(key).map(value_text);
        let parameters = ModelParameters {
            approach: text("approach")
                .filter(|t| cyclonedx::APPROACH_TYPES.contains(&t.as_str()))
                .map(|type_| Approach { type_ }),
            task: text("task"),
            architecture_family: text("architecture").or_else(|| text("architecture_family")),
            model_architecture: text("model_architecture"),
            datasets: self
                .datasets(d)
                .iter()
                .map(|x| DatasetRef {
                    ref_: x.to_string(),
                })
                .collect(),
            inputs: strings(param("inputs"))
                .into_iter()
                .map(|format| MlFormat { format })
                .collect(),
            outputs: strings(param("outputs"))
                .into_iter()
                .map(|format| MlFormat { format })
                .collect(),
        };
        let considerations = Considerations {
            users: strings(param("users")),
            use_cases: strings(param("use_cases")),
            technical_limitations: strings(param("limitations")),
        };
        let mut properties = Vec::new();
        for a in history.iter().rev() {
            let step = a.step().map_or("attestation", Step::name);
            for (key, value) in a.params().into_iter().flatten() {
                properties.push(Property {
                    name: format!("pedigree:{step}:{key}"),
                    value: value_text(value),
                });
            }
        }
        let metrics = self.metrics(d);
        ModelCard {
            model_parameters: (parameters != ModelParameters::default()).then_some(parameters),
            quantitative_analysis: (!metrics.is_empty()).then_some(QuantitativeAnalysis {
                performance_metrics: metrics,
            }),
            considerations: (considerations != Considerations::default()).then_some(considerations),
            properties,
        }
    }

    /// Metrics of the evaluate steps about `d`: `results` (name to value), or
    /// `metrics` when it maps names to values; the slice is `benchmark(s)`.
    fn metrics(&self, d: &Digest) -> Vec<PerformanceMetric> {
        let mut out = Vec::new();
        for a in self.sorted.iter().filter(|a| self.is_evaluation_of(a, d)) {
            let Some(params) = a.params() else { continue };
            let slice = strings(params.get("benchmark").or_else(|| params.get("benchmarks")));
            let slice = (!slice.is_empty()).then(|| slice.join(", "));
            let results = params
                .get("results")
                .and_then(Value::as_object)
                .or_else(|| params.get("metrics").and_then(Value::as_object));
            for (name, value) in results.into_iter().flatten() {
                out.push(PerformanceMetric {
                    type_: name.clone(),
                    value: value_text(value),
                    slice: slice.clone(),
                });
            }
        }
        out
    }

    fn model_component(&self, d: &Digest, seen: &mut BTreeSet<Digest>) -> Component {
        seen.insert(d.clone());
        let producer = self.producer(d, &MODEL_STEPS);
        let mut ancestors = Vec::new();
        for m in producer
            .iter()
            .flat_map(|p| p.provenance.iter())
            .flat_map(Provenance::materials)
        {
            if !seen.contains(&m) && self.producer(&m, &MODEL_STEPS).is_some() {
                ancestors.push(self.model_component(&m, seen));
            }
        }
        let pedigree = producer
            .filter(|_| !ancestors.is_empty())
            .map(|p| Pedigree {
                notes: Some(format!(
                    "{} of {} (log index {})",
                    p.step().map_or("attestation", Step::name),
                    ancestors
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    p.link.log_index
                )),
                ancestors,
            });
        Component {
            type_: ComponentType::MachineLearningModel,
            bom_ref: Some(d.to_string()),
            name: self.name(d),
            version: None,
            description: None,
            hashes: self.hashes(d),
            pedigree,
            external_references: self.references(d),
            model_card: Some(self.model_card(d)),
            data: Vec::new(),
            properties: Vec::new(),
        }
    }

    fn data_component(&self, d: &Digest) -> Component {
        let name = self.name(d);
        let properties: Vec<Property> = self
            .producer(d, &[Step::Dataset])
            .and_then(VerifiedAttestation::params)
            .into_iter()
            .flatten()
            .map(|(key, value)| Property {
                name: format!("pedigree:dataset:{key}"),
                value: value_text(value),
            })
            .collect();
        Component {
            type_: ComponentType::Data,
            bom_ref: Some(d.to_string()),
            name: name.clone(),
            version: None,
            description: None,
            hashes: self.hashes(d),
            pedigree: None,
            external_references: self.references(d),
            model_card: None,
            data: vec![ComponentData {
                type_: "dataset",
                name: Some(name),
                description: None,
                contents: (!properties.is_empty()).then_some(DataContents { properties }),
            }],
            properties: Vec::new(),
        }
    }
}

/// The digests of `components` and, recursively, of their ancestors.
fn collect_refs(components: &[Component], out: &mut Vec<Digest>) {
    for c in components {
        if let Some(d) = c.bom_ref.as_deref().and_then(|r| r.parse().ok()) {
            out.push(d);
        }
        if let Some(p) = &c.pedigree {
            collect_refs(&p.ancestors, out);
        }
    }
}

/// The serial number: a UUID (version 8, RFC 9562: bits of our choosing) made from the
/// SHA-256 of the model digest, the log origin and each attestation used (log index and
/// envelope digest), so the same evidence always gives the same serial number, however
/// the log grows, and different evidence a different one.
fn serial_number(input: &BomInput<'_>, used: &[&VerifiedAttestation]) -> String {
    let mut h = Sha256::new();
    h.update(b"pedigree-bom/v1\n");
    h.update(input.model.to_string().as_bytes());
    h.update(b"\n");
    h.update(input.log_origin.as_bytes());
    h.update(b"\n");
    for a in used {
        h.update(format!("{} {}\n", a.link.log_index, hex::encode(a.envelope_sha256)).as_bytes());
    }
    let mut b: [u8; 16] = h.finalize()[..16].try_into().expect("16 of 32 bytes");
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

/// Builds the CycloneDX 1.6 ML-BOM of `input.model` (`spec/bom.md` section 3).
///
/// # Errors
///
/// [`BomError::NoModelStep`] when no verified attestation made the model.
pub fn build(input: BomInput<'_>) -> Result<Bom, BomError> {
    let mut sorted: Vec<&VerifiedAttestation> = input.attestations.iter().collect();
    sorted.sort_by_key(|a| a.link.log_index);
    sorted.dedup_by_key(|a| a.link.log_index);
    let b = Builder { input, sorted };
    if b.producer(input.model, &MODEL_STEPS).is_none() {
        return Err(BomError::NoModelStep {
            model: input.model.to_string(),
        });
    }
    let model = b.model_component(input.model, &mut BTreeSet::new());
    let datasets = b.datasets(input.model);
    let mut components = vec![model];
    components.extend(datasets.iter().map(|d| b.data_component(d)));
    // The attestations the document refers to, for the serial number.
    let mut described = Vec::new();
    collect_refs(&components, &mut described);
    let used: Vec<&VerifiedAttestation> = b
        .sorted
        .iter()
        .copied()
        .filter(|a| {
            described
                .iter()
                .any(|d| a.has_subject(d) || b.is_evaluation_of(a, d))
        })
        .collect();
    let dependencies = if datasets.is_empty() {
        Vec::new()
    } else {
        vec![Dependency {
            ref_: input.model.to_string(),
            depends_on: datasets.iter().map(ToString::to_string).collect(),
        }]
    };
    Ok(Bom {
        schema: cyclonedx::SCHEMA_URL,
        bom_format: cyclonedx::BOM_FORMAT,
        spec_version: cyclonedx::SPEC_VERSION,
        serial_number: serial_number(&input, &used),
        version: 1,
        metadata: Metadata {
            timestamp: input.timestamp.to_string(),
            tools: Tools {
                components: vec![Component {
                    type_: ComponentType::Application,
                    bom_ref: None,
                    name: "pedigree".into(),
                    version: Some(input.tool_version.to_string()),
                    description: None,
                    hashes: Vec::new(),
                    pedigree: None,
                    external_references: Vec::new(),
                    model_card: None,
                    data: Vec::new(),
                    properties: Vec::new(),
                }],
            },
            properties: vec![
                Property {
                    name: "pedigree:log:origin".into(),
                    value: input.log_origin.to_string(),
                },
                Property {
                    name: "pedigree:log:url".into(),
                    value: input.log_url.to_string(),
                },
                Property {
                    name: "pedigree:verification".into(),
                    value: input.verification.to_string(),
                },
            ],
        },
        components,
        dependencies,
    })
}

#[cfg(test)]
mod tests;
