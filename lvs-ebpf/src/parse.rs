//! Stage 1: parse Ethernet (with at most one 802.1Q/802.1ad tag), IPv4 (any IHL) or IPv6 (with
//! hop-by-hop, routing, destination-options and fragment headers, [`MAX_EXT_HEADERS`] at
//! most), and the TCP/UDP ports, with a bounds check before every read. Anything else is
//! XDP_PASS.
//!
//! Fragments ([`frag`]): a first fragment is parsed like a whole packet (it carries the
//! ports); a later one stops at its IP (or Fragment) header, with no ports, for
//! [`crate::fragment`]. An IPv6 chain longer than followed (or with a second Fragment header)
//! is [`frag::LONG_CHAIN`]: to a VIP address, [`crate::fragment`] drops and counts it
//! (`long_ext_chain`): its transport header is not found, and the director's own stack, which
//! would find it, must not answer on the VIP.

use aya_ebpf::{bindings::xdp_action::XDP_PASS, programs::XdpContext};
use lvs_common::{Addr, FlowKey, service::proto};

const ETH_HLEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const VLAN_HLEN: usize = 4;
const IPV6_HLEN: usize = 40;
const NEXTHDR_HOP: u8 = 0;
const NEXTHDR_ROUTING: u8 = 43;
const NEXTHDR_DEST: u8 = 60;
const NEXTHDR_FRAGMENT: u8 = 44;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
/// Extension headers followed before giving up.
const MAX_EXT_HEADERS: usize = 6;
/// IPv4 `frag_off` bits that mark a fragment: more-fragments and the offset.
const IPV4_FRAG_MASK: u16 = 0x3fff;
/// IPv4 `frag_off`: the offset.
const IPV4_OFFSET_MASK: u16 = 0x1fff;
/// IPv6 Fragment header's offset field: the offset, and the M flag.
const IPV6_OFFSET_MASK: u16 = 0xfff8;
const IPV6_MORE: u16 = 0x0001;
/// TCP flags byte offset and the SYN / ACK bits.
const TCP_FLAGS_OFF: usize = 13;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// What kind of fragment a packet is ([`Packet::frag`]).
pub mod frag {
    /// A whole packet (IPv6: also an atomic fragment, offset 0 without M).
    pub const NONE: u8 = 0;
    /// The first fragment: offset 0, more fragments; it carries the ports.
    pub const FIRST: u8 = 1;
    /// A later fragment: a non-zero offset, no transport header.
    pub const LATER: u8 = 2;
    /// A first fragment too short to hold the transport header's fields lvs reads.
    pub const SHORT: u8 = 3;
    /// Not a fragment kind: an IPv6 chain longer than followed (or with a second Fragment
    /// header); no protocol nor ports. [`crate::fragment::later`] judges it by its
    /// destination. (Decided there, not here: a map lookup and a drop counter in this stage
    /// cost the established flow's path some 25 ns a packet, by how the compiler lays out
    /// the whole program.)
    pub const LONG_CHAIN: u8 = 4;
    /// Not a fragment kind: an unfragmented ICMP or ICMPv6 message, no ports; `l4` is its
    /// ICMP header. [`crate::nat_icmp`] looks at it (an error about a NATed flow).
    pub const ICMP: u8 = 5;
}

/// What the later stages need of a packet.
#[derive(Clone, Copy)]
pub struct Packet {
    /// The 5-tuple.
    pub key: FlowKey,
    /// A TCP SYN without ACK: the first packet of a new connection.
    pub syn: bool,
    /// The TCP header's flags byte (0 for UDP): what moves the connection's state.
    pub tcp_flags: u8,
    /// Frame length in bytes.
    pub len: u64,
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the TCP/UDP header.
    pub l4: usize,
    /// IPv4 (else IPv6).
    pub v4: bool,
    /// One of [`frag`]. For [`frag::LATER`] and [`frag::SHORT`] the ports (and flags) are 0
    /// and `l4` is where the fragment's data starts.
    pub frag: u8,
    /// The fragment's identification (IPv4: 16 bits as on the wire), for a fragment.
    pub frag_id: u32,
    /// The protocol the fragment's datagram is keyed by: IPv4's protocol, or the IPv6
    /// Fragment header's Next Header.
    pub frag_proto: u8,
}

/// A pointer to a `T` at `offset` bytes into the packet, if the packet is long enough.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, u32> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return Err(XDP_PASS);
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
pub(crate) fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Result<T, u32> {
    // SAFETY: `ptr_at` checked that `size_of::<T>()` bytes at `offset` lie within the packet;
    // the read is unaligned because packet headers need not be aligned.
    Ok(unsafe { core::ptr::read_unaligned(ptr_at::<T>(ctx, offset)?) })
}

/// Parses the packet, or gives the verdict for one that is not ours: XDP_PASS.
#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<Packet, u32> {
    let mut ethertype = u16::from_be(read::<u16>(ctx, 12)?);
    let mut l3 = ETH_HLEN;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = u16::from_be(read::<u16>(ctx, ETH_HLEN + 2)?);
        l3 += VLAN_HLEN;
    }

    let mut pkt = Packet {
        key: FlowKey::default(),
        syn: false,
        tcp_flags: 0,
        len: (ctx.data_end() - ctx.data()) as u64,
        l3,
        l4: 0,
        v4: ethertype == ETH_P_IPV4,
        frag: frag::NONE,
        frag_id: 0,
        frag_proto: 0,
    };
    match ethertype {
        ETH_P_IPV4 => ipv4(ctx, &mut pkt)?,
        ETH_P_IPV6 => ipv6(ctx, &mut pkt)?,
        _ => return Err(XDP_PASS),
    }
    if pkt.frag == frag::NONE {
        let ports = read::<[u16; 2]>(ctx, pkt.l4)?;
        pkt.key.sport_be = ports[0];
        pkt.key.dport_be = ports[1];
        if pkt.key.proto == proto::TCP {
            pkt.tcp_flags = read::<u8>(ctx, pkt.l4 + TCP_FLAGS_OFF)?;
        }
        pkt.syn = pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
        return Ok(pkt);
    }
    if pkt.frag == frag::FIRST && transport(ctx, &mut pkt).is_err() {
        // A first fragment cut before the fields read: the fragment stage decides.
        pkt.frag = frag::SHORT;
        pkt.key.sport_be = 0;
        pkt.key.dport_be = 0;
    }
    Ok(pkt)
}

