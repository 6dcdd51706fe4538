//! Reading the config file off the agent's loop: a FIFO or a stalled mount at the config path
//! must not block the loop that applies health events, answers `lvs status` and takes
//! SIGTERM. A read runs on a thread of its own and sends what it found back; a stamp of the
//! file (time, size, inode) tells the autoreload poll whether it changed.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use crate::config::{self, Config, ConfigError};

/// What the config file looked like when last read: a change to any of these is a change of
/// the file. The size and the inode catch what the modification time alone can miss (a
/// truncate and a write within the same clock tick, a file replaced by a rename).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    dev: u64,
    ino: u64,
}

pub(super) fn stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// What a read of the config file, done off the loop, found.
pub(super) enum ReadOutcome {
    /// An autoreload poll: the file has not changed.
    Unchanged,
    /// The file was read: how it looked before it was read, and what it held.
    Read {
        why: ReadWhy,
        stamp: Option<FileStamp>,
        result: Box<Result<Config, ConfigError>>,
    },
}

/// Why the config file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadWhy {
    /// SIGHUP: read whatever its stamp.
    Signal,
    /// The autoreload poll: read only when its stamp changed since `known`.
    Poll,
    /// The firewall-mark poll: the running config's marks derived again from the host's
    /// rules (the file is not read).
    Rules,
}

/// Reads the config file on a thread of its own (never on the loop that applies health
/// events: a FIFO or a stalled mount could block it for ever) and sends what it found to
/// `done`. A plain thread, not the runtime's blocking pool, so that a read that never ends
/// does not hold up the process's exit.
pub(super) fn read_off_loop(
    path: PathBuf,
    format: Option<config::Format>,
    why: ReadWhy,
    known: Option<FileStamp>,
    done: tokio::sync::mpsc::Sender<ReadOutcome>,
) {
    let spawned = std::thread::Builder::new()
        .name("config-read".into())
        .spawn(move || {
            let stamp = stamp(&path);
            let outcome = if why == ReadWhy::Poll && stamp == known {
                ReadOutcome::Unchanged
            } else {
                ReadOutcome::Read {
                    why,
                    stamp,
                    result: Box::new(config::load_as(&path, format)),
                }
            };
            let _ = done.blocking_send(outcome);
        });
    if let Err(e) = spawned {
        tracing::error!("reload not started: cannot start a thread to read the config: {e}");
    }
}

/// Derives the firewall-mark services of `config` again from the host's rules, on a thread
/// of its own (the tools it runs could hang), and sends the result to `done` as a read of
/// why [`ReadWhy::Rules`].
pub(super) fn rules_off_loop(
    config: Config,
    stamp: Option<FileStamp>,
    done: tokio::sync::mpsc::Sender<ReadOutcome>,
) {
    let spawned = std::thread::Builder::new()
        .name("fwmark-rules".into())
        .spawn(move || {
            let mut config = config;
            let result = config::fwmark::apply_host_rules(&mut config).map(|()| config);
            let _ = done.blocking_send(ReadOutcome::Read {
                why: ReadWhy::Rules,
                stamp,
                result: Box::new(result),
            });
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start a thread to read the firewall-mark rules: {e}");
    }
}

/// How long a read of the config may take before the log says it is stuck.
pub(super) const READ_STUCK_AFTER: Duration = Duration::from_secs(5);

/// The stamp that tells a changed config file from an unchanged one.
#[cfg(test)]
mod stamp_tests {
    use super::*;
    use crate::testdir::TestDir;

    #[test]
    fn a_rewrite_within_the_same_clock_tick_is_a_change() {
        let dir = TestDir::new("agent-stamp");
        let path = dir.join("lvs.toml");
        // Truncated, then written, both within one tick of the file system's clock.
        std::fs::write(&path, "").unwrap();
        let empty = stamp(&path).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut &f, b"[[virtual]]\naddress = \"10.0.0.1:80\"\n").unwrap();
        f.set_modified(empty.modified.unwrap()).unwrap();
        drop(f);
        let written = stamp(&path).unwrap();
        assert_eq!(written.modified, empty.modified, "the same mtime");
        assert_ne!(written, empty, "but another file");
        assert_eq!(stamp(&path), Some(written), "and stable while unchanged");
    }
}
