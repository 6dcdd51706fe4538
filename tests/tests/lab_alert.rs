//! Alerts end to end: a real that fails its checks is mailed about through an SMTP sink in
//! the lab, and the `notify` command is run with the real, the service and the new state.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener},
    sync::mpsc,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, LabOptions, run_in_netns};
use lvs_tests::agent::RunningLvs;

/// Runs a one-connection-at-a-time SMTP sink on 127.0.0.1:2525 in namespace `ns`; each mail's
/// DATA (with its envelope) arrives on the returned channel.
fn smtp_sink(ns: &str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let ns = ns.to_string();
    std::thread::spawn(move || {
        let _ = run_in_netns(&ns, move || {
            let listener = TcpListener::bind("127.0.0.1:2525").expect("bind the sink");
            ready_tx.send(()).unwrap();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut mail = String::new();
                let mut in_data = false;
                let _ = conn.write_all(b"220 sink ready\r\n");
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            let _ = conn.write_all(b"250 queued\r\n");
                            if tx.send(std::mem::take(&mut mail)).is_err() {
                                return;
                            }
                        } else {
                            mail.push_str(&line);
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = conn.write_all(b"221 bye\r\n");
                            break;
                        }
                        _ => {
                            mail.push_str(&line);
                            b"250 ok\r\n"
                        }
                    };
                    let _ = conn.write_all(reply);
                }
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("SMTP sink started");
    rx
}

#[test]
fn a_failing_real_is_mailed_about_and_notified() {
    let lab = Lab::create(LabOptions {
        big_file_size: 1024,
        ..LabOptions::default()
    })
    .unwrap();
    let mails = smtp_sink(lab.director_ns());
    let notified = lab.work_dir().join("notified");
    let script = lab.work_dir().join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", notified.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = format!(
        r#"
checkinterval = 1
checktimeout = 1
emailalert = "ops@example.org"
emailalertfrom = "lvs@example.org"
smtp = "127.0.0.1:2525"
notify = "{}"

[[virtual]]
address = "198.18.0.100:80"
checktype = "connect"
[[virtual.real]]
address = "198.18.0.11:80"
[[virtual.real]]
address = "198.18.0.12:80"
"#,
        script.display()
    );
    let lvs = RunningLvs::start(&lab, &config).unwrap();
    lvs.wait_served(
        SocketAddr::new(lab.vip_v4().into(), 80),
        Duration::from_secs(15),
    )
    .unwrap();
    // Mails about the reals coming up at start may arrive first; wait (10 s in all) for the
    // one that counts.
    lab.stop_server(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match mails.recv_timeout(left) {
            Ok(m) => {
                if m.contains("Deleted real server: 198.18.0.12:80") {
                    break Some(m);
                }
                got.push(m);
            }
            Err(_) => break None,
        }
    };
    let mail = found.unwrap_or_else(|| {
        panic!(
            "no mail about 198.18.0.12 going down within 10 s; got {got:?}\n{}",
            lvs.log()
        )
    });
    assert!(
        mail.contains("RCPT TO:<ops@example.org>"),
        "envelope: {mail}"
    );
    assert!(
        mail.contains("198.18.0.100:80/tcp"),
        "names the service: {mail}"
    );

    // The notify command runs beside the mail: 5 s at most.
    let mut lines = String::new();
    for _ in 0..50 {
        lines = std::fs::read_to_string(&notified).unwrap_or_default();
        if lines.contains("198.18.0.12:80 198.18.0.100:80/tcp down") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        lines.contains("198.18.0.12:80 198.18.0.100:80/tcp down"),
        "notify ran with the real, the service and the state: {lines:?}"
    );
    assert!(lvs.stop());
}
