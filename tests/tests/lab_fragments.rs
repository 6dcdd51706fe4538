//! Fragments through the namespace lab (issue 15): a UDP datagram bigger than the path's MTU,
//! fragmented by the client's kernel, reaches a real whole through the VIP (IPv4 and IPv6);
//! a fragmented TCP SYN injected on the director's link is answered by a real, while the
//! director itself listens on the VIP too and does not answer.

use std::{
    net::{IpAddr, SocketAddr, TcpListener, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use lvs::lab::{self, Lab, LabOptions};
use lvs_tests::{
    agent::RunningLvs,
    packet::{Frame, SYN, fragments},
    wait,
    wire::PacketSocket,
};

/// The datagram's size: three fragments at MTU 1500.
const DATAGRAM: usize = 4000;

/// A UDP listener: checks each datagram's bytes (the pattern [`payload`] makes), logs what it
/// got to a file, and answers "NAME ok|bad LEN" to the sender.
const UDP_LISTENER: &str = r#"
import socket, sys
name, family, addr, port, log = sys.argv[1:6]
s = socket.socket(socket.AF_INET6 if family == "6" else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, int(port)))
open(log, "a").close()
while True:
    d, peer = s.recvfrom(65535)
    ok = len(d) == 4000 and d == bytes((i * 7 + d[0]) % 251 for i in range(len(d)))
    with open(log, "a") as f:
        f.write(f"{len(d)} {ok}\n")
    s.sendto(f"{name} {'ok' if ok else 'bad'} {len(d)}".encode(), peer)
"#;

/// The bytes of datagram `seed` (below 251): byte i is (7 i + seed) mod 251.
fn payload(seed: u8) -> Vec<u8> {
    (0..DATAGRAM)
        .map(|i| ((i * 7 + usize::from(seed)) % 251) as u8)
        .collect()
}

fn config(lab: &Lab, port: u16, protocol: &str) -> String {
    let mut c = String::from("checkinterval = 1\nchecktimeout = 2\n");
    for (vip, real_addr) in [
        (
            format!("{}:{port}", lab.vip_v4()),
            Box::new(|r: &lab::RealHost| format!("{}:{port}", r.addr_v4))
                as Box<dyn Fn(&lab::RealHost) -> String>,
        ),
        (
            format!("[{}]:{port}", lab.vip_v6()),
            Box::new(|r: &lab::RealHost| format!("[{}]:{port}", r.addr_v6)),
        ),
    ] {
        c += &format!(
            "\n[[virtual]]\naddress = \"{vip}\"\nprotocol = \"{protocol}\"\nscheduler = \"rr\"\n\
             checktype = \"on\"\n"
        );
        for r in lab.reals() {
            c += &format!("[[virtual.real]]\naddress = \"{}\"\n", real_addr(r));
        }
    }
    c
}

/// Waits until every real of `port` is in `lvs`'s tables at weight 1.
fn in_service(lab: &Lab, lvs: &RunningLvs, port: u16) {
    for r in lab.reals() {
        for a in [IpAddr::V4(r.addr_v4), IpAddr::V6(r.addr_v6)] {
            lvs.wait_real_weight(SocketAddr::new(a, port), "1", Duration::from_secs(15))
                .unwrap();
        }
    }
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_fragmented_udp_datagram_reaches_a_real_whole_through_the_vip() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 16,
        ..LabOptions::default()
    })
    .expect("lab");
    let port = 5000u16;
    let lvs = RunningLvs::start(&lab, &config(&lab, port, "udp")).unwrap();
    in_service(&lab, &lvs, port);

    // Listeners on the VIP at every real, and at the director (which holds the VIP too).
    let mut logs = Vec::new();
    let hosts: Vec<(String, String)> = lab
        .reals()
        .iter()
        .map(|r| (r.name.clone(), r.ns.clone()))
        .chain([("director".to_string(), lab.director_ns().to_string())])
        .collect();
    for (name, ns) in &hosts {
        for (family, vip) in [
            ("4", IpAddr::V4(lab.vip_v4())),
            ("6", IpAddr::V6(lab.vip_v6())),
        ] {
            let log = lab.work_dir().join(format!("udp-{name}-{family}.log"));
            let args = [
                "-c".to_string(),
                UDP_LISTENER.to_string(),
                name.clone(),
                family.to_string(),
                vip.to_string(),
                port.to_string(),
                log.display().to_string(),
            ];
            lab.spawn(ns, "python3", &args).unwrap();
            logs.push((name.clone(), log));
        }
    }
    wait::until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the UDP listeners start",
        || logs.iter().all(|(_, l)| l.exists()).then_some(()),
        || format!("logs: {logs:?}"),
    );

    let mut answered = Vec::new();
    for (n, vip) in (0..6u8).flat_map(|n| {
        [
            (n, IpAddr::V4(lab.vip_v4())),
            (n + 100, IpAddr::V6(lab.vip_v6())),
        ]
    }) {
        let to = SocketAddr::new(vip, port);
        let bind: SocketAddr = if vip.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        // A socket of the client's namespace (it stays there); its kernel fragments the
        // datagram at the link's MTU of 1500.
        let sock = lab::run_in_netns(lab.client_ns(), || UdpSocket::bind(bind))
            .unwrap()
            .expect("client UDP socket");
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let data = payload(n);
        let reply = wait::until(
            Duration::from_secs(15),
            Duration::from_millis(10),
            &format!("an answer to a {DATAGRAM}-byte datagram to {to}"),
            || {
                sock.send_to(&data, to).expect("sending the datagram");
                let mut buf = [0u8; 256];
                let (len, _) = sock.recv_from(&mut buf).ok()?;
                Some(String::from_utf8_lossy(&buf[..len]).into_owned())
            },
            || format!("lvs log:\n{}", lvs.log()),
        );
        let words: Vec<&str> = reply.split(' ').collect();
        assert_eq!(
            words[1..],
            ["ok", "4000"],
            "the datagram to {to} reached {} whole",
            words[0]
        );
        assert!(
            words[0].starts_with("real"),
            "the datagram to {to} was answered by {}",
            words[0]
        );
        answered.push(words[0].to_string());
    }
    eprintln!("answered by {answered:?}");
    for (name, log) in &logs {
        let lines = log_lines(log);
        if name == "director" {
            assert!(
                lines.is_empty(),
                "the director's own listener got datagrams for the VIP: {lines:?}"
            );
        } else {
            assert!(
                lines.iter().all(|l| l == "4000 True"),
                "{name} got datagrams that were not whole: {lines:?}"
            );
        }
    }
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}