/// Reads a first fragment's ports and TCP flags.
#[inline(always)]
fn transport(ctx: &XdpContext, pkt: &mut Packet) -> Result<(), u32> {
    let ports = read::<[u16; 2]>(ctx, pkt.l4)?;
    pkt.key.sport_be = ports[0];
    pkt.key.dport_be = ports[1];
    if pkt.key.proto == proto::TCP {
        pkt.tcp_flags = read::<u8>(ctx, pkt.l4 + TCP_FLAGS_OFF)?;
    }
    pkt.syn = pkt.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;
    Ok(())
}

/// Fills addresses, protocol, the transport header's offset and the fragment fields from an
/// IPv4 header.
#[inline(always)]
fn ipv4(ctx: &XdpContext, pkt: &mut Packet) -> Result<(), u32> {
    let l3 = pkt.l3;
    let version_ihl = read::<u8>(ctx, l3)?;
    let ihl = (version_ihl & 0x0f) as usize * 4;
    if version_ihl >> 4 != 4 || ihl < 20 {
        return Err(XDP_PASS);
    }
    let frag_off = u16::from_be(read::<u16>(ctx, l3 + 6)?);
    let p = read::<u8>(ctx, l3 + 9)?;
    pkt.key.proto = match l4_proto(p) {
        Ok(p) => p,
        Err(verdict) => {
            if p != IPPROTO_ICMP || frag_off & IPV4_FRAG_MASK != 0 {
                return Err(verdict);
            }
            pkt.frag = frag::ICMP;
            p
        }
    };
    pkt.key.src = Addr::from_v4_wire(read::<u32>(ctx, l3 + 12)?);
    pkt.key.dst = Addr::from_v4_wire(read::<u32>(ctx, l3 + 16)?);
    pkt.l4 = l3 + ihl;
    if frag_off & IPV4_FRAG_MASK != 0 {
        pkt.frag = if frag_off & IPV4_OFFSET_MASK == 0 {
            frag::FIRST
        } else {
            frag::LATER
        };
        pkt.frag_id = read::<u16>(ctx, l3 + 4)? as u32;
        pkt.frag_proto = pkt.key.proto;
    }
    Ok(())
}

/// Fills addresses, protocol, the transport header's offset and the fragment fields from an
/// IPv6 header, following up to [`MAX_EXT_HEADERS`] extension headers.
#[inline(always)]
fn ipv6(ctx: &XdpContext, pkt: &mut Packet) -> Result<(), u32> {
    let l3 = pkt.l3;
    if read::<u8>(ctx, l3)? >> 4 != 6 {
        return Err(XDP_PASS);
    }
    let mut next = read::<u8>(ctx, l3 + 6)?;
    pkt.key.src.words = read::<[u32; 4]>(ctx, l3 + 8)?;
    pkt.key.dst.words = read::<[u32; 4]>(ctx, l3 + 24)?;
    let mut off = l3 + IPV6_HLEN;
    let mut seen_fragment = false;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                let hdr = read::<[u8; 2]>(ctx, off)?;
                next = hdr[0];
                off += (hdr[1] as usize + 1) * 8;
            }
            NEXTHDR_FRAGMENT => {
                if seen_fragment {
                    pkt.frag = frag::LONG_CHAIN;
                    return Ok(());
                }
                seen_fragment = true;
                // Next header, reserved, offset and M flag, identification.
                let hdr = read::<[u16; 4]>(ctx, off)?;
                next = hdr[0].to_ne_bytes()[0];
                let offset_m = u16::from_be(hdr[1]);
                off += 8;
                if offset_m & (IPV6_OFFSET_MASK | IPV6_MORE) != 0 {
                    pkt.frag_proto = next;
                    pkt.frag_id = u32::from_ne_bytes({
                        let (a, b) = (hdr[2].to_ne_bytes(), hdr[3].to_ne_bytes());
                        [a[0], a[1], b[0], b[1]]
                    });
                    if offset_m & IPV6_OFFSET_MASK != 0 {
                        // Fragment data follows; the datagram's protocol is its first header.
                        pkt.frag = frag::LATER;
                        pkt.key.proto = next;
                        pkt.l4 = off;
                        return Ok(());
                    }
                    pkt.frag = frag::FIRST;
                }
            }
            _ => break,
        }
    }
    if matches!(
        next,
        NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST | NEXTHDR_FRAGMENT
    ) {
        pkt.frag = frag::LONG_CHAIN;
        return Ok(());
    }
    pkt.key.proto = match l4_proto(next) {
        Ok(p) => p,
        Err(verdict) => {
            if next != IPPROTO_ICMPV6 || pkt.frag != frag::NONE {
                return Err(verdict);
            }
            pkt.frag = frag::ICMP;
            next
        }
    };
    pkt.l4 = off;
    Ok(())
}

#[inline(always)]
fn l4_proto(p: u8) -> Result<u8, u32> {
    match p {
        proto::TCP | proto::UDP => Ok(p),
        _ => Err(XDP_PASS),
    }
}
