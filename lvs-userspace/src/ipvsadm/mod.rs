//! `lvs ipvsadm` (and the same binary called `ipvsadm`): ipvsadm's command line ([`args`]),
//! the table its commands edit ([`rules`]) and what it prints ([`output`]).
//!
//! The command acts on the running agent over its control socket: changes go to the agent,
//! which makes them on its own table of command-made services and writes the data plane
//! through its one model-to-maps diff (see `agent::commanded`); lists are rendered from the
//! agent's snapshot.

pub mod args;
pub mod cli;
mod options;
pub mod output;
pub mod rules;
