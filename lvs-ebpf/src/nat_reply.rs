//! NAT (`masq`), real → client: a packet that no known flow and no virtual service claims is
//! looked up in the reply table ([`NAT_REPLIES`], written by [`crate::nat::remember`]) by its
//! own 5-tuple. A hit whose flow ([`forward_key`]) is still in the connection table, within
//! its state's idle timeout and still to that destination, is a reply: its source becomes the
//! VIP and port again (TTL / hop limit one less, checksums updated incrementally:
//! [`crate::nat::translate`]), its TCP flags move the flow's state (IPVS's OUTPUT table), and it
//! leaves by the next hop the kernel's FIB gives for the client ([`crate::fib::next_hop`]),
//! counted in the service's and the real's OutPkts and OutBytes ([`crate::stats::replied`]). Anything
//! else (the director's own traffic, a reply whose flow is gone or expired) is XDP_PASS,
//! untouched; it costs the balancer one hash lookup, and none while no NATed real is in the
//! tables (the agent's flag, [`lvs_common::service::table_flags::NAT`]).
//!
//! A reply too big for the route to the client is XDP_PASS, untouched: the kernel, routing it,
//! sends the real ICMP fragmentation needed / packet too big, and the real's stack lowers
//! its path MTU to the client. Fragments of replies are passed untouched (not translated):
//! the reals' replies must not be fragmented (TCP's are not, with path MTU discovery).

use aya_ebpf::{bindings::xdp_action::XDP_PASS, programs::XdpContext};
use lvs_common::{
    NatReply, dest::forward, limits::forward_progs, nat::forward_key, service::table_flags,
};

use crate::{
    conntrack, fib,
    maps::{FORWARD_PROGS, NAT_REPLIES, NEW_PACKET, handed_packet},
    nat,
    parse::{Packet, frag},
    stats, vip,
};

/// In the balancer, for a packet no flow and no service claims: if the reply table knows it,
/// hands it to the reply program (`lvs_nat_reply`, a tail call). Otherwise (or if the call
/// failed) the verdict is XDP_PASS.
#[inline(always)]
pub fn enter(ctx: &XdpContext, pkt: &Packet) -> u32 {
    // No NATed real: no reply to look for (the director's own traffic costs no hash lookup).
    if pkt.frag != frag::NONE || !vip::flag(table_flags::NAT) {
        return XDP_PASS;
    }
    // SAFETY: the value is copied out at once.
    let Some(&reply) = (unsafe { NAT_REPLIES.get(&pkt.key) }) else {
        return XDP_PASS;
    };
    if let Some(slot) = NEW_PACKET.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; the tail call runs on this CPU right after. The entry goes
        // with the packet: the reply program does not look it up again.
        unsafe {
            (*slot).pkt = *pkt;
            (*slot).reply = reply;
        }
        // SAFETY: the array holds XDP programs only (the agent writes it).
        let _ = unsafe { FORWARD_PROGS.tail_call(ctx, forward_progs::NAT_REPLY) };
    }
    XDP_PASS
}

/// The reply program: the packet as the balancer parsed it and its reply-table entry as the
/// balancer read it (one lookup, not two), translated back and sent to the client.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> Result<u32, u32> {
    let ingress = fib::ingress(ctx);
    // The packet and its reply-table entry as the balancer found them.
    let mut pkt = handed_packet().ok_or(XDP_PASS)?;
    let v = NEW_PACKET.get(0).ok_or(XDP_PASS)?.reply;
    // The IP header's offset made a constant (no VLAN tag, or one), each case its own copy of
    // the rest: with the offset as read from the map, the compiler may check the bounds
    // through one pointer and write through another, which the verifier refuses.
    if pkt.l3 == ETH_HLEN {
        pkt.l3 = ETH_HLEN;
        reply(ctx, ingress, &pkt, &v)
    } else if pkt.l3 == ETH_HLEN + VLAN_HLEN {
        pkt.l3 = ETH_HLEN + VLAN_HLEN;
        reply(ctx, ingress, &pkt, &v)
    } else {
        Err(XDP_PASS)
    }
}

/// Length of an Ethernet header, and of a VLAN tag: where the IP header may start.
const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;

/// The reply `pkt` (come in on interface `ingress`), of the flow of reply-table entry `v`:
/// translated back and sent, if its flow is still established to that real.
#[inline(always)]
fn reply(ctx: &XdpContext, ingress: u32, pkt: &Packet, v: &NatReply) -> Result<u32, u32> {
    let fwd = forward_key(&pkt.key, v);
    let (dest_id, dest) =
        conntrack::established(&fwd, pkt.tcp_flags, false, Some(v.dest)).ok_or(XDP_PASS)?;
    if dest.method != forward::MASQ || dest.addr != pkt.key.src {
        return Err(XDP_PASS);
    }
    // Too big for the route (the kernel tells the real), or no route (nor neighbour): the
    // kernel's to judge.
    let hop = fib::next_hop(
        ctx,
        ingress,
        pkt.v4,
        pkt.key.proto,
        &v.vip,
        &pkt.key.dst,
        nat::ip_len(ctx, pkt)?,
        0,
        None,
    )
    .map_err(|_| XDP_PASS)?;
    let addr_off = if pkt.v4 { pkt.l3 + 12 } else { pkt.l3 + 8 };
    nat::translate(ctx, pkt, addr_off, &v.vip, pkt.l4, v.vport_be)?;
    fib::write_hop_macs(ctx, &hop)?;
    stats::replied(dest.service, dest_id, pkt.len);
    Ok(fib::send_hop(ingress, &hop))
}
