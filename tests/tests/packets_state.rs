//! Connection state through BPF_PROG_TEST_RUN: each flow's TCP state as IPVS's INPUT-ONLY
//! table moves it on client→VIP packets, UDP's one state, the retransmitted SYN that stays on
//! its real, the SYN on a closed entry that is scheduled afresh, and the idle timeouts.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target},
};
use lvs_common::{
    CtEntry, CtTimeouts, FlowKey,
    conntrack::{STATE_MASK, ct_state},
    service::proto,
};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    xdp::{TEST_RUN_IFINDEX, bucket_of, ct_map, ct_seed, flow_key, pin_to_one_cpu, run},
};

const XDP_TX: u32 = 3;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;

const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 100));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 10));

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

fn service(port: u16, protocol: Protocol) -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP, port),
        protocol,
        scheduler: Scheduler::Rr,
        persistence: None,
        dests: vec![real(1), real(2), real(3)],
        fallback: None,
        aliases: Vec::new(),
    }
}

/// A data plane with a TCP service on port 80 and a UDP one on 53, three reals each (rr: each
/// new schedule moves to the next real).
fn loaded() -> Dataplane {
    pin_to_one_cpu();
    let mut dp = Dataplane::load().expect("load the balancer (verifier)");
    dp.set_own_macs(&[lvs_tests::packet::DIRECTOR_MAC])
        .expect("own MAC");
    dp.tables
        .apply(&[service(80, Protocol::Tcp), service(53, Protocol::Udp)])
        .expect("apply plans");
    dp
}

fn tcp_key(port: u16) -> FlowKey {
    flow_key(CLIENT, port, VIP, 80, proto::TCP)
}

/// Sends a TCP packet of the flow from client port `port` with `flags`; the real it went to.
fn tcp(dp: &mut Dataplane, port: u16, flags: u8) -> u8 {
    let f = Frame::tcp(CLIENT, port, VIP, 80, flags).build();
    let out = run(dp, &f);
    assert_eq!(out.verdict, XDP_TX, "forwarded");
    out.frame[5]
}

fn udp(dp: &mut Dataplane, port: u16) -> u8 {
    let f = Frame::udp(CLIENT, port, VIP, 53).build();
    let out = run(dp, &f);
    assert_eq!(out.verdict, XDP_TX, "forwarded");
    out.frame[5]
}

/// The table's entry for `key` (reading it does not refresh it).
fn entry(dp: &mut Dataplane, key: &FlowKey) -> CtEntry {
    let seed = ct_seed(dp);
    let b = ct_map(dp).get(&bucket_of(key, seed), 0).expect("bucket");
    *b.ways()
        .iter()
        .find(|e| e.holds(key))
        .unwrap_or_else(|| panic!("no entry for {key:?}"))
}

fn state(dp: &mut Dataplane, key: &FlowKey) -> &'static str {
    ct_state::NAMES[entry(dp, key).state() as usize]
}

/// New connections scheduled on the TCP service (80) or the UDP one (53).
fn scheduled(dp: &Dataplane, port: u16) -> u64 {
    let id = dp
        .tables
        .service_id(&service(port, Protocol::Tcp).key())
        .or_else(|| dp.tables.service_id(&service(port, Protocol::Udp).key()))
        .expect("service id");
    dp.tables.stats().service(id).expect("stats").connections
}

#[test]
fn tcp_flags_move_the_state_as_ipvs_input_only_table() {
    let mut dp = loaded();
    let k = tcp_key(40000);
    tcp(&mut dp, 40000, SYN);
    assert_eq!(state(&mut dp, &k), "SYN_RECV", "SYN from NONE");
    tcp(&mut dp, 40000, RST);
    assert_eq!(state(&mut dp, &k), "SYN_RECV", "RST in SYN_RECV stays");
    tcp(&mut dp, 40000, ACK);
    assert_eq!(state(&mut dp, &k), "ESTABLISHED", "ACK");
    tcp(&mut dp, 40000, ACK | PSH);
    assert_eq!(state(&mut dp, &k), "ESTABLISHED", "data");
    tcp(&mut dp, 40000, FIN | ACK);
    assert_eq!(state(&mut dp, &k), "FIN_WAIT", "the client's FIN");
    tcp(&mut dp, 40000, ACK);
    assert_eq!(state(&mut dp, &k), "FIN_WAIT", "ACKs after the FIN");
    tcp(&mut dp, 40000, RST);
    assert_eq!(state(&mut dp, &k), "CLOSE", "RST");

    // A connection met mid-stream (no entry): created in NONE, moved by its packet.
    let k = tcp_key(40001);
    tcp(&mut dp, 40001, ACK);
    assert_eq!(state(&mut dp, &k), "ESTABLISHED", "mid-stream ACK");
    tcp(&mut dp, 40001, 0);
    assert_eq!(state(&mut dp, &k), "CLOSE", "a packet without flags");
    let k = tcp_key(40002);
    tcp(&mut dp, 40002, SYN);
    tcp(&mut dp, 40002, FIN);
    assert_eq!(state(&mut dp, &k), "TIME_WAIT", "FIN in SYN_RECV");

    udp(&mut dp, 40003);
    let k = flow_key(CLIENT, 40003, VIP, 53, proto::UDP);
    assert_eq!(state(&mut dp, &k), "UDP");
}

