//! Witness cosigning: a background task that sends the log's latest signed checkpoint
//! to each configured witness (C2SP `tlog-witness` `add-checkpoint`), collects their
//! cosignatures, and publishes at `GET /checkpoint` the newest checkpoint that carries
//! at least `min_witness_cosignatures` of them (`spec/api.md` section 3.7).
//!
//! Appends never wait for witnesses: submissions are answered with the log's own
//! checkpoint as soon as their batch is durable, and the cosigned checkpoint lags
//! behind. A slow or unreachable witness only delays publication; it is retried every
//! [`RETRY_DELAY`] until it answers.
//!
//! Each round works on one checkpoint, the log's newest: every witness that has not yet
//! cosigned it is asked, concurrently, with a consistency proof from the size it is known
//! to hold (learned from its previous success or from its 409 answer). Cosignatures are
//! checked with the witness's key before they are kept, so a misbehaving witness can
//! never make the log publish a line that does not verify.

use crate::engine::LogEngine;
use crate::metrics::Metrics;
use crate::storage::Store;
use pedigree_core::checkpoint::SignedCheckpoint;
use pedigree_core::witness::protocol::{parse_cosignatures, parse_size, AddCheckpoint};
use pedigree_core::witness::{append_cosignatures, note_body, Cosignature, WitnessVerifier};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long a witness has to answer one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a failed witness waits before it is asked again.
pub const RETRY_DELAY: Duration = Duration::from_millis(500);
/// How often the task looks for a new checkpoint. Reading the head is one `Arc` clone.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One witness, as configured with `--witness NAME=URL=VKEY`.
#[derive(Clone, Debug)]
pub struct WitnessTarget {
    /// Label in logs and metrics.
    pub name: String,
    /// Submission prefix; `add-checkpoint` is appended.
    pub url: String,
    /// The witness's cosigning key.
    pub verifier: WitnessVerifier,
}

impl WitnessTarget {
    /// Parses `NAME=URL=VKEY`. The name ends at the first `=`, the key starts after the
    /// last one (verifier keys hold no `=`), so the URL may contain `=`. VKEY may also be
    /// a file holding the key, so that a deployment can hand keys over as files.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong.
    pub fn parse(arg: &str) -> Result<Self, String> {
        let (name, rest) = arg
            .split_once('=')
            .ok_or_else(|| format!("witness {arg:?} is not NAME=URL=VKEY"))?;
        let (url, vkey) = rest
            .rsplit_once('=')
            .ok_or_else(|| format!("witness {arg:?} is not NAME=URL=VKEY"))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
            return Err(format!("witness name {name:?} must be printable ASCII"));
        }
        if !url.starts_with("http://") {
            return Err(format!(
                "witness {name} URL {url:?} must start with http://"
            ));
        }
        let verifier = match WitnessVerifier::from_vkey(vkey) {
            Ok(v) => v,
            Err(e) if !std::path::Path::new(vkey).is_file() => {
                return Err(format!("witness {name}: {e}"))
            }
            Err(_) => {
                let text = std::fs::read_to_string(vkey)
                    .map_err(|e| format!("witness {name}: couldn't read key file {vkey}: {e}"))?;
                WitnessVerifier::from_vkey(text.trim())
                    .map_err(|e| format!("witness {name}: key file {vkey}: {e}"))?
            }
        };
        Ok(Self {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
            verifier,
        })
    }
}

/// The newest checkpoint with enough cosignatures, shared with the HTTP handlers.
#[derive(Default)]
pub struct Cosigned {
    note: RwLock<Option<Arc<Vec<u8>>>>,
}

impl Cosigned {
    /// The published note (log signature and cosignature lines), if any yet.
    pub fn note(&self) -> Option<Arc<Vec<u8>>> {
        self.note.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn publish(&self, note: Vec<u8>) {
        *self.note.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(note));
    }
}

/// What one request to a witness came to.
struct Outcome {
    /// The size the witness is now known to hold, if we learned one.
    known: Option<u64>,
    result: Result<Cosignature, String>,
}

/// Runs the cosigning task forever on the current Tokio runtime.
pub async fn run<S: Store + 'static>(
    engine: Arc<LogEngine<S>>,
    witnesses: Vec<WitnessTarget>,
    min: usize,
    cosigned: Arc<Cosigned>,
    metrics: Arc<Metrics>,
) {
    let agent = ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build();
    let mut known: Vec<Option<u64>> = vec![None; witnesses.len()];
    let mut current: Option<Arc<SignedCheckpoint>> = None;
    let mut signatures: Vec<Option<Cosignature>> = vec![None; witnesses.len()];
    // Whether each witness's last request failed: a failure is logged as a warning once
    // per streak (retries are frequent), and the recovery once.
    let mut failing = vec![false; witnesses.len()];
    loop {
        let head = engine.checkpoint();
        if current.as_ref().map(|c| c.tree_size) != Some(head.tree_size) {
            signatures = vec![None; witnesses.len()];
            current = Some(Arc::clone(&head));
        }
        let pending: Vec<usize> = (0..witnesses.len())
            .filter(|&i| signatures[i].is_none())
            .collect();
        if !pending.is_empty() {
            let mut tasks = Vec::new();
            for &i in &pending {
                let (engine, agent, cp) = (Arc::clone(&engine), agent.clone(), Arc::clone(&head));
                let (target, old) = (witnesses[i].clone(), known[i]);
                tasks.push(tokio::task::spawn_blocking(move || {
                    submit(&agent, &engine, &target, &cp, old)
                }));
            }
            for (i, task) in pending.iter().copied().zip(tasks) {
                let outcome = task.await.unwrap_or_else(|e| Outcome {
                    known: None,
                    result: Err(format!("request task failed: {e}")),
                });
                if outcome.known.is_some() {
                    known[i] = outcome.known;
                }
                let name = &witnesses[i].name;
                match outcome.result {
                    Ok(c) => {
                        if std::mem::take(&mut failing[i]) {
                            tracing::info!(witness = %name, tree_size = head.tree_size, "witness cosigns again");
                        }
                        signatures[i] = Some(c);
                    }
                    Err(e) => {
                        metrics.witness_failed(name);
                        if std::mem::replace(&mut failing[i], true) {
                            tracing::debug!(witness = %name, tree_size = head.tree_size, error = %e, "witness did not cosign");
                        } else {
                            tracing::warn!(witness = %name, tree_size = head.tree_size, error = %e, "witness did not cosign; retrying");
                        }
                    }
                }
            }
            let lines: Vec<Cosignature> = signatures.iter().flatten().cloned().collect();
            if lines.len() >= min {
                match append_cosignatures(&head.note, &lines) {
                    Ok(note) => {
                        cosigned.publish(note);
                        metrics
                            .cosigned_tree_size
                            .store(head.tree_size, Ordering::Relaxed);
                    }
                    Err(e) => tracing::error!(error = %e, "couldn't append cosignatures"),
                }
            }
        }
        // Wait for a new checkpoint; if a witness failed, ask it again after a delay.
        let retry_at = (signatures.iter().any(Option::is_none))
            .then(|| tokio::time::Instant::now() + RETRY_DELAY);
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            if engine.checkpoint().tree_size != head.tree_size
                || retry_at.is_some_and(|t| tokio::time::Instant::now() >= t)
            {
                break;
            }
        }
    }
}

