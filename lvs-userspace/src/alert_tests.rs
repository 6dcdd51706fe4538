use super::command::split_words;
use super::mail::{format_message, rfc2822_date, smtp_target};
use super::*;
use crate::config::model::Globals;
use std::{path::Path, time::UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;

/// Awaits `fut` for at most `secs` seconds: a longer wait fails the test, naming `what` it
/// waited for.
async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("waited {secs} s for {what}"),
    }
}

impl Pending {
    /// [`Pending::wait`], bounded: every job here has a timeout of at most 5 s.
    async fn wait_within(self) -> Vec<Result<(), AlertError>> {
        within(20, "the alert's commands and mails to end", self.wait()).await
    }
}

/// Whether process `pid` is gone: no longer in /proc, or a zombie (killed, waiting to be
/// reaped by whoever inherited it).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// One SMTP session as the sink saw it.
#[derive(Clone, Debug, Default)]
struct Session {
    commands: Vec<String>,
    data: String,
}

/// A minimal SMTP server on 127.0.0.1 that accepts every mail and records the dialogue.
/// It serves at most `max` sessions and stops when dropped.
struct Sink {
    addr: SocketAddr,
    sessions: Arc<Mutex<Vec<Session>>>,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    async fn start(max: usize) -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let rec = Arc::clone(&sessions);
        let task = tokio::spawn(async move {
            for _ in 0..max {
                let Ok((sock, _)) = l.accept().await else {
                    return;
                };
                let s = tokio::time::timeout(Duration::from_secs(10), serve(sock))
                    .await
                    .unwrap_or_default();
                rec.lock().unwrap().push(s);
            }
        });
        Sink {
            addr,
            sessions,
            task,
        }
    }

    fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().unwrap().clone()
    }
}

async fn serve(sock: TcpStream) -> Session {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    let mut s = Session::default();
    w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
    let mut in_data = false;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return s;
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                w.write_all(b"250 queued\r\n").await.unwrap();
            } else {
                s.data.push_str(&line);
            }
            continue;
        }
        let cmd = line.trim_end().to_string();
        s.commands.push(cmd.clone());
        let up = cmd.to_ascii_uppercase();
        let reply: &[u8] = if up.starts_with("EHLO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if up.starts_with("DATA") {
            in_data = true;
            b"354 go ahead\r\n"
        } else if up.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await.unwrap();
            return s;
        } else {
            b"250 ok\r\n"
        };
        w.write_all(reply).await.unwrap();
    }
}

fn globals_mail(sink: &Sink) -> Globals {
    Globals {
        email_alert: vec!["a@x.y, b@x.y".to_string()],
        email_alert_from: Some("\"LB alerts\" <lb@x.y>".to_string()),
        smtp: Some(sink.addr.to_string()),
        ..Globals::default()
    }
}

fn change(state: RealState) -> StateChange {
    StateChange {
        virtual_service: "198.18.0.100:80/tcp".to_string(),
        real: "10.0.0.2:80".parse().unwrap(),
        new_state: state,
        message: "connect: connection refused".to_string(),
    }
}

fn alerter(g: &Globals) -> Alerter {
    Alerter::with_timeouts(g, Duration::from_millis(500), Duration::from_secs(5))
}

fn all_ok(results: Vec<Result<(), AlertError>>) {
    for r in results {
        r.unwrap();
    }
}

/// A fresh, empty scratch directory for one test.
fn scratch(name: &str) -> crate::testdir::TestDir {
    crate::testdir::TestDir::new(&format!("alert-{name}"))
}

