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
//! The median of the rounds is printed, with the ratio to the floor. Then SYNs of fresh
//! 5-tuples, each run once, beside the floor on known flows run the same way: first into the
//! nearly empty table, then into a full one (every way of every bucket written beforehand, so
//! each new flow evicts one), at the default table size (4,194,304 flows); then the same
//! full-table line at 16,777,216 flows.
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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context as _, Result, ensure};
use aya::{
    maps::HashMap,
    programs::{TestRun, TestRunOptions, Xdp},
};
use lvs::dataplane::conntrack::{Table, table_map};
use lvs::{
    config::{Protocol, Scheduler, TableSizes},
    dataplane::{
        Dataplane, DestPlan, ServicePlan, Target, loader::load_program, next_hop::NextHopGeneration,
    },
};
use lvs_common::{
    FlowKey,
    conntrack::{ct_state, seen_word},
    limits::{CT_WAYS, program_names},
    service::proto,
};
use lvs_tests::{
    bpf::{self, Restoring},
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    xdp::{TEST_RUN_IFINDEX, fill_table_image, flow_key, pin_to_one_cpu},
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

/// Enters a network namespace of its own (this thread, and the commands it runs) with a route
/// to 10.98.0.0/24 (and fd00:98::/64) through a router on a veth, and forwarding on: the FIB
/// the tunnel asks. The
/// NATed reals (10.99.0.11-13) are on the veth's subnet, and their clients (100.80.0.0/16)
/// behind the router.
fn tunnel_netns() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(NEWNET)")?;
    let script = "ip link set lo up
        ip link add t0 type veth peer name t1
        ip link set t1 up
        ip link set t0 up
        ip addr add 10.99.0.1/24 dev t0
        ip neigh add 10.99.0.254 lladdr 02:00:00:00:00:fe dev t0 nud permanent
        ip route add 10.98.0.0/24 via 10.99.0.254
        ip neigh add 10.99.0.11 lladdr 02:00:00:00:00:11 dev t0 nud permanent
        ip neigh add 10.99.0.12 lladdr 02:00:00:00:00:12 dev t0 nud permanent
        ip neigh add 10.99.0.13 lladdr 02:00:00:00:00:13 dev t0 nud permanent
        ip route add 100.80.0.0/16 via 10.99.0.254
        ip -6 addr add fd00:99::1/64 dev t0 nodad
        ip -6 neigh add fd00:99::fe lladdr 02:00:00:00:00:fe dev t0 nud permanent
        ip -6 route add fd00:98::/64 via fd00:99::fe
        sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.lo.forwarding=1
        sysctl -qw net.ipv6.conf.all.forwarding=1";
    let st = std::process::Command::new("sh")
        .args(["-ec", script])
        .status()
        .context("sh")?;
    ensure!(st.success(), "setting up the tunnel's namespace failed");
    Ok(())
}

/// Port of the tunnelled service on the VIP.
const TUNNEL_PORT: u16 = 84;

/// The tunnelled service: port [`TUNNEL_PORT`] of the VIP, reals 10.98.0.11-13 weighted 3:2:1.
fn tunnel_plan() -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP, TUNNEL_PORT),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: (1..=3u8)
            .map(|i| DestPlan {
                addr: IpAddr::V4(Ipv4Addr::new(10, 98, 0, 10 + i)),
                weight: u32::from(4 - i),
                table_weight: u32::from(4 - i),
                target: Target::Tunnel { src: None },
            })
            .collect(),
        fallback: None,
        aliases: Vec::new(),
    }
}

/// The IPv6 VIP of the IPv6 tunnelled service.
const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 0x100));

/// The IPv6 tunnelled service: port [`TUNNEL_PORT`] of [`VIP6`], reals fd00:98::11-13
/// weighted 3:2:1 (IPv6 in IPv6).
fn tunnel_plan6() -> ServicePlan {
    let mut plan = tunnel_plan();
    plan.vip = SocketAddr::new(VIP6, TUNNEL_PORT);
    for (i, d) in plan.dests.iter_mut().enumerate() {
        d.addr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x98, 0, 0, 0, 0, 0, 0x11 + i as u16));
    }
    plan
}

