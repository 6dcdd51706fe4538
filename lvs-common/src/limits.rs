//! Map names and sizes. The kernel declares its maps with these, and the agent finds them by
//! these names.

/// Virtual services that can be configured at once (service ids are `0..MAX_SERVICES`).
pub const MAX_SERVICES: u32 = 256;

/// Destination slots: one per (virtual service, real server) pair, plus fallbacks.
pub const MAX_DESTS: u32 = 16_384;

/// Slots in one scheduler ring. A service has two rings (double buffering), so the ring map
/// holds `MAX_SERVICES * 2 * RING_SIZE` entries.
pub const RING_SIZE: u32 = 4096;

/// Slots of a Maglev (`mh`) table: IPVS's default prime (`CONFIG_IP_VS_MH_TAB_INDEX` 12). The
/// table lives in the service's ring, so it must fit in one.
pub const MH_TABLE_SIZE: u32 = 4093;

const _: () = assert!(MH_TABLE_SIZE <= RING_SIZE);

/// Slots of its sequence a flow of an `mh-fallback` service tries before it is dropped: the
/// kernel's cost for a flow whose real is unusable is bounded by this many lookups.
pub const MH_FALLBACK_TRIES: u32 = 8;

/// Flows the connection table holds as the object declares it: [`CT_BUCKETS`] buckets of
/// [`CT_WAYS`] ways. A new flow whose bucket is full takes the place of the bucket's least
/// recently seen flow. The agent sizes the table from its config at load (the map's
/// `max_entries`, and [`crate::CtConfig::bucket_mask`]); this is the size a data plane loaded
/// without sizes gets (tests, benchmarks).
pub const CONNTRACK_ENTRIES: u32 = 262_144;

/// Ways (flows) in one bucket of the connection table.
pub const CT_WAYS: usize = 4;

/// Buckets of the connection table (a power of two: the bucket index is a masked hash).
pub const CT_BUCKETS: u32 = CONNTRACK_ENTRIES / CT_WAYS as u32;

const _: () =
    assert!(CT_BUCKETS.is_power_of_two() && CT_BUCKETS * CT_WAYS as u32 == CONNTRACK_ENTRIES);

/// Entries of the persistence table (LRU) as the object declares it (the agent sizes it from
/// its config at load).
pub const PERSIST_ENTRIES: u32 = 65_536;

/// Datagrams whose fragments the fragment table follows at once (LRU).
pub const FRAG_ENTRIES: u32 = 32_768;

/// Interfaces the program may redirect to (devmap entries).
pub const MAX_TX_PORTS: u32 = 64;

/// Entries of the next-hop cache ([`map_names::NEXT_HOPS`], LRU): one per destination a
/// routed packet goes to (a tunnelled or NATed real, a NATed flow's client) from each source
/// and ingress interface it is asked for.
pub const NEXT_HOP_ENTRIES: u32 = 65_536;

/// Entries of each half of the per-CPU next-hop cache ([`map_names::DEST_HOPS`]): a
/// destination slot's entry is its id modulo this (a power of two), so up to this many routed
/// destinations never share one; a client's (for NATed replies) a hash of its address.
pub const DEST_HOP_SLOTS: u32 = 4096;

/// A value meaning "no destination".
pub const NO_DEST: u32 = u32::MAX;

