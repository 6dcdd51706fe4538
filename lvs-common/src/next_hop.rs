//! The next-hop cache in front of the kernel's FIB lookup (`bpf_fib_lookup`), for the
//! forwarding methods that route (tunnel, NAT both ways).
//!
//! The data plane asks the FIB only on a miss, and keeps its answer in an LRU hash
//! ([`crate::limits::map_names::NEXT_HOPS`]) under everything the lookup was asked with but
//! the packet's length ([`NextHopKey`]): the route, the neighbour's MAC, the egress interface,
//! the route's MTU (the too-big check compares each packet's length to it) and, when asked, the
//! route's preferred source address ([`NextHop`]).
//!
//! An entry holds only while it is of the current generation (a counter,
//! [`crate::limits::map_names::NEXT_HOP_GENERATION`], that the agent bumps on every route,
//! neighbour, address, link, rule or forwarding-setting change the kernel announces) and no
//! older than [`NEXT_HOP_MAX_AGE_NS`] (the backstop for changes the agent did not see, or an
//! agent gone). The generation is read before the FIB is asked, so an answer given before a
//! change is stored with the generation the change's bump makes old.

use crate::{Addr, limits::DEST_HOP_SLOTS};

/// The longest an entry is used, whatever the generation: 1 s.
pub const NEXT_HOP_MAX_AGE_NS: u64 = 1_000_000_000;

/// [`NextHopKey::flags`]: the route's preferred source was asked for (`BPF_FIB_LOOKUP_SRC`).
pub const ASK_SOURCE: u8 = 1;

/// What a FIB lookup is asked with, the packet's length aside.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NextHopKey {
    /// Source address (all zero when the route's preferred source is asked).
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// The interface the packet came in on.
    pub ingress: u32,
    /// The transport protocol (IPPROTO_*) the lookup was asked for.
    pub proto: u8,
    /// 1 for IPv4, 0 for IPv6.
    pub v4: u8,
    /// [`ASK_SOURCE`] or 0.
    pub flags: u8,
    /// Explicit padding.
    pub _pad: u8,
}

const _: () = assert!(core::mem::size_of::<NextHopKey>() == 40);

/// The FIB's answer for a [`NextHopKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    /// The next hop's MAC, then the egress interface's: the Ethernet header's first 12 bytes.
    pub macs: [u8; 12],
    /// The egress interface.
    pub ifindex: u32,
    /// The route's MTU: a packet longer than this is too big for it.
    pub mtu: u32,
    /// The generation the entry was filled in.
    pub generation: u32,
    /// When the entry was filled (the data plane's clock: CLOCK_MONOTONIC, coarse).
    pub filled_ns: u64,
    /// The route's preferred source when asked ([`ASK_SOURCE`]), else the key's source.
    pub src: Addr,
}

const _: () = assert!(core::mem::size_of::<NextHop>() == 48);

/// An entry of the per-CPU next-hop cache ([`crate::limits::map_names::DEST_HOPS`]): the next
/// hop of the forwarding methods that route to a destination (the tunnel, NAT client → real)
/// in the destination slot's entry ([`dest_hop_entry`]), and of NATed flows' replies to a
/// client in the entry of the client's address ([`client_hop_entry`]), kept by each CPU with
/// the key it answers, so that the packets of an established flow find their next hop by an
/// array index instead of hashing the key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestHop {
    /// What the next hop was asked for.
    pub key: NextHopKey,
    /// The answer.
    pub hop: NextHop,
}

const _: () = assert!(core::mem::size_of::<DestHop>() == 88);

impl NextHop {
    /// Whether the entry may be used at `now_ns` while the generation is `generation`: of
    /// that generation and younger than [`NEXT_HOP_MAX_AGE_NS`].
    #[inline(always)]
    pub const fn fresh(&self, generation: u32, now_ns: u64) -> bool {
        self.generation == generation && now_ns.wrapping_sub(self.filled_ns) < NEXT_HOP_MAX_AGE_NS
    }
}

/// The entry of [`DestHop`]s that destination slot `dest` uses: its id modulo
/// [`DEST_HOP_SLOTS`], in the first half.
#[inline(always)]
pub const fn dest_hop_entry(dest: u32) -> u32 {
    dest & (DEST_HOP_SLOTS - 1)
}

/// The entry of [`DestHop`]s that replies to `client` use: a multiplicative hash of its
/// address (clients that share an entry take turns: the key tells them apart), in the second
/// half.
#[inline(always)]
pub const fn client_hop_entry(client: &Addr) -> u32 {
    let w = &client.words;
    let h = (w[0] ^ w[1] ^ w[2] ^ w[3]).wrapping_mul(0x9e37_79b1);
    DEST_HOP_SLOTS + (h >> (32 - DEST_HOP_SLOTS.trailing_zeros()))
}

/// Entries of the per-CPU next-hop cache: destination slots', then clients'.
pub const HOP_ENTRIES: u32 = 2 * DEST_HOP_SLOTS;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_holds_only_in_its_generation_and_while_young() {
        let hop = NextHop {
            generation: 7,
            filled_ns: 10_000,
            ..NextHop::default()
        };
        assert!(hop.fresh(7, 10_000));
        assert!(hop.fresh(7, 10_000 + NEXT_HOP_MAX_AGE_NS - 1));
        assert!(!hop.fresh(7, 10_000 + NEXT_HOP_MAX_AGE_NS));
        assert!(!hop.fresh(8, 10_000), "an older generation is a miss");
        // A clock before the fill (another CPU filled it a moment later) wraps: too old.
        assert!(!hop.fresh(7, 9_999));
    }

    #[test]
    fn destinations_and_clients_have_entries_of_their_own_half() {
        assert_eq!(dest_hop_entry(5), 5);
        assert_eq!(dest_hop_entry(DEST_HOP_SLOTS + 5), 5);
        let mut seen = [false; DEST_HOP_SLOTS as usize];
        for i in 0..1024u32 {
            let client = Addr::from_v4_wire((0xc612_0000 + i).to_be());
            let e = client_hop_entry(&client);
            assert!((DEST_HOP_SLOTS..HOP_ENTRIES).contains(&e), "{e}");
            seen[(e - DEST_HOP_SLOTS) as usize] = true;
        }
        // 1,024 neighbouring clients spread over the half (few share an entry).
        let used = seen.iter().filter(|&&s| s).count();
        assert!(used > 900, "{used} entries");
    }
}
