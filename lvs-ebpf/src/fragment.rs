//! Fragments of a datagram to a virtual service go where its first fragment went.
//!
//! - The first fragment carries the transport header: it is balanced like any packet of its
//!   flow (connection table, then scheduler), and [`first`] writes the destination it got
//!   into [`FRAGMENTS`] under the datagram's [`FragKey`] (source, destination, protocol,
//!   identification).
//! - A later fragment ([`later`]) carries no ports. Not to a VIP address
//!   ([`vip::is_vip_addr`], for its protocol): XDP_PASS, untouched. To one: malformed (the IP
//!   checks of [`wellformed`]) → dropped (`malformed`); its datagram's entry found within
//!   [`lvs_common::fragment::FRAG_TIMEOUT_NS`] → sent to the same destination (its slot still
//!   holding the generation); else dropped and counted (`orphan_fragment`): it came before its first
//!   fragment, or the first was dropped. Never passed to the director's stack, which would
//!   reassemble the datagram and answer on the VIP itself.
//! - A first fragment too short to hold the transport header's fields to a VIP address is
//!   malformed (RFC 1858's tiny fragments).
//! - A first fragment to a VIP address for no virtual service (another port) is passed, and
//!   [`not_a_service`] writes an entry that passes its later fragments too, so the director's
//!   own services on other ports of the VIP still get their fragmented datagrams.
//! - An IPv6 chain longer than the parser follows is judged here too, by its destination
//!   alone: to a VIP address it is dropped and counted (`long_ext_chain`), else passed.

use aya_ebpf::{
    bindings::{BPF_ANY, xdp_action::XDP_PASS},
    programs::XdpContext,
};
use lvs_common::{
    Addr, Dest, FragKey, FragValue,
    fragment::{frag_fresh, vip_protos},
    limits::NO_DEST,
    stats::DropReason,
};

use crate::{
    conntrack::live_dest,
    maps::FRAGMENTS,
    parse::{Packet, frag},
    stats, vip, wellformed,
};

/// IPv6 Destination Options: the one header that may stand first in a datagram's fragmentable
/// part before the transport header (RFC 8200's order), so the Fragment header's Next Header
/// of such a datagram tells nothing of its protocol.
const NEXTHDR_DEST: u8 = 60;

/// The datagram a fragment belongs to.
#[inline(always)]
fn key(pkt: &Packet) -> FragKey {
    FragKey {
        src: pkt.key.src,
        dst: pkt.key.dst,
        id: pkt.frag_id,
        proto: pkt.frag_proto,
        _pad: [0; 3],
    }
}

/// Whether a fragment (no ports) is addressed to a virtual service's address.
#[inline(always)]
fn to_vip(dst: &Addr, frag_proto: u8, v4: bool) -> bool {
    let protos = if !v4 && frag_proto == NEXTHDR_DEST {
        vip_protos::ANY
    } else {
        vip_protos::of(frag_proto)
    };
    protos != 0 && vip::is_vip_addr(dst, protos)
}

/// The destination of a later fragment (the real its first fragment went to), or the verdict
/// for it, a short first one (see the module docs), or an IPv6
/// chain longer than the parser follows ([`frag::LONG_CHAIN`]: dropped and counted as
/// `long_ext_chain` to a VIP address, else XDP_PASS).
#[inline(always)]
pub fn later(ctx: &XdpContext, pkt: &Packet) -> Result<(u32, &'static Dest), u32> {
    if pkt.frag == frag::LONG_CHAIN {
        if vip::is_vip_addr(&pkt.key.dst, vip_protos::ANY) {
            return Err(stats::drop(ctx, DropReason::LongExtChain));
        }
        return Err(XDP_PASS);
    }
    if !to_vip(&pkt.key.dst, pkt.frag_proto, pkt.v4) {
        return Err(XDP_PASS);
    }
    if pkt.frag == frag::SHORT || !wellformed::ok(ctx, pkt) {
        return Err(stats::drop(ctx, DropReason::Malformed));
    }
    // SAFETY: the value is copied out at once; a concurrent update at worst gives the
    // datagram's previous entry, checked below like any.
    if let Some(v) = unsafe { FRAGMENTS.get(key(pkt)) }.copied() {
        let now = crate::clock::now();
        if frag_fresh(v.seen_ns, now) {
            if v.dest == NO_DEST {
                return Err(XDP_PASS);
            }
            if let Some(dest) = live_dest(v.dest, v.generation) {
                stats::forwarded(v.service, v.dest, pkt.len, false);
                return Ok((v.dest, dest));
            }
        }
    }
    Err(stats::drop(ctx, DropReason::OrphanFragment))
}

/// After a first fragment was given destination `dest` (of `generation`) of `service`:
/// remembers it for the datagram's later fragments. Nothing for a whole packet.
#[inline(always)]
pub fn first(pkt: &Packet, service: u32, dest: u32, generation: u32) {
    if pkt.frag == frag::FIRST {
        write(pkt, service, dest, generation);
    }
}

/// After a first fragment was found for no virtual service: if it is to a VIP address, its
/// later fragments are passed like it.
#[inline(always)]
pub fn not_a_service(pkt: &Packet) {
    if pkt.frag == frag::FIRST && to_vip(&pkt.key.dst, pkt.frag_proto, pkt.v4) {
        write(pkt, NO_DEST, NO_DEST, 0);
    }
}

#[inline(always)]
fn write(pkt: &Packet, service: u32, dest: u32, generation: u32) {
    let v = FragValue {
        dest,
        generation,
        service,
        _pad: 0,
        seen_ns: crate::clock::now(),
    };
    // Failure only under memory pressure: the later fragments are then dropped as orphans.
    let _ = FRAGMENTS.insert(key(pkt), v, BPF_ANY as u64);
}
