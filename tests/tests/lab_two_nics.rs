//! A real server behind the director's second interface: the balancer (on eth0) sends its
//! packets out of eth1 with XDP_REDIRECT through the devmap.

use std::{net::SocketAddr, process::Command, time::Duration};

use aya::programs::{Xdp, XdpMode};
use lvs::{
    dataplane::object::EBPF_OBJECT,
    lab::{Lab, LabOptions, big_file_bytes, http_get, run_in_netns},
};
use lvs_common::limits::program_names;
use lvs_tests::{
    agent::{RunningLvs, count, who_answers},
    wait,
};

fn sh(ns: &str, script: &str) {
    wait::succeed(Command::new("ip").args(["netns", "exec", ns, "sh", "-c", script]));
}

#[test]
fn a_real_behind_the_second_interface_is_reached_through_redirect() {
    let lab = Lab::create(LabOptions {
        big_file_size: 8 << 20,
        ..LabOptions::default()
    })
    .unwrap();
    let sw = lab.switch_ns().to_string();
    let dir = lab.director_ns().to_string();
    let real3 = lab.reals()[2].clone();

    // A second segment: bridge br1, the director's eth1 on it, and real3 moved onto it.
    wait::succeed(Command::new("ip").args([
        "-n", &sw, "link", "add", "dir1", "type", "veth", "peer", "name", "eth1", "netns", &dir,
    ]));
    sh(
        &sw,
        &format!(
            "set -e
             ip link add br1 type bridge forward_delay 0 stp_state 0
             ip link set br1 up
             ip link set dir1 master br1 up
             ip link set {} master br1",
            real3.switch_port
        ),
    );
    sh(
        &dir,
        "set -e
         ethtool -K eth1 tx off > /dev/null
         echo 2 > /proc/sys/net/ipv4/conf/eth1/arp_announce
         echo 0 > /proc/sys/net/ipv4/conf/eth1/rp_filter
         # real3's replies come back through the director (real3 has no other way to the
         # client), with the VIP as source: accept them and route them on.
         echo 1 > /proc/sys/net/ipv4/conf/eth1/accept_local
         echo 1 > /proc/sys/net/ipv4/ip_forward
         ip addr add 198.18.2.2/24 dev eth1
         ip link set eth1 up",
    );
    sh(
        &real3.ns,
        "set -e
         ip addr flush dev eth0 scope global
         ip addr add 198.18.2.13/24 dev eth0
         ip route add 198.18.0.0/24 via 198.18.2.2",
    );
    // Frames redirected into eth1 are received by its peer only if the peer runs XDP.
    let _pass = run_in_netns(&sw, || {
        let mut ebpf = aya::Ebpf::load(EBPF_OBJECT).unwrap();
        let prog: &mut Xdp = ebpf
            .program_mut(program_names::PASS)
            .unwrap()
            .try_into()
            .unwrap();
        prog.load().unwrap();
        prog.attach("dir1", XdpMode::Driver).unwrap();
        ebpf
    })
    .unwrap();

    let lvs = RunningLvs::start(
        &lab,
        r#"
checkinterval = 1
checktimeout = 1

[[virtual]]
address = "198.18.0.100:80"
scheduler = "rr"
checktype = "connect"
[[virtual.real]]
address = "198.18.0.11:80"
[[virtual.real]]
address = "198.18.2.13:80"
"#,
    )
    .unwrap();
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    lvs.wait_served(vip, Duration::from_secs(15)).unwrap();
    lvs.wait_log("real=198.18.2.13:80 state=\"up\"", Duration::from_secs(10))
        .unwrap();
    // Its weight written into the tables: only then do new connections reach it.
    lvs.wait_real_weight(
        "198.18.2.13:80".parse().unwrap(),
        "1",
        Duration::from_secs(5),
    )
    .unwrap();
    let names = who_answers(&lab, vip, 40).unwrap();
    assert_eq!(
        count(&names, "real1") + count(&names, "real3"),
        40,
        "{names:?}"
    );
    assert!(
        count(&names, "real3") >= 15,
        "real3 behind eth1 gets its share: {names:?}\n{}",
        lvs.log()
    );
    // Large downloads through both paths arrive intact.
    let want = big_file_bytes(lab.big_file_size());
    for _ in 0..4 {
        let (status, body) = http_get(lab.client_ns(), vip, "/big.bin").unwrap();
        assert_eq!(status, 200);
        assert!(body == want, "download altered ({} bytes)", body.len());
    }
    assert!(lvs.stop());
}
