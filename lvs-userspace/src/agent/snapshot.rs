//! A serializable view of the running agent, for `lvs status` ([`crate::status`]) and the
//! Prometheus endpoint ([`crate::metrics`]).
//!
//! The agent builds it on request, in its own loop (`Agent::snapshot`), so its state keeps a
//! single owner: the control socket and the metrics server ask for one through a channel.
//!
//! ActiveConn and InActConn are the data plane's own counts ([`lvs_common::conns`]): one word
//! per destination slot in `LVS_DEST_CONNS`, read for the generation the slot holds now, so a
//! real never shows the flows of an earlier real of its slot. The data plane keeps them exact
//! through state changes and evictions, the agent's sweep ([`crate::dataplane::conns`], once
//! a second) uncounts flows that expired without a packet, and a removed real's slot starts
//! afresh. A snapshot reads one word per real, whatever the size of the connection table
//! (only `ipvsadm -Lc`, which lists the connections, walks it: `agent/conn_list.rs`).

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lvs_common::{Counters, DropReason};
use serde::{Deserialize, Serialize};

use super::{Agent, View, desired};
use crate::{
    config::{Protocol, Scheduler},
    dataplane::plan::Target,
    health::{CheckKey, HardState, real_state},
};

/// Counters the agent keeps about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounters {
    /// Plans written to the kernel's tables successfully.
    pub map_updates: u64,
    /// Plans the kernel's tables refused: the balancer kept forwarding with what it had, and
    /// the agent kept running (the error is logged).
    #[serde(default)]
    pub map_update_failures: u64,
    /// Config reloads applied.
    pub reloads: u64,
    /// Config reloads refused (the file did not load).
    pub reload_failures: u64,
    /// Failing check results the health engine reported (with a state change or a change of
    /// the soft-failing flag).
    pub check_errors: u64,
}

/// Packet, byte and connection counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSnapshot {
    /// Packets forwarded client → server (IPVS's InPkts).
    pub packets: u64,
    /// Bytes forwarded client → server (whole frames, IPVS's InBytes).
    pub bytes: u64,
    /// New connections scheduled.
    pub connections: u64,
    /// Packets forwarded server → client (IPVS's OutPkts): NAT replies only; direct routing
    /// and tunnel replies bypass the director.
    #[serde(default)]
    pub out_packets: u64,
    /// Bytes of those (whole frames, IPVS's OutBytes).
    #[serde(default)]
    pub out_bytes: u64,
}

impl From<Counters> for CounterSnapshot {
    fn from(c: Counters) -> Self {
        CounterSnapshot {
            packets: c.packets,
            bytes: c.bytes,
            connections: c.connections,
            out_packets: c.out_packets,
            out_bytes: c.out_bytes,
        }
    }
}

/// The last check run on a real.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LastCheck {
    /// Whether it passed.
    pub ok: bool,
    /// Which check ran ("connect", "negotiate"...).
    pub check: String,
    /// What happened.
    pub message: String,
    /// How long it took, in seconds.
    pub latency_s: f64,
    /// When it started, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// A real's health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    /// "up", "down" or "unknown" (not decided yet).
    pub state: String,
    /// Up, with recent failures not yet enough to take it down.
    pub soft_failing: bool,
    /// Consecutive failed checks.
    pub consecutive_failures: u32,
    /// Failures that take it down (`failurecount`).
    pub failure_count: u32,
    /// Forced down by a `maintenancedir` file.
    pub maintenance: bool,
    /// The last check, if one ran.
    pub last: Option<LastCheck>,
}

