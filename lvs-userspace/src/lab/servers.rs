//! The reals' HTTP servers: their content (`index.html`, the shared `big.bin` of
//! [`big_file_bytes`]), starting and stopping each `python3 -m http.server`.

use std::{
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use super::{
    Lab, LabError, RealHost, Result,
    netns::{kill_group, lock},
    netns_command, run_in_netns,
};

/// The bytes of the lab's `big.bin` of `len` bytes: a deterministic pseudo-random stream
/// (xorshift64 from a fixed seed), so a client can check what it received.
pub fn big_file_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

impl Lab {
    pub(super) fn write_content(&self) -> Result<()> {
        let io = |what: String| move |source| LabError::Io { what, source };
        std::fs::create_dir_all(&self.dir)
            .map_err(io(format!("creating {}", self.dir.display())))?;
        let big = self.big_file_path_shared();
        std::fs::write(&big, big_file_bytes(self.opts.big_file_size))
            .map_err(io(format!("writing {}", big.display())))?;
        for r in &self.reals {
            let d = self.dir.join(&r.name);
            std::fs::create_dir_all(&d).map_err(io(format!("creating {}", d.display())))?;
            std::fs::write(d.join("index.html"), format!("{}\n", r.name))
                .map_err(io(format!("writing {}/index.html", d.display())))?;
            let link = d.join("big.bin");
            if !link.exists() {
                std::fs::hard_link(&big, &link)
                    .map_err(io(format!("linking {}", link.display())))?;
            }
        }
        Ok(())
    }

    fn big_file_path_shared(&self) -> PathBuf {
        self.dir.join("big.bin")
    }

    /// Starts real `index`'s (0-based) HTTP server and waits until it accepts connections on
    /// IPv4 and IPv6. Does nothing if it is running.
    pub fn start_server(&self, index: usize) -> Result<()> {
        let r = self.real(index)?.clone();
        {
            let mut servers = lock(&self.servers);
            if let Some(child) = servers[index].as_mut() {
                if matches!(child.try_wait(), Ok(None)) {
                    return Ok(());
                }
                servers[index] = None;
            }
            let log = self.dir.join(format!("{}.log", r.name));
            let log = std::fs::File::create(&log).map_err(|source| LabError::Io {
                what: format!("creating {}", log.display()),
                source,
            })?;
            let docroot = self.dir.join(&r.name);
            let port = self.opts.http_port.to_string();
            let mut cmd = netns_command(&r.ns, "python3");
            cmd.args(["-m", "http.server", "--bind", "::", "--directory"])
                .arg(&docroot)
                .arg(&port)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0);
            let child = cmd.spawn().map_err(|source| LabError::Spawn {
                command: format!("{cmd:?}"),
                source,
            })?;
            servers[index] = Some(child);
        }
        let port = self.opts.http_port;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = run_in_netns(&r.ns, || {
                [
                    SocketAddr::from((r.addr_v4, port)),
                    SocketAddr::from((r.addr_v6, port)),
                ]
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
            })?;
            if up {
                return Ok(());
            }
            if let Some(child) = lock(&self.servers)[index].as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(self.dir.join(format!("{}.log", r.name)))
                    .unwrap_or_default();
                return Err(LabError::Command {
                    command: format!("python3 -m http.server in {}", r.ns),
                    status: status.to_string(),
                    stderr: log,
                });
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("the HTTP server of {}", r.name),
                    after: Duration::from_secs(10),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops real `index`'s (0-based) HTTP server (SIGKILL) and waits for it to exit.
    pub fn stop_server(&self, index: usize) -> Result<()> {
        self.real(index)?;
        if let Some(mut child) = lock(&self.servers)[index].take() {
            kill_group(&mut child);
        }
        Ok(())
    }

    /// Whether real `index`'s (0-based) HTTP server is running.
    pub fn server_running(&self, index: usize) -> bool {
        lock(&self.servers)
            .get_mut(index)
            .and_then(|c| c.as_mut())
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn real(&self, index: usize) -> Result<&RealHost> {
        self.reals.get(index).ok_or_else(|| LabError::BadOption {
            detail: format!(
                "there is no real number {index} (0-based) of {}",
                self.reals.len()
            ),
        })
    }
}
