//! Stage 6, tunnel (`ipip`, ipvsadm's `Tunnel`): the packet is encapsulated IPv4 in IPv4 (IPv6
//! in IPv6 for an IPv6 VIP) to the real server, which may be anywhere the director routes to.
//!
//! The next hop comes from the kernel's FIB, through the next-hop caches ([`fib::next_hop`],
//! the destination's entry first): the egress
//! interface, its MAC, the next hop's MAC and, unless the destination names one, the outer
//! source address (`BPF_FIB_LOOKUP_SRC`: the route's preferred source, as IPVS chooses it).
//!
//! The outer header as IPVS builds it (`ip_vs_tunnel_xmit`): the inner TOS/traffic class, the
//! inner DF bit (IPv4), TTL/hop limit 64, IPv4 identification copied from the inner header,
//! IPv6 flow label 0. An encapsulated packet longer than the route's MTU is not sent: the
//! client gets ICMP fragmentation needed / packet too big with the MTU less the outer header
//! ([`crate::too_big`]), as from IPVS. No usable route or no neighbour entry for the next hop:
//! dropped and counted (`no_route`).

use aya_ebpf::{
    bindings::{BPF_FIB_LOOKUP_SRC, xdp_action::XDP_PASS},
    helpers::generated::bpf_xdp_adjust_head,
    programs::XdpContext,
};
use lvs_common::{Dest, limits::forward_progs, next_hop::dest_hop_entry, stats::DropReason};

use crate::{
    fib::{self, NoHop},
    headers::{self, finish, word, words32},
    maps::{DESTS, FORWARD_DEST, tail_call},
    parse::{Packet, read},
    stats, too_big,
};

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
/// Length of the outer IPv4 header.
pub const IPV4_HLEN: usize = 20;
/// Length of the outer IPv6 header.
pub const IPV6_HLEN: usize = 40;
/// TTL / hop limit of the outer header.
const OUTER_TTL: u8 = 64;

/// In the balancer: hands the packet for destination `dest_id` to the tunnel program
/// (`lvs_tunnel`, a tail call: the program of its own is verified apart from the balancer's
/// many paths). Returns only if the call failed (the program not in the array): dropped and
/// counted.
#[inline(always)]
pub fn enter(ctx: &XdpContext, dest_id: u32) -> Result<u32, u32> {
    if let Some(slot) = FORWARD_DEST.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; the tail call runs on this CPU right after.
        unsafe { *slot = dest_id };
        tail_call::<{ forward_progs::TUNNEL }>(ctx);
    }
    Err(no_route(ctx))
}

/// The tunnel program: the packet again (parsed, its destination from the balancer), then
/// [`forward`]. (Parsed again rather than handed over as the reply program's is: with the
/// header offsets from a map, the verifier refuses the too-big reply's header writes.)
#[inline(always)]
pub fn run(ctx: &XdpContext) -> Result<u32, u32> {
    let ingress = fib::ingress(ctx);
    let pkt = crate::parse::parse(ctx)?;
    let dest_id = FORWARD_DEST
        .get(0)
        .copied()
        .ok_or_else(|| bad_destination(ctx))?;
    let dest = DESTS.get(dest_id).ok_or_else(|| bad_destination(ctx))?;
    forward(ctx, ingress, &pkt, dest_id, dest)
}

/// Counts a drop for `no_route` and gives XDP_DROP. One call of its own (BPF-to-BPF) for
/// every place that drops: the drop's logging is not copied into each.
#[inline(never)]
pub fn no_route(ctx: &XdpContext) -> u32 {
    stats::drop(ctx, DropReason::NoRoute)
}

#[inline(never)]
fn bad_destination(ctx: &XdpContext) -> u32 {
    stats::drop(ctx, DropReason::BadDestination)
}

