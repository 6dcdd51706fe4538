//! What makes one check distinct ([`CheckKey`]: targets with equal keys are checked once),
//! built from the config, and a real's state from the states of its checks ([`real_state`]).

use std::{net::SocketAddr, ops::Deref, time::Duration};

use super::HardState;
use crate::config::model::{
    CheckService, CheckSource, CheckSpec, CheckType, HttpMethod, Protocol, RealServer, StatusCodes,
    VirtualService,
};

/// Everything that makes one check distinct. Targets with equal keys are checked once.
///
/// A key is the check's [`CheckSpec`] (`spec`, which it also reads as: `key.interval`) and
/// what it is checking: the real, the port, the service's protocol and, for the check types
/// that use them, the service's address and the real's weight. Every field of the spec is
/// part of the key, so a check the config changes in any way is a new check.
///
/// Build it with [`CheckKey::from_config`], which also clears the fields the check type does
/// not use (a connect check ignores `request`...), so that more targets share a check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckKey {
    /// The real: its address and port (the service's port when configured as 0). Its port is
    /// the one used for `maintenancedir` names and passed to external checks.
    pub real: SocketAddr,
    /// The port checked (`checkport`, else the real's port, else the service's well-known
    /// port). 0 for ping, on and off.
    pub port: u16,
    /// The virtual service's protocol (UDP connect checks probe with a datagram; DNS over TCP
    /// for TCP services).
    pub protocol: Protocol,
    /// The virtual service's address, kept only for external checks (their arguments).
    pub virtual_addr: Option<SocketAddr>,
    /// The real's configured weight, kept only for a file check with a weight (which adds to
    /// it).
    pub base_weight: u32,
    /// The check, with the real's overrides applied (its `request`, `receive`, `digest`,
    /// `check_address` and source settings) and normalized ([`CheckKey::normalized`]): its
    /// `port` is always `None` (the port checked is [`CheckKey::port`]), its `passwd` is set
    /// (empty if not configured) exactly when `login` is, and the fields its type does not
    /// use are cleared.
    pub spec: CheckSpec,
}

impl Deref for CheckKey {
    type Target = CheckSpec;

    /// The check's parameters: `key.interval` is `key.spec.interval`.
    fn deref(&self) -> &CheckSpec {
        &self.spec
    }
}

/// The well-known port of a negotiate service (ldirectord's `ld_service_to_port`).
fn service_port(service: CheckService) -> u16 {
    match service {
        CheckService::Http => 80,
        CheckService::Https => 443,
        CheckService::Dns => 53,
        CheckService::Smtp => 25,
        CheckService::Pop => 110,
        CheckService::Pops => 995,
        CheckService::Imap => 143,
        CheckService::Imaps => 993,
        CheckService::Nntp => 119,
        CheckService::Ftp => 21,
        CheckService::Ldap => 389,
        CheckService::Ldaps => 636,
        CheckService::Radius => 1812,
        CheckService::HttpProxy => 3128,
        CheckService::Mysql => 3306,
        CheckService::Sip => 5060,
        CheckService::Pgsql => 5432,
        CheckService::SimpleTcp | CheckService::None | CheckService::Udp => 0,
    }
}

impl CheckKey {
    /// The key of the service's own check of `real` of `vs`, with the per-real
    /// request/receive/digest overrides applied: the real's identity in the agent's maps.
    pub fn from_config(vs: &VirtualService, real: &RealServer) -> CheckKey {
        CheckKey::of_spec(vs, &vs.check, real, true)
    }

    /// Every check of `real` of `vs`: [`CheckKey::from_config`] first, then the service's
    /// further checks (`also_checks`). The real is up only when all of them are
    /// ([`real_state`]).
    pub fn all_for(vs: &VirtualService, real: &RealServer) -> Vec<CheckKey> {
        std::iter::once(CheckKey::from_config(vs, real))
            .chain(
                vs.also_checks
                    .iter()
                    .map(|c| CheckKey::of_spec(vs, c, real, false)),
            )
            .collect()
    }

