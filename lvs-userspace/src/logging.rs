//! The agent's log: `tracing` events to stdout, a file or syslog, chosen by the
//! configuration's [`LogTarget`] (ldirectord's `logfile`) and `supervised`.
//!
//! * Stdout: human-readable lines (coloured on a terminal), or one JSON object per line when
//!   `json` is set.
//! * File: appended to, created if missing, human-readable or JSON as for stdout;
//!   [`LoggingGuard::reopen`] reopens it (call it on `SIGHUP` after logrotate moved it).
//! * Syslog: one RFC 3164 datagram per event to `/dev/log`, `<PRI>Mmm dd hh:mm:ss lvs[pid]: …`
//!   with the configured facility and a severity from the event's level (ERROR → err, WARN →
//!   warning, INFO → info, DEBUG/TRACE → debug). The timestamp is UTC (local syslog daemons
//!   stamp `/dev/log` messages on receipt anyway). When `/dev/log` cannot be reached, the log
//!   goes to stdout and a warning says so.
//! * `supervised` forces stdout, as in ldirectord.
//!
//! Which events are kept is set by `LVS_LOG`, else `RUST_LOG` (the `EnvFilter` syntax, e.g.
//! `lvs=debug,info`), else [`DEFAULT_FILTER`]. `log` records (from aya) are forwarded to `tracing`.
//!
//! [`init`] installs the global subscriber once per process; a reload of the configuration
//! applies a changed target with [`LoggingGuard::reload`] (the filter stays as it was).

use std::{
    fs::{File, OpenOptions},
    io::{self, IsTerminal, Write},
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use tracing::Metadata;
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    fmt::{self, MakeWriter},
    layer::SubscriberExt,
    reload,
    util::SubscriberInitExt,
};

use crate::config::model::LogTarget;

/// The syslog socket.
pub const DEV_LOG: &str = "/dev/log";
/// The filter used when neither `LVS_LOG` nor `RUST_LOG` is set. It leaves out aya's only
/// warning, that the kernel refuses the object's BTF (with a dump of a hundred lines): the
/// programs need no BTF, their maps are declared the legacy way.
pub const DEFAULT_FILTER: &str = "info,aya::bpf=error";

/// Everything that can go wrong while setting up the log.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `LVS_LOG` or `RUST_LOG` is not a valid filter.
    #[error("bad log filter in {variable}: {value:?}")]
    Filter {
        /// The environment variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// Why.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The log file cannot be opened for appending.
    #[error("cannot open log file {}", path.display())]
    OpenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The syslog facility is not one of kern, user, mail, daemon, auth, syslog, lpr, news,
    /// uucp, cron, authpriv, ftp, local0 … local7.
    #[error("unknown syslog facility {facility:?}")]
    UnknownFacility {
        /// The name given.
        facility: String,
    },
    /// A global subscriber is already installed (`init` was called before).
    #[error("the log is already set up")]
    AlreadyInitialised {
        /// Why.
        #[source]
        source: tracing_subscriber::util::TryInitError,
    },
    /// The new target could not be swapped in.
    #[error("cannot switch the log target")]
    Reload {
        /// Why.
        #[source]
        source: reload::Error,
    },
}

type Inner = Box<dyn Layer<Registry> + Send + Sync>;

/// The subscriber before the filter is added.
type Unfiltered = tracing_subscriber::layer::Layered<reload::Layer<Inner, Registry>, Registry>;

/// Keeps the log's settings; [`LoggingGuard::reload`] and [`LoggingGuard::reopen`] change
/// where it goes. Dropping it changes nothing (the subscriber stays installed).
pub struct LoggingGuard {
    handle: reload::Handle<Inner, Registry>,
    json: bool,
    supervised: bool,
    current: Mutex<Current>,
}

impl std::fmt::Debug for LoggingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggingGuard")
            .field("json", &self.json)
            .field("supervised", &self.supervised)
            .field("target", &self.target())
            .finish()
    }
}

/// What the log goes to now.
struct Current {
    /// The target actually in use (stdout after a syslog fallback).
    target: LogTarget,
    /// The open file, for `reopen`.
    file: Option<FileSink>,
}

/// Sets up the log for `target` (stdout when `supervised`), with JSON lines on stdout and in
/// files when `json`. Call once per process; the second call fails with
/// [`LoggingError::AlreadyInitialised`].
pub fn init(
    target: &LogTarget,
    supervised: bool,
    json: bool,
) -> Result<LoggingGuard, LoggingError> {
    let filter = env_filter()?;
    let (guard, subscriber, warning) = build(target, supervised, json, Path::new(DEV_LOG))?;
    subscriber
        .with(filter)
        .try_init()
        .map_err(|source| LoggingError::AlreadyInitialised { source })?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    Ok(guard)
}