#[tokio::test]
async fn down_mails_every_recipient_once() {
    let sink = Sink::start(4).await;
    let a = alerter(&globals_mail(&sink));
    let p = a.on_change(&change(RealState::Down)).await;
    assert_eq!(p.len(), 1);
    all_ok(p.wait_within().await);
    let s = sink.sessions();
    assert_eq!(s.len(), 1, "{s:?}");
    let c = &s[0].commands;
    assert!(c[0].starts_with("EHLO "), "{c:?}");
    assert_eq!(c[1], "MAIL FROM:<lb@x.y>");
    assert_eq!(c[2], "RCPT TO:<a@x.y>");
    assert_eq!(c[3], "RCPT TO:<b@x.y>");
    assert_eq!(c[4], "DATA");
    assert_eq!(c[5], "QUIT");
    let d = &s[0].data;
    assert!(
        d.contains("Subject: Deleted real server: 10.0.0.2:80 (198.18.0.100:80/tcp)\r\n"),
        "{d}"
    );
    assert!(d.contains("From: \"LB alerts\" <lb@x.y>\r\n"), "{d}");
    assert!(d.contains("To: a@x.y, b@x.y\r\n"), "{d}");
    assert!(d.contains("\r\nDate: "), "{d}");
    assert!(d.contains("Daemon-Status: running\r\n"), "{d}");
    assert!(
        d.contains("Check-Result: connect: connection refused\r\n"),
        "{d}"
    );

    // Coming back is mailed too, as "Added".
    all_ok(
        a.on_change(&change(RealState::Up))
            .await
            .wait_within()
            .await,
    );
    let s = sink.sessions();
    assert_eq!(s.len(), 2);
    assert!(
        s[1].data
            .contains("Subject: Added real server: 10.0.0.2:80 (198.18.0.100:80/tcp)")
    );
}

#[tokio::test]
async fn emailalertstatus_filters_on_the_daemon_phase() {
    let sink = Sink::start(4).await;
    let mut g = globals_mail(&sink);
    g.email_alert_status = AlertStatus {
        starting: true,
        stopping: false,
        running: false,
        sent: false,
    };
    let a = alerter(&g);
    let p = a.on_change(&change(RealState::Down)).await;
    assert!(p.is_empty(), "mail started in the running phase");
    assert!(sink.sessions().is_empty());

    a.set_phase(DaemonPhase::Starting);
    all_ok(
        a.on_change(&change(RealState::Up))
            .await
            .wait_within()
            .await,
    );
    let s = sink.sessions();
    assert_eq!(s.len(), 1);
    assert!(s[0].data.contains("Daemon-Status: starting"));
}

#[tokio::test]
async fn emailalertfreq_resends_while_down() {
    let sink = Sink::start(8).await;
    let mut g = globals_mail(&sink);
    g.email_alert_freq = Duration::from_secs(60);
    let a = alerter(&g);
    let t0 = Instant::now();
    all_ok(
        a.on_change_at(&change(RealState::Down), t0)
            .wait_within()
            .await,
    );
    assert!(a.tick(t0 + Duration::from_secs(59)).is_empty());
    let p = a.tick(t0 + Duration::from_secs(60));
    assert_eq!(p.len(), 1);
    all_ok(p.wait_within().await);
    // The reminder restarts the clock.
    assert!(a.tick(t0 + Duration::from_secs(100)).is_empty());
    let s = sink.sessions();
    assert_eq!(s.len(), 2);
    assert!(
        s[1].data
            .contains("Subject: Inaccessible real server: 10.0.0.2:80 (198.18.0.100:80/tcp)"),
        "{}",
        s[1].data
    );
    // Once it is back up, no more reminders.
    all_ok(
        a.on_change_at(&change(RealState::Up), t0 + Duration::from_secs(110))
            .wait_within()
            .await,
    );
    assert!(a.tick(t0 + Duration::from_secs(1000)).is_empty());
    assert_eq!(sink.sessions().len(), 3);
}

#[tokio::test]
async fn reconfigured_keeps_reminders_phase_and_fallback_state() {
    let sink = Sink::start(4).await;
    let mut g = globals_mail(&sink);
    g.email_alert_freq = Duration::from_secs(60);
    let a = alerter(&g);
    a.set_phase(DaemonPhase::Reloading);
    let t0 = Instant::now();
    all_ok(
        a.on_change_at(&change(RealState::Down), t0)
            .wait_within()
            .await,
    );
    let vip: SocketAddr = "198.18.0.100:80".parse().unwrap();
    all_ok(
        a.fallback("/bin/true", true, vip, Protocol::Tcp)
            .wait_within()
            .await,
    );

    let b = a.reconfigured(&g);
    assert_eq!(b.phase(), DaemonPhase::Reloading);
    assert!(b.fallback("/bin/true", true, vip, Protocol::Tcp).is_empty());
    assert!(b.tick(t0 + Duration::from_secs(30)).is_empty());
    all_ok(b.tick(t0 + Duration::from_secs(60)).wait_within().await);
    assert_eq!(sink.sessions().len(), 2);

    g.email_alert_freq = Duration::ZERO;
    let c = b.reconfigured(&g);
    assert!(c.tick(t0 + Duration::from_secs(1000)).is_empty());
}

