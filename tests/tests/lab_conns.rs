//! ActiveConn and InActConn end to end in the namespace lab: connections opened through the
//! VIP count as active, those the client closed as inactive until the FIN_WAIT timeout.

use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use lvs::lab::{Lab, LabOptions, run_in_netns};
use lvs_tests::{
    agent::{RunningLvs, counting_config},
    wait,
};

/// Connections opened, and of them closed by the client.
const N: usize = 12;
const M: usize = 5;
/// The FIN_WAIT timeout of the test's config, in seconds.
const TCPFIN_S: u64 = 2;

/// (ActiveConn, InActConn) summed over the service's reals.
fn counts(lvs: &RunningLvs) -> (u64, u64) {
    lvs.real_counts()
        .iter()
        .fold((0, 0), |(a, i), r| (a + r.active, i + r.inactive))
}

#[test]
fn active_and_inactive_connections_follow_the_clients_closes_and_the_fin_timeout() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let lvs = RunningLvs::start(&lab, &counting_config(&lab, vip, "rr", TCPFIN_S, "")).unwrap();
    lvs.wait_served(vip, Duration::from_secs(15)).unwrap();
    // The connections wait_served made are closed: let them age out of FIN_WAIT first (their
    // entries are counted as inactive until then).
    wait::until(
        Duration::from_secs(10 + TCPFIN_S),
        Duration::from_millis(100),
        "the probe connections' entries gone (no connection counted)",
        || Some(()).filter(|_| counts(&lvs) == (0, 0)),
        || format!("counts (active, inactive) {:?}", counts(&lvs)),
    );

    let mut streams: Vec<TcpStream> = run_in_netns(lab.client_ns(), || {
        (0..N)
            .map(|_| TcpStream::connect_timeout(&vip, Duration::from_secs(5)).expect("connect"))
            .collect()
    })
    .expect("client namespace");
    // The client closes M of them (a FIN each).
    for s in streams.drain(..M) {
        s.shutdown(std::net::Shutdown::Both).expect("shutdown");
        drop(s);
    }
    let want = ((N - M) as u64, M as u64);
    wait::until(
        Duration::from_secs(1),
        Duration::from_millis(20),
        "ActiveConn N-M and InActConn M",
        || Some(()).filter(|_| counts(&lvs) == want),
        || {
            format!(
                "counts (active, inactive) {:?}, want {want:?}",
                counts(&lvs)
            )
        },
    );

    // After the FIN_WAIT timeout the closed ones are gone; the open ones stay active.
    let want = ((N - M) as u64, 0);
    wait::until(
        Duration::from_secs(TCPFIN_S + 5),
        Duration::from_millis(100),
        "InActConn 0 after the FIN_WAIT timeout",
        || Some(()).filter(|_| counts(&lvs) == want),
        || {
            format!(
                "counts (active, inactive) {:?}, want {want:?}",
                counts(&lvs)
            )
        },
    );
    drop(streams);
}
