//! The connection table as `ipvsadm -L -c` lists it: every live entry of a destination the
//! running model has, with IPVS's state name and the seconds before its idle timeout ends.
//! The one request that walks the table (one pass over its read-only mapping, so bounded by
//! its size); ActiveConn and InActConn are read from the data plane's counts instead
//! ([`super::snapshot`]).

use std::{collections::HashMap, net::SocketAddr};

use lvs_common::conntrack::ct_state;

use super::Agent;
use crate::dataplane::conns::table_now_ns;
use crate::{
    dataplane::plan::{ip_of, vip_key},
    ipvsadm::output::Connection,
};

/// IPVS's name of a state (`tcp_state_name`; UDP flows are `UDP`).
fn state_name(state: u8) -> &'static str {
    match state {
        ct_state::ESTABLISHED => "ESTABLISHED",
        ct_state::SYN_SENT => "SYN_SENT",
        ct_state::SYN_RECV => "SYN_RECV",
        ct_state::FIN_WAIT => "FIN_WAIT",
        ct_state::TIME_WAIT => "TIME_WAIT",
        ct_state::CLOSE => "CLOSE",
        ct_state::CLOSE_WAIT => "CLOSE_WAIT",
        ct_state::LAST_ACK => "LAST_ACK",
        ct_state::LISTEN => "LISTEN",
        ct_state::SYNACK => "SYNACK",
        ct_state::UDP => "UDP",
        _ => "NONE",
    }
}

impl Agent {
    /// The live connections, sorted by client.
    pub(super) fn connections(&mut self) -> Vec<Connection> {
        let tables = &self.dataplane.tables;
        // (destination id, generation) → the real's address (port 0: the client's).
        let mut dests: HashMap<(u32, u32), SocketAddr> = HashMap::new();
        for v in &self.config.virtuals {
            let key = vip_key(v.vip, v.protocol);
            let with_port = |a: SocketAddr| {
                if a.port() == 0 {
                    SocketAddr::new(a.ip(), v.vip.port())
                } else {
                    a
                }
            };
            let ids = v
                .reals
                .iter()
                .map(|r| (tables.dest_id(&key, r.addr.ip()), with_port(r.addr)))
                .chain(
                    v.fallback
                        .iter()
                        .map(|f| (tables.fallback_id(&key), with_port(f.addr))),
                );
            for (id, addr) in ids {
                if let Some(id) = id
                    && let Some(g) = tables.dest_generation(id)
                {
                    dests.insert((id, g), addr);
                }
            }
        }
        let now = table_now_ns();
        let timeouts = self.config.globals.timeouts.table();
        let mut out = Vec::new();
        let walked = crate::dataplane::conntrack::for_each_way(self.dataplane.ebpf(), |e| {
            if !e.is_live(now, &timeouts) {
                return;
            }
            let Some(&dest) = dests.get(&(e.dest, e.generation)) else {
                return;
            };
            let state = e.state();
            let timeout_ns = u64::from(timeouts.secs[usize::from(state)]) * 1_000_000_000;
            let left = timeout_ns.saturating_sub(now.saturating_sub(e.seen_ns()));
            let vport = u16::from_be(e.key.dport_be);
            out.push(Connection {
                protocol: if e.key.proto == 17 { "UDP" } else { "TCP" }.into(),
                expires_s: left / 1_000_000_000,
                state: state_name(state).into(),
                source: SocketAddr::new(ip_of(&e.key.src), u16::from_be(e.key.sport_be)),
                virtual_addr: SocketAddr::new(ip_of(&e.key.dst), vport),
                destination: if dest.port() == 0 {
                    SocketAddr::new(dest.ip(), vport)
                } else {
                    dest
                },
            });
        });
        if let Err(e) = walked {
            tracing::warn!(error = %e, "listing the connection table");
        }
        out.sort_by_key(|c| (c.source, c.virtual_addr));
        out
    }
}
