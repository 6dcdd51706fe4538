//! The kernel programs are the `lvs` binary target of this crate (`src/main.rs`), built for
//! `bpfel-unknown-none` by `lvs-userspace/build.rs`. This empty library exists so the agent can
//! list the crate as a build dependency and be rebuilt when it changes.
#![no_std]
