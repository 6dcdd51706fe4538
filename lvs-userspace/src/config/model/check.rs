//! How a virtual service checks its reals ([`CheckSpec`]): the kind of check, the protocol it
//! speaks, and where its sockets leave from.

use std::{net::IpAddr, time::Duration};

use super::StatusCodes;

/// Kind of health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckType {
    /// TCP connect (UDP: an ICMP-aware datagram probe).
    Connect,
    /// The service's negotiate check (request, expect receive).
    Negotiate,
    /// ICMP echo.
    Ping,
    /// `checkcommand`, called with ldirectord's arguments.
    External,
    /// Always up, never checked.
    On,
    /// Always down.
    Off,
    /// N connect checks, then one negotiate check, repeating.
    ConnectThenNegotiate(u32),
    /// keepalived's `FILE_CHECK`: the number in the file `request` names (a `track_file`),
    /// read as `track_weight` and `track_reverse` say.
    File,
}

/// The protocol spoken by a negotiate check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckService {
    /// HTTP.
    Http,
    /// HTTPS.
    Https,
    /// Send `request`, expect `receive` in the answer.
    SimpleTcp,
    /// A DNS query for `request`; `receive` expected in the answer when given.
    Dns,
    /// No negotiate protocol: a negotiate check is a connect check.
    None,
    /// SMTP (also `submission` and keepalived's `SMTP_CHECK`): greeting, EHLO (HELO), QUIT.
    Smtp,
    /// POP3: greeting, and `login` when set.
    Pop,
    /// POP3 over TLS.
    Pops,
    /// IMAP4: greeting, and `login` when set.
    Imap,
    /// IMAP4 over TLS.
    Imaps,
    /// NNTP: a 2xx greeting.
    Nntp,
    /// FTP: log in (`login`, default anonymous), fetch `request` in passive mode, match
    /// `receive` on it.
    Ftp,
    /// keepalived's `UDP_CHECK`: send `request` (hex) in a datagram; `receive` (hex, `X`
    /// nibbles wild) set means a reply beginning with it is required (empty: any reply).
    Udp,
    /// SIP: an `OPTIONS` request for `sip:login`; a `SIP/2.0 200` answer is up.
    Sip,
    /// RADIUS: an Access-Request for `login`/`passwd` signed with `secret`; any answer whose
    /// Response Authenticator is right is up (Accept, Reject or Challenge).
    Radius,
    /// HTTP through the real as a proxy: `request` is an absolute `http://` URL fetched
    /// through it; an answer among `status_codes` (2xx unless told; matching `receive`) is
    /// up.
    HttpProxy,
    /// LDAP: a bind (as `login`/`passwd`, else anonymous), then a base search of the DN in
    /// `request`; one entry (whose DN matches `receive`) is up.
    Ldap,
    /// LDAP over TLS (`ldaps`), certificates verified only with `verify_tls`.
    Ldaps,
    /// MySQL: log in (`login`, `passwd`, `database`) and run `request`; a row back is up.
    Mysql,
    /// PostgreSQL: log in (`login`, `passwd`, `database`) and run `request`; a row back is up.
    Pgsql,
}

impl CheckService {
    /// Whether a negotiate check of this service logs in with `login` and `passwd`.
    pub fn logs_in(self) -> bool {
        matches!(
            self,
            CheckService::Pop
                | CheckService::Pops
                | CheckService::Imap
                | CheckService::Imaps
                | CheckService::Ftp
                | CheckService::Sip
                | CheckService::Radius
                | CheckService::Ldap
                | CheckService::Ldaps
                | CheckService::Mysql
                | CheckService::Pgsql
        )
    }
}

/// HTTP method of http/https checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// GET (ldirectord's default).
    Get,
    /// HEAD.
    Head,
}

/// How an external check's command becomes a program and its arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CommandStyle {
    /// ldirectord's `checkcommand`: its words, then the virtual address and port and the
    /// real's address and port.
    #[default]
    Ldirectord,
    /// keepalived's `misc_path`: split with quotes and escapes as keepalived splits it,
    /// nothing appended (TOML `checkcommand_style = "keepalived"`).
    Keepalived,
}

