//! The control socket: how `lvs status` talks to `lvs run`.
//!
//! A Unix stream socket at a path (default [`DEFAULT_SOCKET`]; a path, not an abstract
//! socket, so that it is reachable from any network namespace that sees the file system). Its
//! directory is created mode 0700 when missing and the socket is chmod 0600: only its owner
//! (root) may ask. A stale socket file (nobody answers on it) is replaced at start, one another
//! agent answers on is refused; the file is removed on exit.
//!
//! Protocol: the client sends one JSON line, `{"cmd":"status"}`; the agent answers one JSON
//! line, a [`Response`], and closes.
//!
//! The server does not read the agent's state itself: it sends a [`SnapshotRequest`] down a
//! channel that the agent's loop answers, so the state keeps a single owner.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::fs::{DirBuilderExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{agent::snapshot::Snapshot, ipvsadm::rules::Change};

/// The default control socket.
pub const DEFAULT_SOCKET: &str = "/run/lvs/lvs.sock";

/// The longest request line accepted.
const MAX_REQUEST: u64 = 4096;

/// How long a client may take to send its request, and the client waits for the answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A request for a snapshot, answered by the agent's loop through `reply`.
#[derive(Debug)]
pub struct SnapshotRequest {
    /// Where the snapshot goes.
    pub reply: oneshot::Sender<Snapshot>,
}

/// Errors of the control socket, server or client side.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Creating the socket's directory failed.
    #[error("creating the control socket directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Binding or securing the socket failed.
    #[error("{action} control socket {path}: {source}")]
    Bind {
        /// What was being done.
        action: &'static str,
        /// The socket's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another agent answers on the socket.
    #[error(
        "control socket {path} is in use: another agent answers on it; stop that one first, \
         or give this one another --control"
    )]
    InUse {
        /// The socket's path.
        path: PathBuf,
    },
    /// The socket is there, but this user may not connect to it (it is root's, mode 0600).
    #[error("permission denied on the control socket {path}: run as root")]
    PermissionDenied {
        /// The socket's path.
        path: PathBuf,
    },
    /// Connecting to or talking with the agent failed.
    #[error("{step} {path} (is `lvs run` running with this --control path?): {source}")]
    Io {
        /// The step that failed.
        step: &'static str,
        /// The socket's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The answer was not valid JSON of the expected shape.
    #[error("the agent's answer on {path} is not understood: {source}")]
    Decode {
        /// The socket's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The agent answered with an error.
    #[error("the agent refused the request: {message}")]
    Refused {
        /// What the agent said.
        message: String,
    },
}

/// The ipvsadm command's changes, made by the agent's loop, which answers through `reply`:
/// its answer, or the index of the change that could not be made and why (then none was
/// made).
#[derive(Debug)]
pub struct ChangeRequest {
    /// The changes, all or none (none: only the answer is asked for).
    pub changes: Vec<Change>,
    /// Whether the connection table is asked for.
    pub connections: bool,
    /// `-Z`.
    pub zero: Option<ZeroScope>,
    /// `-R`: the `-A`/`-a` lines of a configuration file's service are left to the file.
    pub restore: bool,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<IpvsadmAnswer, (usize, String)>>,
}

/// A request line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The command: `status`, or `ipvsadm` (the ipvsadm command's `changes`).
    pub cmd: String,
    /// For `ipvsadm`: the changes to make, all or none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// For `ipvsadm`: list the connection table too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connections: bool,
    /// For `ipvsadm -Z`: zero the counters of every service, or of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero: Option<ZeroScope>,
    /// For `ipvsadm -R`: the changes are a restore, whose `-A`/`-a` lines of a configuration
    /// file's service are left to the file (ipvsadm -R goes on past the kernel's "Service
    /// already exists"), so that the output of `-S` restores.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore: bool,
}

/// What `ipvsadm -Z` zeroes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZeroScope {
    /// Every service.
    All,
    /// One service.
    Service(crate::ipvsadm::rules::Key),
}

/// The answer line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was served.
    pub ok: bool,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The snapshot, for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// For `ipvsadm`: the agent's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipvsadm: Option<IpvsadmAnswer>,
}

