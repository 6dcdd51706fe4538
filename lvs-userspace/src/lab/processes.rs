//! Processes the lab runs for a test in its namespaces: started in their own process group,
//! terminated, waited for, killed, and all killed when the lab is dropped.

use std::{
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{
    Lab, LabError, Result,
    netns::{kill_group, lock},
    netns_command,
};

impl Lab {
    /// A command that runs `program` in namespace `ns` (`ip netns exec NS PROGRAM`); add
    /// arguments and run it as usual.
    pub fn command(&self, ns: &str, program: &str) -> Command {
        netns_command(ns, program)
    }

    /// Starts `program args…` in namespace `ns` in the background, in its own process group,
    /// output discarded. The lab kills the group on drop; returns the child's pid.
    pub fn spawn<I, S>(&self, ns: &str, program: &str, args: I) -> Result<u32>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.spawn_with(ns, program, args, Stdio::null, Stdio::null)
    }

    /// Like [`Lab::spawn`], with standard output and error appended to `log`.
    pub fn spawn_logged<I, S>(&self, ns: &str, program: &str, args: I, log: &Path) -> Result<u32>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| LabError::Io {
                    what: format!("opening log {}", log.display()),
                    source,
                })
        };
        let (out, err) = (open()?, open()?);
        self.spawn_with(ns, program, args, move || out.into(), move || err.into())
    }

    fn spawn_with<I, S>(
        &self,
        ns: &str,
        program: &str,
        args: I,
        stdout: impl FnOnce() -> Stdio,
        stderr: impl FnOnce() -> Stdio,
    ) -> Result<u32>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = netns_command(ns, program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(stdout())
            .stderr(stderr())
            .process_group(0);
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            command: format!("{cmd:?}"),
            source,
        })?;
        let pid = child.id();
        lock(&self.children).push(child);
        Ok(pid)
    }

    /// Sends SIGTERM to a child started with [`Lab::spawn`] and waits up to `timeout` for it
    /// to exit; returns whether it did.
    pub fn terminate(&self, pid: u32, timeout: Duration) -> bool {
        let mut children = lock(&self.children);
        let Some(pos) = children.iter().position(|c| c.id() == pid) else {
            return true;
        };
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = children[pos].try_wait() {
                // Already reaped by try_wait; wait() returns its status at once.
                let _ = children.remove(pos).wait();
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits up to `within` for a child started with [`Lab::spawn`] to exit by itself, and
    /// reaps it: its exit status, or `None` if it still runs (it is left running) or is not a
    /// child of the lab.
    pub fn wait_exit(&self, pid: u32, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            {
                let mut children = lock(&self.children);
                let pos = children.iter().position(|c| c.id() == pid)?;
                if let Ok(Some(status)) = children[pos].try_wait() {
                    // Already reaped by try_wait; wait() returns its status at once.
                    let _ = children.remove(pos).wait();
                    return Some(status);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills (SIGKILL, whole process group) a child started with [`Lab::spawn`] and reaps it.
    pub fn kill(&self, pid: u32) {
        let mut children = lock(&self.children);
        if let Some(pos) = children.iter().position(|c| c.id() == pid) {
            let mut child = children.remove(pos);
            kill_group(&mut child);
        }
    }
}
