//! keepalived's `connect_ip`, `bindto`, `bind_port`, `bind_if` and checker `fwmark`, through
//! the probe the engine builds, against loopback servers that record who connected.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, UdpSocket},
    sync::mpsc,
};

use super::*;
use crate::config::model::{CheckService, CheckSpec, CheckType, Protocol};
use crate::health::{
    CheckKey,
    connector::Connector,
    ping::Pinger,
    probe::{CheckError, Probe},
    tests::{ipv6_loopback, real, spec, virtual_service, within},
};

/// An address of 127/8 that is this host's (every one is, on `lo`).
const SOURCE: &str = "127.0.0.5";
/// An address this host does not hold (TEST-NET-3).
const FOREIGN: &str = "203.0.113.77";

fn from(addr: &str) -> CheckSource {
    CheckSource {
        address: Some(addr.parse().unwrap()),
        ..Default::default()
    }
}

fn check(check_type: CheckType, service: CheckService, source: CheckSource) -> CheckSpec {
    let mut c = spec(check_type);
    c.service = service;
    c.timeout = Duration::from_secs(2);
    c.negotiate_timeout = Duration::from_secs(2);
    c.source = source;
    c
}

/// The key the engine makes for `c` of the real at `at` (checked at `check_address` if set),
/// of a `protocol` service.
fn key(
    c: CheckSpec,
    at: SocketAddr,
    check_address: Option<IpAddr>,
    protocol: Protocol,
) -> CheckKey {
    let mut r = real(at);
    r.check_address = check_address;
    let vip = if at.is_ipv4() {
        "10.0.0.1:80"
    } else {
        "[fd00::1]:80"
    };
    let mut vs = virtual_service(vip, c, vec![r.clone()]);
    vs.protocol = protocol;
    CheckKey::from_config(&vs, &r)
}

/// Runs `key`'s probe once, through a connector when `pooled`.
async fn run(key: &CheckKey, pooled: bool) -> Result<String, CheckError> {
    let connector = pooled.then(|| Arc::new(Connector::new().unwrap()));
    run_on(key, connector.as_ref()).await
}

/// Runs `key`'s probe once, through `connector` if any.
async fn run_on(key: &CheckKey, connector: Option<&Arc<Connector>>) -> Result<String, CheckError> {
    let pinger = Arc::new(Pinger::new());
    let mut probe = Probe::new(key, &pinger, connector);
    within(10, "a check", probe.run()).await.result
}

/// A TCP server on `at` sending each client's address on the channel; `answer` runs the
/// exchange.
async fn tcp_server<F, Fut>(at: &str, answer: F) -> (SocketAddr, mpsc::Receiver<SocketAddr>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind(at).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(16);
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((s, peer)) = listener.accept().await {
            let _ = tx.send(peer).await;
            let answer = answer.clone();
            tokio::spawn(async move { answer(s).await });
        }
    });
    (addr, rx)
}

/// A UDP server on `at` sending each datagram's source on the channel, answering a DNS
/// query with an empty NOERROR answer.
async fn udp_server(at: &str, dns: bool) -> (SocketAddr, mpsc::Receiver<SocketAddr>) {
    let s = UdpSocket::bind(at).await.unwrap();
    let addr = s.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = s.recv_from(&mut buf).await {
            let _ = tx.send(peer).await;
            if dns && n >= 12 {
                let mut answer = buf[..n].to_vec();
                answer[2] = 0x81;
                answer[3] = 0x80;
                let _ = s.send_to(&answer, peer).await;
            }
        }
    });
    (addr, rx)
}

async fn peer(rx: &mut mpsc::Receiver<SocketAddr>) -> SocketAddr {
    within(5, "the server to see the check", rx.recv())
        .await
        .expect("the server runs")
}

async fn http_answer(s: tokio::net::TcpStream) {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while r.read_line(&mut line).await.is_ok_and(|n| n > 2) {
        line.clear();
    }
    let _ = r
        .get_mut()
        .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .await;
}

async fn smtp_answer(mut s: tokio::net::TcpStream) {
    let _ = s.write_all(b"220 test ESMTP\r\n").await;
    let mut buf = [0u8; 512];
    let _ = s.read(&mut buf).await;
    let _ = s.write_all(b"250 ok\r\n").await;
    let _ = s.read(&mut buf).await;
}

