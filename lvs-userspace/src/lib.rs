//! The lvs agent: loads the XDP load balancer, checks real servers, and keeps the BPF maps in
//! line with the configuration and the servers' health.
//!
//! Follow a config change: [`config`] → [`agent`] → [`agent::desired`] → [`dataplane::tables`].
//! Follow a health change: [`health`] → [`agent`] (and [`alert`]) → the same path.

pub mod agent;
pub mod alert;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod decap;
pub mod demo;
pub mod health;
pub mod ipvsadm;
pub mod lab;
pub mod logging;
pub mod metrics;
pub mod neighbour;
pub mod status;
#[cfg(test)]
pub(crate) mod testdir;
#[cfg(test)]
pub(crate) mod testtls;
