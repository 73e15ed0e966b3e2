//! The Pedigree log server: a RocksDB-backed append-only Merkle log of in-toto
//! attestations, its batching sequencer and its HTTP API.
//!
//! In scope: storage ([`storage`], [`layout`]), the log engine ([`engine`]), the
//! sequencer ([`sequencer`]), the HTTP API ([`api`]), configuration ([`config`]),
//! metrics ([`metrics`]), logs and request ids ([`telemetry`]), start-up ([`service`]),
//! the offline store check ([`fsck`]), collecting witness cosignatures ([`witness`]),
//! online backup and restore ([`backup`], [`admin`]), exporting the log as static tiles
//! ([`export`], [`staticdir`]) and a verifying read-only mirror ([`mirror`]).
//! Out of scope: formats and verification, which live in `pedigree-core`; this crate
//! only admits, stores, sequences and serves.

#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod backup;
pub mod config;
pub mod engine;
pub mod export;
pub mod fsck;
pub mod layout;
pub mod metrics;
pub mod mirror;
pub mod sequencer;
pub mod service;
pub mod staticdir;
pub mod storage;
pub mod telemetry;
pub mod witness;
