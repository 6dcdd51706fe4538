//! The namespace lab on its own, without a balancer. Needs root.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use lvs::lab::{self, Lab, LabOptions};
use lvs::neighbour;
use lvs_tests::wait;

/// Tests share labs across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Lab>();
};

fn small_lab() -> Lab {
    Lab::create(LabOptions {
        big_file_size: 1 << 20,
        ..LabOptions::default()
    })
    .expect("creating the lab")
}

fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/var/run/netns").join(name).exists()
}

fn lab_namespaces_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{prefix}-")))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn client_reaches_every_real_directly_and_only_the_director_answers_arp_for_the_vip() {
    // The default options, as the end-to-end tests use them (32 MiB big.bin).
    let lab = Lab::create(LabOptions::default()).expect("creating the lab");
    let prefix = lab.prefix().to_string();
    assert_eq!(lab.namespaces().len(), 3 + lab.reals().len());
    let port = lab.http_port();

    // Every real over HTTP, v4 and v6, straight to its own address.
    for r in lab.reals() {
        for addr in [IpAddr::V4(r.addr_v4), IpAddr::V6(r.addr_v6)] {
            let (status, body) = lab::http_get(lab.client_ns(), SocketAddr::new(addr, port), "/")
                .unwrap_or_else(|e| panic!("GET / from {} at {addr}: {e}", r.name));
            assert_eq!(status, 200);
            assert_eq!(String::from_utf8_lossy(&body), format!("{}\n", r.name));
        }
    }
    // A string address works too, and big.bin is the deterministic content.
    let (status, body) = lab::http_get(
        lab.client_ns(),
        format!("[{}]:{port}", lab.reals()[1].addr_v6).as_str(),
        "/big.bin",
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body.len(), 32 << 20);
    assert!(
        body == lab::big_file_bytes(lab.big_file_size()),
        "big.bin differs"
    );

    // Only the director answers ARP for the VIP.
    let dir_mac = lab
        .mac_of(lab.director_ns(), lab.director_ifname())
        .unwrap();
    let answers = lab::arp_probe(
        lab.client_ns(),
        "eth0",
        lab.client_v4(),
        lab.vip_v4(),
        Duration::from_millis(500),
    )
    .unwrap();
    assert_eq!(answers, vec![dir_mac], "ARP answers for the VIP");
    // The reals do answer for their own addresses (the probe works).
    let real1_mac = lab.mac_of(&lab.reals()[0].ns, "eth0").unwrap();
    let answers = lab::arp_probe(
        lab.client_ns(),
        "eth0",
        lab.client_v4(),
        lab.reals()[0].addr_v4,
        Duration::from_millis(300),
    )
    .unwrap();
    assert_eq!(answers, vec![real1_mac]);

    // The client talks to the director for the VIP: nothing listens there, so the director
    // itself refuses, and the client's ARP/ND entry for the VIP is the director's MAC.
    for vip in [IpAddr::V4(lab.vip_v4()), IpAddr::V6(lab.vip_v6())] {
        let err = lab::run_in_netns(lab.client_ns(), || {
            TcpStream::connect_timeout(&SocketAddr::new(vip, port), Duration::from_secs(3))
        })
        .unwrap()
        .expect_err("nothing listens on the director");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{vip}: {err}"
        );
        let entry = lab::run_in_netns(lab.client_ns(), || {
            let eth0 = neighbour::link_by_name("eth0").unwrap();
            neighbour::neighbour_entry(vip, eth0.ifindex).unwrap()
        })
        .unwrap()
        .expect("a neighbour entry for the VIP");
        assert_eq!(entry.1, Some(dir_mac), "{vip}");
    }

    // lvs_pass is attached natively to the director's switch port.
    let out = wait::succeed(lab.command(lab.switch_ns(), "ip").args([
        "link",
        "show",
        lab.director_switch_port(),
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("xdp") && !text.contains("xdpgeneric"),
        "{text}"
    );

    // A real's server can be stopped and started again.
    let r1 = SocketAddr::new(IpAddr::V4(lab.reals()[0].addr_v4), port);
    lab.stop_server(0).unwrap();
    assert!(!lab.server_running(0));
    assert!(lab::http_get(lab.client_ns(), r1, "/").is_err());
    lab.start_server(0).unwrap();
    assert_eq!(lab::http_get(lab.client_ns(), r1, "/").unwrap().0, 200);

    // Background children die with the lab.
    let pid = lab.spawn(lab.client_ns(), "sleep", ["600"]).unwrap();
    let names: Vec<String> = lab.namespaces().to_vec();
    drop(lab);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "sleep survived"
    );
    for n in names {
        assert!(!netns_exists(&n), "{n} survived");
    }
    assert!(lab_namespaces_with_prefix(&prefix).is_empty());
}

