//! The cold lines: established flows each run once (a connection-table bucket out of the
//! cache), direct routing, tunnelled and NATed both ways, with and without the next-hop
//! cache (`FIB each time`).

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Result;
use aya::programs::Xdp;
use lvs::dataplane::next_hop::NextHopGeneration;
use lvs_tests::packet::{ACK, Frame, SYN};

use crate::{measure::*, setup::*, tunnel_nat::*};

/// NATed established flows, both directions: each of 1,000 flows scheduled by a SYN first,
/// then its ACK to the VIP and its real's ACK to the client each run once per round (a
/// translated frame is no longer one to translate); prints the lines.
pub fn nat_lines(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
    let programs = programs(&mut setup.dp)?;
    let (pass, _, balancer) = programs;
    let ack = Frame::tcp(CLIENT, 40000, VIP, 80, ACK).build();
    let pass_long = ns_with_verdict(pass, &ack, repeat, XDP_PASS)?;
    let known: Vec<Vec<u8>> = (0..FRESH).map(|i| fresh(0, i, ACK)).collect();
    let client = |i: u32| IpAddr::V4(Ipv4Addr::from(0x6450_0000 | i));
    let (mut forward, mut replies) = (Vec::new(), Vec::new());
    for i in 0..FRESH {
        let port = 20000 + i as u16;
        let syn = Frame::tcp(client(i), port, VIP, NAT_PORT, SYN).build();
        let out = frame_after(balancer, &syn, XDP_REDIRECT)?;
        let real = IpAddr::V4(Ipv4Addr::new(out[30], out[31], out[32], out[33]));
        forward.push(Frame::tcp(client(i), port, VIP, NAT_PORT, ACK).build());
        let mut reply = Frame::tcp(real, NAT_REAL_PORT, client(i), port, ACK);
        reply.src_mac = [2, 0, 0, 0, 0, out[33]];
        replies.push(reply.build());
    }
    let (mut po, mut fo, mut to, mut ro) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut tm, mut rm) = (Vec::new(), Vec::new());
    // The rounds that miss the cache after those that hit it: a bump empties it.
    for _ in 0..rounds {
        let (p, f, t) = once_each_tunnelled(programs, &known, &forward, None)?;
        let (p2, f2, r) = once_each_tunnelled(programs, &known, &replies, None)?;
        po.push((p + p2) / 2.0);
        fo.push((f + f2) / 2.0);
        to.push(t);
        ro.push(r);
    }
    for _ in 0..rounds {
        let g = &mut setup.generation;
        let (p, f, t) = once_each_tunnelled(programs, &known, &forward, Some(g))?;
        let (p2, f2, r) = once_each_tunnelled(programs, &known, &replies, Some(g))?;
        po.push((p + p2) / 2.0);
        fo.push((f + f2) / 2.0);
        tm.push(t);
        rm.push(r);
    }
    let overhead = median(po) - pass_long;
    let (nf, nt, nr) = (
        median(fo) - overhead,
        median(to) - overhead,
        median(ro) - overhead,
    );
    let (ntm, nrm) = (median(tm) - overhead, median(rm) - overhead);
    println!(
        "
NATed established flows, cold (masq: tail call, next hop, addresses, ports, TTL and checksums), each run once ({FRESH} x {rounds} rounds; {overhead:.0} ns taken off)"
    );
    println!("{:<34} {:>8.1} {:>9.2}x", "floor (known flows)", nf, 1.0);
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "lvs NATed flow, client->real (ACK)",
        nt,
        nt / nf
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "lvs NATed flow, real->client (ACK)",
        nr,
        nr / nf
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x   (next-hop cache missed: FIB lookup)",
        "lvs NATed, client->real, FIB",
        ntm,
        ntm / nf
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x   (next-hop cache missed: FIB lookup)",
        "lvs NATed, real->client, FIB",
        nrm,
        nrm / nf
    );
    Ok(())
}

/// Mean ns of each program on frames run once: the pass program and the floor on `known`,
/// the balancer on `tunnelled` (encapsulated: XDP_REDIRECT to the veth). With `miss`, the
/// next-hop cache's generation is bumped before each run of the balancer (outside the time
/// measured), so each of its runs asks the FIB, as every packet did before the cache.
fn once_each_tunnelled(
    programs: (&Xdp, &Xdp, &Xdp),
    known: &[Vec<u8>],
    tunnelled: &[Vec<u8>],
    miss: Option<&mut NextHopGeneration>,
) -> Result<(f64, f64, f64)> {
    once_each_with(programs, known, tunnelled, XDP_REDIRECT, miss)
}

