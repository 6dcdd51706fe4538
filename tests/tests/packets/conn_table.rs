//! The connection table: a new flow in a full bucket evicting the least recently seen way, two
//! CPUs writing the same buckets never tearing an entry, the seed kept across a reload (pinned
//! maps) with the flows still found.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aya::programs::Xdp;
use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, plan::ip_of},
    lab::{mount_bpffs, unmount_bpffs},
};
use lvs_common::{CtBucket, FlowKey, conntrack::STATE_MASK, limits::CT_BUCKETS, service::proto};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    wait,
    xdp::{
        allowed_cpus, bucket_of, ct_holds, ct_map, ct_seed, flow_key, keys_sharing_buckets,
        pin_to_cpu, pin_to_one_cpu, run, run_program,
    },
};

use super::common::*;

/// A TCP frame of the flow `key` (IPv4 or IPv6, as the key's addresses).
fn frame_of(key: &FlowKey, flags: u8) -> Vec<u8> {
    Frame::tcp(
        ip_of(&key.src),
        u16::from_be(key.sport_be),
        ip_of(&key.dst),
        u16::from_be(key.dport_be),
        flags,
    )
    .build()
}

/// The keys the ways of `bucket` hold (stable and written), in way order.
fn held(dp: &mut Dataplane, bucket: u32) -> Vec<FlowKey> {
    let b = ct_map(dp).get(&bucket, 0).expect("bucket");
    b.ways()
        .iter()
        .filter(|e| !e.is_empty() && e.is_stable())
        .map(|e| e.key)
        .collect()
}

#[test]
fn a_new_flow_in_a_full_bucket_takes_the_way_of_the_least_recently_seen() {
    pin_to_one_cpu();
    let s = service(VIP4, 80, Protocol::Tcp, equal_reals());
    let sid_key = s.key();
    let mut dp = loaded(&[s]);
    let seed = ct_seed(&mut dp);
    assert_ne!(seed, 0, "the loader draws a seed");
    // Five flows of one client that share a bucket.
    let flows = keys_sharing_buckets(
        seed,
        1,
        5,
        (1024..=u16::MAX).map(|port| flow_key(CLIENT4, port, VIP4, 80, proto::TCP)),
    )
    .remove(0);
    let bucket = bucket_of(&flows[0], seed);
    let sid = dp.tables.service_id(&sid_key).unwrap();
    let connections = |dp: &Dataplane| dp.tables.stats().service(sid).unwrap().connections;
    let send = |dp: &mut Dataplane, key: &FlowKey, flags| {
        let f = frame_of(key, flags);
        forwarded_to(&f, &run(dp, &f))
    };

    for key in &flows[..4] {
        send(&mut dp, key, SYN);
    }
    assert_eq!(
        held(&mut dp, bucket),
        flows[..4],
        "four flows fill the ways in order"
    );

    // Once the coarse clock (the table's) has moved past their stamps, three of them send a
    // packet; flow 2 stays quiet.
    let stamped = ct_map(&mut dp)
        .get(&bucket, 0)
        .expect("bucket")
        .ways()
        .iter()
        .map(|e| e.seen_ns())
        .max()
        .unwrap_or(0);
    // The table keeps times without their low bits (they hold the state).
    lvs_tests::clock::wait_past(
        stamped | STATE_MASK,
        "the data plane's clock past the four flows' stamps",
        Duration::from_secs(2),
    );
    let before = connections(&dp);
    for i in [0, 1, 3] {
        send(&mut dp, &flows[i], ACK);
    }
    assert_eq!(
        connections(&dp),
        before,
        "known flows are not scheduled again"
    );

    // The fifth flow takes flow 2's way, and only that.
    send(&mut dp, &flows[4], SYN);
    assert_eq!(connections(&dp), before + 1);
    assert_eq!(
        held(&mut dp, bucket),
        [flows[0], flows[1], flows[4], flows[3]],
        "the least recently seen flow is evicted"
    );
    for i in [0, 1, 3, 4] {
        send(&mut dp, &flows[i], ACK);
    }
    assert_eq!(connections(&dp), before + 1, "the others stay known");
    send(&mut dp, &flows[2], ACK);
    assert_eq!(
        connections(&dp),
        before + 2,
        "the evicted flow's next packet is scheduled again"
    );
}