/// One real server of a service (or its fallback).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealSnapshot {
    /// Address and port (the service's port when configured as 0).
    pub address: SocketAddr,
    /// Forwarding method as ipvsadm names it ("Route": direct routing, "Tunnel": IP-in-IP,
    /// "Masq": NAT, "Local": the director itself, IPVS's local node).
    pub forward: String,
    /// The configured weight.
    pub weight: u32,
    /// The weight in the data plane; absent when it is out (down, or MAC unknown).
    pub effective_weight: Option<u32>,
    /// Its counters (zero while absent from the data plane).
    pub counters: CounterSnapshot,
    /// IPVS's ActiveConn, as the data plane counts it: live connection-table entries pointing
    /// at it (current generation) in an active state (ESTABLISHED, SYN_RECV, SYN_SENT, SYNACK).
    pub active_connections: u64,
    /// IPVS's InActConn: the other live entries pointing at it (FIN_WAIT, CLOSE, TIME_WAIT,
    /// ..., and every UDP flow).
    pub inactive_connections: u64,
    /// Its upper connection threshold (ipvsadm's `-x`; 0: none).
    #[serde(default)]
    pub upper_threshold: u32,
    /// Its lower connection threshold (ipvsadm's `-y`; 0: none).
    #[serde(default)]
    pub lower_threshold: u32,
    /// Past its upper threshold: no new connections until below the lower one.
    #[serde(default)]
    pub overloaded: bool,
    /// Its health (absent for the fallback, which is not checked).
    pub health: Option<HealthSnapshot>,
}

/// One virtual service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    /// VIP and port (0: every port).
    pub address: SocketAddr,
    /// "TCP" or "UDP".
    pub protocol: String,
    /// A firewall-mark service's mark (its family `address`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// The scheduler's flags as ipvsadm's `-b` names them (`mh-fallback,mh-port`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sched_flags: Option<String>,
    /// One-packet scheduling (`ops`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_packet: bool,
    /// "wrr", "rr" or "sh".
    pub scheduler: String,
    /// Persistence timeout in seconds, when persistent.
    pub persistent_s: Option<u64>,
    /// Persistence netmask prefix.
    pub netmask_prefix: u8,
    /// `quiescent`: failed reals stay in at weight 0.
    pub quiescent: bool,
    /// `servicename`, if any.
    pub name: Option<String>,
    /// New connections go to the fallback (or are dropped without one): no real has a weight
    /// above 0.
    pub on_fallback: bool,
    /// Its counters.
    pub counters: CounterSnapshot,
    /// The reals, in config order.
    pub reals: Vec<RealSnapshot>,
    /// The fallback ("sorry") server.
    pub fallback: Option<RealSnapshot>,
}

/// The whole running agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The agent's version.
    pub version: String,
    /// Size of the connection table.
    pub conn_table_size: u32,
    /// When it was taken, in milliseconds since the Unix epoch.
    pub taken_unix_ms: u64,
    /// Connections counted (active and inactive), in total: the sum of the counts of every
    /// destination slot in use (flows of removed destinations are not counted).
    pub conn_table_entries: u64,
    /// Virtual services in config order.
    pub services: Vec<ServiceSnapshot>,
    /// Packets dropped, by reason.
    pub drops: BTreeMap<String, u64>,
    /// The agent's own counters.
    pub agent: AgentCounters,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// ipvsadm's protocol name.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}

/// ipvsadm's scheduler name.
pub fn scheduler_name(s: Scheduler) -> &'static str {
    s.name()
}

