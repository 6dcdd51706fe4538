//! The netlink neighbour/route module, from the director of the namespace lab. Needs root.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lvs::lab::{self, Lab, LabOptions};
use lvs::neighbour::{self, MacAddr, NeighbourError, NeighbourEventKind};
use lvs_tests::wait;

fn lab_without_servers() -> Lab {
    Lab::create(LabOptions {
        big_file_size: 1024,
        start_servers: false,
        ..LabOptions::default()
    })
    .expect("creating the lab")
}

/// The MAC `ip -n NS link show IF` prints.
fn ip_link_mac(ns: &str, ifname: &str) -> MacAddr {
    let out =
        wait::succeed(std::process::Command::new("ip").args(["-n", ns, "link", "show", ifname]));
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no link/ether in {text}"));
    mac.parse().unwrap()
}

#[test]
fn director_resolves_routes_and_addresses() {
    let lab = lab_without_servers();
    let dir_mac = ip_link_mac(lab.director_ns(), "eth0");
    let reals = lab.reals().to_vec();
    let (vip4, vip6) = (lab.vip_v4(), lab.vip_v6());
    let (dir4, dir6) = (lab.director_v4(), lab.director_v6());
    lab::run_in_netns(lab.director_ns(), || {
        let eth0 = neighbour::link_by_name("eth0").unwrap();
        assert_eq!(eth0.mac, Some(dir_mac));
        for r in &reals {
            let want = ip_link_mac(&r.ns, "eth0");
            for addr in [IpAddr::V4(r.addr_v4), IpAddr::V6(r.addr_v6)] {
                let route = neighbour::route_to(addr).unwrap();
                assert_eq!(route.ifname, "eth0");
                assert_eq!(route.ifindex, eth0.ifindex);
                assert_eq!(route.gateway, None);
                assert_eq!(route.src_mac, dir_mac);
                let n = neighbour::resolve(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
                assert_eq!(n.mac, want, "{} {addr}", r.name);
                assert_eq!(n.src_mac, dir_mac);
                assert_eq!(n.ifindex, eth0.ifindex);
                assert!(n.state.is_valid());
                // A second resolve reads the table.
                assert_eq!(neighbour::resolve(addr).unwrap().mac, want);
                assert!(!neighbour::is_local(addr).unwrap());
            }
        }
        for vip in [IpAddr::V4(vip4), IpAddr::V6(vip6)] {
            assert_eq!(
                neighbour::interface_holding(vip).unwrap(),
                Some((eth0.ifindex, "eth0".to_string()))
            );
            assert!(neighbour::is_local(vip).unwrap());
            assert!(matches!(
                neighbour::route_to(vip),
                Err(NeighbourError::Local { .. })
            ));
        }
        for a in [
            IpAddr::V4(dir4),
            IpAddr::V6(dir6),
            "127.0.0.1".parse().unwrap(),
            "::1".parse().unwrap(),
        ] {
            assert!(neighbour::is_local(a).unwrap(), "{a}");
        }
        assert_eq!(
            neighbour::interface_holding("127.0.0.1".parse().unwrap()).unwrap(),
            Some((1, "lo".to_string()))
        );
        assert_eq!(
            neighbour::interface_holding("198.18.0.77".parse().unwrap()).unwrap(),
            None
        );

        // Nobody has .99: resolution fails within the timeout, clearly.
        for addr in ["198.18.0.99", "fd00:198:18::99"] {
            let addr: IpAddr = addr.parse().unwrap();
            let t0 = Instant::now();
            let err = neighbour::resolve_timeout(addr, Duration::from_millis(1500)).unwrap_err();
            let took = t0.elapsed();
            assert!(took < Duration::from_millis(2500), "{addr} took {took:?}");
            assert!(
                matches!(err, NeighbourError::Unresolved { .. }),
                "{addr}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("no neighbour answered") && msg.contains("eth0"),
                "{msg}"
            );
        }

        // Not routable at all.
        let err = neighbour::route_to("203.0.113.9".parse().unwrap()).unwrap_err();
        assert!(matches!(err, NeighbourError::NoRoute { .. }), "{err}");
    })
    .unwrap();

    // A real behind a gateway is refused for direct routing.
    wait::succeed(lab.command(lab.director_ns(), "ip").args([
        "route",
        "add",
        "203.0.113.0/24",
        "via",
        "198.18.0.11",
    ]));
    let err = lab::run_in_netns(lab.director_ns(), || {
        neighbour::route_to("203.0.113.9".parse().unwrap()).unwrap_err()
    })
    .unwrap();
    let msg = err.to_string();
    assert!(matches!(err, NeighbourError::NotOnLink { .. }), "{msg}");
    assert!(
        msg.contains("real 203.0.113.9 is not on a directly connected network of the director")
            && msg.contains("direct routing needs it on-link"),
        "{msg}"
    );
    let route = lab::run_in_netns(lab.director_ns(), || {
        neighbour::lookup_route("203.0.113.9".parse().unwrap()).unwrap()
    })
    .unwrap();
    assert_eq!(route.gateway, Some("198.18.0.11".parse().unwrap()));
}

#[test]
fn watch_sees_a_real_change_its_mac() {
    let lab = lab_without_servers();
    let real = lab.reals()[0].clone();
    let new_mac: MacAddr = "02:00:5e:00:53:01".parse().unwrap();
    lab::run_in_netns(lab.director_ns(), || {
        let mut watch = neighbour::watch().unwrap();
        let addr = IpAddr::V4(real.addr_v4);
        let old = neighbour::resolve(addr).unwrap();
        assert_ne!(old.mac, new_mac);
        // The resolution itself is announced.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen_old = false;
        while let Some(ev) = watch
            .next_timeout(Some(deadline.saturating_duration_since(Instant::now())))
            .unwrap()
        {
            if ev.addr == addr && ev.mac == Some(old.mac) {
                seen_old = true;
                break;
            }
        }
        assert!(seen_old, "the first resolution was not announced");

        // The real changes its MAC and announces it (arp_notify), after the neighbour
        // entry's lock time (1 s) so the director accepts the update.
        std::thread::sleep(Duration::from_millis(1100));
        wait::succeed(
            std::process::Command::new("ip")
                .args(["netns", "exec", &real.ns, "sh", "-c"])
                .arg(format!(
                    "set -e; echo 1 > /proc/sys/net/ipv4/conf/eth0/arp_notify; \
                     ip link set eth0 address {new_mac}"
                )),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut event = None;
        while let Some(ev) = watch
            .next_timeout(Some(deadline.saturating_duration_since(Instant::now())))
            .unwrap()
        {
            if ev.addr == addr && ev.kind == NeighbourEventKind::Changed && ev.mac == Some(new_mac)
            {
                event = Some(ev);
                break;
            }
        }
        let ev = event.expect("no neighbour event with the new MAC");
        assert_eq!(ev.ifindex, old.ifindex);
        assert_eq!(neighbour::resolve(addr).unwrap().mac, new_mac);
    })
    .unwrap();
}

#[test]
fn async_watch_sees_resolution_and_deletion() {
    let lab = lab_without_servers();
    let real = lab.reals()[1].clone();
    let dir_ns = lab.director_ns().to_string();
    lab::run_in_netns(lab.director_ns(), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut watch = neighbour::watch_async().unwrap();
            let addr = IpAddr::V6(real.addr_v6);
            let n = neighbour::resolve(addr).unwrap();
            let ev = wait_for(&mut watch, addr, NeighbourEventKind::Changed, Some(n.mac)).await;
            assert_eq!(ev.ifindex, n.ifindex);
            wait::succeed(std::process::Command::new("ip").args([
                "-n",
                &dir_ns,
                "neigh",
                "del",
                &addr.to_string(),
                "dev",
                "eth0",
            ]));
            wait_for(&mut watch, addr, NeighbourEventKind::Deleted, None).await;
        });
    })
    .unwrap();
}

