//! What the balancer takes from the wire in the namespace lab: frames injected on the
//! director's own link (from a packet socket on its peer in the switch namespace, so no
//! bridge filters them), and what leaves the switch towards the reals.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use lvs::lab::{self, Lab, LabOptions};
use lvs_tests::{
    agent::RunningLvs,
    packet::{CLIENT_MAC, Frame},
    wire::PacketSocket,
};

const CONFIG: &str = r#"
checkinterval = 1
checktimeout = 2

[[virtual]]
address = "198.18.0.100:5000"
protocol = "udp"
scheduler = "rr"
checktype = "on"
[[virtual.real]]
address = "198.18.0.11:5000"
[[virtual.real]]
address = "198.18.0.12:5000"
[[virtual.real]]
address = "198.18.0.13:5000"
"#;

/// A UDP datagram from the client to the VIP's port 5000, to `dst_mac`, carrying `marker`.
fn probe(lab: &Lab, dst_mac: [u8; 6], sport: u16, marker: &[u8]) -> Vec<u8> {
    let mut f = Frame::udp(
        IpAddr::V4(lab.client_v4()),
        sport,
        IpAddr::V4(lab.vip_v4()),
        5000,
    );
    f.dst_mac = dst_mac;
    f.src_mac = CLIENT_MAC;
    f.payload = marker.to_vec();
    f.build()
}

/// Waits until every real is in `lvs`'s tables at weight 1; the director's MAC.
fn in_service(lab: &Lab, lvs: &RunningLvs) -> [u8; 6] {
    for r in lab.reals() {
        let real = SocketAddr::new(IpAddr::V4(r.addr_v4), 5000);
        lvs.wait_real_weight(real, "1", Duration::from_secs(15))
            .unwrap();
    }
    lab.mac_of(lab.director_ns(), lab.director_ifname())
        .unwrap()
        .octets()
}

fn contains(frame: &[u8], marker: &[u8]) -> bool {
    frame.windows(marker.len()).any(|w| w == marker)
}

#[test]
fn a_broadcast_frame_for_the_vip_is_not_forwarded_to_any_real() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 16,
        ..LabOptions::default()
    })
    .expect("lab");
    let lvs = RunningLvs::start(&lab, CONFIG).unwrap();
    let director_mac = in_service(&lab, &lvs);
    let ports: Vec<String> = lab.reals().iter().map(|r| r.switch_port.clone()).collect();
    let dir_port = lab.director_switch_port().to_string();
    let (inject, watch) = lab::run_in_netns(lab.switch_ns(), || {
        let inject = PacketSocket::open(&dir_port).expect("packet socket on the director's link");
        let watch: Vec<PacketSocket> = ports
            .iter()
            .map(|p| PacketSocket::open(p).expect("packet socket on a real's port"))
            .collect();
        (inject, watch)
    })
    .unwrap();

    // Frames to other destinations first, then one to the director's own MAC: the reals'
    // ports see the frames in the order the director forwards them, so once the last one
    // has reached a real, any of the first ones it forwarded would have been seen before it.
    let others: [(&str, [u8; 6]); 3] = [
        ("broadcast", [0xff; 6]),
        ("multicast", [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]),
        ("another host's MAC", [0x02, 0x42, 0x42, 0x42, 0x42, 0x42]),
    ];
    // Several flows each, so that rr would have sent them to every real.
    for (i, (what, mac)) in others.iter().enumerate() {
        for n in 0..6u16 {
            let marker = format!("lvs-probe-other-{i}-{n}");
            inject
                .send(&probe(
                    &lab,
                    *mac,
                    41000 + 10 * i as u16 + n,
                    marker.as_bytes(),
                ))
                .unwrap_or_else(|e| panic!("injecting a frame to {what}: {e}"));
        }
    }
    let own = b"lvs-probe-own-mac";
    inject
        .send(&probe(&lab, director_mac, 42000, own))
        .expect("injecting a frame to the director's MAC");

    let within = Duration::from_secs(10);
    let deadline = Instant::now() + within;
    let mut seen_own = false;
    while !seen_own {
        assert!(
            Instant::now() < deadline,
            "the frame to the director's own MAC did not reach any real within {within:?} \
             (is the balancer attached?); lvs log:\n{}",
            lvs.log()
        );
        for (sock, port) in watch.iter().zip(&ports) {
            while let Some(frame) = sock.recv(Duration::from_millis(20)).unwrap() {
                // Only what the director sends the real: UDP from the director's MAC (the
                // real's ICMP errors back to the client quote the datagram too).
                if frame.len() < 34 || frame[6..12] != director_mac || frame[23] != 17 {
                    continue;
                }
                for (i, (what, _)) in others.iter().enumerate() {
                    let prefix = format!("lvs-probe-other-{i}-");
                    assert!(
                        !contains(&frame, prefix.as_bytes()),
                        "a frame to {what} for the VIP was forwarded to {port}"
                    );
                }
                seen_own |= contains(&frame, own);
            }
        }
    }
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

