//! Stage 1: parse Ethernet (with at most one 802.1Q/802.1ad tag), IPv4 (any IHL) or IPv6 (with
//! hop-by-hop, routing and destination-options headers), and the TCP/UDP ports, with a bounds
//! check before every read. Fragments and anything else are XDP_PASS.

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
/// Extension headers followed before giving up.
const MAX_EXT_HEADERS: usize = 4;
/// IPv4 `frag_off` bits that mark a fragment: more-fragments and the offset.
const IPV4_FRAG_MASK: u16 = 0x3fff;
/// TCP flags byte offset and the SYN / ACK bits.
const TCP_FLAGS_OFF: usize = 13;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// What the later stages need of a packet.
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

    let mut key = FlowKey::default();
    let l4 = match ethertype {
        ETH_P_IPV4 => ipv4(ctx, l3, &mut key)?,
        ETH_P_IPV6 => ipv6(ctx, l3, &mut key)?,
        _ => return Err(XDP_PASS),
    };

    let ports = read::<[u16; 2]>(ctx, l4)?;
    key.sport_be = ports[0];
    key.dport_be = ports[1];
    let tcp_flags = if key.proto == proto::TCP {
        read::<u8>(ctx, l4 + TCP_FLAGS_OFF)?
    } else {
        0
    };
    let syn = tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN;

    Ok(Packet {
        key,
        syn,
        tcp_flags,
        len: (ctx.data_end() - ctx.data()) as u64,
        l3,
        l4,
        v4: ethertype == ETH_P_IPV4,
    })
}

/// Fills addresses and protocol from an IPv4 header at `l3`; returns the L4 offset.
#[inline(always)]
fn ipv4(ctx: &XdpContext, l3: usize, key: &mut FlowKey) -> Result<usize, u32> {
    let version_ihl = read::<u8>(ctx, l3)?;
    let ihl = (version_ihl & 0x0f) as usize * 4;
    if version_ihl >> 4 != 4 || ihl < 20 {
        return Err(XDP_PASS);
    }
    let frag_off = u16::from_be(read::<u16>(ctx, l3 + 6)?);
    if frag_off & IPV4_FRAG_MASK != 0 {
        return Err(XDP_PASS);
    }
    key.proto = l4_proto(read::<u8>(ctx, l3 + 9)?)?;
    key.src = Addr::from_v4_wire(read::<u32>(ctx, l3 + 12)?);
    key.dst = Addr::from_v4_wire(read::<u32>(ctx, l3 + 16)?);
    Ok(l3 + ihl)
}

/// Fills addresses and protocol from an IPv6 header at `l3`, following up to
/// [`MAX_EXT_HEADERS`] extension headers; returns the L4 offset.
#[inline(always)]
fn ipv6(ctx: &XdpContext, l3: usize, key: &mut FlowKey) -> Result<usize, u32> {
    if read::<u8>(ctx, l3)? >> 4 != 6 {
        return Err(XDP_PASS);
    }
    let mut next = read::<u8>(ctx, l3 + 6)?;
    key.src.words = read::<[u32; 4]>(ctx, l3 + 8)?;
    key.dst.words = read::<[u32; 4]>(ctx, l3 + 24)?;
    let mut off = l3 + IPV6_HLEN;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            NEXTHDR_HOP | NEXTHDR_ROUTING | NEXTHDR_DEST => {
                let hdr = read::<[u8; 2]>(ctx, off)?;
                next = hdr[0];
                off += (hdr[1] as usize + 1) * 8;
            }
            _ => break,
        }
    }
    // A fragment header (44), or a chain longer than we follow, ends here as XDP_PASS.
    key.proto = l4_proto(next)?;
    Ok(off)
}

#[inline(always)]
fn l4_proto(p: u8) -> Result<u8, u32> {
    match p {
        proto::TCP | proto::UDP => Ok(p),
        _ => Err(XDP_PASS),
    }
}
