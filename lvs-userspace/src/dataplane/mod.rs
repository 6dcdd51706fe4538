//! The data plane as the agent sees it: the embedded kernel object, loading and attaching it,
//! and writing its maps.

pub mod object;
