//! The warm lines: established flows of each forwarding method run `repeat` times a round
//! behind the restoring wrapper (checked before and while measured), and the director's own
//! traffic with and without a NATed real in the tables.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Context as _, Result, ensure};
use lvs::dataplane::ServicePlan;
use lvs_tests::{
    bench::fastest,
    bpf::{self, Restoring},
    packet::{ACK, Frame, SYN},
};

use crate::{measure::*, setup::*, tunnel_nat::*};

/// A case of [`warm_lines`]: a program on one frame, run through the restoring wrapper.
struct WarmCase {
    name: &'static str,
    wrapped: Restoring,
    frame: Vec<u8>,
    verdict: u32,
    /// The destination slot whose counter must grow by one a run: (slot, reply direction).
    counted: Option<(u32, bool)>,
    /// The interface the frame is received on (its index), if not loopback: the one its
    /// route leaves by, for a one-armed director's lines (XDP_TX instead of a redirect).
    ingress: Option<u32>,
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

/// Established flows of each forwarding method, warm: each frame run `repeat` times per round (as
/// the first lines' established flow is), rounds interleaved, medians.
///
/// A tunnelled or NATed frame cannot simply be run again: BPF_PROG_TEST_RUN runs each repeat on the
/// frame as the run before left it (encapsulated, or already translated). So every program here,
/// the floor included, runs behind the restoring wrapper ([`lvs_tests::bpf::restore_prog`]: the
/// frame's start and bytes put back as they were, then a tail call to the program). The wrapper's
/// own cost (and the tail call's) is that of the wrapper in front of the pass program, taken off
/// every line; the ratios are to the floor measured the same way. Besides the medians, each line
/// prints its fastest round beside the floor's fastest (each less the wrapper's fastest): on a
/// virtual machine whose neighbours slow whole rounds down, the medians swing by a third from one
/// run to the next while the fastest rounds hold within a few nanoseconds. Each case is checked
/// before it is measured (a plain run's verdict and output bytes are those of a wrapped run) and
/// while it is (the verdict of every call, no drop counted, and its destination counting one packet
/// a run: forwarded, or for the NAT reply replied), so that no line is an early XDP_PASS.
///
/// The tunnel and NAT lines are measured twice: received on loopback, they leave by another
/// interface (`t0`: a redirect, as on a two-armed director); received on `t0`, the interface their
/// routes leave by, they leave by XDP_TX (a one-armed director).
pub fn warm_lines(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
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
        let (pass, floor, lvs) = program_fds(&mut setup.dp)?;
        let on = |ingress, name, target, frame: &Vec<u8>, verdict, counted| -> Result<WarmCase> {
            Ok(WarmCase {
                name,
                wrapped: Restoring::new(name, target, frame)?,
                frame: frame.clone(),
                verdict,
                counted,
                ingress,
            })
        };
        let case = |name, target, frame: &Vec<u8>, verdict, counted| {
            on(None, name, target, frame, verdict, counted)
        };
        // The tunnel's and NAT's routes leave by `t0` (`tunnel_nat.rs`): received there, the
        // director is one-armed.
        let arm = Some(lvs::dataplane::loader::interface_index("t0")?);
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
            on(
                arm,
                "lvs tunnelled, one-armed (ACK)",
                lvs,
                &tunnelled,
                XDP_TX,
                Some((tun_dest, false)),
            )?,
            on(
                arm,
                "lvs NATed c->r, one-armed (ACK)",
                lvs,
                &nat_in,
                XDP_TX,
                Some((nat_dest, false)),
            )?,
            on(
                arm,
                "lvs NATed r->c, one-armed (ACK)",
                lvs,
                &nat_out,
                XDP_TX,
                Some((nat_dest, true)),
            )?,
        ]
    };
    // Before measuring: a wrapped run, and a second one on its output (the wrapper restores
    // it), leave what a plain run of the program leaves.
    {
        let (pass, floor, balancer) = programs(&mut setup.dp)?;
        let plain = [pass, floor].into_iter().chain(std::iter::repeat(balancer));
        for (c, plain) in cases.iter().zip(plain) {
            let want = frame_after_on(plain, &c.frame, c.verdict, c.ingress)?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&c.wrapped.prog);
            let once = bpf::test_run_on(fd, &c.frame, 1, c.ingress)?;
            let again = bpf::test_run_on(fd, &once.out, 1, c.ingress)?;
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
            let r = bpf::test_run_on(fd, &c.frame, repeat, c.ingress)?;
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
    let wrapper_fastest = fastest(&times[0]);
    let floor: Vec<f64> = times[1].iter().map(|t| t - wrapper).collect();
    let floor_median = median(floor.clone());
    let floor_fastest = fastest(&times[1]) - wrapper_fastest;
    println!(
        "\nestablished flows of each forwarding method, warm: each frame {repeat} times a round, put back as it was before each run by a restoring wrapper that tail-calls the program ({rounds} interleaved rounds, median, and the fastest round; the wrapper's {wrapper:.1} ns (fastest {wrapper_fastest:.1}), measured in front of the pass program, taken off)"
    );
    println!(
        "{:<34} {:>8} {:>10} {:>17} {:>8} {:>10}",
        "program", "ns/pkt", "vs floor", "(rounds min-max)", "fastest", "vs floor"
    );
    println!(
        "{:<34} {:>8.1} {:>9.2}x {:>17} {:>8.1} {:>9.2}x",
        "floor", floor_median, 1.0, "", floor_fastest, 1.0
    );
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
        let f = fastest(t) - wrapper_fastest;
        println!(
            "{:<34} {:>8.1} {:>9.2}x {:>17} {:>8.1} {:>9.2}x   {target}",
            c.name,
            m,
            m / floor_median,
            format!("({lo:.2}-{hi:.2}x)"),
            f,
            f / floor_fastest
        );
    }
    Ok(())
}

/// The director's own traffic (a packet to no service that is no NATed flow's reply either):
/// what the balancer costs it with a NATed real in the tables and without one, side by side
/// in one run. NAT should add nothing: a reply is known by the connection table's reply way,
/// and nothing else is looked up for it.
pub fn own_traffic_lines(setup: &mut Setup, rounds: u32, repeat: u32) -> Result<()> {
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
    println!("{:<34} {:>8.1} {:>9.2}x", "lvs, no NATed real", wo, wo / f);
    Ok(())
}