    /// The key checking `real` of `vs` by `c`; `overrides`: the real's own request, receive,
    /// digest, check command, address and source replace the spec's.
    fn of_spec(vs: &VirtualService, c: &CheckSpec, real: &RealServer, overrides: bool) -> CheckKey {
        // A firewall-mark service has no port of its own (ldirectord checks its reals on
        // checkport or the service's well-known port).
        let real_port = if real.addr.port() == 0 && vs.fwmark.is_none() {
            vs.vip.port()
        } else {
            real.addr.port()
        };
        let real_addr = SocketAddr::new(real.addr.ip(), real_port);
        let port = c
            .port
            .or((real_port != 0).then_some(real_port))
            .unwrap_or_else(|| service_port(c.service));
        let mut spec = c.clone();
        if overrides {
            spec.request = real.request.clone().or(spec.request);
            spec.receive = real.receive.clone().or(spec.receive);
            spec.digest = real.digest.clone().or(spec.digest);
            spec.command = real.check_command.clone().or(spec.command);
            spec.address = real.check_address.or(spec.address);
            spec.source = real.check_source.over(&c.source);
        }
        spec.address = spec.address.filter(|a| *a != real.addr.ip());
        CheckKey {
            real: real_addr,
            port,
            protocol: vs.protocol,
            virtual_addr: Some(vs.vip),
            base_weight: real.weight,
            spec,
        }
        .normalized()
    }

    /// Clears the fields the check type does not use, the spec's `port` (the key's is the one
    /// checked), and `passwd` without `login` (an unset one with it is empty).
    pub fn normalized(mut self) -> CheckKey {
        let s = &mut self.spec;
        s.port = None;
        // A file check's file is its request.
        let file = (s.check_type == CheckType::File)
            .then(|| s.request.clone())
            .flatten();
        let negotiates = matches!(
            s.check_type,
            CheckType::Negotiate | CheckType::ConnectThenNegotiate(_)
        );
        if !negotiates || s.service == CheckService::None {
            s.request = None;
            s.receive = None;
            s.http_method = HttpMethod::Get;
            s.virtual_host = None;
            s.verify_tls = false;
            s.negotiate_timeout = Duration::ZERO;
            if !negotiates {
                s.service = CheckService::None;
            }
        } else if !matches!(s.service, CheckService::Http | CheckService::Https) {
            s.http_method = HttpMethod::Get;
            if !matches!(
                s.service,
                CheckService::Pops | CheckService::Imaps | CheckService::Ldaps
            ) {
                s.virtual_host = None;
                s.verify_tls = false;
            }
        } else if s.service == CheckService::Http {
            s.verify_tls = false;
        }
        if !negotiates || !s.service.logs_in() {
            s.login = None;
        }
        let passwd = s.passwd.take();
        s.passwd = s.login.is_some().then(|| passwd.unwrap_or_default());
        if !negotiates || !matches!(s.service, CheckService::Mysql | CheckService::Pgsql) {
            s.database = None;
        }
        if !negotiates || s.service != CheckService::Radius {
            s.secret = None;
        }
        if !negotiates || !matches!(s.service, CheckService::Http | CheckService::Https) {
            s.digest = None;
        }
        if !negotiates
            || !matches!(
                s.service,
                CheckService::Http | CheckService::Https | CheckService::HttpProxy
            )
        {
            s.status_codes = StatusCodes::default();
        }
        if !negotiates || !matches!(s.service, CheckService::Http | CheckService::Https) {
            s.follow_redirects = true;
        }
        if !negotiates || s.service != CheckService::Dns {
            s.dns_type = None;
        }
        if matches!(
            s.check_type,
            CheckType::External | CheckType::On | CheckType::Off | CheckType::File
        ) {
            // No socket of its own.
            s.address = None;
            s.source = CheckSource::default();
        }
        if s.check_type == CheckType::File {
            // Nothing of a network check applies.
            s.request = file;
            self.port = 0;
            self.protocol = Protocol::Tcp;
            if s.track_weight == 0 {
                self.base_weight = 0;
            }
        } else {
            s.track_weight = 0;
            s.track_reverse = false;
            self.base_weight = 0;
        }
        if s.check_type != CheckType::External {
            s.command = None;
            s.command_style = crate::config::CommandStyle::default();
            s.dynamic_weight = false;
            self.virtual_addr = None;
        }
        if matches!(
            s.check_type,
            CheckType::Ping | CheckType::On | CheckType::Off
        ) {
            self.port = 0;
            self.protocol = Protocol::Tcp;
        }
        if matches!(s.check_type, CheckType::On | CheckType::Off) {
            s.timeout = Duration::ZERO;
        }
        self
    }

