//! The tunnel forwarding method (`ipip`) end to end in the namespace lab: real1 and real2 on
//! the director's link, real3 moved to another subnet (10.77.0.0/24, fd77::/64) behind a
//! router namespace; every real runs `lvs decap` (this kernel has no ipip module) and answers
//! the client straight (real3 through its router), never through the director.

use std::{process::Command, time::Duration};

use lvs::lab::{Lab, LabOptions, big_file_bytes, http_get};
use lvs_tests::{
    agent::{RunningLvs, assert_split_3_2_1, lvs_binary, sh_in, vips, wrr_3_2_1_config},
    wait,
};

/// The two services, their reals forwarded by `ipip`.
/// The reals of the IPv4 and the IPv6 service, weights 3, 2 and 1.
const REALS: [[&str; 3]; 2] = [
    ["198.18.0.11:80", "198.18.0.12:80", "10.77.0.13:80"],
    [
        "[fd00:198:18::11]:80",
        "[fd00:198:18::12]:80",
        "[fd77::13]:80",
    ],
];

fn config() -> String {
    wrr_3_2_1_config("ipip", REALS[0], REALS[1])
}

/// The router namespace, removed on drop (also when the test fails).
struct Router(String);

impl Drop for Router {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The lab, with real3 behind a router, forwarding on at the director, and `lvs decap` on
/// every real.
fn tunnel_lab() -> (Lab, Router) {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        ..LabOptions::default()
    })
    .expect("lab");
    let rtr = format!("{}-rtr", lab.prefix());
    wait::succeed(Command::new("ip").args(["netns", "add", &rtr]));
    let router = Router(rtr.clone());
    let sw = lab.switch_ns().to_string();
    let real3 = lab.reals()[2].ns.clone();
    let port = format!("{}-rp", lab.prefix());
    sh_in(
        &sw,
        &format!(
            "ip link add {port} type veth peer name eth0 netns {rtr}
             ip link set {port} master br0
             ip link set {port} up"
        ),
    );
    sh_in(
        &rtr,
        &format!(
            "ip link set lo up
             ip link add eth1 type veth peer name eth1 netns {real3}
             for c in all default eth0 eth1; do
                 echo 0 > /proc/sys/net/ipv4/conf/$c/rp_filter 2>/dev/null || true
             done
             sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1
             ethtool -K eth0 tx off > /dev/null
             ethtool -K eth1 tx off > /dev/null
             ip addr add 198.18.0.254/24 dev eth0
             ip -6 addr add fd00:198:18::254/64 dev eth0 nodad
             ip addr add 10.77.0.254/24 dev eth1
             ip -6 addr add fd77::254/64 dev eth1 nodad
             ip link set eth0 up
             ip link set eth1 up"
        ),
    );
    // real3 leaves the director's link for the router's other one.
    sh_in(
        &real3,
        "ip link set eth0 down
         echo 0 > /proc/sys/net/ipv4/conf/eth1/rp_filter
         echo 1 > /proc/sys/net/ipv4/conf/eth1/arp_ignore
         ethtool -K eth1 tx off > /dev/null
         ip addr add 10.77.0.13/24 dev eth1
         ip -6 addr add fd77::13/64 dev eth1 nodad
         ip link set eth1 up
         ip route add default via 10.77.0.254
         ip -6 route add default via fd77::254",
    );
    sh_in(
        lab.director_ns(),
        "sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.eth0.forwarding=1
         sysctl -qw net.ipv6.conf.all.forwarding=1
         ip route add 10.77.0.0/24 via 198.18.0.254
         ip -6 route add fd77::/64 via fd00:198:18::254",
    );
    let bin = lvs_binary();
    for (i, r) in lab.reals().iter().enumerate() {
        let ifname = if i == 2 { "eth1" } else { "eth0" };
        let log = lab.work_dir().join(format!("decap-{}.log", r.name));
        lab.spawn_logged(
            &r.ns,
            bin.to_str().unwrap(),
            [
                "decap",
                "--interface",
                ifname,
                "--vip",
                "198.18.0.100",
                "--vip",
                "fd00:198:18::100",
            ],
            &log,
        )
        .expect("lvs decap");
        wait::until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            "lvs decap attached",
            || {
                std::fs::read_to_string(&log)
                    .is_ok_and(|l| l.contains("stripping IP-in-IP"))
                    .then_some(())
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
    }
    (lab, router)
}

fn rx_bytes(lab: &Lab, ns: &str, ifname: &str) -> u64 {
    let out = wait::succeed(
        lab.command(ns, "cat")
            .arg(format!("/sys/class/net/{ifname}/statistics/rx_bytes")),
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("rx_bytes")
}

#[test]
fn tunnelled_split_3_2_1_downloads_intact_replies_direct_and_path_mtu_works() {
    let (lab, _router) = tunnel_lab();
    let lvs = RunningLvs::start(&lab, &config()).unwrap();
    let want = big_file_bytes(lab.big_file_size());
    for (vip, reals) in vips(&lab).into_iter().zip(REALS) {
        lvs.wait_served(vip, Duration::from_secs(30)).unwrap();
        assert_split_3_2_1(&lab, &lvs, vip, reals);

        for _ in 0..3 {
            let before = rx_bytes(&lab, lab.director_ns(), "eth0");
            let (status, body) = http_get(lab.client_ns(), vip, "/big.bin").unwrap();
            let through_director = rx_bytes(&lab, lab.director_ns(), "eth0") - before;
            assert_eq!(status, 200);
            assert!(
                body == want,
                "{vip}: big.bin arrived altered ({} bytes)",
                body.len()
            );
            assert!(
                through_director < (lab.big_file_size() / 8) as u64,
                "{vip}: {through_director} bytes crossed the director for a 16 MiB download"
            );
        }

        // A request of several full-size segments: each is too big once encapsulated, the
        // client gets ICMP fragmentation needed / packet too big from the director, lowers
        // its path MTU and sends again; the real answers (404: no such file).
        for _ in 0..5 {
            let long = format!("/{}", "x".repeat(6000));
            let (status, _) = http_get(lab.client_ns(), vip, &long).unwrap();
            assert_eq!(status, 404, "{vip}: a long request reaches a real");
        }
        // The client learnt the tunnel's MTU from the director's ICMP error.
        let family = if vip.is_ipv4() { "-4" } else { "-6" };
        let out = wait::succeed(lab.command(lab.client_ns(), "ip").args([
            family,
            "route",
            "get",
            &vip.ip().to_string(),
        ]));
        let route = String::from_utf8_lossy(&out.stdout).into_owned();
        let mtu = if vip.is_ipv4() { 1480 } else { 1460 };
        assert!(
            route.contains(&format!("mtu {mtu}")),
            "{vip}: the client's route has no learnt MTU {mtu}: {route}"
        );
    }
    let status = lvs.status(&[]).unwrap();
    assert!(
        status.contains("Tunnel"),
        "lvs status shows the Forward column Tunnel:\n{status}"
    );
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}
