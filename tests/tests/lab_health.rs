//! Health checking, fallback and live reconfiguration end to end in the namespace lab: `lvs run`
//! on the director checks the three reals, and the tests break and mend the reals (stop their
//! HTTP servers, change what they serve) and rewrite the config while clients connect through
//! the VIP.
//!
//! Every timing bound is the one an operator is promised: a real that fails its check is out
//! within `checkinterval + checktimeout` (plus 1 s of slack for the lab's scheduling). Every
//! wait has a deadline and fails naming what it waited for.
//!
//! One test binary; each concern in a file of its own under `lab_health/`.

#[path = "lab_health/common.rs"]
mod common;

#[path = "lab_health/download.rs"]
mod download;

#[path = "lab_health/failed_checks.rs"]
mod failed_checks;

#[path = "lab_health/fallback_recovery.rs"]
mod fallback_recovery;

#[path = "lab_health/quiescent.rs"]
mod quiescent;

#[path = "lab_health/reload.rs"]
mod reload;
