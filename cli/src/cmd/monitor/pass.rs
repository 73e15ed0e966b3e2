//! One monitor pass (`spec/monitor.md` section 3): verify the log's new checkpoint
//! against the last one trusted, read every new entry from the tiles and apply the
//! rules, check a sample of the search index, and compare with peers.
//!
//! Every proof is computed here from tiles and checked by core; the log's proof
//! endpoints are never asked. A critical finding about the checkpoint or the tiles ends
//! the pass without advancing the state, so the next pass finds it again.

use super::fetch::Remote;
use super::statefile;
use super::AlertSink;
use anyhow::{Context as _, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use pedigree_core::checkpoint::{LogVerifier, SignedCheckpoint};
use pedigree_core::dsse::Envelope;
use pedigree_core::entry::{admit, LeafRecord, Limits};
use pedigree_core::keys::PublicKey;
use pedigree_core::monitor::config::Config;
use pedigree_core::monitor::state::MonitorState;
use pedigree_core::monitor::{rules, Alert, Severity};
use pedigree_core::statement::Statement;
use pedigree_core::tilereader::{bundle_for, TileProofError, TileSet};
use serde::Serialize;
use std::path::PathBuf;

/// Most pages of one search walked while looking for a sampled entry.
const MAX_SEARCH_PAGES: usize = 64;

/// What one pass did, printed on stderr after it.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// The log's origin.
    pub origin: String,
    /// Tree size of the checkpoint verified in this pass, if one was.
    pub tree_size: Option<u64>,
    /// Tree size of the checkpoint the state held before, if any.
    pub previous_tree_size: Option<u64>,
    /// The first entry this pass read.
    pub first_index: u64,
    /// The first entry the next pass will read.
    pub next_index: u64,
    /// Entries read in this pass.
    pub processed: u64,
    /// Envelopes fetched because a rule needed them.
    pub envelopes_fetched: u64,
    /// Sampled entries looked up in the search index.
    pub search_checked: u64,
    /// Peers whose checkpoints were compared.
    pub peers_checked: u64,
    /// Critical alerts raised in this pass.
    pub critical: u64,
    /// Warning alerts raised in this pass.
    pub warning: u64,
}

/// A monitor of one log.
pub struct Monitor {
    /// The log.
    pub log: Remote,
    /// Its pinned key.
    pub verifier: LogVerifier,
    /// The rules.
    pub config: Config,
    /// The state file.
    pub state_path: PathBuf,
    /// Other views of the log's checkpoint.
    pub peers: Vec<Remote>,
    /// Where alerts go.
    pub sink: AlertSink,
}

/// Whether a pass goes on after a step.
enum Flow {
    Continue,
    Stop,
}

fn note_text(note: &[u8]) -> String {
    String::from_utf8_lossy(note).into_owned()
}

impl Monitor {
    /// Runs one pass. The summary is returned even when the pass failed part way.
    pub fn pass(&mut self) -> (Summary, Result<()>) {
        let mut summary = Summary {
            origin: self.verifier.origin().to_string(),
            ..Summary::default()
        };
        let before = (self.sink.critical, self.sink.warning);
        let result = self.run(&mut summary);
        summary.critical = self.sink.critical - before.0;
        summary.warning = self.sink.warning - before.1;
        (summary, result)
    }

    fn run(&mut self, summary: &mut Summary) -> Result<()> {
        let previous = statefile::load(&self.state_path, &self.verifier)?;
        let resume_at = previous.as_ref().map_or(0, |s| s.next_index);
        summary.first_index = resume_at;
        summary.next_index = resume_at;
        let note = self.log.checkpoint().context("couldn't read checkpoint")?;
        let new = match self.verifier.verify(&note) {
            Ok(cp) => cp,
            Err(e) => {
                self.sink.emit(
                    Alert::new(
                        Severity::Critical,
                        "checkpoint_signature",
                        None,
                        format!("the log's checkpoint does not verify with the log key: {e}"),
                    )
                    .with("checkpoint", note_text(&note))
                    .with(
                        "previous_checkpoint",
                        previous
                            .as_ref()
                            .map(|s| s.checkpoint.note_text().to_string()),
                    ),
                );
                return Ok(());
            }
        };
        summary.tree_size = Some(new.tree_size);
        let mut tiles = TileSet::new();
        let mut state = match previous {
            None => MonitorState {
                checkpoint: new.clone(),
                next_index: 0,
                entries_processed: 0,
            },
            Some(old) => {
                summary.previous_tree_size = Some(old.checkpoint.tree_size);
                if let Flow::Stop = self.check_growth(&old.checkpoint, &new, &mut tiles)? {
                    return Ok(());
                }
                MonitorState {
                    checkpoint: new.clone(),
                    ..old
                }
            }
        };
        statefile::save(&self.state_path, &state)?;
        if let Flow::Stop = self.read_entries(&mut state, &mut tiles, summary)? {
            return Ok(());
        }
        self.check_peers(&new, &mut tiles, summary)
    }

