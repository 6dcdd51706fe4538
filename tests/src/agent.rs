//! Running the `lvs` binary on a lab's director, as an operator would.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use lvs::{
    agent::snapshot::Snapshot,
    lab::{Lab, http_get},
};

/// The `lvs` binary under test: `$LVS_BIN`, else `lvs` in the target directory these tests
/// (or this tool) were built into (`cargo xtask test` builds it first).
pub fn lvs_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LVS_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().expect("target dir");
    // A tool: target/<profile>/<tool> → target/<profile>/lvs;
    // a test: target/<profile>/deps/<test> → target/<profile>/lvs.
    let beside = dir.join("lvs");
    let bin = if beside.is_file() {
        beside
    } else {
        dir.parent().expect("target dir").join("lvs")
    };
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build --bin lvs`), or run `cargo xtask test`",
        bin.display()
    );
    bin
}

/// An `lvs run` on the lab's director.
pub struct RunningLvs<'a> {
    lab: &'a Lab,
    pid: u32,
    /// Its config file (rewrite it and send SIGHUP to reload).
    pub config: PathBuf,
    /// Its log.
    pub log: PathBuf,
    /// Its control socket (`lvs status --control`), one per agent so that labs running in
    /// parallel do not share `/run/lvs/lvs.sock`; its directory does not exist beforehand.
    pub control: PathBuf,
}

impl<'a> RunningLvs<'a> {
    /// Writes `config` (TOML) and starts `lvs run` on the director.
    pub fn start(lab: &'a Lab, config: &str) -> Result<Self> {
        Self::start_file(lab, "lvs.toml", config)
    }

    /// Writes `config` to `name` in the lab's directory and starts `lvs run` with it.
    pub fn start_file(lab: &'a Lab, name: &str, config: &str) -> Result<Self> {
        Self::start_under(lab, name, config, &[])
    }

    /// As [`RunningLvs::start_file`], through `wrapper` (a command that execs its arguments,
    /// such as `prlimit --nofile=256:4096 --`): the pid is still the agent's.
    pub fn start_under(lab: &'a Lab, name: &str, config: &str, wrapper: &[&str]) -> Result<Self> {
        let path = lab.work_dir().join(name);
        std::fs::write(&path, config)?;
        let log = lab.work_dir().join(format!("{name}.log"));
        let control = lab.work_dir().join("run-lvs").join(format!("{name}.sock"));
        let bin = lvs_binary();
        let bpffs = lab.bpffs()?;
        let bin = bin.to_str().context("lvs path")?;
        let args = [
            "run",
            "--config",
            path.to_str().context("config path")?,
            "--bpffs",
            bpffs.to_str().context("bpffs path")?,
            "--control",
            control.to_str().context("control path")?,
        ];
        let (program, rest) = wrapper.split_first().unwrap_or((&bin, &[]));
        let args: Vec<&str> = if wrapper.is_empty() {
            args.to_vec()
        } else {
            rest.iter().copied().chain([bin]).chain(args).collect()
        };
        let pid = lab.spawn_logged(lab.director_ns(), program, args, &log)?;
        Ok(RunningLvs {
            lab,
            pid,
            config: path,
            log,
            control,
        })
    }

    /// The agent's log so far, terminal colour codes removed.
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends SIGHUP (reload).
    pub fn reload(&self) {
        // SAFETY: kill(2) on our child.
        unsafe { libc::kill(self.pid as i32, libc::SIGHUP) };
    }

    /// Waits until `vip` answers HTTP 200 from the client, or fails with the agent's log.
    pub fn wait_served(&self, vip: SocketAddr, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok((200, _)) = http_get(self.lab.client_ns(), vip, "/index.html") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{vip} not served within {within:?}; lvs log:\n{}",
            self.log()
        )
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "no {needle:?} in the lvs log within {within:?}:\n{}",
            self.log()
        )
    }

    /// `lvs status --control <its socket> ARGS` (from the root namespace: the socket is a
    /// file), with a deadline: its standard output, or its standard error if it failed.
    pub fn status(&self, args: &[&str]) -> Result<String> {
        status_at(&self.control, args)
    }

    /// Waits until the service at `vip` has each of `reals` (address and port as `lvs status`
    /// writes them, and the weight the config gives it) in the data plane at that weight:
    /// up after its checks *and* its MAC known. A real that is up but whose MAC is still
    /// being resolved is out of the kernel's tables (`lvs status` shows `-`, as for a real
    /// that is down), so a VIP that answers may have only some of its reals yet: wait here
    /// before anything that counts on all of them (a split, per-real counts, a stop or a
    /// reload that must find them in the pinned maps). Asking for the status makes the agent
    /// write pending changes first: what it shows is what the kernel's tables hold.
    pub fn wait_in_data_plane(
        &self,
        vip: SocketAddr,
        reals: &[(SocketAddr, u32)],
        within: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let missing = match self.status(&["--json"]) {
                Ok(json) => data_plane_gaps(&json, vip, reals),
                Err(e) => vec![e.to_string()],
            };
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the service {vip} has not all its reals in the data plane within \
                     {within:?}: {}; last status:\n{}\nlvs log:\n{}",
                    missing.join("; "),
                    self.status(&[]).unwrap_or_else(|e| e.to_string()),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`RunningLvs::wait_in_data_plane`], then [`RunningLvs::wait_served`]: every real of
    /// `reals` takes new connections of `vip`, and the VIP answers.
    pub fn wait_ready(
        &self,
        vip: SocketAddr,
        reals: &[(SocketAddr, u32)],
        within: Duration,
    ) -> Result<()> {
        self.wait_in_data_plane(vip, reals, within)?;
        self.wait_served(vip, within)
    }

    /// The first service's reals as `lvs status --json` shows them: address, ActiveConn,
    /// InActConn, overloaded.
    pub fn real_counts(&self) -> Vec<RealCounts> {
        let text = self.status(&["--json"]).expect("lvs status --json");
        let snap: serde_json::Value = serde_json::from_str(&text).expect("status JSON");
        snap["services"][0]["reals"]
            .as_array()
            .expect("the service's reals")
            .iter()
            .map(|r| RealCounts {
                address: r["address"].as_str().unwrap_or("?").to_string(),
                active: r["active_connections"].as_u64().expect("active"),
                inactive: r["inactive_connections"].as_u64().expect("inactive"),
                overloaded: r["overloaded"].as_bool().expect("overloaded"),
            })
            .collect()
    }

    /// Waits until `lvs status` shows `real` (as the table writes it, `198.18.0.13:80`) with
    /// `weight` in its weight column (`-`: out of the data plane, whether down or up with its
    /// MAC still unknown; a number: in it). Asking for the status makes the agent write
    /// pending changes first, so this is what the kernel's tables hold. Any service's line
    /// for `real` counts: to wait for the reals of one service, or for several reals, use
    /// [`RunningLvs::wait_in_data_plane`].
    pub fn wait_real_weight(&self, real: SocketAddr, weight: &str, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        let prefix = format!("  -> {real} ");
        loop {
            let last = match self.status(&[]) {
                Ok(table) => {
                    let has = table.lines().any(|l| {
                        l.starts_with(&prefix) && l.split_whitespace().nth(3) == Some(weight)
                    });
                    if has {
                        return Ok(());
                    }
                    table
                }
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{real} not at weight {weight:?} in lvs status within {within:?}; last \
                     status:\n{last}\nlvs log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `within` for it to exit by itself: its exit status, or an error (with its
    /// log) if it still runs (it is left to the lab, which kills it on drop).
    pub fn wait_exit(&self, within: Duration) -> Result<std::process::ExitStatus> {
        match self.lab.wait_exit(self.pid, within) {
            Some(status) => Ok(status),
            None => bail!(
                "lvs (pid {}) did not exit within {within:?}; lvs log:\n{}",
                self.pid,
                self.log()
            ),
        }
    }

    /// Kills it with SIGKILL: nothing of it runs, pins stay.
    pub fn kill(self) {
        self.lab.kill(self.pid);
    }

    /// Stops it with SIGTERM; true if it exited in time.
    pub fn stop(self) -> bool {
        self.lab.terminate(self.pid, Duration::from_secs(5))
    }
}

/// `lvs status --control CONTROL ARGS` (from the root namespace: the socket is a file), with
/// a deadline: its standard output, or its standard error if it failed.
pub fn status_at(control: &Path, args: &[&str]) -> Result<String> {
    let out = crate::wait::output(
        std::process::Command::new(lvs_binary())
            .arg("status")
            .arg("--control")
            .arg(control)
            .args(args),
    );
    if !out.status.success() {
        bail!(
            "lvs status {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What keeps `reals` (address, weight) from being in the data plane of the service at `vip`,
/// by `json` (`lvs status --json`): one line per real that is not there at its weight (its
/// weight there, `-` when out, and its health), or why the snapshot says nothing of it; empty
/// when all are.
pub fn data_plane_gaps(json: &str, vip: SocketAddr, reals: &[(SocketAddr, u32)]) -> Vec<String> {
    let snap: Snapshot = match serde_json::from_str(json) {
        Ok(s) => s,
        Err(e) => return vec![format!("lvs status --json is not a snapshot: {e}")],
    };
    let services: Vec<_> = snap.services.iter().filter(|s| s.address == vip).collect();
    if services.is_empty() {
        return vec![format!("no service at {vip} in lvs status")];
    }
    let mut gaps = Vec::new();
    for &(addr, weight) in reals {
        let listed: Vec<_> = services
            .iter()
            .flat_map(|s| s.reals.iter())
            .filter(|r| r.address == addr)
            .collect();
        if listed.is_empty() {
            gaps.push(format!("{addr} is not a real of {vip}"));
        }
        for r in listed {
            if r.effective_weight != Some(weight) {
                gaps.push(format!(
                    "{addr} at weight {} (want {weight}), health {}",
                    r.effective_weight
                        .map_or_else(|| "-".to_string(), |w| w.to_string()),
                    r.health.as_ref().map_or("?", |h| h.state.as_str())
                ));
            }
        }
    }
    gaps
}

/// The lab's reals on `port` (IPv4), each at `weight`: what
/// [`RunningLvs::wait_in_data_plane`] takes for a service of them all at one weight.
pub fn lab_reals(lab: &Lab, port: u16, weight: u32) -> Vec<(SocketAddr, u32)> {
    lab.reals()
        .iter()
        .map(|r| (SocketAddr::new(r.addr_v4.into(), port), weight))
        .collect()
}

/// One real of `lvs status --json` ([`RunningLvs::real_counts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealCounts {
    /// Its address and port (`198.18.0.11:80`).
    pub address: String,
    /// ActiveConn.
    pub active: u64,
    /// InActConn.
    pub inactive: u64,
    /// Past its upper connection threshold.
    pub overloaded: bool,
}

