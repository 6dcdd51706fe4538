//! The data plane the benchmark measures: its services (one DR service, an `mh` one on the
//! same reals, `wlc` services of 8, 64 and 1,024 reals, the tunnel and NAT services), its programs, the frames of known and
//! fresh flows, and the connection table filled to its last way.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
};

use anyhow::{Context as _, Result};
use aya::{maps::HashMap, programs::Xdp};
use lvs::dataplane::conntrack::{Table, table_map};
use lvs::{
    config::{MhFlags, Protocol, Scheduler, TableSizes},
    dataplane::{
        Dataplane, DestPlan, ServicePlan, Target, loader::load_program, next_hop::NextHopGeneration,
    },
};
use lvs_common::{
    FlowKey,
    conntrack::{ct_state, seen_word},
    limits::program_names,
    service::proto,
};
use lvs_tests::{
    packet::{DIRECTOR_MAC, Frame},
    xdp::{TEST_RUN_IFINDEX, fill_table_image, flow_key},
};

use crate::tunnel_nat::*;

pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Writes every way of every bucket of the connection table of `dp` (see
/// [`fill_table_image`]): flows to `dest` (with `generation`), last seen a second ago.
pub fn fill_conntrack(dp: &mut Dataplane, dest: u32, generation: u32) -> Result<()> {
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
pub struct Setup {
    pub dp: Dataplane,
    /// The services written (the NAT one last).
    pub plans: Vec<ServicePlan>,
    /// The next-hop cache's generation, bumped to measure its misses.
    pub generation: NextHopGeneration,
    pub first_real: u32,
    pub first_generation: u32,
    pub table: Table,
}

pub const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
pub const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10));
/// Fresh flows a round.
pub const FRESH: u32 = 1000;

pub fn fresh_src(round: u32, i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (round << 16) | i))
}

pub fn fresh(round: u32, i: u32, flags: u8) -> Vec<u8> {
    fresh_to(80, round, i, flags)
}

pub fn fresh_to(port: u16, round: u32, i: u32, flags: u8) -> Vec<u8> {
    Frame::tcp(fresh_src(round, i), 10000 + i as u16, VIP, port, flags).build()
}

/// The port of the VIP's `mh` service (the DR service's 3 reals, 3:2:1; 84 and 85 are the
/// tunnel's and NAT's, `tunnel_nat.rs`).
pub const MH_PORT: u16 = 86;

/// `wlc` services of 8, 64 and 1,024 reals, on ports 81, 82 and 83 of the VIP: (port, reals).
pub const WLC_SIZES: [(u16, u32); 3] = [(81, 8), (82, 64), (83, 1024)];

/// The `wlc` services of [`WLC_SIZES`].
pub fn wlc_plans() -> Vec<ServicePlan> {
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

pub fn setup(sizes: TableSizes) -> Result<Setup> {
    let reals = lvs_tests::bench::reals_3_2_1(TEST_RUN_IFINDEX);
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
    let mh = ServicePlan {
        vip: SocketAddr::new(VIP, MH_PORT),
        scheduler: Scheduler::Mh(MhFlags::default()),
        ..plan.clone()
    };
    let mut all_plans = vec![plan.clone(), mh];
    all_plans.extend(wlc_plans());
    all_plans.push(tunnel_plan());
    all_plans.push(tunnel_plan6());
    all_plans.push(nat_plan());
    dp.tables.apply(&all_plans)?;
    let (first_real, first_generation) = lvs_tests::bench::first_real_slot(&dp, &plan)?;
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
pub fn programs(dp: &mut Dataplane) -> Result<(&Xdp, &Xdp, &Xdp)> {
    let ebpf = dp.ebpf();
    let program =
        |name: &'static str| -> Result<&Xdp> { Ok(ebpf.program(name).context(name)?.try_into()?) };
    Ok((
        program(program_names::PASS)?,
        program(program_names::FLOOR)?,
        program(program_names::BALANCER)?,
    ))
}

/// The file descriptors of the (pass, floor, balancer) programs of `dp`, for the wrappers
/// that tail-call them.
pub fn program_fds(dp: &mut Dataplane) -> Result<(RawFd, RawFd, RawFd)> {
    let (pass, floor, balancer) = programs(dp)?;
    let fd = |prog: &Xdp| -> Result<RawFd> { Ok(prog.fd()?.as_fd().as_raw_fd()) };
    Ok((fd(pass)?, fd(floor)?, fd(balancer)?))
}

/// The destination slots of the reals of `plan`, in its order.
pub fn dest_ids(setup: &Setup, plan: &ServicePlan) -> Result<Vec<u32>> {
    plan.dests
        .iter()
        .map(|d| setup.dp.tables.dest_id(&plan.key(), d.addr))
        .collect::<Option<Vec<u32>>>()
        .context("a real's slot")
}

/// The benchmark's data plane with a table of 16,777,216 flows.
pub fn setup_big() -> Result<Setup> {
    setup(TableSizes {
        connections: 1 << 24,
        ..TableSizes::default()
    })
}