    /// Checks that `new` extends `old`: not smaller, not another root for the same size,
    /// and consistent, proven from the tiles of `new`.
    fn check_growth(
        &mut self,
        old: &SignedCheckpoint,
        new: &SignedCheckpoint,
        tiles: &mut TileSet,
    ) -> Result<Flow> {
        let evidence = |alert: Alert| {
            alert
                .with("checkpoint", new.note_text())
                .with("previous_checkpoint", old.note_text())
        };
        if new.tree_size < old.tree_size {
            self.sink.emit(evidence(Alert::new(
                Severity::Critical,
                "tree_shrank",
                None,
                format!(
                    "tree size {} is smaller than previous {}",
                    new.tree_size, old.tree_size
                ),
            )));
            return Ok(Flow::Stop);
        }
        if new.tree_size == old.tree_size {
            if new.root_hash == old.root_hash {
                return Ok(Flow::Continue);
            }
            self.sink.emit(evidence(Alert::new(
                Severity::Critical,
                "split_view",
                None,
                format!(
                    "the log signed two roots for tree size {}: {} before, {} now",
                    new.tree_size,
                    hex::encode(old.root_hash.0),
                    hex::encode(new.root_hash.0)
                ),
            )));
            return Ok(Flow::Stop);
        }
        let proven = self.log.with_tiles(tiles, |s| {
            s.tree(new.tree_size, new.root_hash)
                .check_consistency(old.tree_size, &old.root_hash)
        })?;
        match proven {
            Ok(()) => Ok(Flow::Continue),
            Err(e) => {
                let mut alert = evidence(Alert::new(
                    Severity::Critical,
                    "inconsistent_history",
                    None,
                    format!(
                        "checkpoint of tree size {} is not consistent with the verified checkpoint of tree size {}: {e}",
                        new.tree_size, old.tree_size
                    ),
                ));
                if let TileProofError::DifferentHistory { computed, .. } = e {
                    alert = alert.with("root_at_previous_size", hex::encode(computed.0));
                }
                self.sink.emit(alert);
                Ok(Flow::Stop)
            }
        }
    }

    /// Reads the entries from `state.next_index` to the checkpoint's size, bundle by
    /// bundle, saving the state after each bundle.
    fn read_entries(
        &mut self,
        state: &mut MonitorState,
        tiles: &mut TileSet,
        summary: &mut Summary,
    ) -> Result<Flow> {
        let (size, root) = (state.checkpoint.tree_size, state.checkpoint.root_hash);
        let samples = sample_indexes(state.next_index, size, self.config.search_sample);
        let mut sampled = Vec::new();
        while state.next_index < size {
            let Some(coord) = bundle_for(state.next_index, size) else {
                break;
            };
            let bytes = self.log.tile(coord)?;
            let checked = self
                .log
                .with_tiles(tiles, |s| s.tree(size, root).check_bundle(coord, &bytes))?;
            let entries = match checked {
                Ok(entries) => entries,
                Err(e) => {
                    self.sink.emit(
                        Alert::new(
                            Severity::Critical,
                            "entry_bundle",
                            Some(state.next_index),
                            format!(
                                "entry bundle {} does not match the hash tiles of the signed tree: {e}",
                                coord.path()
                            ),
                        )
                        .with("checkpoint", state.checkpoint.note_text()),
                    );
                    return Ok(Flow::Stop);
                }
            };
            let range = coord.leaf_range();
            for index in state.next_index..range.end {
                let Some(leaf) = usize::try_from(index - range.start)
                    .ok()
                    .and_then(|i| entries.get(i))
                else {
                    break;
                };
                let record = self.check_entry(index, leaf, summary)?;
                if let Some(record) = record.filter(|_| samples.contains(&index)) {
                    if let Some(subject) = record.subjects.first() {
                        sampled.push((index, subject.to_string(), record.envelope_sha256));
                    }
                }
            }
            let read = range.end - state.next_index;
            summary.processed += read;
            state.entries_processed += read;
            state.next_index = range.end;
            summary.next_index = range.end;
            statefile::save(&self.state_path, state)?;
            tiles.forget_leaf_tiles();
        }
        for (index, subject, envelope_sha256) in sampled {
            summary.search_checked += 1;
            self.check_search(index, &subject, &envelope_sha256)?;
        }
        Ok(Flow::Continue)
    }

