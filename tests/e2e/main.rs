//! End-to-end tests: the real `pedigree-server` (and `pedigree`) binaries on 127.0.0.1
//! with temporary RocksDB directories and real keys. One test binary; each module says
//! in its first line what belongs there.

mod backup;
mod cli_bom;
mod cli_lineage;
mod config;
mod connections;
mod crash;
mod deploy;
mod export;
mod incident;
mod malformed;
mod mirror;
mod monitor;
mod overload;
mod server_api;
mod shutdown;
mod stack;
mod witness;
