//! The health-check scale benchmark of the whole agent: `lvs run` on a lab's director checks
//! 10,000 reals (40 virtual services × 250) every second, and we measure what the `lvs`
//! process itself costs: CPU (% of one core, from `/proc/PID/stat`) and memory (VmRSS, VmHWM).
//!
//! The reals live in a "farm" namespace on the director's L2 segment (the lab's one real
//! host): 5,000 addresses held there and answered by one responder in this process (an
//! HTTP/1.1 server that keeps connections open between requests, as web servers do), plus
//! 5,000 addresses of the same subnet that nobody holds (ARP fails: those reals are unusable
//! and down). The responder counts accepted connections and answered requests, which is how
//! the checks per second are measured (the agent does not expose a count).
//!
//! Run: `cargo run --release -p lvs-tests --bin lvs-scale-bench [-- OPTIONS]`
//!
//! Options: `--check connect|negotiate|both|on` (default both; `on`: no checks, the agent
//! alone), `--warmup S` (10), `--window S` (20), `--live N` (5000), `--dead N` (5000),
//! `--refused N` (0: reals at N of the live addresses but on port 81, where nothing listens:
//! hosts that are up with their service down), `--services N` (40), `--no-build` (do not run
//! `cargo build --release --bin lvs` first; `LVS_BIN` overrides the binary).
//!
//! The kernel's neighbour table is shared by all namespaces and holds 1024 entries by default
//! (`gc_thresh3`); 10,000 reals need more, so the bench raises `net.ipv4.neigh.default.
//! gc_thresh2/3` for its run and restores them on exit. A director with that many reals needs
//! the same.

use std::{
    net::{Ipv4Addr, TcpListener},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use lvs::lab::{Lab, LabOptions};

/// The farm's subnet, on the lab's segment beside the lab's own /24.
const SUBNET_PREFIX: u8 = 16;
/// The director's address in the farm subnet.
const DIRECTOR_FARM_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The first address held by the farm.
const LIVE_BASE: u32 = u32::from_be_bytes([198, 19, 16, 0]);
/// The first address nobody holds.
const DEAD_BASE: u32 = u32::from_be_bytes([198, 19, 128, 0]);
/// The responder's worker threads.
const RESPONDER_THREADS: usize = 2;

/// Set by SIGINT/SIGTERM: the run stops with an error, so every guard cleans up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}

/// Sleeps, failing when interrupted.
fn sleep(d: Duration) -> Result<()> {
    std::thread::sleep(d);
    ensure!(!INTERRUPTED.load(Ordering::Relaxed), "interrupted");
    Ok(())
}

#[derive(Debug, Clone)]
struct Options {
    checks: Vec<&'static str>,
    warmup: Duration,
    window: Duration,
    live: u32,
    dead: u32,
    /// Reals at answering hosts' addresses on a port nobody listens on (port 81).
    refused: u32,
    services: u32,
    build: bool,
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        checks: vec!["connect", "negotiate"],
        warmup: Duration::from_secs(10),
        window: Duration::from_secs(20),
        live: 5000,
        dead: 5000,
        refused: 0,
        services: 40,
        build: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--check" => {
                o.checks = match value()?.as_str() {
                    "connect" => vec!["connect"],
                    "negotiate" => vec!["negotiate"],
                    "on" => vec!["on"],
                    "both" => vec!["connect", "negotiate"],
                    other => bail!("--check connect|negotiate|both|on, not {other}"),
                }
            }
            "--warmup" => o.warmup = Duration::from_secs(value()?.parse()?),
            "--window" => o.window = Duration::from_secs(value()?.parse()?),
            "--live" => o.live = value()?.parse()?,
            "--dead" => o.dead = value()?.parse()?,
            "--refused" => o.refused = value()?.parse()?,
            "--services" => o.services = value()?.parse()?,
            "--no-build" => o.build = false,
            "-h" | "--help" => {
                println!(
                    "lvs-scale-bench [--check connect|negotiate|both|on] [--warmup S] [--window S] \
                     [--live N] [--dead N] [--refused N] [--services N] [--no-build]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown option {other}"),
        }
    }
    ensure!(o.services > 0 && o.services <= 256, "1..=256 services");
    ensure!(
        (o.live + o.dead + o.refused).div_ceil(o.services) <= lvs_common::limits::RING_SIZE,
        "too many reals per service"
    );
    ensure!(
        o.live <= DEAD_BASE - LIVE_BASE && o.dead <= 32000,
        "too many addresses"
    );
    ensure!(
        o.refused <= o.live,
        "--refused takes the live addresses: at most --live"
    );
    ensure!(o.window > Duration::ZERO, "--window must be above 0");
    Ok(o)
}