impl LoggingGuard {
    /// The target in use (stdout when supervised, or after a syslog fallback).
    pub fn target(&self) -> LogTarget {
        self.lock().target.clone()
    }

    /// Switches to `target` (ignored when supervised: that stays on stdout), e.g. after a
    /// configuration reload. Nothing changes if the target is the same; on error the old
    /// target stays.
    pub fn reload(&self, target: &LogTarget) -> Result<(), LoggingError> {
        self.reload_with(target, Path::new(DEV_LOG))
    }

    fn reload_with(&self, target: &LogTarget, dev_log: &Path) -> Result<(), LoggingError> {
        let mut cur = self.lock();
        let wanted = if self.supervised {
            &LogTarget::Stdout
        } else {
            target
        };
        if *wanted == cur.target {
            return Ok(());
        }
        let (layer, next, warning) = make_layer(wanted, self.json, dev_log)?;
        self.handle
            .reload(layer)
            .map_err(|source| LoggingError::Reload { source })?;
        *cur = next;
        drop(cur);
        tracing::info!(target = ?target, "log target changed");
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        Ok(())
    }

    /// Reopens the log file (after logrotate moved it); nothing to do for other targets.
    pub fn reopen(&self) -> Result<(), LoggingError> {
        match &self.lock().file {
            Some(f) => f.reopen(),
            None => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The filter from `LVS_LOG`, else `RUST_LOG`, else [`DEFAULT_FILTER`].
fn env_filter() -> Result<EnvFilter, LoggingError> {
    for variable in ["LVS_LOG", "RUST_LOG"] {
        if let Ok(value) = std::env::var(variable)
            && !value.trim().is_empty()
        {
            return EnvFilter::try_new(&value).map_err(|source| LoggingError::Filter {
                variable,
                value,
                source,
            });
        }
    }
    Ok(EnvFilter::new(DEFAULT_FILTER))
}

/// The guard and the (not yet installed, unfiltered) subscriber, with a warning to log once
/// it is installed.
fn build(
    target: &LogTarget,
    supervised: bool,
    json: bool,
    dev_log: &Path,
) -> Result<(LoggingGuard, Unfiltered, Option<String>), LoggingError> {
    let target = if supervised {
        &LogTarget::Stdout
    } else {
        target
    };
    let (layer, current, warning) = make_layer(target, json, dev_log)?;
    let (layer, handle) = reload::Layer::new(layer);
    let subscriber = Registry::default().with(layer);
    let guard = LoggingGuard {
        handle,
        json,
        supervised,
        current: Mutex::new(current),
    };
    Ok((guard, subscriber, warning))
}

fn make_layer(
    target: &LogTarget,
    json: bool,
    dev_log: &Path,
) -> Result<(Inner, Current, Option<String>), LoggingError> {
    let stdout = || -> Inner {
        if json {
            fmt::layer().json().with_writer(io::stdout).boxed()
        } else {
            fmt::layer()
                .with_ansi(io::stdout().is_terminal())
                .with_writer(io::stdout)
                .boxed()
        }
    };
    Ok(match target {
        LogTarget::Stdout => (
            stdout(),
            Current {
                target: LogTarget::Stdout,
                file: None,
            },
            None,
        ),
        LogTarget::File(path) => {
            let sink = FileSink::open(path)?;
            let layer: Inner = if json {
                fmt::layer().json().with_writer(sink.clone()).boxed()
            } else {
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(sink.clone())
                    .boxed()
            };
            (
                layer,
                Current {
                    target: target.clone(),
                    file: Some(sink),
                },
                None,
            )
        }
        LogTarget::Syslog(facility) => {
            let code = facility_code(facility).ok_or_else(|| LoggingError::UnknownFacility {
                facility: facility.clone(),
            })?;
            match SyslogSink::connect(dev_log, code, "lvs") {
                Ok(sink) => (
                    fmt::layer()
                        .with_ansi(false)
                        .without_time()
                        .with_level(false)
                        .with_target(false)
                        .with_writer(sink)
                        .boxed(),
                    Current {
                        target: target.clone(),
                        file: None,
                    },
                    None,
                ),
                Err(e) => (
                    stdout(),
                    Current {
                        target: LogTarget::Stdout,
                        file: None,
                    },
                    Some(format!(
                        "cannot log to syslog via {}: {e}; logging to stdout",
                        dev_log.display()
                    )),
                ),
            }
        }
    })
}

/// The syslog facility code of a name (`local0` → 16).
pub fn facility_code(name: &str) -> Option<u8> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("log_").unwrap_or(&n);
    Some(match n {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" | "security" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        _ => {
            let d = n.strip_prefix("local")?.parse::<u8>().ok()?;
            if d > 7 {
                return None;
            }
            16 + d
        }
    })
}

/// An append-only log file that can be reopened.
#[derive(Clone)]
struct FileSink {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl FileSink {
    fn open_file(path: &Path) -> Result<File, LoggingError> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LoggingError::OpenFile {
                path: path.to_path_buf(),
                source,
            })
    }