/// A TOML config of one TCP service on `vip` with the lab's reals on port 80, checked by
/// connect every second, its FIN_WAIT timeout `tcpfin_s`, scheduled by `scheduler`; `extra`
/// is added to the first real's table.
pub fn counting_config(
    lab: &Lab,
    vip: SocketAddr,
    scheduler: &str,
    tcpfin_s: u64,
    extra: &str,
) -> String {
    let mut c = format!(
        "checkinterval = 1\ntimeout_tcpfin = {tcpfin_s}\n\n[[virtual]]\naddress = \"{vip}\"\n\
         scheduler = \"{scheduler}\"\nchecktype = \"connect\"\n"
    );
    for (i, r) in lab.reals().iter().enumerate() {
        c.push_str(&format!(
            "[[virtual.real]]\naddress = \"{}:80\"\n",
            r.addr_v4
        ));
        if i == 0 {
            c.push_str(extra);
        }
    }
    c
}

/// A TOML config of the lab's two `wrr` services, `198.18.0.100:80` and
/// `[fd00:198:18::100]:80`, checked by connect every second, each with three reals of weights
/// 3, 2 and 1 (the IPv4 service's `v4`, the IPv6 one's `v6`), forwarded by `method`.
pub fn wrr_3_2_1_config(method: &str, v4: [&str; 3], v6: [&str; 3]) -> String {
    let mut c = String::from("checkinterval = 1\nchecktimeout = 2\n");
    for (vip, reals) in [("198.18.0.100:80", v4), ("[fd00:198:18::100]:80", v6)] {
        c.push_str(&format!(
            "\n[[virtual]]\naddress = \"{vip}\"\nscheduler = \"wrr\"\nchecktype = \"connect\"\n"
        ));
        for (real, weight) in reals.iter().zip([3, 2, 1]) {
            c.push_str(&format!(
                "[[virtual.real]]\naddress = \"{real}\"\nweight = {weight}\nmethod = \"{method}\"\n"
            ));
        }
    }
    c
}

