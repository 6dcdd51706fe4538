//! Direct routing end to end in the namespace lab: a client, the director running `lvs`, three
//! real servers holding the VIP on `lo` (arp_ignore=1, arp_announce=2), on one bridge.

use std::{net::SocketAddr, time::Duration};

use lvs::lab::{Lab, LabOptions, big_file_bytes, http_get};
use lvs_tests::{
    agent::{RunningLvs, assert_split_3_2_1},
    wait,
};

const CONFIG: &str = r#"
checkinterval = 1
checktimeout = 2

[[virtual]]
address = "198.18.0.100:80"
scheduler = "wrr"
checktype = "on"
[[virtual.real]]
address = "198.18.0.11:80"
weight = 3
[[virtual.real]]
address = "198.18.0.12:80"
weight = 2
[[virtual.real]]
address = "198.18.0.13:80"
weight = 1

[[virtual]]
address = "[fd00:198:18::100]:80"
scheduler = "wrr"
checktype = "on"
[[virtual.real]]
address = "[fd00:198:18::11]:80"
weight = 3
[[virtual.real]]
address = "[fd00:198:18::12]:80"
weight = 2
[[virtual.real]]
address = "[fd00:198:18::13]:80"
weight = 1
"#;

fn lab() -> Lab {
    Lab::create(LabOptions {
        big_file_size: 16 << 20,
        ..LabOptions::default()
    })
    .expect("lab")
}

fn vips(lab: &Lab) -> [SocketAddr; 2] {
    [
        SocketAddr::new(lab.vip_v4().into(), 80),
        SocketAddr::new(lab.vip_v6().into(), 80),
    ]
}

/// Bytes received on an interface of a namespace.
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
fn new_connections_split_3_2_1_over_ipv4_and_ipv6() {
    let lab = lab();
    let lvs = RunningLvs::start(&lab, CONFIG).unwrap();
    let reals = [
        ["198.18.0.11:80", "198.18.0.12:80", "198.18.0.13:80"],
        [
            "[fd00:198:18::11]:80",
            "[fd00:198:18::12]:80",
            "[fd00:198:18::13]:80",
        ],
    ];
    for (vip, reals) in vips(&lab).into_iter().zip(reals) {
        lvs.wait_served(vip, Duration::from_secs(15)).unwrap();
        assert_split_3_2_1(&lab, &lvs, vip, reals);
    }
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

#[test]
fn large_downloads_arrive_intact_and_replies_bypass_the_director() {
    let lab = lab();
    let lvs = RunningLvs::start(&lab, CONFIG).unwrap();
    let want = big_file_bytes(lab.big_file_size());
    for vip in vips(&lab) {
        lvs.wait_served(vip, Duration::from_secs(15)).unwrap();
        for _ in 0..3 {
            let before = rx_bytes(&lab, lab.director_ns(), lab.director_ifname());
            let (status, body) = http_get(lab.client_ns(), vip, "/big.bin").unwrap();
            let through_director =
                rx_bytes(&lab, lab.director_ns(), lab.director_ifname()) - before;
            assert_eq!(status, 200);
            assert!(
                body == want,
                "{vip}: big.bin arrived altered ({} bytes)",
                body.len()
            );
            // The director sees the client's half (requests, ACKs), never the 16 MiB reply.
            assert!(
                through_director < (lab.big_file_size() / 8) as u64,
                "{vip}: {through_director} bytes crossed the director for a 16 MiB download"
            );
        }
    }
    assert!(lvs.stop());
}

#[test]
fn traffic_to_the_directors_own_address_is_untouched() {
    let lab = lab();
    // A server on the director itself, on its own address.
    let root = lab.work_dir().join("director-www");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "director\n").unwrap();
    lab.spawn(
        lab.director_ns(),
        "python3",
        [
            "-m",
            "http.server",
            "8080",
            "--bind",
            "::",
            "--directory",
            root.to_str().unwrap(),
        ],
    )
    .unwrap();
    let lvs = RunningLvs::start(&lab, CONFIG).unwrap();
    lvs.wait_served(vips(&lab)[0], Duration::from_secs(15))
        .unwrap();
    for addr in [
        SocketAddr::new(lab.director_v4().into(), 8080),
        SocketAddr::new(lab.director_v6().into(), 8080),
        // The VIP on a port that is not a virtual service: the director's own stack.
        SocketAddr::new(lab.vip_v4().into(), 8080),
    ] {
        let mut answer = None;
        for _ in 0..50 {
            if let Ok(a) = http_get(lab.client_ns(), addr, "/index.html") {
                answer = Some(a);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let (status, body) = answer.unwrap_or_else(|| panic!("{addr} did not answer"));
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"director\n"[..]),
            "{addr}"
        );
    }
    assert!(lvs.stop());
}
