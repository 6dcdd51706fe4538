//! From what the agent knows to what the data plane should do: the config, each real's
//! health and each server's MAC become [`ServicePlan`]s. This is where ldirectord's semantics
//! live: a real that is up is in at its weight; a real that is down is out (its flows are
//! rescheduled) or, with `quiescent = yes`, in at weight 0 (its established flows go on); a
//! real whose MAC is unknown is out (a tunnelled real has no MAC to know: the kernel's FIB
//! gives its next hop per packet); the fallback is always handed to the kernel, which uses it
//! only while no real has a weight above 0.

use std::net::{IpAddr, SocketAddr};

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
    /// The weight of a real that is up: the configured one unless its check set another
    /// (keepalived's `misc_dynamic`).
    fn weight(&self, _virt: &VirtualService, real: &RealServer) -> u32 {
        real.weight
    }
    /// Whether the service has lost its quorum (keepalived's `quorum` above 1).
    fn quorum_lost(&self, _virt: &VirtualService) -> bool {
        false
    }
    /// Whether the real is past its connection threshold (`agent/overload.rs`).
    fn overloaded(&self, _virt: &VirtualService, _real: &RealServer) -> bool {
        false
    }
}

/// The summed weight of the reals of `v` that are up (keepalived's quorum weight).
pub fn live_weight(v: &VirtualService, k: &impl Knowledge) -> u64 {
    v.reals
        .iter()
        .filter(|r| k.is_up(v, r))
        .map(|r| u64::from(k.weight(v, r)))
        .sum()
}

/// keepalived's quorum with hysteresis: whether the service has its quorum now, given
/// whether it had it.
pub fn quorum_held(v: &VirtualService, live: u64, had: bool) -> bool {
    let (q, h) = (u64::from(v.quorum), u64::from(v.hysteresis));
    if had {
        live >= q.saturating_sub(h)
    } else {
        live >= q + h
    }
}