/// Port of the NATed service on the VIP.
const NAT_PORT: u16 = 85;
/// The NATed reals' port.
const NAT_REAL_PORT: u16 = 8080;

/// The NATed service: port [`NAT_PORT`] of the VIP, reals 10.99.0.11-13 (port
/// [`NAT_REAL_PORT`]) weighted 3:2:1.
fn nat_plan() -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP, NAT_PORT),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: (1..=3u8)
            .map(|i| DestPlan {
                addr: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 10 + i)),
                weight: u32::from(4 - i),
                table_weight: u32::from(4 - i),
                target: Target::Masq {
                    port: NAT_REAL_PORT,
                },
            })
            .collect(),
        fallback: None,
        aliases: Vec::new(),
    }
}

/// Runs `prog` once on `frame`, wanting `verdict`: the frame it leaves.
fn frame_after(prog: &Xdp, frame: &[u8], verdict: u32) -> Result<Vec<u8>> {
    let mut out = vec![0u8; frame.len() + 64];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..TestRunOptions::new()
    })?;
    ensure!(
        r.return_value == verdict,
        "program returned {} instead of {verdict}",
        r.return_value
    );
    out.truncate(r.data_size_out as usize);
    Ok(out)
}

/// NATed established flows, both directions: each of 1,000 flows scheduled by a SYN first,
/// then its ACK to the VIP and its real's ACK to the client each run once per round (a
/// translated frame is no longer one to translate); prints the lines.
fn nat_lines(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
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

/// A case of [`warm_lines`]: a program on one frame, run through the restoring wrapper.
struct WarmCase {
    name: &'static str,
    wrapped: Restoring,
    frame: Vec<u8>,
    verdict: u32,
    /// The destination slot whose counter must grow by one a run: (slot, reply direction).
    counted: Option<(u32, bool)>,
}

/// The packets and bytes a destination slot counted: forwarded, or (`reply`) replied.
fn counted(setup: &Setup, (dest, reply): (u32, bool)) -> Result<u64> {
    let c = setup.dp.tables.stats().dest(dest)?;
    Ok(if reply { c.out_packets } else { c.packets })
}

/// Every drop the balancer counted, all reasons.
fn all_drops(setup: &Setup) -> Result<u64> {
    let stats = setup.dp.tables.stats();
    let mut sum = 0;
    for reason in lvs_common::DropReason::ALL {
        sum += stats.drops(reason)?;
    }
    Ok(sum)
}

/// Established flows of each forwarding method, warm: each frame run `repeat` times per round
/// (as the first lines' established flow is), rounds interleaved, medians.
///
/// A tunnelled or NATed frame cannot simply be run again: BPF_PROG_TEST_RUN runs each repeat
/// on the frame as the run before left it (encapsulated, or already translated). So every
/// program here, the floor included, runs behind the restoring wrapper
/// ([`lvs_tests::bpf::restore_prog`]: the frame's start and bytes put back as they were, then a
/// tail call to the program). The wrapper's own cost (and the tail call's) is that of the
/// wrapper in front of the pass program, taken off every line; the ratios are to the floor
/// measured the same way. Each case is checked before it is measured (a plain run's verdict
/// and output bytes are those of a wrapped run) and while it is (the verdict of every call,
/// no drop counted, and its destination counting one packet a run: forwarded, or for the NAT
/// reply replied), so that no line is an early XDP_PASS.
fn warm_lines(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
    let ack = Frame::tcp(CLIENT, 40000, VIP, 80, ACK).build();
    let tun_src = IpAddr::V4(Ipv4Addr::new(100, 66, 0, 1));
    let nat_src = IpAddr::V4(Ipv4Addr::new(100, 80, 0, 1));
    let tunnelled = Frame::tcp(tun_src, 30000, VIP, TUNNEL_PORT, ACK).build();
    let tun_src6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x66, 0, 0, 0, 0, 0, 1));
    let tunnelled6 = Frame::tcp(tun_src6, 30000, VIP6, TUNNEL_PORT, ACK).build();
    let nat_in = Frame::tcp(nat_src, 30000, VIP, NAT_PORT, ACK).build();
    let (tun_dest, tun_dest6, nat_out, nat_dest) = {
        let (_, _, balancer) = programs(&mut setup.dp)?;
        let syn = Frame::tcp(tun_src, 30000, VIP, TUNNEL_PORT, SYN).build();
        let out = frame_after(balancer, &syn, XDP_REDIRECT)?;
        // The outer header's destination: the real.
        let tun_real = IpAddr::V4(Ipv4Addr::new(out[30], out[31], out[32], out[33]));
        let syn = Frame::tcp(tun_src6, 30000, VIP6, TUNNEL_PORT, SYN).build();
        let out = frame_after(balancer, &syn, XDP_REDIRECT)?;
        let outer_dst: [u8; 16] = out[38..54].try_into()?;
        let tun_real6 = IpAddr::V6(Ipv6Addr::from(outer_dst));
        let syn = Frame::tcp(nat_src, 30000, VIP, NAT_PORT, SYN).build();
        let out = frame_after(balancer, &syn, XDP_REDIRECT)?;
        let nat_real = IpAddr::V4(Ipv4Addr::new(out[30], out[31], out[32], out[33]));
        let mut reply = Frame::tcp(nat_real, NAT_REAL_PORT, nat_src, 30000, ACK);
        reply.src_mac = [2, 0, 0, 0, 0, out[33]];
        let tun = tunnel_plan();
        let tun6 = tunnel_plan6();
        let nat = nat_plan();
        (
            setup
                .dp
                .tables
                .dest_id(&tun.key(), tun_real)
                .context("tunnelled real's slot")?,
            setup
                .dp
                .tables
                .dest_id(&tun6.key(), tun_real6)
                .context("IPv6 tunnelled real's slot")?,
            reply.build(),
            setup
                .dp
                .tables
                .dest_id(&nat.key(), nat_real)
                .context("NATed real's slot")?,
        )
    };
    let cases = {
        let ebpf = setup.dp.ebpf();
        let fd = |name: &'static str| -> Result<std::os::fd::RawFd> {
            use std::os::fd::{AsFd as _, AsRawFd as _};
            let prog: &Xdp = ebpf.program(name).context(name)?.try_into()?;
            Ok(prog.fd()?.as_fd().as_raw_fd())
        };
        let (pass, floor, lvs) = (
            fd(program_names::PASS)?,
            fd(program_names::FLOOR)?,
            fd(program_names::BALANCER)?,
        );
        let case = |name, target, frame: &Vec<u8>, verdict, counted| -> Result<WarmCase> {
            Ok(WarmCase {
                name,
                wrapped: Restoring::new(name, target, frame)?,
                frame: frame.clone(),
                verdict,
                counted,
            })
        };
        [
            case("wrapper (pass)", pass, &ack, XDP_PASS, None)?,
            case("floor", floor, &ack, XDP_TX, None)?,
            case(
                "lvs DR established (ACK)",
                lvs,
                &ack,
                XDP_TX,
                Some((setup.first_real, false)),
            )?,
            case(
                "lvs tunnelled (ACK)",
                lvs,
                &tunnelled,
                XDP_REDIRECT,
                Some((tun_dest, false)),
            )?,
            case(
                "lvs tunnelled IPv6 (ACK)",
                lvs,
                &tunnelled6,
                XDP_REDIRECT,
                Some((tun_dest6, false)),
            )?,
            case(
                "lvs NATed client->real (ACK)",
                lvs,
                &nat_in,
                XDP_REDIRECT,
                Some((nat_dest, false)),
            )?,
            case(
                "lvs NATed real->client (ACK)",
                lvs,
                &nat_out,
                XDP_REDIRECT,
                Some((nat_dest, true)),
            )?,
        ]
    };
    // Before measuring: a wrapped run, and a second one on its output (the wrapper restores
    // it), leave what a plain run of the program leaves.
    {
        let (pass, floor, balancer) = programs(&mut setup.dp)?;
        for (c, plain) in cases.iter().zip([
            pass, floor, balancer, balancer, balancer, balancer, balancer,
        ]) {
            let want = frame_after(plain, &c.frame, c.verdict)?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&c.wrapped.prog);
            let once = bpf::test_run(fd, &c.frame, 1)?;
            let again = bpf::test_run(fd, &once.out, 1)?;
            for r in [&once, &again] {
                ensure!(
                    r.verdict == c.verdict && r.out == want,
                    "{}: the wrapped run gave {} and {:02x?}, a plain run {} and {want:02x?}",
                    c.name,
                    r.verdict,
                    r.out,
                    c.verdict
                );
            }
        }
    }
    let drops = all_drops(setup)?;
    let mut times = vec![Vec::new(); cases.len()];
    // LVS_BENCH_WARM=text: only the cases whose name holds it, besides the wrapper and the
    // floor (to profile one); `1` (as the quick look in `main` is asked for) is every case.
    let only = std::env::var("LVS_BENCH_WARM")
        .ok()
        .filter(|v| v != "1")
        .unwrap_or_default();
    for _ in 0..rounds {
        for (i, (c, t)) in cases.iter().zip(times.iter_mut()).enumerate() {
            if i >= 2 && !c.name.contains(only.as_str()) {
                t.push(f64::NAN);
                continue;
            }
            let before = c.counted.map(|k| counted(setup, k)).transpose()?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&c.wrapped.prog);
            let r = bpf::test_run(fd, &c.frame, repeat)?;
            ensure!(
                r.verdict == c.verdict,
                "{}: {} instead of {}",
                c.name,
                r.verdict,
                c.verdict
            );
            if let (Some(k), Some(before)) = (c.counted, before) {
                let runs = counted(setup, k)? - before;
                ensure!(
                    runs == u64::from(repeat),
                    "{}: {runs} packets counted for {repeat} runs",
                    c.name
                );
            }
            t.push(f64::from(r.duration_ns));
        }
    }
    ensure!(
        all_drops(setup)? == drops,
        "the balancer dropped packets while measured"
    );
    let wrapper = median(times[0].clone());
    let floor: Vec<f64> = times[1].iter().map(|t| t - wrapper).collect();
    let floor_median = median(floor.clone());
    println!(
        "\nestablished flows of each forwarding method, warm: each frame {repeat} times a round, put back as it was before each run by a restoring wrapper that tail-calls the program ({rounds} interleaved rounds, median; the wrapper's {wrapper:.1} ns, measured in front of the pass program, taken off)"
    );
    println!(
        "{:<34} {:>8} {:>10} {:>17}",
        "program", "ns/pkt", "vs floor", "(rounds min-max)"
    );
    println!("{:<34} {:>8.1} {:>9.2}x", "floor", floor_median, 1.0);
    for (c, t) in cases.iter().zip(&times).skip(2) {
        // A case left out by LVS_BENCH_WARM's filter.
        if t.iter().all(|t| t.is_nan()) {
            continue;
        }
        let net: Vec<f64> = t.iter().map(|t| t - wrapper).collect();
        // The ratio of each round to that round's floor, for the spread.
        let ratios: Vec<f64> = net.iter().zip(&floor).map(|(n, f)| n / f).collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        let target = if c.counted.is_some_and(|(d, _)| d == setup.first_real) {
            "(target <= 1.0x)"
        } else {
            "(target <= 1.5x)"
        };
        let m = median(net);
        println!(
            "{:<34} {:>8.1} {:>9.2}x   ({lo:.2}-{hi:.2}x)   {target}",
            c.name,
            m,
            m / floor_median
        );
    }
    Ok(())
}