#[test]
fn a_retransmitted_syn_stays_on_its_real_and_a_syn_after_close_is_scheduled_afresh() {
    let mut dp = loaded();
    let first = tcp(&mut dp, 41000, SYN);
    assert_eq!(scheduled(&dp, 80), 1);
    // rr moves on with every schedule: a SYN scheduled again would go elsewhere.
    assert_eq!(
        tcp(&mut dp, 41000, SYN),
        first,
        "retransmitted SYN in SYN_RECV"
    );
    tcp(&mut dp, 41000, ACK);
    assert_eq!(tcp(&mut dp, 41000, SYN), first, "SYN in ESTABLISHED");
    tcp(&mut dp, 41000, FIN | ACK);
    assert_eq!(state(&mut dp, &tcp_key(41000)), "FIN_WAIT");
    assert_eq!(
        tcp(&mut dp, 41000, SYN),
        first,
        "SYN in FIN_WAIT (conn_reuse_mode 1)"
    );
    assert_eq!(state(&mut dp, &tcp_key(41000)), "SYN_RECV");
    assert_eq!(scheduled(&dp, 80), 1, "none of those SYNs was scheduled");

    tcp(&mut dp, 41000, ACK);
    tcp(&mut dp, 41000, RST);
    assert_eq!(state(&mut dp, &tcp_key(41000)), "CLOSE");
    let next = tcp(&mut dp, 41000, SYN);
    assert_eq!(
        scheduled(&dp, 80),
        2,
        "a SYN on a CLOSE entry is a new connection"
    );
    assert_ne!(next, first, "rr's next real");
    assert_eq!(state(&mut dp, &tcp_key(41000)), "SYN_RECV");
    assert_eq!(
        tcp(&mut dp, 41000, ACK),
        next,
        "the flow stays on its new real"
    );
}

/// Waits (up to 10 s) until the data plane's clock reads past `at_ns`.
fn wait_clock(at_ns: u64, what: &str) {
    lvs_tests::clock::wait_past(at_ns, what, Duration::from_secs(10));
}

#[test]
fn an_entry_past_its_states_timeout_is_gone_and_its_flow_scheduled_again() {
    let mut dp = loaded();
    // tcpfin and udp 1 s; ESTABLISHED keeps a long one.
    let timeouts = CtTimeouts::ipvs(900, 1, 1);
    dp.set_timeouts(timeouts).expect("set timeouts");
    assert_eq!(dp.timeouts().expect("read timeouts"), timeouts);

    tcp(&mut dp, 42000, SYN);
    tcp(&mut dp, 42000, ACK);
    let closing = tcp(&mut dp, 42001, SYN);
    tcp(&mut dp, 42001, ACK);
    tcp(&mut dp, 42001, FIN | ACK);
    assert_eq!(state(&mut dp, &tcp_key(42001)), "FIN_WAIT");
    let u = udp(&mut dp, 42002);
    let fin_seen = entry(&mut dp, &tcp_key(42001)).last_seen_ns & !STATE_MASK;
    let udp_key = flow_key(CLIENT, 42002, VIP, 53, proto::UDP);
    let udp_seen = entry(&mut dp, &udp_key).last_seen_ns & !STATE_MASK;
    let (tcp_before, udp_before) = (scheduled(&dp, 80), scheduled(&dp, 53));
    assert_eq!((tcp_before, udp_before), (2, 1));

    wait_clock(
        fin_seen.max(udp_seen) + 1_000_000_000,
        "the FIN_WAIT and UDP timeouts (1 s) after the last packets",
    );
    tcp(&mut dp, 42000, ACK);
    assert_eq!(
        scheduled(&dp, 80),
        tcp_before,
        "ESTABLISHED (900 s) is still there"
    );
    let again = tcp(&mut dp, 42001, ACK);
    assert_eq!(
        scheduled(&dp, 80),
        tcp_before + 1,
        "the FIN_WAIT entry expired: its next packet is scheduled again"
    );
    assert_ne!(again, closing, "rr's next real");
    assert_eq!(
        state(&mut dp, &tcp_key(42001)),
        "ESTABLISHED",
        "a new entry"
    );
    let u2 = udp(&mut dp, 42002);
    assert_eq!(scheduled(&dp, 53), udp_before + 1, "the UDP entry expired");
    assert_ne!(u2, u, "rr's next real");

    // A SYN on an entry past its timeout is scheduled afresh too.
    tcp(&mut dp, 42001, FIN | ACK);
    let seen = entry(&mut dp, &tcp_key(42001)).last_seen_ns & !STATE_MASK;
    wait_clock(seen + 1_000_000_000, "the FIN_WAIT timeout again");
    tcp(&mut dp, 42001, SYN);
    assert_eq!(
        scheduled(&dp, 80),
        tcp_before + 2,
        "SYN on an expired FIN_WAIT"
    );
}
