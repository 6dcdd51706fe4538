//! What makes one check distinct ([`CheckKey`]: targets with equal keys are checked once),
//! built from the config, and a real's state from the states of its checks ([`real_state`]).

use std::{
    hash::{Hash, Hasher},
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use super::HardState;
use crate::config::model::{
    CheckService, CheckSource, CheckSpec, CheckType, HttpMethod, Protocol, RealServer, StatusCodes,
    VirtualService,
};

/// Everything that makes one check distinct. Targets with equal keys are checked once.
///
/// Build it with [`CheckKey::from_config`], which also clears the fields the check type does
/// not use (a connect check ignores `request`...), so that more targets share a check.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The check type.
    pub check_type: CheckType,
    /// The negotiate protocol.
    pub service: CheckService,
    /// The request (per-real override applied).
    pub request: Option<String>,
    /// The receive regex (per-real override applied).
    pub receive: Option<String>,
    /// The http method.
    pub http_method: HttpMethod,
    /// The Host header / TLS server name.
    pub virtual_host: Option<String>,
    /// Verify TLS certificates.
    pub verify_tls: bool,
    /// The external command.
    pub command: Option<String>,
    /// keepalived's `misc_dynamic`: the external command's exit code sets the weight.
    pub dynamic_weight: bool,
    /// `login` and `passwd` (pop, imap).
    pub login: Option<(String, String)>,
    /// `database` (mysql, pgsql).
    pub database: Option<String>,
    /// `secret` (radius).
    pub secret: Option<String>,
    /// The record type a dns check asks for, when configured (keepalived's DNS_CHECK).
    pub dns_type: Option<u16>,
    /// The MD5 (hex) the body of an http(s) check must have.
    pub digest: Option<String>,
    /// The statuses an http(s) or http_proxy check passes on.
    pub status_codes: StatusCodes,
    /// Whether an http(s) check follows redirects (else the 3xx is the status).
    pub follow_redirects: bool,
    /// The virtual service's address, kept only for external checks (their arguments).
    pub virtual_addr: Option<SocketAddr>,
    /// Time between checks.
    pub interval: Duration,
    /// Timeout of connect, ping and external checks.
    pub timeout: Duration,
    /// Timeout of negotiate checks.
    pub negotiate_timeout: Duration,
    /// Consecutive failures that take the real down.
    pub failure_count: u32,
    /// While soft-failing, the time from one check to the next (keepalived's
    /// `delay_before_retry`); `None`: `interval`.
    pub retry_interval: Option<Duration>,
    /// Consecutive successes that bring it back.
    pub success_count: u32,
    /// A file check's weight (keepalived's FILE_CHECK).
    pub track_weight: i32,
    /// A file check's `reverse`.
    pub track_reverse: bool,
    /// The real's configured weight, kept only for a file check with a weight (which adds to
    /// it).
    pub base_weight: u32,
    /// The address checked when it is not the real's (keepalived's `connect_ip`).
    pub address: Option<IpAddr>,
    /// Where the check's sockets leave from (keepalived's `bindto`, `bind_port`, `bind_if`,
    /// `fwmark`).
    pub source: CheckSource,
}

