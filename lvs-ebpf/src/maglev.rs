//! Stage 4 for `mh` services: the flow's slot of the service's Maglev table.
//!
//! The agent builds the table (every real in it by its configured weight, the same on every
//! director whatever the order it learned the reals in) and keeps it in the service's ring,
//! double-buffered like the other rings. Here the client's address (and source port with
//! `mh-port`) is hashed to a slot ([`mh_slot`]); the real in that slot takes the flow if it
//! takes new connections. Otherwise, with `mh-fallback`, the flow tries the next slots of its
//! own sequence (attempts 1, 2, ... of the same hash), at most [`MH_FALLBACK_TRIES`], so a
//! flow of an unusable real costs a bounded number of lookups and the flows of the other
//! reals never move; without it, or when every try fails, the packet is dropped (IPVS answers
//! such a flow with ICMP unreachable).
//!
//! A packet that is not a SYN and has no entry in the connection table comes here too, and
//! gets what a SYN of its flow would get: a flow that reaches another director mid-stream
//! keeps its real.

use aya_ebpf::programs::XdpContext;
use lvs_common::{
    Dest, FlowKey, Service, dest::dest_flags, hash::mh_slot, limits::MH_FALLBACK_TRIES,
    service::service_flags, stats::DropReason,
};

use crate::{
    maps::{DESTS, RINGS},
    stats,
};

/// The destination (id and slot) the Maglev table of `service` (`len` slots, at most
/// [`lvs_common::limits::RING_SIZE`]) gives the flow `key`, or XDP_DROP.
#[inline(always)]
pub fn pick(
    ctx: &XdpContext,
    service: &Service,
    key: &FlowKey,
    len: u32,
) -> Result<(u32, &'static Dest), u32> {
    let port = if service.flags & service_flags::MH_PORT != 0 {
        u16::from_be(key.sport_be)
    } else {
        0
    };
    let tries = if service.flags & service_flags::MH_FALLBACK != 0 {
        MH_FALLBACK_TRIES
    } else {
        1
    };
    for attempt in 0..tries {
        let pos = mh_slot(&key.src, port, attempt, len);
        let slot = Service::ring_index(service.id, service.ring_gen, pos);
        let Some(&id) = RINGS.get(slot) else {
            return Err(stats::drop(ctx, DropReason::BadDestination));
        };
        let Some(d) = DESTS.get(id) else {
            return Err(stats::drop(ctx, DropReason::BadDestination));
        };
        if d.flags & dest_flags::VALID == 0 {
            return Err(stats::drop(ctx, DropReason::BadDestination));
        }
        if d.flags & dest_flags::SCHEDULABLE != 0 {
            return Ok((id, d));
        }
    }
    Err(stats::drop(ctx, DropReason::NoDestination))
}