#[tokio::test]
async fn emailalertfreq_zero_never_resends() {
    let sink = Sink::start(4).await;
    let a = alerter(&globals_mail(&sink));
    let t0 = Instant::now();
    all_ok(
        a.on_change_at(&change(RealState::Down), t0)
            .wait_within()
            .await,
    );
    assert!(a.tick(t0 + Duration::from_secs(100_000)).is_empty());
}

#[tokio::test]
async fn notify_gets_real_service_and_state() {
    let dir = scratch("notify");
    let out = dir.join("argv");
    let g = Globals {
        notify: Some(format!(
            "/bin/sh -c 'printf \"%s\\n\" \"$@\" > \"$0\"' {}",
            out.display()
        )),
        ..Globals::default()
    };
    let a = alerter(&g);
    let p = a.on_change(&change(RealState::Down)).await;
    assert_eq!(p.len(), 1);
    all_ok(p.wait_within().await);
    let argv = std::fs::read_to_string(&out).unwrap();
    assert_eq!(argv, "10.0.0.2:80\n198.18.0.100:80/tcp\ndown\n");
}

#[tokio::test]
async fn hanging_notify_is_killed_with_its_process_group_after_the_timeout() {
    let dir = scratch("hang");
    let pidfile = dir.join("pid");
    // The hook starts a grandchild (in its process group) and waits for it.
    let g = Globals {
        notify: Some(format!(
            "/bin/sh -c 'sleep 60 & echo $! > \"$0.tmp\"; mv \"$0.tmp\" \"$0\"; wait' {}",
            pidfile.display()
        )),
        ..Globals::default()
    };
    // The timeout leaves the shell ample time to start its grandchild on a loaded machine.
    let timeout = Duration::from_secs(2);
    let a = Alerter::with_timeouts(&g, timeout, Duration::from_secs(1));
    let r = a
        .on_change(&change(RealState::Up))
        .await
        .wait_within()
        .await;
    assert!(
        matches!(r.as_slice(), [Err(AlertError::CommandTimeout { .. })]),
        "{r:?}"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("the hook did not start its grandchild within {timeout:?}: {e}"))
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is delivered at once, but the kernel may take a moment to tear it down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed = gone(pid);
    if !killed {
        // SAFETY: kill(2) with a pid and a signal; no memory is involved.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(
        killed,
        "the hook's grandchild {pid} outlived the timeout: its process group was not killed"
    );
}

