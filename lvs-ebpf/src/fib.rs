//! The next hop from the kernel's FIB (`bpf_fib_lookup`), for the forwarding methods that
//! route ([`crate::tunnel`], [`crate::nat`], [`crate::nat_reply`]): the egress interface, its
//! MAC, the next hop's MAC (from the kernel's neighbour table), the route's MTU and, when asked
//! (`BPF_FIB_LOOKUP_SRC`), the route's preferred source address. The helper answers only when
//! forwarding is enabled on the interface the packet came in on (the agent checks that at
//! start).
//!
//! [`next_hop`] asks the helper only on a miss of the next-hop cache ([`NEXT_HOPS`],
//! [`lvs_common::next_hop`]): an entry holds while it is of the generation the agent last set
//! (it bumps it on every route, neighbour, address, link, rule or forwarding change the kernel
//! announces) and younger than [`lvs_common::next_hop::NEXT_HOP_MAX_AGE_NS`]. A route or
//! neighbour change is so followed from the packet after the agent heard of it.

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_SRC, bpf_fib_lookup,
        xdp_action::XDP_TX,
    },
    helpers::generated::{bpf_fib_lookup as fib_lookup, bpf_redirect},
    programs::XdpContext,
};
use lvs_common::{Addr, DestHop, NextHop, NextHopKey, next_hop::ASK_SOURCE};

use crate::{
    headers,
    maps::{DEST_HOPS, NEXT_HOP_GENERATION, NEXT_HOPS},
};

/// Why [`next_hop`] gives no next hop.
pub enum NoHop {
    /// The packet is longer than the route's MTU (given).
    TooBig(usize),
    /// No usable route, no neighbour entry for the next hop, or forwarding off on the
    /// ingress interface.
    Unreachable,
}

/// The next hop of a packet of `tot_len` bytes (its IP length) and protocol `l4_proto` from
/// `src` to `dst`, come in on interface `ingress`: from the cache if it holds an entry for
/// everything but the length, else from the FIB (`flags` for the helper: 0 or
/// `BPF_FIB_LOOKUP_SRC`, which makes [`NextHop::src`] the route's preferred source), then
/// kept in the cache. Only answers that forward are kept.
///
/// With `entry` (an entry of [`DEST_HOPS`]: the destination slot's for the methods that route
/// to a real, [`lvs_common::next_hop::dest_hop_entry`]; the client's for a NATed reply,
/// [`lvs_common::next_hop::client_hop_entry`]), this CPU's entry is tried first, and filled
/// from the cache or the FIB on a miss: an array index and a key compare, where the cache
/// hashes the key. It holds by the same rules (generation, age).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn next_hop(
    ctx: &XdpContext,
    ingress: u32,
    v4: bool,
    l4_proto: u8,
    src: &Addr,
    dst: &Addr,
    tot_len: usize,
    flags: u32,
    entry: Option<u32>,
) -> Result<NextHop, NoHop> {
    let key = NextHopKey {
        src: *src,
        dst: *dst,
        ingress,
        proto: l4_proto,
        v4: v4 as u8,
        flags: if flags & BPF_FIB_LOOKUP_SRC != 0 {
            ASK_SOURCE
        } else {
            0
        },
        _pad: 0,
    };
    // Read before the FIB is asked: an answer from before a change the agent bumps the
    // generation for is stored with the generation that bump makes old.
    let generation = NEXT_HOP_GENERATION.get(0).copied().unwrap_or(0);
    let now = crate::clock::now();
    let slot = entry.and_then(|e| DEST_HOPS.get_ptr_mut(e));
    if let Some(entry) = slot {
        // SAFETY: this CPU's entry, valid for the program run; nothing else writes it
        // meanwhile (XDP runs to completion on one CPU).
        let entry = unsafe { &*entry };
        if entry.key == key && entry.hop.fresh(generation, now) {
            return fits(entry.hop, tot_len);
        }
    }
    // SAFETY: the value is copied out at once.
    if let Some(hop) = unsafe { NEXT_HOPS.get(key) }.copied()
        && hop.fresh(generation, now)
    {
        keep(slot, &key, &hop);
        return fits(hop, tot_len);
    }
    let (rc, fib) = lookup(ctx, ingress, v4, l4_proto, src, dst, tot_len, flags);
    if rc == BPF_FIB_LKUP_RET_FRAG_NEEDED as i64 {
        return Err(NoHop::TooBig(mtu(&fib)));
    }
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        return Err(NoHop::Unreachable);
    }
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&fib.dmac);
    macs[6..].copy_from_slice(&fib.smac);
    let hop = NextHop {
        macs,
        ifindex: fib.ifindex,
        // On success the helper reports the route's MTU it checked the length against.
        mtu: mtu(&fib) as u32,
        generation,
        filled_ns: now,
        src: if key.flags == ASK_SOURCE {
            // SAFETY: the helper filled the source when asked to.
            let mut a = *src;
            if v4 {
                a = Addr::from_v4_wire(unsafe { fib.__bindgen_anon_3.ipv4_src });
            } else {
                a.words = unsafe { fib.__bindgen_anon_3.ipv6_src };
            }
            a
        } else {
            *src
        },
    };
    // Failure only under memory pressure: the next packet asks the FIB again.
    let _ = NEXT_HOPS.insert(key, hop, 0);
    keep(slot, &key, &hop);
    Ok(hop)
}

