//! Configuration: the model ([`model`]) and its two readers, TOML and ldirectord.cf.

pub mod model;

pub use model::*;
