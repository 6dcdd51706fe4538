//! Three directors behind a router doing ECMP (Linux multipath with the L4 hash,
//! `fib_multipath_hash_policy=1`), the routes learned by BGP: BIRD 2 on the router and on
//! every director. Each director runs lvs (an `mh` and a `wrr` service on the VIP, three reals)
//! and announces the VIP only while lvs forwards it: a watcher (`announce_script`) keeps a
//! route to the VIP in kernel table 100 while `lvs status` answers and names a real with an
//! effective weight above 0, and deletes it otherwise; the director's BIRD learns that table
//! and exports the route to the router. 500 long-lived TCP connections through each service
//! send a small request about every 100 ms and check every answer. Director 1 is killed
//! (SIGKILL to its lvs; its watcher withdraws the route), then brought back (lvs started; the
//! route announced again). Broken connections are counted across each event for `mh` (at most
//! 1%) and `wrr`. While director 1 is away, real 3 fails (it resets its connections and
//! refuses the checks): exactly its `mh` connections break, the others keep their real.
//!
//! Needs root, iproute2, ethtool, bird2.

use std::{sync::atomic::Ordering, time::Duration};

use lvs_tests::{
    multidir::{CONNS, Clients, MH_PORT, Multi, VIP, WRR_PORT, host, sh},
    wait::{self, until},
};

const DIRECTORS: u8 = 3;
const ROUTER: &str = "198.18.0.1";
const LOGS: &[&str] = &[
    "lvs-d1",
    "lvs-d2",
    "lvs-d3",
    "bird-router",
    "bird-d1",
    "announce-d1",
];

/// The watcher that makes the announcement follow lvs on director `d`: the route to the VIP
/// in table 100 exists while lvs answers and forwards to a real.
fn announce_script(m: &Multi, d: usize) -> String {
    let lvs = lvs_tests::agent::lvs_binary();
    format!(
        "while :; do
           if {lvs} status --json --control {sock} 2>/dev/null | grep -Eq '\"effective_weight\": ?[1-9]'; then
             ip route replace {VIP}/32 dev lo table 100
           else
             ip route del {VIP}/32 table 100 2>/dev/null
           fi
           sleep 0.3
         done",
        lvs = lvs.display(),
        sock = m.control(d).display()
    )
}

fn bird(m: &mut Multi, role: &str, conf: String) {
    let path = m.dir.join(format!("bird-{role}.conf"));
    std::fs::write(&path, conf).unwrap();
    let sock = m.dir.join(format!("bird-{role}.ctl"));
    let ns = m.ns(role);
    m.spawn(
        &format!("bird-{role}"),
        &ns,
        "bird",
        &[
            "-f",
            "-c",
            path.to_str().unwrap(),
            "-s",
            sock.to_str().unwrap(),
        ],
    );
}