/// Asks one witness to cosign `cp`, starting from the size it is believed to hold and
/// retrying once with the size a 409 answer names. Blocking.
fn submit<S: Store>(
    agent: &ureq::Agent,
    engine: &LogEngine<S>,
    target: &WitnessTarget,
    cp: &SignedCheckpoint,
    known: Option<u64>,
) -> Outcome {
    let mut old = known.unwrap_or(0);
    let mut learned = None;
    for _ in 0..2 {
        let result = request(agent, engine, target, cp, old);
        match result {
            Ok(Answer::Cosigned(c)) => {
                return Outcome {
                    known: Some(cp.tree_size),
                    result: Ok(c),
                }
            }
            Ok(Answer::Conflict(size)) => {
                learned = Some(size);
                old = size;
            }
            Err(e) => {
                return Outcome {
                    known: learned,
                    result: Err(e),
                }
            }
        }
    }
    Outcome {
        known: learned,
        result: Err(format!("witness answered 409 twice, last with size {old}")),
    }
}

enum Answer {
    Cosigned(Cosignature),
    Conflict(u64),
}

fn request<S: Store>(
    agent: &ureq::Agent,
    engine: &LogEngine<S>,
    target: &WitnessTarget,
    cp: &SignedCheckpoint,
    old: u64,
) -> Result<Answer, String> {
    if old > cp.tree_size {
        return Err(format!(
            "witness holds tree size {old}, beyond this log's {}: it has seen another history",
            cp.tree_size
        ));
    }
    let proof = if old == 0 || old == cp.tree_size {
        Vec::new()
    } else {
        engine
            .consistency_proof(old, cp.tree_size)
            .map_err(|e| format!("couldn't prove consistency from {old}: {e}"))?
    };
    let body = AddCheckpoint {
        old_size: old,
        proof,
        checkpoint: cp.note.clone(),
    }
    .encode();
    let url = format!("{}/add-checkpoint", target.url);
    let (status, answer) = match agent.post(&url).send_bytes(&body) {
        Ok(resp) => (200, read_body(resp)?),
        Err(ureq::Error::Status(code, resp)) => (code, read_body(resp)?),
        Err(e) => return Err(format!("couldn't reach witness: {e}")),
    };
    match status {
        200 => {
            let body = note_body(&cp.note).map_err(|e| e.to_string())?;
            let lines = parse_cosignatures(&answer).map_err(|e| e.to_string())?;
            let ours = lines
                .into_iter()
                .find(|c| target.verifier.names(c))
                .ok_or("answer has no cosignature by the configured key")?;
            target
                .verifier
                .verify(&body, &ours)
                .map_err(|e| e.to_string())?;
            Ok(Answer::Cosigned(ours))
        }
        409 => parse_size(&answer)
            .map(Answer::Conflict)
            .map_err(|e| e.to_string()),
        code => Err(format!(
            "{url} answered {code}: {}",
            String::from_utf8_lossy(&answer)
                .trim()
                .chars()
                .take(200)
                .collect::<String>()
        )),
    }
}

/// Reads at most 64 KiB of an answer.
fn read_body(resp: ureq::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(resp.into_reader(), 64 * 1024),
        &mut body,
    )
    .map_err(|e| format!("couldn't read witness answer: {e}"))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vkey() -> String {
        pedigree_core::witness::WitnessSigner::new(
            "w.example/a",
            ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
        )
        .unwrap()
        .verifier()
        .to_vkey()
    }

    #[test]
    fn witness_flag_parses_name_url_and_key() {
        let w = WitnessTarget::parse(&format!("a=http://127.0.0.1:9/w/?x=1={}", vkey())).unwrap();
        assert_eq!(w.name, "a");
        assert_eq!(w.url, "http://127.0.0.1:9/w/?x=1");
        assert_eq!(w.verifier.to_vkey(), vkey());
        for bad in [
            String::from("a"),
            format!("=http://h={}", vkey()),
            format!("a=https://h={}", vkey()),
            "a=http://h=nokey".to_string(),
        ] {
            assert!(WitnessTarget::parse(&bad).is_err(), "{bad}");
        }
    }
}
