//! Labs with more than one director (`lab_vrrp.rs`, `lab_ecmp.rs`): namespaces on a bridge,
//! reals with the VIP on `lo` and echo servers, `lvs` and the routing daemons as children in
//! process groups of their own, and clients holding long-lived connections that send a small
//! request about every 100 ms and check every answer.
//!
//! Everything is named `lvs-<pid>-900-<role>` (and the work directory `<tmp>/lvs-<pid>-900`), so
//! that [`lvs::lab::cleanup_stale`] removes what a killed run leaves; dropping the [`Multi`]
//! kills its children and deletes its namespaces, also on panic. lvs attaches in generic XDP
//! mode (native XDP_TX on a veth needs a program on its peer).

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use lvs::lab::{cleanup_stale, mount_bpffs, run_in_netns, unmount_bpffs};

use crate::{
    agent::{data_plane_gaps, lvs_binary, status_at},
    wait::{self, until},
};

/// The VIP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
/// The port of the `mh` service (with `mh-port`).
pub const MH_PORT: u16 = 9000;
/// The port of the `wrr` service.
pub const WRR_PORT: u16 = 9001;
/// Connections per service.
pub const CONNS: usize = 500;
/// Real servers (198.18.0.11 …).
pub const REALS: u8 = 3;

/// Host `n` of the directors' subnet 198.18.0.0/24.
pub fn host(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n)
}

/// `sh -c SCRIPT` in `ns` (or here with `None`), which must succeed.
pub fn sh(ns: Option<&str>, script: &str) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "sh", "-c", script]);
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.args(["-c", script]);
            c
        }
    };
    wait::succeed(&mut cmd);
}

/// SIGKILL to the process group `c` leads, then reaps it.
fn kill_group(c: &mut Child) {
    // SAFETY: kill(2) on the process group of a child we started in a group of its own.
    unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
    let _ = c.wait();
}

/// One multi-director lab.
pub struct Multi {
    prefix: String,
    /// The work directory (configs, logs, bpffs mounts).
    pub dir: PathBuf,
    namespaces: Vec<String>,
    /// (tag, process group leader): `lvs-d1`, `keepalived-d1`, …
    children: Vec<(String, Child)>,
    bpffs: Vec<PathBuf>,
    /// Set to stop the echo servers and the clients.
    pub stop: Arc<AtomicBool>,
    /// Connections each real has answered a request on, per port: index
    /// `(real - 1) * 2 + (0 for MH_PORT, 1 for WRR_PORT)` (health checks send none).
    pub served: Arc<Vec<AtomicU64>>,
}

impl Drop for Multi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (_, c) in &mut self.children {
            kill_group(c);
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
        for b in &self.bpffs {
            unmount_bpffs(b);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Multi {
    /// A new lab with its switch (`sw`, a bridge `br0`).
    pub fn create() -> Multi {
        cleanup_stale("lvs").expect("removing stale labs");
        let prefix = format!("lvs-{}-900", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = Multi {
            prefix,
            dir,
            namespaces: Vec::new(),
            children: Vec::new(),
            bpffs: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            served: Arc::new((0..REALS * 2).map(|_| AtomicU64::new(0)).collect()),
        };
        let sw = m.add_ns("sw");
        sh(
            Some(&sw),
            "set -e; ip link set lo up; ip link add br0 type bridge forward_delay 0 stp_state 0 \
             mcast_snooping 0; ip link set br0 up",
        );
        m
    }

    /// The namespace of `role`.
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Creates the namespace of `role` (lo up, rp_filter off).
    pub fn add_ns(&mut self, role: &str) -> String {
        let ns = self.ns(role);
        sh(None, &format!("ip netns add {ns}"));
        self.namespaces.push(ns.clone());
        sh(
            Some(&ns),
            "set -e; ip link set lo up
             for c in all default lo; do echo 0 > /proc/sys/net/ipv4/conf/$c/rp_filter; done",
        );
        ns
    }

    /// A host `role` on the switch: `eth0` with `cidr`, transmit checksum offload off.
    pub fn add_host(&mut self, role: &str, cidr: &str) -> String {
        let ns = self.add_ns(role);
        let sw = self.ns("sw");
        sh(
            None,
            &format!(
                "set -e; ip -n {sw} link add {role} type veth peer name eth0 netns {ns}; \
                 ip -n {sw} link set {role} master br0; ip -n {sw} link set {role} up"
            ),
        );
        sh(
            Some(&ns),
            &format!(
                "set -e; echo 0 > /proc/sys/net/ipv4/conf/eth0/rp_filter
                 ethtool -K eth0 tx off > /dev/null
                 ip addr add {cidr} dev eth0; ip link set eth0 up"
            ),
        );
        ns
    }

    /// The reals `real1` … on the switch, holding the VIP on `lo` and quiet about it, with
    /// echo servers on both ports (threads of this process); `gateway` is their default route
    /// if any.
    pub fn add_reals(&mut self, gateway: Option<Ipv4Addr>) {
        for i in 1..=REALS {
            let role = format!("real{i}");
            let ns = self.add_host(&role, &format!("{}/24", host(10 + i)));
            let route =
                gateway.map_or(String::new(), |g| format!("; ip route add default via {g}"));
            sh(
                Some(&ns),
                &format!(
                    "set -e; for c in all eth0; do echo 1 > /proc/sys/net/ipv4/conf/$c/arp_ignore; \
                     echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce; done; \
                     ip addr add {VIP}/32 dev lo{route}"
                ),
            );
            for (k, port) in [MH_PORT, WRR_PORT].into_iter().enumerate() {
                let served = self.served.clone();
                let index = usize::from(i - 1) * 2 + k;
                let listener = run_in_netns(&ns, move || TcpListener::bind(("0.0.0.0", port)))
                    .expect("entering the real's namespace")
                    .expect("binding the echo server");
                let stop = self.stop.clone();
                std::thread::spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let Ok(mut conn) = conn else { continue };
                        let served = served.clone();
                        let _ = std::thread::Builder::new()
                            .stack_size(64 << 10)
                            .spawn(move || {
                                let mut buf = [0u8; 8];
                                let mut first = true;
                                while conn.read_exact(&mut buf).is_ok() {
                                    if first {
                                        served[index].fetch_add(1, Ordering::Relaxed);
                                        first = false;
                                    }
                                    if conn.write_all(&buf).is_err() {
                                        return;
                                    }
                                }
                            });
                    }
                });
            }
        }
    }