/// Whether `f` is a TCP SYN-ACK from `vip`:80 to `client`:`cport` (IPv4 or IPv6, untagged).
fn syn_ack(f: &[u8], vip: IpAddr, client: IpAddr, cport: u16) -> bool {
    let (src, dst, l4) = match (f.get(12..14), vip) {
        (Some([0x08, 0x00]), IpAddr::V4(_)) if f.len() >= 34 + 14 && f[23] == 6 => {
            let l4 = 14 + usize::from(f[14] & 0xf) * 4;
            let s: [u8; 4] = f[26..30].try_into().unwrap();
            let d: [u8; 4] = f[30..34].try_into().unwrap();
            (IpAddr::from(s), IpAddr::from(d), l4)
        }
        (Some([0x86, 0xdd]), IpAddr::V6(_)) if f.len() >= 54 + 14 && f[20] == 6 => {
            let s: [u8; 16] = f[22..38].try_into().unwrap();
            let d: [u8; 16] = f[38..54].try_into().unwrap();
            (IpAddr::from(s), IpAddr::from(d), 54)
        }
        _ => return false,
    };
    f.len() >= l4 + 14
        && src == vip
        && dst == client
        && f[l4..l4 + 2] == 80u16.to_be_bytes()
        && f[l4 + 2..l4 + 4] == cport.to_be_bytes()
        && f[l4 + 13] & 0x12 == 0x12
}

