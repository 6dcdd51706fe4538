//! Destinations: a real server (or a fallback) as a member of one virtual service.

/// Flag bits of [`Dest::flags`].
pub mod dest_flags {
    /// The slot holds a destination. A flow whose entry names a slot without it (or with
    /// another generation) is scheduled again.
    pub const VALID: u32 = 1 << 0;
    /// The destination is the director itself (a local fallback): packets go up the stack
    /// with XDP_PASS instead of being rewritten.
    pub const LOCAL: u32 = 1 << 1;
    /// The destination takes new connections (weight above 0). Without it, established flows
    /// and nothing else reach it (quiescent), and persistence does not pick it.
    pub const SCHEDULABLE: u32 = 1 << 2;
}

/// Values of [`Dest::method`]: how packets reach the destination (IPVS's forwarding methods).
pub mod forward {
    /// Direct routing (`gate`, ipvsadm's `Route`): new MACs, the IP packet untouched.
    pub const DIRECT: u8 = 0;
    /// IP-in-IP tunnel (`ipip`, ipvsadm's `Tunnel`): IPv4 in IPv4, IPv6 in IPv6, the outer
    /// destination the real's address; next hop, source MAC and egress interface from the
    /// kernel's FIB.
    pub const TUNNEL: u8 = 1;
    /// Network address translation (`masq`, ipvsadm's `Masq`): the destination address and
    /// port become the real's ([`super::Dest::port_be`]), and the real's replies, routed back
    /// through the director, get the VIP's back; next hops from the kernel's FIB.
    pub const MASQ: u8 = 2;
}

/// Where packets for one destination go. Indexed by destination id in the dests array.
///
/// `generation` changes whenever the slot stops meaning what it meant (the real was removed
/// from the service, the slot was reused): flows and persistence entries remember the
/// generation they were scheduled with, and a mismatch sends them back to the scheduler, as
/// IPVS does for connections to a removed destination (`expire_nodest_conn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dest {
    /// The real server's MAC address (new Ethernet destination).
    pub dst_mac: [u8; 6],
    /// The egress interface's MAC address (new Ethernet source).
    pub src_mac: [u8; 6],
    /// The egress interface. Equal to the ingress interface: XDP_TX; otherwise XDP_REDIRECT
    /// through the devmap.
    pub ifindex: u32,
    /// The slot's generation (see above).
    pub generation: u32,
    /// [`dest_flags`] bits.
    pub flags: u32,
    /// The service this destination belongs to (for per-service counters of established flows).
    pub service: u32,
    /// The server's address. The kernel does not read it; a restarted agent does, to know
    /// which server each slot it adopts stands for.
    pub addr: crate::Addr,
    /// The forwarding method, one of [`forward`].
    pub method: u8,
    /// Explicit padding.
    pub _pad: u8,
    /// NAT only: the real's port, network byte order; 0: the packet's own (the VIP's) port.
    /// (Slots written before NAT existed read 0 here.)
    pub port_be: u16,
    /// Tunnel only: the outer source address; all zero: the preferred source of the kernel's
    /// route to the real (as IPVS chooses it).
    pub tunnel_src: crate::Addr,
}

const _: () = assert!(core::mem::size_of::<Dest>() == 64);

impl Dest {
    /// Whether a flow remembered with `generation` may keep using this slot.
    #[inline(always)]
    pub const fn holds(&self, generation: u32) -> bool {
        self.flags & dest_flags::VALID != 0 && self.generation == generation
    }
}
