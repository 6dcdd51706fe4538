//! Virtual services: the key a packet is matched by, and what the program needs to schedule it.

use crate::addr::Addr;

/// IP protocol numbers the data plane balances.
pub mod proto {
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

/// The key of a virtual service: (VIP, port, protocol). Port 0 means every port of the VIP.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VipKey {
    /// The virtual address (IPv4-mapped for IPv4).
    pub addr: Addr,
    /// Destination port in network byte order; 0 for every port.
    pub port_be: u16,
    /// [`proto::TCP`] or [`proto::UDP`].
    pub proto: u8,
    /// Explicit padding, always 0.
    pub _pad: u8,
}

/// Scheduler kinds as the kernel sees them. Userspace turns `wrr`, `rr` (and any other
/// sequence scheduler) into a ring; the kernel either walks it or hashes into it.
pub mod sched {
    /// Walk the ring: each new connection takes the next slot (per CPU).
    pub const RING_WALK: u32 = 0;
    /// Hash the client address into the ring (`sh`).
    pub const SOURCE_HASH: u32 = 1;
    /// `lc`: the ring lists the candidates ([`crate::conns::candidate`]) in IPVS's list order.
    pub const LC: u32 = 2;
    /// `wlc`, candidates as for [`LC`].
    pub const WLC: u32 = 3;
    /// `sed`, candidates as for [`LC`].
    pub const SED: u32 = 4;
    /// `nq`, candidates as for [`LC`].
    pub const NQ: u32 = 5;
    /// `fo`, candidates as for [`LC`].
    pub const FO: u32 = 6;
    /// `ovf`, candidates as for [`LC`].
    pub const OVF: u32 = 7;
    /// `dh`: the ring is the 256-bucket table ([`crate::conns::DH_BUCKETS`]) of candidates,
    /// indexed by [`crate::conns::dh_bucket`] of the packet's destination address.
    pub const DEST_HASH: u32 = 8;
    /// Hash the flow into the service's Maglev table (`mh`), kept in its ring
    /// ([`crate::hash::mh_slot`]).
    pub const MAGLEV: u32 = 9;
}

/// Flag bits of [`Service::flags`].
pub mod service_flags {
    /// New connections of a client (masked by the persistence netmask) stick to the real they
    /// got for `persist_timeout_s`.
    pub const PERSISTENT: u32 = 1 << 0;
    /// `mh-port`: the Maglev hash takes the client's port as well as its address.
    pub const MH_PORT: u32 = 1 << 1;
    /// `mh-fallback`: a Maglev slot whose real takes no new connections is skipped to the next
    /// slot of the flow's sequence ([`crate::limits::MH_FALLBACK_TRIES`] at most).
    pub const MH_FALLBACK: u32 = 1 << 2;
    /// IPVS's one-packet scheduling (`--ops`, UDP): every packet is scheduled on its own and
    /// no connection entry is kept (IPVS never hashes such a connection), so a NATed real's
    /// replies find none either. Persistence still applies.
    pub const ONE_PACKET: u32 = 1 << 3;
}

/// A virtual service as the kernel program sees it. The agent replaces the whole value in one
/// hash-map update, which is what makes a change atomic for packets: `ring_gen`, `ring_len` and
/// `fallback` switch together.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// Index of this service in the per-service arrays (rings, counters).
    pub id: u32,
    /// [`service_flags`] bits.
    pub flags: u32,
    /// One of [`sched`].
    pub scheduler: u32,
    /// Which of the service's two rings is live (0 or 1).
    pub ring_gen: u32,
    /// Slots used in the live ring; 0 when no real is usable.
    pub ring_len: u32,
    /// Destination id that takes new flows when `ring_len` is 0, or [`crate::limits::NO_DEST`].
    pub fallback: u32,
    /// Persistence timeout in seconds (with [`service_flags::PERSISTENT`]).
    pub persist_timeout_s: u32,
    /// Explicit padding, always 0 in the services map. (The balancer's copy of a service that
    /// it hands to the new-flow program marks a word it hands with it here, see `lvs-ebpf`'s
    /// `maps::HASH_HANDED`.)
    pub _pad: u32,
    /// Client addresses are masked with this before the persistence lookup.
    pub persist_mask: Addr,
}

impl Service {
    /// The index of slot `pos` of ring `gen` of service `id` in the ring map.
    #[inline(always)]
    pub const fn ring_index(id: u32, generation: u32, pos: u32) -> u32 {
        (id * 2 + (generation & 1)) * crate::limits::RING_SIZE + pos
    }
}

/// Bits of the tables' flags word ([`crate::limits::map_names::TABLE_FLAGS`]), written by the
/// agent from what its tables hold: each spares the balancer a hash lookup on the packets it
/// would be for while nothing it looks for is there.
pub mod table_flags {
    // Bit 0 (1) was the NAT reply table's flag, which the connection table's reply ways
    // replaced: left unused.
    /// A service of every port (port 0: a persistent service of all ports, or a firewall-mark
    /// service's match) is in the tables: a packet whose (VIP, port) is no service is looked
    /// up again with port 0.
    pub const ANY_PORT: u32 = 2;
}
