//! Every map of the load balancer, declared once with the names and sizes of
//! [`lvs_common::limits`].

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU},
    macros::map,
    maps::{Array, DevMapHash, HashMap, LruHashMap, PerCpuArray, ProgramArray},
};
use lvs_common::{
    Addr, Counters, CtBucket, CtConfig, Dest, DestHop, FragKey, FragValue, NextHop, NextHopKey,
    OwnMacs, PersistKey, PersistValue, Service, VipKey,
    limits::{
        CT_BUCKETS, FRAG_ENTRIES, MAX_DESTS, MAX_SERVICES, MAX_TX_PORTS, NEXT_HOP_ENTRIES,
        PERSIST_ENTRIES, RING_SIZE, forward_progs,
    },
    next_hop::HOP_ENTRIES,
    stats::DropReason,
};

/// Virtual services. A hash map, so the agent replaces a service's value atomically.
#[map(name = "LVS_SERVICES")]
pub static SERVICES: HashMap<VipKey, Service> = HashMap::with_max_entries(MAX_SERVICES, 0);

/// Destination slots.
#[map(name = "LVS_DESTS")]
pub static DESTS: Array<Dest> = Array::with_max_entries(MAX_DESTS, 0);

/// Two scheduler rings per service, of destination ids.
#[map(name = "LVS_RINGS")]
pub static RINGS: Array<u32> = Array::with_max_entries(MAX_SERVICES * 2 * RING_SIZE, 0);

/// Each CPU's position in each service's ring.
#[map(name = "LVS_RING_POS")]
pub static RING_POS: PerCpuArray<u32> = PerCpuArray::with_max_entries(MAX_SERVICES, 0);

/// The connection table: buckets of ways, written in place by [`crate::conntrack`].
/// `BPF_F_MMAPABLE` page-aligns the values, so each 64-byte way is one cache line (a plain
/// array's values start 312 bytes into its allocation, which puts every way across two).
#[map(name = "LVS_CONNTRACK")]
pub static CONNTRACK: Array<CtBucket> = Array::with_max_entries(CT_BUCKETS, BPF_F_MMAPABLE);

/// Each destination slot's connection counts ([`lvs_common::conns`]): one word each, changed
/// by compare-and-exchange here and by the agent (which maps the array to correct for flows
/// that expire without a packet).
#[map(name = "LVS_DEST_CONNS")]
pub static DEST_CONNS: Array<u64> = Array::with_max_entries(MAX_DESTS, BPF_F_MMAPABLE);

/// The connection table's settings (one [`CtConfig`]): its hash seed, random, written by the
/// agent before the balancer is attached, and the idle timeout of each state.
#[map(name = "LVS_CT_SEED")]
pub static CT_CONFIG: Array<CtConfig> = Array::with_max_entries(1, 0);

/// The persistence table.
#[map(name = "LVS_PERSIST")]
pub static PERSIST: LruHashMap<PersistKey, PersistValue> =
    LruHashMap::with_max_entries(PERSIST_ENTRIES, 0);

/// Interfaces reachable by XDP_REDIRECT, keyed by ifindex.
#[map(name = "LVS_TX_PORTS")]
pub static TX_PORTS: DevMapHash = DevMapHash::with_max_entries(MAX_TX_PORTS, 0);

/// Per-service counters.
#[map(name = "LVS_SERVICE_STATS")]
pub static SERVICE_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_SERVICES, 0);

/// Per-destination counters.
#[map(name = "LVS_DEST_STATS")]
pub static DEST_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_DESTS, 0);

/// Drops by [`DropReason`].
#[map(name = "LVS_DROPS")]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DropReason::COUNT, 0);

/// When each CPU last logged a drop of each reason (rate limit of [`crate::stats::drop`]).
#[map(name = "LVS_DROP_LOGGED")]
pub static DROP_LOGGED: PerCpuArray<u64> = PerCpuArray::with_max_entries(DropReason::COUNT, 0);

/// The Ethernet destinations the balancer accepts (one record), written by the agent.
#[map(name = "LVS_OWN_MACS")]
pub static OWN_MACS: Array<OwnMacs> = Array::with_max_entries(1, 0);

/// Where the later fragments of a datagram go, written by its first fragment
/// ([`crate::fragment`]).
#[map(name = "LVS_FRAGMENTS")]
pub static FRAGMENTS: LruHashMap<FragKey, FragValue> =
    LruHashMap::with_max_entries(FRAG_ENTRIES, 0);

/// What the tables hold that the balancer looks for only when it is there
/// ([`lvs_common::service::table_flags`]: a NATed real, for [`crate::nat_reply`]; a service
/// of every port, for [`crate::vip`]), written by the agent.
#[map(name = "LVS_TABLE_FLAGS")]
pub static TABLE_FLAGS: Array<u32> = Array::with_max_entries(1, 0);

/// The virtual services' addresses → the protocols they have services for
/// ([`lvs_common::fragment::vip_protos`]), written by the agent.
#[map(name = "LVS_VIP_ADDRS")]
pub static VIP_ADDRS: HashMap<Addr, u32> = HashMap::with_max_entries(MAX_SERVICES, 0);
/// The forwarding programs the balancer tail-calls, written by the agent.
#[map(name = "LVS_FORWARD_PROGS")]
pub static FORWARD_PROGS: ProgramArray = ProgramArray::with_max_entries(forward_progs::COUNT, 0);

