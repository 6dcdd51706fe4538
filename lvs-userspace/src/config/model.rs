//! The configuration model: what both readers (TOML and ldirectord.cf) produce, with every
//! default already applied. Everything downstream (checks, the data plane, `lvs check`,
//! `lvs convert`) works from this and never from the text.
//!
//! This file holds the whole ([`Config`]) and where things were written; its parts are in
//! `model/`: the global settings (`globals.rs`), a virtual service (`service.rs`), its
//! scheduler (`scheduler.rs`), its reals (`real.rs`) and its checks (`check.rs`), all
//! re-exported here.

use std::{net::IpAddr, path::PathBuf};

pub use super::status_codes::StatusCodes;

mod check;
mod globals;
mod real;
mod scheduler;
mod service;

pub use check::*;
pub use globals::*;
pub use real::*;
pub use scheduler::*;
pub use service::*;

/// Where a thing was written: file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub source: PathBuf,
    /// Global settings.
    pub globals: Globals,
    /// The virtual services, in file order.
    pub virtuals: Vec<VirtualService>,
    /// Warnings for directives that were accepted but have no effect here (file:line: why).
    pub warnings: Vec<String>,
    /// The host names the configuration names instead of addresses, and what the system
    /// resolver made of them, in file order.
    pub resolved: Vec<ResolvedName>,
}

/// A host name written where an address goes, and the address it was resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedName {
    /// Where it was written.
    pub location: Location,
    /// The directive or key (`virtual`, `real`, `fallback`...).
    pub key: String,
    /// The name as written.
    pub name: String,
    /// The address lvs uses for it.
    pub address: IpAddr,
}

impl std::fmt::Display for ResolvedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {}: resolved to {} (a host name, looked up by the system resolver: \
             /etc/hosts or DNS)",
            self.location, self.key, self.name, self.address
        )
    }
}
