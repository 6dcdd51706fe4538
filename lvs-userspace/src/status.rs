//! `lvs status`: a [`Snapshot`] rendered the way `ipvsadm -Ln` prints the IPVS table, with a
//! health column appended, and the `--stats` and `--rate` variants.
//!
//! The fallback ("sorry") server is listed as a real line, as ipvsadm lists ldirectord's
//! sorry server, with weight 1 while the service is on it and 0 otherwise, and a note under
//! the service while it is on it. OutPkts and OutBytes count NAT replies (server → client);
//! they stay 0 for direct routing and tunnel reals, whose replies go from the reals to the
//! clients without crossing the director. InActConn is always
//! 0: the data plane does not follow TCP state (see [`crate::agent::snapshot`]).

use std::fmt::Write as _;

use crate::agent::snapshot::{CounterSnapshot, RealSnapshot, ServiceSnapshot, Snapshot};

/// The service line's address column, as ipvsadm prints it.
fn service_head(s: &ServiceSnapshot) -> String {
    format!("{}  {}", s.protocol, s.address)
}

fn flags(s: &ServiceSnapshot) -> String {
    match s.persistent_s {
        Some(t) => {
            let full = if s.address.is_ipv4() { 32 } else { 128 };
            if s.netmask_prefix != full {
                if s.address.is_ipv4() {
                    let mask = u32::MAX
                        .checked_shl(32 - u32::from(s.netmask_prefix))
                        .unwrap_or(0);
                    format!(" persistent {t} mask {}", std::net::Ipv4Addr::from(mask))
                } else {
                    format!(" persistent {t} mask {}", s.netmask_prefix)
                }
            } else {
                format!(" persistent {t}")
            }
        }
        None => String::new(),
    }
}

/// "12s", "3m", "2h": how long ago, in the largest unit.
fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// The health column of a real.
fn health(r: &RealSnapshot, now_ms: u64) -> String {
    let Some(h) = &r.health else {
        return String::new();
    };
    let mut out = if h.maintenance {
        "down (maintenance)".to_string()
    } else if h.soft_failing {
        format!(
            "soft-failing ({}/{})",
            h.consecutive_failures, h.failure_count
        )
    } else {
        h.state.clone()
    };
    if let Some(l) = &h.last {
        let msg: String = l.message.chars().take(60).collect();
        let _ = write!(
            out,
            "  {} {}: {} ({:.1}ms, {} ago)",
            l.check,
            if l.ok { "ok" } else { "failed" },
            msg,
            l.latency_s * 1000.0,
            age(now_ms.saturating_sub(l.at_unix_ms))
        );
    }
    out
}

fn weight(r: &RealSnapshot) -> String {
    r.effective_weight
        .map_or_else(|| "-".to_string(), |w| w.to_string())
}

fn fallback_note(s: &ServiceSnapshot) -> Option<String> {
    if !s.on_fallback {
        return None;
    }
    Some(match &s.fallback {
        Some(f) => format!(
            "  (no real server is up: new connections go to the fallback {})",
            f.address
        ),
        None => "  (no real server is up and no fallback: new connections are dropped)".into(),
    })
}

/// The fallback as a real line: weight 1 while the service is on it, else 0.
fn fallback_as_real(s: &ServiceSnapshot) -> Option<RealSnapshot> {
    s.fallback.as_ref().map(|f| RealSnapshot {
        effective_weight: f.effective_weight.map(|_| u32::from(s.on_fallback)),
        ..f.clone()
    })
}