    fn open(path: &Path) -> Result<FileSink, LoggingError> {
        Ok(FileSink {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(FileSink::open_file(path)?)),
        })
    }

    fn reopen(&self) -> Result<(), LoggingError> {
        let f = FileSink::open_file(&self.path)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = f;
        Ok(())
    }
}

/// One event's worth of writing to a [`FileSink`].
struct FileWriter<'a>(&'a FileSink);

impl Write for FileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // One lock for the whole event, so concurrent events don't interleave.
        self.0
            .file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for FileSink {
    type Writer = FileWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        FileWriter(self)
    }
}

/// RFC 3164 datagrams to a local syslog socket.
struct SyslogSink {
    path: PathBuf,
    socket: Mutex<Option<UnixDatagram>>,
    facility: u8,
    ident: String,
    pid: u32,
}

impl SyslogSink {
    fn connect(path: &Path, facility: u8, ident: &str) -> io::Result<SyslogSink> {
        let s = UnixDatagram::unbound()?;
        s.connect(path)?;
        Ok(SyslogSink {
            path: path.to_path_buf(),
            socket: Mutex::new(Some(s)),
            facility,
            ident: ident.to_string(),
            pid: std::process::id(),
        })
    }

    /// The datagram for one message.
    fn format(&self, severity: u8, msg: &str, now: SystemTime) -> String {
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (_, m, d) = crate::alert::civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        const MON: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "<{}>{} {:>2} {:02}:{:02}:{:02} {}[{}]: {}",
            u16::from(self.facility) * 8 + u16::from(severity),
            MON[(m - 1) as usize],
            d,
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            self.ident,
            self.pid,
            msg.trim_end_matches(['\n', '\r'])
        )
    }

    /// Sends one message; reconnects once if the syslog daemon was restarted. Errors are
    /// dropped: there is nowhere left to report them.
    fn send(&self, severity: u8, msg: &str) {
        let line = self.format(severity, msg, SystemTime::now());
        let mut sock = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sock.as_ref()
            && s.send(line.as_bytes()).is_ok()
        {
            return;
        }
        *sock = UnixDatagram::unbound()
            .and_then(|s| s.connect(&self.path).map(|()| s))
            .ok();
        if let Some(s) = sock.as_ref() {
            let _ = s.send(line.as_bytes());
        }
    }
}

/// One event's worth of writing to a [`SyslogSink`]: buffered, sent when dropped.
struct SyslogWriter<'a> {
    sink: &'a SyslogSink,
    severity: u8,
    buf: Vec<u8>,
}

impl Write for SyslogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogWriter<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.sink
                .send(self.severity, &String::from_utf8_lossy(&self.buf));
        }
    }
}