#[tokio::test]
async fn fallback_command_gets_ldirectord_arguments_once_per_word() {
    let dir = scratch("fallback");
    let out = dir.join("argv");
    let cmd = format!("/bin/sh -c 'echo \"$@\" >> \"$0\"' {}", out.display());
    let a = alerter(&Globals::default());
    let vip: SocketAddr = "198.18.0.100:80".parse().unwrap();
    all_ok(
        a.fallback(&cmd, true, vip, Protocol::Tcp)
            .wait_within()
            .await,
    );
    assert!(a.fallback(&cmd, true, vip, Protocol::Tcp).is_empty());
    all_ok(
        a.fallback(&cmd, false, vip, Protocol::Tcp)
            .wait_within()
            .await,
    );
    let udp: SocketAddr = "[2001:db8::1]:53".parse().unwrap();
    within(
        20,
        "the fallback command",
        run_fallback_command(&cmd, true, udp, Protocol::Udp, Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "start 198.18.0.100:80 tcp\nstop 198.18.0.100:80 tcp\nstart [2001:db8::1]:53 udp\n"
    );
}

#[tokio::test]
async fn callback_gets_the_config_path() {
    let dir = scratch("callback");
    let out = dir.join("argv");
    let cmd = format!("/bin/sh -c 'echo \"$1\" > \"$0\"' {}", out.display());
    within(
        20,
        "the callback",
        run_callback(&cmd, Path::new("/etc/lvs/lvs.cf"), Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "/etc/lvs/lvs.cf\n");
}

#[tokio::test]
async fn a_real_script_runs_with_no_argument_added() {
    let dir = scratch("real-script");
    let out = dir.join("args");
    let script = format!("/bin/sh -c 'echo \"$#\" > {}' sh", out.display());
    let a = alerter(&Globals::default());
    all_ok(a.real_script(&script).wait_within().await);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "0\n");
}

#[tokio::test]
async fn failing_and_missing_commands_are_errors() {
    let r = within(
        20,
        "/bin/false as a callback",
        run_callback("/bin/false", Path::new("x"), Duration::from_secs(5)),
    )
    .await;
    assert!(matches!(r, Err(AlertError::CommandFailed { .. })), "{r:?}");
    let r = within(
        20,
        "a missing callback",
        run_callback("/nonexistent/cb", Path::new("x"), Duration::from_secs(5)),
    )
    .await;
    assert!(matches!(r, Err(AlertError::Spawn { .. })), "{r:?}");
    let r = within(
        20,
        "a malformed callback",
        run_callback("'unterminated", Path::new("x"), Duration::from_secs(5)),
    )
    .await;
    assert!(matches!(r, Err(AlertError::BadCommand { .. })), "{r:?}");
}

#[tokio::test]
async fn smtp_server_down_is_an_error_not_a_panic() {
    // Find a loopback port with nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let g = Globals {
        email_alert: vec!["a@x.y".to_string()],
        smtp: Some(format!("127.0.0.1:{port}")),
        ..Globals::default()
    };
    let a = alerter(&g);
    let r = a
        .on_change(&change(RealState::Down))
        .await
        .wait_within()
        .await;
    assert!(
        matches!(
            r.as_slice(),
            [Err(AlertError::SmtpIo {
                stage: "connect",
                ..
            })]
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn smtp_rejection_is_reported() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (sock, _) = l.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"554 go away\r\n").await.unwrap();
        let mut line = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), r.read_line(&mut line)).await;
    });
    let g = Globals {
        email_alert: vec!["a@x.y".to_string()],
        smtp: Some(addr.to_string()),
        ..Globals::default()
    };
    let r = alerter(&g)
        .on_change(&change(RealState::Down))
        .await
        .wait_within()
        .await;
    server.abort();
    assert!(
        matches!(
            r.as_slice(),
            [Err(AlertError::SmtpRejected {
                stage: "greeting",
                ..
            })]
        ),
        "{r:?}"
    );
}

#[test]
fn words_split_like_a_shell() {
    assert_eq!(
        split_words(r#"/bin/x  'a b' "c \"d\" $e" f\ g"#).unwrap(),
        vec!["/bin/x", "a b", "c \"d\" $e", "f g"]
    );
    assert_eq!(split_words("").unwrap(), Vec::<String>::new());
    assert_eq!(split_words("''").unwrap(), vec![""]);
    assert!(split_words("\"open").is_err());
}

#[test]
fn smtp_targets() {
    assert_eq!(smtp_target("mail.x.y"), Some(("mail.x.y".into(), 25)));
    assert_eq!(
        smtp_target("mail.x.y:2525"),
        Some(("mail.x.y".into(), 2525))
    );
    assert_eq!(smtp_target("10.0.0.1"), Some(("10.0.0.1".into(), 25)));
    assert_eq!(smtp_target("[::1]:587"), Some(("::1".into(), 587)));
    assert_eq!(smtp_target("::1"), Some(("::1".into(), 25)));
    assert_eq!(smtp_target("[::1]"), Some(("::1".into(), 25)));
    assert_eq!(smtp_target("host:port"), None);
    assert_eq!(smtp_target("10.0.0.010"), None);
    assert_eq!(smtp_target("10.1:25"), None);
}

#[test]
fn dates_and_dot_stuffing() {
    let t = UNIX_EPOCH + Duration::from_secs(1_795_547_090);
    assert_eq!(rfc2822_date(t), "Tue, 24 Nov 2026 19:04:50 +0000");
    assert_eq!(rfc2822_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
    let m = MailSettings {
        recipients: vec!["a@x.y".into()],
        from_header: "f@x.y".into(),
        envelope_from: "f@x.y".into(),
        server: String::new(),
        hostname: "h".into(),
        timeout: Duration::from_secs(1),
        security: SmtpSecurity::default(),
    };
    let msg = format_message(&m, "s\r\nBcc: evil@x.y", ".hidden\nok", UNIX_EPOCH);
    assert!(msg.contains("Subject: s  Bcc: evil@x.y\r\n"), "{msg}");
    assert!(msg.ends_with("\r\n\r\n..hidden\r\nok\r\n.\r\n"), "{msg}");
}