    /// `login` with its `passwd` (empty if none was configured), for the checks that log in.
    pub fn credentials(&self) -> Option<(String, String)> {
        let s = &self.spec;
        s.login
            .clone()
            .map(|l| (l, s.passwd.clone().unwrap_or_default()))
    }
}

/// The state of a real whose checks are `keys` ([`CheckKey::all_for`]), given each check's
/// state: down when one is down, up when all are up, else unknown (keepalived counts a real's
/// failed checkers and has it up only at none).
pub fn real_state(
    keys: &[CheckKey],
    state: impl Fn(&CheckKey) -> Option<HardState>,
) -> Option<HardState> {
    let mut all_up = true;
    for k in keys {
        match state(k) {
            Some(HardState::Down) => return Some(HardState::Down),
            Some(HardState::Up) => {}
            None => all_up = false,
        }
    }
    all_up.then_some(HardState::Up)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::{real, spec, virtual_service};

    /// The key of a service at 192.0.2.1:80 checking its one real, 10.0.0.1:80, with `c`.
    fn key_of(c: CheckSpec) -> CheckKey {
        let v = virtual_service(
            "192.0.2.1:80",
            c,
            vec![real("10.0.0.1:80".parse().unwrap())],
        );
        CheckKey::from_config(&v, &v.reals[0])
    }

    fn pop() -> CheckSpec {
        let mut c = spec(CheckType::Negotiate);
        c.service = CheckService::Pop;
        c.login = Some("u".into());
        c
    }

    #[test]
    fn what_makes_two_checks_the_same() {
        // The port checked, however it was configured.
        let mut c = spec(CheckType::Connect);
        let implicit = key_of(c.clone());
        c.port = Some(80);
        assert_eq!(key_of(c.clone()), implicit, "checkport = the real's port");
        assert_eq!((implicit.port, implicit.spec.port), (80, None));
        c.port = Some(81);
        assert_ne!(key_of(c).port, implicit.port);

        // A password only with a login, and an unset one is empty.
        let mut c = pop();
        let no_passwd = key_of(c.clone());
        c.passwd = Some(String::new());
        assert_eq!(key_of(c.clone()), no_passwd, "no passwd = an empty one");
        assert_eq!(no_passwd.credentials(), Some(("u".into(), String::new())));
        c.passwd = Some("p".into());
        assert_ne!(key_of(c.clone()), no_passwd);
        c.login = None;
        let mut no_login = pop();
        no_login.login = None;
        assert_eq!(key_of(c), key_of(no_login), "passwd alone");
        let mut c = pop();
        c.service = CheckService::Http;
        c.passwd = Some("p".into());
        let http = key_of(c);
        assert_eq!(
            (http.credentials(), &http.passwd),
            (None, &None),
            "http logs in not"
        );

        // Any other parameter of the check is another check.
        let base = spec(CheckType::Connect);
        let mut c = base.clone();
        c.interval += Duration::from_secs(1);
        assert_ne!(key_of(c), key_of(base.clone()));
        let mut c = base.clone();
        c.retry_interval = Some(Duration::from_secs(1));
        assert_ne!(key_of(c), key_of(base.clone()));
        let mut c = base.clone();
        c.failure_count = 2;
        assert_ne!(key_of(c), key_of(base));
    }
}