    /// Starts `program ARGS` in `ns` as `tag`, its output in `<tag>.log`.
    pub fn spawn(&mut self, tag: &str, ns: &str, program: &str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.join(format!("{tag}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} in {ns}: {e}"));
        self.children.push((tag.to_string(), child));
    }

    /// SIGKILL to the children tagged `tag` (and their process groups).
    pub fn kill(&mut self, tag: &str) {
        for (t, c) in &mut self.children {
            if t == tag {
                kill_group(c);
            }
        }
        self.children.retain(|(t, _)| t != tag);
    }

    /// The control socket of director `d`'s lvs.
    pub fn control(&self, d: usize) -> PathBuf {
        self.dir.join(format!("d{d}.sock"))
    }

    /// Starts lvs on director `d` (namespace `d<d>`, interface `eth0`) as `lvs-d<d>`, with an
    /// `mh` service (`mh-port`) and a `wrr` service on the VIP, the reals checked by connect
    /// every second (a failed one is removed).
    pub fn start_lvs(&mut self, d: usize) {
        let conf = self.dir.join("lvs.toml");
        if !conf.exists() {
            let mut c = String::from("interface = \"eth0\"\n");
            // One client address: mh-port spreads its connections over the reals.
            for (port, sched) in [(MH_PORT, "mh\"\nschedflags = \"mh-port"), (WRR_PORT, "wrr")] {
                c += &format!(
                    "\n[[virtual]]\naddress = \"{VIP}:{port}\"\nscheduler = \"{sched}\"\n\
                     checktype = \"connect\"\ncheckinterval = 1\nchecktimeout = 2\nfailurecount = 3\n"
                );
                for i in 1..=REALS {
                    c += &format!(
                        "\n[[virtual.real]]\naddress = \"{}:{port}\"\n",
                        host(10 + i)
                    );
                }
            }
            std::fs::write(&conf, c).unwrap();
        }
        // One bpffs at `<dir>/bpf` (where `cleanup_stale` looks for a killed run's mount), a
        // directory of it per director.
        let mount = self.dir.join("bpf");
        if self.bpffs.is_empty() {
            mount_bpffs(&mount).expect("mounting a bpffs");
            self.bpffs.push(mount.clone());
        }
        let bpffs = mount.join(format!("d{d}"));
        std::fs::create_dir_all(&bpffs).expect("a directory in the bpffs");
        let control = self.control(d);
        let bin = lvs_binary();
        let ns = self.ns(&format!("d{d}"));
        let args = [
            "run",
            "--config",
            conf.to_str().unwrap(),
            "--bpffs",
            bpffs.to_str().unwrap(),
            "--control",
            control.to_str().unwrap(),
            "--xdp-mode",
            "generic",
        ];
        self.spawn(&format!("lvs-d{d}"), &ns, bin.to_str().unwrap(), &args);
    }

    /// Waits until the lvs of each of `directors` has every real of both services in its data
    /// plane at weight 1 (up after its checks and its MAC known: a real only up is not in the
    /// kernel's tables yet), so that they all build the same tables before connections start.
    pub fn wait_reals_up(&self, directors: &[usize], describe: impl Fn() -> String) {
        for &d in directors {
            let control = self.control(d);
            let gaps = || -> Vec<String> {
                let json = match status_at(&control, &["--json"]) {
                    Ok(json) => json,
                    Err(e) => return vec![e.to_string()],
                };
                [MH_PORT, WRR_PORT]
                    .into_iter()
                    .flat_map(|port| {
                        let reals: Vec<(SocketAddr, u32)> = (1..=REALS)
                            .map(|i| (SocketAddr::from((host(10 + i), port)), 1))
                            .collect();
                        data_plane_gaps(&json, SocketAddr::from((VIP, port)), &reals)
                    })
                    .collect()
            };
            until(
                Duration::from_secs(30),
                Duration::from_millis(100),
                &format!("director {d} has every real in its data plane"),
                || gaps().is_empty().then_some(()),
                || format!("director {d}: {}\n{}", gaps().join("; "), describe()),
            );
        }
    }