/// The datagrams the director sends the reals (UDP from its MAC, seen on the reals' switch
/// ports) until one carrying `until` has come, within `within`.
fn forwarded_until(
    watch: &[PacketSocket],
    director_mac: [u8; 6],
    until: &[u8],
    within: Duration,
    lvs: &RunningLvs,
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no frame carrying {:?} reached a real within {within:?}; lvs log:\n{}",
            String::from_utf8_lossy(until),
            lvs.log()
        );
        for sock in watch {
            while let Some(frame) = sock.recv(Duration::from_millis(20)).unwrap() {
                if frame.len() < 34 || frame[6..12] != director_mac || frame[23] != 17 {
                    continue;
                }
                let done = contains(&frame, until);
                seen.push(frame);
                if done {
                    return seen;
                }
            }
        }
    }
}

#[test]
fn an_extra_mac_added_by_a_reload_is_balanced() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 16,
        ..LabOptions::default()
    })
    .expect("lab");
    let lvs = RunningLvs::start(&lab, CONFIG).unwrap();
    let director_mac = in_service(&lab, &lvs);
    let vmac = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x0a];
    let ports: Vec<String> = lab.reals().iter().map(|r| r.switch_port.clone()).collect();
    let dir_port = lab.director_switch_port().to_string();
    let (inject, watch) = lab::run_in_netns(lab.switch_ns(), || {
        let inject = PacketSocket::open(&dir_port).expect("packet socket on the director's link");
        let watch: Vec<PacketSocket> = ports
            .iter()
            .map(|p| PacketSocket::open(p).expect("packet socket on a real's port"))
            .collect();
        (inject, watch)
    })
    .unwrap();
    let within = Duration::from_secs(10);

    // Before: a frame to the VRRP MAC is not ours.
    inject
        .send(&probe(&lab, vmac, 43000, b"lvs-probe-vmac-before"))
        .unwrap();
    inject
        .send(&probe(&lab, director_mac, 43001, b"lvs-probe-own-1"))
        .unwrap();
    let seen = forwarded_until(&watch, director_mac, b"lvs-probe-own-1", within, &lvs);
    assert!(
        !seen.iter().any(|f| contains(f, b"lvs-probe-vmac-before")),
        "a frame to the VRRP MAC was forwarded before extra_macs named it"
    );

    // After a reload that adds it: balanced.
    std::fs::write(
        &lvs.config,
        format!("extra_macs = [\"00:00:5e:00:01:0a\"]\n{CONFIG}"),
    )
    .unwrap();
    lvs.reload();
    lvs.wait_log("config reloaded", within).unwrap();
    inject
        .send(&probe(&lab, vmac, 43002, b"lvs-probe-vmac-after"))
        .unwrap();
    forwarded_until(&watch, director_mac, b"lvs-probe-vmac-after", within, &lvs);
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}
