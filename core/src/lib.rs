//! Pedigree's core: every wire format, the Merkle proof math and the signature checks.
//!
//! In scope: DSSE envelopes and keys ([`dsse`], [`keys`]), in-toto Statement v1 and SLSA
//! Provenance v1 ([`statement`], [`slsa`]), the leaf record and admission rules
//! ([`entry`]), RFC 6962 hashing and proofs ([`merkle`], [`subtree`]), C2SP checkpoints
//! and tiles ([`checkpoint`], [`tiles`]), log receipts that prove inclusion offline
//! ([`receipt`]), witness cosignatures and the `tlog-witness` wire format ([`witness`]),
//! C2SP `tlog-proof` files ([`tlogproof`]), and the static scan of model files for
//! code that loading them would run ([`scan`]).
//!
//! Out of scope: I/O of any kind. No files, sockets, clocks or threads: callers pass
//! bytes and times in, so the server, the CLI and the monitor all verify with the same
//! functions and every function here can be tested from data alone.

#![forbid(unsafe_code)]

pub mod bom;
pub mod bundle;
pub mod checkpoint;
pub mod dsse;
pub mod entry;
pub mod keys;
pub mod lineage;
pub mod merkle;
pub mod monitor;
pub mod oms;
pub mod policy;
pub mod receipt;
pub mod revocation;
pub mod scan;
pub mod slsa;
pub mod statement;
pub mod subtree;
pub mod tilereader;
pub mod tiles;
pub mod tlogproof;
pub mod witness;
