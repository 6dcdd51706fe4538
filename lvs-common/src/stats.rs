//! Per-CPU counters kept by the data plane.

/// Traffic counters of a service or a destination (per CPU; the agent sums them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded (whole frames).
    pub bytes: u64,
    /// New connections scheduled.
    pub connections: u64,
    /// Packets forwarded the other way, server → client (IPVS's OutPkts): a NATed flow's
    /// replies, and ICMP errors from the inside about it. Always 0 for direct routing and
    /// tunnelled services, whose replies do not cross the director.
    pub out_packets: u64,
    /// Bytes of those packets (whole frames, IPVS's OutBytes).
    pub out_bytes: u64,
}

const _: () = assert!(core::mem::size_of::<Counters>() == 40);

impl Counters {
    /// The sum of two counters (used to fold per-CPU values).
    pub const fn plus(self, other: Counters) -> Counters {
        Counters {
            packets: self.packets + other.packets,
            bytes: self.bytes + other.bytes,
            connections: self.connections + other.connections,
            out_packets: self.out_packets + other.out_packets,
            out_bytes: self.out_bytes + other.out_bytes,
        }
    }
}

/// Why the program dropped a packet for a virtual service. The discriminant is the index in
/// the drops array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The service has no usable real server and no fallback.
    NoDestination = 0,
    /// The scheduler or a table named a destination slot that does not hold one.
    BadDestination = 1,
    /// XDP_REDIRECT to the destination's interface failed (not in the devmap).
    RedirectFailed = 2,
    /// A malformed packet to a virtual service: bad IPv4 header checksum, an IP or UDP
    /// length that disagrees with the frame, a TCP data offset under 5 or past the packet,
    /// SYN with FIN, or a martian source (unspecified, loopback, broadcast, multicast, the
    /// VIP itself). Never scheduled nor remembered.
    Malformed = 3,
    /// A later fragment (no transport header) to a VIP address whose first fragment was not
    /// seen within the fragment timeout: it came first (out of order), or its first fragment
    /// was dropped. lvs cannot tell its flow, and the director's stack must not reassemble it.
    OrphanFragment = 4,
    /// An IPv6 packet to a VIP address whose extension-header chain is longer than the
    /// parser follows (or holds a second Fragment header): its transport header is not found,
    /// and the director's stack must not answer it.
    LongExtChain = 5,
    /// A tunnelled packet found no usable next hop in the kernel's FIB: no route to the real,
    /// an unreachable or prohibited route, or no neighbour entry (ARP/ND) for the next hop yet.
    NoRoute = 6,
}

impl DropReason {
    /// Number of reasons (size of the drops array).
    pub const COUNT: u32 = 7;
    /// Every reason, in index order.
    pub const ALL: [DropReason; 7] = [
        DropReason::NoDestination,
        DropReason::BadDestination,
        DropReason::RedirectFailed,
        DropReason::Malformed,
        DropReason::OrphanFragment,
        DropReason::LongExtChain,
        DropReason::NoRoute,
    ];

    /// Whether anyone on the network can cause it by what they send (a malformed packet, an
    /// orphan fragment, a long chain): counted, never logged.
    pub const fn sent_by_anyone(self) -> bool {
        matches!(
            self,
            DropReason::Malformed | DropReason::OrphanFragment | DropReason::LongExtChain
        )
    }

    /// A short name for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NoDestination => "no_destination",
            DropReason::BadDestination => "bad_destination",
            DropReason::RedirectFailed => "redirect_failed",
            DropReason::Malformed => "malformed",
            DropReason::OrphanFragment => "orphan_fragment",
            DropReason::LongExtChain => "long_ext_chain",
            DropReason::NoRoute => "no_route",
        }
    }
}