impl<'a> MakeWriter<'a> for SyslogSink {
    type Writer = SyslogWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        SyslogWriter {
            sink: self,
            severity: 6,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        let severity = match *meta.level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        SyslogWriter {
            sink: self,
            severity,
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn scratch(name: &str) -> crate::testdir::TestDir {
        crate::testdir::TestDir::new(&format!("logging-{name}"))
    }

    fn no_dev_log() -> PathBuf {
        PathBuf::from("/nonexistent/lvs-test/dev-log")
    }

    #[test]
    fn file_target_appends_and_reopens() {
        let dir = scratch("file");
        let path = dir.join("lvs.log");
        std::fs::write(&path, "old line\n").unwrap();
        let (guard, sub, warning) =
            build(&LogTarget::File(path.clone()), false, false, &no_dev_log()).unwrap();
        assert!(warning.is_none());
        tracing::subscriber::with_default(sub, || {
            tracing::info!(real = "10.0.0.2:80", "real server down");
            std::fs::rename(&path, dir.join("lvs.log.1")).unwrap();
            guard.reopen().unwrap();
            tracing::warn!("after rotation");
        });
        let rotated = std::fs::read_to_string(dir.join("lvs.log.1")).unwrap();
        assert!(rotated.starts_with("old line\n"), "{rotated}");
        assert!(rotated.contains("INFO"), "{rotated}");
        assert!(
            rotated.contains("real server down real=\"10.0.0.2:80\""),
            "{rotated}"
        );
        assert!(
            !rotated.contains('\u{1b}'),
            "ANSI codes in a file: {rotated}"
        );
        let fresh = std::fs::read_to_string(&path).unwrap();
        assert!(fresh.contains("after rotation") && !fresh.contains("real server down"));
    }

    #[test]
    fn json_file_lines_parse() {
        let dir = scratch("json");
        let path = dir.join("lvs.json");
        let (_guard, sub, _) =
            build(&LogTarget::File(path.clone()), false, true, &no_dev_log()).unwrap();
        tracing::subscriber::with_default(sub, || tracing::info!(real = "10.0.0.2:80", "up"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with('{') && text.contains("\"real\":\"10.0.0.2:80\""),
            "{text}"
        );
    }

    #[test]
    fn syslog_sends_rfc3164_datagrams() {
        let dir = scratch("syslog");
        let sock_path = dir.join("log");
        let server = UnixDatagram::bind(&sock_path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (guard, sub, warning) = build(
            &LogTarget::Syslog("local3".into()),
            false,
            false,
            &sock_path,
        )
        .unwrap();
        assert!(warning.is_none());
        assert_eq!(guard.target(), LogTarget::Syslog("local3".into()));
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(real = "10.0.0.2:80", "real server down");
            tracing::error!("boom");
        });
        let mut buf = [0u8; 2048];
        let n = server.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..n]).unwrap();
        // local3 (19) * 8 + warning (4) = 156.
        assert!(msg.starts_with("<156>"), "{msg}");
        let pid = format!(" lvs[{}]: ", std::process::id());
        assert!(msg.contains(&pid), "{msg}");
        assert!(
            msg.ends_with("real server down real=\"10.0.0.2:80\""),
            "{msg}"
        );
        let n = server.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("<155>"));
    }

    #[test]
    fn syslog_timestamp_format() {
        let dir = scratch("syslogfmt");
        let p = dir.join("log");
        let _server = UnixDatagram::bind(&p).unwrap();
        let s = SyslogSink::connect(&p, 3, "lvs").unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1_796_756_690); // 2026-12-08 19:04:50 UTC
        let line = s.format(6, "hello\n", t);
        assert_eq!(
            line,
            format!("<30>Dec  8 19:04:50 lvs[{}]: hello", std::process::id())
        );
    }

    #[test]
    fn missing_dev_log_falls_back_to_stdout() {
        let (guard, _sub, warning) = build(
            &LogTarget::Syslog("daemon".into()),
            false,
            false,
            &no_dev_log(),
        )
        .unwrap();
        assert_eq!(guard.target(), LogTarget::Stdout);
        assert!(warning.unwrap().contains("logging to stdout"));
    }

    #[test]
    fn supervised_forces_stdout() {
        let dir = scratch("supervised");
        let path = dir.join("never.log");
        let (guard, _sub, _) =
            build(&LogTarget::File(path.clone()), true, false, &no_dev_log()).unwrap();
        assert_eq!(guard.target(), LogTarget::Stdout);
        guard
            .reload_with(&LogTarget::File(path.clone()), &no_dev_log())
            .unwrap();
        assert_eq!(guard.target(), LogTarget::Stdout);
        assert!(!path.exists());
    }

    #[test]
    fn reload_switches_the_target() {
        let dir = scratch("reload");
        let a = dir.join("a.log");
        let b = dir.join("b.log");
        let (guard, sub, _) =
            build(&LogTarget::File(a.clone()), false, false, &no_dev_log()).unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::info!("first");
            guard
                .reload_with(&LogTarget::File(b.clone()), &no_dev_log())
                .unwrap();
            tracing::info!("second");
        });
        assert_eq!(guard.target(), LogTarget::File(b.clone()));
        let a = std::fs::read_to_string(&a).unwrap();
        let b = std::fs::read_to_string(&b).unwrap();
        assert!(a.contains("first") && !a.contains("second"), "{a}");
        assert!(b.contains("second") && !b.contains("first"), "{b}");
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(matches!(
            build(
                &LogTarget::Syslog("local9".into()),
                false,
                false,
                &no_dev_log()
            ),
            Err(LoggingError::UnknownFacility { .. })
        ));
        assert!(matches!(
            build(
                &LogTarget::File("/nonexistent/dir/lvs.log".into()),
                false,
                false,
                &no_dev_log()
            ),
            Err(LoggingError::OpenFile { .. })
        ));
        assert_eq!(facility_code("LOCAL0"), Some(16));
        assert_eq!(facility_code("log_daemon"), Some(3));
        assert_eq!(facility_code("local7"), Some(23));
        assert_eq!(facility_code("nope"), None);
    }
}
