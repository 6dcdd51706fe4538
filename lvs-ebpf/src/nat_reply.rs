//! NAT (`masq`), real → client: a NATed flow's reply is known to the connection table by its
//! own 5-tuple, as IPVS finds its NAT connections by either direction: when the balancer
//! remembers a NATed flow it also writes a reply way ([`crate::conntrack::remember_reply`])
//! that points to the flow's way. A packet whose 5-tuple finds a reply way comes here
//! ([`enter`]); the reply way is followed to its flow ([`crate::conntrack::follow`]), which must
//! still be within its state's idle timeout, to that real, with exactly these replies. Its
//! source becomes the VIP and port again (TTL / hop limit one less, checksums updated
//! incrementally: [`crate::nat::translate`]), its TCP flags move the flow's state (IPVS's
//! OUTPUT table), and it leaves by the next hop the kernel's FIB gives for the client
//! ([`crate::fib::next_hop`], through this CPU's entry for the client's address first),
//! counted in the service's and the real's OutPkts and OutBytes ([`crate::stats::replied`]).
//! Anything else (the director's own traffic, a reply whose flow is gone or expired) is
//! XDP_PASS, untouched, and costs no lookup beyond the connection table's.
//!
//! A reply too big for the route to the client is XDP_PASS, untouched: the kernel, routing it,
//! sends the real ICMP fragmentation needed / packet too big, and the real's stack lowers
//! its path MTU to the client. Fragments of replies are passed untouched (not translated):
//! the reals' replies must not be fragmented (TCP's are not, with path MTU discovery).

use aya_ebpf::{bindings::xdp_action::XDP_PASS, programs::XdpContext};
use lvs_common::{NatReply, limits::forward_progs, next_hop::client_hop_entry};

use crate::{
    conntrack, fib,
    maps::{NEW_PACKET, handed_packet, tail_call},
    nat,
    parse::{Packet, frag},
    stats,
};

/// In the balancer, for a packet the connection table knows as a NATed flow's reply (its reply
/// way's destination word `flow`, [`conntrack::Known::Reply`]): hands it to the reply program
/// (`lvs_nat_reply`, a tail call). A fragment, or a failed call: XDP_PASS.
#[inline(always)]
pub fn enter(ctx: &XdpContext, pkt: &Packet, flow: u64) -> u32 {
    if pkt.frag != frag::NONE {
        return XDP_PASS;
    }
    if let Some(slot) = NEW_PACKET.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; the tail call runs on this CPU right after. The reply way
        // goes with the packet: the reply program does not look it up again.
        unsafe {
            (*slot).pkt = *pkt;
            (*slot).reply = flow;
        }
        tail_call::<{ forward_progs::NAT_REPLY }>(ctx);
    }
    XDP_PASS
}

/// The reply program: the packet as the balancer parsed it and its reply way as the balancer
/// found it, followed to its flow, translated back and sent to the client.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> Result<u32, u32> {
    let ingress = fib::ingress(ctx);
    // The packet and its reply way as the balancer found them.
    let mut pkt = handed_packet().ok_or(XDP_PASS)?;
    let flow = NEW_PACKET.get(0).ok_or(XDP_PASS)?.reply;
    let (dest_id, dest, v) =
        conntrack::follow(flow, &pkt.key, Some(pkt.tcp_flags)).ok_or(XDP_PASS)?;
    // The IP header's offset made a constant (no VLAN tag, or one), each case its own copy of
    // the rest: with the offset as read from the map, the compiler may check the bounds
    // through one pointer and write through another, which the verifier refuses.
    if pkt.l3 == ETH_HLEN {
        pkt.l3 = ETH_HLEN;
        reply(ctx, ingress, &pkt, dest.service, dest_id, &v)
    } else if pkt.l3 == ETH_HLEN + VLAN_HLEN {
        pkt.l3 = ETH_HLEN + VLAN_HLEN;
        reply(ctx, ingress, &pkt, dest.service, dest_id, &v)
    } else {
        Err(XDP_PASS)
    }
}

/// Length of an Ethernet header, and of a VLAN tag: where the IP header may start.
const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;

/// The reply `pkt` (come in on interface `ingress`) of the flow to destination `dest_id` (of
/// service `service`) that `v` translates back: translated and sent.
#[inline(always)]
fn reply(
    ctx: &XdpContext,
    ingress: u32,
    pkt: &Packet,
    service: u32,
    dest_id: u32,
    v: &NatReply,
) -> Result<u32, u32> {
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
        Some(client_hop_entry(&pkt.key.dst)),
    )
    .map_err(|_| XDP_PASS)?;
    let addr_off = if pkt.v4 { pkt.l3 + 12 } else { pkt.l3 + 8 };
    nat::translate(ctx, pkt, addr_off, &v.vip, pkt.l4, v.vport_be)?;
    fib::write_hop_macs(ctx, &hop)?;
    stats::replied(service, dest_id, pkt.len);
    Ok(fib::send_hop(ingress, &hop))
}