impl Agent {
    /// Builds a [`Snapshot`] of the agent now.
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        // The checks' states first, right after the caller applied what the agent knows: a
        // state read later could be one the agent has not received yet (a real shown down but
        // still weighted).
        let health: HashMap<CheckKey, _> = self
            .health
            .snapshot()
            .into_iter()
            .map(|t| (t.key.clone(), t))
            .collect();
        let view = View::of(self);
        let tables = &self.dataplane.tables;
        let stats = tables.stats();
        // The data plane's counts of the slot's current generation: one word per real.
        let conns = |id: Option<u32>| -> (u64, u64) {
            id.and_then(|id| tables.conns(id)).unwrap_or((0, 0))
        };
        let dest_counters = |id: Option<u32>| -> CounterSnapshot {
            id.and_then(|id| stats.dest(id).ok())
                .map(CounterSnapshot::from)
                .unwrap_or_default()
        };
        let mut services = Vec::new();
        for v in &self.config.virtuals {
            let plan = desired::plan(v, &view);
            let key = plan.key();
            let with_port = |a: SocketAddr| {
                if a.port() == 0 {
                    SocketAddr::new(a.ip(), v.vip.port())
                } else {
                    a
                }
            };
            let mut reals = Vec::new();
            for r in &v.reals {
                let ip = r.addr.ip();
                let planned = plan.dests.iter().find(|d| d.addr == ip);
                let id = tables.dest_id(&key, ip);
                // A real with several checks shows the first that is down or failing (else
                // the service's own), and the state of all together.
                let keys = CheckKey::all_for(v, r);
                let state = real_state(&keys, |k| health.get(k).and_then(|h| h.state));
                let h = keys
                    .iter()
                    .filter_map(|k| health.get(k))
                    .find(|h| h.state == Some(HardState::Down) || h.soft_failing)
                    .or_else(|| health.get(&keys[0]));
                reals.push(RealSnapshot {
                    address: with_port(r.addr),
                    // ipvsadm's `Local` for a real that is the director itself.
                    forward: if planned.is_some_and(|d| d.target == Target::Local) {
                        "Local".into()
                    } else {
                        r.forwarding.ipvsadm_name().into()
                    },
                    weight: r.weight,
                    effective_weight: planned.map(|d| d.weight),
                    counters: dest_counters(id),
                    active_connections: conns(id).0,
                    inactive_connections: conns(id).1,
                    upper_threshold: r.thresholds.upper,
                    lower_threshold: r.thresholds.lower,
                    overloaded: self.overloaded.contains(&CheckKey::from_config(v, r)),
                    health: Some(HealthSnapshot {
                        state: match state {
                            Some(HardState::Up) => "up",
                            Some(HardState::Down) => "down",
                            None => "unknown",
                        }
                        .into(),
                        soft_failing: h.is_some_and(|h| h.soft_failing),
                        consecutive_failures: h.map_or(0, |h| h.consecutive_failures),
                        failure_count: v.check.failure_count,
                        maintenance: h.is_some_and(|h| h.maintenance),
                        last: h.and_then(|h| h.last.as_ref()).map(|l| LastCheck {
                            ok: l.ok,
                            check: l.check.to_string(),
                            message: l.message.clone(),
                            latency_s: l.latency.as_secs_f64(),
                            at_unix_ms: unix_ms(l.at),
                        }),
                    }),
                });
            }
            let fallback = v.fallback.as_ref().map(|f| {
                let id = tables.fallback_id(&key);
                RealSnapshot {
                    address: with_port(f.addr),
                    forward: f.forwarding.ipvsadm_name().into(),
                    weight: 1,
                    effective_weight: plan.fallback.as_ref().map(|_| 1),
                    counters: dest_counters(id),
                    active_connections: conns(id).0,
                    inactive_connections: conns(id).1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    overloaded: false,
                    health: None,
                }
            });
            services.push(ServiceSnapshot {
                address: v.vip,
                protocol: protocol_name(v.protocol).into(),
                fwmark: v.fwmark.as_ref().map(|f| f.mark),
                one_packet: v.one_packet,
                sched_flags: match v.scheduler {
                    crate::config::Scheduler::Mh(f) => crate::ipvsadm::output::flags_text(
                        &[(f.fallback, "mh-fallback"), (f.port, "mh-port")]
                            .iter()
                            .filter(|(on, _)| *on)
                            .map(|(_, n)| *n)
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    _ => None,
                },
                scheduler: scheduler_name(v.scheduler).into(),
                persistent_s: v.persistent.map(|d| d.as_secs()),
                netmask_prefix: v.netmask_prefix,
                quiescent: v.quiescent,
                name: v.name.clone(),
                on_fallback: desired::on_fallback(&plan),
                counters: tables
                    .service_id(&key)
                    .and_then(|id| stats.service(id).ok())
                    .map(CounterSnapshot::from)
                    .unwrap_or_default(),
                reals,
                fallback,
            });
        }
        let drops = DropReason::ALL
            .iter()
            .map(|&r| (r.name().to_string(), stats.drops(r).unwrap_or(0)))
            .collect();
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            conn_table_size: self.dataplane.sizes().connections,
            taken_unix_ms: unix_ms(SystemTime::now()),
            conn_table_entries: tables.conns_total(),
            services,
            drops,
            agent: self.counters,
        }
    }
}