/// The director's own traffic (a packet to no service that is no NATed flow's reply either):
/// what the balancer costs it with a NATed real in the tables (one reply-table lookup) and
/// without one (the agent's NAT flag off: no lookup), side by side in one run.
fn own_traffic_lines(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
    let own = Frame::tcp(
        CLIENT,
        40000,
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        22,
        ACK,
    )
    .build();
    let ack = Frame::tcp(CLIENT, 40000, VIP, 80, ACK).build();
    let without_nat: Vec<ServicePlan> = setup
        .plans
        .iter()
        .filter(|p| p.vip.port() != NAT_PORT)
        .cloned()
        .collect();
    let (mut fl, mut with, mut without) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        setup.dp.tables.apply(&setup.plans)?;
        let (_, floor, balancer) = programs(&mut setup.dp)?;
        fl.push(ns_per_packet(floor, &ack, repeat)?);
        with.push(ns_with_verdict(balancer, &own, repeat, XDP_PASS)?);
        setup.dp.tables.apply(&without_nat)?;
        let (_, _, balancer) = programs(&mut setup.dp)?;
        without.push(ns_with_verdict(balancer, &own, repeat, XDP_PASS)?);
    }
    setup.dp.tables.apply(&setup.plans)?;
    let (f, w, wo) = (median(fl), median(with), median(without));
    println!("\nthe director's own traffic (no service, no NATed flow's reply: XDP_PASS)");
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "floor (parse, 1 lookup, rewrite)", f, 1.0
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "lvs, a NATed real in the tables",
        w,
        w / f
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "lvs, no NATed real (flag off)",
        wo,
        wo / f
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
fn dr_once_line(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
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
fn tunnel_line(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
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

fn ns_per_packet(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<f64> {
    ns_with_verdict(prog, frame, repeat, XDP_TX)
}

fn ns_with_verdict(prog: &Xdp, frame: &[u8], repeat: u32, verdict: u32) -> Result<f64> {
    let mut out = vec![0u8; frame.len() + 64];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat,
        ..TestRunOptions::new()
    })?;
    ensure!(
        r.return_value == verdict,
        "program returned {} instead of {verdict}",
        r.return_value
    );
    Ok(r.duration.as_nanos() as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The three programs on frames each run once, interleaved: the mean ns of the pass program
/// on `known`, of the floor on `known` and of the balancer on `new`.
fn once_each(
    (pass, floor, balancer): (&Xdp, &Xdp, &Xdp),
    known: &[Vec<u8>],
    new: &[Vec<u8>],
) -> Result<(f64, f64, f64)> {
    let (mut ps, mut fs, mut ns) = (0.0, 0.0, 0.0);
    for (k, n) in known.iter().zip(new) {
        ps += ns_with_verdict(pass, k, 1, XDP_PASS)?;
        fs += ns_per_packet(floor, k, 1)?;
        ns += ns_per_packet(balancer, n, 1)?;
    }
    let count = known.len() as f64;
    Ok((ps / count, fs / count, ns / count))
}

/// Writes every way of every bucket of the connection table of `dp` (see
/// [`fill_table_image`]): flows to `dest` (with `generation`), last seen a second ago.
fn fill_conntrack(dp: &mut Dataplane, dest: u32, generation: u32) -> Result<()> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)?;
    let seen = std::time::Duration::from(now).as_nanos() as u64 - 1_000_000_000;
    fill_table_image(
        table_map(dp.ebpf())?,
        dest,
        generation,
        seen_word(seen, ct_state::ESTABLISHED),
    );
    Ok(())
}

/// A data plane with the benchmark's service and the floor's flows, and what the benchmark
/// needs of it.
struct Setup {
    dp: Dataplane,
    /// The services written (the NAT one last).
    plans: Vec<ServicePlan>,
    /// The next-hop cache's generation, bumped to measure its misses.
    generation: NextHopGeneration,
    first_real: u32,
    first_generation: u32,
    table: Table,
}

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10));
/// Fresh flows a round.
const FRESH: u32 = 1000;

