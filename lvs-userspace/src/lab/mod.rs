//! A direct-routing lab in network namespaces, for the demo and the end-to-end tests.
//!
//! [`Lab::create`] builds, under a prefix unique to the process and the lab
//! (`lvs-<pid>-<n>`, see [`LAB_PREFIX`]):
//!
//! * `<prefix>-sw`: the switch, a Linux bridge `br0` whose ports are the peers of every host's
//!   `eth0` (named `client`, `dir`, `real1`, `real2`, …). The `lvs_pass` XDP program is
//!   attached natively to `dir` (native `XDP_TX` on the director's `eth0` needs an XDP program
//!   on its peer).
//! * `<prefix>-client` (198.18.0.10, fd00:198:18::10),
//! * `<prefix>-dir`, the director (198.18.0.2, fd00:198:18::2) holding the VIPs
//!   198.18.0.100/32 and fd00:198:18::100/128 on its `eth0`,
//! * `<prefix>-real1`… (198.18.0.11…, fd00:198:18::11…), each holding the VIPs on `lo` with
//!   `arp_ignore=1`/`arp_announce=2` and running `python3 -m http.server` on port 80 that
//!   serves `index.html` (the real's name and a newline) and `big.bin` ([`big_file_bytes`]).
//!
//! Every host has `lo` up, `rp_filter=0`, DAD off, and transmit checksum offload off on `eth0`.
//! Nothing is created in or changed in the caller's namespace. Dropping the [`Lab`] kills its
//! children and deletes its namespaces (which removes the veths and the bridge), also when a
//! test panics; [`cleanup_stale`] removes what runs that were killed left behind.
//!
//! Needs root, `ip` (iproute2), `ethtool` and `python3`.
//!
//! ```no_run
//! use lvs::lab::{self, Lab, LabOptions};
//!
//! let lab = Lab::create(LabOptions::default())?;
//! let real = &lab.reals()[0];
//! let (status, body) = lab::http_get(lab.client_ns(), (real.addr_v4, lab.http_port()), "/")?;
//! assert_eq!((status, body.as_slice()), (200, &b"real1\n"[..]));
//! // Load and attach the balancer from inside the director's namespace:
//! let ebpf = lab::run_in_netns(lab.director_ns(), || {
//!     aya::Ebpf::load(lvs::dataplane::object::EBPF_OBJECT) // ... attach to "eth0"
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aya::programs::{Xdp, XdpMode};

mod arp;
mod http;
mod netns;

pub use arp::{arp_probe, arp_probe_here};
pub use http::{connect_from_port, http_get, http_get_from_port, http_get_here};
use netns::{BPFFS_DIR, delete_netns, kill_group, lock, run, sh_in};
pub use netns::{cleanup_stale, mount_bpffs, netns_command, run_in_netns, unmount_bpffs};

use crate::neighbour::{self, MacAddr, NeighbourError};

/// The first part of every lab namespace's name: `lvs-<pid>-<n>-<role>`.
pub const LAB_PREFIX: &str = "lvs";

/// The name of every host's interface to the switch.
pub const HOST_IFNAME: &str = "eth0";

/// The lab's IPv4 subnet is 198.18.0.0/24; this is its prefix length.
pub const PREFIX_LEN_V4: u8 = 24;
/// The lab's IPv6 subnet is fd00:198:18::/64; this is its prefix length.
pub const PREFIX_LEN_V6: u8 = 64;

/// The IPv4 virtual service address.
pub const VIP_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// The IPv6 virtual service address.
pub const VIP_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x100);

const HOST_CLIENT: u8 = 10;
const HOST_DIRECTOR: u8 = 2;
const HOST_FIRST_REAL: u8 = 11;
const MAX_REALS: usize = 80;

/// The IPv4 address of host number `n` in the lab subnet.
pub fn lab_v4(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n)
}

/// The IPv6 address of host number `n` in the lab subnet: `fd00:198:18::<n>`, where `n` is
/// written in decimal digits read as hex (host 11 is `fd00:198:18::11`).
pub fn lab_v6(n: u8) -> Ipv6Addr {
    let digits = u16::from_str_radix(&n.to_string(), 16).unwrap_or(0);
    Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, digits)
}

