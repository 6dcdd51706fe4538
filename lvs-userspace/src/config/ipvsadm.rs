//! ipvsadm rules as a configuration: the output of `ipvsadm-save` / `ipvsadm -S` (`-A -t
//! VIP:PORT -s SCHED [-p T] [-M MASK]` and `-a -t VIP:PORT -r RIP:PORT -g|-i|-m -w W` lines),
//! and any list of ipvsadm commands as `ipvsadm -R` reads it (one command a line, the word
//! `ipvsadm` dropped; `-C`, `-E`, `-e`, `-d`, `-D` and `--set` are replayed too).
//!
//! Each line is read by the `ipvsadm` command's own parser ([`crate::ipvsadm::args`]) and
//! made on a [`Rules`] table as IPVS would make it; the table then becomes model through the
//! readers' one resolver (`raw::resolve`), as every reader's does. As in IPVS, nothing is
//! health-checked: every real is always up (`checktype = on`), which the configuration's
//! warnings say (and so `lvs check`).

use std::path::Path;

use super::{
    Config, ConfigError,
    raw::{self, RawConfig, RawReal, RawVirtual, Val},
};
use crate::ipvsadm::{
    args::{self, Proto},
    rules::{Change, Rules},
};

/// The warning every ipvsadm configuration carries.
pub const NOT_CHECKED: &str = "ipvsadm rules: nothing is health-checked; every real server is \
    always up, as in IPVS (write the services in keepalived.conf, ldirectord.cf or TOML to \
    have them checked)";

/// Reads ipvsadm rules (see the module docs).
pub fn parse_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let rules = read_rules(path, text)?;
    let mut config = to_config(path, &rules)?;
    config
        .warnings
        .insert(0, format!("{}: {NOT_CHECKED}", path.display()));
    Ok(config)
}

/// The table the lines of `text` make, each service and real with its line.
pub fn read_rules(path: &Path, text: &str) -> Result<Rules, ConfigError> {
    let mut rules = Rules::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        let Some(words) = args::restore_words(trimmed) else {
            continue;
        };
        let bad = |why: String| ConfigError::invalid(path, n, "ipvsadm", why);
        let inv = args::parse(&words).map_err(|e| bad(e.to_string()))?;
        let change = Change::from_invocation(&inv)
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| {
                bad(format!(
                    "`{trimmed}` changes nothing: a rules file holds ipvsadm commands that make \
                     services and reals (-A, -a, and -E, -e, -D, -d, -C, --set)"
                ))
            })?;
        let change = match change {
            Change::AddService(mut s) => {
                s.line = n;
                Change::AddService(s)
            }
            Change::AddReal(k, mut r) => {
                r.line = n;
                Change::AddReal(k, r)
            }
            c => c,
        };
        rules
            .apply(&change)
            .map_err(|e| bad(format!("{trimmed}: {e}")))?;
    }
    Ok(rules)
}