fn fresh_src(round: u32, i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (round << 16) | i))
}

fn fresh(round: u32, i: u32, flags: u8) -> Vec<u8> {
    fresh_to(80, round, i, flags)
}

fn fresh_to(port: u16, round: u32, i: u32, flags: u8) -> Vec<u8> {
    Frame::tcp(fresh_src(round, i), 10000 + i as u16, VIP, port, flags).build()
}

/// `wlc` services of 8, 64 and 1,024 reals, on ports 81, 82 and 83 of the VIP: (port, reals).
const WLC_SIZES: [(u16, u32); 3] = [(81, 8), (82, 64), (83, 1024)];

/// The `wlc` services of [`WLC_SIZES`].
fn wlc_plans() -> Vec<ServicePlan> {
    WLC_SIZES
        .iter()
        .map(|&(port, n)| ServicePlan {
            one_packet: false,
            vip: SocketAddr::new(VIP, port),
            protocol: Protocol::Tcp,
            scheduler: Scheduler::Wlc,
            persistence: None,
            dests: (0..n)
                .map(|i| DestPlan {
                    addr: IpAddr::V4(Ipv4Addr::from(0x0a01_0000 | (u32::from(port) << 11) | i)),
                    weight: 1 + i % 3,
                    table_weight: 1 + i % 3,
                    target: Target::Remote {
                        mac: [2, 0xaa, 0, 0, 0, 1],
                        src_mac: DIRECTOR_MAC,
                        ifindex: TEST_RUN_IFINDEX,
                    },
                })
                .collect(),
            fallback: None,
            aliases: Vec::new(),
        })
        .collect()
}

