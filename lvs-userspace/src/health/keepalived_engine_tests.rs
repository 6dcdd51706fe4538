//! keepalived's checking through the health engine, on loopback: `retry` and
//! `delay_before_retry` (a real that starts failing goes down after `retry + 1` failed checks,
//! the retries spaced by `delay_before_retry`, not `delay_loop`, and is checked at
//! `delay_loop` again once down), and `FILE_CHECK`.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    time::Instant,
};

use super::{tests::within, *};

/// An http server answering 200 while `healthy`, else 500, noting when each failing
/// request came.
async fn server(healthy: Arc<AtomicBool>, failed: Arc<Mutex<Vec<Instant>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (healthy, failed) = (healthy.clone(), failed.clone());
            tokio::spawn(async move {
                let mut b = [0u8; 2048];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
                        Ok(Ok(n)) if n > 0 => req.extend_from_slice(&b[..n]),
                        _ => return,
                    }
                }
                let answer: &[u8] = if healthy.load(Ordering::SeqCst) {
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                } else {
                    failed.lock().unwrap().push(Instant::now());
                    b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                };
                let _ = s.write_all(answer).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn down_after_retry_plus_one_failures_spaced_by_delay_before_retry() {
    let healthy = Arc::new(AtomicBool::new(true));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let addr = server(healthy.clone(), failed.clone()).await;
    let text = format!(
        "virtual_server 192.0.2.1 80 {{
  delay_loop 6
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 127.0.0.1 {port} {{
    HTTP_GET {{
      url {{
        path /health
        status_code 200
      }}
      connect_timeout 1
      retry 2
      delay_before_retry 1
    }}
  }}
}}
",
        port = addr.port()
    );
    let config = crate::config::keepalived::parse_str(Path::new("k.conf"), &text).unwrap();
    let v = &config.virtuals[0];
    let target = TargetSpec::from_config(v, &v.reals[0]);
    assert_eq!(target.key.failure_count, 3, "retry 2: the third failure");
    assert_eq!(target.key.retry_interval, Some(Duration::from_secs(1)));
    let (health, mut rx) = HealthChecker::default().spawn();
    health.set_targets(vec![target]);
    let ev = within(5, "the first check", rx.recv()).await.unwrap();
    assert_eq!(ev.state, HardState::Up, "{}", ev.result.message);
    healthy.store(false, Ordering::SeqCst);
    // Soft-failing events, then down.
    let down_at = loop {
        let ev = within(15, "the real to go down", rx.recv()).await.unwrap();
        let failures = failed.lock().unwrap().len();
        if ev.state == HardState::Down {
            assert_eq!(
                failures, 3,
                "down at the third failed check, not before or after"
            );
            break Instant::now();
        }
        assert!(
            ev.soft_failing && failures < 3,
            "{failures} failures, still up"
        );
    };
    let times = failed.lock().unwrap().clone();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        // delay_before_retry (1 s) after each failure, far from delay_loop (6 s).
        assert!(
            gap >= Duration::from_millis(900) && gap < Duration::from_secs(3),
            "retries {gap:?} apart: {times:?}"
        );
    }
    // Down: the next check comes at delay_loop, not at delay_before_retry.
    within(10, "the check after the real went down", async {
        while failed.lock().unwrap().len() < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let fourth = failed.lock().unwrap()[3];
    let gap = fourth - times[2];
    assert!(
        gap >= Duration::from_secs(5),
        "checked {gap:?} after going down (delay_loop 6 s); went down at {:?}",
        down_at - times[2]
    );
}

#[tokio::test]
async fn file_check_takes_the_real_down_and_up_and_sets_its_weight() {
    let dir = crate::testdir::TestDir::new("file-engine");
    let (flag, level) = (dir.join("flag"), dir.join("level"));
    std::fs::write(&flag, "0\n").unwrap();
    std::fs::write(&level, "3\n").unwrap();
    let text = format!(
        "track_file flag {{\n  file {}\n  weight 0\n}}\n\
         track_file level {{\n  file {}\n  weight 2\n}}\n\
         virtual_server 192.0.2.1 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
           real_server 127.0.0.1 8080 {{\n    weight 1\n    FILE_CHECK {{\n      track_file flag\n    }}\n  }}\n}}\n\
         virtual_server 192.0.2.1 81 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
           real_server 127.0.0.1 8081 {{\n    weight 1\n    FILE_CHECK {{\n      track_file level\n    }}\n  }}\n}}\n",
        flag.display(),
        level.display()
    );
    let config = crate::config::keepalived::parse_str(Path::new("k.conf"), &text).unwrap();
    let targets: Vec<TargetSpec> = config
        .virtuals
        .iter()
        .map(|v| TargetSpec::from_config(v, &v.reals[0]))
        .collect();
    let (flag_key, level_key) = (targets[0].key.clone(), targets[1].key.clone());
    let (health, mut rx) = HealthChecker::default().spawn();
    health.set_targets(targets);
    // The first checks, in either order: the flag up; the level up with weight 2 × 3 added to
    // the real's weight 1.
    for _ in 0..2 {
        let ev = within(10, "the first checks", rx.recv()).await.unwrap();
        if ev.key == flag_key {
            assert_eq!(ev.state, HardState::Up, "{}", ev.result.message);
        } else {
            assert_eq!(ev.key, level_key);
            assert_eq!((ev.state, ev.result.weight), (HardState::Up, Some(7)));
        }
    }
    let mut next = async |key: &CheckKey, what: &str| loop {
        let ev = within(10, what, rx.recv()).await.unwrap();
        if ev.key == *key {
            return ev;
        }
    };
    std::fs::write(&flag, "1\n").unwrap();
    let ev = next(&flag_key, "the flag to take the real down").await;
    assert_eq!(ev.state, HardState::Down, "{}", ev.result.message);
    std::fs::write(&flag, "0\n").unwrap();
    let ev = next(&flag_key, "the flag to bring it back").await;
    assert_eq!(ev.state, HardState::Up);
    std::fs::write(&level, "-1\n").unwrap();
    let ev = next(&level_key, "the level's new weight").await;
    assert_eq!((ev.state, ev.result.weight), (HardState::Up, Some(0)));
}
