//! What the tunnel and NAT lines need besides the data plane: a network namespace whose FIB
//! reaches the tunnelled and NATed reals, and their services.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::{Context as _, Result, ensure};
use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{DestPlan, ServicePlan, Target},
};

use crate::setup::*;

/// Enters a network namespace of its own (this thread, and the commands it runs) with a route
/// to 10.98.0.0/24 (and fd00:98::/64) through a router on a veth, and forwarding on: the FIB
/// the tunnel asks. The
/// NATed reals (10.99.0.11-13) are on the veth's subnet, and their clients (100.80.0.0/16)
/// behind the router.
pub fn tunnel_netns() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).context("unshare(NEWNET)")?;
    let script = "ip link set lo up
        ip link add t0 type veth peer name t1
        ip link set t1 up
        ip link set t0 up
        ip addr add 10.99.0.1/24 dev t0
        ip neigh add 10.99.0.254 lladdr 02:00:00:00:00:fe dev t0 nud permanent
        ip route add 10.98.0.0/24 via 10.99.0.254
        ip neigh add 10.99.0.11 lladdr 02:00:00:00:00:11 dev t0 nud permanent
        ip neigh add 10.99.0.12 lladdr 02:00:00:00:00:12 dev t0 nud permanent
        ip neigh add 10.99.0.13 lladdr 02:00:00:00:00:13 dev t0 nud permanent
        ip route add 100.80.0.0/16 via 10.99.0.254
        ip -6 addr add fd00:99::1/64 dev t0 nodad
        ip -6 neigh add fd00:99::fe lladdr 02:00:00:00:00:fe dev t0 nud permanent
        ip -6 route add fd00:98::/64 via fd00:99::fe
        sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.lo.forwarding=1
        sysctl -qw net.ipv6.conf.all.forwarding=1";
    let st = std::process::Command::new("sh")
        .args(["-ec", script])
        .status()
        .context("sh")?;
    ensure!(st.success(), "setting up the tunnel's namespace failed");
    Ok(())
}

/// Port of the tunnelled service on the VIP.
pub const TUNNEL_PORT: u16 = 84;

/// The tunnelled service: port [`TUNNEL_PORT`] of the VIP, reals 10.98.0.11-13 weighted 3:2:1.
pub fn tunnel_plan() -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP, TUNNEL_PORT),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: (1..=3u8)
            .map(|i| DestPlan {
                addr: IpAddr::V4(Ipv4Addr::new(10, 98, 0, 10 + i)),
                weight: u32::from(4 - i),
                table_weight: u32::from(4 - i),
                target: Target::Tunnel { src: None },
            })
            .collect(),
        fallback: None,
        aliases: Vec::new(),
    }
}

/// The IPv6 VIP of the IPv6 tunnelled service.
pub const VIP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 0x100));

/// The IPv6 tunnelled service: port [`TUNNEL_PORT`] of [`VIP6`], reals fd00:98::11-13
/// weighted 3:2:1 (IPv6 in IPv6).
pub fn tunnel_plan6() -> ServicePlan {
    let mut plan = tunnel_plan();
    plan.vip = SocketAddr::new(VIP6, TUNNEL_PORT);
    for (i, d) in plan.dests.iter_mut().enumerate() {
        d.addr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x98, 0, 0, 0, 0, 0, 0x11 + i as u16));
    }
    plan
}

/// Port of the NATed service on the VIP.
pub const NAT_PORT: u16 = 85;
/// The NATed reals' port.
pub const NAT_REAL_PORT: u16 = 8080;

/// The NATed service: port [`NAT_PORT`] of the VIP, reals 10.99.0.11-13 (port
/// [`NAT_REAL_PORT`]) weighted 3:2:1.
pub fn nat_plan() -> ServicePlan {
    ServicePlan {
        one_packet: false,
        vip: SocketAddr::new(VIP, NAT_PORT),
        protocol: Protocol::Tcp,
        scheduler: Scheduler::Wrr,
        persistence: None,
        dests: (1..=3u8)
            .map(|i| DestPlan {
                addr: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 10 + i)),
                weight: u32::from(4 - i),
                table_weight: u32::from(4 - i),
                target: Target::Masq {
                    port: NAT_REAL_PORT,
                },
            })
            .collect(),
        fallback: None,
        aliases: Vec::new(),
    }
}
