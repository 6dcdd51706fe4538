//! ICMP errors about a NATed flow, as IPVS translates them (`ip_vs_out_icmp`): an error from
//! the inside (the real, or a router on the way to it) about a packet the director sent the
//! real (client → real:port, quoted in the error) goes to the client as if the packet had met
//! it at the VIP: the outer source becomes the VIP, and in the quoted packet the destination
//! address and port become the VIP's and port (its IPv4 header checksum updated), the ICMP
//! checksum updated incrementally, the TTL one less, the next hop from the FIB. So the client
//! learns a path MTU (fragmentation needed) or an unreachable real through the director.
//! Counted as a reply (OutPkts, OutBytes), as IPVS counts it.
//!
//! The flow is known by the connection table's reply way for the quoted packet's reply
//! ([`crate::conntrack::reply_of`]), its destination slot still holding the real. An error quoting a packet from a
//! VIP is one from the outside about a reply: [`crate::nat_icmp_in`] sends it to the real.
//! An ICMPv6 error with extension headers or a VLAN tag, an error quoting IPv4 options or
//! another protocol than TCP/UDP, any other ICMP message and an error about no NATed flow
//! are XDP_PASS, untouched.

use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_SUCCESS, xdp_action::XDP_PASS},
    programs::XdpContext,
};
use lvs_common::{Addr, FlowKey, limits::forward_progs, service::proto};

use crate::{
    conntrack, fib,
    headers::{self, finish, word, words32},
    maps::{NEW_PACKET, tail_call},
    nat_icmp_in,
    parse::{Packet, read},
    stats,
};

/// ICMP types that quote the packet they are about: destination unreachable (with
/// fragmentation needed), time exceeded, parameter problem.
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAMETERPROB: u8 = 12;
const IPPROTO_ICMP: u8 = 1;
/// ICMPv6 errors: destination unreachable (1), packet too big (2), time exceeded (3),
/// parameter problem (4).
const ICMPV6_DEST_UNREACH: u8 = 1;
const ICMPV6_PARAMPROB: u8 = 4;
const IPPROTO_ICMPV6: u8 = 58;
/// Bounds the header offsets handed over by the balancer: larger than any frame.
const HEADER_OFFSET_MASK: usize = 0x3fff;

/// In the balancer, for an unfragmented ICMP message (IPv4): an error is handed to the ICMP
/// program (`lvs_nat_icmp`, a tail call); anything else (or if the call failed) is XDP_PASS.
#[inline(always)]
pub fn enter(ctx: &XdpContext, pkt: &Packet) -> u32 {
    // Type and code as one word (a one-byte read's bounds check compiles to a form the
    // verifier does not follow here).
    let Ok(type_code) = read::<u16>(ctx, pkt.l4) else {
        return XDP_PASS;
    };
    let t = type_code.to_ne_bytes()[0];
    let error = if pkt.v4 {
        t == ICMP_DEST_UNREACH || t == ICMP_TIME_EXCEEDED || t == ICMP_PARAMETERPROB
    } else {
        (ICMPV6_DEST_UNREACH..=ICMPV6_PARAMPROB).contains(&t)
    };
    if !error {
        return XDP_PASS;
    }
    if let Some(slot) = NEW_PACKET.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; the tail call runs on this CPU right after.
        unsafe { (*slot).pkt = *pkt };
        tail_call::<{ forward_progs::NAT_ICMP }>(ctx);
    }
    XDP_PASS
}

