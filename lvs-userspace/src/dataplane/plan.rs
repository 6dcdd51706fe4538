//! The desired state of the data plane: what the agent wants the kernel to do, computed from
//! the config, the reals' health and their MACs. [`super::tables::Tables::apply`] turns it into
//! map writes.

use std::net::{IpAddr, SocketAddr};

use lvs_common::{Addr, VipKey, service::proto};

use crate::config::{Protocol, Scheduler};

/// How packets reach a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Another host on a directly connected network: rewrite MACs, send out `ifindex`.
    Remote {
        /// The host's MAC address.
        mac: [u8; 6],
        /// The egress interface's MAC address.
        src_mac: [u8; 6],
        /// The egress interface.
        ifindex: u32,
    },
    /// The director itself: pass the packet to the local stack.
    Local,
    /// A host anywhere routable, through an IP-in-IP tunnel: the data plane asks the kernel's
    /// FIB for the next hop of every packet, so nothing here needs resolving.
    Tunnel {
        /// The outer source address; `None`: the preferred source of the route to the real
        /// (as IPVS chooses it).
        src: Option<IpAddr>,
    },
    /// A host the director routes to, by NAT: the destination address and port become the
    /// real's, the next hop comes from the kernel's FIB for every packet, and the real's
    /// replies come back through the director.
    Masq {
        /// The real's port; 0: the packet's own (the VIP's).
        port: u16,
    },
}

/// One destination of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestPlan {
    /// The server's address (its identity within the service).
    pub addr: IpAddr,
    /// Weight; 0 keeps established flows but takes no new ones (quiescent).
    pub weight: u32,
    /// The weight it has when up (IPVS's last weight): its share of an `mh` service's Maglev
    /// table, which a real quiesced by its checks keeps, so no other real's flows move.
    pub table_weight: u32,
    /// Where its packets go.
    pub target: Target,
}

/// One virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePlan {
    /// VIP and port (0: every port).
    pub vip: SocketAddr,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Scheduler.
    pub scheduler: Scheduler,
    /// Persistence: timeout in seconds and the client netmask prefix within its family.
    pub persistence: Option<(u32, u8)>,
    /// Destinations in config order. A real that is absent is removed (its flows are
    /// rescheduled); one with weight 0 is quiescent.
    pub dests: Vec<DestPlan>,
    /// The fallback server, used when no destination has a weight above 0.
    pub fallback: Option<DestPlan>,
    /// Further (VIP and port, protocol) keys that lead to this same service: the other
    /// matches of a firewall-mark service. One service id, so persistence covers them all.
    pub aliases: Vec<(SocketAddr, Protocol)>,
    /// IPVS's one-packet scheduling (`--ops`): every packet scheduled on its own, no
    /// connection entry kept.
    pub one_packet: bool,
}

/// An address as the kernel stores it.
pub fn kernel_addr(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(v4) => Addr::from_octets(v4.to_ipv6_mapped().octets()),
        IpAddr::V6(v6) => Addr::from_octets(v6.octets()),
    }
}

/// The address the kernel stores, back as an `IpAddr`.
pub fn ip_of(addr: &Addr) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(addr.octets());
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The key of the virtual service (`vip`, `protocol`) in the services map.
pub fn vip_key(vip: SocketAddr, protocol: Protocol) -> VipKey {
    VipKey {
        addr: kernel_addr(vip.ip()),
        port_be: vip.port().to_be(),
        proto: match protocol {
            Protocol::Tcp => proto::TCP,
            Protocol::Udp => proto::UDP,
        },
        _pad: 0,
    }
}

impl ServicePlan {
    /// The service's key in the services map.
    pub fn key(&self) -> VipKey {
        vip_key(self.vip, self.protocol)
    }

    /// The keys of the aliases in the services map.
    pub fn alias_keys(&self) -> Vec<VipKey> {
        self.aliases.iter().map(|&(a, p)| vip_key(a, p)).collect()
    }

    /// The persistence mask for client addresses, as the kernel applies it.
    pub fn persist_mask(&self) -> Addr {
        let prefix = self.persistence.map_or(0, |(_, p)| u32::from(p));
        let prefix = if self.vip.is_ipv4() {
            96 + prefix.min(32)
        } else {
            prefix.min(128)
        };
        Addr::prefix_mask(prefix)
    }
}

/// The order of service keys: the order of (address and port, protocol). The key of a
/// service with aliases is the first of its keys in this order, so an agent that adopts
/// pinned tables finds the same key the config gives.
pub fn key_order(k: &VipKey) -> (SocketAddr, u8) {
    (
        SocketAddr::new(ip_of(&k.addr), u16::from_be(k.port_be)),
        k.proto,
    )
}
