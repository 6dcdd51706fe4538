//! ICMP errors from the outside about a flow, as IPVS's `ip_vs_in_icmp` handles them: a
//! router between the client and the VIP sends an error (fragmentation needed, packet too
//! big, unreachable, time exceeded) about a reply to the client (VIP:port → client, quoted),
//! to the VIP, which reaches the director. It goes on to the flow's real, so that the real's
//! path MTU discovery works through the director.
//!
//! - A direct-routed or tunnelled flow's error goes to the real as it came, by the flow's own
//!   method (IPVS's `ip_vs_icmp_xmit` hands it to the flow's `packet_xmit`): new MACs
//!   ([`crate::rewrite`]), or encapsulated ([`crate::tunnel`], a tail call that the ICMP
//!   program makes when [`v4`] or [`v6`] answers [`TO_TUNNEL`]). The real's replies left
//!   from the VIP, so the real itself finds the quoted connection.
//! - A NATed flow's is translated (`ip_vs_nat_icmp` with `outin` 0). The director sends it on
//!   to the real as if the real had met it: the outer destination becomes the real, and in
//!   the quoted packet the source address and port become the real's (its IPv4 header
//!   checksum updated), the ICMP checksum updated incrementally (for ICMPv6, the
//!   pseudo-header's destination too), the TTL / hop limit one less, the next hop from the
//!   FIB. So the real's path MTU discovery works through the director. Counted as the flow's
//!   traffic in (InPkts, InBytes), as IPVS counts it.
//!
//! The flow is the quoted packet's, reversed (client → VIP), found in the connection table
//! without moving its state ([`crate::conntrack::peek`]); its destination must be a real (not
//! the director itself). An error whose quote is not from a VIP goes to
//! [`crate::nat_icmp`] (the inside's); an error about no NATed flow, with IPv4 options, or
//! quoting another protocol than TCP/UDP, and an ICMPv6 error with extension headers or a
//! VLAN tag are XDP_PASS, untouched.

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_SUCCESS, xdp_action::XDP_PASS},
    programs::XdpContext,
};
use lvs_common::{
    Addr, Dest, FlowKey,
    dest::{dest_flags, forward},
};

use crate::{
    conntrack, fib,
    headers::{self, finish, word, words32},
    maps::{FORWARD_DEST, VIP_ADDRS},
    nat_icmp::{Error4, Error6, L3_6, L4_6, Q_6},
    parse::read,
    rewrite, stats,
};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
/// Whether the error at `l4` (IPv4 if `v4`) quotes a packet from a virtual address: one the
/// director sent, so an error from the outside ([`v4`], [`v6`]).
#[inline(always)]
pub fn quotes_a_vip(ctx: &XdpContext, v4: bool, l4: usize) -> bool {
    let src = if v4 {
        match read::<u32>(ctx, l4 + 8 + 12) {
            Ok(a) => Addr::from_v4_wire(a),
            Err(_) => return false,
        }
    } else {
        match read::<[u32; 4]>(ctx, Q_6 + 8) {
            Ok(words) => Addr { words },
            Err(_) => return false,
        }
    };
    // SAFETY: only whether the entry exists is read.
    unsafe { VIP_ADDRS.get(src) }.is_some()
}

/// What [`v4`] and [`v6`] answer for a tunnelled flow's error: not an XDP verdict, but "the
/// packet goes to the tunnel program": its destination is in the tunnel's slot, and the ICMP
/// program makes the tail call (a tail call must be made from a program's main body, and
/// these two are calls of their own).
pub const TO_TUNNEL: u32 = u32::MAX;

/// The flow (client → VIP:port) a reply quoted as `vip`:`vport` → `client`:`cport` belongs
/// to, and its destination, if it is a real's (not the director's own).
#[inline(always)]
fn flow_of(vip: Addr, client: Addr, vport: u16, cport: u16, p: u8) -> Option<(u32, &'static Dest)> {
    let key = FlowKey {
        src: client,
        dst: vip,
        sport_be: cport,
        dport_be: vport,
        proto: p,
        _pad0: 0,
        _pad1: 0,
    };
    let (id, dest) = conntrack::peek(&key)?;
    (dest.flags & dest_flags::LOCAL == 0).then_some((id, dest))
}

/// A direct-routed or tunnelled flow's error: counted as the flow's traffic in, then sent to
/// the real as it came, by the flow's method.
#[inline(always)]
fn as_it_came(ctx: &XdpContext, dest_id: u32, dest: &Dest) -> Result<u32, u32> {
    stats::forwarded(
        dest.service,
        dest_id,
        (ctx.data_end() - ctx.data()) as u64,
        false,
    );
    if dest.method == forward::TUNNEL {
        let slot = FORWARD_DEST.get_ptr_mut(0).ok_or(XDP_PASS)?;
        // SAFETY: a per-CPU slot; the ICMP program's tail call runs on this CPU right after.
        unsafe { *slot = dest_id };
        return Ok(TO_TUNNEL);
    }
    rewrite::forward(ctx, dest)
}

