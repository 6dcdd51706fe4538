//! Building the lab's topology: the switch (a bridge), the hosts' namespaces and veths, their
//! addresses and sysctls, the VIPs on the director and the reals, and `lvs_pass` on the
//! director's switch port.

use std::process::Command;

use aya::programs::{Xdp, XdpMode};

use super::{
    HOST_CLIENT, HOST_DIRECTOR, HOST_FIRST_REAL, HOST_IFNAME, Lab, LabError, PREFIX_LEN_V4,
    PREFIX_LEN_V6, Result, VIP_V4, VIP_V6, lab_v4, lab_v6,
    netns::{lock, run, sh_in},
    run_in_netns,
};
use crate::neighbour;

impl Lab {
    pub(super) fn build(&mut self) -> Result<()> {
        // The switch.
        let sw = self.switch_ns.clone();
        self.add_netns(&sw)?;
        sh_in(
            &sw,
            "set -e
             echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
             echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
             ip link set lo up
             ip link add br0 type bridge forward_delay 0 stp_state 0 mcast_snooping 0
             ip link set br0 up",
        )?;

        // The hosts.
        let mut hosts = vec![
            (self.client_ns.clone(), "client".to_string(), HOST_CLIENT),
            (self.director_ns.clone(), "dir".to_string(), HOST_DIRECTOR),
        ];
        for (i, r) in self.reals.iter().enumerate() {
            hosts.push((
                r.ns.clone(),
                r.switch_port.clone(),
                HOST_FIRST_REAL + i as u8,
            ));
        }
        for (ns, port, n) in &hosts {
            self.add_netns(ns)?;
            run(Command::new("ip").args([
                "-n",
                &sw,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                HOST_IFNAME,
                "netns",
                ns,
            ]))?;
            sh_in(
                &sw,
                &format!("set -e; ip link set {port} master br0; ip link set {port} up"),
            )?;
            let v4 = lab_v4(*n);
            let v6 = lab_v6(*n);
            sh_in(
                ns,
                &format!(
                    "set -e
                     ip link set lo up
                     for c in all default lo {HOST_IFNAME}; do
                         echo 0 > /proc/sys/net/ipv4/conf/$c/rp_filter
                         echo 0 > /proc/sys/net/ipv6/conf/$c/accept_dad
                     done
                     ethtool -K {HOST_IFNAME} tx off > /dev/null
                     ip addr add {v4}/{PREFIX_LEN_V4} dev {HOST_IFNAME}
                     ip -6 addr add {v6}/{PREFIX_LEN_V6} dev {HOST_IFNAME} nodad
                     ip link set {HOST_IFNAME} up"
                ),
            )?;
        }

        // The director holds the VIPs on eth0 and must announce with its own address. Its IPv6
        // VIP is deprecated (preferred_lft 0) so the kernel never picks it as the source of
        // the director's own connections (health checks): a /128 would otherwise win source
        // selection's longest-prefix rule, and the real would answer itself.
        sh_in(
            &self.director_ns,
            &format!(
                "set -e
                 for c in all {HOST_IFNAME}; do
                     echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce
                 done
                 ip addr add {VIP_V4}/32 dev {HOST_IFNAME}
                 ip -6 addr add {VIP_V6}/128 dev {HOST_IFNAME} nodad preferred_lft 0"
            ),
        )?;
        // The reals hold the VIPs on lo and keep quiet about them.
        for r in &self.reals {
            sh_in(
                &r.ns,
                &format!(
                    "set -e
                     for c in all {HOST_IFNAME}; do
                         echo 1 > /proc/sys/net/ipv4/conf/$c/arp_ignore
                         echo 2 > /proc/sys/net/ipv4/conf/$c/arp_announce
                     done
                     ip addr add {VIP_V4}/32 dev lo
                     ip -6 addr add {VIP_V6}/128 dev lo nodad"
                ),
            )?;
        }

        if self.opts.attach_pass {
            self.attach_pass()?;
        }

        // The servers' content.
        self.write_content()?;
        if self.opts.start_servers {
            for i in 0..self.reals.len() {
                self.start_server(i)?;
            }
        }
        Ok(())
    }

    fn add_netns(&mut self, ns: &str) -> Result<()> {
        run(Command::new("ip").args(["netns", "add", ns]))?;
        self.created.push(ns.to_string());
        Ok(())
    }

    fn attach_pass(&mut self) -> Result<()> {
        let ebpf = run_in_netns(&self.switch_ns, || -> Result<aya::Ebpf> {
            let xdp_err = |step: &str| {
                let step = step.to_string();
                move |e: Box<dyn std::error::Error + Send + Sync>| LabError::Xdp { step, source: e }
            };
            let mut ebpf = aya::Ebpf::load(crate::dataplane::object::EBPF_OBJECT)
                .map_err(|e| xdp_err("loading the embedded object")(Box::new(e)))?;
            let name = lvs_common::limits::program_names::PASS;
            let prog: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| LabError::Xdp {
                    step: format!("finding program {name}"),
                    source: "not in the object".into(),
                })?
                .try_into()
                .map_err(|e| xdp_err("program type")(Box::new(e)))?;
            prog.load()
                .map_err(|e| xdp_err("loading lvs_pass")(Box::new(e)))?;
            let link = neighbour::link_by_name("dir").map_err(|e| LabError::Netlink {
                what: "finding the director's switch port".into(),
                source: e,
            })?;
            prog.attach_to_if_index(link.ifindex, XdpMode::Driver)
                .map_err(|e| {
                    xdp_err("attaching lvs_pass natively to the director's port")(Box::new(e))
                })?;
            Ok(ebpf)
        })??;
        *lock(&self.pass_program) = Some(ebpf);
        Ok(())
    }
}