/// The agent's answer to the ipvsadm command.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IpvsadmAnswer {
    /// What the operator should know about the changes made.
    #[serde(default)]
    pub notes: Vec<String>,
    /// The index of the change that could not be made (then none was).
    #[serde(default)]
    pub failed_change: Option<usize>,
    /// The connection timeouts in force (tcp, tcpfin, udp), for `ipvsadm -L --timeout`.
    #[serde(default)]
    pub timeouts: [u32; 3],
    /// The connection table, when asked for (`ipvsadm -L -c`).
    #[serde(default)]
    pub connections: Vec<crate::ipvsadm::output::Connection>,
    /// Where `ipvsadm -Z` zeroed the counters (what lists take off).
    #[serde(default)]
    pub zeroed: Vec<crate::ipvsadm::output::ZeroBase>,
}

impl Response {
    fn error(message: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(message.into()),
            snapshot: None,
            ipvsadm: None,
        }
    }
}

/// The running control socket server. Dropping it stops serving and removes the socket file.
pub struct ControlServer {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ControlServer {
    /// Binds `path` and serves it on the current tokio runtime; snapshot requests go to
    /// `requests`.
    pub fn start(
        path: &Path,
        requests: mpsc::Sender<SnapshotRequest>,
    ) -> Result<ControlServer, ControlError> {
        Self::start_with_changes(path, requests, None)
    }

    /// [`ControlServer::start`], with the ipvsadm command's changes going to `changes` (without
    /// it they are refused).
    pub fn start_with_changes(
        path: &Path,
        requests: mpsc::Sender<SnapshotRequest>,
        changes: Option<mpsc::Sender<ChangeRequest>>,
    ) -> Result<ControlServer, ControlError> {
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| ControlError::Dir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        let bind_err = |action| {
            move |source| ControlError::Bind {
                action,
                path: path.to_path_buf(),
                source,
            }
        };
        // A socket another agent answers on is its own: leave it.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse {
                path: path.to_path_buf(),
            });
        }
        // A socket file left by an agent that did not exit cleanly (nobody answers on it).
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(bind_err("removing the stale")(e));
            }
            _ => {}
        }
        let listener = std::sync::Arc::new(UnixListener::bind(path).map_err(bind_err("binding"))?);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(bind_err("securing (chmod 0600)"))?;
        let task = serve_clients(
            "control socket",
            move || {
                let listener = listener.clone();
                async move { listener.accept().await.map(|(s, _)| s) }
            },
            move |stream| serve_one(stream, requests.clone(), changes.clone()),
            |stream| {
                let mut out = serde_json::to_vec(&Response::error("busy: too many clients"))
                    .unwrap_or_default();
                out.push(b'\n');
                let _ = stream.try_write(&out);
            },
        );
        tracing::info!(path = %path.display(), "control socket listening");
        Ok(ControlServer {
            path: path.to_path_buf(),
            task,
        })
    }
}

/// Clients served at once by the control socket, and by the metrics listener. A client past
/// it is answered "busy" at once and closed, so that no local user can make the agent run out
/// of open files (which would make health checks fail) by holding connections open.
pub(crate) const MAX_CLIENTS: usize = 64;

