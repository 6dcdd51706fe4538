//! Resizing the pinned flow tables (`connection_table_size`, `persistence_table_size`): a data
//! plane loaded with other sizes than the pinned tables moves the live flows into tables of
//! the new sizes, or refuses, changing nothing, when they do not fit. Through
//! BPF_PROG_TEST_RUN on the real kernel.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
};

use aya::maps::{MapData, MapInfo};
use lvs::{
    config::{Protocol, Scheduler, TableSizes},
    dataplane::{Dataplane, DestPlan, LoadError, ServicePlan, Target},
    lab::{mount_bpffs, unmount_bpffs},
};
use lvs_common::limits::{CT_WAYS, map_names};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    xdp::{Outcome, TEST_RUN_IFINDEX, pin_to_one_cpu, run},
};

const XDP_TX: u32 = 3;
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));

fn client(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0xc612_0100 + (i >> 14)))
}

fn port(i: u32) -> u16 {
    10_000 + (i & 0x3fff) as u16
}

fn real(i: u8) -> DestPlan {
    DestPlan {
        addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i)),
        weight: 1,
        table_weight: 1,
        target: Target::Remote {
            mac: [0x02, 0xaa, 0, 0, 0, i],
            src_mac: DIRECTOR_MAC,
            ifindex: TEST_RUN_IFINDEX,
        },
    }
}

fn plans() -> Vec<ServicePlan> {
    vec![ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP, 80),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Rr,
        persistence: None,
        dests: vec![real(1), real(2), real(3)],
        fallback: None,
        aliases: Vec::new(),
    }]
}

fn sizes(connections: u32) -> TableSizes {
    TableSizes {
        connections,
        persistence: 1024,
    }
}

/// A bpf filesystem mounted on a fresh directory, unmounted and removed on drop.
struct Bpffs(PathBuf);