fn setup(sizes: TableSizes) -> Result<Setup> {
    let reals = (1..=3u8)
        .map(|i| DestPlan {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i)),
            weight: u32::from(4 - i),
            table_weight: u32::from(4 - i),
            target: Target::Remote {
                mac: [2, 0xaa, 0, 0, 0, i],
                src_mac: DIRECTOR_MAC,
                ifindex: TEST_RUN_IFINDEX,
            },
        })
        .collect();
    let mut dp = Dataplane::load_sized(sizes).context("loading the balancer")?;
    // The frames are addressed to the director, as the agent's own MAC would have them. A
    // repeated run sees the frame as the run before left it, addressed to a real: the reals'
    // MACs are taken too, after the director's (so a repeated packet costs up to three more
    // comparisons than a real one does).
    let mut own = vec![DIRECTOR_MAC];
    own.extend((1..=3u8).map(|i| [2, 0xaa, 0, 0, 0, i]));
    dp.set_own_macs(&own)
        .context("setting the director's MAC")?;
    let plan = ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP, 80),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: reals,
        fallback: None,
        aliases: Vec::new(),
    };
    let mut all_plans = vec![plan.clone()];
    all_plans.extend(wlc_plans());
    all_plans.push(tunnel_plan());
    all_plans.push(tunnel_plan6());
    all_plans.push(nat_plan());
    dp.tables.apply(&all_plans)?;
    let first_real = dp
        .tables
        .dest_id(&plan.key(), plan.dests[0].addr)
        .context("first real's slot")?;
    let first_generation = dp
        .tables
        .dest_generation(first_real)
        .context("first real's generation")?;
    let table = Table::map(table_map(dp.ebpf())?, false)?;
    let ebpf = dp.ebpf();
    load_program(ebpf, program_names::FLOOR)?;
    load_program(ebpf, program_names::PASS)?;
    // The floor knows the benchmark's flow and the 1,000 flows of round 0.
    let mut flows: HashMap<_, FlowKey, [u8; 12]> = HashMap::try_from(
        ebpf.map_mut(program_names::FLOOR_MAP)
            .context("floor map")?,
    )?;
    let floor_key = |src: IpAddr, sport: u16| flow_key(src, sport, VIP, 80, proto::TCP);
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&[2, 0xaa, 0, 0, 0, 1]);
    macs[6..].copy_from_slice(&DIRECTOR_MAC);
    flows.insert(floor_key(CLIENT, 40000), macs, 0)?;
    for i in 0..FRESH {
        flows.insert(floor_key(fresh_src(0, i), 10000 + i as u16), macs, 0)?;
    }
    Ok(Setup {
        generation: NextHopGeneration::of(&mut dp)?,
        dp,
        plans: all_plans,
        first_real,
        first_generation,
        table,
    })
}