#[tokio::test]
async fn connect_ip_checks_another_address_than_the_real_s() {
    // Something listens on 127.0.0.2; nothing on the real, 127.0.0.3, at that port.
    let (at, mut seen) = tcp_server("127.0.0.2:0", |_| async {}).await;
    let real_at = SocketAddr::new("127.0.0.3".parse().unwrap(), at.port());
    let c = check(
        CheckType::Connect,
        CheckService::None,
        CheckSource::default(),
    );
    for pooled in [false, true] {
        let k = key(c.clone(), real_at, Some(at.ip()), Protocol::Tcp);
        assert_eq!(k.real, real_at, "the real stays the real");
        run(&k, pooled).await.unwrap();
        // The listener on 127.0.0.2 took the connection.
        peer(&mut seen).await;
        // Without connect_ip, the real itself is checked: refused.
        let k = key(c.clone(), real_at, None, Protocol::Tcp);
        run(&k, pooled).await.unwrap_err();
    }
    // The service's check_address (a further checker's connect_ip) does the same.
    let mut c = c;
    c.address = Some(at.ip());
    run(&key(c, real_at, None, Protocol::Tcp), true)
        .await
        .unwrap();
    // And an http check goes there too, with connect_port (checkport).
    let (web, _seen) = tcp_server("127.0.0.2:0", http_answer).await;
    let mut h = check(CheckType::Negotiate, CheckService::Http, Default::default());
    h.port = Some(web.port());
    run(&key(h, real_at, Some(web.ip()), Protocol::Tcp), true)
        .await
        .unwrap();
}

#[tokio::test]
async fn connect_ip_ipv6() {
    if !ipv6_loopback("connect_ip_ipv6") {
        return;
    }
    let (at, mut seen) = tcp_server("[::1]:0", |_| async {}).await;
    // A documentation address: never reached.
    let real_at = SocketAddr::new("2001:db8::3".parse().unwrap(), at.port());
    let c = check(
        CheckType::Connect,
        CheckService::None,
        CheckSource::default(),
    );
    run(&key(c.clone(), real_at, Some(at.ip()), Protocol::Tcp), true)
        .await
        .unwrap();
    peer(&mut seen).await;
    let mut quick = c;
    quick.timeout = Duration::from_millis(300);
    run(&key(quick, real_at, None, Protocol::Tcp), true)
        .await
        .unwrap_err();
}

#[tokio::test]
async fn two_checks_differing_in_target_or_source_are_two_keys() {
    let at: SocketAddr = "127.0.0.3:80".parse().unwrap();
    let c = check(
        CheckType::Connect,
        CheckService::None,
        CheckSource::default(),
    );
    let plain = key(c.clone(), at, None, Protocol::Tcp);
    let elsewhere = key(
        c.clone(),
        at,
        Some("127.0.0.2".parse().unwrap()),
        Protocol::Tcp,
    );
    let mut sourced = c.clone();
    sourced.source = from(SOURCE);
    let sourced = key(sourced, at, None, Protocol::Tcp);
    let mut marked = c;
    marked.source.mark = Some(7);
    let marked = key(marked, at, None, Protocol::Tcp);
    let keys: std::collections::HashSet<_> = [&plain, &elsewhere, &sourced, &marked]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(keys.len(), 4);
    // connect_ip naming the real itself is the real's own check.
    assert_eq!(
        key(
            check(CheckType::Connect, CheckService::None, Default::default()),
            at,
            Some(at.ip()),
            Protocol::Tcp
        ),
        plain
    );
}

#[tokio::test]
async fn bindto_tcp_pooled_and_not() {
    let (at, mut seen) = tcp_server("127.0.0.1:0", |_| async {}).await;
    // One connector for all the checks, as in the engine.
    let shared = Arc::new(Connector::new().unwrap());
    for connector in [None, Some(&shared)] {
        let c = check(CheckType::Connect, CheckService::None, from(SOURCE));
        run_on(&key(c, at, None, Protocol::Tcp), connector)
            .await
            .unwrap();
        assert_eq!(peer(&mut seen).await.ip().to_string(), SOURCE);
        // A bound socket does not go back to the pool: a plain check after it leaves from
        // the kernel's choice.
        let c = check(CheckType::Connect, CheckService::None, Default::default());
        run_on(&key(c, at, None, Protocol::Tcp), connector)
            .await
            .unwrap();
        assert_eq!(peer(&mut seen).await.ip().to_string(), "127.0.0.1");
    }
}

