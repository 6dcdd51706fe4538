//! A download held open through the VIP across a change (a failed check, a reload), paused
//! after its first MiB, and which real serves it.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::SocketAddr,
    sync::mpsc,
    time::{Duration, Instant},
};

use lvs::lab::{Lab, run_in_netns};
use lvs_tests::{agent::connect_small_rcvbuf, wait};

/// The client's read timeout in a [`PausedDownload`]: an error that comes this late is the
/// client giving up, not the network cutting the flow.
pub const DOWNLOAD_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// How a [`PausedDownload`] failed.
#[derive(Debug)]
pub struct Cut {
    /// The error's kind (`ConnectionReset`: a reset cut it; `WouldBlock`/`TimedOut`: the
    /// client's own read timeout).
    pub kind: ErrorKind,
    /// What was being done, and the error.
    pub what: String,
    /// When the client saw the error.
    pub at: Instant,
}

impl Cut {
    fn new(kind: ErrorKind, what: String) -> Cut {
        Cut {
            kind,
            what,
            at: Instant::now(),
        }
    }
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.what, self.kind)
    }
}

/// A download of `big.bin` through `vip` that reads its first MiB, reports its client port,
/// then waits for a go before reading the rest. Returns the body, or what cut it.
pub struct PausedDownload {
    pub port: u16,
    go: mpsc::Sender<()>,
    done: std::thread::JoinHandle<Result<Vec<u8>, Cut>>,
}

impl PausedDownload {
    pub fn start(lab: &Lab, vip: SocketAddr) -> PausedDownload {
        let ns = lab.client_ns().to_string();
        let (port_tx, port_rx) = mpsc::channel();
        let (go, go_rx) = mpsc::channel::<()>();
        let done = std::thread::spawn(move || {
            let io = |step: &'static str| {
                move |e: std::io::Error| Cut::new(e.kind(), format!("{step}: {e}"))
            };
            run_in_netns(&ns, move || -> Result<Vec<u8>, Cut> {
                let mut s = connect_small_rcvbuf(vip).map_err(io("connect"))?;
                let port = s.local_addr().map_err(io("local address"))?.port();
                s.set_read_timeout(Some(DOWNLOAD_READ_TIMEOUT))
                    .map_err(io("read timeout"))?;
                write!(
                    s,
                    "GET /big.bin HTTP/1.0\r\nHost: {vip}\r\nConnection: close\r\n\r\n"
                )
                .map_err(io("request"))?;
                let mut buf = vec![0u8; 1 << 20];
                s.read_exact(&mut buf).map_err(io("first MiB"))?;
                let _ = port_tx.send(port);
                go_rx.recv_timeout(Duration::from_secs(120)).map_err(|e| {
                    Cut::new(
                        ErrorKind::Other,
                        format!("no go from the test within 120 s: {e}"),
                    )
                })?;
                s.read_to_end(&mut buf).map_err(io("after the pause"))?;
                let end = buf
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .ok_or_else(|| Cut::new(ErrorKind::InvalidData, "no end of headers".into()))?;
                Ok(buf[end + 4..].to_vec())
            })
            .map_err(|e| Cut::new(ErrorKind::Other, e.to_string()))?
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the download's first MiB within 10 s");
        PausedDownload { port, go, done }
    }

    /// Lets it read the rest and waits for its end (each read is bounded by its read timeout;
    /// the whole by twice that).
    pub fn finish(self) -> Result<Vec<u8>, Cut> {
        let _ = self.go.send(());
        wait::join_within(
            self.done,
            2 * DOWNLOAD_READ_TIMEOUT,
            "the download after its pause",
        )
    }
}

/// Which real (0-based) holds an established connection from the client's `port` on port 80.
pub fn serving_real(lab: &Lab, port: u16) -> usize {
    // The servers listen on `::`, so IPv4 peers show as `[::ffff:198.18.0.10]:port`.
    let peer = format!("{}]:{port}", lab.client_v4());
    let peer_plain = format!(" {}:{port}", lab.client_v4());
    (0..lab.reals().len())
        .find(|&i| {
            let out = wait::output(lab.command(&lab.reals()[i].ns, "ss").args([
                "-Htn",
                "state",
                "established",
            ]));
            let out = String::from_utf8_lossy(&out.stdout);
            out.contains(&peer) || out.contains(&peer_plain)
        })
        .unwrap_or_else(|| panic!("no real has the download from {peer}"))
}
