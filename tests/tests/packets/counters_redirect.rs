//! Counters (packets, bytes, connections) and redirects: a real behind another interface
//! reached by redirect, a redirect to an interface missing from the devmap a counted drop.

use std::time::{Duration, Instant};

use lvs::{
    config::Protocol,
    dataplane::{Dataplane, Target},
};
use lvs_common::stats::DropReason;
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN},
    wait,
    xdp::{pin_to_one_cpu, run},
};

use super::common::*;

#[test]
fn counters_count_packets_bytes_and_connections() {
    let s = service(VIP4, 80, Protocol::Tcp, vec![real(1, 1)]);
    let key = s.key();
    let mut dp = loaded(&[s]);
    let syn = Frame::tcp(CLIENT4, 20000, VIP4, 80, SYN).build();
    let ack = Frame::tcp(CLIENT4, 20000, VIP4, 80, ACK).build();
    run(&mut dp, &syn);
    for _ in 0..9 {
        run(&mut dp, &ack);
    }
    let sid = dp.tables.service_id(&key).unwrap();
    let did = dp.tables.dest_id(&key, real_ip(1)).unwrap();
    for c in [
        dp.tables.stats().service(sid).unwrap(),
        dp.tables.stats().dest(did).unwrap(),
    ] {
        assert_eq!(c.packets, 10);
        assert_eq!(c.connections, 1);
        assert_eq!(c.bytes, (syn.len() + 9 * ack.len()) as u64);
    }
}

#[test]
fn redirect_to_an_interface_missing_from_the_devmap_is_a_counted_drop() {
    let mut r = real(1, 1);
    r.target = Target::Remote {
        mac: real_mac(1),
        src_mac: DIRECTOR_MAC,
        ifindex: 4242,
    };
    // The limit is per CPU: on one CPU its lines come at most once a second.
    pin_to_one_cpu();
    let mut dp = loaded(&[service(VIP4, 80, Protocol::Tcp, vec![r])]);
    let lines = Lines::default();
    let mut logger = aya_log::EbpfLogger::init_with_logger(dp.ebpf(), lines.clone()).unwrap();
    let syn = Frame::tcp(CLIENT4, 20000, VIP4, 80, SYN).build();
    let mut sent = 0u64;
    let mut drop_one = |dp: &mut Dataplane| {
        assert_eq!(run(dp, &syn).verdict, XDP_DROP);
        sent += 1;
    };
    // A burst: one line, not one per packet.
    let t0 = Instant::now();
    for _ in 0..50 {
        drop_one(&mut dp);
    }
    logger.flush();
    let burst = lines.0.lock().unwrap().clone();
    assert!(
        burst.len() == 1 && burst[0].contains("redirect_failed"),
        "a burst of 50 drops: one kernel log line, got {burst:?}"
    );
    // Drops go on for 1.5 s after the first line: a second line a second after it, and no
    // third (that would need 2 s).
    let mut spread = Duration::ZERO;
    while t0.elapsed() < Duration::from_millis(1500) {
        drop_one(&mut dp);
        // The last drop's time, from just before the first: under 2 s, no third line is due.
        spread = t0.elapsed();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        dp.tables.stats().drops(DropReason::RedirectFailed).unwrap(),
        sent,
        "every drop counted"
    );
    logger.flush();
    let lines = lines.0.lock().unwrap();
    assert!(
        spread < Duration::from_secs(2)
            && lines.len() == 2
            && lines.iter().all(|l| l.contains("redirect_failed")),
        "{sent} drops over {spread:?}: two kernel log lines (a second apart), got {lines:?}"
    );
}

/// Collects the kernel program's log lines.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl log::Log for Lines {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}

#[test]
fn a_real_behind_another_interface_is_reached_by_redirect() {
    const XDP_REDIRECT: u32 = 4;
    // A private network namespace for this thread, with a second interface in it.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare the network namespace");
    wait::succeed(std::process::Command::new("ip").args([
        "link", "add", "lvsnic2", "type", "veth", "peer", "name", "lvsnic2p",
    ]));
    let ifindex = nix::net::if_::if_nametoindex("lvsnic2").expect("ifindex");
    let mut r = real(2, 1);
    r.target = Target::Remote {
        mac: real_mac(2),
        src_mac: [0x02, 0, 0, 0, 0, 0x99],
        ifindex,
    };
    let mut dp = loaded(&[service(VIP4, 80, Protocol::Tcp, vec![r])]);
    dp.add_tx_port(ifindex).expect("devmap entry");
    let syn = Frame::tcp(CLIENT4, 20000, VIP4, 80, SYN).build();
    let out = run(&mut dp, &syn);
    assert_eq!(out.verdict, XDP_REDIRECT);
    assert_eq!(&out.frame[..6], &real_mac(2));
    assert_eq!(
        &out.frame[6..12],
        &[0x02, 0, 0, 0, 0, 0x99],
        "source MAC of the egress interface"
    );
}