async fn wait_for(
    watch: &mut neighbour::AsyncNeighbourWatch,
    addr: IpAddr,
    kind: NeighbourEventKind,
    mac: Option<MacAddr>,
) -> neighbour::NeighbourEvent {
    tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            let ev = watch.next().await.unwrap();
            if ev.addr == addr && ev.kind == kind && (mac.is_none() || ev.mac == mac) {
                return ev;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind:?} event for {addr}"))
}

/// The agent's resolver thread reports every followed address once it knows: the real's MAC,
/// and, for an address nobody answers for, that it is unusable (after its first probe went
/// unanswered, not at once).
#[test]
fn resolver_reports_a_reachable_real_and_an_address_nobody_answers() {
    use lvs::agent::neighbours::Neighbours;

    let lab = lab_without_servers();
    let real = IpAddr::V4(lab.reals()[0].addr_v4);
    let nobody = IpAddr::V4(lab::lab_v4(200));
    let started = Instant::now();
    let (resolver, mut updates) =
        lab::run_in_netns(lab.director_ns(), Neighbours::spawn).expect("entering the director");
    resolver.follow([real, nobody].into_iter().collect());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut seen = std::collections::HashMap::new();
    rt.block_on(async {
        // Both addresses reported within 15 s (updates of one alone do not extend it).
        tokio::time::timeout(Duration::from_secs(15), async {
            while seen.len() < 2 {
                let up = updates.recv().await.expect("the resolver runs");
                seen.entry(up.addr).or_insert((up, started.elapsed()));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no updates of both {real} and {nobody} within 15 s"));
    });
    let (up, _) = &seen[&real];
    assert!(up.target.is_some(), "{up:?}");
    let (up, after) = &seen[&nobody];
    assert!(up.target.is_none(), "{up:?}");
    assert!(
        up.reason
            .as_deref()
            .unwrap_or("")
            .contains("no link-layer address"),
        "{up:?}"
    );
    assert!(
        *after >= Duration::from_millis(900),
        "reported before its probe could be answered: {after:?}"
    );
}

/// An address nobody answers for becomes silent once the kernel gives up resolving it (its
/// entry FAILED), and stops being silent when a host takes the address and answers the
/// resolver's next probe.
#[test]
fn resolver_calls_an_address_silent_until_it_answers() {
    use lvs::agent::neighbours::{Neighbours, TargetUpdate};

    let lab = lab_without_servers();
    let real = IpAddr::V4(lab.reals()[0].addr_v4);
    let nobody = lab::lab_v4(201);
    let (resolver, mut updates) =
        lab::run_in_netns(lab.director_ns(), Neighbours::spawn).expect("entering the director");
    resolver.follow([real, IpAddr::V4(nobody)].into_iter().collect());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Waits for an update of `addr` that satisfies `want`; asserts the real is never silent.
    let mut wait = |addr: Ipv4Addr, within: Duration, want: &dyn Fn(&TargetUpdate) -> bool| {
        rt.block_on(async {
            tokio::time::timeout(within, async {
                loop {
                    let up = updates.recv().await.expect("the resolver runs");
                    assert!(
                        !(up.addr == real && up.silent),
                        "the real went silent: {up:?}"
                    );
                    if up.addr == IpAddr::V4(addr) && want(&up) {
                        return up;
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("no such update for {addr} within {within:?}"))
        })
    };
    // Three unanswered ARP requests a second apart, then the kernel's entry fails.
    let up = wait(nobody, Duration::from_secs(10), &|u| u.silent);
    assert!(up.target.is_none(), "{up:?}");

    // A host takes the address: the resolver's retries (at most 10 s apart) find it.
    wait::succeed(std::process::Command::new("ip").args([
        "-n",
        &lab.reals()[0].ns,
        "addr",
        "add",
        &format!("{nobody}/24"),
        "dev",
        "eth0",
    ]));
    let up = wait(nobody, Duration::from_secs(15), &|u| u.target.is_some());
    assert!(!up.silent, "{up:?}");
}
