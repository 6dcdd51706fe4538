//! What tunnelled reals need of the director: forwarding enabled on the interface the balancer
//! is attached to. The data plane asks the kernel's FIB for each tunnelled packet's next hop
//! (`bpf_fib_lookup`), and the kernel answers that helper only for packets that came in on an
//! interface with forwarding on (`net.ipv4.conf.IF.forwarding`, `net.ipv6.conf.IF.forwarding`);
//! otherwise every tunnelled packet is dropped and counted (`no_route`). NATed reals (`masq`)
//! need the same: both directions of a NATed flow take their next hop from the FIB.

use std::path::Path;

use crate::config::{Config, model::Forwarding};

/// The families (`ipv4`, `ipv6`) of VIPs with a tunnelled or NATed real or fallback.
fn tunnelled_families(config: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    for v in &config.virtuals {
        let routed = |f: Forwarding| matches!(f, Forwarding::Tunnel | Forwarding::Masq);
        let tunnelled = v.reals.iter().any(|r| routed(r.forwarding))
            || v.fallback.as_ref().is_some_and(|f| routed(f.forwarding));
        let family = if v.vip.is_ipv4() { "ipv4" } else { "ipv6" };
        if tunnelled && !out.contains(&family) {
            out.push(family);
        }
    }
    out
}

/// The sysctls that must be 1 for `config`'s tunnelled reals and are not, as
/// `net.ipvN.conf.IF.forwarding` names (under `proc_sys`, normally `/proc/sys`).
pub fn missing(config: &Config, interface: &str, proc_sys: &Path) -> Vec<String> {
    tunnelled_families(config)
        .into_iter()
        .filter(|family| {
            let path = proc_sys.join(format!("net/{family}/conf/{interface}/forwarding"));
            std::fs::read_to_string(path).map_or(true, |s| s.trim() != "1")
        })
        .map(|family| format!("net.{family}.conf.{interface}.forwarding"))
        .collect()
}

/// Logs an error for each sysctl [`missing`] names.
pub fn check(config: &Config, interface: &str) {
    for name in missing(config, interface, Path::new("/proc/sys")) {
        tracing::error!(
            "{name} is not 1: tunnelled and NATed packets are dropped (counted as no_route), because \
             the kernel's FIB lookup for XDP answers only with forwarding on; set it \
             (sysctl -w {name}=1)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ldirectord::parse_str;

    #[test]
    fn only_families_with_a_tunnelled_real_are_named() {
        let dir = crate::testdir::TestDir::new("tunnel-fwd");
        for (family, v) in [("ipv4", "0\n"), ("ipv6", "1\n")] {
            let d = dir.join(format!("net/{family}/conf/eth0"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("forwarding"), v).unwrap();
        }
        let cf = Path::new("l.cf");
        let both = "virtual=10.0.0.1:80\n\treal=10.0.1.2:80 ipip\n\
                    virtual6=[fd00::1]:80\n\treal6=[fd00:1::2]:80 ipip\n\
                    virtual=10.0.0.1:81\n\treal=10.0.0.2:81 gate\n";
        assert_eq!(
            missing(&parse_str(cf, both).unwrap(), "eth0", &dir),
            vec!["net.ipv4.conf.eth0.forwarding".to_string()]
        );
        let gate_only = parse_str(cf, "virtual=10.0.0.1:80\n\treal=10.0.1.2:80 gate\n").unwrap();
        assert!(missing(&gate_only, "eth0", &dir).is_empty());
        // An interface without the sysctl (absent) counts as off.
        assert_eq!(
            missing(&parse_str(cf, both).unwrap(), "eth9", &dir).len(),
            2
        );
    }
}
