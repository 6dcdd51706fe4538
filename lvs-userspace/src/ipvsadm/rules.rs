//! The table the `ipvsadm` command edits: services and reals as ipvsadm made them, and the
//! changes ([`Change`]) its commands make, with IPVS's answers when one cannot be made
//! ("Service already exists", "No such destination"...).
//!
//! The agent keeps one [`Rules`] beside its configuration file (see `agent::commanded`); the
//! ipvsadm-save reader (`config::ipvsadm`) builds one from a file's lines. Either way it
//! becomes configuration model through the one resolver of the readers, so a scheduler or a
//! method lvs lacks is refused with the same words everywhere.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::args::{ArgError, Command, Invocation, Method, Proto, ServiceArg};

/// A service as ipvsadm names it: protocol, address and port, or a firewall mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Key {
    /// TCP or UDP (TCP for a firewall mark).
    pub proto: Proto,
    /// VIP and port; for a firewall mark the unspecified address of its family, port 0.
    pub addr: SocketAddr,
    /// `-f MARK`: a firewall-mark service (`-6`: `addr` is IPv6).
    #[serde(default)]
    pub fwmark: Option<u32>,
}

impl Key {
    /// The key of `-t`/`-u` VIP:PORT.
    pub fn addr(proto: Proto, addr: SocketAddr) -> Key {
        Key {
            proto,
            addr,
            fwmark: None,
        }
    }

    /// The key of `-f MARK` (`-6`: `v6`).
    pub fn mark(mark: u32, v6: bool) -> Key {
        let ip: std::net::IpAddr = if v6 {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        };
        Key {
            proto: Proto::Tcp,
            addr: SocketAddr::new(ip, 0),
            fwmark: Some(mark),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(m) = self.fwmark {
            let v6 = if self.addr.is_ipv6() { " IPv6" } else { "" };
            return write!(f, "FWM {m}{v6}");
        }
        let p = match self.proto {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
        };
        write!(f, "{p} {}", self.addr)
    }
}

/// A real server of a [`Service`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Real {
    /// Address and port.
    pub addr: SocketAddr,
    /// `-g`, `-i` or `-m`.
    pub method: Method,
    /// `-w` (default 1).
    pub weight: u32,
    /// `-x`: the upper connection threshold (0: none).
    #[serde(default)]
    pub u_threshold: u32,
    /// `-y`: the lower connection threshold (0: none).
    #[serde(default)]
    pub l_threshold: u32,
    /// The line it was read from (a rules file), or 0.
    #[serde(default)]
    pub line: usize,
}

/// A virtual service made by ipvsadm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Protocol, VIP and port.
    pub key: Key,
    /// `-s` (default wlc).
    pub scheduler: String,
    /// `-p`: persistence timeout in seconds.
    pub persistent: Option<u32>,
    /// `-M`: persistence netmask prefix (`None`: a host, /32 or /128).
    pub netmask: Option<u8>,
    /// `-b`: scheduler flags (mh's `mh-port,mh-fallback`).
    #[serde(default)]
    pub flags: Option<String>,
    /// `-o`: one-packet scheduling.
    #[serde(default)]
    pub one_packet: bool,
    /// Its reals, in the order they were added.
    pub reals: Vec<Real>,
    /// The line it was read from (a rules file), or 0.
    #[serde(default)]
    pub line: usize,
}

/// One change ipvsadm makes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// `-A`.
    AddService(Service),
    /// `-E`: every setting replaced (those not given take their defaults, as in IPVS).
    EditService(Service),
    /// `-D`.
    DeleteService(Key),
    /// `-a`.
    AddReal(Key, Real),
    /// `-e`: every setting replaced (weight 1 and -g when not given, as in IPVS).
    EditReal(Key, Real),
    /// `-d`.
    DeleteReal(Key, SocketAddr),
    /// `-C`.
    Clear,
    /// `--set tcp tcpfin udp` (0: unchanged).
    SetTimeouts([u32; 3]),
}