/// The ICMP program: the error translated for the client, or XDP_PASS untouched.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> Result<u32, u32> {
    let ingress = fib::ingress(ctx);
    let pkt = NEW_PACKET.get(0).ok_or(XDP_PASS)?.pkt;
    let l3 = pkt.l3 & HEADER_OFFSET_MASK;
    let l4 = pkt.l4 & HEADER_OFFSET_MASK;
    if nat_icmp_in::quotes_a_vip(ctx, pkt.v4, l4) {
        // About a packet the director sent from a VIP: from the outside, to the real.
        let verdict = if pkt.v4 {
            nat_icmp_in::v4(ctx, ingress, l3, l4)?
        } else {
            nat_icmp_in::v6(ctx, ingress, l3, l4)?
        };
        if verdict == nat_icmp_in::TO_TUNNEL {
            tail_call::<{ forward_progs::TUNNEL }>(ctx);
            return Err(crate::tunnel::no_route(ctx));
        }
        return Ok(verdict);
    }
    if pkt.v4 {
        v4(ctx, ingress, l3, l4)
    } else {
        v6(ctx, ingress, l3, l4)
    }
}

/// An ICMPv4 error's headers, read whole (they are written back whole: the verifier follows
/// one bounds check per read or write of the packet at these offsets, not one per field): the
/// outer IPv4 header (no options), the ICMP header, and the quoted packet's IPv4 header (no
/// options) with the first word of its TCP or UDP header, the error addressed to the quoted
/// packet's sender. Inside ([`v4`]) and outside ([`nat_icmp_in::v4`]) errors read them so.
pub struct Error4 {
    /// The outer IPv4 header.
    pub outer: [u32; 5],
    /// The ICMP type, code and checksum.
    pub icmp: [u16; 2],
    /// Where the quoted packet starts.
    pub quoted: usize,
    /// The quoted IPv4 header and the ports' word.
    pub q: [u32; 7],
    /// The quote's TTL, protocol and checksum word, as bytes.
    pub qb: [u8; 4],
    /// The quote's protocol (TCP or UDP).
    pub p: u8,
    /// The quote's ports' word, as bytes.
    pub pb: [u8; 4],
    /// The quote's source port (network byte order).
    pub sport: u16,
    /// The quote's destination port (network byte order).
    pub dport: u16,
}

impl Error4 {
    /// Reads the error whose IPv4 header is at `l3` and ICMP header at `l4`; XDP_PASS for
    /// IPv4 options (outside or quoted) or a quote of another protocol than TCP or UDP.
    #[inline(always)]
    pub fn read(ctx: &XdpContext, l3: usize, l4: usize) -> Result<Error4, u32> {
        if l4 != l3 + 20 {
            return Err(XDP_PASS);
        }
        let outer = read::<[u32; 5]>(ctx, l3)?;
        let icmp = read::<[u16; 2]>(ctx, l4)?;
        let quoted = l4 + 8;
        let q = read::<[u32; 7]>(ctx, quoted)?;
        let qb = q[2].to_ne_bytes();
        let p = qb[1];
        if q[0].to_ne_bytes()[0] != 0x45 || (p != proto::TCP && p != proto::UDP) {
            return Err(XDP_PASS);
        }
        // Addressed to the quoted packet's sender.
        if outer[4] != q[3] {
            return Err(XDP_PASS);
        }
        let pb = q[5].to_ne_bytes();
        Ok(Error4 {
            outer,
            icmp,
            quoted,
            q,
            qb,
            p,
            pb,
            sport: u16::from_ne_bytes([pb[0], pb[1]]),
            dport: u16::from_ne_bytes([pb[2], pb[3]]),
        })
    }
}

/// The fixed offsets of an ICMPv6 error without VLAN tag or extension headers (outside or
/// quoted; constants keep the functions within the BPF stack): its IPv6 header, its ICMPv6
/// header, the quoted packet.
pub const L3_6: usize = 14;
/// See [`L3_6`].
pub const L4_6: usize = L3_6 + 40;
/// See [`L3_6`].
pub const Q_6: usize = L4_6 + 8;