/// Map names, as the kernel program declares them and the agent looks them up.
pub mod map_names {
    /// `HASH` [`crate::VipKey`] → [`crate::Service`].
    pub const SERVICES: &str = "LVS_SERVICES";
    /// `ARRAY` of [`crate::Dest`], indexed by destination id.
    pub const DESTS: &str = "LVS_DESTS";
    /// `ARRAY` of `u32` destination ids: the scheduler rings.
    pub const RINGS: &str = "LVS_RINGS";
    /// `PERCPU_ARRAY` of `u32`: each CPU's position in each service's ring.
    pub const RING_POS: &str = "LVS_RING_POS";
    /// `ARRAY` (`BPF_F_MMAPABLE`) of [`crate::CtBucket`], indexed by
    /// [`crate::hash::ct_bucket`]: the connection table.
    pub const CONNTRACK: &str = "LVS_CONNTRACK";
    /// `ARRAY` of one `u64`: the connection table's hash seed, random, written by the agent
    /// before the balancer is attached and kept with the table.
    pub const CT_SEED: &str = "LVS_CT_SEED";
    /// `LRU_HASH` [`crate::PersistKey`] → [`crate::PersistValue`].
    pub const PERSIST: &str = "LVS_PERSIST";
    /// `DEVMAP_HASH` ifindex → ifindex, for XDP_REDIRECT to another interface.
    pub const TX_PORTS: &str = "LVS_TX_PORTS";
    /// `PERCPU_ARRAY` of [`crate::Counters`] per service id.
    pub const SERVICE_STATS: &str = "LVS_SERVICE_STATS";
    /// `PERCPU_ARRAY` of [`crate::Counters`] per destination id.
    pub const DEST_STATS: &str = "LVS_DEST_STATS";
    /// `PERCPU_ARRAY` of `u64` per [`crate::DropReason`].
    pub const DROPS: &str = "LVS_DROPS";
    /// `ARRAY` of one [`crate::OwnMacs`]: the Ethernet destinations the balancer accepts.
    /// Not pinned: every agent writes it from the interface (and the config) before its
    /// program runs.
    pub const OWN_MACS: &str = "LVS_OWN_MACS";
    /// `LRU_HASH` [`crate::FragKey`] → [`crate::FragValue`]: where the fragments of a
    /// datagram go. Not pinned: an entry lives as long as a datagram's fragments (seconds).
    pub const FRAGMENTS: &str = "LVS_FRAGMENTS";
    /// `HASH` [`crate::Addr`] → `u32` ([`crate::fragment::vip_protos`] bits): the addresses of
    /// the virtual services. Not pinned: every agent writes it from its services before its
    /// program runs.
    pub const VIP_ADDRS: &str = "LVS_VIP_ADDRS";
    /// `ARRAY` of one `u32`, [`crate::service::table_flags`]: what the tables hold that the
    /// balancer looks for only when it is there (a NATed real's replies, a service of every
    /// port). Not pinned: every agent writes it from its tables (adopted or applied) before
    /// its program runs.
    pub const TABLE_FLAGS: &str = "LVS_TABLE_FLAGS";
    /// `ARRAY` (`BPF_F_MMAPABLE`) of `u64` per destination id: its connection counts
    /// ([`crate::conns`]), changed by compare-and-exchange from both sides.
    pub const DEST_CONNS: &str = "LVS_DEST_CONNS";
    /// `PROG_ARRAY` of the programs the balancer tail-calls (a new flow's stages, the tunnel,
    /// NAT both ways and its ICMP errors),
    /// indexed by [`super::forward_progs`]. Pinned: the kernel empties a program array when
    /// no process holds it, and the balancer must go on scheduling new flows when its agent is
    /// gone; every agent puts its own programs in it before its balancer runs.
    pub const FORWARD_PROGS: &str = "LVS_FORWARD_PROGS";
    /// `PERCPU_ARRAY` of one `u32`: the destination id the balancer hands to the forwarding
    /// program it tail-calls. Pinned, as [`NEW_PACKET`].
    pub const FORWARD_DEST: &str = "LVS_FORWARD_DEST";
    /// `PERCPU_ARRAY` of one parsed packet: what the balancer hands to the new-flow program it
    /// tail-calls (the kernel's own layout, never read by the agent). Pinned, so that a running
    /// balancer and the programs a restarted agent put in [`FORWARD_PROGS`] share it.
    pub const NEW_PACKET: &str = "LVS_NEW_PACKET";

