//! Firewall-mark services: which packets carry mark N is decided by the host's netfilter
//! rules, and XDP runs before netfilter. So lvs reads those rules (`iptables-save -t mangle`,
//! `ip6tables-save -t mangle`, `nft -j list ruleset`, in the network namespace it runs in)
//! and turns every rule setting N into the VIP/protocol/port matches the data plane looks up,
//! all pointing to the one service (so persistence covers every port of it, as in IPVS).
//!
//! A rule setting a used mark that lvs cannot express (source-based, interface-based,
//! negated, too wide...) is refused naming the rule; a used mark no rule sets is an error
//! naming the mark and how to add the rule. The agent reads the rules again every
//! [`POLL_EVERY`] and applies a change as a reload.

use std::{collections::BTreeMap, process::Command, time::Duration};

use super::{
    Config, ConfigError, MAX_VIRTUALS,
    fwmark_rules::{MarkRule, parse_iptables_save, parse_nft_json},
    model::MarkMatch,
    protocol_name,
};

/// How often the agent reads the host's mark rules again.
pub const POLL_EVERY: Duration = Duration::from_secs(3);

/// Why the host's rules could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FwmarkError {
    /// A tool could not be run (other than not installed).
    #[error("running {tool}: {source}")]
    Run {
        /// The command.
        tool: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A tool failed.
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        /// The command.
        tool: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it said.
        stderr: String,
    },
    /// nft's output could not be read.
    #[error("nft -j list ruleset: {reason}")]
    Nft {
        /// Why.
        reason: String,
    },
}

/// The rules of the host that set marks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostRules {
    rules: Vec<MarkRule>,
}

/// Runs `tool args`; `None` when it is not installed.
fn run(tool: &str, args: &[&str]) -> Result<Option<String>, FwmarkError> {
    let name = format!("{tool} {}", args.join(" "));
    match Command::new(tool).args(args).output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FwmarkError::Run { tool: name, source }),
        Ok(o) if !o.status.success() => Err(FwmarkError::Failed {
            tool: name,
            status: o.status,
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        }),
        Ok(o) => Ok(Some(String::from_utf8_lossy(&o.stdout).into_owned())),
    }
}

impl HostRules {
    /// Reads the rules of the network namespace this process runs in. A tool that is not
    /// installed contributes no rule.
    pub fn read() -> Result<HostRules, FwmarkError> {
        let mut rules = Vec::new();
        if let Some(t) = run("iptables-save", &["-t", "mangle"])? {
            rules.extend(parse_iptables_save(&t, false));
        }
        if let Some(t) = run("ip6tables-save", &["-t", "mangle"])? {
            rules.extend(parse_iptables_save(&t, true));
        }
        if let Some(t) = run("nft", &["-j", "list", "ruleset"])? {
            rules.extend(parse_nft_json(&t).map_err(|reason| FwmarkError::Nft { reason })?);
        }
        Ok(HostRules { rules })
    }

    /// Rules from tool outputs (iptables-save, ip6tables-save, nft -j list ruleset).
    pub fn from_outputs(
        iptables: &str,
        ip6tables: &str,
        nft_json: Option<&str>,
    ) -> Result<HostRules, FwmarkError> {
        let mut rules = parse_iptables_save(iptables, false);
        rules.extend(parse_iptables_save(ip6tables, true));
        if let Some(j) = nft_json {
            rules.extend(parse_nft_json(j).map_err(|reason| FwmarkError::Nft { reason })?);
        }
        Ok(HostRules { rules })
    }
}

/// Whether `config` has a firewall-mark service.
pub fn has_fwmark(config: &Config) -> bool {
    config.virtuals.iter().any(|v| v.fwmark.is_some())
}

/// Reads the host's rules and derives the matches of every firewall-mark service of
/// `config`; nothing is run when it has none.
pub fn apply_host_rules(config: &mut Config) -> Result<(), ConfigError> {
    let Some(first) = config.virtuals.iter().find(|v| v.fwmark.is_some()) else {
        return Ok(());
    };
    let rules = HostRules::read().map_err(|e| ConfigError::Invalid {
        location: first.location.clone(),
        key: "virtual".into(),
        reason: format!("firewall-mark service: cannot read the host's rules that set marks: {e}"),
    })?;
    derive(config, &rules)
}

