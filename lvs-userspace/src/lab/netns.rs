//! Processes and network namespaces: commands with a deadline, namespaces removed with what
//! runs in them, stale labs cleaned up, code run inside a namespace, the lab's bpf filesystem.

use std::{
    io::Read,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use super::{LabError, Result};

/// The lab's bpf filesystem, under its directory: mounted on the host (by the process that
/// builds the lab), so pins made there by an `lvs` running under `ip netns exec` outlive it.
pub(super) const BPFFS_DIR: &str = "bpf";

/// Mounts a bpf filesystem on `path` (created if missing), in this process's mount namespace.
pub fn mount_bpffs(path: &Path) -> Result<()> {
    Ok(crate::dataplane::bpffs::mount(path)?)
}

/// Unmounts what is mounted on `path` (lazily), if `path` exists.
pub fn unmount_bpffs(path: &Path) {
    if path.exists() {
        let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the group the child leads (it was started with process_group(0)).
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `ip netns exec NS PROGRAM` as a [`Command`].
pub fn netns_command(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// How long one of the lab's own commands (`ip`, `sh` set-up scripts, `ethtool`) may run.
pub(super) const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `cmd` (no standard input), reading its output as it comes, and returns its status,
/// standard output and standard error; one that has not exited within [`COMMAND_DEADLINE`]
/// is killed and reported as a timeout naming it.
fn output(cmd: &mut Command) -> Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>)> {
    use std::os::fd::AsRawFd;
    let command = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn {
            command: command.clone(),
            source,
        })?;
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    for fd in [
        out.as_ref().map(|o| o.as_raw_fd()),
        err.as_ref().map(|e| e.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        // SAFETY: fcntl(2) on a pipe we own.
        unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut drain = |out: &mut Option<std::process::ChildStdout>,
                     err: &mut Option<std::process::ChildStderr>| {
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut stdout);
        }
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut stderr);
        }
    };
    let deadline = Instant::now() + COMMAND_DEADLINE;
    let status = loop {
        drain(&mut out, &mut err);
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(match other {
                    Err(source) => LabError::Io {
                        what: format!("waiting for {command}"),
                        source,
                    },
                    _ => LabError::Timeout {
                        what: command,
                        after: COMMAND_DEADLINE,
                    },
                });
            }
        }
    };
    drain(&mut out, &mut err);
    Ok((status, stdout, stderr))
}

pub(super) fn run(cmd: &mut Command) -> Result<()> {
    let command = format!("{cmd:?}");
    let (status, _, stderr) = output(cmd)?;
    if !status.success() {
        return Err(LabError::Command {
            command,
            status: status.to_string(),
            stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
        });
    }
    Ok(())
}

pub(super) fn sh_in(ns: &str, script: &str) -> Result<()> {
    run(netns_command(ns, "sh").args(["-c", script]))
}

fn kill_netns_processes(ns: &str) {
    if let Ok((_, stdout, _)) = output(Command::new("ip").args(["netns", "pids", ns])) {
        for pid in String::from_utf8_lossy(&stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>()
                && pid > 1
                && pid != std::process::id() as i32
            {
                // SAFETY: kill(2) of a process living in a namespace we own.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

pub(super) fn delete_netns(ns: &str) -> Result<()> {
    kill_netns_processes(ns);
    run(Command::new("ip").args(["netns", "del", ns]))
}

/// Removes the namespaces of earlier labs whose process is gone: every `/var/run/netns` entry
/// named `<base>-<pid>-…` whose `<pid>` is not a running process (processes left in it are
/// killed first), and the content directories `<tmp>/<base>-<pid>-<n>` of such labs. Returns
/// the namespace names removed.
pub fn cleanup_stale(base: &str) -> Result<Vec<String>> {
    let dir = Path::new("/var/run/netns");
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(LabError::Io {
                what: "listing /var/run/netns".into(),
                source,
            });
        }
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(base).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pid <= 0 || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        delete_netns(&name)?;
        removed.push(name);
    }
    // Their content directories, `<tmp>/<base>-<pid>-<n>`.
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(base).and_then(|r| r.strip_prefix('-')) else {
                continue;
            };
            let mut parts = rest.split('-');
            let (Some(pid), Some(seq), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let (Ok(pid), Ok(_)) = (pid.parse::<i32>(), seq.parse::<u32>()) else {
                continue;
            };
            if pid > 0 && !Path::new(&format!("/proc/{pid}")).exists() {
                unmount_bpffs(&entry.path().join(BPFFS_DIR));
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(removed)
}

/// Runs `f` on a new thread that has entered network namespace `ns` (`/var/run/netns/NS`;
/// only the network namespace) and returns its result. Sockets opened inside live in that
/// namespace; a panic in `f` is resumed in the caller.
pub fn run_in_netns<T, F>(ns: &str, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let path = Path::new("/var/run/netns").join(ns);
    let file = std::fs::File::open(&path).map_err(|source| LabError::Setns {
        ns: ns.to_string(),
        source,
    })?;
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: setns(2) on this thread only, with an fd we hold open.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(LabError::Setns {
                    ns: ns.to_string(),
                    source: std::io::Error::last_os_error(),
                });
            }
            Ok(f())
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
