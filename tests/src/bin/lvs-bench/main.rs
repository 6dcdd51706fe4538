//! `cargo xtask bench`: the balancer's cost per packet beside the floor program, measured in
//! one run with BPF_PROG_TEST_RUN.
//!
//! Three programs run on the same kind of frame (Ethernet, IPv4, TCP), each `repeat` times per
//! round, rounds interleaved so that any drift of the machine hits all of them alike:
//! - floor: parse, one hash lookup, MAC rewrite, XDP_TX (`lvs_floor`);
//! - established: `lvs_xdp` on an ACK of a flow already in the connection table;
//! - retransmitted SYN: `lvs_xdp` on a SYN repeated (after its first run the flow is in
//!   SYN_RECV, where a SYN stays on its real, as in IPVS: a lookup and a state check, no
//!   scheduling). What a new connection costs is the fresh 5-tuples' figure below.
//!
//! The median of the rounds is printed, with the ratio to the floor, and the fastest round's
//! (these first lines and the warm lines of the forwarding methods, see [`warm_lines`]).
//! Then SYNs of fresh 5-tuples, each run once, beside the floor on known flows run the same
//! way: first into the nearly empty table, then into a full one (every way of every bucket
//! written beforehand, so each new flow evicts one), at the default table size (4,194,304
//! flows); then the same full-table line at 16,777,216 flows.
//!
//! Also: new flows on `wlc` services of 8, 64 and 1,024 reals.
//!
//! Then established flows of each forwarding method, warm, as the first lines' established
//! flow is (one frame, `repeat` runs a round, the flow's bucket in the cache): direct routing,
//! a tunnelled service (`ipip`: the tail call to `lvs_tunnel`, its next hop from the next-hop
//! cache, the outer header; IPv4 in IPv4, and IPv6 in IPv6 on an IPv6 VIP) and a NATed one
//! (`masq`), both directions (the client's ACK: the
//! tail call to `lvs_nat`, next hop, translation; the real's: a reply-table lookup, the tail
//! call to `lvs_nat_reply`, the connection-table lookup, next hop, translation). These are the
//! lines issue 12's targets read against. A repeated run sees the frame as the run before
//! left it (encapsulated, or translated), so each of these programs, the floor included, runs
//! behind a restoring wrapper that puts the frame back first and tail-calls it; the
//! wrapper's cost is measured in front of the pass program and taken off (see
//! [`warm_lines`]).
//!
//! Then the same methods cold: each ACK of 1,000 flows run once (repeat 1), beside the floor
//! on known flows run the same way, so that each run meets a connection-table bucket out of
//! the cache (and pays the test run's call, measured with the pass program and taken off):
//! direct routing first, what the tunnel's and NAT's cold lines read against, then the tunnel
//! and NAT both ways, each also with the next-hop cache's generation bumped before each run so
//! that each asks the FIB (`FIB each time`). The benchmark runs in a network namespace of its
//! own whose FIB has a route to the tunnelled reals (through a veth, to a router with a
//! permanent neighbour entry), with forwarding on, as the FIB helper needs.
//!
//! Then, behind a wrapper that gives each run a new 5-tuple (`flood.rs`): established flows
//! whose buckets are out of the cache (a sixteenth of the table's flows opened, then their
//! ACKs in turn), and after each full-table line (both sizes) new flows into that full table
//! with the code and the small maps warm (the DR service, the `mh` one with its mid-flow
//! misses, and the `wlc` ones), as on a
//! director taking many new connections a second. The cold lines above pay besides for the
//! code and every map coming back after the test run's call. `LVS_BENCH_FRESH=N` runs only
//! these at a table of N flows (for a profile; `LVS_BENCH_CASE` picks cases by name).
//!
//! The code: `setup.rs` (the data plane, its services and frames), `tunnel_nat.rs` (the
//! namespace and services of the tunnel and NAT lines), `measure.rs` (how a program is timed),
//! `warm.rs` and `cold.rs` (the lines of each forwarding method, warm and cold), `flood.rs`
//! (new flows and cold buckets behind the fresh wrapper), this file (the order of the lines).

mod cold;
mod flood;
mod measure;
mod setup;
mod tunnel_nat;
mod warm;

use anyhow::Result;
use lvs::config::TableSizes;
use lvs_common::limits::CT_WAYS;
use lvs_tests::{
    packet::{ACK, Frame, SYN},
    xdp::pin_to_one_cpu,
};

use crate::{cold::*, flood::*, measure::*, setup::*, tunnel_nat::*, warm::*};