#[tokio::test]
async fn bind_port_is_the_source_port_of_checks_of_two_reals_at_once() {
    let (a, mut seen_a) = tcp_server("127.0.0.1:0", |_| async {}).await;
    let (b, mut seen_b) = tcp_server("127.0.0.1:0", |_| async {}).await;
    // A free port to leave from.
    let port = std::net::TcpListener::bind("127.0.0.5:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = CheckSource {
        port: Some(port),
        ..from(SOURCE)
    };
    let c = check(CheckType::Connect, CheckService::None, source);
    let (ka, kb) = (
        key(c.clone(), a, None, Protocol::Tcp),
        key(c, b, None, Protocol::Tcp),
    );
    let (ra, rb) = tokio::join!(run(&ka, true), run(&kb, true));
    ra.unwrap();
    rb.unwrap();
    let want: SocketAddr = SocketAddr::new(SOURCE.parse().unwrap(), port);
    assert_eq!(peer(&mut seen_a).await, want);
    assert_eq!(peer(&mut seen_b).await, want);
}

#[tokio::test]
async fn bindto_http_smtp_dns_udp_simpletcp() {
    let (web, mut seen) = tcp_server("127.0.0.1:0", http_answer).await;
    let c = check(CheckType::Negotiate, CheckService::Http, from(SOURCE));
    for pooled in [false, true] {
        run(&key(c.clone(), web, None, Protocol::Tcp), pooled)
            .await
            .unwrap();
        assert_eq!(peer(&mut seen).await.ip().to_string(), SOURCE, "http");
    }

    let (mail, mut seen) = tcp_server("127.0.0.1:0", smtp_answer).await;
    let c = check(CheckType::Negotiate, CheckService::Smtp, from(SOURCE));
    run(&key(c, mail, None, Protocol::Tcp), true).await.unwrap();
    assert_eq!(peer(&mut seen).await.ip().to_string(), SOURCE, "smtp");

    let (dns, mut seen) = udp_server("127.0.0.1:0", true).await;
    let mut c = check(CheckType::Negotiate, CheckService::Dns, from(SOURCE));
    c.dns_type = Some(6);
    c.request = Some(".".into());
    run(&key(c, dns, None, Protocol::Udp), true).await.unwrap();
    assert_eq!(peer(&mut seen).await.ip().to_string(), SOURCE, "dns");

    // keepalived's UDP_CHECK (no reply required) and a UDP service's connect check.
    let (udp, mut seen) = udp_server("127.0.0.1:0", false).await;
    let mut c = check(CheckType::Negotiate, CheckService::Udp, from(SOURCE));
    c.negotiate_timeout = Duration::from_millis(200);
    c.request = Some("00".into());
    run(&key(c, udp, None, Protocol::Udp), true).await.unwrap();
    assert_eq!(peer(&mut seen).await.ip().to_string(), SOURCE, "udp");
    let c = check(CheckType::Connect, CheckService::None, from(SOURCE));
    run(&key(c, udp, None, Protocol::Udp), true).await.unwrap();
    assert_eq!(
        peer(&mut seen).await.ip().to_string(),
        SOURCE,
        "udp connect"
    );
}