#[test]
fn a_failed_build_and_a_panic_leave_nothing_behind() {
    // A panic inside a test with a lab still removes it.
    let prefix = std::sync::Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let lab = Lab::create(LabOptions {
            reals: 1,
            big_file_size: 1024,
            start_servers: false,
            ..LabOptions::default()
        })
        .unwrap();
        *prefix.lock().unwrap() = lab.prefix().to_string();
        panic!("boom");
    });
    assert!(result.is_err());
    let prefix = prefix.into_inner().unwrap();
    assert!(!prefix.is_empty());
    assert!(lab_namespaces_with_prefix(&prefix).is_empty());

    // Bad options fail before anything is created.
    assert!(
        Lab::create(LabOptions {
            reals: 0,
            ..LabOptions::default()
        })
        .is_err()
    );
}

#[test]
fn cleanup_stale_removes_namespaces_of_dead_processes_only() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    wait::exit_within(&mut child, wait::COMMAND, "true");
    // A base of its own, so labs of tests running in parallel do not clean it first.
    let base = "lvstest";
    let stale = format!("{base}-{dead}-7-stale");
    let alive = format!("{base}-{}-999-alive", std::process::id());
    for n in [&stale, &alive] {
        wait::succeed(std::process::Command::new("ip").args(["netns", "add", n]));
    }
    let stale_dir = std::env::temp_dir().join(format!("{base}-{dead}-7"));
    std::fs::create_dir_all(&stale_dir).unwrap();
    let removed = lab::cleanup_stale(base).unwrap();
    assert!(!stale_dir.exists(), "stale content directory survived");
    let alive_exists = netns_exists(&alive);
    let _ = wait::status(std::process::Command::new("ip").args(["netns", "del", &alive]));
    assert!(removed.contains(&stale), "{removed:?}");
    assert!(!netns_exists(&stale));
    assert!(alive_exists);
}

#[test]
fn chosen_source_ports_and_an_xdp_program_on_the_director() {
    let lab = small_lab();
    let port = lab.http_port();
    let real = SocketAddr::new(IpAddr::V4(lab.reals()[2].addr_v4), port);
    let real6 = SocketAddr::new(IpAddr::V6(lab.reals()[2].addr_v6), port);
    for target in [real, real6] {
        for _ in 0..2 {
            let (status, body) = lab::http_get_from_port(lab.client_ns(), 40001, target, "/")
                .unwrap_or_else(|e| {
                    let source = std::error::Error::source(&e);
                    panic!("{target}: {e}: {source:?}")
                });
            assert_eq!((status, body.as_slice()), (200, &b"real3\n"[..]));
        }
        let local = lab::run_in_netns(lab.client_ns(), || {
            lab::connect_from_port(40003, target)
                .unwrap()
                .local_addr()
                .unwrap()
        })
        .unwrap();
        assert_eq!(local.port(), 40003);
    }

    // Load and attach a program natively to the director's eth0 from inside its namespace,
    // the way the end-to-end tests load the balancer; the director's stack still works.
    let ebpf = lab::run_in_netns(lab.director_ns(), || {
        let mut ebpf = aya::Ebpf::load(lvs::dataplane::object::EBPF_OBJECT).unwrap();
        let prog: &mut aya::programs::Xdp = ebpf
            .program_mut(lvs_common::limits::program_names::PASS)
            .unwrap()
            .try_into()
            .unwrap();
        prog.load().unwrap();
        prog.attach("eth0", aya::programs::XdpMode::Driver).unwrap();
        ebpf
    })
    .unwrap();
    let out = wait::succeed(
        lab.command(lab.director_ns(), "ip")
            .args(["link", "show", "eth0"]),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("xdp") && !text.contains("xdpgeneric"),
        "{text}"
    );
    let err = lab::run_in_netns(lab.client_ns(), || {
        TcpStream::connect_timeout(
            &SocketAddr::new(IpAddr::V4(lab.vip_v4()), port),
            Duration::from_secs(3),
        )
    })
    .unwrap()
    .expect_err("nothing listens on the director");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    drop(ebpf);
}
