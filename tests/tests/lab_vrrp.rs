//! Two directors under Debian's keepalived (VRRP only: a `vrrp_instance`, no
//! `virtual_server`), each running lvs with the same config: an `mh` service and a `wrr`
//! service on one VIP, three reals. 500 long-lived TCP connections through each service send
//! a small request about every 100 ms and check every answer. The master is killed (SIGKILL to
//! its lvs and its keepalived, its link down), keepalived moves the VIP to the backup, then the
//! master comes back and takes the VIP again. The connections broken across each event are
//! counted for both schedulers: `mh` must lose at most 1% (none expected: the reals do not
//! change), `wrr` shows what the loss costs without it.
//!
//! One bridge holds the client, both directors and the reals ([`lvs_tests::multidir`]).
//! Needs root, iproute2, ethtool, keepalived.

use std::{process::Command, time::Duration};

use lvs_tests::{
    multidir::{CONNS, Clients, MH_PORT, Multi, VIP, WRR_PORT, host, sh},
    wait::{self, until},
};

const LOGS: &[&str] = &["lvs-d1", "lvs-d2", "keepalived-d1", "keepalived-d2"];

/// Starts keepalived (VRRP only) on director `d`; d1 has the higher priority.
fn start_keepalived(m: &mut Multi, d: usize) {
    let conf = m.dir.join(format!("keepalived-d{d}.conf"));
    std::fs::write(
        &conf,
        format!(
            "global_defs {{\n  router_id d{d}\n}}\n\
             vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
             priority {}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/32 dev eth0\n  }}\n}}\n",
            if d == 1 { 150 } else { 100 }
        ),
    )
    .unwrap();
    let p = |what: &str| m.dir.join(format!("keepalived-d{d}.{what}.pid"));
    let (pid, vrrp, checkers) = (p("main"), p("vrrp"), p("checkers"));
    let ns = m.ns(&format!("d{d}"));
    let args = [
        "-n",
        "-l",
        "-D",
        "-P",
        "-f",
        conf.to_str().unwrap(),
        "-p",
        pid.to_str().unwrap(),
        "-r",
        vrrp.to_str().unwrap(),
        "-c",
        checkers.to_str().unwrap(),
    ];
    m.spawn(&format!("keepalived-d{d}"), &ns, "keepalived", &args);
}

fn holds_vip(m: &Multi, d: usize) -> bool {
    let out = wait::output(Command::new("ip").args([
        "-n",
        &m.ns(&format!("d{d}")),
        "-4",
        "addr",
        "show",
        "dev",
        "eth0",
    ]));
    String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/32"))
}

/// Waits until director `d` holds the VIP and, if `alone`, the other does not (a killed
/// keepalived leaves its VIP on a link that is down).
fn vip_on(m: &Multi, d: usize, alone: bool, what: &str, within: Duration) {
    let other = 3 - d;
    until(
        within,
        Duration::from_millis(100),
        what,
        || (holds_vip(m, d) && !(alone && holds_vip(m, other))).then_some(()),
        || m.logs(LOGS),
    );
}

#[test]
fn vrrp_failover_and_return_keep_mh_connections() {
    let mut m = Multi::create();
    let client = m.add_host("client", "198.18.0.10/24");
    for d in [1u8, 2] {
        let ns = m.add_host(&format!("d{d}"), &format!("{}/24", host(1 + d)));
        sh(
            Some(&ns),
            "for c in all eth0; do echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce; done",
        );
    }
    m.add_reals(None);
    for d in [1, 2] {
        m.start_lvs(d);
        start_keepalived(&mut m, d);
    }
    vip_on(
        &m,
        1,
        true,
        "director 1 holds the VIP",
        Duration::from_secs(20),
    );
    m.wait_reals_up(&[1, 2], || m.logs(LOGS));
    m.wait_served(&client, || m.logs(LOGS));

    let mh = Clients::start(&client, MH_PORT, m.stop.clone());
    let wrr = Clients::start(&client, WRR_PORT, m.stop.clone());
    mh.two_passes("mh clients: a steady start", || m.logs(LOGS));
    wrr.two_passes("wrr clients: a steady start", || m.logs(LOGS));
    assert_eq!(
        (mh.broken(), wrr.broken()),
        (0, 0),
        "connections broke before any event"
    );

    // The master dies: SIGKILL to its lvs and keepalived, its link down. keepalived moves the
    // VIP to director 2.
    m.kill("lvs-d1");
    m.kill("keepalived-d1");
    sh(Some(&m.ns("d1")), "ip link set eth0 down");
    vip_on(
        &m,
        2,
        false,
        "director 2 takes the VIP",
        Duration::from_secs(20),
    );
    mh.two_passes("mh clients after the loss", || m.logs(LOGS));
    wrr.two_passes("wrr clients after the loss", || m.logs(LOGS));
    let loss = (mh.broken(), wrr.broken());

    // It comes back: link up, lvs and keepalived started again; it takes the VIP back.
    sh(Some(&m.ns("d1")), "ip link set eth0 up");
    m.start_lvs(1);
    // Its reals in its data plane before its keepalived can take the VIP back: an mh table
    // without one of them would send that real's flows elsewhere.
    m.wait_reals_up(&[1], || m.logs(LOGS));
    start_keepalived(&mut m, 1);
    vip_on(
        &m,
        1,
        true,
        "director 1 takes the VIP back",
        Duration::from_secs(30),
    );
    mh.two_passes("mh clients after the return", || m.logs(LOGS));
    wrr.two_passes("wrr clients after the return", || m.logs(LOGS));
    let back = (mh.broken() - loss.0, wrr.broken() - loss.1);

    println!(
        "VRRP, {CONNS} connections each: broken across the loss: mh {} wrr {}; across the \
         return: mh {} wrr {}",
        loss.0, loss.1, back.0, back.1
    );
    m.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    mh.join();
    wrr.join();
    let limit = (CONNS / 100) as u64;
    assert!(
        loss.0 <= limit && back.0 <= limit,
        "mh broke {} connections across the loss and {} across the return (at most {limit})\n{}",
        loss.0,
        back.0,
        m.logs(LOGS)
    );
    // The flows did change director: without a consistent table, most of them break.
    assert!(
        loss.1 > (CONNS / 4) as u64,
        "wrr broke only {} connections across the loss: did the flows change director?",
        loss.1
    );
}
