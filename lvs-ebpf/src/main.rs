//! The lvs XDP programs.
//!
//! `lvs_xdp` is the load balancer, a pipeline of small stages, one file each, in the order a
//! packet meets them:
//!
//! 0. [`own_mac`]: is the frame addressed to this director (its Ethernet destination)?
//! 1. [`parse`]: Ethernet (one VLAN tag), IPv4/IPv6, TCP/UDP ports → a [`parse::Packet`].
//!    [`fragment`]: a later fragment (no ports) goes where its datagram's first went.
//!    [`wellformed`]: a malformed packet to a virtual service is dropped and counted
//!    (`malformed`) before anything remembers it; one to anything else is XDP_PASS.
//! 2. [`conntrack`]: a known flow within its state's idle timeout goes straight to its
//!    destination, its TCP state moved by the packet (a SYN stays on its real unless the entry
//!    is in CLOSE or TIME_WAIT).
//! 3. [`vip`]: is the packet for a virtual service? If so, the rest of a new flow's stages run
//!    in `lvs_new_flow` (a tail call), which gets the packet, its service and its flow's hash
//!    from the balancer (a new flow's key is hashed once); in a full bucket, the way the new
//!    flow will take is read first ([`conntrack::touch_victim`]).
//! 4. [`scheduler`]: persistence, then the service's ring (for `mh`, [`maglev`]: its Maglev
//!    table), then its fallback; the connection schedulers in [`sched_conn`] (by the per-real
//!    counts of [`conns`]) and [`sched_dh`].
//! 5. [`conntrack`] again: remember the choice ([`fragment`]: a first fragment's too); a
//!    one-packet service (`--ops`) remembers none, each packet is scheduled anew.
//! 6. By the destination's forwarding method: [`rewrite`] (direct routing, new MACs, XDP_TX
//!    or XDP_REDIRECT), [`tunnel`] (IP-in-IP, next hop from the kernel's FIB, [`fib`]; a
//!    packet too big for the path gets [`too_big`]'s ICMP error instead) or [`nat`]
//!    (destination address and port translated to the real's, next hop from the FIB), the
//!    latter two programs of their own (`lvs_tunnel`, `lvs_nat`) that the balancer tail-calls.
//!
//! A NATed flow's reply is known to the connection table by its own 5-tuple (a reply way,
//! stage 2): [`nat_reply`] follows it to its flow and translates its source back to the
//! VIP's in a program of its own (`lvs_nat_reply`, tail-called); an ICMP error from
//! the inside about a NATed flow goes to the client translated ([`nat_icmp`], `lvs_nat_icmp`),
//! one from the outside about a reply goes to the flow's real ([`nat_icmp_in`], in the same
//! program): translated for a NATed flow, as it came for a direct-routed or tunnelled one.
//!
//! [`stats`] counts along the way. Each stage returns `Result<T, u32>`: a value for the next
//! stage, or the final XDP verdict. Anything that is not for a virtual service leaves as
//! XDP_PASS, untouched.
#![no_std]
#![no_main]
// `core::intrinsics::atomic_cxchg`: the connection table claims a way with BPF_CMPXCHG, and
// `AtomicU64::compare_exchange` does not exist for the BPF target. (Host builds, such as
// `cargo clippy --workspace` on stable, use the atomic type instead.)
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
// `asm!` (an assembler comment that keeps tail-call sites apart, [`maps::tail_call`]).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

mod clock;
mod conns;
mod conntrack;
mod decap;
mod fib;
mod floor;
mod fragment;
mod headers;
mod maglev;
mod maps;
mod nat;
mod nat_icmp;
mod nat_icmp_in;
mod nat_reply;
mod own_mac;
mod parse;
mod rewrite;
mod sched_conn;
mod sched_dh;
mod scheduler;
mod stats;
mod too_big;
mod tunnel;
mod vip;
mod wellformed;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