/// The configuration `rules` make, as read from `path`, checked as every reader's is.
pub fn to_config(path: &Path, rules: &Rules) -> Result<Config, ConfigError> {
    let mut raw = RawConfig::default();
    let first_line = rules.services.first().map_or(1, |s| s.line.max(1));
    if let Some([tcp, tcpfin, udp]) = rules.timeouts {
        let t = |v: u32| (v != 0).then(|| Val::new(u64::from(v), first_line));
        raw.globals.timeout_tcp = t(tcp);
        raw.globals.timeout_tcpfin = t(tcpfin);
        raw.globals.timeout_udp = t(udp);
    }
    for s in &rules.services {
        let line = s.line.max(1);
        // A firewall mark reads as the TOML reader's `fwmark:N` / `fwmark6:N`: its matches
        // come from the host's rules (config::fwmark), as for every reader.
        let address = match s.key.fwmark {
            Some(m) if s.key.addr.is_ipv6() => format!("fwmark6:{m}"),
            Some(m) => format!("fwmark:{m}"),
            None => s.key.addr.to_string(),
        };
        let mut v = RawVirtual::new(Val::new(address, line), None);
        if s.key.fwmark.is_none() {
            v.protocol = Some(Val::new(
                match s.key.proto {
                    Proto::Tcp => "tcp",
                    Proto::Udp => "udp",
                }
                .to_string(),
                line,
            ));
        }
        v.schedflags = s.flags.as_ref().map(|f| Val::new(f.clone(), line));
        v.scheduler = Some(Val::new(s.scheduler.clone(), line));
        v.persistent = s.persistent.map(|p| Val::new(u64::from(p), line));
        v.ops = s.one_packet.then(|| Val::new(true, line));
        v.netmask = s.netmask.map(|m| Val::new(m.to_string(), line));
        v.checktype = Some(Val::new("on".to_string(), line));
        v.service = Some(Val::new("none".to_string(), line));
        for r in &s.reals {
            v.reals.push(RawReal {
                line: if r.line == 0 { line } else { r.line },
                address: r.addr.to_string(),
                family: None,
                method: Some(r.method.config_name().to_string()),
                weight: Some(u64::from(r.weight)),
                request: None,
                receive: None,
                digest: None,
                checkcommand: None,
                check_address: None,
                check_source: None,
                check_source_port: None,
                check_interface: None,
                check_mark: None,
                notify_up: None,
                notify_down: None,
                u_threshold: Some((line, u64::from(r.u_threshold))),
                l_threshold: Some((line, u64::from(r.l_threshold))),
            });
        }
        raw.virtuals.push(v);
    }
    let config = raw::resolve(path, raw)?;
    super::validate(&config)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CheckType, Forwarding, Protocol, Scheduler};

    fn read(text: &str) -> Result<Config, String> {
        parse_str(Path::new("ipvsadm.rules"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn ipvsadm_save_output_is_a_config_with_every_real_up() {
        let c = read(
            "-A -t 172.27.223.81:80 -s wrr -p 600 -M 255.255.255.0\n\
             -a -t 172.27.223.81:80 -r 172.27.223.102:80 -g -w 1\n\
             -a -t 172.27.223.81:80 -r 172.27.223.103:80 -g -w 3\n\
             -A -u [2001:db8::1]:53 -s rr\n\
             -a -u [2001:db8::1]:53 -r [2001:db8::10]:53 -g -w 0\n",
        )
        .unwrap();
        assert_eq!(c.virtuals.len(), 2);
        let v = &c.virtuals[0];
        assert_eq!(v.vip, "172.27.223.81:80".parse().unwrap());
        assert_eq!(v.protocol, Protocol::Tcp);
        assert_eq!(v.scheduler, Scheduler::Wrr);
        assert_eq!(v.persistent, Some(std::time::Duration::from_secs(600)));
        assert_eq!(v.netmask_prefix, 24);
        assert_eq!(v.check.check_type, CheckType::On);
        assert_eq!(v.reals.len(), 2);
        assert_eq!(v.reals[1].weight, 3);
        assert_eq!(v.reals[1].forwarding, Forwarding::Gate);
        assert_eq!(v.reals[1].location.line, 3);
        let w = &c.virtuals[1];
        assert_eq!(w.protocol, Protocol::Udp);
        assert_eq!(w.netmask_prefix, 128);
        assert_eq!(w.reals[0].weight, 0);
        assert!(
            c.warnings[0].contains("nothing is health-checked"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn lines_are_replayed_as_ipvsadm_restore_does() {
        let c = read(
            "ipvsadm -A -t 10.0.0.1:80 -s rr\n\
             \n\
             ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.1:8080 -g\n\
             ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.2 -w 5\n\
             ipvsadm -e -t 10.0.0.1:80 -r 10.0.1.2 -w 2\n\
             ipvsadm -d -t 10.0.0.1:80 -r 10.0.1.1\n\
             --set 600 0 0\n",
        )
        .unwrap();
        let v = &c.virtuals[0];
        assert_eq!(v.reals.len(), 1);
        // -g forces the real's port to the service's.
        assert_eq!(v.reals[0].addr, "10.0.1.2:80".parse().unwrap());
        assert_eq!(v.reals[0].weight, 2);
        assert_eq!(c.globals.timeouts.tcp, 600);
        assert_eq!(c.globals.timeouts.tcpfin, 120);
    }

    #[test]
    fn firewall_marks_resolve_from_the_host_rules_as_every_reader() {
        let text = "-A -f 3 -s mh -b mh-port\n\
                    -a -f 3 -r 10.0.1.1 -g -w 2\n\
                    -a -f 3 -r 10.0.1.2:8080 -i\n";
        let mut c = read(text).unwrap();
        let f = c.virtuals[0].fwmark.clone().unwrap();
        assert_eq!((f.mark, f.v6), (3, false));
        assert!(matches!(c.virtuals[0].scheduler, Scheduler::Mh(m) if m.port && !m.fallback));
        assert_eq!(c.virtuals[0].reals[1].forwarding, Forwarding::Tunnel);
        let rules = crate::config::fwmark::HostRules::from_outputs(
            "*mangle\n-A PREROUTING -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j MARK \
             --set-mark 3\nCOMMIT\n",
            "",
            None,
        )
        .unwrap();
        crate::config::fwmark::derive(&mut c, &rules).unwrap();
        assert_eq!(c.virtuals[0].vip, "10.0.0.1:80".parse().unwrap());
        assert_eq!(c.virtuals[0].protocol, Protocol::Tcp);
        // A mark no rule sets: the error names it and how to add the rule.
        let mut c = read("-A -f 4 -6 -s rr\n").unwrap();
        assert!(c.virtuals[0].fwmark.as_ref().unwrap().v6);
        let e = crate::config::fwmark::derive(&mut c, &rules)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ipvsadm.rules:1: virtual: firewall mark 4: no rule")
                && e.contains("ip6tables -t mangle -A PREROUTING"),
            "{e}"
        );
    }

    #[test]
    fn what_lvs_lacks_is_refused_at_its_line() {
        for (text, want) in [
            (
                "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr\n",
                "ipvsadm.rules:2: ipvsadm: -A -t 10.0.0.1:80 -s rr: Service already exists",
            ),
            (
                "-A -t 10.0.0.1:80 -s nonesuch\n",
                "ipvsadm.rules:1: scheduler: unknown scheduler `nonesuch`",
            ),
            (
                "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1 -b\n",
                "ipvsadm.rules:2: ipvsadm: -b on a real server is DPVS's full-NAT",
            ),
            (
                "-A -t 10.0.0.1:80 -s rr\n--add-laddr -z 10.0.0.2 -t 10.0.0.1:80 -F dpdk0\n",
                "ipvsadm.rules:2: ipvsadm: --add-laddr is an option of DPVS's ipvsadm",
            ),
            (
                "-L -n\n",
                "ipvsadm.rules:1: ipvsadm: `-L -n` changes nothing",
            ),
        ] {
            let e = read(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}:\n{e}\nwanted: {want}");
        }
    }
}