/// The table of `ipvsadm -Ln`, with a health column. `now_ms` (Unix milliseconds) dates
/// the last checks.
pub fn render_table(snap: &Snapshot, now_ms: u64) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "IP Virtual Server version lvs-{} (size={})",
        snap.version, snap.conn_table_size
    );
    let _ = writeln!(o, "Prot LocalAddress:Port Scheduler Flags");
    let _ = writeln!(
        o,
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health"
    );
    for s in &snap.services {
        let _ = writeln!(o, "{} {}{}", service_head(s), s.scheduler, flags(s));
        for r in &s.reals {
            let _ = writeln!(
                o,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<9} {}",
                r.address.to_string(),
                r.forward,
                weight(r),
                r.active_connections,
                r.inactive_connections,
                health(r, now_ms)
            );
        }
        if let Some(f) = fallback_as_real(s) {
            let _ = writeln!(
                o,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<9} {}",
                f.address.to_string(),
                f.forward,
                weight(&f),
                f.active_connections,
                f.inactive_connections,
                if s.on_fallback {
                    "fallback (active)"
                } else {
                    "fallback"
                }
            );
        }
        if let Some(note) = fallback_note(s) {
            let _ = writeln!(o, "{note}");
        }
    }
    o.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

/// The head of ipvsadm's counter tables (`--stats`, `--rate`), with the five column names.
fn counter_head(o: &mut String, snap: &Snapshot, columns: [&str; 5]) {
    let _ = writeln!(
        o,
        "IP Virtual Server version lvs-{} (size={})",
        snap.version, snap.conn_table_size
    );
    let [a, b, c, d, e] = columns;
    let _ = writeln!(
        o,
        "{:<33} {a:>8} {b:>8} {c:>8} {d:>8} {e:>8}",
        "Prot LocalAddress:Port"
    );
    let _ = writeln!(o, "  -> RemoteAddress:Port");
}

/// One line of a counter table: connections, packets in, packets out, bytes in, bytes out.
fn counter_row(
    o: &mut String,
    label: &str,
    [conns, packets, out_packets, bytes, out_bytes]: [u64; 5],
) {
    let _ = writeln!(
        o,
        "{label:<33} {conns:>8} {packets:>8} {out_packets:>8} {bytes:>8} {out_bytes:>8}"
    );
}

fn real_label(r: &RealSnapshot) -> String {
    format!("  -> {}", r.address)
}

/// The table of `ipvsadm -Ln --stats`: totals since each entry entered the data plane.
pub fn render_stats(snap: &Snapshot) -> String {
    let totals = |c: &CounterSnapshot| {
        [
            c.connections,
            c.packets,
            c.out_packets,
            c.bytes,
            c.out_bytes,
        ]
    };
    let mut o = String::new();
    counter_head(
        &mut o,
        snap,
        ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"],
    );
    for s in &snap.services {
        counter_row(&mut o, &service_head(s), totals(&s.counters));
        for r in s.reals.iter().chain(s.fallback.iter()) {
            counter_row(&mut o, &real_label(r), totals(&r.counters));
        }
    }
    o
}

fn per_second(now: u64, before: u64, secs: f64) -> u64 {
    (now.saturating_sub(before) as f64 / secs).round() as u64
}

