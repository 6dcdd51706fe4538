//! Prometheus metrics: `GET /metrics` in the text exposition format (version 0.0.4), served
//! by a small HTTP/1.1 server when the config sets `metrics` (off by default).
//!
//! One request per connection, read with a size and time bound; the answer always closes the
//! connection. Like the control socket, it asks the agent's loop for a
//! [`crate::agent::snapshot::Snapshot`] through a channel.
//!
//! Labels: `service` is `VIP:port/proto` (`198.18.0.100:80/tcp`), `real` is `address:port`,
//! `reason` a drop reason's name.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};

use crate::{
    agent::snapshot::{ServiceSnapshot, Snapshot},
    control::{SnapshotRequest, ask},
};

/// The longest request head read.
const MAX_REQUEST: usize = 8192;
/// How long a client may take to send its request.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the metrics server.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Binding the listen address failed.
    #[error("metrics: listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The running metrics server; dropping it stops it.
pub struct MetricsServer {
    task: JoinHandle<()>,
    addr: SocketAddr,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetricsServer {
    /// Listens on `addr` on the current tokio runtime; snapshots are asked from `requests`.
    pub fn start(
        addr: SocketAddr,
        requests: mpsc::Sender<SnapshotRequest>,
    ) -> Result<MetricsServer, MetricsError> {
        let err = |source| MetricsError::Bind { addr, source };
        let std_listener = std::net::TcpListener::bind(addr).map_err(err)?;
        std_listener.set_nonblocking(true).map_err(err)?;
        let listener = TcpListener::from_std(std_listener).map_err(err)?;
        let bound = listener.local_addr().map_err(err)?;
        let listener = std::sync::Arc::new(listener);
        let task = crate::control::serve_clients(
            "metrics",
            move || {
                let listener = listener.clone();
                async move { listener.accept().await.map(|(s, _)| s) }
            },
            move |stream| serve_one(stream, requests.clone()),
            |stream| {
                let _ = stream.try_write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
                      Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n",
                );
            },
        );
        tracing::info!(addr = %bound, "metrics listening");
        Ok(MetricsServer { task, addr: bound })
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Reads the request head: up to the blank line, [`MAX_REQUEST`] bytes, [`TIMEOUT`].
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
            if buf.len() >= MAX_REQUEST {
                return None;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Some(())
    };
    tokio::time::timeout(TIMEOUT, read).await.ok()??;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

async fn serve_one(
    mut stream: TcpStream,
    requests: mpsc::Sender<SnapshotRequest>,
) -> std::io::Result<()> {
    let (status, ctype, body) = match read_head(&mut stream).await {
        None => ("400 Bad Request", "text/plain", "bad request\n".to_string()),
        Some(head) => {
            let mut words = head.lines().next().unwrap_or("").split_whitespace();
            match (words.next(), words.next()) {
                (Some("GET"), Some(path))
                    if path == "/metrics" || path.starts_with("/metrics?") =>
                {
                    match ask(&requests).await {
                        Some(s) => ("200 OK", "text/plain; version=0.0.4", render(&s)),
                        None => (
                            "503 Service Unavailable",
                            "text/plain",
                            "the agent is stopping\n".to_string(),
                        ),
                    }
                }
                (Some("GET"), _) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
                _ => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "only GET\n".to_string(),
                ),
            }
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// A label value, escaped as the exposition format wants.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `service` label of a service.
pub fn service_label(s: &ServiceSnapshot) -> String {
    format!("{}/{}", s.address, s.protocol.to_lowercase())
}

/// One metric family: HELP, TYPE and its samples (labels already formatted).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Renders a snapshot in the text exposition format.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let svc = |v: &ServiceSnapshot| format!("service=\"{}\"", escape(&service_label(v)));
    let per_service = |f: &dyn Fn(&ServiceSnapshot) -> String| -> Vec<(String, String)> {
        s.services.iter().map(|v| (svc(v), f(v))).collect()
    };
    let per_real = |f: &dyn Fn(&crate::agent::snapshot::RealSnapshot) -> Option<String>| {
        s.services
            .iter()
            .flat_map(|v| {
                v.reals.iter().filter_map(move |r| {
                    f(r).map(|x| {
                        (
                            format!("{},real=\"{}\"", svc(v), escape(&r.address.to_string())),
                            x,
                        )
                    })
                })
            })
            .collect::<Vec<_>>()
    };
    family(
        &mut out,
        "lvs_service_packets_total",
        "counter",
        "Packets forwarded for the virtual service (client to server).",
        &per_service(&|v| v.counters.packets.to_string()),
    );
    family(
        &mut out,
        "lvs_service_bytes_total",
        "counter",
        "Bytes forwarded for the virtual service (client to server).",
        &per_service(&|v| v.counters.bytes.to_string()),
    );
    family(
        &mut out,
        "lvs_service_out_packets_total",
        "counter",
        "Packets forwarded for the virtual service server to client (NAT replies; IPVS's OutPkts).",
        &per_service(&|v| v.counters.out_packets.to_string()),
    );
    family(
        &mut out,
        "lvs_service_out_bytes_total",
        "counter",
        "Bytes forwarded for the virtual service server to client (NAT replies; IPVS's OutBytes).",
        &per_service(&|v| v.counters.out_bytes.to_string()),
    );
    family(
        &mut out,
        "lvs_service_connections_total",
        "counter",
        "New connections scheduled for the virtual service.",
        &per_service(&|v| v.counters.connections.to_string()),
    );
    family(
        &mut out,
        "lvs_real_packets_total",
        "counter",
        "Packets forwarded to the real server.",
        &per_real(&|r| Some(r.counters.packets.to_string())),
    );
    family(
        &mut out,
        "lvs_real_bytes_total",
        "counter",
        "Bytes forwarded to the real server.",
        &per_real(&|r| Some(r.counters.bytes.to_string())),
    );
    family(
        &mut out,
        "lvs_real_out_packets_total",
        "counter",
        "Packets forwarded from the real server to clients (NAT replies; IPVS's OutPkts).",
        &per_real(&|r| Some(r.counters.out_packets.to_string())),
    );
    family(
        &mut out,
        "lvs_real_out_bytes_total",
        "counter",
        "Bytes forwarded from the real server to clients (NAT replies; IPVS's OutBytes).",
        &per_real(&|r| Some(r.counters.out_bytes.to_string())),
    );
    family(
        &mut out,
        "lvs_real_connections_total",
        "counter",
        "New connections scheduled to the real server.",
        &per_real(&|r| Some(r.counters.connections.to_string())),
    );
    family(
        &mut out,
        "lvs_real_active_connections",
        "gauge",
        "IPVS's ActiveConn: live connections to the real server in an active state \
         (ESTABLISHED, SYN_RECV).",
        &per_real(&|r| Some(r.active_connections.to_string())),
    );
    family(
        &mut out,
        "lvs_real_inactive_connections",
        "gauge",
        "IPVS's InActConn: the other live connections to the real server (FIN_WAIT, CLOSE, \
         UDP, ...).",
        &per_real(&|r| Some(r.inactive_connections.to_string())),
    );
    family(
        &mut out,
        "lvs_real_weight",
        "gauge",
        "The real server's weight in the data plane (absent from it: -1).",
        &per_real(&|r| Some(r.effective_weight.map_or(-1, i64::from).to_string())),
    );
    family(
        &mut out,
        "lvs_real_up",
        "gauge",
        "Whether the real server's health checks say up (1) or not (0).",
        &per_real(&|r| {
            Some(
                if r.health.as_ref().is_some_and(|h| h.state == "up") {
                    "1"
                } else {
                    "0"
                }
                .to_string(),
            )
        }),
    );
    family(
        &mut out,
        "lvs_real_check_latency_seconds",
        "gauge",
        "How long the real server's last health check took.",
        &per_real(&|r| {
            r.health
                .as_ref()
                .and_then(|h| h.last.as_ref())
                .map(|l| format!("{:.6}", l.latency_s))
        }),
    );
    let drops: Vec<(String, String)> = s
        .drops
        .iter()
        .map(|(reason, n)| (format!("reason=\"{}\"", escape(reason)), n.to_string()))
        .collect();
    family(
        &mut out,
        "lvs_drops_total",
        "counter",
        "Packets for virtual services dropped by the data plane, by reason.",
        &drops,
    );
    let a = &s.agent;
    for (name, help, v) in [
        (
            "lvs_map_updates_total",
            "Plans written to the data plane's tables.",
            a.map_updates,
        ),
        (
            "lvs_map_update_failures_total",
            "Plans the data plane's tables refused (the last written ones stay in force).",
            a.map_update_failures,
        ),
        ("lvs_reloads_total", "Config reloads applied.", a.reloads),
        (
            "lvs_reload_failures_total",
            "Config reloads refused because the config did not load.",
            a.reload_failures,
        ),
        (
            "lvs_check_errors_total",
            "Failing health check results reported to the agent.",
            a.check_errors,
        ),
    ] {
        family(
            &mut out,
            name,
            "counter",
            help,
            &[(String::new(), v.to_string())],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::sample;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = render(&sample());
        for name in [
            "lvs_service_packets_total",
            "lvs_service_bytes_total",
            "lvs_service_connections_total",
            "lvs_service_out_packets_total",
            "lvs_service_out_bytes_total",
            "lvs_real_packets_total",
            "lvs_real_bytes_total",
            "lvs_real_connections_total",
            "lvs_real_out_packets_total",
            "lvs_real_out_bytes_total",
            "lvs_real_active_connections",
            "lvs_real_inactive_connections",
            "lvs_real_weight",
            "lvs_real_up",
            "lvs_real_check_latency_seconds",
            "lvs_drops_total",
            "lvs_map_updates_total",
            "lvs_reloads_total",
            "lvs_reload_failures_total",
            "lvs_check_errors_total",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}:\n{text}");
        }
        assert!(
            text.contains("lvs_service_connections_total{service=\"198.18.0.100:80/tcp\"} 600\n")
        );
        assert!(text.contains(
            "lvs_real_active_connections{service=\"198.18.0.100:80/tcp\",real=\"198.18.0.11:80\"} 3\n"
        ));
        assert!(text.contains(
            "lvs_real_inactive_connections{service=\"198.18.0.100:80/tcp\",real=\"198.18.0.11:80\"} 1\n"
        ));
        assert!(text.contains(
            "lvs_real_connections_total{service=\"198.18.0.100:80/tcp\",real=\"198.18.0.11:80\"} 300\n"
        ));
        assert!(
            text.contains(
                "lvs_real_up{service=\"198.18.0.100:80/tcp\",real=\"198.18.0.13:80\"} 0\n"
            )
        );
        assert!(text.contains(
            "lvs_real_weight{service=\"198.18.0.100:80/tcp\",real=\"198.18.0.13:80\"} -1\n"
        ));
        assert!(text.contains("lvs_drops_total{reason=\"no_destination\"} 4\n"));
        assert!(text.contains("lvs_reloads_total 2\n"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    /// Awaits `fut` for at most `limit`: a longer wait fails the test, naming `what` it
    /// waited for.
    async fn within<T>(
        limit: Duration,
        what: &str,
        fut: impl std::future::Future<Output = T>,
    ) -> T {
        match tokio::time::timeout(limit, fut).await {
            Ok(v) => v,
            Err(_) => panic!("waited {limit:?} for {what}"),
        }
    }

    /// One raw HTTP exchange with the server: sends `request` (the write side left open) and
    /// reads the answer to its end, all within `limit`.
    async fn exchange_within(
        addr: SocketAddr,
        request: &[u8],
        limit: Duration,
        what: &str,
    ) -> String {
        within(limit, what, async {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(request).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        })
        .await
    }

    /// [`exchange_within`] with a limit well past the server's own [`TIMEOUT`].
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let limit = TIMEOUT + Duration::from_secs(10);
        exchange_within(addr, request, limit, "the metrics server's whole answer").await
    }

    /// A metrics server whose agent answers every request with [`sample`].
    fn server() -> MetricsServer {
        let (tx, mut rx) = mpsc::channel::<SnapshotRequest>(4);
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), tx).unwrap();
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                let _ = req.reply.send(sample());
            }
        });
        server
    }

    #[tokio::test]
    async fn serves_get_metrics_and_refuses_the_rest() {
        let server = server();
        let addr = server.addr();
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4\r\n"),
            "{ok}"
        );
        let body = ok.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(body, render(&sample()));
        assert!(ok.contains(&format!("Content-Length: {}\r\n", body.len())));
        let not_found = exchange(addr, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(not_found.starts_with("HTTP/1.1 404 "), "{not_found}");
        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    }

    #[tokio::test]
    async fn a_head_that_never_ends_is_cut_at_the_size_cap() {
        let server = server();
        // MAX_REQUEST bytes without the blank line, the connection left open: the server
        // stops reading at the cap and answers at once. Without the cap it would wait for more
        // until its TIMEOUT (5 s), then answer the same 400: the answer must come well before.
        let huge = vec![b'a'; MAX_REQUEST];
        let bad = exchange_within(
            server.addr(),
            &huge,
            TIMEOUT - Duration::from_secs(2),
            "the answer to an oversize head, well before the server's read timeout",
        )
        .await;
        assert!(bad.starts_with("HTTP/1.1 400 "), "{bad}");
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
