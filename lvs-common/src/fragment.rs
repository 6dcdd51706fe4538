//! Fragments: the table that sends the later fragments of a datagram where its first fragment
//! went, and the set of VIP addresses that tells a fragment (which carries no ports) whether
//! it is addressed to a virtual service's address at all.
//!
//! The first fragment of a datagram carries the transport header; it is balanced like any
//! packet of its flow and leaves a [`FragValue`] under the datagram's [`FragKey`]. A later
//! fragment finds its destination there; one that finds nothing (it came before its first
//! fragment, or the first was dropped) is dropped and counted
//! ([`crate::DropReason::OrphanFragment`]) when it is addressed to a VIP address, and passed
//! untouched otherwise.

use crate::addr::Addr;

/// One datagram: (source, destination, protocol, identification), as IPv4 reassembly keys it.
/// For IPv6 `proto` is the Fragment header's Next Header, the same in every fragment of a
/// datagram (RFC 8200), and `id` its 32-bit identification.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// IPv4 identification (16 bits, zero-extended) or IPv6 fragment identification, as the
    /// bytes stand on the wire, read natively.
    pub id: u32,
    /// IPv4 protocol, or the IPv6 Fragment header's Next Header.
    pub proto: u8,
    /// Explicit padding, always 0.
    pub _pad: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<FragKey>() == 40);

/// Where the fragments of a datagram go.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragValue {
    /// The destination id its first fragment was sent to, or [`crate::limits::NO_DEST`]:
    /// the first fragment was to a VIP address but for no virtual service, and was passed
    /// to the director's stack, so the others are too.
    pub dest: u32,
    /// That destination's generation at the time.
    pub generation: u32,
    /// The virtual service (for the counters).
    pub service: u32,
    /// Explicit padding, always 0.
    pub _pad: u32,
    /// When the first fragment was seen (the data plane's clock: CLOCK_MONOTONIC, coarse).
    pub seen_ns: u64,
}

const _: () = assert!(core::mem::size_of::<FragValue>() == 24);

/// How long the later fragments of a datagram follow its first: Linux's default
/// `ipfrag_time` (30 s), after which the receiver has given up the datagram anyway.
pub const FRAG_TIMEOUT_NS: u64 = 30_000_000_000;

/// Whether an entry written at `seen_ns` still holds at `now_ns`.
#[inline(always)]
pub const fn frag_fresh(seen_ns: u64, now_ns: u64) -> bool {
    now_ns.wrapping_sub(seen_ns) < FRAG_TIMEOUT_NS
}

/// Bits of the VIP address table's value: the protocols a VIP address has services for.
pub mod vip_protos {
    /// At least one TCP service.
    pub const TCP: u32 = 1 << 0;
    /// At least one UDP service.
    pub const UDP: u32 = 1 << 1;
    /// Either.
    pub const ANY: u32 = TCP | UDP;

    /// The bit of IP protocol `p` ([`crate::service::proto`]); 0 for any other.
    #[inline(always)]
    pub const fn of(p: u8) -> u32 {
        match p {
            crate::service::proto::TCP => TCP,
            crate::service::proto::UDP => UDP,
            _ => 0,
        }
    }
}