/// Why a change cannot be made: IPVS's answers (libipvs's `ipvs_strerror`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RuleError {
    /// `-A` of a service that exists.
    #[error("Service already exists")]
    ServiceExists,
    /// `-E`/`-D` of a service that does not.
    #[error("No such service")]
    NoSuchService,
    /// `-a`/`-e`/`-d` on a service that does not exist.
    #[error("Service not defined")]
    ServiceNotDefined,
    /// `-a` of a real the service has.
    #[error("Destination already exists")]
    DestinationExists,
    /// `-e`/`-d` of a real the service has not.
    #[error("No such destination")]
    NoSuchDestination,
}

impl Change {
    /// The change an ipvsadm command line makes, `None` for the commands that change nothing
    /// (-L, -S, -h...). What lvs cannot do is refused here, in words (exit code 2).
    pub fn from_invocation(inv: &Invocation) -> Result<Option<Change>, ArgError> {
        let refuse = |m: String| Err(ArgError::Fail { message: m });
        let key = match inv.service {
            Some(ServiceArg::Addr(proto, addr)) => Some(Key::addr(proto, addr)),
            Some(ServiceArg::Sctp(_)) => {
                return refuse("SCTP services are not supported: lvs balances TCP and UDP".into());
            }
            Some(ServiceArg::Fwmark(mark, v6)) => Some(Key::mark(mark, v6)),
            None => None,
        };
        let service = |key: Key| -> Result<Service, ArgError> {
            if let Some(pe) = &inv.pe {
                return Err(ArgError::Fail {
                    message: format!("persistence engine `{pe}` (--pe) is not supported by lvs"),
                });
            }
            if let Some(f) = &inv.sched_flags
                && inv.scheduler.as_deref() != Some("mh")
            {
                return Err(ArgError::Fail {
                    message: format!(
                        "scheduler flags (-b {f}) are not supported by lvs but mh's \
                         (mh-port, mh-fallback)"
                    ),
                });
            }
            Ok(Service {
                key,
                scheduler: inv
                    .scheduler
                    .clone()
                    .unwrap_or_else(|| super::args::DEFAULT_SCHEDULER.into()),
                persistent: inv.persistent,
                netmask: inv.netmask,
                flags: inv.sched_flags.clone(),
                one_packet: inv.one_packet,
                reals: Vec::new(),
                line: 0,
            })
        };
        let real = || -> Result<Real, ArgError> {
            Ok(Real {
                addr: inv.real.expect("the command table makes -r compulsory"),
                method: inv.method.unwrap_or(Method::Route),
                weight: inv.weight.unwrap_or(1),
                u_threshold: inv.u_threshold.unwrap_or(0),
                l_threshold: inv.l_threshold.unwrap_or(0),
                line: 0,
            })
        };
        let key = || key.expect("the command table makes the service compulsory");
        Ok(Some(match inv.command {
            Command::AddService => Change::AddService(service(key())?),
            Command::EditService => Change::EditService(service(key())?),
            Command::DeleteService => Change::DeleteService(key()),
            Command::AddReal => Change::AddReal(key(), real()?),
            Command::EditReal => Change::EditReal(key(), real()?),
            Command::DeleteReal => Change::DeleteReal(
                key(),
                inv.real.expect("the command table makes -r compulsory"),
            ),
            Command::Clear => Change::Clear,
            Command::SetTimeouts => {
                Change::SetTimeouts(inv.timeouts.expect("--set reads three values"))
            }
            Command::StartDaemon | Command::StopDaemon => {
                return refuse(
                    "the connection sync daemon is not supported: lvs's connection table is \
                     not synchronised between directors"
                        .into(),
                );
            }
            _ => return Ok(None),
        }))
    }

    /// The service the change concerns, if one.
    pub fn key(&self) -> Option<Key> {
        match self {
            Change::AddService(s) | Change::EditService(s) => Some(s.key),
            Change::DeleteService(k)
            | Change::AddReal(k, _)
            | Change::EditReal(k, _)
            | Change::DeleteReal(k, _) => Some(*k),
            Change::Clear | Change::SetTimeouts(_) => None,
        }
    }
}

/// The services ipvsadm made, and the timeouts it set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// The services, in the order they were added.
    pub services: Vec<Service>,
    /// `--set tcp tcpfin udp`, when given (0: unchanged).
    pub timeouts: Option<[u32; 3]>,
}

