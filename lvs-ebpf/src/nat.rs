//! Stage 6, NAT (`masq`, ipvsadm's `Masq`), client → real: the destination address and port
//! become the real's ([`Dest::port_be`]; 0 keeps the VIP's port), the TTL / hop limit goes
//! down by one as the director routes the packet, the IPv4 header checksum and the TCP/UDP
//! checksum are updated incrementally (RFC 1624; a UDP-over-IPv4 checksum of 0, none, stays
//! 0), and the packet leaves by the next hop the kernel's FIB gives for the real
//! ([`crate::fib::next_hop`], through the next-hop caches, the real's entry first). The FIB
//! is asked for the route to the real's address from any source (as IPVS keeps one route per
//! real, whatever the client): the clients of a real share its next hop. A later fragment (no
//! transport header) gets its address rewritten and its IPv4 header checksum updated: the
//! transport checksum, in the first fragment, already covers the whole datagram's change.
//!
//! A packet too big for the route to the real gets what IPVS sends (`__mtu_check_toobig_v4`/
//! `_v6`): ICMP fragmentation needed / packet too big from the VIP, with the route's MTU
//! ([`crate::too_big`]). No route or no neighbour entry: dropped and counted (`no_route`).
//! A packet whose TTL would run out is XDP_PASS, untouched: the kernel answers it as a
//! router does.
//!
//! When the balancer remembers a NATed flow it also writes the flow's reply way into the
//! connection table ([`remember`]), by which [`crate::nat_reply`] knows the real's replies.

use aya_ebpf::{bindings::xdp_action::XDP_PASS, programs::XdpContext};
use lvs_common::{
    Addr, Dest, dest::forward, limits::forward_progs, nat::reply_key, next_hop::dest_hop_entry,
    service::proto, stats::DropReason,
};

use crate::{
    conntrack,
    fib::{self, NoHop},
    headers::{self, finish, word, words32},
    maps::{DESTS, FORWARD_DEST, tail_call},
    parse::{Packet, frag, read},
    stats, too_big, tunnel,
};

/// In the balancer: hands the packet for destination `dest_id` to the NAT program
/// (`lvs_nat`, a tail call). Returns only if the call failed (the program not in the array):
/// dropped and counted.
#[inline(always)]
pub fn enter(ctx: &XdpContext, dest_id: u32) -> Result<u32, u32> {
    if let Some(slot) = FORWARD_DEST.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot; the tail call runs on this CPU right after.
        unsafe { *slot = dest_id };
        tail_call::<{ forward_progs::NAT }>(ctx);
    }
    Err(tunnel::no_route(ctx))
}

/// The NAT program: the packet again (parsed, its destination from the balancer), then
/// translated and sent (parsed again, as in [`tunnel::run`]).
#[inline(always)]
pub fn run(ctx: &XdpContext) -> Result<u32, u32> {
    let ingress = fib::ingress(ctx);
    let pkt = crate::parse::parse(ctx)?;
    let dest_id = FORWARD_DEST
        .get(0)
        .copied()
        .ok_or_else(|| bad_destination(ctx))?;
    let dest = DESTS.get(dest_id).ok_or_else(|| bad_destination(ctx))?;
    // The route to the real by its address alone, whichever client the packet is from (as
    // IPVS caches a destination's route): one next hop per real, in its slot's entry. The
    // source asked with is a NATed slot's `tunnel_src`, all zero: any.
    let hop = match fib::next_hop(
        ctx,
        ingress,
        pkt.v4,
        pkt.key.proto,
        &dest.tunnel_src,
        &dest.addr,
        ip_len(ctx, &pkt)?,
        0,
        Some(dest_hop_entry(dest_id)),
    ) {
        Ok(hop) => hop,
        Err(NoHop::TooBig(mtu)) => return too_big::reply(ctx, &pkt, mtu),
        Err(NoHop::Unreachable) => return Err(tunnel::no_route(ctx)),
    };
    let addr_off = if pkt.v4 { pkt.l3 + 16 } else { pkt.l3 + 24 };
    translate(ctx, &pkt, addr_off, &dest.addr, pkt.l4 + 2, dest.port_be)?;
    fib::write_hop_macs(ctx, &hop)?;
    Ok(fib::send_hop(ingress, &hop))
}

#[inline(never)]
fn bad_destination(ctx: &XdpContext) -> u32 {
    stats::drop(ctx, DropReason::BadDestination)
}

