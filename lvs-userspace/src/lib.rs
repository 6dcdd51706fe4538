//! The lvs agent: loads the XDP load balancer, checks real servers, and keeps the BPF maps in
//! line with the configuration and the servers' health.

pub mod alert;
pub mod config;
pub mod dataplane;
pub mod logging;