/// Errors of the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A lab option is out of range.
    #[error("bad lab option: {detail}")]
    BadOption {
        /// What is wrong.
        detail: String,
    },
    /// A command could not be started.
    #[error("could not run `{command}`")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A file or OS operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A bpf filesystem could not be mounted.
    #[error(transparent)]
    Bpffs(#[from] crate::dataplane::bpffs::BpffsError),
    /// Entering a network namespace failed.
    #[error("cannot enter network namespace {ns}")]
    Setns {
        /// The namespace name.
        ns: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Loading or attaching the pass XDP program failed.
    #[error("XDP: {step}")]
    Xdp {
        /// What was being done.
        step: String,
        /// The aya error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A netlink query failed.
    #[error("{what}")]
    Netlink {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: NeighbourError,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
    },
    /// An HTTP exchange failed at the socket level.
    #[error("HTTP GET {path} from {addr}: {step}")]
    HttpIo {
        /// The server address.
        addr: String,
        /// The path.
        path: String,
        /// What was being done.
        step: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP answer was not understood.
    #[error("HTTP GET {path} from {addr}: bad answer: {detail}")]
    HttpAnswer {
        /// The server address.
        addr: String,
        /// The path.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

type Result<T, E = LabError> = std::result::Result<T, E>;

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Number of real servers (1..=80). Default 3.
    pub reals: usize,
    /// Size of each real's `big.bin`, in bytes. Default 32 MiB.
    pub big_file_size: usize,
    /// The port the real servers' HTTP servers listen on. Default 80.
    pub http_port: u16,
    /// Start the HTTP servers during [`Lab::create`]. Default true.
    pub start_servers: bool,
    /// Attach `lvs_pass` to the director's peer in the switch. Default true.
    pub attach_pass: bool,
    /// Run [`cleanup_stale`] for [`LAB_PREFIX`] first. Default true.
    pub clean_stale: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            reals: 3,
            big_file_size: 32 << 20,
            http_port: 80,
            start_servers: true,
            attach_pass: true,
            clean_stale: true,
        }
    }
}

/// One real server of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealHost {
    /// `real1`, `real2`, …: also what its `index.html` says.
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its IPv4 address on `eth0`.
    pub addr_v4: Ipv4Addr,
    /// Its IPv6 address on `eth0`.
    pub addr_v6: Ipv6Addr,
    /// The name of the peer of its `eth0` in the switch namespace.
    pub switch_port: String,
}

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

/// A running lab; see the [module docs](self). Dropping it removes everything it created.
pub struct Lab {
    prefix: String,
    opts: LabOptions,
    switch_ns: String,
    client_ns: String,
    director_ns: String,
    reals: Vec<RealHost>,
    /// Namespaces created so far, deleted on drop.
    created: Vec<String>,
    dir: PathBuf,
    servers: Mutex<Vec<Option<Child>>>,
    children: Mutex<Vec<Child>>,
    pass_program: Mutex<Option<aya::Ebpf>>,
}

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// Builds the lab. On error everything created so far is removed.
    pub fn create(opts: LabOptions) -> Result<Lab> {
        if opts.reals == 0 || opts.reals > MAX_REALS {
            return Err(LabError::BadOption {
                detail: format!("reals must be 1..={MAX_REALS}, not {}", opts.reals),
            });
        }
        if opts.clean_stale {
            cleanup_stale(LAB_PREFIX)?;
        }
        let prefix = format!(
            "{LAB_PREFIX}-{}-{}",
            std::process::id(),
            LAB_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let reals = (0..opts.reals)
            .map(|i| {
                let n = HOST_FIRST_REAL + i as u8;
                RealHost {
                    name: format!("real{}", i + 1),
                    ns: format!("{prefix}-real{}", i + 1),
                    addr_v4: lab_v4(n),
                    addr_v6: lab_v6(n),
                    switch_port: format!("real{}", i + 1),
                }
            })
            .collect::<Vec<_>>();
        let dir = std::env::temp_dir().join(&prefix);
        let mut lab = Lab {
            switch_ns: format!("{prefix}-sw"),
            client_ns: format!("{prefix}-client"),
            director_ns: format!("{prefix}-dir"),
            servers: Mutex::new((0..reals.len()).map(|_| None).collect()),
            reals,
            created: Vec::new(),
            dir,
            children: Mutex::new(Vec::new()),
            pass_program: Mutex::new(None),
            opts,
            prefix,
        };
        lab.build()?;
        Ok(lab)
    }

    fn build(&mut self) -> Result<()> {
        // The switch.
        let sw = self.switch_ns.clone();
        self.add_netns(&sw)?;
        sh_in(
            &sw,
            "set -e
             echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
             echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
             ip link set lo up
             ip link add br0 type bridge forward_delay 0 stp_state 0 mcast_snooping 0
             ip link set br0 up",
        )?;

        // The hosts.
        let mut hosts = vec![
            (self.client_ns.clone(), "client".to_string(), HOST_CLIENT),
            (self.director_ns.clone(), "dir".to_string(), HOST_DIRECTOR),
        ];
        for (i, r) in self.reals.iter().enumerate() {
            hosts.push((
                r.ns.clone(),
                r.switch_port.clone(),
                HOST_FIRST_REAL + i as u8,
            ));
        }
        for (ns, port, n) in &hosts {
            self.add_netns(ns)?;
            run(Command::new("ip").args([
                "-n",
                &sw,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                HOST_IFNAME,
                "netns",
                ns,
            ]))?;
            sh_in(
                &sw,
                &format!("set -e; ip link set {port} master br0; ip link set {port} up"),
            )?;
            let v4 = lab_v4(*n);
            let v6 = lab_v6(*n);
            sh_in(
                ns,
                &format!(
                    "set -e
                     ip link set lo up
                     for c in all default lo {HOST_IFNAME}; do
                         echo 0 > /proc/sys/net/ipv4/conf/$c/rp_filter
                         echo 0 > /proc/sys/net/ipv6/conf/$c/accept_dad
                     done
                     ethtool -K {HOST_IFNAME} tx off > /dev/null
                     ip addr add {v4}/{PREFIX_LEN_V4} dev {HOST_IFNAME}
                     ip -6 addr add {v6}/{PREFIX_LEN_V6} dev {HOST_IFNAME} nodad
                     ip link set {HOST_IFNAME} up"
                ),
            )?;
        }

        // The director holds the VIPs on eth0 and must announce with its own address. Its IPv6
        // VIP is deprecated (preferred_lft 0) so the kernel never picks it as the source of
        // the director's own connections (health checks): a /128 would otherwise win source
        // selection's longest-prefix rule, and the real would answer itself.
        sh_in(
            &self.director_ns,
            &format!(
                "set -e
                 for c in all {HOST_IFNAME}; do
                     echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce
                 done
                 ip addr add {VIP_V4}/32 dev {HOST_IFNAME}
                 ip -6 addr add {VIP_V6}/128 dev {HOST_IFNAME} nodad preferred_lft 0"
            ),
        )?;
        // The reals hold the VIPs on lo and keep quiet about them.
        for r in &self.reals {
            sh_in(
                &r.ns,
                &format!(
                    "set -e
                     for c in all {HOST_IFNAME}; do
                         echo 1 > /proc/sys/net/ipv4/conf/$c/arp_ignore
                         echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce
                     done
                     ip addr add {VIP_V4}/32 dev lo
                     ip -6 addr add {VIP_V6}/128 dev lo nodad"
                ),
            )?;
        }

        if self.opts.attach_pass {
            self.attach_pass()?;
        }

        // The servers' content.
        self.write_content()?;
        if self.opts.start_servers {
            for i in 0..self.reals.len() {
                self.start_server(i)?;
            }
        }
        Ok(())
    }

    fn add_netns(&mut self, ns: &str) -> Result<()> {
        run(Command::new("ip").args(["netns", "add", ns]))?;
        self.created.push(ns.to_string());
        Ok(())
    }

    fn attach_pass(&mut self) -> Result<()> {
        let ebpf = run_in_netns(&self.switch_ns, || -> Result<aya::Ebpf> {
            let xdp_err = |step: &str| {
                let step = step.to_string();
                move |e: Box<dyn std::error::Error + Send + Sync>| LabError::Xdp { step, source: e }
            };
            let mut ebpf = aya::Ebpf::load(crate::dataplane::object::EBPF_OBJECT)
                .map_err(|e| xdp_err("loading the embedded object")(Box::new(e)))?;
            let name = lvs_common::limits::program_names::PASS;
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| LabError::Xdp {
                    step: format!("finding program {name}"),
                    source: "not in the object".into(),
                })?
                .try_into()
                .map_err(|e| xdp_err("program type")(Box::new(e)))?;
            prog.load()
                .map_err(|e| xdp_err("loading lvs_pass")(Box::new(e)))?;
            let link = neighbour::link_by_name("dir").map_err(|e| LabError::Netlink {
                what: "finding the director's switch port".into(),
                source: e,
            })?;
            prog.attach_to_if_index(link.ifindex, XdpMode::Driver)
                .map_err(|e| {
                    xdp_err("attaching lvs_pass natively to the director's port")(Box::new(e))
                })?;
            Ok(ebpf)
        })??;
        *lock(&self.pass_program) = Some(ebpf);
        Ok(())
    }

    fn write_content(&self) -> Result<()> {
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

    /// The prefix of this lab's namespaces, `lvs-<pid>-<n>`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// The switch namespace (holds the bridge `br0`).
    pub fn switch_ns(&self) -> &str {
        &self.switch_ns
    }
    /// The client namespace.
    pub fn client_ns(&self) -> &str {
        &self.client_ns
    }
    /// The director namespace.
    pub fn director_ns(&self) -> &str {
        &self.director_ns
    }
    /// The real servers, in order.
    pub fn reals(&self) -> &[RealHost] {
        &self.reals
    }
    /// Every namespace of the lab.
    pub fn namespaces(&self) -> &[String] {
        &self.created
    }
    /// The director's interface to the switch (holding the VIPs), in the director namespace.
    pub fn director_ifname(&self) -> &str {
        HOST_IFNAME
    }
    /// The peer of the director's `eth0`, in the switch namespace (where `lvs_pass` is).
    pub fn director_switch_port(&self) -> &str {
        "dir"
    }
    /// The client's IPv4 address.
    pub fn client_v4(&self) -> Ipv4Addr {
        lab_v4(HOST_CLIENT)
    }
    /// The client's IPv6 address.
    pub fn client_v6(&self) -> Ipv6Addr {
        lab_v6(HOST_CLIENT)
    }
    /// The director's own IPv4 address.
    pub fn director_v4(&self) -> Ipv4Addr {
        lab_v4(HOST_DIRECTOR)
    }
    /// The director's own IPv6 address.
    pub fn director_v6(&self) -> Ipv6Addr {
        lab_v6(HOST_DIRECTOR)
    }
    /// The IPv4 VIP.
    pub fn vip_v4(&self) -> Ipv4Addr {
        VIP_V4
    }
    /// The IPv6 VIP.
    pub fn vip_v6(&self) -> Ipv6Addr {
        VIP_V6
    }
    /// The real servers' HTTP port.
    pub fn http_port(&self) -> u16 {
        self.opts.http_port
    }
    /// The size of `big.bin`.
    pub fn big_file_size(&self) -> usize {
        self.opts.big_file_size
    }
    /// A bpf filesystem mounted on the host for this lab (unmounted when the lab is dropped):
    /// pass it to `lvs run --bpffs`.
    pub fn bpffs(&self) -> Result<PathBuf> {
        let path = self.dir.join(BPFFS_DIR);
        let is_bpffs =
            nix::sys::statfs::statfs(&path).is_ok_and(|s| s.filesystem_type().0 == 0xcafe_4a11);
        if !is_bpffs {
            mount_bpffs(&path)?;
        }
        Ok(path)
    }

    /// The directory holding the servers' content and logs (removed on drop).
    pub fn work_dir(&self) -> &Path {
        &self.dir
    }

    /// The MAC of interface `ifname` in namespace `ns`.
    pub fn mac_of(&self, ns: &str, ifname: &str) -> Result<MacAddr> {
        let link = run_in_netns(ns, || neighbour::link_by_name(ifname))?.map_err(|e| {
            LabError::Netlink {
                what: format!("reading {ifname} in {ns}"),
                source: e,
            }
        })?;
        link.mac.ok_or_else(|| LabError::BadOption {
            detail: format!("{ifname} in {ns} has no MAC"),
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in lock(&self.servers).iter_mut().filter_map(Option::take) {
            let mut child = child;
            kill_group(&mut child);
        }
        for mut child in lock(&self.children).drain(..) {
            kill_group(&mut child);
        }
        drop(lock(&self.pass_program).take());
        unmount_bpffs(&self.dir.join(BPFFS_DIR));
        for ns in self.created.iter().rev() {
            if let Err(e) = delete_netns(ns) {
                eprintln!("lvs lab: could not delete namespace {ns}: {e}");
            }
        }
        if self.dir.starts_with(std::env::temp_dir()) && self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
