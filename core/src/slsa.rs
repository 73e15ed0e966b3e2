//! SLSA Provenance v1 predicates, and the build types Pedigree writes for each
//! step of a model's life.
//!
//! The log reads provenance for its materials: the digests of
//! `buildDefinition.resolvedDependencies` are the lineage edges from an
//! artifact to what it was made from (a dataset, a base model, training code).
//! Other predicate types carry no materials as far as the log is concerned.
//!
//! The types follow <https://slsa.dev/spec/v1.0/provenance>. Checks here cover
//! what the log relies on (URIs where the spec asks for them, an object for
//! `externalParameters`, canonical material digests); the meaning of
//! parameters is left to whoever verifies the build type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::statement::{
    is_uri, json_kind, validate_digest, Digest, DigestError, ResourceDescriptor, Statement,
    STATEMENT_TYPE_V1,
};

/// The `predicateType` of SLSA Provenance v1 (it stays the same for v1.x).
pub const PREDICATE_TYPE_SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// A SLSA Provenance v1 predicate: how an artifact was built and from what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The inputs of the build, including its materials.
    #[serde(rename = "buildDefinition")]
    pub build_definition: BuildDefinition,
    /// Who ran the build and how the run went.
    #[serde(rename = "runDetails")]
    pub run_details: RunDetails,
}

/// The inputs of a build, enough to rerun it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildDefinition {
    /// URI of the template the build followed; a [`Step`] build type for
    /// Pedigree's own steps.
    #[serde(rename = "buildType")]
    pub build_type: String,
    /// Parameters under the control of whoever requested the build (for a
    /// training step: learning rate, epochs, ...); always a JSON object.
    #[serde(rename = "externalParameters")]
    pub external_parameters: Value,
    /// Parameters the build platform chose; a JSON object when present.
    #[serde(rename = "internalParameters", skip_serializing_if = "Option::is_none")]
    pub internal_parameters: Option<Value>,
    /// The artifacts the build read: the materials the log links lineage by.
    #[serde(
        rename = "resolvedDependencies",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// Details of one run of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetails {
    /// The platform that ran the build and vouches for this provenance.
    pub builder: Builder,
    /// Timing and identity of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BuildMetadata>,
    /// Extra outputs of the run that are not subjects, such as logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub byproducts: Vec<ResourceDescriptor>,
}

/// The build platform, the party a verifier has to trust for this provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    /// URI naming the platform and its trust boundary.
    pub id: String,
    /// Software the platform ran on, for audits.
    #[serde(
        rename = "builderDependencies",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub builder_dependencies: Vec<ResourceDescriptor>,
    /// Versions of the platform's components, keyed by component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<BTreeMap<String, String>>,
}

/// When a run happened and how to find it in the builder's records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildMetadata {
    /// The builder's identifier for this run.
    #[serde(rename = "invocationId", skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// RFC 3339 time the run started; kept as text, the log doesn't compare it.
    #[serde(rename = "startedOn", skip_serializing_if = "Option::is_none")]
    pub started_on: Option<String>,
    /// RFC 3339 time the run finished; kept as text, the log doesn't compare it.
    #[serde(rename = "finishedOn", skip_serializing_if = "Option::is_none")]
    pub finished_on: Option<String>,
}

/// The build types Pedigree's CLI writes for each step of a model's life, so
/// that the log and its clients can tell a training run from a quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Assembling a dataset from its sources.
    Dataset,
    /// Training a model from scratch on datasets.
    Train,
    /// Further training of a base model.
    Finetune,
    /// Lowering the precision of a model's weights.
    Quantize,
    /// Measuring a model against a dataset or benchmark.
    Evaluate,
    /// Releasing a model to where it serves.
    Deploy,
}