/// Sets the matches of every firewall-mark service of `config` from `rules`.
pub fn derive(config: &mut Config, rules: &HostRules) -> Result<(), ConfigError> {
    if has_fwmark(config) {
        // A rule whose mark is computed (`meta mark set ct mark`...) may set any mark.
        for r in rules.rules.iter().filter(|r| r.mark == 0) {
            let why = r.matches.as_ref().err().cloned().unwrap_or_default();
            push_once(
                &mut config.warnings,
                format!(
                    "{}: virtual: the rule `{}` is not read: {why}; lvs cannot tell which packets \
                 it marks",
                    config.source.display(),
                    r.text
                ),
            );
        }
    }
    for v in &mut config.virtuals {
        let Some(fw) = &mut v.fwmark else { continue };
        let bad = |reason: String| ConfigError::Invalid {
            location: v.location.clone(),
            key: "virtual".into(),
            reason,
        };
        let mut matches: Vec<MarkMatch> = Vec::new();
        let mut seen = false;
        for r in rules.rules.iter().filter(|r| r.mark == fw.mark) {
            match &r.matches {
                Err(why) => {
                    return Err(bad(format!(
                        "firewall mark {}: the rule `{}` cannot be used: {why}",
                        fw.mark, r.text
                    )));
                }
                Ok(m) => {
                    seen = true;
                    matches.extend(m.iter().filter(|m| m.vip.is_ipv6() == fw.v6));
                }
            }
        }
        matches.sort();
        matches.dedup();
        let family = if fw.v6 { "IPv6" } else { "IPv4" };
        let Some(head) = matches.first().copied() else {
            let (tool, vip) = if fw.v6 {
                ("ip6tables", "VIP6")
            } else {
                ("iptables", "VIP")
            };
            return Err(bad(format!(
                "firewall mark {}: no {}rule of this network namespace sets it for {family} \
                 (lvs reads iptables-save -t mangle, ip6tables-save -t mangle and nft -j list \
                 ruleset); add one, e.g. `{tool} -t mangle -A PREROUTING -d {vip} -p tcp \
                 --dport 80 -j MARK --set-mark {}` or, in an nftables prerouting chain, `ip \
                 daddr {vip} tcp dport 80 meta mark set {}`",
                fw.mark,
                if seen {
                    format!("{family} ")
                } else {
                    String::new()
                },
                fw.mark,
                fw.mark
            )));
        };
        for r in &v.reals {
            if matches.iter().any(|m| m.vip.ip() == r.addr.ip()) {
                return Err(ConfigError::Invalid {
                    location: r.location.clone(),
                    key: "real".into(),
                    reason: format!(
                        "real server {} is a destination of firewall mark {} itself: a real is \
                         another host",
                        r.addr.ip(),
                        fw.mark
                    ),
                });
            }
        }
        fw.matches = matches;
        v.vip = head.vip;
        v.protocol = head.protocol;
    }
    check_disjoint(config)
}

/// Every (VIP, port, protocol) belongs to one service, and all fit the service table.
fn check_disjoint(config: &mut Config) -> Result<(), ConfigError> {
    let mut owner: BTreeMap<MarkMatch, usize> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (i, v) in config.virtuals.iter().enumerate() {
        let own: Vec<MarkMatch> = match &v.fwmark {
            Some(f) => f.matches.clone(),
            None => vec![MarkMatch {
                vip: v.vip,
                protocol: v.protocol,
            }],
        };
        for m in own {
            if let Some(&j) = owner.get(&m) {
                let other = &config.virtuals[j];
                return Err(ConfigError::Invalid {
                    location: v.location.clone(),
                    key: "virtual".into(),
                    reason: format!(
                        "{} {} is a destination of both this service and the one at {} (a \
                         packet must belong to one service)",
                        protocol_name(m.protocol),
                        m.vip,
                        other.location
                    ),
                });
            }
            owner.insert(m, i);
        }
    }
    if owner.len() > MAX_VIRTUALS {
        let v = config.virtuals.iter().find(|v| v.fwmark.is_some());
        return Err(ConfigError::Invalid {
            location: v.map_or_else(
                || config.virtuals[0].location.clone(),
                |v| v.location.clone(),
            ),
            key: "virtual".into(),
            reason: format!(
                "the services and firewall-mark matches come to {} entries of the data plane's \
                 service table, which holds {MAX_VIRTUALS}",
                owner.len()
            ),
        });
    }
    // IPVS looks a marked packet up by its mark first; the data plane by the most specific
    // (VIP, port). They differ where a mark covers every port of a VIP that also has a
    // service of its own on one port.
    for (m, &i) in &owner {
        if m.vip.port() != 0 {
            continue;
        }
        for (o, &j) in owner.range(..) {
            if j != i
                && o.vip.ip() == m.vip.ip()
                && o.protocol == m.protocol
                && o.vip.port() != 0
                && config.virtuals[i].fwmark.is_some()
            {
                warnings.push(format!(
                    "{}: virtual: firewall mark covers every {} port of {}, but port {} goes to \
                     the service at {} (IPVS would give the marked packets to the mark's \
                     service)",
                    config.virtuals[i].location,
                    protocol_name(m.protocol),
                    m.vip.ip(),
                    o.vip.port(),
                    config.virtuals[j].location
                ));
            }
        }
    }
    for w in warnings {
        push_once(&mut config.warnings, w);
    }
    Ok(())
}

/// Adds a warning not yet there (the rules are derived again on every poll).
fn push_once(warnings: &mut Vec<String>, w: String) {
    if !warnings.contains(&w) {
        warnings.push(w);
    }
}

#[cfg(test)]
#[path = "fwmark_tests.rs"]
mod tests;