/// What an ICMPv6 error quotes: the quoted packet's protocol (TCP or UDP), addresses and
/// ports (network byte order), the error addressed to the quoted packet's sender. Inside
/// ([`v6`]) and outside ([`nat_icmp_in::v6`]) errors read it so.
pub struct Error6 {
    /// The quote's protocol.
    pub p: u8,
    /// The quote's source address.
    pub src: [u32; 4],
    /// The quote's destination address.
    pub dst: [u32; 4],
    /// The quote's source port.
    pub sport: u16,
    /// The quote's destination port.
    pub dport: u16,
}

impl Error6 {
    /// Reads the error whose IPv6 header is at `l3` and ICMPv6 header at `l4`; XDP_PASS at
    /// other offsets than [`L3_6`] and [`L4_6`], or for a quote of another protocol than TCP
    /// or UDP, or not from the error's destination.
    #[inline(always)]
    pub fn read(ctx: &XdpContext, l3: usize, l4: usize) -> Result<Error6, u32> {
        if l3 != L3_6 || l4 != L4_6 {
            return Err(XDP_PASS);
        }
        let q1 = read::<u32>(ctx, Q_6 + 4)?.to_ne_bytes();
        let p = q1[2];
        if read::<u32>(ctx, Q_6)?.to_ne_bytes()[0] >> 4 != 6 || (p != proto::TCP && p != proto::UDP)
        {
            return Err(XDP_PASS);
        }
        let src = read::<[u32; 4]>(ctx, Q_6 + 8)?;
        let dst = read::<[u32; 4]>(ctx, Q_6 + 24)?;
        let pb = read::<u32>(ctx, Q_6 + 40)?.to_ne_bytes();
        if read::<[u32; 4]>(ctx, L3_6 + 24)? != src {
            return Err(XDP_PASS);
        }
        Ok(Error6 {
            p,
            src,
            dst,
            sport: u16::from_ne_bytes([pb[0], pb[1]]),
            dport: u16::from_ne_bytes([pb[2], pb[3]]),
        })
    }
}

/// An ICMP error (IPv4). A call of its own (BPF-to-BPF), as [`v6`]: the program's stack does
/// not hold both.
#[inline(never)]
fn v4(ctx: &XdpContext, ingress: u32, l3: usize, l4: usize) -> Result<u32, u32> {
    let Error4 {
        mut outer,
        mut icmp,
        quoted,
        mut q,
        qb,
        p,
        pb,
        sport,
        dport,
    } = Error4::read(ctx, l3, l4)?;
    let client = q[3];
    let real = q[4];
    // The quoted packet's reply, as the reply table holds the flow.
    let key = FlowKey {
        src: Addr::from_v4_wire(real),
        dst: Addr::from_v4_wire(client),
        sport_be: dport,
        dport_be: sport,
        proto: p,
        _pad0: 0,
        _pad1: 0,
    };
    let (_, dest, v) = conntrack::reply_of(&key).ok_or(XDP_PASS)?;
    let ob = outer[2].to_ne_bytes();
    if ob[0] <= 1 {
        // The TTL would run out: the kernel's.
        return Err(XDP_PASS);
    }
    let b0 = outer[0].to_ne_bytes();
    let len = u16::from_be_bytes([b0[2], b0[3]]) as usize;
    let (rc, fib) = fib::lookup(ctx, ingress, true, IPPROTO_ICMP, &v.vip, &key.dst, len, 0);
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        return Err(XDP_PASS);
    }
    let vip = v.vip.words[3];

    // The quote: destination VIP:port, its header checksum.
    let addr = words32(!real) + words32(vip);
    let qc = u16::from_ne_bytes([qb[2], qb[3]]);
    let new_qc = finish((!qc) as u64 + addr);
    let nq = new_qc.to_ne_bytes();
    q[2] = u32::from_ne_bytes([qb[0], qb[1], nq[0], nq[1]]);
    q[4] = vip;
    let vp = v.vport_be.to_ne_bytes();
    q[5] = u32::from_ne_bytes([pb[0], pb[1], vp[0], vp[1]]);
    // The ICMP checksum covers the quote.
    let delta = addr + (!qc) as u64 + new_qc as u64 + (!dport) as u64 + v.vport_be as u64;
    icmp[1] = finish((!icmp[1]) as u64 + delta);
    // The outer header: from the VIP, TTL one less.
    let old_tp = u16::from_ne_bytes([ob[0], ob[1]]);
    let new_tp = word(ob[0] - 1, ob[1]);
    let oc = u16::from_ne_bytes([ob[2], ob[3]]);
    let osum = words32(!outer[3]) + words32(vip) + (!old_tp) as u64 + new_tp as u64;
    let nc = finish((!oc) as u64 + osum).to_ne_bytes();
    outer[2] = u32::from_ne_bytes([ob[0] - 1, ob[1], nc[0], nc[1]]);
    outer[3] = vip;
    headers::write(ctx, quoted, q)?;
    headers::write(ctx, l4, icmp)?;
    headers::write(ctx, l3, outer)?;
    fib::write_macs(ctx, &fib)?;
    stats::replied(dest.service, v.dest, (ctx.data_end() - ctx.data()) as u64);
    Ok(fib::send(ingress, &fib))
}