/// Why a SLSA Provenance v1 predicate was refused.
#[derive(Debug, Error)]
pub enum ProvenanceError {
    /// The statement declares SLSA Provenance v1 but carries no predicate.
    #[error(
        "statement of predicateType {:?} has no predicate",
        PREDICATE_TYPE_SLSA_PROVENANCE_V1
    )]
    MissingPredicate,
    /// The predicate is not a JSON object.
    #[error("provenance predicate is a JSON {found}, expected an object")]
    PredicateNotObject {
        /// Kind of JSON value found, e.g. `array`.
        found: &'static str,
    },
    /// The predicate is an object but not of the provenance's shape.
    #[error("couldn't parse provenance predicate")]
    Json {
        /// The parser's error, naming the missing or mistyped field.
        #[source]
        source: serde_json::Error,
    },
    /// `buildDefinition.buildType` is empty or not a URI.
    #[error("buildDefinition.buildType {found:?} is not a URI")]
    BuildTypeNotUri {
        /// The build type as given.
        found: String,
    },
    /// `runDetails.builder.id` is empty or not a URI.
    #[error("runDetails.builder.id {found:?} is not a URI")]
    BuilderIdNotUri {
        /// The builder id as given.
        found: String,
    },
    /// `buildDefinition.externalParameters` is not a JSON object.
    #[error("buildDefinition.externalParameters is a JSON {found}, expected an object")]
    ExternalParametersNotObject {
        /// Kind of JSON value found.
        found: &'static str,
    },
    /// `buildDefinition.internalParameters` is present but not a JSON object.
    #[error("buildDefinition.internalParameters is a JSON {found}, expected an object")]
    InternalParametersNotObject {
        /// Kind of JSON value found.
        found: &'static str,
    },
    /// A resolved dependency has none of `uri`, `digest` or `content`, so it
    /// refers to nothing.
    #[error("resolvedDependencies[{index}] has none of uri, digest or content")]
    EmptyResolvedDependency {
        /// Position in `resolvedDependencies`.
        index: usize,
    },
    /// A resolved dependency's digest is not in canonical form.
    #[error("resolvedDependencies[{index}] has an invalid digest")]
    ResolvedDependencyDigest {
        /// Position in `resolvedDependencies`.
        index: usize,
        /// What is wrong with the digest.
        #[source]
        source: DigestError,
    },
}

/// Text that names no [`Step`].
#[derive(Debug, Error)]
#[error(
    "unknown step {found:?}, expected one of dataset, train, finetune, quantize, evaluate, deploy"
)]
pub struct ParseStepError {
    /// The text as given.
    pub found: String,
}

impl Provenance {
    /// Reads the SLSA Provenance v1 predicate of a statement, if it has one.
    ///
    /// Returns `Ok(None)` when the statement's `predicateType` is something
    /// else, so callers can pass any statement.
    ///
    /// # Errors
    ///
    /// When the statement declares SLSA Provenance v1: a [`ProvenanceError`]
    /// if the predicate is missing, doesn't parse, or fails
    /// [`Provenance::validate`].
    pub fn from_statement(statement: &Statement) -> Result<Option<Self>, ProvenanceError> {
        if statement.predicate_type != PREDICATE_TYPE_SLSA_PROVENANCE_V1 {
            return Ok(None);
        }
        let predicate = statement
            .predicate
            .as_ref()
            .ok_or(ProvenanceError::MissingPredicate)?;
        if !predicate.is_object() {
            return Err(ProvenanceError::PredicateNotObject {
                found: json_kind(predicate),
            });
        }
        let provenance = Provenance::deserialize(predicate)
            .map_err(|source| ProvenanceError::Json { source })?;
        provenance.validate()?;
        Ok(Some(provenance))
    }

    /// Checks what the log relies on: URI `buildType` and `builder.id`, object
    /// parameters, and resolved dependencies that refer to something with
    /// canonical digests (see [`validate_digest`]).
    ///
    /// # Errors
    ///
    /// The first rule broken, as a [`ProvenanceError`].
    pub fn validate(&self) -> Result<(), ProvenanceError> {
        let definition = &self.build_definition;
        if !is_uri(&definition.build_type) {
            return Err(ProvenanceError::BuildTypeNotUri {
                found: definition.build_type.clone(),
            });
        }
        if !is_uri(&self.run_details.builder.id) {
            return Err(ProvenanceError::BuilderIdNotUri {
                found: self.run_details.builder.id.clone(),
            });
        }
        if !definition.external_parameters.is_object() {
            return Err(ProvenanceError::ExternalParametersNotObject {
                found: json_kind(&definition.external_parameters),
            });
        }
        if let Some(internal) = &definition.internal_parameters {
            if !internal.is_object() {
                return Err(ProvenanceError::InternalParametersNotObject {
                    found: json_kind(internal),
                });
            }
        }
        for (index, dependency) in definition.resolved_dependencies.iter().enumerate() {
            if !dependency.identifies_resource() {
                return Err(ProvenanceError::EmptyResolvedDependency { index });
            }
            for (algorithm, value) in &dependency.digest {
                validate_digest(algorithm, value).map_err(|source| {
                    ProvenanceError::ResolvedDependencyDigest { index, source }
                })?;
            }
        }
        Ok(())
    }

