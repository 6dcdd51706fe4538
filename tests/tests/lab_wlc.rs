//! `wlc` end to end in the namespace lab: a long download held open on one real makes it the
//! loaded one, and the next new connections (opened and closed) all go to the others, as
//! IPVS's weighted least-connection rule says (256 inactive connections weigh as much as one
//! active one).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use lvs::lab::{Lab, LabOptions, run_in_netns};
use lvs_tests::{
    agent::{RunningLvs, counting_config, lab_reals},
    wait,
};

/// Short connections opened after the download.
const SHORT: u64 = 12;
/// The FIN_WAIT timeout of the test's config, in seconds.
const TCPFIN_S: u64 = 2;

/// (address, ActiveConn, InActConn) of each real.
fn reals(lvs: &RunningLvs) -> Vec<(String, u64, u64)> {
    lvs.real_counts()
        .into_iter()
        .map(|r| (r.address, r.active, r.inactive))
        .collect()
}

#[test]
fn wlc_sends_new_connections_away_from_the_real_holding_a_long_download() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let lvs = RunningLvs::start(&lab, &counting_config(&lab, vip, "wlc", TCPFIN_S, "")).unwrap();
    // Every real in the data plane: the short connections must have others to go to.
    lvs.wait_ready(vip, &lab_reals(&lab, 80, 1), Duration::from_secs(15))
        .unwrap();
    // The probe connections age out of FIN_WAIT, and the agent's sweep uncounts them in the
    // data plane too (the scheduler reads those counts, not the status).
    wait::until(
        Duration::from_secs(10 + TCPFIN_S),
        Duration::from_millis(100),
        "the probe connections' entries gone (no connection counted)",
        || Some(()).filter(|_| reals(&lvs).iter().all(|r| r.1 == 0 && r.2 == 0)),
        || format!("reals {:?}", reals(&lvs)),
    );
    // Another second: the sweep runs once a second, after the entries' timeout.
    std::thread::sleep(Duration::from_millis(1500));

    // The long download: a GET of the 32 MiB file, a little of it read, the rest left in
    // flight (the client's window fills; the connection stays ESTABLISHED).
    let mut download = run_in_netns(lab.client_ns(), || {
        let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /big.bin HTTP/1.0\r\n\r\n")
            .expect("request");
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("the download starts");
        assert!(n > 0, "the download sent something");
        s
    })
    .expect("client namespace");
    let loaded = wait::until(
        Duration::from_secs(2),
        Duration::from_millis(20),
        "one real with the download active",
        || {
            let r = reals(&lvs);
            let busy: Vec<&(String, u64, u64)> = r.iter().filter(|r| r.1 == 1).collect();
            (busy.len() == 1 && r.iter().map(|r| r.1).sum::<u64>() == 1).then(|| busy[0].0.clone())
        },
        || format!("reals {:?}", reals(&lvs)),
    );

    // Short connections, each opened and closed by the client.
    run_in_netns(lab.client_ns(), || {
        for _ in 0..SHORT {
            let s = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).expect("connect");
            s.shutdown(std::net::Shutdown::Both).expect("shutdown");
        }
    })
    .expect("client namespace");
    wait::until(
        Duration::from_secs(1),
        Duration::from_millis(20),
        "every short connection on the other reals, none on the downloading one",
        || {
            let r = reals(&lvs);
            let on_loaded = r.iter().find(|x| x.0 == loaded)?;
            let others: u64 = r.iter().filter(|x| x.0 != loaded).map(|x| x.2).sum();
            (on_loaded.1 == 1 && on_loaded.2 == 0 && others == SHORT).then_some(())
        },
        || format!("reals {:?} (the download on {loaded})", reals(&lvs)),
    );
    let mut rest = [0u8; 1024];
    let _ = download.read(&mut rest);
    drop(download);
}
