//! A NAT director with two interfaces (IPVS's classic LVS-NAT: clients on one, the reals on a
//! private subnet on the other, their default route the director): the NATed flows' replies
//! come in on the reals' side, so the balancer runs there too. No setting names it: the
//! agent asks the kernel for the route to each NATed real (and fallback), and attaches the
//! balancer to each egress interface that is not the one holding the VIPs, at start and on
//! every reload (an interface no longer needed keeps the balancer until the agent stops: it
//! passes whatever is not a NATed flow's reply). The accepted MACs grow by those interfaces'
//! own; forwarding must be on there too ([`super::tunnel_forwarding`]).

use crate::{
    config::{Config, model::Forwarding},
    neighbour,
};

use super::{Agent, tunnel_forwarding, write_own_macs};

/// The egress interfaces (index, name) of the routes to `config`'s NATed reals and
/// fallbacks, but `main` (and but those of the director's own addresses). A real the kernel
/// has no route to is logged and left out.
pub fn interfaces(config: &Config, main: u32) -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = Vec::new();
    let masq = config.virtuals.iter().flat_map(|v| {
        v.reals
            .iter()
            .map(|r| (r.forwarding, r.addr.ip()))
            .chain(v.fallback.iter().map(|f| (f.forwarding, f.addr.ip())))
    });
    for (forwarding, addr) in masq {
        // A real served by the director itself (a local fallback) is reached through no
        // interface: its packets are passed to the local stack untranslated.
        if forwarding != Forwarding::Masq || neighbour::is_local(addr).unwrap_or(false) {
            continue;
        }
        match neighbour::lookup_route(addr) {
            Ok(route) if route.ifindex != main && !out.iter().any(|(i, _)| *i == route.ifindex) => {
                out.push((route.ifindex, route.ifname))
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(real = %addr, "no route to the NATed real: {e}"),
        }
    }
    out
}

impl Agent {
    /// Attaches the balancer to the interfaces [`interfaces`] names that it does not run on
    /// yet, and writes the accepted MACs again when that adds any. A failure is logged: the
    /// replies arriving there are then routed by the kernel untranslated.
    pub(super) fn follow_inside(&mut self) {
        let mut added = false;
        for (ifindex, name) in interfaces(&self.config, self.ifindex) {
            tunnel_forwarding::check(&self.config, &name);
            if self.dataplane.inside_interfaces().contains(&ifindex) {
                continue;
            }
            match self.dataplane.attach_inside(&name, self.fixed.mode) {
                Ok(_) => {
                    tracing::info!(
                        interface = name,
                        ifindex,
                        "balancer attached here too: the NATed reals' replies come in on it"
                    );
                    added = true;
                }
                Err(e) => tracing::error!(
                    interface = name,
                    "attaching the balancer for the NATed reals' replies failed: they are not \
                     translated: {e}"
                ),
            }
        }
        let inside = self.dataplane.inside_interfaces();
        if added
            && let Err(e) = write_own_macs(&mut self.dataplane, self.ifindex, &inside, &self.config)
        {
            tracing::error!("writing the accepted MACs: {e}");
        }
    }
}
