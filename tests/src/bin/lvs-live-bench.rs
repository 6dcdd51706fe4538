//! `cargo xtask bench`: lvs end to end, frames really transmitted, beside a bare XDP_TX
//! reflector (issue 10's live-frames benchmark).
//!
//! A lab of two namespaces joined by a veth pair with two queues a side: the director's end
//! runs lvs's balancer (attached natively, from this process, with a connection table of the
//! default size), the sink's end a counter that counts every frame arriving and drops it (its
//! XDP program also makes veth deliver XDP_TX). Frames are made with BPF_PROG_TEST_RUN in
//! live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`, aya's `TestRunAttrs::xdp_live_frames`)
//! with the director's end as the ingress interface: what a program answers XDP_TX is sent
//! out of it, and what is counted is what the sink received.
//!
//! Programs compared, in interleaved rounds, on 1 CPU and on 2 CPUs at once (a thread pinned
//! per CPU): lvs against a bare reflector (swap MACs, XDP_TX), on an established flow (an ACK)
//! and on a SYN of a fresh 5-tuple per frame into a full table. Live frames reuse one frame,
//! so the fresh 5-tuple comes from a wrapper that rewrites the source (address and port, from
//! a per-CPU counter and the CPU's number, with the IPv4 ID moved the other way so the header
//! checksum holds) and tail-calls the program measured through a program array (one wrapper
//! for lvs, one for the reflector). A program attached nowhere pays an RCU grace period per
//! test-run call, so every program measured is attached: lvs on the director's end, the others
//! in generic mode on spare veths that stay down.
//!
//! The reflector, the counter and the wrappers are a few eBPF instructions each, assembled
//! here and loaded with bpf(2): benchmark code stays out of the product's object.

use std::{
    net::{Ipv4Addr, SocketAddr},
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd, RawFd},
    process::Command,
    sync::{Arc, Barrier},
    time::Instant,
};

use anyhow::{Context as _, Result, ensure};
use lvs::{
    config::{Protocol, Scheduler, TableSizes},
    dataplane::{AttachMode, Dataplane, ServicePlan, conntrack::table_map},
};
use lvs_common::{
    conntrack::{ct_state, seen_word},
    limits::CT_WAYS,
};
use lvs_tests::{
    bpf::{
        ADD_K, AND_K, CALL, EXIT, FN_MAP_LOOKUP, FN_SMP_PROCESSOR_ID, FN_TAIL_CALL, Insn, JEQ_K,
        JGT_X, LDX_DW, LDX_H, LDX_W, LSH_K, MOV_K, MOV_X, OR_X, RSH_K, ST_W, STX_DW, STX_H, STX_W,
        SUB_X, bpf, fd, insn, ld_map, map_create, map_update, percpu_sum, prog_load, words,
    },
    packet::{ACK, DIRECTOR_MAC, Frame, SYN, fix_ipv4_checksum},
    xdp::fill_table_image,
};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
/// The fresh sources: 11.0.x.y (x.y set by the wrapper).
const FRESH_BASE: Ipv4Addr = Ipv4Addr::new(11, 0, 0, 0);

// ---- eBPF programs ------------------------------------------------------------------------

/// Swap the Ethernet addresses, XDP_TX (XDP_PASS if the frame is shorter than a header).
fn bare_prog() -> Vec<Insn> {
    vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(LDX_W, 3, 1, 4, 0),
        insn(MOV_X, 4, 2, 0, 0),
        insn(ADD_K, 4, 0, 0, 14),
        insn(JGT_X, 4, 3, 10, 0),
        insn(LDX_W, 5, 2, 0, 0),
        insn(LDX_H, 6, 2, 4, 0),
        insn(LDX_W, 7, 2, 6, 0),
        insn(LDX_H, 8, 2, 10, 0),
        insn(STX_W, 2, 7, 0, 0),
        insn(STX_H, 2, 8, 4, 0),
        insn(STX_W, 2, 5, 6, 0),
        insn(STX_H, 2, 6, 10, 0),
        insn(MOV_K, 0, 0, 0, 3),
        insn(EXIT, 0, 0, 0, 0),
        insn(MOV_K, 0, 0, 0, 2),
        insn(EXIT, 0, 0, 0, 0),
    ]
}