/// The router's next hops for the VIP (director addresses).
fn next_hops(m: &Multi) -> Vec<String> {
    let out = wait::output(std::process::Command::new("ip").args([
        "-n",
        &m.ns("router"),
        "route",
        "show",
        &format!("{VIP}/32"),
    ]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut hops: Vec<String> = words
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect();
    hops.sort();
    hops
}

fn wait_hops(m: &Multi, want: &[u8], what: &str) {
    let mut want: Vec<String> = want.iter().map(|&d| host(1 + d).to_string()).collect();
    want.sort();
    until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        what,
        || (next_hops(m) == want).then_some(()),
        || format!("next hops {:?}\n{}", next_hops(m), m.logs(LOGS)),
    );
}

#[test]
fn ecmp_director_loss_and_return_keep_mh_connections() {
    let mut m = Multi::create();
    // The client behind the router.
    let client = m.add_ns("client");
    let router = m.add_host("router", &format!("{ROUTER}/24"));
    sh(
        None,
        &format!("ip -n {router} link add c0 type veth peer name eth0 netns {client}"),
    );
    sh(
        Some(&router),
        "set -e; ip addr add 198.18.1.1/24 dev c0; ip link set c0 up
         ethtool -K c0 tx off > /dev/null
         echo 1 > /proc/sys/net/ipv4/ip_forward
         echo 1 > /proc/sys/net/ipv4/fib_multipath_hash_policy
         for c in all c0 eth0; do echo 0 > /proc/sys/net/ipv4/conf/$c/rp_filter; done",
    );
    sh(
        Some(&client),
        "set -e; ethtool -K eth0 tx off > /dev/null; echo 0 > /proc/sys/net/ipv4/conf/eth0/rp_filter
         ip addr add 198.18.1.10/24 dev eth0; ip link set eth0 up; ip route add default via 198.18.1.1",
    );
    let mut router_conf = format!(
        "log stderr all;\nrouter id {ROUTER};\nprotocol device {{ scan time 1; }}\n\
         protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n\
         template bgp dir {{ local {ROUTER} as 65000; hold time 3; connect retry time 1; \
         ipv4 {{ import all; export none; }}; }}\n"
    );
    for d in 1..=DIRECTORS {
        let addr = host(1 + d);
        let ns = m.add_host(&format!("d{d}"), &format!("{addr}/24"));
        sh(
            Some(&ns),
            &format!(
                "set -e; for c in all eth0; do echo 1 > /proc/sys/net/ipv4/conf/$c/arp_ignore; \
                 echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce; done; ip addr add {VIP}/32 dev lo; \
                 ip route add default via {ROUTER}"
            ),
        );
        router_conf += &format!("protocol bgp d{d} from dir {{ neighbor {addr} as 65001; }}\n");
    }
    m.add_reals(Some(ROUTER.parse().unwrap()));
    bird(&mut m, "router", router_conf);
    for d in 1..=DIRECTORS {
        let addr = host(1 + d);
        bird(
            &mut m,
            &format!("d{d}"),
            format!(
                "log stderr all;\nrouter id {addr};\nprotocol device {{ scan time 1; }}\n\
                 protocol kernel {{ kernel table 100; learn; scan time 1; \
                 ipv4 {{ import all; export none; }}; }}\n\
                 protocol bgp uplink {{ local {addr} as 65001; neighbor {ROUTER} as 65000; \
                 hold time 3; connect retry time 1; \
                 ipv4 {{ import none; export where net = {VIP}/32; next hop self; }}; }}\n"
            ),
        );
        m.start_lvs(d as usize);
        let script = announce_script(&m, d as usize);
        let ns = m.ns(&format!("d{d}"));
        m.spawn(&format!("announce-d{d}"), &ns, "sh", &["-c", &script]);
    }
    wait_hops(
        &m,
        &[1, 2, 3],
        "the router has the three directors as next hops",
    );
    m.wait_reals_up(&[1, 2, 3], || m.logs(LOGS));
    m.wait_served(&client, || m.logs(LOGS));

    // Real 3's mh connections so far (the probes above), not the clients'.
    let probes = m.served[4].load(Ordering::Relaxed);
    let mh = Clients::start(&client, MH_PORT, m.stop.clone());
    let wrr = Clients::start(&client, WRR_PORT, m.stop.clone());
    mh.two_passes("mh clients: a steady start", || m.logs(LOGS));
    wrr.two_passes("wrr clients: a steady start", || m.logs(LOGS));
    assert_eq!(
        (mh.broken(), wrr.broken()),
        (0, 0),
        "connections broke before any event"
    );

    // Director 1's lvs dies; its watcher withdraws the VIP.
    m.kill("lvs-d1");
    wait_hops(&m, &[2, 3], "director 1's route withdrawn");
    mh.two_passes("mh clients after the loss", || m.logs(LOGS));
    wrr.two_passes("wrr clients after the loss", || m.logs(LOGS));
    let loss = (mh.broken(), wrr.broken());
    let first_loss = loss;

    // While director 1 is away, real 3 fails: it resets every connection (and refuses the
    // checks). Its flows break; the remaining directors take it out, and every other flow
    // keeps its real, also those that changed director (they have entries there now).
    let on_real3 = m.served[4].load(Ordering::Relaxed) - probes;
    sh(
        Some(&m.ns("real3")),
        "iptables -A INPUT -p tcp -j REJECT --reject-with tcp-reset",
    );
    for d in [2, 3] {
        let log = m.dir.join(format!("lvs-d{d}.log"));
        until(
            Duration::from_secs(20),
            Duration::from_millis(100),
            &format!("director {d} takes real 3 out"),
            || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| {
                        l.contains("real server down")
                            && l.contains(&format!("real={}:{MH_PORT}", host(13)))
                    })
                    .then_some(())
            },
            || m.logs(LOGS),
        );
    }
    mh.two_passes("mh clients after real 3's failure", || m.logs(LOGS));
    wrr.two_passes("wrr clients after real 3's failure", || m.logs(LOGS));
    let failed = mh.broken() - loss.0;
    let loss = (mh.broken(), wrr.broken());

    // It comes back.
    m.start_lvs(1);
    wait_hops(&m, &[1, 2, 3], "director 1's route announced again");
    mh.two_passes("mh clients after the return", || m.logs(LOGS));
    wrr.two_passes("wrr clients after the return", || m.logs(LOGS));
    let back = (mh.broken() - loss.0, wrr.broken() - loss.1);

    println!(
        "ECMP (3 directors, BGP), {CONNS} connections each: broken across the loss: mh {} wrr {}; \
         when real 3 then failed: mh {failed} (it held {on_real3}); across the return: mh {} \
         wrr {}",
        first_loss.0, first_loss.1, back.0, back.1
    );
    m.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    mh.join();
    wrr.join();
    let limit = (CONNS / 100) as u64;
    assert!(
        first_loss.0 <= limit && back.0 <= limit,
        "mh broke {} connections across the loss and {} across the return (at most {limit})\n{}",
        first_loss.0,
        back.0,
        m.logs(LOGS)
    );
    assert!(
        (on_real3..=on_real3 + limit).contains(&failed),
        "real 3 held {on_real3} mh connections and {failed} broke when it failed"
    );
    assert!(
        first_loss.1 > (CONNS / 20) as u64,
        "wrr broke only {} connections across the loss: did flows change director?",
        first_loss.1
    );
}
