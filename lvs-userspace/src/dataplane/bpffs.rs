//! Where the data plane's pins live: `BPFFS/lvs/INSTANCE` on a bpf filesystem that outlives
//! the agent.
//!
//! `ip netns exec` gives its command a private mount namespace with `/sys` remounted, which
//! hides the host's `/sys/fs/bpf`; a bpffs mounted in there dies with the process, and so would
//! the pins. So the bpffs must be one mounted on the host (default `/sys/fs/bpf`, or any other
//! such as `/run/lvs/bpf`, passed with `--bpffs`). lvs mounts it itself only where the mount is
//! the host's: when it runs in pid 1's mount namespace.

use std::path::{Path, PathBuf};

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Errors finding or making the pin directory.
#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    /// The path is not a bpffs and lvs cannot (or must not) mount one there.
    #[error(
        "{path} is not a bpf filesystem{why}: pins there would not outlive this process. Mount \
         one on the host (`mount -t bpf bpf {path}`) or pass --bpffs with a bpffs that is"
    )]
    NotBpffs {
        /// The path.
        path: PathBuf,
        /// Why lvs did not mount one itself.
        why: String,
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
            return Err(BpffsError::NotBpffs {
                path: root.to_path_buf(),
                why: " and lvs runs in a private mount namespace (ip netns exec?)".into(),
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