/// Encapsulates the packet (come in on interface `ingress`) to `dest` (slot `dest_id`) and
/// gives the verdict that sends it.
#[inline(always)]
pub fn forward(
    ctx: &XdpContext,
    ingress: u32,
    pkt: &Packet,
    dest_id: u32,
    dest: &Dest,
) -> Result<u32, u32> {
    let l3 = pkt.l3;
    // The inner packet's length, from its header.
    let (outer, inner_len) = if pkt.v4 {
        (IPV4_HLEN, u16::from_be(read::<u16>(ctx, l3 + 2)?) as usize)
    } else {
        (
            IPV6_HLEN,
            u16::from_be(read::<u16>(ctx, l3 + 4)?) as usize + IPV6_HLEN,
        )
    };

    let explicit_src = dest.tunnel_src.words != [0; 4];
    let flags = if explicit_src { 0 } else { BPF_FIB_LOOKUP_SRC };
    let proto = if pkt.v4 { IPPROTO_IPIP } else { IPPROTO_IPV6 };
    let hop = match fib::next_hop(
        ctx,
        ingress,
        pkt.v4,
        proto,
        &dest.tunnel_src,
        &dest.addr,
        inner_len + outer,
        flags,
        Some(dest_hop_entry(dest_id)),
    ) {
        Ok(hop) => hop,
        // An ICMP error (from the outside, about this real's flow) gets no error about itself
        // (RFC 1122 3.2.2, RFC 4443 2.4): the director's stack has it, and ignores it.
        Err(NoHop::TooBig(_)) if pkt.frag == crate::parse::frag::ICMP => return Err(XDP_PASS),
        Err(NoHop::TooBig(mtu)) => return too_big::reply(ctx, pkt, mtu.saturating_sub(outer)),
        Err(NoHop::Unreachable) => return Err(no_route(ctx)),
    };

    // Room for the outer header in front of the frame.
    // SAFETY: the helper moves `data` back by `outer` bytes or fails, leaving it.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(outer as i32)) } != 0 {
        return Err(no_route(ctx));
    }
    // The Ethernet header: next hop's and egress interface's MACs, then the old type (and VLAN
    // tag), which stand `outer` bytes further on.
    fib::write_hop_macs(ctx, &hop)?;
    headers::copy::<u16>(ctx, outer + 12, 12)?;
    if l3 > 14 {
        headers::copy::<u32>(ctx, outer + 14, 14)?;
    }

    let inner = l3 + outer;
    if pkt.v4 {
        // The route's preferred source when asked (BPF_FIB_LOOKUP_SRC), else the explicit one.
        let src = hop.src.words[3];
        let dst = dest.addr.words[3];
        // Version and IHL 5, then the inner TOS (the second byte of the first word).
        let first = (read::<u16>(ctx, inner)? & word(0, 0xff)) | word(0x45, 0);
        let len = ((inner_len + IPV4_HLEN) as u16).to_be();
        let id = read::<u16>(ctx, inner + 4)?;
        let df = read::<u16>(ctx, inner + 6)? & word(0x40, 0);
        let ttl_proto = word(OUTER_TTL, IPPROTO_IPIP);
        let sum = first as u64
            + len as u64
            + id as u64
            + df as u64
            + ttl_proto as u64
            + words32(src)
            + words32(dst);
        headers::write(ctx, l3, [first, len, id, df, ttl_proto, finish(sum)])?;
        headers::write(ctx, l3 + 12, [src, dst])?;
    } else {
        let src = hop.src.words;
        // Version and traffic class of the inner header, flow label 0.
        let first = read::<u32>(ctx, inner)? & u32::from_ne_bytes([0xff, 0xf0, 0, 0]);
        let len = (inner_len as u16).to_be();
        headers::write(ctx, l3, first)?;
        headers::write(ctx, l3 + 4, [len, word(IPPROTO_IPV6, OUTER_TTL)])?;
        headers::write(ctx, l3 + 8, src)?;
        // Read into registers first: copied straight from the map value, the compiler made
        // the 16 bytes a call to `memmove` (a loop of one byte a turn).
        // SAFETY: `dest` is a valid, aligned map value for this program run.
        let real = unsafe { core::ptr::read_volatile(&dest.addr.words) };
        headers::write(ctx, l3 + 24, real)?;
    }

    Ok(fib::send_hop(ingress, &hop))
}