/// The (pass, floor, balancer) programs of `dp`.
fn programs(dp: &mut Dataplane) -> Result<(&Xdp, &Xdp, &Xdp)> {
    let ebpf = dp.ebpf();
    let program =
        |name: &'static str| -> Result<&Xdp> { Ok(ebpf.program(name).context(name)?.try_into()?) };
    Ok((
        program(program_names::PASS)?,
        program(program_names::FLOOR)?,
        program(program_names::BALANCER)?,
    ))
}

/// New flows whose 5-tuple really is not in the table: each frame once (repeat 1), fresh
/// source addresses every round (`rounds` from `first_round`). One run of a program is too
/// short for the timer, so the cost of a run of the pass program measured the same way
/// (minus its cost at `repeat` repeats) is taken off both sides: what remains is each
/// program's own time. (overhead, floor, lvs) ns.
fn measure_fresh(
    programs: (&Xdp, &Xdp, &Xdp),
    port: u16,
    first_round: u32,
    rounds: u32,
    repeat: u32,
) -> Result<(f64, f64, f64)> {
    let ack = Frame::tcp(CLIENT, 40000, VIP, 80, ACK).build();
    let pass_long = ns_with_verdict(programs.0, &ack, repeat, XDP_PASS)?;
    let known: Vec<Vec<u8>> = (0..FRESH).map(|i| fresh(0, i, ACK)).collect();
    let (mut po, mut fo, mut no) = (Vec::new(), Vec::new(), Vec::new());
    for round in first_round..first_round + rounds {
        let new: Vec<Vec<u8>> = (0..FRESH).map(|i| fresh_to(port, round, i, SYN)).collect();
        let (p, f, n) = once_each(programs, &known, &new)?;
        po.push(p);
        fo.push(f);
        no.push(n);
    }
    let overhead = median(po) - pass_long;
    Ok((overhead, median(fo) - overhead, median(no) - overhead))
}

