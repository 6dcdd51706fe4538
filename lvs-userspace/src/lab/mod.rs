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
//! Here: the addresses, the options and the [`Lab`] with its accessors and its removal. Beside
//! it in `lab/`: building the topology (`topology.rs`), the reals' HTTP servers (`servers.rs`),
//! processes run for a test (`processes.rs`), the errors (`error.rs`), namespaces and commands
//! (`netns.rs`), and the HTTP and ARP clients (`http.rs`, `arp.rs`).
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

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

mod arp;
mod error;
mod http;
mod netns;
mod processes;
mod servers;
mod topology;

pub use arp::{arp_probe, arp_probe_here};
pub use error::LabError;
pub use http::{connect_from_port, http_get, http_get_from_port, http_get_here};
use netns::{BPFFS_DIR, delete_netns, kill_group, lock};
pub use netns::{cleanup_stale, mount_bpffs, netns_command, run_in_netns, unmount_bpffs};
pub use servers::big_file_bytes;

use crate::neighbour::{self, MacAddr};

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