/// Mean ns of each program on frames run once: the pass program and the floor on `known`,
/// the balancer on `frames`, wanting `verdict` of it (`miss`: as in [`once_each_tunnelled`]).
fn once_each_with(
    (pass, floor, balancer): (&Xdp, &Xdp, &Xdp),
    known: &[Vec<u8>],
    frames: &[Vec<u8>],
    verdict: u32,
    mut miss: Option<&mut NextHopGeneration>,
) -> Result<(f64, f64, f64)> {
    let (mut ps, mut fs, mut ts) = (0.0, 0.0, 0.0);
    for (k, t) in known.iter().zip(frames) {
        ps += ns_with_verdict(pass, k, 1, XDP_PASS)?;
        fs += ns_per_packet(floor, k, 1)?;
        if let Some(g) = miss.as_mut() {
            g.bump()?;
        }
        ts += ns_with_verdict(balancer, t, 1, verdict)?;
    }
    let count = known.len() as f64;
    Ok((ps / count, fs / count, ts / count))
}

/// Direct-routing established flows measured as the tunnelled and NATed ones are (each ACK
/// run once; the flows of the floor's round 0, scheduled by a SYN first): what the balancer
/// costs a known flow run once, the tail call and the forwarding method's work aside.
pub fn dr_once_line(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
    let programs = programs(&mut setup.dp)?;
    let (pass, _, balancer) = programs;
    let ack = Frame::tcp(CLIENT, 40000, VIP, 80, ACK).build();
    let pass_long = ns_with_verdict(pass, &ack, repeat, XDP_PASS)?;
    let known: Vec<Vec<u8>> = (0..FRESH).map(|i| fresh(0, i, ACK)).collect();
    for i in 0..FRESH {
        ns_per_packet(balancer, &fresh(0, i, SYN), 1)?;
    }
    let (mut po, mut fo, mut eo) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (p, f, e) = once_each_with(programs, &known, &known, XDP_TX, None)?;
        po.push(p);
        fo.push(f);
        eo.push(e);
    }
    let overhead = median(po) - pass_long;
    let (df, de) = (median(fo) - overhead, median(eo) - overhead);
    println!(
        "\ndirect-routing established flows, cold: each run once as the tunnelled and NATed ones below ({FRESH} x {rounds} rounds; {overhead:.0} ns taken off)"
    );
    println!("{:<34} {:>8.1} {:>9.2}x", "floor (known flows)", df, 1.0);
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "lvs DR established flow (ACK)",
        de,
        de / df
    );
    Ok(())
}

/// Tunnelled established flows: each of 1,000 flows scheduled by a SYN first, then its ACK
/// run once per round; prints the line.
pub fn tunnel_line(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
    let programs = programs(&mut setup.dp)?;
    let (pass, _, balancer) = programs;
    let ack = Frame::tcp(CLIENT, 40000, VIP, 80, ACK).build();
    let pass_long = ns_with_verdict(pass, &ack, repeat, XDP_PASS)?;
    let known: Vec<Vec<u8>> = (0..FRESH).map(|i| fresh(0, i, ACK)).collect();
    let tunnel_src = |i: u32| IpAddr::V4(Ipv4Addr::from(0x6440_0000 | i));
    for i in 0..FRESH {
        let syn = Frame::tcp(tunnel_src(i), 20000 + i as u16, VIP, TUNNEL_PORT, SYN).build();
        ns_with_verdict(balancer, &syn, 1, XDP_REDIRECT)?;
    }
    let tunnelled: Vec<Vec<u8>> = (0..FRESH)
        .map(|i| Frame::tcp(tunnel_src(i), 20000 + i as u16, VIP, TUNNEL_PORT, ACK).build())
        .collect();
    let (mut po, mut fo, mut to, mut mo) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // The rounds that miss the cache after those that hit it: a bump empties it.
    for _ in 0..rounds {
        let (p, f, t) = once_each_tunnelled(programs, &known, &tunnelled, None)?;
        po.push(p);
        fo.push(f);
        to.push(t);
    }
    for _ in 0..rounds {
        let g = &mut setup.generation;
        let (p, f, m) = once_each_tunnelled(programs, &known, &tunnelled, Some(g))?;
        po.push(p);
        fo.push(f);
        mo.push(m);
    }
    let overhead = median(po) - pass_long;
    let (tf, tt, tm) = (
        median(fo) - overhead,
        median(to) - overhead,
        median(mo) - overhead,
    );
    println!(
        "\ntunnelled established flows, cold (ipip: tail call, next hop, outer header), each run once ({FRESH} x {rounds} rounds; {overhead:.0} ns taken off)"
    );
    println!("{:<34} {:>8.1} {:>9.2}x", "floor (known flows)", tf, 1.0);
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "lvs tunnelled flow (ACK)",
        tt,
        tt / tf
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x   (next-hop cache missed: FIB lookup)",
        "lvs tunnelled flow, FIB each time",
        tm,
        tm / tf
    );
    Ok(())
}
