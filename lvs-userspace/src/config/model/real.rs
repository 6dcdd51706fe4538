//! A real server ([`RealServer`]): how packets reach it ([`Forwarding`]), its overrides of
//! the service's check, its scripts, and its connection thresholds.

use std::net::{IpAddr, SocketAddr};

use super::{CheckSource, Location};

/// How packets reach a real server (IPVS's forwarding methods that lvs implements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarding {
    /// Direct routing (`gate`): rewrite the destination MAC.
    Gate,
    /// IP-in-IP tunnel (`ipip`): encapsulate to the real, which may be anywhere routable.
    Tunnel,
    /// Network address translation (`masq`): the destination becomes the real's address and
    /// port (which may differ from the VIP's); the real's replies, routed back through the
    /// director, get the VIP's back.
    Masq,
}

impl Forwarding {
    /// The name ldirectord.cf and the TOML format use (`gate`, `ipip`, `masq`).
    pub fn config_name(self) -> &'static str {
        match self {
            Forwarding::Gate => "gate",
            Forwarding::Tunnel => "ipip",
            Forwarding::Masq => "masq",
        }
    }

    /// The name ipvsadm prints in its Forward column (`Route`, `Tunnel`, `Masq`).
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forwarding::Gate => "Route",
            Forwarding::Tunnel => "Tunnel",
            Forwarding::Masq => "Masq",
        }
    }
}

/// A real server of a virtual service.
#[derive(Clone, Debug, PartialEq)]
pub struct RealServer {
    /// Where it was configured.
    pub location: Location,
    /// Its address; port 0 means the service's port.
    pub addr: SocketAddr,
    /// Weight (default 1); 0 means no new connections.
    pub weight: u32,
    /// How packets reach it.
    pub forwarding: Forwarding,
    /// Per-real `request` override.
    pub request: Option<String>,
    /// Per-real `receive` override.
    pub receive: Option<String>,
    /// Per-real `digest` override (keepalived's `url { digest }` differs per real).
    pub digest: Option<String>,
    /// Per-real `checkcommand` override of an external check (keepalived's `misc_path`
    /// differs per real, as a script given each real's address).
    pub check_command: Option<String>,
    /// Per-real `check_address` override (keepalived's `connect_ip` in a real's first
    /// checker): the service's check goes there instead of to the real's address.
    pub check_address: Option<IpAddr>,
    /// Per-real overrides of the service's check source, field by field (keepalived's
    /// `bindto`, `bind_port`, `bind_if`, `fwmark` in a real's first checker when they differ
    /// between reals): for the service's check only.
    pub check_source: CheckSource,
    /// keepalived's `notify_up`: a command run (with no argument added) when the real comes
    /// up.
    pub notify_up: Option<String>,
    /// keepalived's `notify_down`: run when the real goes down.
    pub notify_down: Option<String>,
    /// Connection thresholds (ipvsadm's `-x`/`-y`).
    pub thresholds: Thresholds,
}

/// A real's connection thresholds: ipvsadm's `-x` (upper) and `-y` (lower), keepalived's
/// `uthreshold`/`lthreshold`, ldirectord's `u:N`/`l:N`, TOML's `upper_threshold` /
/// `lower_threshold`. 0 means unset. A real whose connections (active and inactive) reach the
/// upper threshold is overloaded: it takes no new connection, its flows go on, until its count
/// falls below the lower threshold (below ¾ of the upper one when no lower one is set), as
/// IPVS's `IP_VS_DEST_F_OVERLOAD`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    /// Overloaded from this many connections on (0: never).
    pub upper: u32,
    /// No longer overloaded below this many (0: below ¾ of `upper`).
    pub lower: u32,
}

impl Thresholds {
    /// Whether a real with these thresholds and `total` connections (active + inactive) is
    /// overloaded, given whether it `was` (IPVS sets the flag when a connection is bound and
    /// clears it when one is unbound: `ip_vs_bind_dest`, `ip_vs_unbind_dest`).
    pub fn overloaded(self, was: bool, total: u64) -> bool {
        let (upper, lower) = (u64::from(self.upper), u64::from(self.lower));
        if upper == 0 {
            false
        } else if !was {
            total >= upper
        } else if lower != 0 {
            total >= lower
        } else {
            total * 4 >= upper * 3
        }
    }

    /// Whether any threshold is set.
    pub fn any(self) -> bool {
        self.upper != 0 || self.lower != 0
    }
}
