//! Two directors under Debian's keepalived (VRRP only: a `vrrp_instance`, no
//! `virtual_server`), each running lvs with the same config: an `mh` service and a `wrr`
//! service on one VIP, three reals. 500 long-lived TCP connections through each service send
//! a small request about every 100 ms and check every answer. The master is killed (SIGKILL to
//! its lvs and its keepalived, its link down), keepalived moves the VIP to the backup, then the
//! master comes back and takes the VIP again. The connections broken across each event are
//! counted for both schedulers: `mh` must lose at most 1% (none expected: the reals do not
//! change), `wrr` shows what the loss costs without it.
//!
//! The topology is built here (the shared lab has one director): a bridge in a switch
//! namespace, the client, two directors and three reals, named `lvs-<pid>-900-<role>` so that
//! `cleanup_stale` removes what a killed run leaves. lvs attaches in generic XDP mode (native
//! XDP_TX on a veth needs a program on its peer). Needs root, iproute2, ethtool, keepalived.

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
use lvs_tests::{
    agent::lvs_binary,
    wait::{self, join_within, until},
};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const MH_PORT: u16 = 9000;
const WRR_PORT: u16 = 9001;
const CONNS: usize = 500;
const REALS: u8 = 3;

fn host(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, n)
}

/// `sh -c SCRIPT` in `ns` (or here with `None`), which must succeed.
fn sh(ns: Option<&str>, script: &str) {
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

/// The namespaces, processes and mounts of one run; removed on drop (also on panic).
struct Vrrp {
    prefix: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    /// (director index, process group leader) of keepalived and lvs.
    children: Vec<(usize, Child)>,
    bpffs: Vec<PathBuf>,
    stop: Arc<AtomicBool>,
}

impl Drop for Vrrp {
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

/// SIGKILL to the process group `c` leads (keepalived forks its VRRP child), then reaps it.
fn kill_group(c: &mut Child) {
    // SAFETY: kill(2) on the process group of a child we started in a group of its own.
    unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
    let _ = c.wait();
}

impl Vrrp {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn build() -> Vrrp {
        cleanup_stale("lvs").expect("removing stale labs");
        let prefix = format!("lvs-{}-900", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        std::fs::create_dir_all(&dir).unwrap();
        let mut v = Vrrp {
            prefix,
            dir,
            namespaces: Vec::new(),
            children: Vec::new(),
            bpffs: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let sw = v.ns("sw");
        sh(None, &format!("ip netns add {sw}"));
        v.namespaces.push(sw.clone());
        sh(
            Some(&sw),
            "set -e; ip link set lo up; ip link add br0 type bridge forward_delay 0 stp_state 0 \
             mcast_snooping 0; ip link set br0 up",
        );
        let mut hosts: Vec<(String, u8)> =
            vec![("client".into(), 10), ("d1".into(), 2), ("d2".into(), 3)];
        hosts.extend((1..=REALS).map(|i| (format!("real{i}"), 10 + i)));
        for (role, n) in &hosts {
            let ns = v.ns(role);
            sh(None, &format!("ip netns add {ns}"));
            v.namespaces.push(ns.clone());
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
                    "set -e; ip link set lo up
                     for c in all default lo eth0; do echo 0 > /proc/sys/net/ipv4/conf/$c/rp_filter; done
                     ethtool -K eth0 tx off > /dev/null
                     ip addr add {}/24 dev eth0; ip link set eth0 up",
                    host(*n)
                ),
            );
        }
        for d in ["d1", "d2"] {
            sh(
                Some(&v.ns(d)),
                "for c in all eth0; do echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce; done",
            );
        }
        for i in 1..=REALS {
            sh(
                Some(&v.ns(&format!("real{i}"))),
                &format!(
                    "set -e; for c in all eth0; do echo 1 > /proc/sys/net/ipv4/conf/$c/arp_ignore; \
                     echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce; done; ip addr add {VIP}/32 dev lo"
                ),
            );
        }
        v
    }

    /// Echo servers on both ports of every real, served from threads of this process.
    fn start_echo_servers(&self) {
        for i in 1..=REALS {
            for port in [MH_PORT, WRR_PORT] {
                let listener = run_in_netns(&self.ns(&format!("real{i}")), move || {
                    TcpListener::bind(("0.0.0.0", port))
                })
                .expect("entering the real's namespace")
                .expect("binding the echo server");
                let stop = self.stop.clone();
                std::thread::spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let Ok(mut conn) = conn else { continue };
                        let _ = std::thread::Builder::new()
                            .stack_size(64 << 10)
                            .spawn(move || {
                                let mut buf = [0u8; 8];
                                while conn.read_exact(&mut buf).is_ok() {
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

    fn spawn(&mut self, d: usize, ns: &str, program: &str, args: &[&str], log: &str) {
        let log = std::fs::File::create(self.dir.join(log)).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} in {ns}: {e}"));
        self.children.push((d, child));
    }

    /// Starts lvs on director `d` (1 or 2).
    fn start_lvs(&mut self, d: usize) {
        let conf = self.dir.join("lvs.toml");
        if !conf.exists() {
            let mut c = String::from("interface = \"eth0\"\n");
            // One client address: mh-port spreads its connections over the reals.
            for (port, sched) in [(MH_PORT, "mh\"\nschedflags = \"mh-port"), (WRR_PORT, "wrr")] {
                c += &format!(
                    "\n[[virtual]]\naddress = \"{VIP}:{port}\"\nscheduler = \"{sched}\"\nchecktype = \"on\"\n"
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
        let bpffs = self.dir.join(format!("bpffs-d{d}"));
        if !self.bpffs.contains(&bpffs) {
            mount_bpffs(&bpffs).expect("mounting a bpffs");
            self.bpffs.push(bpffs.clone());
        }
        let control = self.dir.join(format!("d{d}.sock"));
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
        self.spawn(
            d,
            &ns,
            bin.to_str().unwrap(),
            &args,
            &format!("lvs-d{d}.log"),
        );
    }

    /// Starts keepalived (VRRP only) on director `d`; d1 has the higher priority.
    fn start_keepalived(&mut self, d: usize) {
        let conf = self.dir.join(format!("keepalived-d{d}.conf"));
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id d{d}\n}}\n\
                 vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
                 priority {}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/32 dev eth0\n  }}\n}}\n",
                if d == 1 { 150 } else { 100 }
            ),
        )
        .unwrap();
        let p = |what: &str| self.dir.join(format!("keepalived-d{d}.{what}.pid"));
        let (pid, vrrp, checkers) = (p("main"), p("vrrp"), p("checkers"));
        let ns = self.ns(&format!("d{d}"));
        let args = [
            "-n",
            "-l",
            "-D",
            "-P",
            "-f",
            conf.to_str().unwrap(),
            "-p",
            pid.to_str().unwrap(),
            "-r",
            vrrp.to_str().unwrap(),
            "-c",
            checkers.to_str().unwrap(),
        ];
        self.spawn(d, &ns, "keepalived", &args, &format!("keepalived-d{d}.log"));
    }

    /// Kills director `d`: SIGKILL to its lvs and keepalived, its link down (its VIP and its
    /// XDP program gone from the network).
    fn kill_director(&mut self, d: usize) {
        for (who, c) in &mut self.children {
            if *who == d {
                kill_group(c);
            }
        }
        self.children.retain(|(who, _)| *who != d);
        sh(Some(&self.ns(&format!("d{d}"))), "ip link set eth0 down");
    }

    fn holds_vip(&self, d: usize) -> bool {
        let out = wait::output(Command::new("ip").args([
            "-n",
            &self.ns(&format!("d{d}")),
            "-4",
            "addr",
            "show",
            "dev",
            "eth0",
        ]));
        String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/32"))
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in [
            "lvs-d1.log",
            "lvs-d2.log",
            "keepalived-d1.log",
            "keepalived-d2.log",
        ] {
            let text = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            s += &format!("--- {f} (last lines)\n");
            for l in tail.iter().rev() {
                s += l;
                s.push('\n');
            }
        }
        s
    }
}

/// Connections of one service, checked by worker threads: each sends its sequence number
/// about every 100 ms and expects it back.
struct Clients {
    broken: Arc<AtomicU64>,
    /// Full passes over its connections, per worker.
    passes: Arc<Vec<AtomicU64>>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

fn start_clients(v: &Vrrp, port: u16) -> Clients {
    let conns: Vec<TcpStream> = run_in_netns(&v.ns("client"), move || {
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
    let workers_n = 10;
    let passes: Arc<Vec<AtomicU64>> = Arc::new((0..workers_n).map(|_| AtomicU64::new(0)).collect());
    let mut workers = Vec::new();
    for (w, chunk) in conns
        .chunks(CONNS / workers_n)
        .map(|c| c.iter().map(|s| s.try_clone().unwrap()).collect::<Vec<_>>())
        .enumerate()
    {
        let (broken, passes, stop) = (broken.clone(), passes.clone(), v.stop.clone());
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
    drop(conns);
    Clients {
        broken,
        passes,
        workers,
    }
}

/// Waits until every worker of `c` has made two more full passes (so every connection has been
/// tried since the event).
fn two_passes(v: &Vrrp, c: &Clients, what: &str) {
    let target: Vec<u64> = c
        .passes
        .iter()
        .map(|p| p.load(Ordering::Relaxed) + 2)
        .collect();
    until(
        Duration::from_secs(45),
        Duration::from_millis(100),
        what,
        || {
            c.passes
                .iter()
                .zip(&target)
                .all(|(p, &t)| p.load(Ordering::Relaxed) >= t)
                .then_some(())
        },
        || v.logs(),
    );
}

#[test]
fn vrrp_failover_and_return_keep_mh_connections() {
    let mut v = Vrrp::build();
    v.start_echo_servers();
    for d in [1, 2] {
        v.start_lvs(d);
        v.start_keepalived(d);
    }
    until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        "director 1 holds the VIP",
        || (v.holds_vip(1) && !v.holds_vip(2)).then_some(()),
        || v.logs(),
    );
    // Wait until lvs forwards on director 1 (it attaches, resolves the reals' MACs).
    let client = v.ns("client");
    until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        "both services answer through the VIP",
        || {
            run_in_netns(&client, || {
                [MH_PORT, WRR_PORT].iter().all(|&p| {
                    TcpStream::connect_timeout(&SocketAddr::from((VIP, p)), Duration::from_secs(1))
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
        || v.logs(),
    );

    let mh = start_clients(&v, MH_PORT);
    let wrr = start_clients(&v, WRR_PORT);
    two_passes(&v, &mh, "mh clients: a steady start");
    two_passes(&v, &wrr, "wrr clients: a steady start");
    let count = |c: &Clients| c.broken.load(Ordering::Relaxed);
    assert_eq!(
        (count(&mh), count(&wrr)),
        (0, 0),
        "connections broke before any event"
    );

    // The master dies; keepalived moves the VIP to director 2.
    v.kill_director(1);
    until(
        Duration::from_secs(20),
        Duration::from_millis(100),
        "director 2 takes the VIP",
        || v.holds_vip(2).then_some(()),
        || v.logs(),
    );
    two_passes(&v, &mh, "mh clients after the loss");
    two_passes(&v, &wrr, "wrr clients after the loss");
    let loss = (count(&mh), count(&wrr));

    // It comes back: link up, lvs and keepalived started again; it takes the VIP back.
    sh(Some(&v.ns("d1")), "ip link set eth0 up");
    v.start_lvs(1);
    v.start_keepalived(1);
    until(
        Duration::from_secs(30),
        Duration::from_millis(100),
        "director 1 takes the VIP back",
        || (v.holds_vip(1) && !v.holds_vip(2)).then_some(()),
        || v.logs(),
    );
    two_passes(&v, &mh, "mh clients after the return");
    two_passes(&v, &wrr, "wrr clients after the return");
    let back = (count(&mh) - loss.0, count(&wrr) - loss.1);

    println!(
        "VRRP, {CONNS} connections each: broken across the loss: mh {} wrr {}; across the \
         return: mh {} wrr {}",
        loss.0, loss.1, back.0, back.1
    );
    v.stop.store(true, Ordering::Relaxed);
    for w in mh.workers.into_iter().chain(wrr.workers) {
        join_within(w, Duration::from_secs(60), "a client worker");
    }
    let limit = (CONNS / 100) as u64;
    assert!(
        loss.0 <= limit && back.0 <= limit,
        "mh broke {} connections across the loss and {} across the return (at most {limit})\n{}",
        loss.0,
        back.0,
        v.logs()
    );
    // The flows did move to the other director: without a consistent table, most of them break.
    assert!(
        loss.1 > (CONNS / 4) as u64,
        "wrr broke only {} connections across the loss: did the flows change director?",
        loss.1
    );
}
