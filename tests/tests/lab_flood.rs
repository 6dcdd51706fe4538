//! A local user holding connections open to the agent's listeners, end to end in the lab: the
//! agent serves a bounded number of clients at once and answers the rest "busy", so it does
//! not run out of open files, and its health checks (http: a socket each) keep every real up.
//! Should it run out all the same, a check that cannot get a socket is not the real's
//! failure.

use std::{
    io::Read as _,
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, http_get, run_in_netns};
use lvs_tests::agent::{RunningLvs, lab_reals};

/// Connections held open to the metrics port: far more than the agent's open-files limit.
const FLOOD: usize = 1500;
/// The agent's open-files limit in this test.
const NOFILE: &str = "--nofile=256:256";

#[test]
fn idle_connections_to_the_metrics_port_take_no_real_down() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    let metrics = SocketAddr::new(lab.director_v4().into(), 9100);
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let mut config = format!(
        "checkinterval = 1\nchecktimeout = 1\nmetrics = \"{metrics}\"\n\n[[virtual]]\n\
         address = \"{vip}\"\nscheduler = \"rr\"\nchecktype = \"negotiate\"\n\
         service = \"http\"\nrequest = \"/index.html\"\nreceive = \"real\"\n"
    );
    for r in lab.reals() {
        config.push_str(&format!(
            "[[virtual.real]]\naddress = \"{}:80\"\n",
            r.addr_v4
        ));
    }
    let lvs =
        RunningLvs::start_under(&lab, "lvs.toml", &config, &["prlimit", NOFILE, "--"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while lvs.log().matches("real server up").count() < 3 {
        assert!(
            Instant::now() < deadline,
            "three reals not up in 15 s; lvs log:\n{}",
            lvs.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Up is not yet served: the VIP must be served before the flood for "still serves" to
    // mean anything, and each real is in the data plane once its MAC is known too.
    lvs.wait_ready(vip, &lab_reals(&lab, 80, 1), Duration::from_secs(15))
        .unwrap();
    raise_open_files_limit();

    // The flood, from the client: connections that send nothing.
    let held: Vec<TcpStream> = run_in_netns(lab.client_ns(), || {
        (0..FLOOD)
            .filter_map(|_| TcpStream::connect_timeout(&metrics, Duration::from_secs(2)).ok())
            .collect()
    })
    .unwrap();
    assert!(held.len() > 1000, "only {} connections opened", held.len());
    // Those past the limit were answered at once: a 503, then the close.
    let mut busy = 0;
    for mut s in held.iter().rev().take(20) {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        if answer.starts_with(b"HTTP/1.1 503") {
            busy += 1;
        }
    }
    assert_eq!(
        busy, 20,
        "the last connections were not answered busy at once"
    );
    // Three check intervals and timeouts with the flood held: no real goes down, and the VIP
    // still serves.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert!(
            !lvs.log().contains("real server down"),
            "a real went down during the flood; lvs log:\n{}",
            lvs.log()
        );
        lvs.wait_served(vip, Duration::from_secs(2)).unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        lvs.log()
            .contains("clients already connected; refusing more"),
        "the refusal is not logged; lvs log:\n{}",
        lvs.log()
    );
    drop(held);
    // Once the flood is gone, metrics answer again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match http_get(lab.client_ns(), metrics, "/metrics") {
            Ok((200, _)) => break,
            other => assert!(
                Instant::now() < deadline,
                "metrics not answering 10 s after the flood: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!lvs.log().contains("real server down"), "{}", lvs.log());

    // Out of open files all the same (its limit cut to what it holds now plus a few): checks
    // that cannot open a socket fail for a local reason, and no real goes down for it.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", lvs.pid()))
        .unwrap()
        .count();
    let limit = format!("--nofile={}:{}", fds + 8, fds + 8);
    let pid = lvs.pid().to_string();
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &limit])
        .status()
        .unwrap();
    assert!(status.success(), "prlimit --pid {pid} {limit}: {status}");
    let held: Vec<TcpStream> = run_in_netns(lab.client_ns(), || {
        (0..64)
            .filter_map(|_| TcpStream::connect_timeout(&metrics, Duration::from_secs(2)).ok())
            .collect()
    })
    .unwrap();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert!(
            !lvs.log().contains("real server down"),
            "a real went down when the agent ran out of open files; lvs log:\n{}",
            lvs.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    lvs.wait_log(
        "a check could not run for a reason of this host's",
        Duration::from_secs(5),
    )
    .unwrap();
    drop(held);
    assert!(lvs.stop(), "lvs did not stop on SIGTERM within 5 s");
}

/// This test process holds the flood's sockets: its soft open-files limit up to the hard one.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur as usize > FLOOD + 100,
        "open-files limit {} too low for {FLOOD} connections",
        lim.rlim_cur
    );
}