    /// Decodes one leaf, fetches its envelope if a rule needs it, and applies the rules.
    /// Returns the record when it decoded.
    fn check_entry(
        &mut self,
        index: u64,
        leaf: &[u8],
        summary: &mut Summary,
    ) -> Result<Option<LeafRecord>> {
        let record = match LeafRecord::decode(leaf) {
            Ok(r) => r,
            Err(e) => {
                self.sink.emit(rules::unparseable_entry(index, leaf, &e));
                return Ok(None);
            }
        };
        let statement = if rules::needs_envelope(&self.config, &record) {
            summary.envelopes_fetched += 1;
            match self.rebuild(index, leaf, &record)? {
                Ok(statement) => Some(statement),
                Err(alert) => {
                    self.sink.emit(alert);
                    return Ok(Some(record));
                }
            }
        } else {
            None
        };
        for alert in rules::check_entry(&self.config, index, &record, statement.as_ref()) {
            self.sink.emit(alert);
        }
        Ok(Some(record))
    }

    /// Fetches entry `index`'s envelope and keys and rebuilds its leaf record with
    /// `entry::admit` (`spec/entry.md` section 6); it must equal `leaf` byte for byte.
    fn rebuild(
        &self,
        index: u64,
        leaf: &[u8],
        record: &LeafRecord,
    ) -> Result<Result<Statement, Alert>> {
        let entry = self.log.entry(index)?;
        let mismatch = |reason: String| {
            Alert::new(
                Severity::Critical,
                "record_mismatch",
                Some(index),
                format!(
                    "the envelope the log serves for entry {index} does not rebuild its leaf record: {reason}"
                ),
            )
            .with("leaf", STANDARD.encode(leaf))
            .with("envelope", entry["envelope"].clone())
            .with("verifiers", entry["verifiers"].clone())
        };
        let envelope = match Envelope::from_json(entry["envelope"].to_string().as_bytes()) {
            Ok(e) => e,
            Err(e) => return Ok(Err(mismatch(format!("envelope does not parse: {e}")))),
        };
        let keys: Result<Vec<PublicKey>, _> = entry["verifiers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| PublicKey::from_pem(v.as_str().unwrap_or_default()))
            .collect();
        let keys = match keys {
            Ok(k) => k,
            Err(e) => return Ok(Err(mismatch(format!("a verifier does not parse: {e}")))),
        };
        // The log's caps are admission policy, not part of the record: rebuild without them.
        let limits = Limits {
            max_signatures: usize::MAX,
            max_verifiers: usize::MAX,
            max_subjects: usize::MAX,
            max_materials: usize::MAX,
        };
        Ok(
            match admit(&envelope, &keys, &limits, record.integrated_time_ms) {
                Ok(a) if a.record.encode() == leaf => Ok(a.statement),
                Ok(a) => Err(mismatch(format!(
                    "the rebuilt record has leaf hash {}, the tree's is {}",
                    hex::encode(a.record.leaf_hash().0),
                    hex::encode(pedigree_core::merkle::leaf_hash(leaf).0)
                ))),
                Err(e) => Err(mismatch(format!("the envelope fails admission: {e}"))),
            },
        )
    }

    /// Looks entry `index` up by its first subject: the search index must return it with
    /// the same envelope hash. The cursor starts just before it, so one page suffices.
    fn check_search(
        &mut self,
        index: u64,
        subject: &str,
        envelope_sha256: &[u8; 32],
    ) -> Result<()> {
        let want = hex::encode(envelope_sha256);
        let mut cursor = index.checked_sub(1);
        let mut found = None;
        for _ in 0..MAX_SEARCH_PAGES {
            let page = self.log.search_subject(subject, cursor)?;
            let entries = page["entries"].as_array().cloned().unwrap_or_default();
            let mut past = entries.is_empty();
            for e in &entries {
                match e["log_index"].as_u64() {
                    Some(i) if i == index => {
                        found = Some(
                            e["record"]["envelope_sha256"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        );
                    }
                    Some(i) if i > index => past = true,
                    _ => {}
                }
            }
            let next = page["next_cursor"].as_str().and_then(|c| c.parse().ok());
            if found.is_some() || past || next.is_none() || next == cursor {
                break;
            }
            cursor = next;
        }
        let problem = match found {
            Some(got) if got == want => return Ok(()),
            Some(got) => format!("search by subject {subject} returns entry {index} with envelope_sha256 {got}, the leaf has {want}"),
            None => format!("search by subject {subject} does not return entry {index}"),
        };
        self.sink.emit(
            Alert::new(Severity::Critical, "search_index", Some(index), problem)
                .with("subject", subject)
                .with("envelope_sha256", want),
        );
        Ok(())
    }

    /// Compares each peer's checkpoint with ours: the same size must have the same root,
    /// and different sizes must be consistent, proven from the tiles of our log.
    fn check_peers(
        &mut self,
        ours: &SignedCheckpoint,
        tiles: &mut TileSet,
        summary: &mut Summary,
    ) -> Result<()> {
        for i in 0..self.peers.len() {
            let peer = self.peers[i].base().to_string();
            let note = match self.peers[i].checkpoint() {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("pedigree: monitor: couldn't read peer checkpoint: {e:#}");
                    continue;
                }
            };
            summary.peers_checked += 1;
            let evidence = |alert: Alert| {
                alert
                    .with("peer", peer.as_str())
                    .with("checkpoint", ours.note_text())
                    .with("peer_checkpoint", note_text(&note))
            };
            let theirs = match self.verifier.verify(&note) {
                Ok(cp) => cp,
                Err(e) => {
                    self.sink.emit(evidence(Alert::new(
                        Severity::Warning,
                        "peer_checkpoint",
                        None,
                        format!("peer {peer} serves a checkpoint that does not verify with the log key: {e}"),
                    )));
                    continue;
                }
            };
            let (older, newer) = if theirs.tree_size <= ours.tree_size {
                (&theirs, ours)
            } else {
                (ours, &theirs)
            };
            // Every tree extends the empty one, whose root is fixed (RFC 6962 2.1.1);
            // a consistency proof from size 0 is not defined.
            let proven = if older.tree_size == 0 {
                Ok(
                    if older.root_hash == pedigree_core::merkle::EMPTY_TREE_HASH {
                        Ok(())
                    } else {
                        Err(pedigree_core::tilereader::TileProofError::Proof(
                            pedigree_core::merkle::ProofError::RootMismatch,
                        ))
                    },
                )
            } else {
                self.log.with_tiles(tiles, |s| {
                    s.tree(newer.tree_size, newer.root_hash)
                        .check_consistency(older.tree_size, &older.root_hash)
                })
            };
            match proven {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.sink.emit(evidence(Alert::new(
                    Severity::Critical,
                    "split_view",
                    None,
                    format!(
                        "peer {peer} holds a checkpoint of tree size {} that is not consistent with ours of tree size {}: {e}",
                        theirs.tree_size, ours.tree_size
                    ),
                ))),
                // The peer saw a larger tree than the log serves us, and the log has no
                // tiles for it: we cannot check it, which itself is worth a look.
                Err(e) => self.sink.emit(evidence(Alert::new(
                    Severity::Warning,
                    "peer_unverified",
                    None,
                    format!(
                        "couldn't check peer {peer}'s checkpoint of tree size {} against the log's tiles: {e:#}",
                        theirs.tree_size
                    ),
                ))),
            }
        }
        Ok(())
    }
}

/// Up to `sample` entries of `first..end`, spread evenly: the same range always gives
/// the same sample.
fn sample_indexes(first: u64, end: u64, sample: usize) -> Vec<u64> {
    let count = end.saturating_sub(first);
    let k = count.min(sample as u64);
    (0..k)
        .map(|j| {
            let offset = u128::from(j) * u128::from(count) / u128::from(k);
            first + u64::try_from(offset).unwrap_or(0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_spread_and_bounded() {
        assert_eq!(sample_indexes(0, 4, 16), vec![0, 1, 2, 3]);
        assert_eq!(sample_indexes(10, 10, 16), Vec::<u64>::new());
        assert_eq!(sample_indexes(0, 1000, 4), vec![0, 250, 500, 750]);
        assert_eq!(sample_indexes(5, 9, 0), Vec::<u64>::new());
        assert_eq!(sample_indexes(u64::MAX - 2, u64::MAX, 16).len(), 2);
    }
}
