//! The part of the CycloneDX 1.6 JSON format an ML-BOM of Pedigree uses, as serde
//! structs. Field names and enumerations follow `bom-1.6.schema.json`; only what
//! [`super::build`] fills is modelled, so every document these types can express is one
//! the schema accepts (the tests validate against the official schema).
//!
//! Written with serde rather than with the `cyclonedx-bom` crate: that crate carries an
//! XML reader and writer and a model of every spec version, while Pedigree writes one
//! JSON shape of one version; the official schema checks these structs in the tests.

use serde::Serialize;

/// `bomFormat`.
pub const BOM_FORMAT: &str = "CycloneDX";
/// `specVersion`.
pub const SPEC_VERSION: &str = "1.6";
/// `$schema`: where the JSON schema of this version is published.
pub const SCHEMA_URL: &str = "http://cyclonedx.org/schema/bom-1.6.schema.json";

/// A CycloneDX BOM document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bom {
    /// The JSON schema the document follows.
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    /// Always `CycloneDX`.
    #[serde(rename = "bomFormat")]
    pub bom_format: &'static str,
    /// Always `1.6`.
    #[serde(rename = "specVersion")]
    pub spec_version: &'static str,
    /// `urn:uuid:...` naming this BOM.
    #[serde(rename = "serialNumber")]
    pub serial_number: String,
    /// Revision of the BOM with this serial number.
    pub version: u32,
    /// When and by what the BOM was made.
    pub metadata: Metadata,
    /// The model first, then the datasets.
    pub components: Vec<Component>,
    /// Which component was made from which.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
}

/// `metadata`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metadata {
    /// RFC 3339 date-time the BOM was made.
    pub timestamp: String,
    /// The tool that made it (the 1.5+ object form).
    pub tools: Tools,
    /// Facts about how the BOM was verified.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

/// `metadata.tools` in its object form: tools as components.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tools {
    /// The tools.
    pub components: Vec<Component>,
}

/// `component.type` values Pedigree writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentType {
    /// A program (the tool in `metadata.tools`).
    Application,
    /// A machine-learning model.
    MachineLearningModel,
    /// Data, such as a dataset.
    Data,
}

/// A component.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Component {
    /// What kind of thing it is.
    #[serde(rename = "type")]
    pub type_: ComponentType,
    /// Identifier unique within the BOM (Pedigree uses the digest text).
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    /// Name.
    pub name: String,
    /// Version (the tool's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Digests of the artifact.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
    /// What it was derived from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pedigree: Option<Pedigree>,
    /// Attestations and log entries about it.
    #[serde(rename = "externalReferences", skip_serializing_if = "Vec::is_empty")]
    pub external_references: Vec<ExternalReference>,
    /// For `machine-learning-model` only.
    #[serde(rename = "modelCard", skip_serializing_if = "Option::is_none")]
    pub model_card: Option<ModelCard>,
    /// For `data` only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<ComponentData>,
    /// Name-value facts, names in the `pedigree:` namespace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

/// `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hash {
    /// `SHA-256`, `SHA-384`, `SHA-512`, ... (`hash-alg`).
    pub alg: &'static str,
    /// Lowercase hex.
    pub content: String,
}

/// `component.pedigree`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pedigree {
    /// Components this one was derived from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<Component>,
    /// How it was derived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// `externalReference.type` values Pedigree writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExternalReferenceType {
    /// A signed attestation (new in 1.6).
    Attestation,
}

/// `externalReference`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExternalReference {
    /// Kind of reference.
    #[serde(rename = "type")]
    pub type_: ExternalReferenceType,
    /// Where it is.
    pub url: String,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Digests of what `url` serves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
}

/// `property`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Property {
    /// Namespaced name.
    pub name: String,
    /// Value as text.
    pub value: String,
}

/// `modelCard`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelCard {
    /// How the model was made.
    #[serde(rename = "modelParameters", skip_serializing_if = "Option::is_none")]
    pub model_parameters: Option<ModelParameters>,
    /// Measured performance.
    #[serde(
        rename = "quantitativeAnalysis",
        skip_serializing_if = "Option::is_none"
    )]
    pub quantitative_analysis: Option<QuantitativeAnalysis>,
    /// Intended use and limitations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub considerations: Option<Considerations>,
    /// Step parameters with no field of their own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
}

/// `modelCard.modelParameters`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelParameters {
    /// Learning approach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approach: Option<Approach>,
    /// The task, e.g. `text-generation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// e.g. `llama`.
    #[serde(rename = "architectureFamily", skip_serializing_if = "Option::is_none")]
    pub architecture_family: Option<String>,
    /// e.g. `llama-3-8b`.
    #[serde(rename = "modelArchitecture", skip_serializing_if = "Option::is_none")]
    pub model_architecture: Option<String>,
    /// References to the `data` components.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<DatasetRef>,
    /// Input formats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<MlFormat>,
    /// Output formats.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<MlFormat>,
}

/// `modelParameters.approach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Approach {
    /// One of the schema's learning types.
    #[serde(rename = "type")]
    pub type_: String,
}

/// The learning types `approach.type` allows.
pub const APPROACH_TYPES: [&str; 5] = [
    "supervised",
    "unsupervised",
    "reinforcement-learning",
    "semi-supervised",
    "self-supervised",
];

/// A dataset named by reference to a component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatasetRef {
    /// The component's `bom-ref`.
    #[serde(rename = "ref")]
    pub ref_: String,
}

/// `inputOutputMLParameters`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MlFormat {
    /// e.g. `string`, `image`.
    pub format: String,
}

/// `modelCard.quantitativeAnalysis`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantitativeAnalysis {
    /// The metrics.
    #[serde(rename = "performanceMetrics")]
    pub performance_metrics: Vec<PerformanceMetric>,
}

/// `performanceMetric`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PerformanceMetric {
    /// Metric name, e.g. `accuracy`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Value as text.
    pub value: String,
    /// The benchmark or data slice it was measured on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slice: Option<String>,
}

/// `modelCard.considerations`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Considerations {
    /// Who the model is for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// What it is for.
    #[serde(rename = "useCases", skip_serializing_if = "Vec::is_empty")]
    pub use_cases: Vec<String>,
    /// What it cannot do.
    #[serde(rename = "technicalLimitations", skip_serializing_if = "Vec::is_empty")]
    pub technical_limitations: Vec<String>,
}

/// `componentData`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentData {
    /// Always `dataset` here.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// Dataset name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the data holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contents: Option<DataContents>,
}

/// `componentData.contents`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataContents {
    /// The dataset step's parameters (sources, filters, splits).
    pub properties: Vec<Property>,
}

/// `dependency`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The component.
    #[serde(rename = "ref")]
    pub ref_: String,
    /// What it depends on.
    #[serde(rename = "dependsOn")]
    pub depends_on: Vec<String>,
}
