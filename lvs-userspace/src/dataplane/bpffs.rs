//! Where the data plane's pins live: `BPFFS/lvs/INSTANCE` on a bpf filesystem that outlives
//! the agent.
//!
//! `ip netns exec` gives its command a private mount namespace with `/sys` remounted, which
//! hides the host's `/sys/fs/bpf`; a bpffs mounted in there dies with the process, and so would
//! the pins. So the bpffs must be one mounted on the host (default `/sys/fs/bpf`, or any other
//! such as `/run/lvs/bpf`, passed with `--bpffs`). lvs mounts it itself only where the mount is
//! the host's: when it runs in pid 1's mount namespace.
//!
//! Where that cannot be and no `--bpffs` was given (a newcomer's `ip netns exec NS lvs run`),
//! [`choose`] runs the agent without pins and gives one warning: what that costs and how to
//! keep it. A `--bpffs` given on purpose that is no bpffs is refused.

use std::path::{Path, PathBuf};

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Errors finding or making the pin directory.
#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    /// The path is not a bpffs, and lvs runs in a private mount namespace (`ip netns exec`),
    /// where a bpffs it mounted would die with it.
    #[error(
        "{} is not a bpf filesystem and lvs runs in a private mount namespace (ip netns exec?), \
         where a bpffs it mounted would die with it: pins there would not outlive this process. \
         Mount one on the host outside /sys (`mkdir -p /run/lvs/bpf && mount -t bpf bpf \
         /run/lvs/bpf`) and pass --bpffs /run/lvs/bpf, or leave --bpffs out to run without \
         pins",
        path.display()
    )]
    PrivateNamespace {
        /// The path.
        path: PathBuf,
    },
    /// The instance name could escape `BPFFS/lvs/`.
    #[error(
        "instance name {name:?} refused: it must be made of letters, digits, `_`, `.` and `-`, \
         and not be `.` or `..`"
    )]
    BadInstance {
        /// The name given.
        name: String,
    },
    /// A system call failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
}

/// Whether this process shares pid 1's mount namespace (its mounts are the host's).
fn in_host_mount_namespace() -> bool {
    let ns = |p: &str| std::fs::read_link(p).ok();
    let mine = ns("/proc/self/ns/mnt");
    mine.is_some() && mine == ns("/proc/1/ns/mnt")
}

