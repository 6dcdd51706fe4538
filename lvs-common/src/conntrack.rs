//! The connection and persistence tables.

use crate::addr::Addr;

/// A flow's 5-tuple as seen on the wire (client → VIP).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Client address.
    pub src: Addr,
    /// Virtual address.
    pub dst: Addr,
    /// Client port, network byte order.
    pub sport_be: u16,
    /// Virtual port, network byte order.
    pub dport_be: u16,
    /// IP protocol.
    pub proto: u8,
    /// Explicit padding, always 0.
    pub _pad0: u8,
    /// Explicit padding, always 0.
    pub _pad1: u16,
}

/// What the connection table remembers of a flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtValue {
    /// The destination id the flow was scheduled to.
    pub dest: u32,
    /// That destination's generation at the time.
    pub generation: u32,
}

/// The key of a persistence entry: a service and a masked client address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PersistKey {
    /// Client address with the service's persistence mask applied.
    pub client: Addr,
    /// Service id.
    pub service: u32,
}

/// A persistence entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PersistValue {
    /// When the entry was last used to schedule a connection (`bpf_ktime_get_ns`).
    pub last_used_ns: u64,
    /// The destination id.
    pub dest: u32,
    /// That destination's generation at the time.
    pub generation: u32,
}