/// An ICMP error from the outside (IPv4): a NATed flow's translated, another's sent as it
/// came ([`TO_TUNNEL`] for a tunnelled one). A call of its own (BPF-to-BPF), as [`v6`]: the
/// program's stack does not hold it beside the inside's.
#[inline(never)]
pub fn v4(ctx: &XdpContext, ingress: u32, l3: usize, l4: usize) -> Result<u32, u32> {
    let Error4 {
        mut outer,
        mut icmp,
        quoted,
        mut q,
        qb,
        p,
        pb,
        sport: vport,
        dport: cport,
    } = Error4::read(ctx, l3, l4)?;
    let vip = q[3];
    let client = q[4];
    let (dest_id, dest) = flow_of(
        Addr::from_v4_wire(vip),
        Addr::from_v4_wire(client),
        vport,
        cport,
        p,
    )
    .ok_or(XDP_PASS)?;
    if dest.method != forward::MASQ {
        return as_it_came(ctx, dest_id, dest);
    }
    let ob = outer[2].to_ne_bytes();
    if ob[0] <= 1 {
        // The TTL would run out: the kernel's.
        return Err(XDP_PASS);
    }
    let b0 = outer[0].to_ne_bytes();
    let len = u16::from_be_bytes([b0[2], b0[3]]) as usize;
    let from = Addr::from_v4_wire(outer[3]);
    let (rc, fib) = fib::lookup(ctx, ingress, true, IPPROTO_ICMP, &from, &dest.addr, len, 0);
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        return Err(XDP_PASS);
    }
    let real = dest.addr.words[3];
    let rport = if dest.port_be != 0 {
        dest.port_be
    } else {
        vport
    };

    // The quote: source the real and its port, its header checksum.
    let addr = words32(!vip) + words32(real);
    let qc = u16::from_ne_bytes([qb[2], qb[3]]);
    let new_qc = finish((!qc) as u64 + addr);
    let nq = new_qc.to_ne_bytes();
    q[2] = u32::from_ne_bytes([qb[0], qb[1], nq[0], nq[1]]);
    q[3] = real;
    let rp = rport.to_ne_bytes();
    q[5] = u32::from_ne_bytes([rp[0], rp[1], pb[2], pb[3]]);
    // The ICMP checksum covers the quote.
    let delta = addr + (!qc) as u64 + new_qc as u64 + (!vport) as u64 + rport as u64;
    icmp[1] = finish((!icmp[1]) as u64 + delta);
    // The outer header: to the real, TTL one less.
    let old_tp = u16::from_ne_bytes([ob[0], ob[1]]);
    let new_tp = word(ob[0] - 1, ob[1]);
    let oc = u16::from_ne_bytes([ob[2], ob[3]]);
    let osum = addr + (!old_tp) as u64 + new_tp as u64;
    let nc = finish((!oc) as u64 + osum).to_ne_bytes();
    outer[2] = u32::from_ne_bytes([ob[0] - 1, ob[1], nc[0], nc[1]]);
    outer[4] = real;
    headers::write(ctx, quoted, q)?;
    headers::write(ctx, l4, icmp)?;
    headers::write(ctx, l3, outer)?;
    fib::write_macs(ctx, &fib)?;
    stats::forwarded(
        dest.service,
        dest_id,
        (ctx.data_end() - ctx.data()) as u64,
        false,
    );
    Ok(fib::send(ingress, &fib))
}

/// The same for an ICMPv6 error (no VLAN tag, no extension headers, outside or quoted): the
/// outer destination and the quote's source become the real, the quote's source port the
/// real's, the hop limit one less; the ICMPv6 checksum, which covers the pseudo-header too,
/// updated incrementally.
#[inline(never)]
pub fn v6(ctx: &XdpContext, ingress: u32, l3: usize, l4: usize) -> Result<u32, u32> {
    let Error6 {
        p,
        src: vip,
        dst: client,
        sport: vport,
        dport: cport,
    } = Error6::read(ctx, l3, l4)?;
    let (dest_id, dest) =
        flow_of(Addr { words: vip }, Addr { words: client }, vport, cport, p).ok_or(XDP_PASS)?;
    if dest.method != forward::MASQ {
        return as_it_came(ctx, dest_id, dest);
    }
    let ob = read::<u32>(ctx, L3_6 + 4)?.to_ne_bytes();
    if ob[3] <= 1 {
        return Err(XDP_PASS);
    }
    let len = u16::from_be_bytes([ob[0], ob[1]]) as usize + 40;
    let from = Addr {
        words: read::<[u32; 4]>(ctx, L3_6 + 8)?,
    };
    let (rc, fib) = fib::lookup(
        ctx,
        ingress,
        false,
        IPPROTO_ICMPV6,
        &from,
        &dest.addr,
        len,
        0,
    );
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        return Err(XDP_PASS);
    }
    let real = dest.addr.words;
    let rport = if dest.port_be != 0 {
        dest.port_be
    } else {
        vport
    };
    let mut delta = (!vport) as u64 + rport as u64;
    for i in 0..4 {
        // The quote's source, and the pseudo-header's destination.
        delta += 2 * (words32(!vip[i]) + words32(real[i]));
    }
    let c = read::<u16>(ctx, L4_6 + 2)?;
    let rp = rport.to_ne_bytes();
    headers::write(ctx, Q_6 + 8, real)?;
    let cp = cport.to_ne_bytes();
    headers::write(ctx, Q_6 + 40, [rp[0], rp[1], cp[0], cp[1]])?;
    headers::write(ctx, L4_6 + 2, finish((!c) as u64 + delta))?;
    headers::write(ctx, L3_6 + 4, [ob[0], ob[1], ob[2], ob[3] - 1])?;
    headers::write(ctx, L3_6 + 24, real)?;
    fib::write_macs(ctx, &fib)?;
    stats::forwarded(
        dest.service,
        dest_id,
        (ctx.data_end() - ctx.data()) as u64,
        false,
    );
    Ok(fib::send(ingress, &fib))
}