impl Bpffs {
    fn mount(name: &str) -> Bpffs {
        let dir = std::env::temp_dir().join(format!("lvs-{name}-{}", std::process::id()));
        mount_bpffs(&dir).expect("mounting a bpffs");
        Bpffs(dir)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        unmount_bpffs(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn load(pins: &Path, connections: u32) -> Result<Dataplane, LoadError> {
    let mut dp = Dataplane::load_pinned_sized(pins, sizes(connections))?;
    dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
    dp.tables.apply(&plans()).unwrap();
    Ok(dp)
}

/// The real a frame went to.
fn real_of(out: &Outcome) -> u8 {
    assert_eq!(out.verdict, XDP_TX, "expected XDP_TX");
    out.frame[5]
}

fn frame(i: u32, flags: u8) -> Vec<u8> {
    Frame::tcp(client(i), port(i), VIP, 80, flags).build()
}

/// Flows `0..n` opened with a SYN: the real each went to.
fn open(dp: &mut Dataplane, n: u32) -> Vec<u8> {
    (0..n).map(|i| real_of(&run(dp, &frame(i, SYN)))).collect()
}

/// New connections the service counted (each scheduled packet).
fn scheduled(dp: &Dataplane) -> u64 {
    let key = plans()[0].key();
    let sid = dp.tables.service_id(&key).unwrap();
    dp.tables.stats().service(sid).unwrap().connections
}

/// The pinned connection table's number of flows.
fn pinned_flows(pins: &Path) -> u32 {
    let info = MapInfo::from_pin(pins.join(map_names::CONNTRACK)).unwrap();
    info.max_entries() * CT_WAYS as u32
}

/// The id of the map pinned as `name`.
fn pinned_id(pins: &Path, name: &str) -> u32 {
    MapData::from_pin(pins.join(name))
        .unwrap()
        .info()
        .unwrap()
        .id()
}

/// Each flow's ACK goes to the real its SYN went to, found in the table (nothing scheduled).
fn assert_kept(dp: &mut Dataplane, reals: &[u8], what: &str) {
    let before = scheduled(dp);
    for (i, &r) in reals.iter().enumerate() {
        assert_eq!(
            real_of(&run(dp, &frame(i as u32, ACK))),
            r,
            "{what}: flow {i} moved"
        );
    }
    assert_eq!(scheduled(dp), before, "{what}: flows were scheduled again");
}

#[test]
fn a_larger_table_takes_every_live_flow_and_a_smaller_one_too_or_refuses() {
    pin_to_one_cpu();
    let bpffs = Bpffs::mount("resize");
    let pins = bpffs.0.join("lvs/test");
    // 400 flows in 4096 buckets: a bucket of more than 4 (which would evict) has odds of
    // about 1 in 3,000,000 per seed.
    let n = 400;
    let reals = {
        let mut dp = load(&pins, 16384).expect("load 16384 flows");
        let reals = open(&mut dp, n);
        assert_kept(&mut dp, &reals, "the first table");
        reals
    };
    assert_eq!(pinned_flows(&pins), 16384);
    let old_id = pinned_id(&pins, map_names::CONNTRACK);

    // Larger: every flow moves (re-hashed: the bucket index gets two more bits).
    let mut dp = load(&pins, 65536).expect("load 65536 flows");
    assert_eq!(pinned_flows(&pins), 65536, "the new table is pinned");
    assert_ne!(pinned_id(&pins, map_names::CONNTRACK), old_id);
    assert_eq!(dp.sizes().connections, 65536);
    assert_kept(&mut dp, &reals, "grown to 65536");
    drop(dp);

    // Smaller, too small for the live flows: refused, and nothing changed.
    let id = pinned_id(&pins, map_names::CONNTRACK);
    match load(&pins, 256) {
        Err(LoadError::Resize {
            from,
            to,
            live,
            unfit,
            ..
        }) => {
            assert_eq!((from, to), (65536, 256));
            assert_eq!(live, n as u64, "every flow is live");
            assert!(unfit > 0);
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("400 flows squeezed into 256 ways"),
    }
    assert_eq!(pinned_id(&pins, map_names::CONNTRACK), id, "untouched");
    assert_eq!(pinned_flows(&pins), 65536);
    let mut dp = load(&pins, 65536).expect("the same size again");
    assert_kept(&mut dp, &reals, "after the refusal");
    drop(dp);

    // Smaller with room for the live flows (the first table's size, so the same buckets as
    // there): they move.
    let mut dp = load(&pins, 16384).expect("shrink to 16384");
    assert_eq!(pinned_flows(&pins), 16384);
    assert_kept(&mut dp, &reals, "shrunk to 16384");
    dp.release(true).unwrap();
}

/// Pinned tables whose buckets have another layout (recorded in the table's settings) are
/// refused, and left as they were.
#[test]
fn a_pinned_table_of_another_bucket_layout_is_refused() {
    let bpffs = Bpffs::mount("layout");
    let pins = bpffs.0.join("lvs/test");
    drop(load(&pins, 1024).expect("first load"));
    let set_layout = |layout: u32| {
        let data = MapData::from_pin(pins.join(map_names::CT_SEED)).unwrap();
        let mut configs: aya::maps::Array<MapData, lvs_common::CtConfig> =
            aya::maps::Array::try_from(aya::maps::Map::Array(data)).unwrap();
        let mut c = configs.get(&0, 0).unwrap();
        c.layout = layout;
        configs.set(0, c, 0).unwrap();
    };
    set_layout(1);
    let id = pinned_id(&pins, map_names::CONNTRACK);
    match load(&pins, 1024) {
        Err(LoadError::Layout { pinned, .. }) => {
            assert!(pinned.contains("layout 1"), "{pinned}")
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a table of layout 1 was adopted"),
    }
    assert_eq!(pinned_id(&pins, map_names::CONNTRACK), id, "left as it was");
    set_layout(lvs_common::conntrack::CT_LAYOUT);
    load(&pins, 1024)
        .expect("the same table of this layout")
        .release(true)
        .unwrap();
}
