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

/// The checkpoint the log publishes at `/checkpoint`: with witnesses, the newest one
/// carrying enough cosignatures. `None` when the log has witnesses but none has cosigned
/// yet (503 `not_cosigned`). Not verified here.
///
/// # Errors
///
/// On transport failure or another error status.
pub fn published_checkpoint(base: &str) -> Result<Option<Vec<u8>>> {
    let url = format!("{}/checkpoint", base.trim_end_matches('/'));
    match agent().get(&url).call() {
        Ok(resp) => {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut resp.into_reader(), &mut body)
                .with_context(|| format!("couldn't read answer of {url}"))?;
            Ok(Some(body))
        }
        Err(ureq::Error::Status(503, resp)) => {
            let body: Value = resp.into_json().unwrap_or(Value::Null);
            if body["error"] == "not_cosigned" {
                Ok(None)
            } else {
                Err(anyhow!("log {url} answered 503: {}", body["message"]))
            }
        }
        Err(e) => Err(error_of(&url, e)),
    }
}

/// Whether a checkpoint note carries signature lines besides the log's own (one line):
/// the sign that the log publishes cosigned checkpoints. Unverified.
pub fn has_cosignatures(note: &[u8]) -> bool {
    let text = String::from_utf8_lossy(note);
    text.rsplit_once("\n\n")
        .is_some_and(|(_, sigs)| sigs.lines().count() > 1)
}

/// The tree size line of a checkpoint note, unverified.
pub fn note_tree_size(note: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(note).lines().nth(1)?.parse().ok()
}

/// The inclusion proof of `index` in the tree of `tree_size`.
///
/// # Errors
///
/// When the log refuses or answers something that is not a proof.
pub fn inclusion_proof(base: &str, index: u64, tree_size: u64) -> Result<Vec<[u8; 32]>> {
    let proof = get_json(
        base,
        &format!("/api/v1/proof/inclusion?index={index}&tree_size={tree_size}"),
    )?;
    if proof["log_index"].as_u64() != Some(index) || proof["tree_size"].as_u64() != Some(tree_size)
    {
        bail!("log answered a proof for another index or tree size");
    }
    proof["hashes"]
        .as_array()
        .ok_or_else(|| anyhow!("proof has no hashes"))?
        .iter()
        .map(hash32)
        .collect()
}

/// The leaf record of entry `index`, the bytes hashed into the tree.
///
/// # Errors
///
/// When the log refuses or the answer has no leaf.
pub fn leaf(base: &str, index: u64) -> Result<Vec<u8>> {
    let entry = get_json(base, &format!("/api/v1/entries/{index}"))?;
    base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        entry["leaf"].as_str().unwrap_or_default(),
    )
    .with_context(|| format!("log entry {index} has no leaf record"))
}

/// What [`cosigned_receipt`] found.
pub enum Cosigned {
    /// A receipt against the published cosigned checkpoint.
    Receipt(LogReceipt),
    /// The log publishes checkpoints without cosignatures: it has no witnesses.
    NoWitnesses,
    /// No cosigned checkpoint covered the entry within the wait.
    NotYet,
}

/// A receipt for `receipt`'s entry against the log's published cosigned checkpoint,
/// waiting up to `wait` for that checkpoint to cover the entry.
///
/// # Errors
///
/// When the log fails to answer.
pub fn cosigned_receipt(base: &str, receipt: &LogReceipt, wait: Duration) -> Result<Cosigned> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let note = published_checkpoint(base)?;
        if let Some(note) = &note {
            if !has_cosignatures(note) {
                return Ok(Cosigned::NoWitnesses);
            }
            let size =
                note_tree_size(note).ok_or_else(|| anyhow!("log checkpoint is malformed"))?;
            if size > receipt.log_index {
                let hashes = inclusion_proof(base, receipt.log_index, size)?;
                return Ok(Cosigned::Receipt(LogReceipt {
                    tree_size: size,
                    hashes,
                    checkpoint: String::from_utf8_lossy(note).into_owned(),
                    ..receipt.clone()
                }));
            }
        }
        if std::time::Instant::now() >= deadline {
            return Ok(Cosigned::NotYet);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