/// Accepts clients until aborted, serving each on its own task (`what` names the server in
/// logs), at most [`MAX_CLIENTS`] at once: a client beyond that is given to `busy` (which may
/// write a short answer without waiting) and closed. A failed accept is logged and retried
/// after a pause. The control socket and the metrics listener share it.
pub(crate) fn serve_clients<S, A, AF, F, FF>(
    what: &'static str,
    accept: A,
    serve: F,
    busy: fn(&S),
) -> JoinHandle<()>
where
    S: Send + 'static,
    A: Fn() -> AF + Send + 'static,
    AF: std::future::Future<Output = std::io::Result<S>> + Send,
    F: Fn(S) -> FF + Send + 'static,
    FF: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    tokio::spawn(async move {
        let mut last_busy_log: Option<tokio::time::Instant> = None;
        loop {
            match accept().await {
                Ok(stream) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        busy(&stream);
                        drop(stream);
                        if last_busy_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                            last_busy_log = Some(tokio::time::Instant::now());
                            tracing::warn!(
                                "{what}: {MAX_CLIENTS} clients already connected; refusing more"
                            );
                        }
                        continue;
                    };
                    let client = serve(stream);
                    tokio::spawn(async move {
                        if let Err(e) = client.await {
                            tracing::debug!("{what} client: {e}");
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!("{what} accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Asks the agent for a snapshot through `requests`.
pub async fn ask(requests: &mpsc::Sender<SnapshotRequest>) -> Option<Snapshot> {
    let (reply, rx) = oneshot::channel();
    requests.send(SnapshotRequest { reply }).await.ok()?;
    rx.await.ok()
}

async fn serve_one(
    stream: UnixStream,
    requests: mpsc::Sender<SnapshotRequest>,
    changes: Option<mpsc::Sender<ChangeRequest>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    // Bytes, not a String: a request that is not UTF-8 is answered, not dropped.
    let response = match tokio::time::timeout(TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Err(_) => Response::error("timed out waiting for the request"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) => match std::str::from_utf8(&line)
            .map_err(|e| format!("bad request: not UTF-8 ({e})"))
            .and_then(|l| {
                serde_json::from_str::<Request>(l.trim()).map_err(|e| format!("bad request: {e}"))
            }) {
            Err(e) => Response::error(e),
            Ok(r) if r.cmd == "status" => match ask(&requests).await {
                Some(s) => Response {
                    snapshot: Some(s),
                    ..Response::ok()
                },
                None => Response::error("the agent is stopping"),
            },
            Ok(r) if r.cmd == "ipvsadm" => make_changes(changes.as_ref(), r).await,
            Ok(r) => Response::error(format!("unknown command `{}`", r.cmd)),
        },
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

impl Response {
    fn ok() -> Self {
        Response {
            ok: true,
            error: None,
            snapshot: None,
            ipvsadm: None,
        }
    }
}

/// Hands the ipvsadm command's changes to the agent's loop and waits for its answer.
async fn make_changes(to: Option<&mpsc::Sender<ChangeRequest>>, r: Request) -> Response {
    let Some(to) = to else {
        return Response::error("this agent takes no ipvsadm changes");
    };
    let (reply, rx) = oneshot::channel();
    let request = ChangeRequest {
        changes: r.changes,
        connections: r.connections,
        zero: r.zero,
        restore: r.restore,
        reply,
    };
    if to.send(request).await.is_err() {
        return Response::error("the agent is stopping");
    }
    match rx.await {
        Ok(Ok(answer)) => Response {
            ipvsadm: Some(answer),
            ..Response::ok()
        },
        Ok(Err((i, why))) => Response {
            ipvsadm: Some(IpvsadmAnswer {
                failed_change: Some(i),
                ..IpvsadmAnswer::default()
            }),
            ..Response::error(why)
        },
        Err(_) => Response::error("the agent is stopping"),
    }
}

/// Why the agent refused the ipvsadm command's changes.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The control socket failed (no agent, no permission...).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The agent refused change number `index` (none was made).
    #[error("{message}")]
    Refused {
        /// The index of the change.
        index: Option<usize>,
        /// Why.
        message: String,
    },
}

/// Client side: sends the ipvsadm command's `changes` to the agent at `path` (blocking), with
/// `connections` asking for the connection table; returns the agent's answer.
pub fn ipvsadm(
    path: &Path,
    changes: Vec<Change>,
    connections: bool,
) -> Result<IpvsadmAnswer, ChangeError> {
    ipvsadm_request(
        path,
        &Request {
            cmd: "ipvsadm".into(),
            changes,
            connections,
            zero: None,
            restore: false,
        },
    )
}

/// Client side: `ipvsadm -R`'s changes (blocking): as [`ipvsadm`], the `-A`/`-a` lines of a
/// configuration file's service left to the file.
pub fn ipvsadm_restore(path: &Path, changes: Vec<Change>) -> Result<IpvsadmAnswer, ChangeError> {
    ipvsadm_request(
        path,
        &Request {
            cmd: "ipvsadm".into(),
            changes,
            connections: false,
            zero: None,
            restore: true,
        },
    )
}

/// Client side: `ipvsadm -Z` (blocking).
pub fn ipvsadm_zero(path: &Path, zero: ZeroScope) -> Result<IpvsadmAnswer, ChangeError> {
    ipvsadm_request(
        path,
        &Request {
            cmd: "ipvsadm".into(),
            changes: Vec::new(),
            connections: false,
            zero: Some(zero),
            restore: false,
        },
    )
}

fn ipvsadm_request(path: &Path, request: &Request) -> Result<IpvsadmAnswer, ChangeError> {
    let r = exchange(path, request)?;
    match r {
        Response {
            ok: true,
            ipvsadm: Some(answer),
            ..
        } => Ok(answer),
        r => Err(ChangeError::Refused {
            index: r.ipvsadm.and_then(|a| a.failed_change),
            message: r.error.unwrap_or_else(|| "no answer".into()),
        }),
    }
}

/// Sends one request to the agent at `path` and reads its answer (blocking).
fn exchange(path: &Path, request: &Request) -> Result<Response, ControlError> {
    let io = |step| {
        move |source| ControlError::Io {
            step,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            ControlError::PermissionDenied {
                path: path.to_path_buf(),
            }
        } else {
            io("connecting to")(source)
        }
    })?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(io("setting a timeout on"))?;
    let req = serde_json::to_string(request).expect("a request serializes");
    stream
        .write_all(format!("{req}\n").as_bytes())
        .map_err(io("sending to"))?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .map_err(io("reading from"))?;
    serde_json::from_str(&line).map_err(|source| ControlError::Decode {
        path: path.to_path_buf(),
        source,
    })
}

/// Client side: asks the agent at `path` for its status (blocking).
pub fn status(path: &Path) -> Result<Snapshot, ControlError> {
    let request = Request {
        cmd: "status".into(),
        changes: Vec::new(),
        connections: false,
        zero: None,
        restore: false,
    };
    match exchange(path, &request)? {
        Response {
            ok: true,
            snapshot: Some(s),
            ..
        } => Ok(s),
        r => Err(ControlError::Refused {
            message: r.error.unwrap_or_else(|| "no snapshot".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::tests::sample;

    /// Awaits `fut` for at most `secs` seconds: a longer wait fails the test, naming `what` it
    /// waited for.
    async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
        match tokio::time::timeout(Duration::from_secs(secs), fut).await {
            Ok(v) => v,
            Err(_) => panic!("waited {secs} s for {what}"),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lvs-control-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_status_replaces_a_stale_socket_and_removes_it_on_drop() {
        let dir = temp_dir("serve");
        let path = dir.join("sub").join("lvs.sock");
        // A stale socket file from an agent that did not exit cleanly.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());

        let (tx, mut rx) = mpsc::channel::<SnapshotRequest>(4);
        let server = ControlServer::start(&path, tx).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let agent = tokio::spawn(async move {
            let req = within(20, "the server's snapshot request", rx.recv())
                .await
                .unwrap();
            req.reply.send(sample()).unwrap();
        });
        let p = path.clone();
        // The client reads with a timeout of its own (TIMEOUT); this bounds the test anyway.
        let got = within(
            20,
            "`lvs status` to get its answer",
            tokio::task::spawn_blocking(move || status(&p)),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got, sample());
        within(20, "the agent's side to end", agent).await.unwrap();

        // Unknown commands and garbage are answered with an error.
        for line in ["{\"cmd\":\"flush\"}\n", "not json\n"] {
            let p = path.clone();
            let exchange = tokio::task::spawn_blocking(move || {
                let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
                // A server that never answers fails the read, not the test run.
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                s.write_all(line.as_bytes()).unwrap();
                let mut out = String::new();
                BufReader::new(s)
                    .read_line(&mut out)
                    .expect("the control server's answer line within 15 s");
                out
            });
            let answer = within(20, "the control server's answer line", exchange)
                .await
                .unwrap();
            let r: Response = serde_json::from_str(&answer).unwrap();
            assert!(
                !r.ok && r.error.is_some() && r.snapshot.is_none(),
                "{answer}"
            );
        }

        drop(server);
        assert!(
            !path.exists(),
            "the socket is removed when the server stops"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A request that is not UTF-8 is answered with a JSON error, not closed without a word.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_that_is_not_utf8_is_answered_with_an_error() {
        let dir = temp_dir("utf8");
        let path = dir.join("lvs.sock");
        let (tx, _rx) = mpsc::channel(1);
        let server = ControlServer::start(&path, tx).unwrap();
        for line in [
            &b"\xff\xfe{\"cmd\":\"status\"}\n"[..],
            b"{\"cmd\":\"st\xc3atus\"}\n",
            b"\x80",
        ] {
            let p = path.clone();
            let answer = tokio::task::spawn_blocking(move || {
                let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
                s.write_all(line).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut out = String::new();
                BufReader::new(s).read_line(&mut out).unwrap();
                out
            })
            .await
            .unwrap();
            let r: Response = serde_json::from_str(&answer)
                .unwrap_or_else(|e| panic!("{line:?}: answer {answer:?}: {e}"));
            assert!(!r.ok && r.snapshot.is_none(), "{answer}");
            let error = r.error.unwrap();
            assert!(error.starts_with("bad request: not UTF-8"), "{error}");
        }
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn creates_its_directory_owner_only() {
        let dir = temp_dir("dir");
        let path = dir.join("run").join("lvs.sock");
        let (tx, _rx) = mpsc::channel(1);
        let server = ControlServer::start(&path, tx).unwrap();
        let mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        drop(server);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_agent_is_a_clear_error() {
        let e = status(Path::new("/nonexistent/lvs.sock")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("connecting to /nonexistent/lvs.sock (is `lvs run` running"),
            "{e}"
        );
    }
}
