//! From what the agent knows to what the data plane should do: the config, each real's
//! health and each server's MAC become [`ServicePlan`]s. This is where ldirectord's semantics
//! live: a real that is up is in at its weight; a real that is down is out (its flows are
//! rescheduled) or, with `quiescent = yes`, in at weight 0 (its established flows go on); a
//! real whose MAC is unknown is out (a tunnelled real has no MAC to know: the kernel's FIB
//! gives its next hop per packet); the fallback is always handed to the kernel, which uses it
//! only while no real has a weight above 0.

use std::net::IpAddr;

use crate::{
    config::{Config, RealServer, VirtualService, model::Forwarding},
    dataplane::{DestPlan, ServicePlan, Target},
};

/// What the agent knows of the servers, as the planner asks for it.
pub trait Knowledge {
    /// Whether the real (of that virtual service) is up after its health checks.
    fn is_up(&self, virt: &VirtualService, real: &RealServer) -> bool;
    /// How to reach a server: its MAC, or local; `None` while unresolved.
    fn target(&self, addr: IpAddr) -> Option<Target>;
}

/// How a server configured with `forwarding` is reached, if it can be now.
fn target_of(addr: IpAddr, forwarding: Forwarding, k: &impl Knowledge) -> Option<Target> {
    match forwarding {
        Forwarding::Gate => k.target(addr),
        Forwarding::Tunnel => Some(Target::Tunnel { src: None }),
    }
}

/// Whether the agent must resolve the server's MAC (direct routing) to reach it.
pub fn needs_mac(forwarding: Forwarding) -> bool {
    forwarding == Forwarding::Gate
}

/// The plans for every virtual service of `config`.
pub fn plans(config: &Config, k: &impl Knowledge) -> Vec<ServicePlan> {
    config.virtuals.iter().map(|v| plan(v, k)).collect()
}

/// The plan for one virtual service.
pub fn plan(v: &VirtualService, k: &impl Knowledge) -> ServicePlan {
    let mut dests: Vec<DestPlan> = Vec::new();
    for real in &v.reals {
        let Some(target) = target_of(real.addr.ip(), real.forwarding, k) else {
            continue;
        };
        let weight = match (k.is_up(v, real), v.quiescent) {
            (true, _) => real.weight,
            (false, true) => 0,
            (false, false) => continue,
        };
        // A real listed twice (ranges can overlap) counts once, at its first weight.
        if dests.iter().all(|d| d.addr != real.addr.ip()) {
            dests.push(DestPlan {
                addr: real.addr.ip(),
                weight,
                target,
            });
        }
    }
    let fallback = v.fallback.as_ref().and_then(|f| {
        target_of(f.addr.ip(), f.forwarding, k).map(|target| DestPlan {
            addr: f.addr.ip(),
            weight: 1,
            target,
        })
    });
    ServicePlan {
        vip: v.vip,
        protocol: v.protocol,
        scheduler: v.scheduler,
        persistence: v.persistent.map(|t| {
            (
                t.as_secs().min(u64::from(u32::MAX)) as u32,
                v.netmask_prefix,
            )
        }),
        dests,
        fallback,
    }
}

/// Whether a plan sends new connections to the fallback (no real with a weight above 0).
pub fn on_fallback(plan: &ServicePlan) -> bool {
    plan.dests.iter().all(|d| d.weight == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ldirectord::parse_str;

    /// Every real up; no MAC known.
    struct NoMacs;

    impl Knowledge for NoMacs {
        fn is_up(&self, _: &VirtualService, _: &RealServer) -> bool {
            true
        }
        fn target(&self, _: IpAddr) -> Option<Target> {
            None
        }
    }

    #[test]
    fn a_tunnelled_real_needs_no_mac_and_mixes_with_direct_routing() {
        let c = parse_str(
            std::path::Path::new("l.cf"),
            "virtual=10.0.0.1:80\n\treal=10.0.1.2:80 ipip 3\n\treal=10.0.0.3:80 gate 1\n\
             \tchecktype=on\n",
        )
        .unwrap();
        let p = plan(&c.virtuals[0], &NoMacs);
        // The gate real waits for its MAC; the tunnelled one is in at its weight.
        assert_eq!(
            p.dests,
            vec![DestPlan {
                addr: "10.0.1.2".parse().unwrap(),
                weight: 3,
                target: Target::Tunnel { src: None },
            }]
        );
        assert!(needs_mac(Forwarding::Gate) && !needs_mac(Forwarding::Tunnel));
    }
}
