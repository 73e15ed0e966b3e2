//! The sequencer: one task that gathers concurrent submissions into batches and commits
//! each batch with one durable engine write.
//!
//! Batching is what makes durable appends fast: one fsync and one checkpoint signature
//! serve every entry in the batch. A batch closes when it holds `batch_size` entries or
//! `batch_wait` has passed since its first entry was submitted; entries that queued
//! while the previous batch was being committed have been waiting all along, so under
//! load a batch closes as soon as the one before it is durable. The queue in front is
//! bounded: when it is full, submissions are refused at once (503) instead of growing
//! memory.

use crate::engine::{AppendOutcome, BatchHashes, EngineError, LogEngine};
use crate::metrics::Metrics;
use crate::storage::Store;
use pedigree_core::checkpoint::SignedCheckpoint;
use pedigree_core::entry::Admitted;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What a submitter gets back once its batch is committed.
pub type Committed = Result<Sequenced, Arc<EngineError>>;

/// A submission's place in the log, once its batch is durable.
#[derive(Debug)]
pub struct Sequenced {
    /// Where the entry is, and whether it was already logged.
    pub outcome: AppendOutcome,
    /// The checkpoint that covers the batch.
    pub checkpoint: Arc<SignedCheckpoint>,
    /// The batch's hashes, to prove the entry without reading storage
    /// ([`LogEngine::inclusion_proof_after`]).
    pub hashes: Arc<BatchHashes>,
}

struct Job {
    entry: Admitted,
    reply: oneshot::Sender<Committed>,
    /// When the entry was submitted: a batch's wait counts from its first entry's.
    submitted: tokio::time::Instant,
}

/// Why a submission was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full: retry later.
    Overloaded,
    /// The sequencer has stopped.
    Stopped,
}

/// Handle used by request handlers to submit entries.
#[derive(Clone)]
pub struct Sequencer {
    tx: mpsc::Sender<Job>,
    /// Milliseconds since `started` of the last finished commit attempt.
    last_progress_ms: Arc<AtomicU64>,
    /// Submissions queued, in the open batch or being committed.
    in_flight: Arc<AtomicU64>,
    /// Most submissions in flight.
    queue_size: u64,
    started: Instant,
}

impl Sequencer {
    /// Starts the sequencer task on the current Tokio runtime.
    pub fn start<S: Store>(
        engine: Arc<LogEngine<S>>,
        batch_size: usize,
        batch_wait: Duration,
        queue_size: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue_size);
        let seq = Sequencer {
            tx,
            last_progress_ms: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::new(AtomicU64::new(0)),
            queue_size: queue_size as u64,
            started: Instant::now(),
        };
        tokio::spawn(run(
            engine,
            rx,
            batch_size,
            batch_wait,
            seq.clone(),
            metrics,
        ));
        seq
    }

    /// Queues an admitted entry and returns the receiver of its commit result.
    ///
    /// # Errors
    ///
    /// [`SubmitError::Overloaded`] when the queue is full.
    pub fn submit(&self, entry: Admitted) -> Result<oneshot::Receiver<Committed>, SubmitError> {
        // The bound covers everything not yet answered: queued, in the open batch, or
        // being committed. Memory held for submissions is at most `queue_size` entries.
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= self.queue_size {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Overloaded);
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            entry,
            reply,
            submitted: tokio::time::Instant::now(),
        };
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    mpsc::error::TrySendError::Full(_) => SubmitError::Overloaded,
                    mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
                })
            }
        }
    }

    /// Whether work is waiting while no commit has finished for `limit`: a stuck sequencer.
    pub fn stalled(&self, limit: Duration) -> bool {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_progress_ms.load(Ordering::Relaxed);
        self.in_flight.load(Ordering::Relaxed) > 0
            && now.saturating_sub(last) > limit.as_millis() as u64
    }

    /// Entries waiting or being committed.
    pub fn queue_depth(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Waits until nothing is queued, in a batch or being committed, for at most
    /// `timeout`; returns whether the sequencer drained.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.queue_depth() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    fn progressed(&self, done: u64) {
        self.in_flight.fetch_sub(done, Ordering::SeqCst);
        self.last_progress_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

async fn run<S: Store>(
    engine: Arc<LogEngine<S>>,
    mut rx: mpsc::Receiver<Job>,
    batch_size: usize,
    batch_wait: Duration,
    seq: Sequencer,
    metrics: Arc<Metrics>,
) {
    // The idle time before a batch opens counts as progress.
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        seq.progressed(0);
        let Some(first) = rx.recv().await else {
            return;
        };
        let deadline = first.submitted + batch_wait;
        batch.push(first);
        while batch.len() < batch_size {
            // Take what is already queued without waiting, then wait for the deadline.
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(job)) => batch.push(job),
                    _ => break,
                },
            }
        }
        // The entries move to the commit task (and are dropped there, off the async
        // workers); the replies stay here.
        let (entries, replies): (Vec<Admitted>, Vec<_>) =
            batch.drain(..).map(|j| (j.entry, j.reply)).unzip();
        let engine = Arc::clone(&engine);
        let started = Instant::now();
        // RocksDB's fsync blocks: run it off the async workers.
        let result = tokio::task::spawn_blocking(move || engine.append_batch(&entries))
            .await
            .unwrap_or_else(|e| Err(EngineError::Poisoned(format!("commit task failed: {e}"))));
        let count = replies.len() as u64;
        match result {
            Ok(commit) => {
                metrics.observe_commit(started.elapsed(), count, commit.checkpoint.tree_size);
                for (reply, outcome) in replies.into_iter().zip(commit.outcomes) {
                    let _ = reply.send(Ok(Sequenced {
                        outcome,
                        checkpoint: Arc::clone(&commit.checkpoint),
                        hashes: Arc::clone(&commit.hashes),
                    }));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, entries = count, "batch commit failed");
                metrics.commit_failures.inc();
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(Arc::clone(&e)));
                }
            }
        }
        seq.progressed(count);
    }
}