/// Count the frame in slot 0 of the per-CPU array `count`, XDP_DROP.
fn counter_prog(count: RawFd) -> Vec<Insn> {
    let mut p = vec![insn(ST_W, 10, 0, -4, 0)];
    p.extend(ld_map(1, count));
    p.extend([
        insn(MOV_X, 2, 10, 0, 0),
        insn(ADD_K, 2, 0, 0, -4),
        insn(CALL, 0, 0, 0, FN_MAP_LOOKUP),
        insn(JEQ_K, 0, 0, 3, 0),
        insn(LDX_DW, 1, 0, 0, 0),
        insn(ADD_K, 1, 0, 0, 1),
        insn(STX_DW, 0, 1, 0, 0),
        insn(MOV_K, 0, 0, 0, 1),
        insn(EXIT, 0, 0, 0, 0),
    ]);
    p
}

/// Give the frame a fresh 5-tuple, then tail-call slot 0 of `progs`. The per-CPU counter
/// `seq` (slot 0) gives the TCP source port (its low 16 bits) and the source address's last
/// two bytes (7 more bits, and the CPU's number above them); the IPv4 ID, 0xffff in the
/// template, takes the same amount off, so the header checksum holds.
fn vary_prog(seq: RawFd, progs: RawFd) -> Vec<Insn> {
    let mut p = vec![insn(MOV_X, 6, 1, 0, 0), insn(ST_W, 10, 0, -4, 0)];
    p.extend(ld_map(1, seq));
    p.extend([
        insn(MOV_X, 2, 10, 0, 0),
        insn(ADD_K, 2, 0, 0, -4),
        insn(CALL, 0, 0, 0, FN_MAP_LOOKUP),
        insn(JEQ_K, 0, 0, 25, 0), // -> pass
        insn(LDX_DW, 7, 0, 0, 0),
        insn(ADD_K, 7, 0, 0, 1),
        insn(STX_DW, 0, 7, 0, 0),
        insn(CALL, 0, 0, 0, FN_SMP_PROCESSOR_ID),
        insn(MOV_X, 8, 0, 0, 0),
        insn(LDX_W, 2, 6, 0, 0),
        insn(LDX_W, 3, 6, 4, 0),
        insn(MOV_X, 4, 2, 0, 0),
        insn(ADD_K, 4, 0, 0, 54),
        insn(JGT_X, 4, 3, 15, 0), // -> pass
        insn(STX_H, 2, 7, 34, 0),
        insn(MOV_X, 5, 7, 0, 0),
        insn(RSH_K, 5, 0, 0, 16),
        insn(AND_K, 5, 0, 0, 0x7f),
        insn(LSH_K, 8, 0, 0, 7),
        insn(OR_X, 5, 8, 0, 0),
        insn(STX_H, 2, 5, 28, 0),
        insn(MOV_K, 4, 0, 0, 0xffff),
        insn(SUB_X, 4, 5, 0, 0),
        insn(STX_H, 2, 4, 18, 0),
        insn(MOV_X, 1, 6, 0, 0),
    ]);
    p.extend(ld_map(2, progs));
    p.extend([
        insn(MOV_K, 3, 0, 0, 0),
        insn(CALL, 0, 0, 0, FN_TAIL_CALL),
        insn(MOV_K, 0, 0, 0, 2), // pass:
        insn(EXIT, 0, 0, 0, 0),
    ]);
    p
}

// ---- bpf(2) --------------------------------------------------------------------------------

/// Attaches `prog` to the interface `ifindex` (of this thread's namespace) in generic (`skb`)
/// or native mode with a BPF link (detached when the link's fd closes).
fn xdp_link(prog: RawFd, ifindex: u32, generic: bool) -> Result<OwnedFd> {
    const BPF_XDP: u32 = 37;
    let flags = if generic { 2 } else { 4 };
    let mut attr = words(&[prog as u32, ifindex, BPF_XDP, flags]);
    Ok(fd(bpf(28, &mut attr).context("attaching")?))
}