    /// The materials of the build: every digest of every resolved dependency,
    /// in the order they appear, each once.
    ///
    /// A dependency known only by URI contributes nothing, since the log can
    /// only link artifacts by digest.
    pub fn materials(&self) -> Vec<Digest> {
        let mut seen = BTreeSet::new();
        self.build_definition
            .resolved_dependencies
            .iter()
            .flat_map(ResourceDescriptor::digests)
            .filter(|digest| seen.insert(digest.clone()))
            .collect()
    }

    /// The Pedigree step this provenance records, if its build type is one.
    pub fn step(&self) -> Option<Step> {
        Step::from_build_type(&self.build_definition.build_type)
    }

    /// Wraps the provenance in a statement about `subject`, for producers
    /// about to sign it.
    pub fn into_statement(self, subject: Vec<ResourceDescriptor>) -> Statement {
        // Every map here has string keys and every number is finite, the only
        // two ways serde_json serialization can fail.
        let predicate = serde_json::to_value(self).expect("provenance always serializes to JSON");
        Statement {
            type_: STATEMENT_TYPE_V1.to_owned(),
            subject,
            predicate_type: PREDICATE_TYPE_SLSA_PROVENANCE_V1.to_owned(),
            predicate: Some(predicate),
        }
    }
}

/// Materials of a statement for lineage: for SLSA Provenance v1, the digests
/// of `resolvedDependencies` (see [`Provenance::materials`]); for other
/// predicates, none.
///
/// # Errors
///
/// A [`ProvenanceError`] when the statement declares SLSA Provenance v1 but
/// its predicate is invalid, so that a log never records a provenance whose
/// materials it could not read.
pub fn statement_materials(statement: &Statement) -> Result<Vec<Digest>, ProvenanceError> {
    Ok(Provenance::from_statement(statement)?
        .map(|provenance| provenance.materials())
        .unwrap_or_default())
}

impl Step {
    /// Every step, in the order of a model's life.
    pub const ALL: [Step; 6] = [
        Step::Dataset,
        Step::Train,
        Step::Finetune,
        Step::Quantize,
        Step::Evaluate,
        Step::Deploy,
    ];