/// Tail-calls program `INDEX` of [`FORWARD_PROGS`]; returns only if the array holds none there.
///
/// Each call site must stay the only one of its index: the verifier gives a tail call whose
/// index is one constant a direct jump (patched when the agent writes the array), and one
/// whose index varies an indirect jump, which costs a retpoline where the kernel has them
/// (about 20 ns of a tunnelled or NATed packet, measured on such a VM). The compiler merges
/// two sites that differ only in the index (the tunnel's and NAT's, say) into one with a
/// variable index; the empty assembly after the call, a different text for each index, keeps
/// them apart. `tests/tests/packets/tail_calls.rs` checks the loaded programs.
#[inline(always)]
pub fn tail_call<const INDEX: u32>(ctx: &aya_ebpf::programs::XdpContext) {
    // SAFETY: the array holds XDP programs only (the agent writes it).
    // (An error for BPF, the unit type in host builds that only type-check this crate.)
    #[allow(clippy::let_unit_value)]
    let _ = unsafe { FORWARD_PROGS.tail_call(ctx, INDEX) };
    // SAFETY: an assembler comment; no instruction.
    unsafe { core::arch::asm!("/* tail call {} failed */", const INDEX, options(nostack)) };
}

/// What the balancer hands the new-flow program (one per CPU, as [`FORWARD_DEST`]): the parsed
/// packet and a copy of its virtual service (the reply program: the packet and its
/// reply way). The new-flow program starts from them rather than
/// parsing again (so the verifier walks the parser's paths in the balancer only) and looking
/// the service up a second time.
#[derive(Clone, Copy)]
pub struct NewFlow {
    /// The packet as the balancer parsed it.
    pub pkt: crate::parse::Packet,
    /// Its virtual service as the balancer found it.
    pub service: Service,
    /// For a NATed flow's reply ([`crate::nat_reply`]): its reply way's destination word, the
    /// place of its flow, as the balancer found it.
    pub reply: u64,
    /// For a new flow: its hash in the connection table as the balancer's lookup computed it
    /// ([`crate::conntrack::Known::New`]), if the slot's copy of the service is marked with
    /// [`HASH_HANDED`] ([`handed_hash`]).
    pub hash: u64,
    /// Unused: keeps the slot the size it has in the pinned maps of earlier builds (which
    /// handed a 32-byte reply-table entry here).
    pub _spare: [u64; 2],
}

/// Marks [`NewFlow::hash`] as the hash of the packet in the slot: the slot's copy of the
/// service has its padding word (0 in the services map) set to this. The slot is pinned, so
/// a restarted agent's new-flow program may for a moment follow the balancer of an earlier
/// build, which copies the service with its padding 0 on every new flow and never writes
/// `hash`: such a packet's flow is hashed anew, never by another packet's hash.
pub const HASH_HANDED: u32 = 1;

/// The hash handed with the packet in `slot` ([`NewFlow::hash`]), if it is the packet's.
#[inline(always)]
pub fn handed_hash(slot: &NewFlow) -> Option<u64> {
    (slot.service._pad == HASH_HANDED).then_some(slot.hash)
}

/// The hand-over to the new-flow program ([`NewFlow`]).
#[map(name = "LVS_NEW_PACKET")]
pub static NEW_PACKET: PerCpuArray<NewFlow> = PerCpuArray::with_max_entries(1, 0);

/// The destination id handed to a tail-called forwarding program (one per CPU: XDP runs to
/// completion on one CPU, tail call included).
#[map(name = "LVS_FORWARD_DEST")]
pub static FORWARD_DEST: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The next-hop cache in front of the FIB lookup ([`crate::fib::next_hop`],
/// [`lvs_common::next_hop`]). Each CPU has LRU lists of its own (`BPF_F_NO_COMMON_LRU`): a
/// miss's insert takes no lock shared with the other CPUs (measured: a miss 3–23% cheaper).
#[map(name = "LVS_NEXT_HOPS")]
pub static NEXT_HOPS: LruHashMap<NextHopKey, NextHop> =
    LruHashMap::with_max_entries(NEXT_HOP_ENTRIES, BPF_F_NO_COMMON_LRU);

/// The per-CPU next-hop cache in front of [`NEXT_HOPS`] ([`crate::fib::next_hop`],
/// [`DestHop`]): each CPU's entry for a destination slot, found by its id, and for a NATed
/// reply's client, by a hash of its address ([`lvs_common::next_hop`]): no hash map.
#[map(name = "LVS_DEST_HOPS")]
pub static DEST_HOPS: PerCpuArray<DestHop> = PerCpuArray::with_max_entries(HOP_ENTRIES, 0);

/// The next-hop cache's generation (one word), bumped by the agent on every routing change.
#[map(name = "LVS_NEXT_HOP_GEN")]
pub static NEXT_HOP_GENERATION: Array<u32> = Array::with_max_entries(1, 0);

/// Each CPU's cache of the coarse clock ([`crate::clock`]): the programs' own, not pinned.
#[map(name = "LVS_CLOCK")]
pub static CLOCK: PerCpuArray<crate::clock::Cached> = PerCpuArray::with_max_entries(1, 0);

/// Bounds the header offsets handed over in [`NEW_PACKET`]: larger than any frame.
const HEADER_OFFSET_MASK: usize = 0x3fff;

/// The packet as the balancer parsed it, from this CPU's [`NEW_PACKET`] slot (written before
/// the tail call to the program that reads it), its header offsets bounded for the verifier
/// (they are the parser's, within any frame: unchanged).
#[inline(always)]
pub fn handed_packet() -> Option<crate::parse::Packet> {
    let mut pkt = NEW_PACKET.get(0)?.pkt;
    pkt.l3 &= HEADER_OFFSET_MASK;
    pkt.l4 &= HEADER_OFFSET_MASK;
    Some(pkt)
}
