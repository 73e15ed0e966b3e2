//! HTTP client for a Pedigree log. Blocking: the CLI makes one request at a time.

use anyhow::{anyhow, bail, Context as _, Result};
use pedigree_core::dsse::Envelope;
use pedigree_core::keys::PublicKey;
use pedigree_core::receipt::LogReceipt;
use serde_json::Value;
use std::time::Duration;

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

fn error_of(url: &str, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, resp) => {
            let body: Value = resp.into_json().unwrap_or(Value::Null);
            let msg = body["message"].as_str().unwrap_or("no message");
            let code_s = body["error"].as_str().unwrap_or("error");
            anyhow!("log {url} answered {code} {code_s}: {msg}")
        }
        other => anyhow!("couldn't reach log {url}: {other}"),
    }
}

/// GETs JSON from `base` + `path`.
///
/// # Errors
///
/// On transport failure, an error status, or a body that is not JSON.
pub fn get_json(base: &str, path: &str) -> Result<Value> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    agent()
        .get(&url)
        .call()
        .map_err(|e| error_of(&url, e))?
        .into_json()
        .with_context(|| format!("log {url} answered with invalid JSON"))
}

/// GETs raw bytes from `base` + `path`.
///
/// # Errors
///
/// On transport failure or an error status.
pub fn get_bytes(base: &str, path: &str) -> Result<Vec<u8>> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let resp = agent().get(&url).call().map_err(|e| error_of(&url, e))?;
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)
        .with_context(|| format!("couldn't read answer of {url}"))?;
    Ok(body)
}

fn hash32(v: &Value) -> Result<[u8; 32]> {
    let bytes = hex::decode(v.as_str().ok_or_else(|| anyhow!("hash is not text"))?)?;
    <[u8; 32]>::try_from(bytes).map_err(|_| anyhow!("hash is not 32 bytes"))
}

/// Submits a signed envelope with its verifier keys and returns the log receipt.
///
/// The receipt is not trusted here: callers verify it with the log's key.
///
/// # Errors
///
/// When the log refuses the entry or answers with something that is not a receipt.
pub fn submit(base: &str, envelope: &Envelope, keys: &[PublicKey]) -> Result<LogReceipt> {
    let url = format!("{}/api/v1/entries", base.trim_end_matches('/'));
    let envelope_json: Value = serde_json::from_slice(&envelope.to_json())?;
    let body = serde_json::json!({
        "envelope": envelope_json,
        "verifiers": keys.iter().map(PublicKey::to_pem).collect::<Vec<_>>(),
    });
    let answer: Value = agent()
        .post(&url)
        .send_json(body)
        .map_err(|e| error_of(&url, e))?
        .into_json()
        .with_context(|| format!("log {url} answered with invalid JSON"))?;
    let index = answer["log_index"]
        .as_u64()
        .ok_or_else(|| anyhow!("answer has no log_index"))?;
    let leaf = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        answer["leaf"].as_str().unwrap_or_default(),
    )
    .context("answer has no leaf record")?;
    let proof = &answer["inclusion_proof"];
    let hashes = proof["hashes"]
        .as_array()
        .ok_or_else(|| anyhow!("answer has no proof hashes"))?
        .iter()
        .map(hash32)
        .collect::<Result<Vec<_>>>()?;
    let tree_size = proof["tree_size"]
        .as_u64()
        .ok_or_else(|| anyhow!("answer has no tree_size"))?;
    let checkpoint = answer["checkpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("answer has no checkpoint"))?
        .to_string();
    if proof["log_index"].as_u64() != Some(index) {
        bail!("answer's proof is for another index");
    }
    Ok(LogReceipt {
        log_index: index,
        leaf,
        tree_size,
        hashes,
        checkpoint,
    })
}
