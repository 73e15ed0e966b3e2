//! The Pedigree log server: a RocksDB-backed append-only Merkle log of in-toto
//! attestations, its batching sequencer and its HTTP API.
//!
//! In scope: storage ([`storage`], [`layout`]), the log engine ([`engine`]), the
//! sequencer ([`sequencer`]), the HTTP API ([`api`]), configuration ([`config`]),
//! metrics ([`metrics`]), logs and request ids ([`telemetry`]), start-up ([`service`]), the offline store check ([`fsck`]) and
//! collecting witness cosignatures ([`witness`]).
//! Out of scope: formats and verification, which live in `pedigree-core`; this crate
//! only admits, stores, sequences and serves.

pub mod api;
pub mod config;
pub mod engine;
pub mod fsck;
pub mod layout;
pub mod metrics;
pub mod sequencer;
pub mod service;
pub mod storage;
pub mod telemetry;
pub mod witness;