/// `hop`, unless a packet of `tot_len` bytes is too big for its route.
#[inline(always)]
fn fits(hop: NextHop, tot_len: usize) -> Result<NextHop, NoHop> {
    if tot_len > hop.mtu as usize {
        return Err(NoHop::TooBig(hop.mtu as usize));
    }
    Ok(hop)
}

/// Writes `hop`, the answer for `key`, to this CPU's per-destination entry `slot`, if any.
#[inline(always)]
fn keep(slot: Option<*mut DestHop>, key: &NextHopKey, hop: &NextHop) {
    if let Some(entry) = slot {
        // SAFETY: as in `next_hop`. Field by field: no copy of the whole entry on the stack
        // (the NAT program's stack is near the verifier's limit).
        unsafe {
            (*entry).key = *key;
            (*entry).hop = *hop;
        };
    }
}

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Asks the FIB for the route of a packet of `tot_len` bytes (its IP length) and protocol
/// `l4_proto` from `src` to `dst`, as if it came in on interface `ingress` (the packet's:
/// [`ingress`]), with the helper's `flags`. Returns the helper's code (`BPF_FIB_LKUP_RET_*`)
/// and what it filled in.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn lookup(
    ctx: &XdpContext,
    ingress: u32,
    v4: bool,
    l4_proto: u8,
    src: &Addr,
    dst: &Addr,
    tot_len: usize,
    flags: u32,
) -> (i64, bpf_fib_lookup) {
    // SAFETY: a plain C struct of integers; all zero is a valid value.
    let mut fib: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    fib.ifindex = ingress;
    fib.__bindgen_anon_1.tot_len = tot_len as u16;
    fib.l4_protocol = l4_proto;
    if v4 {
        fib.family = AF_INET;
        fib.__bindgen_anon_3.ipv4_src = src.words[3];
        fib.__bindgen_anon_4.ipv4_dst = dst.words[3];
    } else {
        fib.family = AF_INET6;
        fib.__bindgen_anon_3.ipv6_src = src.words;
        fib.__bindgen_anon_4.ipv6_dst = dst.words;
    }
    // SAFETY: `fib` is a valid `bpf_fib_lookup` of the size passed; the context is the
    // program's.
    let rc = unsafe {
        fib_lookup(
            ctx.ctx as *mut _,
            &mut fib,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            flags,
        )
    };
    (rc, fib)
}

/// The route's MTU, after a lookup that answered `BPF_FIB_LKUP_RET_FRAG_NEEDED` or (kernels
/// since 5.13) `BPF_FIB_LKUP_RET_SUCCESS`.
#[inline(always)]
pub fn mtu(fib: &bpf_fib_lookup) -> usize {
    // SAFETY: the helper wrote the route's MTU into the union.
    (unsafe { fib.__bindgen_anon_1.mtu_result }) as usize
}

/// Writes the Ethernet addresses of the next hop: the neighbour's MAC as destination, the
/// egress interface's as source.
#[inline(always)]
pub fn write_macs(ctx: &XdpContext, fib: &bpf_fib_lookup) -> Result<(), u32> {
    headers::write(ctx, 0, fib.dmac)?;
    headers::write(ctx, 6, fib.smac)
}

/// The verdict that sends the frame out of the route's interface: XDP_TX if it is `ingress`,
/// the one the packet came in on, else a redirect.
#[inline(always)]
pub fn send(ingress: u32, fib: &bpf_fib_lookup) -> u32 {
    out(ingress, fib.ifindex)
}

/// [`write_macs`] for a [`next_hop`].
#[inline(always)]
pub fn write_hop_macs(ctx: &XdpContext, hop: &NextHop) -> Result<(), u32> {
    headers::write(ctx, 0, hop.macs)
}

/// [`send`] for a [`next_hop`].
#[inline(always)]
pub fn send_hop(ingress: u32, hop: &NextHop) -> u32 {
    out(ingress, hop.ifindex)
}

/// XDP_TX if `egress` is `ingress`, else a redirect to `egress`.
#[inline(always)]
fn out(ingress: u32, egress: u32) -> u32 {
    if egress == ingress {
        return XDP_TX;
    }
    // SAFETY: a helper taking plain integers.
    (unsafe { bpf_redirect(egress, 0) }) as u32
}

/// The interface the packet came in on. Read it once per program and pass it on: the
/// verifier refuses a load through a context pointer the compiler kept with the field's
/// offset added, as it may for a second read.
#[inline(always)]
pub fn ingress(ctx: &XdpContext) -> u32 {
    // SAFETY: the context is the program's; `ingress_ifindex` is one of its fields.
    unsafe { core::ptr::read_volatile(&(*ctx.ctx).ingress_ifindex) }
}
