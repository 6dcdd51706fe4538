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
/// bpffs at `root` when none is there and this process is in the host's mount namespace.
pub fn pin_dir(root: &Path, instance: &str) -> Result<PathBuf, BpffsError> {
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