/// One plain test run of `prog` on `frame` received on `ifindex`: the verdict.
fn plain_run(prog: RawFd, frame: &[u8], ifindex: u32) -> Result<u32> {
    let ctx = [0u32, frame.len() as u32, 0, ifindex, 0, 0];
    let mut out = vec![0u8; frame.len() + 256];
    let mut attr = [0u64; 16];
    attr[0] = prog as u32 as u64;
    attr[1] = frame.len() as u64 | ((out.len() as u64) << 32);
    attr[2] = frame.as_ptr() as u64;
    attr[3] = out.as_mut_ptr() as u64;
    attr[4] = 1;
    attr[5] = std::mem::size_of_val(&ctx) as u64;
    attr[6] = ctx.as_ptr() as u64;
    bpf(10, &mut attr)?;
    Ok((attr[0] >> 32) as u32)
}

/// One live-frames test run: `repeat` copies of `frame` through `prog`, received on
/// `ifindex`.
fn live_run(prog: RawFd, frame: &[u8], ifindex: u32, repeat: u32) -> Result<()> {
    const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress.
    let ctx = [0u32, frame.len() as u32, 0, ifindex, 0, 0];
    let mut attr = [0u64; 16];
    attr[0] = prog as u32 as u64; // prog_fd, retval
    attr[1] = frame.len() as u64; // data_size_in, data_size_out
    attr[2] = frame.as_ptr() as u64;
    attr[3] = 0; // data_out
    attr[4] = u64::from(repeat); // repeat, duration
    attr[5] = (std::mem::size_of_val(&ctx) as u64) & 0xffff_ffff; // ctx_size_in, ctx_size_out
    attr[6] = ctx.as_ptr() as u64;
    attr[7] = 0; // ctx_out
    attr[8] = u64::from(BPF_F_TEST_XDP_LIVE_FRAMES); // flags, cpu
    attr[9] = 64; // batch_size
    bpf(10, &mut attr)?;
    Ok(())
}

// ---- the lab -------------------------------------------------------------------------------

fn sh(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    ensure!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The namespaces, removed on drop.
struct Lab {
    dir: String,
    sink: String,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.dir]);
        let _ = sh(&["ip", "netns", "del", &self.sink]);
    }
}

fn lab(prefix: &str) -> Result<Lab> {
    let lab = Lab {
        dir: format!("{prefix}-dir"),
        sink: format!("{prefix}-sink"),
    };
    let (d0, p0) = (format!("{prefix}d0"), format!("{prefix}p0"));
    sh(&["ip", "netns", "add", &lab.dir])?;
    sh(&["ip", "netns", "add", &lab.sink])?;
    sh(&[
        "ip",
        "link",
        "add",
        &d0,
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
        "type",
        "veth",
        "peer",
        "name",
        &p0,
        "numtxqueues",
        "2",
        "numrxqueues",
        "2",
    ])?;
    sh(&["ip", "link", "set", &d0, "netns", &lab.dir])?;
    sh(&["ip", "link", "set", &p0, "netns", &lab.sink])?;
    let mac = DIRECTOR_MAC
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    for (ns, dev) in [(&lab.dir, &d0), (&lab.sink, &p0)] {
        sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
    }
    sh(&["ip", "-n", &lab.dir, "link", "set", &d0, "address", &mac])?;
    // Spare interfaces, down, where the programs measured besides lvs are parked.
    for i in 0..4 {
        let (a, b) = (format!("{prefix}x{i}"), format!("{prefix}y{i}"));
        sh(&[
            "ip", "-n", &lab.dir, "link", "add", &a, "type", "veth", "peer", "name", &b,
        ])?;
    }
    Ok(lab)
}

fn enter(ns: &str) -> Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
    Ok(())
}

fn ifindex(name: &str) -> Result<u32> {
    Ok(nix::net::if_::if_nametoindex(name)?)
}

fn pin_to(cpu: usize) -> Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

// ---- measuring -----------------------------------------------------------------------------

/// A program measured: its fd and its frame.
#[derive(Clone)]
struct Case {
    prog: RawFd,
    frame: Vec<u8>,
}