    /// The last lines of each of the `tags`' logs.
    pub fn logs(&self, tags: &[&str]) -> String {
        let mut s = String::new();
        for t in tags {
            let text =
                std::fs::read_to_string(self.dir.join(format!("{t}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            s += &format!("--- {t}.log (last lines)\n");
            for l in tail.iter().rev() {
                s += l;
                s.push('\n');
            }
        }
        s
    }

    /// Waits until one connection to each service through the VIP from `client_ns` is echoed.
    pub fn wait_served(&self, client_ns: &str, describe: impl Fn() -> String) {
        until(
            Duration::from_secs(30),
            Duration::from_millis(200),
            "both services answer through the VIP",
            || {
                run_in_netns(client_ns, || {
                    [MH_PORT, WRR_PORT].iter().all(|&p| {
                        TcpStream::connect_timeout(
                            &SocketAddr::from((VIP, p)),
                            Duration::from_secs(1),
                        )
                        .and_then(|mut s| {
                            s.set_read_timeout(Some(Duration::from_secs(1)))?;
                            s.write_all(&[1; 8])?;
                            let mut b = [0; 8];
                            s.read_exact(&mut b)
                        })
                        .is_ok()
                    })
                })
                .ok()?
                .then_some(())
            },
            describe,
        );
    }
}

/// [`CONNS`] connections of one service, checked by worker threads.
pub struct Clients {
    broken: Arc<AtomicU64>,
    passes: Arc<Vec<AtomicU64>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

const WORKERS: usize = 10;

impl Clients {
    /// Opens the connections to the VIP's `port` from `client_ns` and starts checking them
    /// until `stop`.
    pub fn start(client_ns: &str, port: u16, stop: Arc<AtomicBool>) -> Clients {
        let conns: Vec<TcpStream> = run_in_netns(client_ns, move || {
            (0..CONNS)
                .map(|_| {
                    let s = TcpStream::connect_timeout(
                        &SocketAddr::from((VIP, port)),
                        Duration::from_secs(5),
                    )?;
                    s.set_read_timeout(Some(Duration::from_secs(40)))?;
                    s.set_nodelay(true)?;
                    Ok(s)
                })
                .collect::<std::io::Result<Vec<_>>>()
        })
        .expect("entering the client's namespace")
        .unwrap_or_else(|e| panic!("connecting {CONNS} clients to {VIP}:{port}: {e}"));
        let broken = Arc::new(AtomicU64::new(0));
        let passes: Arc<Vec<AtomicU64>> =
            Arc::new((0..WORKERS).map(|_| AtomicU64::new(0)).collect());
        let mut workers = Vec::new();
        let mut conns = conns.into_iter();
        for w in 0..WORKERS {
            let chunk: Vec<TcpStream> = conns.by_ref().take(CONNS / WORKERS).collect();
            let (broken, passes, stop) = (broken.clone(), passes.clone(), stop.clone());
            workers.push(std::thread::spawn(move || {
                let mut live: Vec<Option<TcpStream>> = chunk.into_iter().map(Some).collect();
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    for slot in &mut live {
                        let Some(s) = slot else { continue };
                        seq += 1;
                        let mut back = [0u8; 8];
                        let ok = s.write_all(&seq.to_le_bytes()).is_ok()
                            && s.read_exact(&mut back).is_ok()
                            && back == seq.to_le_bytes();
                        if !ok {
                            broken.fetch_add(1, Ordering::Relaxed);
                            *slot = None;
                        }
                    }
                    passes[w].fetch_add(1, Ordering::Relaxed);
                    if let Some(rest) = Duration::from_millis(100).checked_sub(start.elapsed()) {
                        std::thread::sleep(rest);
                    }
                }
            }));
        }
        Clients {
            broken,
            passes,
            workers,
        }
    }

    /// Connections broken so far.
    pub fn broken(&self) -> u64 {
        self.broken.load(Ordering::Relaxed)
    }

    /// Waits until every worker has made two more full passes (every connection tried since
    /// the event), or fails naming `what` and what `describe` says.
    pub fn two_passes(&self, what: &str, describe: impl Fn() -> String) {
        let target: Vec<u64> = self
            .passes
            .iter()
            .map(|p| p.load(Ordering::Relaxed) + 2)
            .collect();
        until(
            Duration::from_secs(45),
            Duration::from_millis(100),
            what,
            || {
                self.passes
                    .iter()
                    .zip(&target)
                    .all(|(p, &t)| p.load(Ordering::Relaxed) >= t)
                    .then_some(())
            },
            describe,
        );
    }

    /// Waits for the workers to end (after `stop`).
    pub fn join(self) {
        for w in self.workers {
            wait::join_within(w, Duration::from_secs(60), "a client worker");
        }
    }
}
