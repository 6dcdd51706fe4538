//! Stage 4: choose a destination for a new flow: the client's persistence entry, else the
//! service's ring (walked for `wrr`/`rr`, hashed by client address for `sh`, a Maglev table
//! for `mh`: [`crate::maglev`], compared by connection counts for `lc`/`wlc`/`sed`/`nq`/`fo`/
//! `ovf` in [`crate::sched_conn`], hashed by destination address for `dh` in
//! [`crate::sched_dh`]), else the service's fallback, else drop.
//!
//! The ring is computed by the agent; the kernel only indexes it. Each CPU walks the ring with
//! its own position, so new connections never contend on a shared counter; over many
//! connections each CPU reproduces the weighted cycle exactly.

use aya_ebpf::{bindings::BPF_ANY, programs::XdpContext};
use lvs_common::{
    Dest, FlowKey, PersistKey, PersistValue, Service,
    conns::Rule,
    dest::dest_flags,
    hash::source_hash_slot,
    limits::{NO_DEST, RING_SIZE},
    service::{sched, service_flags},
    stats::DropReason,
};

use crate::{
    conntrack::live_dest,
    maps::{DESTS, PERSIST, RING_POS, RINGS},
    sched_conn, sched_dh, stats,
};

const NS_PER_SEC: u64 = 1_000_000_000;

/// The destination (id and slot) for a new flow of `service`, or XDP_DROP.
#[inline(always)]
pub fn pick(
    ctx: &XdpContext,
    service: &Service,
    key: &FlowKey,
) -> Result<(u32, &'static Dest), u32> {
    if service.flags & service_flags::PERSISTENT == 0 {
        return from_ring(ctx, service, key);
    }
    let pkey = PersistKey {
        client: key.src.masked(&service.persist_mask),
        service: service.id,
    };
    let now = crate::clock::now();
    if let Some(ptr) = PERSIST.get_ptr_mut(pkey) {
        // SAFETY: a valid pointer into the map for this program run, copied out at once; a
        // concurrent update can at worst give a stale entry, which the checks below reject.
        let p = unsafe { *ptr };
        if now.saturating_sub(p.last_used_ns) < service.persist_timeout_s as u64 * NS_PER_SEC
            && let Some(d) = live_dest(p.dest, p.generation)
            && d.flags & dest_flags::SCHEDULABLE != 0
        {
            // Refreshed in place: one aligned 8-byte store, no map update.
            // SAFETY: as above; the word is written whole.
            unsafe { (*ptr).last_used_ns = now };
            return Ok((p.dest, d));
        }
    }
    let (id, dest) = from_ring(ctx, service, key)?;
    // A client sent to the fallback is not made to stick to it.
    if id != service.fallback {
        remember(&pkey, now, id, dest.generation);
    }
    Ok((id, dest))
}

#[inline(always)]
fn remember(pkey: &PersistKey, now: u64, dest: u32, generation: u32) {
    let v = PersistValue {
        last_used_ns: now,
        dest,
        generation,
    };
    // Failure only under memory pressure; the next connection schedules again.
    let _ = PERSIST.insert(pkey, v, BPF_ANY as u64);
}

/// The ring's choice, or the fallback when the ring is empty.
#[inline(always)]
fn from_ring(
    ctx: &XdpContext,
    service: &Service,
    key: &FlowKey,
) -> Result<(u32, &'static Dest), u32> {
    let len = service.ring_len;
    if len == 0 || len > RING_SIZE {
        return fallback(ctx, service);
    }
    if service.scheduler == sched::MAGLEV {
        return crate::maglev::pick(ctx, service, key, len);
    }
    if service.scheduler == sched::DEST_HASH {
        return by_id(ctx, service, dh_choice(service, key, len));
    }
    if Rule::of(service.scheduler).is_some() {
        return by_id(ctx, service, conn_choice(service, len));
    }
    let pos = if service.scheduler == sched::SOURCE_HASH {
        source_hash_slot(&key.src, len)
    } else {
        next_position(service.id, len)
    };
    let slot = Service::ring_index(service.id, service.ring_gen, pos);
    let Some(&id) = RINGS.get(slot) else {
        return Err(stats::drop(ctx, DropReason::BadDestination));
    };
    match DESTS.get(id) {
        Some(d) if d.flags & dest_flags::VALID != 0 => Ok((id, d)),
        _ => Err(stats::drop(ctx, DropReason::BadDestination)),
    }
}

/// The connection schedulers' choice ([`NO_DEST`]: none). A function of its own, a BPF
/// subprogram: the verifier walks the unrolled scan once, and what follows the choice once for
/// all its outcomes (a destination id needs no precision), not once per path through the scan.
#[inline(never)]
fn conn_choice(service: &Service, len: u32) -> u32 {
    match Rule::of(service.scheduler) {
        Some(rule) => sched_conn::choose(service, rule, len).unwrap_or(NO_DEST),
        None => NO_DEST,
    }
}

/// `dh`'s choice ([`NO_DEST`]: none), a subprogram for the same reason as [`conn_choice`].
#[inline(never)]
fn dh_choice(service: &Service, key: &FlowKey, len: u32) -> u32 {
    sched_dh::choose(service, key, len).unwrap_or(NO_DEST)
}

/// Destination `id` if it takes new connections; the fallback when the scheduler chose none
/// ([`NO_DEST`]). A subprogram, as [`conn_choice`]: what follows it is verified once for all
/// the choices. (Its arguments are plain integers and pointers: an `Option`'s undefined
/// payload in an argument register is refused by the verifier.)
#[inline(never)]
fn by_id(ctx: &XdpContext, service: &Service, id: u32) -> Result<(u32, &'static Dest), u32> {
    if id == NO_DEST {
        return fallback(ctx, service);
    }
    match DESTS.get(id) {
        Some(d) if d.flags & dest_flags::SCHEDULABLE != 0 => Ok((id, d)),
        _ => Err(stats::drop(ctx, DropReason::BadDestination)),
    }
}

/// This CPU's next position in the ring of service `id` (length `len`).
#[inline(always)]
fn next_position(id: u32, len: u32) -> u32 {
    let Some(pos) = RING_POS.get_ptr_mut(id) else {
        return 0;
    };
    // SAFETY: a per-CPU slot: no other CPU touches it, and XDP runs without preemption on
    // this CPU.
    unsafe {
        let cur = if *pos >= len { 0 } else { *pos };
        *pos = if cur + 1 >= len { 0 } else { cur + 1 };
        cur
    }
}

#[inline(always)]
fn fallback(ctx: &XdpContext, service: &Service) -> Result<(u32, &'static Dest), u32> {
    if service.fallback == NO_DEST {
        return Err(stats::drop(ctx, DropReason::NoDestination));
    }
    match DESTS.get(service.fallback) {
        Some(d) if d.flags & dest_flags::VALID != 0 => Ok((service.fallback, d)),
        _ => Err(stats::drop(ctx, DropReason::BadDestination)),
    }
}