/// The load balancer.
// Inlined into the program's entry: the tunnel's tail call must sit in the main body (a
// subprogram may not tail-call without BTF), and the merged pipeline is large enough that the
// compiler would otherwise keep this function apart.
#[xdp]
#[inline(always)]
pub fn lvs_xdp(ctx: XdpContext) -> u32 {
    match balance(&ctx) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// A new flow's stages, tail-called by the balancer ([`new_flow`]).
#[xdp]
#[inline(always)]
pub fn lvs_new_flow(ctx: XdpContext) -> u32 {
    match new_flow(&ctx) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// The tunnel forwarding method, tail-called by the balancer ([`tunnel`]).
#[xdp]
pub fn lvs_tunnel(ctx: XdpContext) -> u32 {
    match tunnel::run(&ctx) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// The NAT forwarding method, client → real, tail-called by the balancer ([`nat`]).
#[xdp]
pub fn lvs_nat(ctx: XdpContext) -> u32 {
    match nat::run(&ctx) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// An ICMP error about a NATed flow, tail-called by the balancer ([`nat_icmp`]).
#[xdp]
pub fn lvs_nat_icmp(ctx: XdpContext) -> u32 {
    match nat_icmp::run(&ctx) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// A NATed flow's reply, real → client, tail-called by the balancer ([`nat_reply`]).
#[xdp]
pub fn lvs_nat_reply(ctx: XdpContext) -> u32 {
    match nat_reply::run(&ctx) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// The decapsulator for real servers behind a tunnelling director ([`decap`], `lvs decap`).
#[xdp]
pub fn lvs_decap(ctx: XdpContext) -> u32 {
    match decap::run(&ctx) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// Passes every packet. Native XDP_TX on a veth needs an XDP program on its peer; this is it.
#[xdp]
pub fn lvs_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[inline(always)]
fn balance(ctx: &XdpContext) -> Result<u32, u32> {
    // One call of `forward` for every path: its tunnel branch tail-calls, and a tail call must
    // stay in the program's main body (a subprogram may not tail-call without BTF).
    let (dest_id, dest) = known(ctx)?;
    forward(ctx, dest_id, dest)
}

/// Stages 0-3: the destination of a known flow (or of a later fragment), or the final verdict.
/// A packet of a virtual service that no known flow holds goes on in the new-flow program
/// ([`lvs_new_flow`], a tail call): the schedulers are verified apart from the parser's paths,
/// the product of both passing the verifier's budget.
#[inline(always)]
fn known(ctx: &XdpContext) -> Result<(u32, &'static lvs_common::Dest), u32> {
    own_mac::check(ctx)?;
    let pkt = parse::parse(ctx)?;
    if pkt.frag >= parse::frag::LATER {
        if pkt.frag == parse::frag::ICMP {
            return Err(nat_icmp::enter(ctx, &pkt));
        }
        return fragment::later(ctx, &pkt);
    }
    if !wellformed::ok(ctx, &pkt) {
        vip::lookup(&pkt.key)?;
        return Err(stats::drop(ctx, lvs_common::DropReason::Malformed));
    }

    let hash = match conntrack::established(&pkt.key, pkt.tcp_flags, pkt.syn) {
        Some(conntrack::Known::Flow(dest_id, dest)) => {
            stats::forwarded(dest.service, dest_id, pkt.len, false);
            fragment::first(&pkt, dest.service, dest_id, dest.generation);
            return Ok((dest_id, dest));
        }
        Some(conntrack::Known::Reply(flow)) => return Err(nat_reply::enter(ctx, &pkt, flow)),
        Some(conntrack::Known::New(hash)) => Some(hash),
        None => None,
    };

    let Ok(service) = vip::lookup(&pkt.key) else {
        fragment::not_a_service(&pkt);
        return Err(xdp_action::XDP_PASS);
    };
    if !one_packet(service, &pkt.key)
        && let Some(hash) = hash
    {
        conntrack::touch_victim(hash);
    }
    if let Some(slot) = maps::NEW_PACKET.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; the tail call runs on this CPU right after. The service is
        // a map value of another map, so the two never overlap: a non-overlapping copy, which
        // the compiler turns into word loads and stores (an assignment through these raw
        // pointers became a call to `memmove`, a loop of one byte a turn).
        unsafe {
            (*slot).pkt = pkt;
            core::ptr::copy_nonoverlapping(service, core::ptr::addr_of_mut!((*slot).service), 1);
            if let Some(hash) = hash {
                (*slot).hash = hash;
                (*slot).service._pad = maps::HASH_HANDED;
            }
        };
    }
    maps::tail_call::<{ lvs_common::limits::forward_progs::NEW_FLOW }>(ctx);
    // Only if the new-flow program is missing from the array.
    Err(stats::drop(ctx, lvs_common::DropReason::BadDestination))
}

/// Stages 4-5 for a new flow (tail-called by [`lvs_xdp`], which found the virtual service and
/// hands it over with the packet): the scheduler, the connection table, then the forwarding
/// method.
#[inline(always)]
fn new_flow(ctx: &XdpContext) -> Result<u32, u32> {
    // The packet and its service as the balancer found them (this CPU's slot, written before
    // the tail call).
    let slot = maps::NEW_PACKET
        .get(0)
        .ok_or_else(|| stats::drop(ctx, lvs_common::DropReason::BadDestination))?;
    let (pkt, service) = (&slot.pkt, &slot.service);
    let (dest_id, dest) = scheduler::pick(ctx, service, &pkt.key)?;
    if !one_packet(service, &pkt.key)
        && let Some(hash) = maps::handed_hash(slot).or_else(|| conntrack::hash_of(&pkt.key))
        && let Some(flow) =
            conntrack::remember(&pkt.key, hash, pkt.tcp_flags, dest_id, dest.generation)
    {
        nat::remember(pkt, dest, flow);
    }
    fragment::first(pkt, service.id, dest_id, dest.generation);
    stats::forwarded(service.id, dest_id, pkt.len, true);
    forward(ctx, dest_id, dest)
}

/// Whether the packet is scheduled on its own, with no connection entry: a UDP packet of a
/// one-packet service (IPVS applies `--ops` to UDP packets only, also on a firewall-mark
/// service that takes TCP too).
#[inline(always)]
fn one_packet(service: &lvs_common::Service, key: &lvs_common::FlowKey) -> bool {
    service.flags & lvs_common::service::service_flags::ONE_PACKET != 0
        && key.proto == lvs_common::service::proto::UDP
}

/// Stage 6: sends the packet to `dest` by its forwarding method.
#[inline(always)]
fn forward(ctx: &XdpContext, dest_id: u32, dest: &lvs_common::Dest) -> Result<u32, u32> {
    use lvs_common::dest::{dest_flags, forward};
    if dest.flags & dest_flags::LOCAL == 0 {
        if dest.method == forward::TUNNEL {
            return tunnel::enter(ctx, dest_id);
        }
        if dest.method == forward::MASQ {
            return nat::enter(ctx, dest_id);
        }
    }
    rewrite::forward(ctx, dest)
}

// Only for BPF: a host build (`cargo clippy --workspace`, which type-checks this crate) links
// std through the agent's features of lvs-common, and std has its own.
#[cfg(all(not(test), target_arch = "bpf"))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