/// After the balancer remembered the flow of `pkt` to `dest` (in the way `flow` points to,
/// [`conntrack::remember`]): for a NATed destination, the connection table learns the flow's
/// replies ([`conntrack::remember_reply`]), under the 5-tuple they carry ([`reply_key`]).
#[inline(always)]
pub fn remember(pkt: &Packet, dest: &Dest, flow: u64) {
    if dest.method != forward::MASQ {
        return;
    }
    conntrack::remember_reply(&reply_key(&pkt.key, &dest.addr, dest.port_be), flow);
}

/// The IP packet's length, from its header.
#[inline(always)]
pub fn ip_len(ctx: &XdpContext, pkt: &Packet) -> Result<usize, u32> {
    Ok(if pkt.v4 {
        u16::from_be(read::<u16>(ctx, pkt.l3 + 2)?) as usize
    } else {
        u16::from_be(read::<u16>(ctx, pkt.l3 + 4)?) as usize + 40
    })
}

/// Rewrites the address at `addr_off` to `new` and (unless `port_be` is 0) the port at
/// `port_off` to `port_be`, takes one off the TTL / hop limit, and updates the IPv4 header
/// checksum and the transport checksum incrementally. Every value is in wire order read
/// natively ([`crate::headers`]). A TTL / hop limit of 1 or less: XDP_PASS, untouched.
#[inline(always)]
pub fn translate(
    ctx: &XdpContext,
    pkt: &Packet,
    addr_off: usize,
    new: &Addr,
    port_off: usize,
    port_be: u16,
) -> Result<(), u32> {
    let l3 = pkt.l3;
    // The sum of the changed words' complements and their new values.
    let mut delta: u64;
    if pkt.v4 {
        (delta, _) = rewrite_ipv4(ctx, l3, addr_off, new.words[3], true)?;
    } else {
        let hop = read::<u8>(ctx, l3 + 7)?;
        if hop <= 1 {
            return Err(XDP_PASS);
        }
        headers::write(ctx, l3 + 7, hop - 1)?;
        let old = read::<[u32; 4]>(ctx, addr_off)?;
        delta = 0;
        for (o, n) in old.iter().zip(new.words) {
            delta += words32(!o) + words32(n);
        }
        headers::write(ctx, addr_off, new.words)?;
    }
    if pkt.frag == frag::LATER {
        return Ok(());
    }
    if port_be != 0 {
        let old = read::<u16>(ctx, port_off)?;
        delta += (!old) as u64 + port_be as u64;
        headers::write(ctx, port_off, port_be)?;
    }
    let udp = pkt.key.proto == proto::UDP;
    let csum_off = pkt.l4 + if udp { 6 } else { 16 };
    let c = read::<u16>(ctx, csum_off)?;
    if udp && c == 0 && pkt.v4 {
        // No checksum: none after.
        return Ok(());
    }
    let mut sum = finish((!c) as u64 + delta);
    if udp && sum == 0 {
        sum = 0xffff;
    }
    headers::write(ctx, csum_off, sum)
}

/// Rewrites the IPv4 address at `addr_off` of the header at `l3` to `addr` (wire order read
/// natively), with one off the TTL if `ttl` (XDP_PASS, untouched, if it would run out), and
/// updates the header checksum incrementally. Returns the sum of the address words'
/// complements and new values (for the transport checksum), and the sum of the checksum
/// word's (for a checksum that covers this header, as an ICMP error's).
#[inline(always)]
pub fn rewrite_ipv4(
    ctx: &XdpContext,
    l3: usize,
    addr_off: usize,
    addr: u32,
    ttl: bool,
) -> Result<(u64, u64), u32> {
    let old = read::<u32>(ctx, addr_off)?;
    let delta = words32(!old) + words32(addr);
    let hc = read::<u16>(ctx, l3 + 10)?;
    let mut ip = delta;
    if ttl {
        let tp = read::<u16>(ctx, l3 + 8)?;
        let [t, protocol] = tp.to_ne_bytes();
        if t <= 1 {
            return Err(XDP_PASS);
        }
        let new_tp = word(t - 1, protocol);
        ip += (!tp) as u64 + new_tp as u64;
        headers::write(ctx, l3 + 8, new_tp)?;
    }
    let new_hc = finish((!hc) as u64 + ip);
    headers::write(ctx, l3 + 10, new_hc)?;
    headers::write(ctx, addr_off, addr)?;
    Ok((delta, (!hc) as u64 + new_hc as u64))
}