    /// `LRU_HASH` (`BPF_F_NO_COMMON_LRU`) [`crate::NextHopKey`] → [`crate::NextHop`]: the next-hop cache in front of
    /// the FIB lookup ([`crate::next_hop`]), written by the data plane. Not pinned: a cache,
    /// that every agent's programs start empty.
    pub const NEXT_HOPS: &str = "LVS_NEXT_HOPS";
    /// `PERCPU_ARRAY` of [`crate::next_hop::DestHop`] ([`crate::next_hop::HOP_ENTRIES`]): the
    /// per-destination and per-client next-hop cache in front of [`NEXT_HOPS`], written by the data plane.
    /// Not pinned, as [`NEXT_HOPS`].
    pub const DEST_HOPS: &str = "LVS_DEST_HOPS";
    /// `ARRAY` of one `u32`: the next-hop cache's generation, bumped by the agent on every
    /// routing change it is told of ([`crate::next_hop`]). Not pinned, as [`NEXT_HOPS`].
    pub const NEXT_HOP_GENERATION: &str = "LVS_NEXT_HOP_GEN";

    /// Every map of the balancer: what is pinned, and what a restarted agent adopts.
    pub const ALL: [&str; 15] = [
        SERVICES,
        DESTS,
        RINGS,
        RING_POS,
        CONNTRACK,
        CT_SEED,
        PERSIST,
        TX_PORTS,
        SERVICE_STATS,
        DEST_STATS,
        DROPS,
        DEST_CONNS,
        FORWARD_PROGS,
        FORWARD_DEST,
        NEW_PACKET,
    ];

    /// Pinned maps of earlier builds that this one no longer has: removed with the others
    /// when the agent stops with its data plane (`LVS_NAT_REPLIES`, the NAT reply table, is
    /// now the connection table's reply ways).
    pub const RETIRED: [&str; 1] = ["LVS_NAT_REPLIES"];
}

/// Indexes in the forwarding programs' array ([`map_names::FORWARD_PROGS`]).
pub mod forward_progs {
    /// The tunnel program ([`super::program_names::TUNNEL`]).
    pub const TUNNEL: u32 = 0;
    /// The new-flow program ([`super::program_names::NEW_FLOW`]).
    pub const NEW_FLOW: u32 = 1;
    /// The NAT program, client → real ([`super::program_names::NAT`]).
    pub const NAT: u32 = 2;
    /// The NAT reply program, real → client ([`super::program_names::NAT_REPLY`]).
    pub const NAT_REPLY: u32 = 3;
    /// The NAT ICMP program ([`super::program_names::NAT_ICMP`]).
    pub const NAT_ICMP: u32 = 4;
    /// Entries of the array.
    pub const COUNT: u32 = 5;
}

/// Program names in the object file.
pub mod program_names {
    /// The tunnel forwarding method, tail-called by the balancer for a tunnelled destination
    /// (its own program, so the verifier checks it apart from the balancer's many paths).
    pub const TUNNEL: &str = "lvs_tunnel";
    /// A new flow's stages (virtual service, scheduler, remembering, forwarding), tail-called
    /// by the balancer for a packet of a virtual service that no known flow holds: its own
    /// program, so the verifier checks the schedulers apart from the parser's many paths.
    pub const NEW_FLOW: &str = "lvs_new_flow";
    /// The NAT forwarding method (`masq`), client → real, tail-called by the balancer for a
    /// NATed destination.
    pub const NAT: &str = "lvs_nat";
    /// A NATed flow's reply (real → client), tail-called by the balancer for a packet that
    /// the NAT reply table knows.
    pub const NAT_REPLY: &str = "lvs_nat_reply";
    /// ICMP errors about NATed flows, tail-called by the balancer for an ICMP error.
    pub const NAT_ICMP: &str = "lvs_nat_icmp";
    /// The decapsulator for real servers (`lvs decap`).
    pub const DECAP: &str = "lvs_decap";
    /// The decapsulator's VIPs (`HASH` of [`crate::Addr`] to `u32`). Not pinned.
    pub const DECAP_VIPS: &str = "LVS_DECAP_VIPS";
    /// The load balancer.
    pub const BALANCER: &str = "lvs_xdp";
    /// A program that passes every packet. Native XDP_TX on a veth needs an XDP program on its
    /// peer; the lab attaches this one there.
    pub const PASS: &str = "lvs_pass";
    /// The benchmark floor: parse Ethernet/IPv4/TCP, one hash lookup, MAC rewrite, XDP_TX.
    pub const FLOOR: &str = "lvs_floor";
    /// The floor program's hash map.
    pub const FLOOR_MAP: &str = "LVS_FLOOR_FLOWS";
}
