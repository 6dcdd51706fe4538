//! The data plane as the agent sees it: the embedded kernel object ([`object`]), loading and
//! attaching it ([`loader`]), the desired state ([`plan`]), the scheduler rings ([`ring`]), Maglev tables ([`maglev`]) and
//! writing the kernel's tables atomically ([`tables`]).

pub mod bpffs;
pub mod conns;
pub mod conntrack;
pub mod loader;
pub mod maglev;
pub mod next_hop;
pub mod object;
pub mod plan;
pub mod resize;
pub mod ring;
pub mod stats;
pub mod tables;

pub use loader::{AttachMode, Dataplane, LoadError};
pub use plan::{DestPlan, ServicePlan, Target};