/// How a server configured with `forwarding` is reached, if it can be now.
fn target_of(addr: SocketAddr, forwarding: Forwarding, k: &impl Knowledge) -> Option<Target> {
    // The director itself (a local fallback, a real that is the VIP) gets the packet
    // untranslated whatever the method, as IPVS's local node.
    if k.target(addr.ip()) == Some(Target::Local) {
        return Some(Target::Local);
    }
    match forwarding {
        Forwarding::Gate => k.target(addr.ip()),
        Forwarding::Tunnel => Some(Target::Tunnel { src: None }),
        Forwarding::Masq => Some(Target::Masq { port: addr.port() }),
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
        let Some(target) = target_of(real.addr, real.forwarding, k) else {
            continue;
        };
        let weight = match (k.is_up(v, real), v.quiescent) {
            // Overloaded: in at weight 0, as a quiescent real (its flows go on).
            (true, _) if k.overloaded(v, real) => 0,
            (true, _) => k.weight(v, real),
            (false, true) => 0,
            (false, false) => continue,
        };
        // A real listed twice (ranges can overlap) counts once, at its first weight.
        if dests.iter().all(|d| d.addr != real.addr.ip()) {
            dests.push(DestPlan {
                addr: real.addr.ip(),
                weight,
                table_weight: real.weight,
                target,
            });
        }
    }
    // Below its quorum, a service with a sorry server sends every new connection there (as
    // keepalived removes the live reals); without one, the reals stay.
    if v.quorum > 1 && v.fallback.is_some() && k.quorum_lost(v) {
        dests.clear();
    }
    let fallback = v.fallback.as_ref().and_then(|f| {
        target_of(f.addr, f.forwarding, k).map(|target| DestPlan {
            addr: f.addr.ip(),
            weight: 1,
            table_weight: 1,
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
        one_packet: v.one_packet,
        // A firewall-mark service: its first match is `vip`, the others lead to it too.
        aliases: v
            .fwmark
            .iter()
            .flat_map(|f| f.matches.iter().skip(1))
            .map(|m| (m.vip, m.protocol))
            .collect(),
    }
}

/// Whether a plan sends new connections to the fallback (no real with a weight above 0).
pub fn on_fallback(plan: &ServicePlan) -> bool {
    plan.dests.iter().all(|d| d.weight == 0)
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, net::IpAddr, path::Path};

    use super::*;

    struct K {
        up: HashSet<IpAddr>,
        lost: bool,
    }

    impl Knowledge for K {
        fn is_up(&self, _: &VirtualService, r: &RealServer) -> bool {
            self.up.contains(&r.addr.ip())
        }
        fn target(&self, _: IpAddr) -> Option<Target> {
            Some(Target::Local)
        }
        fn quorum_lost(&self, _: &VirtualService) -> bool {
            self.lost
        }
    }

    fn service(extra: &str) -> VirtualService {
        let text = format!(
            "[[virtual]]\naddress = \"10.0.0.1:80\"\nchecktype = \"on\"\n{extra}\n\
             [[virtual.real]]\naddress = \"10.0.0.2:80\"\nweight = 2\n\
             [[virtual.real]]\naddress = \"10.0.0.3:80\"\nweight = 1\n"
        );
        crate::config::toml::parse_str(Path::new("q.toml"), &text)
            .unwrap()
            .virtuals
            .remove(0)
    }

    #[test]
    fn quorum_with_hysteresis() {
        let v = service("quorum = 3\nhysteresis = 1");
        // Lost below quorum - hysteresis (2), regained at quorum + hysteresis (4).
        assert!(quorum_held(&v, 2, true));
        assert!(!quorum_held(&v, 1, true));
        assert!(!quorum_held(&v, 3, false));
        assert!(quorum_held(&v, 4, false));
        let k = K {
            up: ["10.0.0.2".parse().unwrap()].into(),
            lost: false,
        };
        assert_eq!(live_weight(&v, &k), 2);
    }

    #[test]
    fn below_its_quorum_a_service_with_a_sorry_server_sends_all_there() {
        let up: HashSet<IpAddr> = ["10.0.0.2".parse().unwrap()].into();
        let v = service("quorum = 3\nfallback = \"10.0.0.9:80\"");
        let p = plan(
            &v,
            &K {
                up: up.clone(),
                lost: true,
            },
        );
        assert!(p.dests.is_empty() && p.fallback.is_some(), "{p:?}");
        assert!(on_fallback(&p));
        let p = plan(
            &v,
            &K {
                up: up.clone(),
                lost: false,
            },
        );
        assert_eq!(p.dests.len(), 1);
        // Without a sorry server the live reals stay (keepalived's behaviour).
        let v = service("quorum = 3");
        let p = plan(&v, &K { up, lost: true });
        assert_eq!(p.dests.len(), 1);
    }

    /// Every real up, 10.0.0.2 at the weight its check set.
    struct Dynamic(u32);

    impl Knowledge for Dynamic {
        fn is_up(&self, _: &VirtualService, _: &RealServer) -> bool {
            true
        }
        fn target(&self, _: IpAddr) -> Option<Target> {
            Some(Target::Local)
        }
        fn weight(&self, _: &VirtualService, r: &RealServer) -> u32 {
            if r.addr.ip() == "10.0.0.2".parse::<IpAddr>().unwrap() {
                self.0
            } else {
                r.weight
            }
        }
    }

    #[test]
    fn a_weight_set_by_the_check_keeps_the_real_in() {
        let v = service("");
        let p = plan(&v, &Dynamic(7));
        let w: Vec<_> = p
            .dests
            .iter()
            .map(|d| (d.addr.to_string(), d.weight))
            .collect();
        assert_eq!(w, [("10.0.0.2".into(), 7), ("10.0.0.3".into(), 1)]);
        assert_eq!(live_weight(&v, &Dynamic(7)), 8);
        // Weight 0 (exit 2): still in, taking no new connections.
        let p = plan(&v, &Dynamic(0));
        assert_eq!(p.dests.len(), 2);
        assert_eq!(p.dests[0].weight, 0);
    }

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
        let c = crate::config::ldirectord::parse_str(
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
                table_weight: 3,
                target: Target::Tunnel { src: None },
            }]
        );
        assert!(needs_mac(Forwarding::Gate) && !needs_mac(Forwarding::Tunnel));
    }

    #[test]
    fn a_nated_real_needs_no_mac_and_keeps_its_port() {
        let c = crate::config::toml::parse_str(
            std::path::Path::new("x.toml"),
            "[[virtual]]\naddress = \"10.0.0.1:80\"\n\
             [[virtual.real]]\naddress = \"10.0.1.2:8080\"\nmethod = \"masq\"\nweight = 2\n\
             [[virtual.real]]\naddress = \"10.0.1.3\"\nmethod = \"masq\"\n",
        )
        .unwrap();
        let p = plan(&c.virtuals[0], &NoMacs);
        let masq = |addr: &str, weight, port| DestPlan {
            addr: addr.parse().unwrap(),
            weight,
            table_weight: weight,
            target: Target::Masq { port },
        };
        // Port 0 (none written): the VIP's, kept by the data plane.
        assert_eq!(
            p.dests,
            vec![masq("10.0.1.2", 2, 8080), masq("10.0.1.3", 1, 0)]
        );
        assert!(!needs_mac(Forwarding::Masq));
    }
}