    /// The step's name as the CLI spells it, e.g. `finetune`.
    pub fn name(self) -> &'static str {
        match self {
            Step::Dataset => "dataset",
            Step::Train => "train",
            Step::Finetune => "finetune",
            Step::Quantize => "quantize",
            Step::Evaluate => "evaluate",
            Step::Deploy => "deploy",
        }
    }

    /// The `buildType` URI the CLI writes into provenance for this step.
    pub fn build_type(self) -> &'static str {
        match self {
            Step::Dataset => "https://pedigree.dev/ml/dataset/v1",
            Step::Train => "https://pedigree.dev/ml/train/v1",
            Step::Finetune => "https://pedigree.dev/ml/finetune/v1",
            Step::Quantize => "https://pedigree.dev/ml/quantize/v1",
            Step::Evaluate => "https://pedigree.dev/ml/evaluate/v1",
            Step::Deploy => "https://pedigree.dev/ml/deploy/v1",
        }
    }

    /// The step whose build type is exactly `uri`, if any.
    pub fn from_build_type(uri: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.build_type() == uri)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Step {
    type Err = ParseStepError;

    /// Parses a step name as [`Step::name`] spells it.
    fn from_str(name: &str) -> Result<Self, ParseStepError> {
        Step::ALL
            .into_iter()
            .find(|step| step.name() == name)
            .ok_or_else(|| ParseStepError {
                found: name.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::DigestSet;

    const SHA256_MODEL: &str = "9372c470eeadd5ecd9c3c74c2b3cb633f8e2f2fad799250a0f70d652b6b825e4";
    const SHA256_BASE: &str = "cae662172fd450bb0cd710a769079c05bfc5d8e35efa6576edc7d0377afdd4a2";
    const SHA256_DATASET: &str = "b277fd623676a525c29b9eb155afc8c9010681814ceafb2d7627f47b9a232576";
    const SHA256_LOG: &str = "836ff184e7b41b1e13cb5fd89fa1de98dbbab99e9d2918913ff43b86a5c7c213";
    const SHA1_REPO: &str = "32a6fcbaa4543f0718079837a574f5835f3143fe";

    /// A fine-tune of a base model on a support-ticket dataset, as Pedigree's
    /// CLI would record it.
    fn finetune_statement() -> String {
        format!(
            r#"{{
  "_type": "https://in-toto.io/Statement/v1",
  "subject": [
    {{"name": "support-llm-8b-ft.safetensors", "digest": {{"sha256": "{SHA256_MODEL}"}}}}
  ],
  "predicateType": "https://slsa.dev/provenance/v1",
  "predicate": {{
    "buildDefinition": {{
      "buildType": "https://pedigree.dev/ml/finetune/v1",
      "externalParameters": {{
        "learning_rate": 0.0002,
        "epochs": 3,
        "batch_size": 16,
        "lora": {{"r": 16, "alpha": 32}},
        "seed": 1234
      }},
      "internalParameters": {{"accelerator": "8xA100-80GB", "framework": "torch 2.4.0"}},
      "resolvedDependencies": [
        {{"name": "base-model", "uri": "hf://acme/base-8b", "digest": {{"sha256": "{SHA256_BASE}"}}}},
        {{"name": "dataset", "uri": "hf://datasets/acme/support-tickets",
          "digest": {{"sha256": "{SHA256_DATASET}"}}, "annotations": {{"rows": 120000}}}},
        {{"uri": "git+https://github.com/acme/train@refs/heads/main", "digest": {{"gitCommit": "{SHA1_REPO}"}}}},
        {{"uri": "https://pypi.org/project/torch/2.4.0"}}
      ]
    }},
    "runDetails": {{
      "builder": {{"id": "https://pedigree.dev/builders/local/v1", "version": {{"pedigree": "0.1.0"}}}},
      "metadata": {{
        "invocationId": "run-0007",
        "startedOn": "2024-11-02T10:00:00Z",
        "finishedOn": "2024-11-02T16:42:10Z"
      }},
      "byproducts": [{{"name": "train.log", "mediaType": "text/plain", "digest": {{"sha256": "{SHA256_LOG}"}}}}]
    }}
  }}
}}"#
        )
    }

    /// A SLSA v1 statement around `predicate` (raw JSON, or none when empty).
    fn slsa_statement(predicate: &str) -> String {
        let predicate = if predicate.is_empty() {
            String::new()
        } else {
            format!(r#","predicate":{predicate}"#)
        };
        format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{SHA256_MODEL}"}}}}],"predicateType":"{PREDICATE_TYPE_SLSA_PROVENANCE_V1}"{predicate}}}"#
        )
    }

    /// A predicate with the given build definition fields and builder.
    fn predicate(definition: &str, builder: &str) -> String {
        format!(r#"{{"buildDefinition":{{{definition}}},"runDetails":{{"builder":{builder}}}}}"#)
    }

    const BUILD_TYPE: &str = r#""buildType":"https://pedigree.dev/ml/train/v1""#;
    const BUILDER: &str = r#"{"id":"https://pedigree.dev/builders/local/v1"}"#;

    fn error_chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        text
    }

    /// Parses `input` as a statement and reads its provenance; `Ok` expects
    /// success, `Err(text)` a provenance error whose chain contains `text`.
    fn check(input: &str, expected: Result<(), &str>) {
        let statement = Statement::from_json(input.as_bytes())
            .unwrap_or_else(|e| panic!("statement {input} refused: {}", error_chain(&e)));
        match (statement_materials(&statement), expected) {
            (Ok(_), Ok(())) => {}
            (Err(error), Err(want)) => {
                let got = error_chain(&error);
                assert!(
                    got.contains(want),
                    "input {input}\nerror {got:?}\nlacks {want:?}"
                );
            }
            (got, want) => panic!("input {input}\ngot {got:?}\nwant {want:?}"),
        }
    }

    #[test]
    fn provenance_accepts_and_refuses_per_spec() {
        let dependency = |d: &str| {
            predicate(
                &format!(r#"{BUILD_TYPE},"externalParameters":{{}},"resolvedDependencies":[{d}]"#),
                BUILDER,
            )
        };
        let params = |p: &str| predicate(&format!(r#"{BUILD_TYPE},{p}"#), BUILDER);
        let cases: Vec<(String, Result<(), &str>)> = vec![
            (finetune_statement(), Ok(())),
            (slsa_statement(&params(r#""externalParameters":{}"#)), Ok(())),
            (slsa_statement(&params(r#""externalParameters":{},"internalParameters":null"#)), Ok(())),
            (
                slsa_statement(&dependency(r#"{"uri":"hf://x"},{"content":"aGk="}"#)),
                Ok(()),
            ),
            (
                slsa_statement(""),
                Err(r#"statement of predicateType "https://slsa.dev/provenance/v1" has no predicate"#),
            ),
            (slsa_statement("null"), Err("has no predicate")),
            (slsa_statement("{}"), Err("missing field `buildDefinition`")),
            (
                slsa_statement(&predicate(r#""externalParameters":{}"#, BUILDER)),
                Err("missing field `buildType`"),
            ),
            (
                slsa_statement(&predicate(r#""buildType":"","externalParameters":{}"#, BUILDER)),
                Err(r#"buildDefinition.buildType "" is not a URI"#),
            ),
            (
                slsa_statement(&predicate(r#""buildType":"finetune","externalParameters":{}"#, BUILDER)),
                Err(r#"buildDefinition.buildType "finetune" is not a URI"#),
            ),
            (
                slsa_statement(&predicate(&format!(r#"{BUILD_TYPE},"externalParameters":{{}}"#), "{}")),
                Err("missing field `id`"),
            ),
            (
                slsa_statement(&predicate(&format!(r#"{BUILD_TYPE},"externalParameters":{{}}"#), r#"{"id":""}"#)),
                Err(r#"runDetails.builder.id "" is not a URI"#),
            ),
            (slsa_statement(&params(r#""x":1"#)), Err("missing field `externalParameters`")),
            (
                slsa_statement(&params(r#""externalParameters":[1]"#)),
                Err("buildDefinition.externalParameters is a JSON array, expected an object"),
            ),
            (
                slsa_statement(&params(r#""externalParameters":null"#)),
                Err("externalParameters is a JSON null"),
            ),
            (
                slsa_statement(&params(r#""externalParameters":{},"internalParameters":"gpu""#)),
                Err("buildDefinition.internalParameters is a JSON string, expected an object"),
            ),
            (
                slsa_statement(&dependency(&format!(r#"{{"uri":"hf://x","digest":{{"sha256":"{}"}}}}"#, &SHA256_BASE[1..]))),
                Err("resolvedDependencies[0] has an invalid digest: sha256 digest has 63 hex characters, expected 64"),
            ),
            (
                slsa_statement(&dependency(&format!(r#"{{"uri":"hf://x"}},{{"digest":{{"sha256":"{}"}}}}"#, SHA256_BASE.to_uppercase()))),
                Err("resolvedDependencies[1] has an invalid digest: sha256 digest has 'C' at byte 0"),
            ),
            (
                slsa_statement(&dependency(r#"{"name":"just-a-name"}"#)),
                Err("resolvedDependencies[0] has none of uri, digest or content"),
            ),
        ];
        for (input, expected) in cases {
            check(&input, expected);
        }
    }

    #[test]
    fn provenance_refuses_predicate_that_is_not_an_object() {
        // Statement::from_json refuses this already; a statement built in
        // code must still not get past Provenance::from_statement.
        let statement = Statement {
            type_: STATEMENT_TYPE_V1.to_owned(),
            subject: Vec::new(),
            predicate_type: PREDICATE_TYPE_SLSA_PROVENANCE_V1.to_owned(),
            predicate: Some(Value::from("provenance")),
        };
        let error = Provenance::from_statement(&statement).unwrap_err();
        assert!(
            matches!(
                error,
                ProvenanceError::PredicateNotObject { found: "string" }
            ),
            "{error}"
        );
        assert!(Statement::from_json(slsa_statement(r#""provenance""#).as_bytes()).is_err());
    }

    #[test]
    fn provenance_with_repeated_key_is_refused_when_the_statement_is_parsed() {
        let predicate = predicate(
            &format!(
                r#"{BUILD_TYPE},"externalParameters":{{}},"resolvedDependencies":[{{"digest":{{"sha256":"{SHA256_BASE}","sha256":"{SHA256_DATASET}"}}}}]"#
            ),
            BUILDER,
        );
        let error = Statement::from_json(slsa_statement(&predicate).as_bytes()).unwrap_err();
        assert!(
            error_chain(&error).contains(r#"duplicate key "sha256""#),
            "{error:?}"
        );
    }

    #[test]
    fn provenance_refuses_odd_json_without_panicking() {
        let cases = [
            r#"{"buildDefinition":1,"runDetails":2}"#,
            r#"{"buildDefinition":[],"runDetails":{}}"#,
            r#"{"buildDefinition":{"buildType":7,"externalParameters":{}},"runDetails":{"builder":{"id":"a:b"}}}"#,
            r#"{"buildDefinition":{"buildType":"a:b","externalParameters":{},"resolvedDependencies":{}},"runDetails":{"builder":{"id":"a:b"}}}"#,
            r#"{"buildDefinition":{"buildType":"a:b","externalParameters":{},"resolvedDependencies":[[[]]]},"runDetails":{"builder":{"id":"a:b"}}}"#,
            r#"{"buildDefinition":{"buildType":"a:b","externalParameters":{},"resolvedDependencies":[null]},"runDetails":{"builder":{"id":"a:b"}}}"#,
            r#"{"buildDefinition":{"buildType":"a:b","externalParameters":{}},"runDetails":{"builder":{"id":"a:b","version":{"x":1}}}}"#,
            r#"{"buildDefinition":{"buildType":"a:b","externalParameters":{}},"runDetails":{"builder":{"id":"a:b"},"metadata":{"startedOn":0}}}"#,
            r#"{"buildDefinition":{"buildType":"a:b","externalParameters":{}},"runDetails":{"builder":null}}"#,
            r#"{"buildDefinition":null,"runDetails":null}"#,
        ];
        for predicate in cases {
            let statement = Statement::from_json(slsa_statement(predicate).as_bytes()).unwrap();
            assert!(
                statement_materials(&statement).is_err(),
                "accepted {predicate}"
            );
        }
    }

    #[test]
    fn finetune_provenance_yields_its_materials_in_order() {
        let statement = Statement::from_json(finetune_statement().as_bytes()).unwrap();
        let provenance = Provenance::from_statement(&statement).unwrap().unwrap();
        assert_eq!(provenance.step(), Some(Step::Finetune));
        assert_eq!(
            provenance.run_details.builder.id,
            "https://pedigree.dev/builders/local/v1"
        );
        assert_eq!(provenance.build_definition.external_parameters["epochs"], 3);
        assert_eq!(provenance.run_details.byproducts.len(), 1);
        let materials: Vec<String> = provenance
            .materials()
            .iter()
            .map(Digest::to_string)
            .collect();
        assert_eq!(
            materials,
            [
                format!("sha256:{SHA256_BASE}"),
                format!("sha256:{SHA256_DATASET}"),
                format!("gitCommit:{SHA1_REPO}"),
            ]
        );
        assert_eq!(
            statement_materials(&statement).unwrap(),
            provenance.materials()
        );
    }

    #[test]
    fn materials_are_deduplicated_keeping_first_occurrence() {
        let dependency = |pairs: &[(&str, &str)]| ResourceDescriptor {
            digest: pairs
                .iter()
                .map(|(a, v)| ((*a).to_owned(), (*v).to_owned()))
                .collect::<DigestSet>(),
            ..ResourceDescriptor::default()
        };
        let sha512 = "ab".repeat(64);
        let provenance = Provenance {
            build_definition: BuildDefinition {
                build_type: Step::Quantize.build_type().to_owned(),
                external_parameters: serde_json::json!({"bits": 4}),
                internal_parameters: None,
                resolved_dependencies: vec![
                    dependency(&[("sha256", SHA256_DATASET)]),
                    dependency(&[("sha256", SHA256_BASE), ("sha512", &sha512)]),
                    dependency(&[("sha256", SHA256_DATASET)]),
                    dependency(&[("sha512", &sha512)]),
                ],
            },
            run_details: RunDetails {
                builder: Builder {
                    id: "https://pedigree.dev/builders/local/v1".to_owned(),
                    builder_dependencies: Vec::new(),
                    version: None,
                },
                metadata: None,
                byproducts: Vec::new(),
            },
        };
        provenance.validate().unwrap();
        let materials: Vec<String> = provenance
            .materials()
            .iter()
            .map(Digest::to_string)
            .collect();
        assert_eq!(
            materials,
            [
                format!("sha256:{SHA256_DATASET}"),
                format!("sha256:{SHA256_BASE}"),
                format!("sha512:{sha512}"),
            ]
        );
    }

    #[test]
    fn other_predicates_have_no_materials() {
        let statement = Statement::from_json(
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{SHA256_MODEL}"}}}}],
                "predicateType":"https://model_signing/signature/v1.0","predicate":{{"buildDefinition":7}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        assert!(Provenance::from_statement(&statement).unwrap().is_none());
        assert!(statement_materials(&statement).unwrap().is_empty());

        // A near miss of the SLSA predicate type is another predicate, not SLSA v1.
        let mut v02 = statement.clone();
        v02.predicate_type = "https://slsa.dev/provenance/v0.2".to_owned();
        assert!(statement_materials(&v02).unwrap().is_empty());
    }

    #[test]
    fn provenance_round_trips_through_a_statement() {
        let statement = Statement::from_json(finetune_statement().as_bytes()).unwrap();
        let provenance = Provenance::from_statement(&statement).unwrap().unwrap();
        let rebuilt = provenance.clone().into_statement(statement.subject.clone());
        assert_eq!(rebuilt, statement);
        let reparsed = Statement::from_json(&rebuilt.to_json()).unwrap();
        assert_eq!(
            Provenance::from_statement(&reparsed).unwrap(),
            Some(provenance)
        );
        let json = String::from_utf8(rebuilt.to_json()).unwrap();
        assert!(!json.contains("null"), "{json}");
    }

    #[test]
    fn steps_map_to_build_types_and_names_and_back() {
        let expected = [
            (
                Step::Dataset,
                "dataset",
                "https://pedigree.dev/ml/dataset/v1",
            ),
            (Step::Train, "train", "https://pedigree.dev/ml/train/v1"),
            (
                Step::Finetune,
                "finetune",
                "https://pedigree.dev/ml/finetune/v1",
            ),
            (
                Step::Quantize,
                "quantize",
                "https://pedigree.dev/ml/quantize/v1",
            ),
            (
                Step::Evaluate,
                "evaluate",
                "https://pedigree.dev/ml/evaluate/v1",
            ),
            (Step::Deploy, "deploy", "https://pedigree.dev/ml/deploy/v1"),
        ];
        assert_eq!(Step::ALL, expected.map(|(step, _, _)| step));
        for (step, name, build_type) in expected {
            assert_eq!(step.name(), name);
            assert_eq!(step.to_string(), name);
            assert_eq!(step.build_type(), build_type);
            assert_eq!(name.parse::<Step>().unwrap(), step);
            assert_eq!(Step::from_build_type(build_type), Some(step));
            assert!(is_uri(build_type));
        }
    }

    #[test]
    fn steps_refuse_unknown_names_and_build_types() {
        for name in ["", "Train", "fine-tune", "training", " train"] {
            let error = name.parse::<Step>().unwrap_err();
            assert_eq!(error.found, name);
            assert!(error.to_string().starts_with("unknown step"), "{error}");
        }
        for uri in [
            "",
            "https://pedigree.dev/ml/train/v2",
            "https://pedigree.dev/ml/train/v1/",
            "http://pedigree.dev/ml/train/v1",
            "train",
        ] {
            assert_eq!(Step::from_build_type(uri), None, "{uri}");
        }
    }
}