/// The lab's IPv4 and IPv6 VIPs, port 80.
pub fn vips(lab: &Lab) -> [SocketAddr; 2] {
    [
        SocketAddr::new(lab.vip_v4().into(), 80),
        SocketAddr::new(lab.vip_v6().into(), 80),
    ]
}

/// 600 new connections to `vip` split 3:2:1 over real1, real2 and real3, each within ± 6,
/// once `reals` (real1's address first, as in [`wrr_3_2_1_config`]) are in the data plane at
/// weights 3, 2 and 1. A VIP that answers may not have all its reals yet: each comes up at
/// its first passing check, and one that comes up during the 600 misses its share.
pub fn assert_split_3_2_1(lab: &Lab, lvs: &RunningLvs, vip: SocketAddr, reals: [&str; 3]) {
    let weighted: Vec<(SocketAddr, u32)> = reals
        .iter()
        .map(|r| r.parse().expect("a real's address"))
        .zip([3, 2, 1])
        .collect();
    lvs.wait_in_data_plane(vip, &weighted, Duration::from_secs(30))
        .expect("every real in the data plane before the split");
    let names = who_answers(lab, vip, 600).expect("600 connections through the VIP");
    for (real, want) in [("real1", 300), ("real2", 200), ("real3", 100)] {
        let got = count(&names, real);
        assert!(
            got.abs_diff(want) <= 6,
            "{vip}: {real} got {got} of 600, want {want} ± 6"
        );
    }
}