/// How one virtual service checks its reals, with every default applied.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckSpec {
    /// The kind of check.
    pub check_type: CheckType,
    /// The negotiate protocol.
    pub service: CheckService,
    /// `checkport`: the port checked, if not the real's.
    pub port: Option<u16>,
    /// `request`: URL path (http), payload (simpletcp), or name (dns).
    pub request: Option<String>,
    /// `receive`: a regular expression the answer must match.
    pub receive: Option<String>,
    /// `httpmethod`.
    pub http_method: HttpMethod,
    /// `virtualhost`: the Host header.
    pub virtual_host: Option<String>,
    /// Verify TLS certificates for https.
    pub verify_tls: bool,
    /// `checkcommand` for external checks.
    pub command: Option<String>,
    /// How `command` is run.
    pub command_style: CommandStyle,
    /// keepalived's `misc_dynamic`: an external check's exit code 1 means down, 0 up, and
    /// 2-255 up with the real's weight set to the code minus 2.
    pub dynamic_weight: bool,
    /// `login` (pop, imap; lvs keeps it for the checks that log in).
    pub login: Option<String>,
    /// `passwd`, with `login`.
    pub passwd: Option<String>,
    /// `database` (mysql, pgsql).
    pub database: Option<String>,
    /// `secret`: the RADIUS shared secret.
    pub secret: Option<String>,
    /// `dns_type` (keepalived's DNS_CHECK `type`): the record type a dns check asks for (its
    /// number); when set, a NOERROR answer over UDP passes, as keepalived's check.
    pub dns_type: Option<u16>,
    /// `digest` (keepalived's `url { digest }`): the MD5 of the body an http(s) check wants,
    /// 32 lower-case hex digits.
    pub digest: Option<String>,
    /// The statuses an http(s) check passes on (keepalived's `url { status_code }`, TOML
    /// `status_codes`): 200-299 unless set.
    pub status_codes: StatusCodes,
    /// Whether an http(s) check follows a redirect to the same real and judges the answer it
    /// ends on (ldirectord, whose LWP does; TOML's default), or takes the 3xx as the status
    /// (keepalived, which never follows one).
    pub follow_redirects: bool,
    /// `checkinterval`.
    pub interval: Duration,
    /// `checktimeout` (connect, ping, external).
    pub timeout: Duration,
    /// `negotiatetimeout` (negotiate).
    pub negotiate_timeout: Duration,
    /// `failurecount`: consecutive failures that take a real down.
    pub failure_count: u32,
    /// keepalived's `delay_before_retry` (`retry_interval`): while a real that is up has
    /// failed checks short of `failure_count`, the next check comes this long after the last
    /// one instead of at `interval`. `None`: always `interval` (ldirectord).
    pub retry_interval: Option<Duration>,
    /// `successcount`: consecutive successes that bring it back.
    pub success_count: u32,
    /// A file check's `weight` (keepalived's FILE_CHECK/track_file): 0, a non-zero value in
    /// the file is down; else the value times it is added to the real's weight.
    pub track_weight: i32,
    /// A file check's `reverse`: 0 is down (weight 0), or the product is subtracted.
    pub track_reverse: bool,
    /// keepalived's `connect_ip` (TOML `check_address`): every real is checked at this
    /// address (on `port`, else the real's port) instead of its own; the real stays the real.
    pub address: Option<IpAddr>,
    /// Where the check's sockets leave from (keepalived's `bindto`, `bind_port`, `bind_if`,
    /// `fwmark`).
    pub source: CheckSource,
}

/// The source side of a check's sockets: every socket a check opens (TCP, UDP, ICMP) is
/// marked, tied to the interface and bound as set here. The default leaves it all to the
/// kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CheckSource {
    /// keepalived's `bindto` (TOML `check_source`): the source address.
    pub address: Option<IpAddr>,
    /// keepalived's `bind_port` (TOML `check_source_port`): the source port.
    pub port: Option<u16>,
    /// keepalived's `bind_if` (TOML `check_interface`): `SO_BINDTODEVICE`, and the scope of
    /// an IPv6 link-local source or target.
    pub interface: Option<String>,
    /// keepalived's checker `fwmark` (TOML `check_mark`): `SO_MARK` on the sockets.
    pub mark: Option<u32>,
}

impl CheckSource {
    /// Whether nothing is set (the kernel chooses everything).
    pub fn is_default(&self) -> bool {
        *self == CheckSource::default()
    }

    /// These settings where set, `base`'s elsewhere.
    pub fn over(&self, base: &CheckSource) -> CheckSource {
        CheckSource {
            address: self.address.or(base.address),
            port: self.port.or(base.port),
            interface: self.interface.clone().or_else(|| base.interface.clone()),
            mark: self.mark.or(base.mark),
        }
    }
}