/// Fills the table of `setup` and measures fresh 5-tuples into it; prints the line.
fn full_table_line(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
    fill_conntrack(&mut setup.dp, setup.first_real, setup.first_generation)?;
    let flows = setup.table.buckets() * CT_WAYS;
    let (overhead, fo, no) =
        measure_fresh(programs(&mut setup.dp)?, 80, 1 + rounds, rounds, repeat)?;
    println!(
        "\nthe same into a full table of {flows} flows: every way written first, each new flow evicts one ({overhead:.0} ns taken off)"
    );
    println!("{:<34} {:>8.1} {:>9.2}x", "floor (known flows)", fo, 1.0);
    println!(
        "{:<34} {:>8.1} {:>9.2}x   (target <= 2x)",
        "lvs new flow (SYN, full table)",
        no,
        no / fo
    );
    Ok(())
}

fn main() -> Result<()> {
    let repeat: u32 = std::env::var("LVS_BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rounds = 7;
    pin_to_one_cpu();
    tunnel_netns()?;

    let mut setup = setup(TableSizes::default())?;
    let syn = Frame::tcp(CLIENT, 40000, VIP, 80, SYN).build();
    let ack = Frame::tcp(CLIENT, 40000, VIP, 80, ACK).build();
    // LVS_BENCH_WARM=1: only the warm lines of the forwarding methods, for a quick look.
    if std::env::var_os("LVS_BENCH_WARM").is_some() {
        let (_, _, balancer) = programs(&mut setup.dp)?;
        ns_per_packet(balancer, &syn, 1)?;
        return warm_lines(&mut setup, rounds, repeat);
    }
    let (f, e, n, overhead, fo, no) = {
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
        (median(f), median(e), median(n), overhead, fo, no)
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
    println!("{:<34} {:>8} {:>10}", "program", "ns/pkt", "vs floor");
    println!(
        "{:<34} {:>8.1} {:>9.2}x",
        "floor (parse, 1 lookup, rewrite)", f, 1.0
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x   (target <= 1.0x)",
        "lvs established flow (ACK)",
        e,
        e / f
    );
    println!("{:<34} {:>8.1} {:>9.2}x", "lvs retransmitted SYN", n, n / f);
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
    full_table_line(&mut setup, rounds, repeat)?;
    drop(setup);
    // The same line at 16,777,216 flows (1 GiB).
    let mut big = setup_big()?;
    full_table_line(&mut big, rounds, repeat)?;
    Ok(())
}

/// The benchmark's data plane with a table of 16,777,216 flows.
fn setup_big() -> Result<Setup> {
    setup(TableSizes {
        connections: 1 << 24,
        ..TableSizes::default()
    })
}