fn main() -> Result<()> {
    let repeat: u32 = std::env::var("LVS_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // LVS_BENCH_ROUNDS: more rounds (with a smaller LVS_BENCH_REPEAT) for a steadier fastest
    // round on a noisy machine.
    let rounds: u32 = std::env::var("LVS_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(7);
    pin_to_one_cpu();
    tunnel_netns()?;

    // LVS_BENCH_FRESH=N: only the lines behind the fresh wrapper (`flood.rs`), at a table of
    // N flows (the default size if N is not a number), to profile them.
    if let Ok(flows) = std::env::var("LVS_BENCH_FRESH") {
        let mut setup = setup(TableSizes {
            connections: flows.parse().unwrap_or(TableSizes::default().connections),
            ..TableSizes::default()
        })?;
        let next = cold_buckets_line(&mut setup, rounds)?;
        fill_conntrack(&mut setup.dp, setup.first_real, setup.first_generation)?;
        let what = format!("a full table of {} flows", setup.table.buckets() * CT_WAYS);
        fresh_warm_lines(&mut setup, &what, rounds, repeat, next)?;
        return Ok(());
    }

    let mut setup = setup(TableSizes::default())?;
    let syn = Frame::tcp(CLIENT, 40000, VIP, 80, SYN).build();
    let ack = Frame::tcp(CLIENT, 40000, VIP, 80, ACK).build();
    // LVS_BENCH_WARM=1: only the warm lines of the forwarding methods, for a quick look.
    if std::env::var_os("LVS_BENCH_WARM").is_some() {
        let (_, _, balancer) = programs(&mut setup.dp)?;
        ns_per_packet(balancer, &syn, 1)?;
        return warm_lines(&mut setup, rounds, repeat);
    }
    let ((f, ff), (e, ef), (n, nf), overhead, fo, no) = {
        let programs = programs(&mut setup.dp)?;
        let (_, floor, balancer) = programs;
        // Put the flow in the connection table.
        ns_per_packet(balancer, &syn, 1)?;
        let (mut f, mut e, mut n) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            f.push(ns_per_packet(floor, &ack, repeat)?);
            e.push(ns_per_packet(balancer, &ack, repeat)?);
            n.push(ns_per_packet(balancer, &syn, repeat)?);
        }
        let (overhead, fo, no) = measure_fresh(programs, 80, 1, rounds, repeat)?;
        // The median of the rounds and the fastest (the round the rest of the machine
        // disturbed least, as in the warm lines).
        let both = |v: Vec<f64>| (fastest(&v), median(v));
        let ((ff, f), (ef, e), (nf, n)) = (both(f), both(e), both(n));
        ((f, ff), (e, ef), (n, nf), overhead, fo, no)
    };
    // New flows on the wlc services (rounds 100.., into the nearly empty table).
    let mut wlc_figures = Vec::new();
    for (k, &(port, n)) in WLC_SIZES.iter().enumerate() {
        let first = 100 + k as u32 * rounds;
        let (_, wfo, wno) = measure_fresh(programs(&mut setup.dp)?, port, first, rounds, repeat)?;
        wlc_figures.push((n, wfo, wno));
    }
    println!(
        "XDP cost per packet, BPF_PROG_TEST_RUN, {repeat} repeats x {rounds} rounds (median), one CPU; connection table of {} flows (the default)",
        setup.table.buckets() * CT_WAYS
    );
    println!(
        "{:<34} {:>8} {:>10} {:>8} {:>10}",
        "program", "ns/pkt", "vs floor", "fastest", "vs floor"
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x {:>8.1} {:>9.2}x",
        "floor (parse, 1 lookup, rewrite)", f, 1.0, ff, 1.0
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x {:>8.1} {:>9.2}x   (target <= 1.0x)",
        "lvs established flow (ACK)",
        e,
        e / f,
        ef,
        ef / ff
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x {:>8.1} {:>9.2}x",
        "lvs retransmitted SYN",
        n,
        n / f,
        nf,
        nf / ff
    );
    println!(
        "\nfresh 5-tuples, each run once ({FRESH} x {rounds} rounds; {overhead:.0} ns timer overhead taken off)"
    );
    println!("{:<34} {:>8.1} {:>9.2}x", "floor (known flows)", fo, 1.0);
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "lvs new flow (SYN, not in table)",
        no,
        no / fo
    );
    println!(
        "\nnew flows on a wlc service (SYN, not in table; up to {} candidates compared, larger \
         services by windows)",
        lvs_common::conns::SCAN_MAX
    );
    for (n, wfo, wno) in wlc_figures {
        let target = if n == 8 { "   (target <= 2.5x)" } else { "" };
        println!("{:<34} {:>8.1} {:>9.2}x", "floor (known flows)", wfo, 1.0);
        println!(
            "{:<34} {:>8.1} {:>9.2}x{target}",
            format!("lvs new flow, wlc of {n} reals"),
            wno,
            wno / wfo
        );
    }
    warm_lines(&mut setup, rounds, repeat)?;
    dr_once_line(&mut setup, rounds, repeat)?;
    tunnel_line(&mut setup, rounds, repeat)?;
    nat_lines(&mut setup, rounds, repeat)?;
    own_traffic_lines(&mut setup, rounds, repeat)?;
    cold_buckets_line(&mut setup, rounds)?;
    full_table_line(&mut setup, rounds, repeat)?;
    drop(setup);
    // The same line at 16,777,216 flows (1 GiB).
    let mut big = setup_big()?;
    full_table_line(&mut big, rounds, repeat)?;
    Ok(())
}