/// The table of `ipvsadm -Ln --rate`, from two snapshots (`before` taken first).
pub fn render_rate(before: &Snapshot, now: &Snapshot) -> String {
    let secs = (now.taken_unix_ms.saturating_sub(before.taken_unix_ms) as f64 / 1000.0).max(0.001);
    let rates = |c: &CounterSnapshot, p: &CounterSnapshot| {
        [
            per_second(c.connections, p.connections, secs),
            per_second(c.packets, p.packets, secs),
            per_second(c.out_packets, p.out_packets, secs),
            per_second(c.bytes, p.bytes, secs),
            per_second(c.out_bytes, p.out_bytes, secs),
        ]
    };
    let mut o = String::new();
    counter_head(&mut o, now, ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]);
    for s in &now.services {
        let prev = before
            .services
            .iter()
            .find(|p| p.address == s.address && p.protocol == s.protocol);
        let pc = prev.map(|p| p.counters).unwrap_or_default();
        counter_row(&mut o, &service_head(s), rates(&s.counters, &pc));
        for r in s.reals.iter().chain(s.fallback.iter()) {
            let rc = prev
                .and_then(|p| {
                    p.reals
                        .iter()
                        .chain(p.fallback.iter())
                        .find(|x| x.address == r.address)
                })
                .map(|x| x.counters)
                .unwrap_or_default();
            counter_row(&mut o, &real_label(r), rates(&r.counters, &rc));
        }
    }
    o
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::agent::snapshot::{AgentCounters, CounterSnapshot, HealthSnapshot, LastCheck};

    fn real(addr: &str, w: Option<u32>, conns: u64, state: &str) -> RealSnapshot {
        RealSnapshot {
            address: addr.parse().unwrap(),
            forward: "Route".into(),
            weight: w.unwrap_or(1),
            effective_weight: w,
            counters: CounterSnapshot {
                packets: conns * 5,
                bytes: conns * 400,
                connections: conns,
                ..CounterSnapshot::default()
            },
            active_connections: conns / 100,
            inactive_connections: conns / 300,
            upper_threshold: 0,
            lower_threshold: 0,
            overloaded: false,
            health: Some(HealthSnapshot {
                state: state.into(),
                soft_failing: false,
                consecutive_failures: 0,
                failure_count: 3,
                maintenance: false,
                last: Some(LastCheck {
                    ok: state == "up",
                    check: "connect".into(),
                    message: if state == "up" {
                        "connected".into()
                    } else {
                        "connection refused".into()
                    },
                    latency_s: 0.0012,
                    at_unix_ms: 1_000_000,
                }),
            }),
        }
    }

    /// A snapshot: one wrr service, 3 reals (the third down), a fallback; a persistent one on
    /// its fallback.
    pub(crate) fn sample() -> Snapshot {
        let mut soft = real("198.18.0.12:80", Some(2), 200, "up");
        if let Some(h) = soft.health.as_mut() {
            h.soft_failing = true;
            h.consecutive_failures = 1;
        }
        let fallback = RealSnapshot {
            health: None,
            ..real("198.18.0.50:80", Some(1), 0, "up")
        };
        Snapshot {
            version: "0.1.0".into(),
            conn_table_size: 262144,
            taken_unix_ms: 1_005_000,
            conn_table_entries: 5,
            services: vec![
                ServiceSnapshot {
                    address: "198.18.0.100:80".parse().unwrap(),
                    protocol: "TCP".into(),
                    fwmark: None,
                    sched_flags: None,
                    one_packet: false,
                    scheduler: "wrr".into(),
                    persistent_s: None,
                    netmask_prefix: 32,
                    quiescent: false,
                    name: None,
                    on_fallback: false,
                    counters: CounterSnapshot {
                        packets: 3000,
                        bytes: 240_000,
                        connections: 600,
                        ..CounterSnapshot::default()
                    },
                    reals: vec![
                        real("198.18.0.11:80", Some(3), 300, "up"),
                        soft,
                        real("198.18.0.13:80", None, 100, "down"),
                    ],
                    fallback: Some(fallback.clone()),
                },
                ServiceSnapshot {
                    address: "198.18.0.100:443".parse().unwrap(),
                    protocol: "TCP".into(),
                    fwmark: None,
                    sched_flags: None,
                    one_packet: false,
                    scheduler: "sh".into(),
                    persistent_s: Some(300),
                    netmask_prefix: 32,
                    quiescent: true,
                    name: None,
                    on_fallback: true,
                    counters: CounterSnapshot::default(),
                    reals: vec![real("198.18.0.11:443", Some(0), 0, "down")],
                    fallback: Some(RealSnapshot {
                        address: "198.18.0.50:443".parse().unwrap(),
                        ..fallback
                    }),
                },
            ],
            drops: BTreeMap::from([
                ("no_destination".to_string(), 4),
                ("bad_destination".to_string(), 0),
            ]),
            agent: AgentCounters {
                map_updates: 7,
                map_update_failures: 0,
                reloads: 2,
                reload_failures: 1,
                check_errors: 3,
            },
        }
    }

    #[test]
    fn table_looks_like_ipvsadm_with_health() {
        let t = render_table(&sample(), 1_005_000);
        let want = "\
IP Virtual Server version lvs-0.1.0 (size=262144)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health
TCP  198.18.0.100:80 wrr
  -> 198.18.0.11:80               Route   3      3          1         up  connect ok: connected (1.2ms, 5s ago)
  -> 198.18.0.12:80               Route   2      2          0         soft-failing (1/3)  connect ok: connected (1.2ms, 5s ago)
  -> 198.18.0.13:80               Route   -      1          0         down  connect failed: connection refused (1.2ms, 5s ago)
  -> 198.18.0.50:80               Route   0      0          0         fallback
TCP  198.18.0.100:443 sh persistent 300
  -> 198.18.0.11:443              Route   0      0          0         down  connect failed: connection refused (1.2ms, 5s ago)
  -> 198.18.0.50:443              Route   1      0          0         fallback (active)
  (no real server is up: new connections go to the fallback 198.18.0.50:443)
";
        assert_eq!(t, want, "got:\n{t}");
    }

    #[test]
    fn stats_columns() {
        let t = render_stats(&sample());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
        );
        assert_eq!(
            lines[3],
            "TCP  198.18.0.100:80                   600     3000        0   240000        0"
        );
        assert_eq!(
            lines[4],
            "  -> 198.18.0.11:80                    300     1500        0   120000        0"
        );
        // Columns line up with the header.
        assert_eq!(lines[1].len(), lines[3].len());
        assert_eq!(lines[1].len(), lines[4].len());
    }

    /// A NATed service's replies fill the out columns (ipvsadm's OutPkts, OutBytes), in
    /// `--stats` and `--rate`, and `ipvsadm -Ln --stats` shows the same.
    #[test]
    fn nat_replies_fill_the_out_columns() {
        let before = sample();
        let mut now = sample();
        let svc = &mut now.services[0];
        (svc.counters.out_packets, svc.counters.out_bytes) = (2800, 4_000_000);
        let real = &mut svc.reals[0].counters;
        (real.out_packets, real.out_bytes) = (1400, 2_000_000);
        let lines: Vec<String> = render_stats(&now).lines().map(String::from).collect();
        assert_eq!(
            lines[3],
            "TCP  198.18.0.100:80                   600     3000     2800   240000  4000000"
        );
        assert_eq!(
            lines[4],
            "  -> 198.18.0.11:80                    300     1500     1400   120000  2000000"
        );
        now.taken_unix_ms += 2000;
        let t = render_rate(&before, &now);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[3],
            "TCP  198.18.0.100:80                     0        0     1400        0  2000000"
        );
        let views = crate::ipvsadm::output::views(&now);
        let s = views
            .iter()
            .find(|v| v.addr.port() == 80)
            .expect("the :80 service");
        assert_eq!((s.stats.outpkts, s.stats.outbytes), (2800, 4_000_000));
        let r = s
            .reals
            .iter()
            .find(|r| r.addr.ip().to_string() == "198.18.0.11")
            .expect("real1");
        assert_eq!((r.stats.outpkts, r.stats.outbytes), (1400, 2_000_000));
    }

    #[test]
    fn rate_is_the_difference_per_second() {
        let before = sample();
        let mut now = sample();
        now.taken_unix_ms += 2000;
        now.services[0].counters.connections += 100;
        now.services[0].reals[0].counters.packets += 1000;
        let t = render_rate(&before, &now);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].contains("CPS"), "{t}");
        assert_eq!(
            lines[3],
            "TCP  198.18.0.100:80                    50        0        0        0        0"
        );
        assert_eq!(
            lines[4],
            "  -> 198.18.0.11:80                      0      500        0        0        0"
        );
    }

    #[test]
    fn persistent_with_a_netmask() {
        let mut s = sample();
        s.services[1].netmask_prefix = 24;
        assert!(
            render_table(&s, 0)
                .contains("TCP  198.18.0.100:443 sh persistent 300 mask 255.255.255.0\n")
        );
    }

    #[test]
    fn snapshot_json_round_trips() {
        let s = sample();
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Snapshot>(&j).unwrap(), s);
    }
}