/// Mounts a bpf filesystem on `path` (created if missing), in this process's mount namespace.
pub fn mount(path: &Path) -> Result<(), BpffsError> {
    std::fs::create_dir_all(path).map_err(|source| BpffsError::Io {
        action: "creating",
        path: path.to_path_buf(),
        source,
    })?;
    nix::mount::mount(
        Some("bpf"),
        path,
        Some("bpf"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| BpffsError::Io {
        action: "mounting a bpffs on",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// The pin directory of `instance` under the bpffs at `root`, created if missing. Mounts a
/// bpffs at `root` when none is there and this process is in the host's mount namespace. An
/// instance name that is not [`valid_instance`] is refused before anything is touched.
pub fn pin_dir(root: &Path, instance: &str) -> Result<PathBuf, BpffsError> {
    if !valid_instance(instance) {
        return Err(BpffsError::BadInstance {
            name: instance.to_string(),
        });
    }
    if !is_bpffs(root) {
        if !in_host_mount_namespace() {
            return Err(BpffsError::PrivateNamespace {
                path: root.to_path_buf(),
            });
        }
        mount(root)?;
    }
    let dir = root.join("lvs").join(instance);
    std::fs::create_dir_all(&dir).map_err(|source| BpffsError::Io {
        action: "creating",
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// The bpffs `lvs run` pins on when no `--bpffs` is given.
pub const DEFAULT_BPFFS: &str = "/sys/fs/bpf";

/// Where `lvs run` keeps its data plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pinning {
    /// Pinned in this directory (`BPFFS/lvs/INSTANCE`): it outlives the agent, and the next
    /// agent adopts it.
    At(PathBuf),
    /// Not pinned: the data plane lives as long as the agent. `warning`, when the operator did
    /// not ask for that (`--no-pin`), says why, what it costs and how to keep the pins.
    Unpinned {
        /// The warning to log once the log is set up.
        warning: Option<String>,
    },
}

/// Where `lvs run` pins, from `--bpffs` (`None`: not given) and `--no-pin`:
/// - `--no-pin`: nowhere;
/// - `--bpffs PATH`: in `PATH/lvs/INSTANCE` ([`pin_dir`]), or an error;
/// - neither: in [`DEFAULT_BPFFS`]; where it cannot be had because lvs runs in a private
///   mount namespace (`ip netns exec` hides the host's /sys/fs/bpf), nowhere, with a warning
///   ([`Pinning::Unpinned`]).
pub fn choose(bpffs: Option<&Path>, no_pin: bool, instance: &str) -> Result<Pinning, BpffsError> {
    if no_pin {
        return Ok(Pinning::Unpinned { warning: None });
    }
    if let Some(root) = bpffs {
        return pin_dir(root, instance).map(Pinning::At);
    }
    match pin_dir(Path::new(DEFAULT_BPFFS), instance) {
        Err(BpffsError::PrivateNamespace { path }) => Ok(Pinning::Unpinned {
            warning: Some(unpinned_warning(&path)),
        }),
        r => r.map(Pinning::At),
    }
}

/// The warning of an agent that runs without pins because `path` is no bpffs in its private
/// mount namespace: what that costs, and how to keep the pins.
pub fn unpinned_warning(path: &Path) -> String {
    format!(
        "{} is not a bpf filesystem here: lvs runs in a private mount namespace (as under `ip \
         netns exec`, which remounts /sys and hides the host's /sys/fs/bpf), so it is running \
         without pins. What that costs: the data plane lives only as long as this agent, so a \
         restart or a crash stops forwarding, and the next agent cannot adopt it (established \
         flows, persistence and counters are lost; cleanstop = no cannot keep it). To keep it, \
         mount a bpf filesystem on the host outside /sys (`mkdir -p /run/lvs/bpf && mount -t \
         bpf bpf /run/lvs/bpf`) and pass --bpffs /run/lvs/bpf; --no-pin runs without pins and \
         without this warning",
        path.display()
    )
}

/// Whether `name` may name an instance: `[A-Za-z0-9_.-]+`, not `.` or `..` (it becomes a
/// directory name under `BPFFS/lvs/`, and must stay there).
pub fn valid_instance(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The hold of one agent on its instance: an exclusive `flock` on the instance's pin
/// directory, released when this is dropped or the process exits (however it exits).
#[derive(Debug)]
pub struct InstanceLock {
    _dir: std::fs::File,
}

/// Errors taking an instance's lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another agent holds it.
    #[error(
        "instance {instance} is already run by pid {pid} (pins in {}); stop it first, or \
         run this one with another --instance",
        dir.display()
    )]
    Busy {
        /// The instance.
        instance: String,
        /// The holder's pid, as /proc/locks tells it (`unknown` when it does not).
        pid: String,
        /// The pin directory.
        dir: PathBuf,
    },
    /// Opening or locking the directory failed.
    #[error("{action} the instance directory {}: {source}", dir.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Takes the lock of `instance`, whose pins are in `dir` (created if missing), without
/// waiting: refused with [`LockError::Busy`], naming the holder's pid, when another agent runs
/// it. The lock is on the directory itself (a bpffs holds no regular files); a directory
/// removed and made anew between opening and locking (an agent stopping cleanly removes it)
/// is opened again.
pub fn lock_instance(dir: &Path, instance: &str) -> Result<InstanceLock, LockError> {
    use std::os::unix::fs::MetadataExt as _;
    let io = |action| {
        move |source| LockError::Io {
            action,
            dir: dir.to_path_buf(),
            source,
        }
    };
    for _ in 0..10 {
        std::fs::create_dir_all(dir).map_err(io("creating"))?;
        let file = std::fs::File::open(dir).map_err(io("opening"))?;
        // SAFETY: flock(2) on a descriptor `file` owns.
        let locked = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if locked != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let meta = file.metadata().map_err(io("reading"))?;
                return Err(LockError::Busy {
                    instance: instance.to_string(),
                    pid: lock_holder(meta.dev(), meta.ino())
                        .map_or_else(|| "unknown".to_string(), |p| p.to_string()),
                    dir: dir.to_path_buf(),
                });
            }
            return Err(io("locking")(e));
        }
        let held = file.metadata().map_err(io("reading"))?;
        match std::fs::metadata(dir) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                return Ok(InstanceLock { _dir: file });
            }
            // Removed (and perhaps made anew) since it was opened: try again.
            _ => continue,
        }
    }
    Err(io("locking")(std::io::Error::other(
        "the directory keeps being removed and made anew",
    )))
}

/// The pid holding a `flock` on the file `dev`:`ino`, from /proc/locks
/// (`1: FLOCK ADVISORY WRITE PID MAJ:MIN:INO START END`, device numbers in hex).
fn lock_holder(dev: u64, ino: u64) -> Option<u32> {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // A waiting lock's line has "->" after the number: find the fields by "FLOCK".
        let fields: Vec<&str> = line.split_whitespace().collect();
        let i = fields.iter().position(|f| *f == "FLOCK")?;
        (fields.get(i + 4) == Some(&want.as_str()))
            .then(|| fields.get(i + 3)?.parse().ok())
            .flatten()
    })
}

/// Instance names: only plain names, which stay under `BPFFS/lvs/`.
#[cfg(test)]
mod instance_tests {
    use super::*;

    #[test]
    fn names_that_leave_the_pin_directory_are_refused() {
        for ok in ["default", "lb-1", "a.b_c", "..x", "X9"] {
            assert!(valid_instance(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../..", "/etc", "a/b", "a b", "é", "a\0"] {
            assert!(!valid_instance(bad), "{bad:?}");
            let e = pin_dir(Path::new("/nonexistent-lvs-bpffs"), bad).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("instance name {bad:?} refused")),
                "{e}"
            );
        }
        assert!(
            !Path::new("/nonexistent-lvs-bpffs").exists(),
            "nothing made"
        );
    }
}

/// Where `lvs run` pins (the private-mount-namespace fallback itself is tested in the lab:
/// tests/tests/lab_netns_exec.rs).
#[cfg(test)]
mod choose_tests {
    use super::*;

    #[test]
    fn no_pin_is_asked_for_and_says_nothing() {
        assert_eq!(
            choose(None, true, "default").unwrap(),
            Pinning::Unpinned { warning: None }
        );
        assert_eq!(
            choose(Some(Path::new("/nonexistent-lvs-bpffs")), true, "default").unwrap(),
            Pinning::Unpinned { warning: None }
        );
        assert!(!Path::new("/nonexistent-lvs-bpffs").exists());
    }

    #[test]
    fn the_warning_says_what_is_lost_and_how_to_keep_it() {
        let w = unpinned_warning(Path::new(DEFAULT_BPFFS));
        for what in [
            "/sys/fs/bpf is not a bpf filesystem here",
            "running without pins",
            "a restart or a crash stops forwarding",
            "the next agent cannot adopt it",
            "mount -t bpf bpf /run/lvs/bpf",
            "--bpffs /run/lvs/bpf",
            "--no-pin",
        ] {
            assert!(w.contains(what), "{what:?} not in {w}");
        }
        assert!(!w.contains('\n'), "one line");
    }
}