impl Hash for CheckKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The config enums do not derive Hash; hash their discriminants by hand.
        self.real.hash(state);
        self.port.hash(state);
        (self.protocol as u8).hash(state);
        match self.check_type {
            CheckType::Connect => 0u32.hash(state),
            CheckType::Negotiate => 1u32.hash(state),
            CheckType::Ping => 2u32.hash(state),
            CheckType::External => 3u32.hash(state),
            CheckType::On => 4u32.hash(state),
            CheckType::Off => 5u32.hash(state),
            CheckType::ConnectThenNegotiate(n) => {
                6u32.hash(state);
                n.hash(state);
            }
            CheckType::File => 7u32.hash(state),
        }
        (self.service as u8).hash(state);
        self.request.hash(state);
        self.receive.hash(state);
        (self.http_method as u8).hash(state);
        self.virtual_host.hash(state);
        self.verify_tls.hash(state);
        self.command.hash(state);
        self.dynamic_weight.hash(state);
        self.login.hash(state);
        self.database.hash(state);
        self.secret.hash(state);
        self.dns_type.hash(state);
        self.digest.hash(state);
        self.status_codes.hash(state);
        self.follow_redirects.hash(state);
        self.virtual_addr.hash(state);
        self.interval.hash(state);
        self.timeout.hash(state);
        self.negotiate_timeout.hash(state);
        self.failure_count.hash(state);
        self.retry_interval.hash(state);
        self.track_weight.hash(state);
        self.track_reverse.hash(state);
        self.base_weight.hash(state);
        self.success_count.hash(state);
        self.address.hash(state);
        self.source.hash(state);
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

    /// The key checking `real` of `vs` by `c`; `overrides`: the real's own request, receive
    /// and digest replace the spec's.
    fn of_spec(vs: &VirtualService, c: &CheckSpec, real: &RealServer, overrides: bool) -> CheckKey {
        let own = |o: &Option<String>, spec: &Option<String>| {
            o.clone().filter(|_| overrides).or_else(|| spec.clone())
        };
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
        CheckKey {
            real: real_addr,
            port,
            protocol: vs.protocol,
            check_type: c.check_type,
            service: c.service,
            request: own(&real.request, &c.request),
            receive: own(&real.receive, &c.receive),
            http_method: c.http_method,
            virtual_host: c.virtual_host.clone(),
            verify_tls: c.verify_tls,
            command: c.command.clone(),
            dynamic_weight: c.dynamic_weight,
            login: c
                .login
                .clone()
                .map(|l| (l, c.passwd.clone().unwrap_or_default())),
            database: c.database.clone(),
            secret: c.secret.clone(),
            dns_type: c.dns_type,
            digest: own(&real.digest, &c.digest),
            status_codes: c.status_codes.clone(),
            follow_redirects: c.follow_redirects,
            virtual_addr: Some(vs.vip),
            interval: c.interval,
            timeout: c.timeout,
            negotiate_timeout: c.negotiate_timeout,
            failure_count: c.failure_count,
            success_count: c.success_count,
            retry_interval: c.retry_interval,
            track_weight: c.track_weight,
            track_reverse: c.track_reverse,
            base_weight: real.weight,
            address: real
                .check_address
                .filter(|_| overrides)
                .or(c.address)
                .filter(|a| *a != real.addr.ip()),
            source: if overrides {
                real.check_source.over(&c.source)
            } else {
                c.source.clone()
            },
        }
        .normalized()
    }

    /// Clears the fields the check type does not use.
    pub fn normalized(mut self) -> CheckKey {
        // A file check's file is its request.
        let file = (self.check_type == CheckType::File)
            .then(|| self.request.clone())
            .flatten();
        let negotiates = matches!(
            self.check_type,
            CheckType::Negotiate | CheckType::ConnectThenNegotiate(_)
        );
        if !negotiates || self.service == CheckService::None {
            self.request = None;
            self.receive = None;
            self.http_method = HttpMethod::Get;
            self.virtual_host = None;
            self.verify_tls = false;
            self.negotiate_timeout = Duration::ZERO;
            if !negotiates {
                self.service = CheckService::None;
            }
        } else if !matches!(self.service, CheckService::Http | CheckService::Https) {
            self.http_method = HttpMethod::Get;
            if !matches!(
                self.service,
                CheckService::Pops | CheckService::Imaps | CheckService::Ldaps
            ) {
                self.virtual_host = None;
                self.verify_tls = false;
            }
        } else if self.service == CheckService::Http {
            self.verify_tls = false;
        }
        if !negotiates || !self.service.logs_in() {
            self.login = None;
        }
        if !negotiates || !matches!(self.service, CheckService::Mysql | CheckService::Pgsql) {
            self.database = None;
        }
        if !negotiates || self.service != CheckService::Radius {
            self.secret = None;
        }
        if !negotiates || !matches!(self.service, CheckService::Http | CheckService::Https) {
            self.digest = None;
        }
        if !negotiates
            || !matches!(
                self.service,
                CheckService::Http | CheckService::Https | CheckService::HttpProxy
            )
        {
            self.status_codes = StatusCodes::default();
        }
        if !negotiates || !matches!(self.service, CheckService::Http | CheckService::Https) {
            self.follow_redirects = true;
        }
        if !negotiates || self.service != CheckService::Dns {
            self.dns_type = None;
        }
        if matches!(
            self.check_type,
            CheckType::External | CheckType::On | CheckType::Off | CheckType::File
        ) {
            // No socket of its own.
            self.address = None;
            self.source = CheckSource::default();
        }
        if self.check_type == CheckType::File {
            // Nothing of a network check applies.
            self.request = file;
            self.port = 0;
            self.protocol = Protocol::Tcp;
            if self.track_weight == 0 {
                self.base_weight = 0;
            }
        } else {
            self.track_weight = 0;
            self.track_reverse = false;
            self.base_weight = 0;
        }
        if self.check_type != CheckType::External {
            self.command = None;
            self.dynamic_weight = false;
            self.virtual_addr = None;
        }
        if matches!(
            self.check_type,
            CheckType::Ping | CheckType::On | CheckType::Off
        ) {
            self.port = 0;
            self.protocol = Protocol::Tcp;
        }
        if matches!(self.check_type, CheckType::On | CheckType::Off) {
            self.timeout = Duration::ZERO;
        }
        self
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