/// Frames a second delivered to the sink while `cpus` threads (one per CPU) each send
/// `repeat` frames of `case`.
fn rate(
    case: &Case,
    cpus: usize,
    repeat: u32,
    ifindex: u32,
    count: RawFd,
    ncpu: usize,
) -> Result<f64> {
    let before = percpu_sum(count, ncpu)?;
    let barrier = Arc::new(Barrier::new(cpus + 1));
    let threads: Vec<_> = (0..cpus)
        .map(|cpu| {
            let (case, barrier) = (case.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<()> {
                pin_to(cpu)?;
                barrier.wait();
                live_run(case.prog, &case.frame, ifindex, repeat)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let delivered = percpu_sum(count, ncpu)? - before;
    Ok(delivered as f64 / secs)
}

use lvs_tests::bench::median;

fn main() -> Result<()> {
    let repeat: u32 = std::env::var("LVS_LIVE_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let rounds: usize = std::env::var("LVS_LIVE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let ncpu = aya::util::nr_cpus().map_err(|(p, e)| anyhow::anyhow!("{p}: {e}"))?;
    let online = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))?;
    let cpus = (0..ncpu)
        .filter(|&c| online.is_set(c).unwrap_or(false))
        .count()
        .min(2);
    let prefix = format!("lb{}", std::process::id() % 100_000);
    let lab = lab(&prefix)?;
    let (d0, p0) = (format!("{prefix}d0"), format!("{prefix}p0"));

    // The sink's counter, attached natively on the sink's end.
    let count = map_create(6, 8, 1)?; // PERCPU_ARRAY
    let counter = prog_load("counter", &counter_prog(count.as_raw_fd()))?;
    let sink_link = {
        let (sink, p0, counter) = (lab.sink.clone(), p0.clone(), counter.as_raw_fd());
        std::thread::spawn(move || -> Result<OwnedFd> {
            enter(&sink)?;
            xdp_link(counter, ifindex(&p0)?, false)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("attaching the counter"))??
    };

    // Everything else from the director's namespace (threads started from here inherit it).
    enter(&lab.dir)?;
    let d0_index = ifindex(&d0)?;
    // LVS_LIVE_TABLE: another table size (flows), for a quick look.
    let sizes = match std::env::var("LVS_LIVE_TABLE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(connections) => TableSizes {
            connections,
            ..TableSizes::default()
        },
        None => TableSizes::default(),
    };
    let mut dp = Dataplane::load_sized(sizes).context("loading lvs")?;
    let reals = lvs_tests::bench::reals_3_2_1(d0_index);
    // Live frames are recycled with the program's writes in them (addressed to a real): the
    // reals' MACs are taken too.
    let mut own = vec![DIRECTOR_MAC];
    own.extend((1..=3u8).map(|i| [2, 0xaa, 0, 0, 0, i]));
    dp.set_own_macs(&own)?;
    let plan = ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP.into(), 80),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: reals,
        fallback: None,
        aliases: Vec::new(),
    };
    dp.tables.apply(std::slice::from_ref(&plan))?;
    dp.attach(&d0, AttachMode::Native)
        .context("attaching lvs natively")?;
    let (first_real, generation) = lvs_tests::bench::first_real_slot(&dp, &plan)?;

    // A full table (the default size), as in the per-packet benchmark.
    let table_flows = {
        let map = table_map(dp.ebpf())?;
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)?;
        let seen = std::time::Duration::from(now).as_nanos() as u64 - 1_000_000_000;
        fill_table_image(
            map,
            first_real,
            generation,
            seen_word(seen, ct_state::ESTABLISHED),
        );
        map.info()?.max_entries() as usize * CT_WAYS
    };

    let lvs_fd = dp.balancer()?.fd()?.as_fd().as_raw_fd();
    let bare = prog_load("bare", &bare_prog())?;
    let seq = map_create(6, 8, 1)?;
    let progs_lvs = map_create(3, 4, 1)?; // PROG_ARRAY
    let progs_bare = map_create(3, 4, 1)?;
    map_update(progs_lvs.as_raw_fd(), 0, &lvs_fd.to_ne_bytes())?;
    map_update(progs_bare.as_raw_fd(), 0, &bare.as_raw_fd().to_ne_bytes())?;
    let vary_lvs = prog_load(
        "vary_lvs",
        &vary_prog(seq.as_raw_fd(), progs_lvs.as_raw_fd()),
    )?;
    let vary_bare = prog_load(
        "vary_bare",
        &vary_prog(seq.as_raw_fd(), progs_bare.as_raw_fd()),
    )?;
    let _parked: Vec<OwnedFd> = [&bare, &vary_lvs, &vary_bare]
        .iter()
        .enumerate()
        .map(|(i, p)| xdp_link(p.as_raw_fd(), ifindex(&format!("{prefix}x{i}"))?, true))
        .collect::<Result<_>>()?;

    // Frames: an ACK of a flow lvs knows (its SYN run once first, plainly), and the SYN
    // template for fresh 5-tuples (ID 0xffff, checksum for it).
    let ack = Frame::tcp(CLIENT.into(), 40000, VIP.into(), 80, ACK).build();
    let syn_once = Frame::tcp(CLIENT.into(), 40000, VIP.into(), 80, SYN).build();
    if std::env::var_os("LVS_LIVE_DEBUG").is_some() {
        eprintln!("on lo: {}", plain_run(lvs_fd, &syn_once, 1)?);
        eprintln!("on d0: {}", plain_run(lvs_fd, &syn_once, d0_index)?);
        eprintln!("ifindex d0 {d0_index}");
    }
    let verdict = plain_run(lvs_fd, &syn_once, d0_index)?;
    ensure!(
        verdict == 3,
        "lvs answered {verdict} to the SYN, not XDP_TX"
    );
    let mut syn = Frame::tcp(FRESH_BASE.into(), 1, VIP.into(), 80, SYN).build();
    syn[18] = 0xff;
    syn[19] = 0xff;
    fix_ipv4_checksum(&mut syn, 14);
    for (name, prog, frame) in [
        ("bare", bare.as_raw_fd(), &ack),
        ("vary_lvs", vary_lvs.as_raw_fd(), &syn),
        ("vary_bare", vary_bare.as_raw_fd(), &syn),
    ] {
        let verdict = plain_run(prog, frame, d0_index)?;
        ensure!(verdict == 3, "{name} answered {verdict}, not XDP_TX");
    }

    let cases = [
        (
            "established flow (ACK)",
            Case {
                prog: lvs_fd,
                frame: ack.clone(),
            },
            Case {
                prog: bare.as_raw_fd(),
                frame: ack.clone(),
            },
        ),
        (
            "fresh SYN into a full table",
            Case {
                prog: vary_lvs.as_raw_fd(),
                frame: syn.clone(),
            },
            Case {
                prog: vary_bare.as_raw_fd(),
                frame: syn.clone(),
            },
        ),
    ];
    // Each: per CPU count, (lvs, bare) rates per round.
    let mut results = vec![vec![(Vec::new(), Vec::new()); 2]; cases.len()];
    for _ in 0..rounds {
        for (c, (_, l, b)) in cases.iter().enumerate() {
            for (k, n) in [1usize, cpus].into_iter().enumerate() {
                let lr = rate(l, n, repeat, d0_index, count.as_raw_fd(), ncpu)?;
                let br = rate(b, n, repeat, d0_index, count.as_raw_fd(), ncpu)?;
                results[c][k].0.push(lr);
                results[c][k].1.push(br);
            }
        }
    }
    println!(
        "\nlvs end to end, frames really transmitted (BPF_PROG_TEST_RUN live frames on a veth, counted at the peer), {repeat} frames a run, {rounds} interleaved rounds, median; connection table of {} flows",
        table_flows
    );
    println!(
        "{:<30} {:>5} {:>10} {:>10} {:>9}",
        "case", "CPUs", "lvs Mpps", "bare Mpps", "lvs/bare"
    );
    for (c, (name, _, _)) in cases.iter().enumerate() {
        for (k, n) in [1usize, cpus].into_iter().enumerate() {
            let (l, b) = &results[c][k];
            let ratios: Vec<f64> = l.iter().zip(b).map(|(l, b)| l / b).collect();
            let target = match (c, k) {
                (0, _) => "(target >= 0.9x)",
                _ => "(target >= 0.6x)",
            };
            println!(
                "{:<30} {:>5} {:>10.2} {:>10.2} {:>8.2}x   {target}",
                name,
                n,
                median(l.clone()) / 1e6,
                median(b.clone()) / 1e6,
                median(ratios)
            );
        }
        let (l1, b1) = &results[c][0];
        let (l2, b2) = &results[c][1];
        let ls: Vec<f64> = l2.iter().zip(l1).map(|(a, b)| a / b).collect();
        let bs: Vec<f64> = b2.iter().zip(b1).map(|(a, b)| a / b).collect();
        println!(
            "{:<30} scaling {cpus} CPUs over 1: lvs {:.2}x, bare {:.2}x (target: within 5%)",
            "",
            median(ls),
            median(bs)
        );
    }
    drop(sink_link);
    drop(dp);
    drop(lab);
    Ok(())
}
