//! The NAT forwarding method (`masq`) end to end in the namespace lab, one-armed: the reals
//! leave the client's subnet for an inside subnet on the same link (10.88.0.0/24, fd88::/64)
//! whose only way out is the director (their default route: its inside address), so every
//! reply crosses it and must be translated there. The reals serve on port 8080 behind the
//! VIPs' port 80: the 3:2:1 split, large downloads intact, a long request (an upload of
//! several segments) intact, replies from the VIP, `lvs status` showing `Masq`.

use lvs::lab::{Lab, LabOptions};
use lvs_tests::agent::{
    RunningLvs, assert_split_downloads_and_uploads, move_reals_inside, sh_in, vips,
    wrr_3_2_1_config,
};

/// The reals of the IPv4 and the IPv6 service, weights 3, 2 and 1.
const REALS: [[&str; 3]; 2] = [
    ["10.88.0.11:8080", "10.88.0.12:8080", "10.88.0.13:8080"],
    ["[fd88::11]:8080", "[fd88::12]:8080", "[fd88::13]:8080"],
];

fn config() -> String {
    wrr_3_2_1_config("masq", REALS[0], REALS[1])
}

/// The lab with the reals moved to the inside subnet, their default route the director's
/// inside address, and forwarding on at the director.
fn nat_lab() -> Lab {
    let lab = Lab::create(LabOptions {
        big_file_size: 16 << 20,
        http_port: 8080,
        ..LabOptions::default()
    })
    .expect("lab");
    let d = lab.director_ifname().to_string();
    sh_in(
        lab.director_ns(),
        &format!(
            "ip addr add 10.88.0.1/24 dev {d}
             ip -6 addr add fd88::1/64 dev {d} nodad
             sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.{d}.forwarding=1
             sysctl -qw net.ipv6.conf.all.forwarding=1
             sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.{d}.send_redirects=0"
        ),
    );
    move_reals_inside(&lab);
    lab
}

#[test]
fn nated_split_3_2_1_downloads_and_uploads_intact_through_the_director() {
    let lab = nat_lab();
    // The reals reach the client only through the director.
    for r in lab.reals() {
        for client in [lab.client_v4().to_string(), lab.client_v6().to_string()] {
            let out = lab
                .command(&r.ns, "ip")
                .args(["route", "get", &client])
                .output()
                .expect("ip route get");
            let route = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                route.contains("via 10.88.0.1") || route.contains("via fd88::1"),
                "{}: the route to the client is not through the director: {route}",
                r.name
            );
        }
    }
    let lvs = RunningLvs::start(&lab, &config()).unwrap();
    assert_split_downloads_and_uploads(&lab, &lvs, REALS);
    // The replies crossed the director and were counted, as IPVS counts them: OutBytes of
    // each service at least its three downloads, OutPkts of every real some.
    let stats = lvs.status(&["--stats"]).unwrap();
    for (vip, reals) in vips(&lab).into_iter().zip(REALS) {
        let [_, inpkts, outpkts, inbytes, outbytes] = stats_row(&stats, &format!("TCP  {vip} "));
        assert!(
            outbytes >= 3 * lab.big_file_size() as u64
                && outpkts >= 3 * lab.big_file_size() as u64 / 1500,
            "{vip}: the replies are counted out:\n{stats}"
        );
        assert!(
            inbytes >= 5 * 60_000 && inpkts >= 5 * 40,
            "{vip}: the uploads are counted in:\n{stats}"
        );
        for real in reals {
            let [.., outpkts, _, _] = stats_row(&stats, &format!("  -> {real} "));
            assert!(outpkts > 0, "{real}: its replies counted:\n{stats}");
        }
    }
    let status = lvs.status(&[]).unwrap();
    assert!(
        status.contains("Masq"),
        "lvs status shows the Forward column Masq:\n{status}"
    );
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

/// The five numbers (Conns, InPkts, OutPkts, InBytes, OutBytes) of the `--stats` line that
/// starts with `head`.
fn stats_row(stats: &str, head: &str) -> [u64; 5] {
    let line = stats
        .lines()
        .find(|l| l.starts_with(head))
        .unwrap_or_else(|| panic!("no line {head:?} in:\n{stats}"));
    let cols: Vec<u64> = line[head.len()..]
        .split_whitespace()
        .map(|c| c.parse().expect("a number"))
        .collect();
    cols.try_into()
        .unwrap_or_else(|c| panic!("not five numbers in {line:?}: {c:?}"))
}