impl Rules {
    /// The service of `key`.
    pub fn service(&self, key: &Key) -> Option<&Service> {
        self.services.iter().find(|s| s.key == *key)
    }

    /// Makes `change`, as IPVS would.
    pub fn apply(&mut self, change: &Change) -> Result<(), RuleError> {
        let find = |rules: &mut Rules, key: &Key| rules.services.iter().position(|s| s.key == *key);
        match change {
            Change::AddService(s) => {
                if find(self, &s.key).is_some() {
                    return Err(RuleError::ServiceExists);
                }
                self.services.push(s.clone());
            }
            Change::EditService(s) => {
                let i = find(self, &s.key).ok_or(RuleError::NoSuchService)?;
                let old = &mut self.services[i];
                old.scheduler = s.scheduler.clone();
                old.persistent = s.persistent;
                old.netmask = s.netmask;
                old.flags = s.flags.clone();
                old.one_packet = s.one_packet;
            }
            Change::DeleteService(k) => {
                let i = find(self, k).ok_or(RuleError::NoSuchService)?;
                self.services.remove(i);
            }
            Change::AddReal(k, r) => {
                let i = find(self, k).ok_or(RuleError::ServiceNotDefined)?;
                let reals = &mut self.services[i].reals;
                if reals.iter().any(|o| o.addr == r.addr) {
                    return Err(RuleError::DestinationExists);
                }
                reals.push(r.clone());
            }
            Change::EditReal(k, r) => {
                let i = find(self, k).ok_or(RuleError::ServiceNotDefined)?;
                let old = self.services[i]
                    .reals
                    .iter_mut()
                    .find(|o| o.addr == r.addr)
                    .ok_or(RuleError::NoSuchDestination)?;
                old.method = r.method;
                old.weight = r.weight;
                old.u_threshold = r.u_threshold;
                old.l_threshold = r.l_threshold;
            }
            Change::DeleteReal(k, addr) => {
                let i = find(self, k).ok_or(RuleError::ServiceNotDefined)?;
                let reals = &mut self.services[i].reals;
                let j = reals
                    .iter()
                    .position(|o| o.addr == *addr)
                    .ok_or(RuleError::NoSuchDestination)?;
                reals.remove(j);
            }
            Change::Clear => self.services.clear(),
            Change::SetTimeouts(t) => {
                let mut now = self.timeouts.unwrap_or([0; 3]);
                for (n, v) in now.iter_mut().zip(t) {
                    if *v != 0 {
                        *n = *v;
                    }
                }
                self.timeouts = Some(now);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvsadm::args::parse;

    fn change(line: &str) -> Change {
        let words: Vec<&str> = line.split_whitespace().collect();
        Change::from_invocation(&parse(&words).unwrap())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn changes_are_made_as_ipvs_makes_them() {
        let mut r = Rules::default();
        r.apply(&change("-A -t 10.0.0.1:80 -s rr")).unwrap();
        assert_eq!(
            r.apply(&change("-A -t 10.0.0.1:80")),
            Err(RuleError::ServiceExists)
        );
        r.apply(&change("-a -t 10.0.0.1:80 -r 10.0.1.1 -w 3"))
            .unwrap();
        assert_eq!(
            r.apply(&change("-a -t 10.0.0.1:80 -r 10.0.1.1:80")),
            Err(RuleError::DestinationExists)
        );
        assert_eq!(
            r.apply(&change("-a -t 10.0.0.2:80 -r 10.0.1.1")),
            Err(RuleError::ServiceNotDefined)
        );
        // -e without -w: weight 1, as ipvsadm sends its default.
        // -e with -x/-y: the thresholds kept; without them: none, as IPVS's -e sends 0.
        r.apply(&change("-e -t 10.0.0.1:80 -r 10.0.1.1 -x 10 -y 2"))
            .unwrap();
        let real = &r.services[0].reals[0];
        assert_eq!((real.u_threshold, real.l_threshold), (10, 2));
        r.apply(&change("-e -t 10.0.0.1:80 -r 10.0.1.1")).unwrap();
        assert_eq!(r.services[0].reals[0].weight, 1);
        assert_eq!(r.services[0].reals[0].u_threshold, 0);
        assert_eq!(
            r.apply(&change("-d -t 10.0.0.1:80 -r 10.0.1.2")),
            Err(RuleError::NoSuchDestination)
        );
        r.apply(&change("-d -t 10.0.0.1:80 -r 10.0.1.1")).unwrap();
        assert!(r.services[0].reals.is_empty());
        // -E without -s: wlc.
        r.apply(&change("-E -t 10.0.0.1:80 -p")).unwrap();
        assert_eq!(r.services[0].scheduler, "wlc");
        assert_eq!(r.services[0].persistent, Some(360));
        // -E sends the service's whole flags: -o set, then cleared by an -E without it.
        r.apply(&change("-A -u 10.0.0.1:53 -s rr")).unwrap();
        r.apply(&change("-E -u 10.0.0.1:53 -s rr -o")).unwrap();
        assert!(r.services[1].one_packet);
        r.apply(&change("-E -u 10.0.0.1:53 -s rr")).unwrap();
        assert!(!r.services[1].one_packet);
        assert_eq!(
            r.apply(&change("-D -t 10.0.0.1:81")),
            Err(RuleError::NoSuchService)
        );
        r.apply(&change("--set 0 30 0")).unwrap();
        r.apply(&change("--set 100 0 0")).unwrap();
        assert_eq!(r.timeouts, Some([100, 30, 0]));
        r.apply(&change("-C")).unwrap();
        assert!(r.services.is_empty());
    }

    #[test]
    fn firewall_marks_and_mh_flags_are_services() {
        let mut r = Rules::default();
        r.apply(&change("-A -f 3 -s mh -b mh-port,mh-fallback"))
            .unwrap();
        r.apply(&change("-A -f 3 -6 -s rr")).unwrap();
        assert_eq!(
            r.apply(&change("-A -f 3 -s rr")),
            Err(RuleError::ServiceExists)
        );
        r.apply(&change("-a -f 3 -r 10.0.1.1 -i -w 2")).unwrap();
        let s = &r.services[0];
        assert_eq!(s.key, Key::mark(3, false));
        assert_eq!(s.key.to_string(), "FWM 3");
        assert_eq!(s.flags.as_deref(), Some("mh-port,mh-fallback"));
        // No port given: 0, every port the mark's rules match, as IPVS keeps the packet's.
        assert_eq!(s.reals[0].addr, "10.0.1.1:0".parse().unwrap());
        assert_eq!(s.reals[0].method, Method::Tunnel);
        r.apply(&change("-e -f 3 -r 10.0.1.1 -w 5")).unwrap();
        assert_eq!(r.services[0].reals[0].weight, 5);
        r.apply(&change("-E -f 3 -s wlc")).unwrap();
        assert_eq!(r.services[0].scheduler, "wlc");
        assert_eq!(r.services[0].flags, None);
        r.apply(&change("-d -f 3 -r 10.0.1.1")).unwrap();
        r.apply(&change("-D -f 3")).unwrap();
        assert_eq!(r.services.len(), 1);
        assert_eq!(r.services[0].key, Key::mark(3, true));
        assert_eq!(r.apply(&change("-D -f 3")), Err(RuleError::NoSuchService));
    }

    /// `-o` on a UDP service: one-packet scheduling, kept in the rules (and so in `-S`).
    #[test]
    fn one_packet_scheduling_is_taken() {
        let words = ["-A", "-u", "10.0.0.1:53", "-s", "rr", "-o"];
        let Some(Change::AddService(s)) = Change::from_invocation(&parse(&words).unwrap()).unwrap()
        else {
            panic!("not an added service");
        };
        assert!(s.one_packet);
    }

    #[test]
    fn what_lvs_cannot_do_is_refused_in_words() {
        for (line, want) in [
            ("-A -t 10.0.0.1:80 -s sh -b sh-port", "scheduler flags"),
            ("-A -t 10.0.0.1:80 --pe sip", "persistence engine"),
            ("--start-daemon master", "sync daemon"),
        ] {
            let words: Vec<&str> = line.split_whitespace().collect();
            let e = Change::from_invocation(&parse(&words).unwrap()).unwrap_err();
            assert!(e.to_string().contains(want), "{line}: {e}");
            assert_eq!(e.exit_code(), 2);
        }
    }
}
