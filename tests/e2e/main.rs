//! End-to-end tests: the real `pedigree-server` (and `pedigree`) binaries on 127.0.0.1
//! with temporary RocksDB directories and real keys. One test binary; each module says
//! in its first line what belongs there.

mod cli_lineage;
mod config;
mod connections;
mod crash;
mod deploy;
mod malformed;
mod monitor;
mod overload;
mod server_api;
mod shutdown;
mod stack;
mod witness;