#[test]
fn two_cpus_writing_the_same_buckets_never_tear_an_entry() {
    const BUCKETS: usize = 2;
    const PER_BUCKET: usize = 16;
    const ROUNDS: usize = 3000;
    let mut s = service(VIP4, 80, Protocol::Tcp, equal_reals());
    s.scheduler = Scheduler::Sh;
    let skey = s.key();
    let mut dp = loaded(&[s]);
    let seed = ct_seed(&mut dp);
    // 32 clients whose flows to port 80 from port 40000 fall in two buckets: sixteen flows
    // for four ways in each.
    let groups = keys_sharing_buckets(
        seed,
        BUCKETS,
        PER_BUCKET,
        (0..1u32 << 24).map(|i| {
            flow_key(
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
                40000,
                VIP4,
                80,
                proto::TCP,
            )
        }),
    );
    let flows: Vec<FlowKey> = groups.concat();
    // `sh` sends a client to one real whatever the flow: learn it from another port.
    let mut real_of: HashMap<IpAddr, u8> = HashMap::new();
    for key in &flows {
        let probe = Frame::tcp(ip_of(&key.src), 1, VIP4, 80, SYN).build();
        real_of.insert(ip_of(&key.src), forwarded_to(&probe, &run(&mut dp, &probe)));
    }
    assert!(
        (1..=3).all(|r| real_of.values().any(|&x| x == r)),
        "the clients spread over all reals"
    );
    let ids: Vec<u32> = (0..=3)
        .map(|r| dp.tables.dest_id(&skey, real_ip(r)).unwrap_or(u32::MAX))
        .collect();
    let dest_id = |r: u8| ids[usize::from(r)];
    let packets = |dp: &Dataplane, r: u8| dp.tables.stats().dest(dest_id(r)).unwrap().packets;
    let before: Vec<u64> = (1..=3).map(|r| packets(&dp, r)).collect();

    // Two writers on two CPUs at once, or the test proves nothing: it fails (rather than
    // passing without a race) where fewer than two CPUs are allowed.
    let cpus = allowed_cpus();
    assert!(
        cpus.len() >= 2,
        "two CPUs writing the same buckets at once needs two CPUs; this test may run on \
         {cpus:?} only, so it cannot race (run it where two CPUs are allowed)"
    );
    let prog: &Xdp = dp.balancer().expect("balancer");
    // Both start together (each waits, 10 s at most, until the other is ready).
    let ready = std::sync::atomic::AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    // Each thread: the SYN and the ACK of its flows (every other flow of each bucket), round
    // after round, each output checked; returns the packets sent per real, the CPU it ran on
    // and when it started and ended. Each SYN evicts a way (sixteen flows for four ways), so
    // the two CPUs keep claiming the same ways.
    let runs: Vec<([u64; 4], i32, Instant, Instant)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let mine: Vec<(Vec<u8>, Vec<u8>, u8)> = flows
                    .iter()
                    .skip(t)
                    .step_by(2)
                    .map(|k| (frame_of(k, SYN), frame_of(k, ACK), real_of[&ip_of(&k.src)]))
                    .collect();
                let cpu = cpus[t];
                let ready = &ready;
                scope.spawn(move || {
                    pin_to_cpu(cpu);
                    ready.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    wait::until(
                        Duration::from_secs(10),
                        Duration::ZERO,
                        &format!("writer {t}: the other writer ready"),
                        || (ready.load(std::sync::atomic::Ordering::SeqCst) == 2).then_some(()),
                        String::new,
                    );
                    let began = Instant::now();
                    let mut sent = [0u64; 4];
                    for round in 0..ROUNDS {
                        assert!(
                            Instant::now() < deadline,
                            "writer {t}: round {round} of {ROUNDS} still running after 120 s"
                        );
                        for (syn, ack, r) in &mine {
                            for f in [syn, ack] {
                                // Once: BPF_PROG_TEST_RUN with repeats swaps the program in and
                                // out of the XDP dispatcher, an RCU grace period each time.
                                let out = run_program(prog, f);
                                assert_eq!(out.verdict, XDP_TX);
                                assert_eq!(out.frame[5], *r, "round {round}: a packet went astray");
                                sent[*r as usize] += 1;
                            }
                        }
                    }
                    // SAFETY: sched_getcpu(3) has no arguments.
                    let on = unsafe { libc::sched_getcpu() };
                    (sent, on, began, Instant::now())
                })
            })
            .collect();
        threads.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // They ran on two CPUs, at the same time for most of their runs.
    let (a, b) = (&runs[0], &runs[1]);
    assert_ne!(a.1, b.1, "the two writers ran on one CPU");
    let overlap = a.3.min(b.3).saturating_duration_since(a.2.max(b.2));
    let shorter = (a.3 - a.2).min(b.3 - b.2);
    assert!(
        overlap * 2 >= shorter,
        "the writers hardly overlapped: {overlap:?} together of {shorter:?}; no race to speak of"
    );
    eprintln!(
        "two writers on CPUs {} and {}, together for {overlap:?}",
        a.1, b.1
    );
    let sent: Vec<[u64; 4]> = runs.iter().map(|r| r.0).collect();

    // Every packet went to its client's real: a torn entry would have sent some elsewhere.
    for r in 1..=3u8 {
        let want: u64 = sent.iter().map(|s| s[r as usize]).sum();
        assert_eq!(
            packets(&dp, r) - before[usize::from(r) - 1],
            want,
            "packets to real {r}"
        );
    }
    // Every entry of the table is whole: stable, and its destination is its client's.
    let want: HashMap<IpAddr, (u32, u32)> = real_of
        .iter()
        .map(|(&ip, &r)| {
            let id = dest_id(r);
            (ip, (id, dp.tables.dest_generation(id).unwrap()))
        })
        .collect();
    let table: Vec<CtBucket> = {
        let ct = ct_map(&mut dp);
        (0..CT_BUCKETS).map(|i| ct.get(&i, 0).unwrap()).collect()
    };
    let (mut entries, mut writes) = (0, 0);
    for e in table
        .iter()
        .flat_map(|b| b.ways())
        .filter(|e| !e.is_empty())
    {
        assert!(e.is_stable(), "a way left being written: {e:?}");
        let client = ip_of(&e.key.src);
        assert_eq!(
            Some(&(e.dest, e.generation)),
            want.get(&client),
            "entry of {client}"
        );
        entries += 1;
        writes += e.seq / 2;
    }
    for group in &groups {
        let b = bucket_of(&group[0], seed);
        assert_eq!(held(&mut dp, b).len(), 4, "contended bucket {b} is full");
        assert!(held(&mut dp, b).iter().all(|k| group.contains(k)));
    }
    assert!(entries >= BUCKETS * 4);
    // Every scheduled packet was remembered by one whole write of one way: no two writers
    // ever held a way at once (each write adds 2 to its way's sequence number). A writer whose
    // claims all fail would forward without remembering, but with two CPUs it loses at most
    // the one way the other CPU is writing, and then takes its next choice.
    let sid = dp.tables.service_id(&skey).unwrap();
    assert_eq!(
        writes,
        dp.tables.stats().service(sid).unwrap().connections,
        "writes of the table against scheduled packets"
    );
}