/// The same for an ICMPv6 error (no VLAN tag, no extension headers, outside or quoted: the
/// offsets are constants, which keeps the function within the BPF stack): the outer source
/// and the quote's destination become the VIP, its port the VIP's, the hop limit one less;
/// the ICMPv6 checksum, which covers the pseudo-header too, updated incrementally.
#[inline(never)]
fn v6(ctx: &XdpContext, ingress: u32, l3: usize, l4: usize) -> Result<u32, u32> {
    let Error6 {
        p,
        src: client,
        dst: real,
        sport,
        dport,
    } = Error6::read(ctx, l3, l4)?;
    let key = FlowKey {
        src: Addr { words: real },
        dst: Addr { words: client },
        sport_be: dport,
        dport_be: sport,
        proto: p,
        _pad0: 0,
        _pad1: 0,
    };
    let (_, dest, v) = conntrack::reply_of(&key).ok_or(XDP_PASS)?;
    let ob = read::<u32>(ctx, L3_6 + 4)?.to_ne_bytes();
    if ob[3] <= 1 {
        return Err(XDP_PASS);
    }
    let len = u16::from_be_bytes([ob[0], ob[1]]) as usize + 40;
    let (rc, fib) = fib::lookup(
        ctx,
        ingress,
        false,
        IPPROTO_ICMPV6,
        &v.vip,
        &key.dst,
        len,
        0,
    );
    if rc != BPF_FIB_LKUP_RET_SUCCESS as i64 {
        return Err(XDP_PASS);
    }
    let src = read::<[u32; 4]>(ctx, L3_6 + 8)?;
    let vip = v.vip.words;
    let mut delta = (!dport) as u64 + v.vport_be as u64;
    for i in 0..4 {
        // The quote's destination, and the pseudo-header's source.
        delta += words32(!real[i]) + words32(!src[i]) + 2 * words32(vip[i]);
    }
    let c = read::<u16>(ctx, L4_6 + 2)?;
    let vp = v.vport_be.to_ne_bytes();
    headers::write(ctx, Q_6 + 24, vip)?;
    let sp = sport.to_ne_bytes();
    headers::write(ctx, Q_6 + 40, [sp[0], sp[1], vp[0], vp[1]])?;
    headers::write(ctx, L4_6 + 2, finish((!c) as u64 + delta))?;
    headers::write(ctx, L3_6 + 4, [ob[0], ob[1], ob[2], ob[3] - 1])?;
    headers::write(ctx, L3_6 + 8, vip)?;
    fib::write_macs(ctx, &fib)?;
    stats::replied(dest.service, v.dest, (ctx.data_end() - ctx.data()) as u64);
    Ok(fib::send(ingress, &fib))
}
