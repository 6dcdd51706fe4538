//! Deriving firewall-mark services from rules.

use std::path::Path;

use super::*;
use crate::config::{Protocol, ldirectord};

const CF: &str = "virtual=3\n\treal=192.168.1.107:80 gate 2\n\treal=192.168.1.109:80 gate\n\
                  \tpersistent=600\n\tchecktype=on\nvirtual=192.168.1.100:8080\n\treal=192.168.1.107\n\tchecktype=on\n";

fn save(rules: &str) -> HostRules {
    HostRules::from_outputs(&format!("*mangle\n{rules}COMMIT\n"), "", None).unwrap()
}

fn derived(rules: &str) -> Result<Config, String> {
    let mut c = ldirectord::parse_str(Path::new("f.cf"), CF).map_err(|e| e.to_string())?;
    derive(&mut c, &save(rules)).map_err(|e| e.to_string())?;
    Ok(c)
}

#[test]
fn a_marked_service_gets_every_match_of_its_rules() {
    let c = derived(
        "-A PREROUTING -d 192.168.1.100/32 -p tcp -m tcp --dport 443 -j MARK --set-xmark 0x3/0xffffffff\n\
         -A PREROUTING -d 192.168.1.100/32 -p tcp -m tcp --dport 80 -j MARK --set-mark 3\n\
         -A PREROUTING -d 192.168.1.200/32 -j MARK --set-xmark 0x4/0xffffffff\n",
    )
    .unwrap();
    let v = &c.virtuals[0];
    let f = v.fwmark.as_ref().unwrap();
    assert_eq!(f.mark, 3);
    let got: Vec<String> = f.matches.iter().map(|m| m.vip.to_string()).collect();
    assert_eq!(got, ["192.168.1.100:80", "192.168.1.100:443"]);
    // The service's key is its first match; persistence stays the service's.
    assert_eq!(v.vip, "192.168.1.100:80".parse().unwrap());
    assert_eq!(v.protocol, Protocol::Tcp);
    assert_eq!(v.persistent, Some(std::time::Duration::from_secs(600)));
    // lvs check names them.
    let out = crate::config::render_check(&c);
    assert!(
        out.contains("virtual fwmark 3  (f.cf:1)\n  marked by this host's rules: tcp 192.168.1.100:80, tcp 192.168.1.100:443\n"),
        "{out}"
    );
}

#[test]
fn a_mark_no_rule_sets_is_an_error_saying_how_to_add_one() {
    let e = derived("-A PREROUTING -d 192.168.1.200/32 -j MARK --set-xmark 0x4/0xffffffff\n")
        .unwrap_err();
    assert!(
        e.starts_with(
            "f.cf:1: virtual: firewall mark 3: no rule of this network namespace sets it"
        ) && e.contains(
            "iptables -t mangle -A PREROUTING -d VIP -p tcp --dport 80 -j MARK --set-mark 3"
        ),
        "{e}"
    );
}

#[test]
fn a_rule_lvs_cannot_express_is_refused_by_name() {
    let e = derived(
        "-A PREROUTING -d 192.168.1.100/32 -p tcp -m tcp --dport 80 -j MARK --set-mark 3\n\
         -A PREROUTING -i eth1 -j MARK --set-xmark 0x3/0xffffffff\n",
    )
    .unwrap_err();
    assert!(
        e.starts_with(
            "f.cf:1: virtual: firewall mark 3: the rule `iptables-save: -A PREROUTING -i eth1 -j MARK"
        ) && e.contains("incoming interface"),
        "{e}"
    );
    // A rule setting a mark no service uses is none of lvs's business.
    derived(
        "-A PREROUTING -d 192.168.1.100/32 -p tcp -j MARK --set-mark 3\n\
         -A PREROUTING -i eth1 -j MARK --set-xmark 0x9/0xffffffff\n",
    )
    .unwrap();
}

#[test]
fn a_destination_of_two_services_is_refused() {
    let e = derived("-A PREROUTING -d 192.168.1.100/32 -p tcp -m multiport --dports 80,8080 -j MARK --set-mark 3\n")
        .unwrap_err();
    assert!(
        e.starts_with("f.cf:6: virtual: tcp 192.168.1.100:8080 is a destination of both this service and the one at f.cf:1"),
        "{e}"
    );
    // Every port of the VIP beside a service on one port: a warning (IPVS would differ).
    let c = derived("-A PREROUTING -d 192.168.1.100/32 -p tcp -j MARK --set-mark 3\n").unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w
                .contains("firewall mark covers every tcp port of 192.168.1.100, but port 8080")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn a_config_without_marks_runs_no_tool() {
    let mut c = ldirectord::parse_str(
        Path::new("f.cf"),
        "virtual=192.168.1.100:80\n\treal=192.168.1.107\n\tchecktype=on\n",
    )
    .unwrap();
    let before = c.clone();
    // No tool is run for it: an empty set of rules changes nothing either.
    apply_host_rules(&mut c).unwrap();
    derive(&mut c, &HostRules::default()).unwrap();
    assert_eq!(c, before);
}