/// Through each of the lab's two VIPs (`reals`: their reals, as [`assert_split_3_2_1`] takes
/// them): the 3:2:1 split, three downloads of the lab's big file intact, and five uploads (a
/// request line of 60000 bytes, some 40 full-size segments to the real, which answers 404 only
/// once it has read all of it).
pub fn assert_split_downloads_and_uploads(lab: &Lab, lvs: &RunningLvs, reals: [[&str; 3]; 2]) {
    let want = lvs::lab::big_file_bytes(lab.big_file_size());
    for (vip, reals) in vips(lab).into_iter().zip(reals) {
        lvs.wait_served(vip, std::time::Duration::from_secs(30))
            .unwrap();
        assert_split_3_2_1(lab, lvs, vip, reals);
        for _ in 0..3 {
            let (status, body) = http_get(lab.client_ns(), vip, "/big.bin").unwrap();
            assert_eq!(status, 200);
            assert!(
                body == want,
                "{vip}: big.bin arrived altered ({} bytes)",
                body.len()
            );
        }
        for _ in 0..5 {
            let long = format!("/{}", "x".repeat(60_000));
            let (status, _) = http_get(lab.client_ns(), vip, &long).unwrap();
            assert_eq!(status, 404, "{vip}: a long request reaches a real whole");
        }
    }
}

/// Moves every real of `lab` from the client's subnet to the NAT labs' inside subnet
/// (10.88.0.11.., fd88::11..), its default route the director's inside address (10.88.0.1,
/// fd88::1, which the caller puts on the director's inside interface).
pub fn move_reals_inside(lab: &Lab) {
    for (i, r) in lab.reals().iter().enumerate() {
        let n = 11 + i;
        sh_in(
            &r.ns,
            &format!(
                "ip addr del {v4}/24 dev eth0
                 ip -6 addr del {v6}/64 dev eth0
                 ip addr add 10.88.0.{n}/24 dev eth0
                 ip -6 addr add fd88::{n}/64 dev eth0 nodad
                 ip route add default via 10.88.0.1
                 ip -6 route add default via fd88::1",
                v4 = r.addr_v4,
                v6 = r.addr_v6,
            ),
        );
    }
}

/// Runs `script` with `sh -e` in namespace `ns`; panics with its standard error if it fails.
pub fn sh_in(ns: &str, script: &str) {
    let out = crate::wait::output(
        std::process::Command::new("ip").args(["netns", "exec", ns, "sh", "-ec", script]),
    );
    assert!(
        out.status.success(),
        "in {ns}: `{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `text` without ANSI escape sequences (`ESC [ … letter`), as the log's formatter may colour
/// its output.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The answering real's name (`index.html` says it) for each of `n` new connections.
pub fn who_answers(lab: &Lab, vip: SocketAddr, n: usize) -> Result<Vec<String>> {
    (0..n)
        .map(|_| {
            let (status, body) = http_get(lab.client_ns(), vip, "/index.html")?;
            if status != 200 {
                bail!("{vip} answered {status}");
            }
            Ok(String::from_utf8_lossy(&body).trim().to_string())
        })
        .collect()
}

/// How many entries of `names` are `name`.
pub fn count(names: &[String], name: &str) -> usize {
    names.iter().filter(|n| *n == name).count()
}

/// A TCP connection whose receive buffer is small (128 KiB), set before the handshake so the
/// window never grows: a paused download cannot finish into the kernel's buffers, the rest
/// has to cross the network after the pause.
pub fn connect_small_rcvbuf(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd as _;
    let std::net::SocketAddr::V4(v4) = addr else {
        return Err(std::io::Error::other("IPv4 only"));
    };
    // SAFETY: plain socket calls on a descriptor this function owns until it hands it to the
    // std::net::TcpStream (closed on every error path).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let size: libc::c_int = 128 << 10;
        if libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        if libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Starts a sorry server on the lab's director, on every address (so on the VIP, for a
/// fallback of `127.0.0.1:80`), serving "sorry"; returns once it answers.
pub fn start_sorry_server(lab: &Lab) -> Result<()> {
    let root = lab.work_dir().join("sorry");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("index.html"), "sorry\n")?;
    let dir = root.to_str().context("sorry server path")?;
    let args = [
        "-m",
        "http.server",
        "80",
        "--bind",
        "::",
        "--directory",
        dir,
    ];
    lab.spawn(lab.director_ns(), "python3", args)?;
    let own = SocketAddr::new(lab.director_v4().into(), 80);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(lab.director_ns(), own, "/index.html").is_err() {
        if Instant::now() >= deadline {
            bail!("the sorry server did not answer on {own} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
