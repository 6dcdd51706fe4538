//! Where the balancer attaches and what it takes: the interface (the option, the config's, or
//! the one holding a VIP), the Ethernet destinations it balances, and the server addresses
//! whose MACs and routes the agent follows.

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr},
};

use super::{AgentError, RunOptions, desired};
use crate::{
    config::{self, Config},
    dataplane::Dataplane,
    neighbour,
};

/// Every server address the agent follows: those whose MAC the data plane needs (reals and
/// fallbacks reached by direct routing; a tunnelled or NATed one's next hop comes from the
/// kernel's FIB per packet), and those that may be the director itself whatever their method
/// (a VIP, a loopback address: IPVS's local node, which gets the packet untranslated).
pub(super) fn server_addrs(config: &Config) -> HashSet<IpAddr> {
    let vips: HashSet<IpAddr> = config.virtuals.iter().map(|v| v.vip.ip()).collect();
    let followed = |addr: SocketAddr, forwarding: config::Forwarding| {
        let ip = addr.ip();
        (desired::needs_mac(forwarding) || vips.contains(&ip) || ip.is_loopback()).then_some(ip)
    };
    config
        .virtuals
        .iter()
        .flat_map(|v| {
            v.reals
                .iter()
                .map(|r| (r.addr, r.forwarding))
                .chain(v.fallback.iter().map(|f| (f.addr, f.forwarding)))
        })
        .filter_map(|(addr, forwarding)| followed(addr, forwarding))
        .collect()
}

/// The interface to attach to: the option, the config's, or the one holding a VIP.
pub(super) fn choose_interface(opts: &RunOptions, config: &Config) -> Result<String, AgentError> {
    if let Some(i) = opts
        .interface
        .clone()
        .or_else(|| config.globals.interface.clone())
    {
        return Ok(i);
    }
    for v in &config.virtuals {
        let vip = v.vip.ip();
        if let Some((_, name)) = neighbour::interface_holding(vip)
            .map_err(|source| AgentError::Interface { vip, source })?
        {
            return Ok(name);
        }
    }
    Err(AgentError::NoInterface {
        vips: config
            .virtuals
            .iter()
            .map(|v| v.vip.ip().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The Ethernet destinations the balancer takes: `interface`'s own MAC, then the config's
/// `extra_macs`, then those of the other interfaces it runs on (`inside`, a NAT director's).
/// An interface without a MAC is logged: only the extra MACs are balanced then.
pub(super) fn own_macs(ifindex: u32, inside: &[u32], config: &Config) -> Vec<[u8; 6]> {
    let mut macs = Vec::new();
    match neighbour::link_by_index(ifindex) {
        Ok(neighbour::Link { mac: Some(m), .. }) => macs.push(m.octets()),
        Ok(_) => tracing::error!(
            ifindex,
            "the interface has no Ethernet address: only frames to extra_macs are balanced"
        ),
        Err(e) => tracing::error!(
            ifindex,
            "reading the interface's MAC: {e}: only frames to extra_macs are balanced"
        ),
    }
    macs.extend(config.globals.extra_macs.iter().copied());
    for &i in inside {
        match neighbour::link_by_index(i) {
            Ok(neighbour::Link { mac: Some(m), .. }) => macs.push(m.octets()),
            Ok(_) => {}
            Err(e) => tracing::error!(ifindex = i, "reading the interface's MAC: {e}"),
        }
    }
    macs
}

/// Writes [`own_macs`] into the data plane.
pub(super) fn write_own_macs(
    dataplane: &mut Dataplane,
    ifindex: u32,
    inside: &[u32],
    config: &Config,
) -> Result<(), crate::dataplane::LoadError> {
    let macs = own_macs(ifindex, inside, config);
    tracing::info!(
        ifindex,
        macs = ?macs.iter().map(|m| neighbour::MacAddr(*m).to_string()).collect::<Vec<_>>(),
        "balancing frames to these Ethernet destinations"
    );
    dataplane.set_own_macs(&macs)
}
