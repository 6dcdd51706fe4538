//! A packet that does not fit the path once encapsulated: the frame becomes, in place, the
//! ICMP error IPVS sends the client (`__mtu_check_toobig_v4/_v6`): ICMP destination
//! unreachable, fragmentation needed (type 3 code 4) with the next-hop MTU, or ICMPv6 packet
//! too big (type 2) with the MTU (at least 1280), from the VIP to the client, quoting the
//! start of the offending packet: its IP header (with options or extension headers) and the
//! bytes past it (ports and TCP sequence number: what the client's stack needs to find the
//! connection), a fixed [`V4_QUOTE`] / [`V6_QUOTE`] bytes (a packet too big is always longer).
//! It leaves by XDP_TX towards whoever sent the packet (the Ethernet addresses swapped).
//!
//! IPVS sends the IPv4 error only when the packet has DF set, and otherwise fragments the
//! encapsulated packet; XDP cannot fragment, so here the error goes back also without DF (the
//! client's stack then fragments at the learned MTU).

use aya_ebpf::{
    bindings::xdp_action::XDP_TX,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};

use crate::{
    headers::{self, add_packet_words, copy, finish, word, words32},
    parse::{Packet, read},
    tunnel,
};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
/// IPv4 header and ICMP header in front of the quoted packet.
const V4_GROW: usize = 20 + 8;
/// IPv6 header and ICMPv6 header in front of the quoted packet.
const V6_GROW: usize = 40 + 8;
/// How much of an IPv4 packet is quoted: the longest header (60 bytes) and 8 bytes more.
const V4_QUOTE: usize = 68;
/// How much of an IPv6 packet is quoted: its header, up to 80 bytes of extension headers, 8
/// bytes more.
const V6_QUOTE: usize = 128;
/// IPv6's minimum MTU.
const IPV6_MIN_MTU: usize = 1280;

/// Turns the frame into the ICMP error for `mtu` and gives the verdict that sends it back.
#[inline(always)]
pub fn reply(ctx: &XdpContext, pkt: &Packet, mtu: usize) -> Result<u32, u32> {
    if pkt.v4 {
        v4(ctx, pkt, mtu)
    } else {
        v6(ctx, pkt, mtu)
    }
}

/// Grows the frame by `grow` bytes in front and writes the Ethernet header back to its
/// sender (addresses swapped, type and VLAN tag kept), from the old one `grow` bytes on.
#[inline(always)]
fn grow_and_turn(ctx: &XdpContext, l3: usize, grow: usize) -> Result<(), u32> {
    // SAFETY: the helper moves `data` back by `grow` bytes or fails, leaving it.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(grow as i32)) } != 0 {
        return Err(tunnel::no_route(ctx));
    }
    copy::<u16>(ctx, grow + 6, 0)?;
    copy::<u32>(ctx, grow + 8, 2)?;
    copy::<u32>(ctx, grow, 6)?;
    copy::<u16>(ctx, grow + 4, 10)?;
    copy::<u16>(ctx, grow + 12, 12)?;
    if l3 > 14 {
        copy::<u32>(ctx, grow + 14, 14)?;
    }
    Ok(())
}

/// Cuts the frame to `len` bytes.
#[inline(always)]
fn cut(ctx: &XdpContext, len: usize) -> Result<(), u32> {
    let have = ctx.data_end() - ctx.data();
    if have > len {
        // SAFETY: the helper shrinks the frame or fails, leaving it.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, len as i32 - have as i32) } != 0 {
            return Err(tunnel::no_route(ctx));
        }
    }
    Ok(())
}

// Calls of their own (BPF-to-BPF): the tunnel program's frame does not hold their locals.
#[inline(never)]
fn v4(ctx: &XdpContext, pkt: &Packet, mtu: usize) -> Result<u32, u32> {
    let l3 = pkt.l3;
    grow_and_turn(ctx, l3, V4_GROW)?;
    cut(ctx, l3 + V4_GROW + V4_QUOTE)?;
    let quoted = l3 + V4_GROW;
    let client = read::<u32>(ctx, quoted + 12)?;
    let vip = read::<u32>(ctx, quoted + 16)?;

    let type_code = word(3, 4);
    let mtu_be = (mtu as u16).to_be();
    let sum = add_packet_words::<V4_QUOTE>(ctx, quoted, type_code as u64 + mtu_be as u64)?;
    headers::write(ctx, l3 + 20, [type_code, finish(sum), 0, mtu_be])?;

    let first = word(0x45, 0xc0);
    let len = ((V4_GROW + V4_QUOTE) as u16).to_be();
    let ttl_proto = word(64, IPPROTO_ICMP);
    let sum = first as u64 + len as u64 + ttl_proto as u64 + words32(vip) + words32(client);
    headers::write(ctx, l3, [first, len, 0, 0, ttl_proto, finish(sum)])?;
    headers::write(ctx, l3 + 12, [vip, client])?;
    Ok(XDP_TX)
}

#[inline(never)]
fn v6(ctx: &XdpContext, pkt: &Packet, mtu: usize) -> Result<u32, u32> {
    let l3 = pkt.l3;
    grow_and_turn(ctx, l3, V6_GROW)?;
    cut(ctx, l3 + V6_GROW + V6_QUOTE)?;
    let quoted = l3 + V6_GROW;
    // The addresses, turned round: from the VIP to the client.
    copy::<[u32; 4]>(ctx, quoted + 24, l3 + 8)?;
    copy::<[u32; 4]>(ctx, quoted + 8, l3 + 24)?;

    let mtu = if mtu < IPV6_MIN_MTU {
        IPV6_MIN_MTU
    } else {
        mtu
    };
    let mtu_be = (mtu as u32).to_be();
    let type_code = word(2, 0);
    let len = ((8 + V6_QUOTE) as u16).to_be();
    // The pseudo-header (addresses, upper-layer length, next header), the ICMPv6 header, the
    // quote.
    let mut sum = add_packet_words::<32>(ctx, l3 + 8, 0)?;
    sum += len as u64 + word(0, IPPROTO_ICMPV6) as u64;
    sum += type_code as u64 + words32(mtu_be);
    let sum = add_packet_words::<V6_QUOTE>(ctx, quoted, sum)?;
    headers::write(ctx, l3 + 40, [type_code, finish(sum)])?;
    headers::write(ctx, l3 + 44, mtu_be)?;
    headers::write(ctx, l3, [word(0x60, 0), 0, len, word(IPPROTO_ICMPV6, 255)])?;
    Ok(XDP_TX)
}