#[tokio::test]
async fn a_source_the_host_does_not_hold_fails_the_check_naming_it() {
    let (at, _seen) = tcp_server("127.0.0.1:0", http_answer).await;
    for (t, s) in [
        (CheckType::Connect, CheckService::None),
        (CheckType::Negotiate, CheckService::Http),
        (CheckType::Ping, CheckService::None),
    ] {
        for pooled in [false, true] {
            let k = key(check(t, s, from(FOREIGN)), at, None, Protocol::Tcp);
            let err = run(&k, pooled).await.unwrap_err();
            let text = crate::health::error_chain(&err);
            assert!(text.contains(FOREIGN), "{t:?} {s:?}: {text}");
            assert!(
                text.contains("Cannot assign requested address"),
                "{t:?} {s:?}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn ping_from_an_address_of_the_host_passes() {
    // Needs a raw socket (root or CAP_NET_RAW), as every ping check.
    let c = check(CheckType::Ping, CheckService::None, from(SOURCE));
    let at: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let msg = run(&key(c, at, None, Protocol::Tcp), true).await.unwrap();
    assert!(msg.starts_with("echo reply from 127.0.0.1"), "{msg}");
}

#[test]
fn the_socket_carries_the_mark_and_the_interface() {
    let s = CheckSource {
        interface: Some("lo".into()),
        mark: Some(0x1234),
        ..from(SOURCE)
    };
    let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let socket = socket(Type::STREAM, socket2::Protocol::TCP, &s, to).unwrap();
    assert_eq!(socket.mark().unwrap(), 0x1234);
    assert_eq!(socket.device().unwrap().as_deref(), Some(&b"lo"[..]));
    assert_eq!(
        socket
            .local_addr()
            .unwrap()
            .as_socket()
            .unwrap()
            .ip()
            .to_string(),
        SOURCE
    );
    let nowhere = CheckSource {
        interface: Some("nosuchif0".into()),
        ..Default::default()
    };
    let err = socket_err(&nowhere, to);
    assert!(err.contains("interface nosuchif0"), "{err}");
    let v6 = CheckSource {
        address: Some("::1".parse().unwrap()),
        ..Default::default()
    };
    let err = socket_err(&v6, to);
    assert!(err.contains("not of the family"), "{err}");
}

fn socket_err(s: &CheckSource, to: SocketAddr) -> String {
    let e = socket(Type::STREAM, socket2::Protocol::TCP, s, to).unwrap_err();
    e.to_string()
}

#[tokio::test]
async fn connect_ip_for_ping_and_udp() {
    // A documentation address (nothing answers) as the real, loopback as connect_ip.
    let real_at: SocketAddr = "192.0.2.1:0".parse().unwrap();
    let c = check(CheckType::Ping, CheckService::None, Default::default());
    let msg = run(
        &key(
            c,
            real_at,
            Some("127.0.0.2".parse().unwrap()),
            Protocol::Tcp,
        ),
        false,
    )
    .await
    .unwrap();
    assert!(msg.starts_with("echo reply from 127.0.0.2"), "{msg}");
    let (udp, mut seen) = udp_server("127.0.0.2:0", false).await;
    let real_at = SocketAddr::new("192.0.2.1".parse().unwrap(), udp.port());
    let c = check(CheckType::Connect, CheckService::None, Default::default());
    run(&key(c, real_at, Some(udp.ip()), Protocol::Udp), true)
        .await
        .unwrap();
    peer(&mut seen).await;
}

#[test]
fn a_link_local_address_takes_the_interface_as_its_scope() {
    let s = CheckSource {
        interface: Some("lo".into()),
        ..Default::default()
    };
    let lo = if_index("lo", "fe80::1".parse().unwrap()).unwrap();
    let SocketAddr::V6(a) = target("[fe80::1]:80".parse().unwrap(), &s).unwrap() else {
        panic!("IPv6 stays IPv6")
    };
    assert_eq!(a.scope_id(), lo);
    // Not link-local: no scope.
    let SocketAddr::V6(a) = target("[fd00::1]:80".parse().unwrap(), &s).unwrap() else {
        panic!("IPv6 stays IPv6")
    };
    assert_eq!(a.scope_id(), 0);
    let nowhere = CheckSource {
        interface: Some("nosuchif0".into()),
        ..Default::default()
    };
    let e = target("[fe80::1]:80".parse().unwrap(), &nowhere).unwrap_err();
    assert!(e.to_string().contains("nosuchif0"), "{e}");
}

#[tokio::test]
async fn bindto_ftp_sip_radius_pgsql() {
    // The servers only note who came: each check fails on its exchange, after connecting
    // (or sending) from the source.
    let quick = |service: CheckService| {
        let mut c = check(CheckType::Negotiate, service, from(SOURCE));
        c.negotiate_timeout = Duration::from_millis(300);
        c.request = Some("/x".into());
        c.login = Some("u".into());
        c.passwd = Some("p".into());
        c
    };
    for (service, protocol) in [
        (CheckService::Ftp, Protocol::Tcp),
        (CheckService::Sip, Protocol::Tcp),
        (CheckService::Pgsql, Protocol::Tcp),
    ] {
        let (at, mut seen) = tcp_server("127.0.0.1:0", |_| async {}).await;
        let _ = run(&key(quick(service), at, None, protocol), false).await;
        assert_eq!(
            peer(&mut seen).await.ip().to_string(),
            SOURCE,
            "{service:?}"
        );
    }
    for service in [CheckService::Sip, CheckService::Radius] {
        let (at, mut seen) = udp_server("127.0.0.1:0", false).await;
        let _ = run(&key(quick(service), at, None, Protocol::Udp), false).await;
        assert_eq!(
            peer(&mut seen).await.ip().to_string(),
            SOURCE,
            "{service:?}"
        );
    }
}