/// A bpf filesystem mounted on a fresh directory, unmounted and removed on drop.
struct Bpffs(PathBuf);

impl Bpffs {
    fn mount(name: &str) -> Bpffs {
        let dir = std::env::temp_dir().join(format!("lvs-{name}-{}", std::process::id()));
        mount_bpffs(&dir).expect("mounting a bpffs");
        Bpffs(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        unmount_bpffs(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_reloaded_data_plane_keeps_the_seed_and_finds_its_flows() {
    pin_to_one_cpu();
    let bpffs = Bpffs::mount("ct-reload");
    let pins = bpffs.path().join("lvs/test");
    let plans = [service(VIP4, 80, Protocol::Tcp, equal_reals())];
    let skey = plans[0].key();
    let syn = Frame::tcp(CLIENT4, 40000, VIP4, 80, SYN).build();
    let ack = Frame::tcp(CLIENT4, 40000, VIP4, 80, ACK).build();
    let (seed, connections, real) = {
        let mut dp = Dataplane::load_pinned(&pins).expect("load with pins");
        dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
        dp.tables.apply(&plans).unwrap();
        let real = forwarded_to(&syn, &run(&mut dp, &syn));
        let sid = dp.tables.service_id(&skey).unwrap();
        let connections = dp.tables.stats().service(sid).unwrap().connections;
        (ct_seed(&mut dp), connections, real)
    };
    // As a restarted agent: the pinned maps are adopted.
    let mut dp = Dataplane::load_pinned(&pins).expect("load with pins again");
    dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
    assert!(dp.adopted());
    assert_eq!(ct_seed(&mut dp), seed, "the seed is kept");
    dp.tables.apply(&plans).unwrap();
    assert_eq!(forwarded_to(&ack, &run(&mut dp, &ack)), real);
    let sid = dp.tables.service_id(&skey).unwrap();
    assert_eq!(
        dp.tables.stats().service(sid).unwrap().connections,
        connections,
        "the flow was found, not scheduled again"
    );
    dp.release(true).unwrap();
}

/// The new-flow program writes a flow in the bucket of the hash the balancer handed it with
/// the packet only while the hand-over is marked as that packet's (the slot's copy of the
/// service has `lvs-ebpf`'s `maps::HASH_HANDED` in its padding word). The slot is pinned and
/// shared across a restart, so a balancer of an earlier build may fill it: it copies the
/// service with its padding 0 and leaves the hash word as it was (another packet's); that
/// packet's flow is hashed anew.
#[test]
fn a_new_flow_is_hashed_anew_unless_its_hash_was_handed_with_it() {
    use std::os::fd::{AsFd as _, AsRawFd as _};

    use lvs_common::{Service, VipKey, hash::flow_hash, limits::map_names};

    pin_to_one_cpu();
    let cpu = allowed_cpus()[0];
    let s = service(VIP4, 80, Protocol::Tcp, equal_reals());
    let service_key = s.key();
    let mut dp = loaded(&[s]);
    let seed = ct_seed(&mut dp);
    let a = flow_key(CLIENT4, 50001, VIP4, 80, proto::TCP);
    let b = (50002..)
        .map(|port| flow_key(CLIENT4, port, VIP4, 80, proto::TCP))
        .find(|b| bucket_of(b, seed) != bucket_of(&a, seed))
        .expect("a flow in another bucket");
    let (hash_a, hash_b) = (flow_hash(&a.words(), seed), flow_hash(&b.words(), seed));

    // B's SYN through the balancer: the slot holds B's packet, its service and its hash.
    let syn_b = frame_of(&b, SYN);
    assert_eq!(run(&mut dp, &syn_b).verdict, XDP_TX);
    assert!(ct_holds(&mut dp, &b));
    // The services map is the tables' (taken from the object): found among the balancer's.
    let service: Service = {
        let ids = dp
            .balancer()
            .expect("balancer")
            .info()
            .expect("program info")
            .map_ids()
            .expect("map ids")
            .expect("the balancer's maps");
        let id = ids
            .into_iter()
            .find(|&id| {
                aya::maps::MapInfo::from_id(id)
                    .is_ok_and(|m| m.name_as_str() == Some(map_names::SERVICES))
            })
            .expect("the services map");
        let data = aya::maps::MapData::from_id(id).expect("services map");
        let services: aya::maps::HashMap<_, VipKey, Service> =
            aya::maps::HashMap::try_from(aya::maps::Map::HashMap(data)).expect("services");
        services.get(&service_key, 0).expect("the service")
    };
    let (slot_fd, size) = {
        let map = dp
            .ebpf()
            .map(map_names::NEW_PACKET)
            .expect("new-packet map");
        let aya::maps::Map::PerCpuArray(data) = map else {
            panic!("{} is no per-CPU array", map_names::NEW_PACKET);
        };
        let size = data.info().expect("map info").value_size() as usize;
        (data.fd().as_fd().as_raw_fd(), size)
    };
    let cpus = aya::util::nr_cpus().expect("CPUs");
    let mut slots = lvs_tests::bpf::percpu_get(slot_fd, 0, size, cpus).expect("the slot");
    let find = |bytes: &[u8], what: &[u8]| bytes.windows(what.len()).position(|w| w == what);
    let at_hash = find(&slots[cpu], &hash_b.to_ne_bytes()).expect("B's hash in the slot");
    // The service's copy, marked: its padding word (after seven `u32`s) is 1.
    // SAFETY: `Service` is `repr(C)` plain data of `u32`s, read as its bytes.
    let mut marked = unsafe {
        std::slice::from_raw_parts(
            (&service as *const Service).cast::<u8>(),
            size_of::<Service>(),
        )
    }
    .to_vec();
    assert_eq!(marked[28..32], [0; 4], "the services map's padding is 0");
    marked[28..32].copy_from_slice(&1u32.to_ne_bytes());
    let at_pad = find(&slots[cpu], &marked).expect("the marked service copy in the slot") + 28;

    // (padding word, hash word) as the hand-over leaves them, and whether B's flow is then
    // found in its own bucket.
    let cases = [
        (1u32, hash_b, true, "marked, B's own hash"),
        (
            1,
            hash_a,
            false,
            "marked, A's hash: written where A's flow would go",
        ),
        (
            0,
            hash_a,
            true,
            "unmarked (an earlier build's balancer), A's hash: hashed anew",
        ),
    ];
    for (pad, hash, found, what) in cases {
        for bucket in [bucket_of(&a, seed), bucket_of(&b, seed)] {
            ct_map(&mut dp)
                .set(bucket, CtBucket::default(), 0)
                .expect("emptying a bucket");
        }
        slots[cpu][at_hash..at_hash + 8].copy_from_slice(&hash.to_ne_bytes());
        slots[cpu][at_pad..at_pad + 4].copy_from_slice(&pad.to_ne_bytes());
        lvs_tests::bpf::percpu_set(slot_fd, 0, &slots).expect("writing the slot");
        let new_flow: &Xdp = dp
            .ebpf()
            .program(lvs_common::limits::program_names::NEW_FLOW)
            .expect("the new-flow program")
            .try_into()
            .expect("an XDP program");
        assert_eq!(run_program(new_flow, &syn_b).verdict, XDP_TX, "{what}");
        assert_eq!(ct_holds(&mut dp, &b), found, "{what}");
    }
}
