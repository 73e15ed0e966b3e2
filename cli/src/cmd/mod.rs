//! One module per command group.

pub mod attest;
pub mod bom;
pub mod impact;
pub mod key;
pub mod lineage;
pub mod monitor;
pub mod oms;
pub mod proof;
pub mod revoke;
pub mod scan;
pub mod witness;