#[test]
fn a_fragmented_syn_is_answered_by_a_real_not_by_the_director() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1 << 16,
        ..LabOptions::default()
    })
    .expect("lab");
    let port = lab.http_port();
    let lvs = RunningLvs::start(&lab, &config(&lab, port, "tcp")).unwrap();
    in_service(&lab, &lvs, port);
    let director_mac = lab
        .mac_of(lab.director_ns(), lab.director_ifname())
        .unwrap()
        .octets();
    let client_mac = lab
        .mac_of(lab.client_ns(), lab::HOST_IFNAME)
        .unwrap()
        .octets();
    // The director listens on the VIP's port too: if its stack got the SYN, it would answer.
    let (_listen4, _listen6) = lab::run_in_netns(lab.director_ns(), || {
        (
            TcpListener::bind((lab.vip_v4(), port)).expect("director listens on the VIP"),
            TcpListener::bind((lab.vip_v6(), port)).expect("director listens on the VIP (v6)"),
        )
    })
    .unwrap();
    let ports: Vec<String> = lab.reals().iter().map(|r| r.switch_port.clone()).collect();
    let dir_port = lab.director_switch_port().to_string();
    let (inject, watch) = lab::run_in_netns(lab.switch_ns(), || {
        let inject = PacketSocket::open(&dir_port).expect("packet socket on the director's link");
        let watch: Vec<(String, PacketSocket)> = ports
            .iter()
            .chain([&dir_port])
            .map(|p| (p.clone(), PacketSocket::open(p).expect("packet socket")))
            .collect();
        (inject, watch)
    })
    .unwrap();

    for (i, (client, vip)) in [
        (IpAddr::V4(lab.client_v4()), IpAddr::V4(lab.vip_v4())),
        (IpAddr::V6(lab.client_v6()), IpAddr::V6(lab.vip_v6())),
    ]
    .into_iter()
    .enumerate()
    {
        let cport = 47000 + i as u16;
        // A SYN carrying 1,200 bytes (a real answers a SYN with data with a SYN-ACK), in
        // three fragments of at most 512 bytes, first fragment first.
        let mut syn = Frame::tcp(client, cport, vip, port, SYN);
        syn.dst_mac = director_mac;
        syn.src_mac = client_mac;
        syn.payload = (0..1200).map(|i| i as u8).collect();
        let frags = fragments(&syn, 512, 0x5151 + i as u32);
        assert_eq!(frags.len(), 3);
        let within = Duration::from_secs(10);
        let deadline = Instant::now() + within;
        let mut answered_by: Option<String> = None;
        let mut sent = Instant::now() - Duration::from_secs(1);
        // Watch a second past the real's answer: the director would answer at once.
        let mut until = deadline;
        while Instant::now() < until {
            assert!(
                answered_by.is_some() || Instant::now() < deadline,
                "no real answered the fragmented SYN to {vip} within {within:?}; lvs log:\n{}",
                lvs.log()
            );
            if answered_by.is_none() && sent.elapsed() >= Duration::from_secs(1) {
                for f in &frags {
                    inject.send(f).expect("injecting a fragment");
                }
                sent = Instant::now();
            }
            for (name, sock) in &watch {
                while let Some(f) = sock.recv(Duration::from_millis(10)).unwrap() {
                    if !syn_ack(&f, vip, client, cport) {
                        continue;
                    }
                    assert!(
                        f[6..12] != director_mac,
                        "the director answered the fragmented SYN to {vip} itself (seen on \
                         {name})"
                    );
                    if name != &dir_port && answered_by.is_none() {
                        answered_by = Some(name.clone());
                        until = Instant::now() + Duration::from_secs(1);
                    }
                }
            }
        }
        eprintln!("the fragmented SYN to {vip} was answered by the real on {answered_by:?}");
    }
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}