fn addr(base: u32, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(base + i)
}

/// The `lvs` binary: `$LVS_BIN`, else `lvs` beside this binary (`target/release/lvs`).
fn lvs_binary(build: bool) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("LVS_BIN") {
        return Ok(p.into());
    }
    if build {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        eprintln!("building the lvs binary (cargo build --release --bin lvs)…");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-p", "lvs-userspace", "--bin", "lvs"])
            .current_dir(&root)
            .status()
            .context("running cargo")?;
        ensure!(status.success(), "cargo build --release --bin lvs failed");
    }
    let exe = std::env::current_exe()?;
    let bin = exe.parent().context("exe dir")?.join("lvs");
    ensure!(
        bin.exists(),
        "{} is missing: cargo build --release --bin lvs",
        bin.display()
    );
    Ok(bin)
}

// ---------------------------------------------------------------------------------------------
// The kernel's neighbour table size, raised for the run and restored on drop.

const GC_THRESH: [&str; 2] = [
    "/proc/sys/net/ipv4/neigh/default/gc_thresh2",
    "/proc/sys/net/ipv4/neigh/default/gc_thresh3",
];

struct NeighTableGuard {
    saved: Vec<(&'static str, String)>,
}

impl NeighTableGuard {
    fn raise(entries: u32) -> Result<Self> {
        let mut guard = NeighTableGuard { saved: Vec::new() };
        for (path, want) in GC_THRESH.iter().zip([entries, entries * 2]) {
            let old = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
            let old = old.trim().to_string();
            if old.parse::<u32>().unwrap_or(0) < want {
                std::fs::write(path, want.to_string())
                    .with_context(|| format!("writing {path}"))?;
                guard.saved.push((path, old));
            }
        }
        Ok(guard)
    }
}

impl Drop for NeighTableGuard {
    fn drop(&mut self) {
        for (path, old) in self.saved.iter().rev() {
            if let Err(e) = std::fs::write(path, old) {
                eprintln!("restoring {path} to {old}: {e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The farm's responder: one listener on 0.0.0.0:80 in the farm namespace, served by a tokio
// runtime of its own. Like any HTTP/1.1 server it keeps connections open between requests
// unless the client asks otherwise.

struct Farm {
    runtime: Option<tokio::runtime::Runtime>,
    accepted: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

impl Farm {
    fn start(ns: &str) -> Result<Farm> {
        let listener = lvs::lab::run_in_netns(ns, || TcpListener::bind(("0.0.0.0", 80)))??;
        // A deep accept queue: checks arrive in bursts (each 10 ms tick starts ~50).
        // SAFETY: listen(2) again on our listening socket only changes its backlog.
        unsafe { libc::listen(listener.as_raw_fd(), 4096) };
        listener.set_nonblocking(true)?;
        let accepted = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RESPONDER_THREADS)
            .thread_name("farm")
            .enable_all()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (acc, req) = (accepted.clone(), requests.clone());
        runtime.spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                acc.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(s, req.clone()));
            }
        });
        Ok(Farm {
            runtime: Some(runtime),
            accepted,
            requests,
        })
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Serves one connection: answers each request head with `200 OK` until the client closes,
/// asks to close (`Connection: close`) or stays silent for 10 s. A connect check sends
/// nothing and resets.
async fn serve(mut s: tokio::net::TcpStream, requests: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = [0u8; 2048];
    let mut len = 0;
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf[len..])).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => len += n,
        }
        let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") else {
            if len == buf.len() {
                return;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let close = head.contains("connection: close");
        let answer: &[u8] = if close {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\
              Connection: close\r\n\r\nok\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
        };
        if s.write_all(answer).await.is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        if close {
            return;
        }
        buf.copy_within(end + 4..len, 0);
        len -= end + 4;
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring the lvs process.

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("lvs (pid {pid}) is gone"))?;
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3; utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11).context("utime")?.parse()?;
    let stime: u64 = f.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// A `kB` line of `/proc/PID/status`, in MB.
fn status_mb(pid: u32, key: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key}"))?;
    let kb: f64 = line.split_whitespace().nth(1).context("value")?.parse()?;
    Ok(kb / 1024.0)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// TCP listen overflows and drops in a namespace (`/proc/net/netstat`, TcpExt).
fn listen_drops(ns: &str) -> Result<(u64, u64)> {
    let out = lvs::lab::netns_command(ns, "cat")
        .arg("/proc/net/netstat")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    ensure!(lines.len() >= 2, "no TcpExt in /proc/net/netstat");
    let names: Vec<&str> = lines[0].split_whitespace().collect();
    let values: Vec<&str> = lines[1].split_whitespace().collect();
    let get = |k: &str| {
        names
            .iter()
            .position(|n| *n == k)
            .and_then(|i| values.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((get("ListenOverflows"), get("ListenDrops")))
}

// ---------------------------------------------------------------------------------------------
// The lab's network in kernel threads.

/// Gives each veth of the lab's path between the director and the farm its own NAPI kernel
/// thread (GRO on makes a veth receive through NAPI; `threaded` runs that NAPI in a kthread).
///
/// A veth delivers a packet in the softirq of whoever sends it, so without this the farm's
/// side of every handshake (and the bridge's forwarding) runs in the lvs process's context and
/// is billed to it by the tick-based CPU accounting. On a real director the network's other
/// end is another machine, and the director's own receive work runs in the NIC's softirq.
fn thread_napi(ns: &str, ifname: &str) -> Result<()> {
    let script = format!(
        "set -e; ethtool -K {ifname} gro on > /dev/null; echo 1 > /sys/class/net/{ifname}/threaded"
    );
    let out = lvs::lab::netns_command(ns, "sh")
        .args(["-c", &script])
        .output()?;
    ensure!(
        out.status.success(),
        "threaded NAPI on {ifname} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// CPU ticks used so far by every NAPI kernel thread (`napi/IF-ID`) of the machine.
fn napi_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("napi/"))
        })
        .filter_map(|pid| cpu_ticks(pid).ok())
        .sum()
}

// ---------------------------------------------------------------------------------------------
// One run.

#[derive(Debug)]
struct Outcome {
    check: &'static str,
    warmup_cpu: f64,
    cpu: f64,
    napi_cpu: f64,
    rss: f64,
    /// The most of VmRSS that was file-backed (RssFile): chiefly the BPF maps the agent maps
    /// (the connection table it sweeps, the counts), memory the kernel allocated with the
    /// maps, and the binary's own pages.
    file: f64,
    hwm: f64,
    accepted_per_s: f64,
    requests_per_s: f64,
    listen_overflows: u64,
    log_lines: usize,
    unusable_lines: usize,
    state_lines: usize,
}

fn config(o: &Options, check: &str) -> String {
    let mut c = "checkinterval = 1\nchecktimeout = 1\nnegotiatetimeout = 1\ninterface = \"eth0\"\n"
        .to_string();
    let per = |n: u32, k: u32| {
        let (q, r) = (n / o.services, n % o.services);
        let start = k * q + k.min(r);
        start..start + q + u32::from(k < r)
    };
    for k in 0..o.services {
        c.push_str(&format!(
            "\n[[virtual]]\naddress = \"{}:80\"\nscheduler = \"wrr\"\nchecktype = \"{check}\"\n",
            Ipv4Addr::new(198, 18, 1, 1 + k as u8)
        ));
        if check == "negotiate" {
            c.push_str("service = \"http\"\nrequest = \"/\"\n");
        }
        for i in per(o.live, k) {
            c.push_str(&format!(
                "[[virtual.real]]\naddress = \"{}:80\"\n",
                addr(LIVE_BASE, i)
            ));
        }
        for i in per(o.dead, k) {
            c.push_str(&format!(
                "[[virtual.real]]\naddress = \"{}:80\"\n",
                addr(DEAD_BASE, i)
            ));
        }
        for i in per(o.refused, k) {
            c.push_str(&format!(
                "[[virtual.real]]\naddress = \"{}:81\"\n",
                addr(LIVE_BASE, i)
            ));
        }
    }
    c
}

fn run_one(o: &Options, bin: &Path, check: &'static str) -> Result<Outcome> {
    let lab = Lab::create(LabOptions {
        reals: 1,
        big_file_size: 4096,
        start_servers: false,
        ..LabOptions::default()
    })?;
    let farm_ns = lab.reals()[0].ns.clone();
    let dir_ns = lab.director_ns().to_string();
    thread_napi(&dir_ns, "eth0")?;
    thread_napi(&farm_ns, "eth0")?;
    thread_napi(lab.switch_ns(), "dir")?;
    thread_napi(lab.switch_ns(), &lab.reals()[0].switch_port)?;

    // The farm subnet: the director on it, the farm holding the live addresses (one batch).
    let ip = |ns: &str, args: &[&str]| -> Result<()> {
        let out = Command::new("ip").arg("-n").arg(ns).args(args).output()?;
        ensure!(
            out.status.success(),
            "ip -n {ns} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    ip(
        &dir_ns,
        &[
            "addr",
            "add",
            &format!("{DIRECTOR_FARM_ADDR}/{SUBNET_PREFIX}"),
            "dev",
            "eth0",
        ],
    )?;
    let mut batch = String::new();
    for i in 0..o.live {
        batch.push_str(&format!("addr add {}/32 dev eth0\n", addr(LIVE_BASE, i)));
    }
    batch.push_str(&format!(
        "route add {}/{SUBNET_PREFIX} dev eth0 src {}\n",
        Ipv4Addr::new(198, 19, 0, 0),
        addr(LIVE_BASE, 0)
    ));
    let batch_file = lab.work_dir().join("farm.batch");
    std::fs::write(&batch_file, batch)?;
    let t = Instant::now();
    ip(
        &farm_ns,
        &["-batch", batch_file.to_str().context("batch path")?],
    )?;
    eprintln!(
        "[{check}] farm: {} addresses added in {:.2?}",
        o.live,
        t.elapsed()
    );
    let farm = Farm::start(&farm_ns)?;

    let cfg = lab.work_dir().join("lvs.toml");
    std::fs::write(&cfg, config(o, check))?;
    let log = lab.work_dir().join("lvs.log");
    let bpffs = lab.bpffs()?;
    let pid = lab.spawn_logged(
        &dir_ns,
        bin.to_str().context("lvs path")?,
        [
            "run",
            "--config",
            cfg.to_str().context("config path")?,
            "--bpffs",
            bpffs.to_str().context("bpffs path")?,
        ],
        &log,
    )?;
    let tick = ticks_per_second();
    let t0 = Instant::now();
    let start_ticks = cpu_ticks(pid)?;

    // Warm-up, reporting progress each second.
    let mut last = farm.accepted.load(Ordering::Relaxed);
    while t0.elapsed() < o.warmup {
        sleep(Duration::from_secs(1))?;
        let now = farm.accepted.load(Ordering::Relaxed);
        eprintln!(
            "[{check}] warm-up t={:>4.1}s lvs cpu {:.1}s rss {:.0} MB, farm accepts {}/s",
            t0.elapsed().as_secs_f64(),
            (cpu_ticks(pid)? - start_ticks) as f64 / tick,
            status_mb(pid, "VmRSS:")?,
            now - last
        );
        last = now;
    }
    let warm_ticks = cpu_ticks(pid)?;
    let warm_elapsed = t0.elapsed();
    let warmup_cpu = (warm_ticks - start_ticks) as f64 / tick / warm_elapsed.as_secs_f64() * 100.0;

    // The window.
    let (acc0, req0) = (
        farm.accepted.load(Ordering::Relaxed),
        farm.requests.load(Ordering::Relaxed),
    );
    let (over0, _) = listen_drops(&farm_ns)?;
    let napi0 = napi_ticks();
    let w0 = Instant::now();
    let (mut rss_max, mut file_max): (f64, f64) = (0.0, 0.0);
    while w0.elapsed() < o.window {
        sleep(Duration::from_secs(1).min(o.window.saturating_sub(w0.elapsed())))?;
        rss_max = rss_max.max(status_mb(pid, "VmRSS:")?);
        file_max = file_max.max(status_mb(pid, "RssFile:")?);
    }
    let ticks = cpu_ticks(pid)? - warm_ticks;
    let secs = w0.elapsed().as_secs_f64();
    let napi = napi_ticks().saturating_sub(napi0);
    let accepted = farm.accepted.load(Ordering::Relaxed) - acc0;
    let requests = farm.requests.load(Ordering::Relaxed) - req0;
    let (over1, _) = listen_drops(&farm_ns)?;
    let hwm = status_mb(pid, "VmHWM:")?;

    let stopped = lab.terminate(pid, Duration::from_secs(10));
    if !stopped {
        eprintln!("[{check}] lvs did not stop on SIGTERM within 10 s: killing it");
        lab.kill(pid);
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let kept = std::env::temp_dir().join(format!("lvs-scale-bench-{check}.log"));
    if std::fs::write(&kept, &text).is_ok() {
        eprintln!("[{check}] lvs log kept in {}", kept.display());
    }
    drop(farm);
    Ok(Outcome {
        check,
        warmup_cpu,
        cpu: ticks as f64 / tick / secs * 100.0,
        napi_cpu: napi as f64 / tick / secs * 100.0,
        rss: rss_max,
        file: file_max,
        hwm,
        accepted_per_s: accepted as f64 / secs,
        requests_per_s: requests as f64 / secs,
        listen_overflows: over1 - over0,
        log_lines: text.lines().count(),
        unusable_lines: text.matches("server unusable").count(),
        state_lines: text.matches("real server state changed").count(),
    })
}

fn main() -> Result<()> {
    let o = parse_args()?;
    catch_signals();
    let bin = lvs_binary(o.build)?;
    let _neigh = NeighTableGuard::raise(4 * (o.live + o.dead) + 1024)?;
    let mut outcomes = Vec::new();
    for check in o.checks.clone() {
        outcomes.push(run_one(&o, &bin, check)?);
    }
    println!(
        "\n{} services × {} reals ({} answering, {} never answering, {} refusing), \
         checkinterval 1, checktimeout 1; warm-up {:?}, window {:?}; lvs = {}",
        o.services,
        (o.live + o.dead + o.refused) / o.services,
        o.live,
        o.dead,
        o.refused,
        o.warmup,
        o.window,
        bin.display()
    );
    println!(
        "{:<10} | {:>17} | {:>6} | {:>7} | {:>7} | {:>15} | {:>20} | {:>18}",
        "check type",
        "CPU % of one core",
        "RSS MB",
        "HWM MB",
        "file MB",
        "warm-up CPU %",
        "target",
        "lab network CPU %"
    );
    for r in &outcomes {
        println!(
            "{:<10} | {:>17.1} | {:>6.1} | {:>7.1} | {:>7.1} | {:>15.1} | {:>20} | {:>18.1}",
            r.check,
            r.cpu,
            r.rss,
            r.hwm,
            r.file,
            r.warmup_cpu,
            format!(
                "<25% {} <150 MB {}",
                if r.cpu < 25.0 { "ok" } else { "NO" },
                if r.hwm < 150.0 { "ok" } else { "NO" }
            ),
            r.napi_cpu
        );
    }
    println!(
        "(file: the file-backed part of RSS (RssFile): chiefly the BPF maps the agent maps, \
         the connection table it sweeps above all, allocated by the kernel with the map \
         whatever of it is in use (the README's limits give its size), and the binary)"
    );
    println!(
        "(lab network: the NAPI threads of the veths between the director and the farm: the \
         director's receive work, the bridge, and the farm's side of every check)"
    );
    println!();
    for r in &outcomes {
        println!(
            "{:<10}: farm accepted {:.0} conn/s, answered {:.0} req/s (expected ≈{} checks/s \
             of answering reals), listen overflows {}; lvs log: {} lines, {} \"server \
             unusable\", {} \"real server state changed\"",
            r.check,
            r.accepted_per_s,
            r.requests_per_s,
            o.live,
            r.listen_overflows,
            r.log_lines,
            r.unusable_lines,
            r.state_lines
        );
    }
    Ok(())
}
