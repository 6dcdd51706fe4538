//! The configuration model: what both readers (TOML and ldirectord.cf) produce, with every
//! default already applied. Everything downstream (checks, the data plane, `lvs check`,
//! `lvs convert`) works from this and never from the text.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

pub use super::status_codes::StatusCodes;

/// Where a thing was written: file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A whole configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub source: PathBuf,
    /// Global settings.
    pub globals: Globals,
    /// The virtual services, in file order.
    pub virtuals: Vec<VirtualService>,
    /// Warnings for directives that were accepted but have no effect here (file:line: why).
    pub warnings: Vec<String>,
    /// The host names the configuration names instead of addresses, and what the system
    /// resolver made of them, in file order.
    pub resolved: Vec<ResolvedName>,
}

/// A host name written where an address goes, and the address it was resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedName {
    /// Where it was written.
    pub location: Location,
    /// The directive or key (`virtual`, `real`, `fallback`...).
    pub key: String,
    /// The name as written.
    pub name: String,
    /// The address lvs uses for it.
    pub address: IpAddr,
}

impl std::fmt::Display for ResolvedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} {}: resolved to {} (a host name, looked up by the system resolver: \
             /etc/hosts or DNS)",
            self.location, self.key, self.name, self.address
        )
    }
}

/// Where the agent logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output (the default, and always under `supervised`).
    Stdout,
    /// A file, appended to.
    File(PathBuf),
    /// A syslog facility such as `local0`.
    Syslog(String),
}

/// In which phases of the agent state changes are mailed (ldirectord's `emailalertstatus`,
/// which filters on the daemon's phase, not on the direction of the change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlertStatus {
    /// While the agent starts (the first checks).
    pub starting: bool,
    /// While the agent stops.
    pub stopping: bool,
    /// While it runs (ordinary failures and recoveries).
    pub running: bool,
    /// While it reloads its config (ldirectord's `reloading`, written `sent` here).
    pub sent: bool,
}

impl AlertStatus {
    /// ldirectord's default: `all`.
    pub const ALL: AlertStatus = AlertStatus {
        starting: true,
        stopping: true,
        running: true,
        sent: true,
    };
}

/// Global settings, with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Globals {
    /// Default `checkinterval` (ldirectord: 10 s).
    pub check_interval: Duration,
    /// Default `checktimeout` (ldirectord: negotiatetimeout if set, else 5 s).
    pub check_timeout: Duration,
    /// Default `negotiatetimeout` (ldirectord: checktimeout if set, else 30 s).
    pub negotiate_timeout: Duration,
    /// Default `failurecount` (1).
    pub failure_count: u32,
    /// Default `successcount` (1). An lvs addition against flapping.
    pub success_count: u32,
    /// Global IPv4 fallback.
    pub fallback: Option<Fallback>,
    /// Global IPv6 fallback.
    pub fallback6: Option<Fallback>,
    /// Global `fallbackcommand`.
    pub fallback_command: Option<String>,
    /// Default `quiescent` (ldirectord's code: no).
    pub quiescent: bool,
    /// Reload when the file changes.
    pub autoreload: bool,
    /// Where to log.
    pub log: LogTarget,
    /// `supervised`: stay in the foreground and log to stdout.
    pub supervised: bool,
    /// `emailalert` recipients.
    pub email_alert: Vec<String>,
    /// `emailalertfrom`.
    pub email_alert_from: Option<String>,
    /// `emailalertfreq`: repeat an alert for an unrecovered real this often (0: never).
    pub email_alert_freq: Duration,
    /// `emailalertstatus`.
    pub email_alert_status: AlertStatus,
    /// `smtp`: the mail server (host or host:port).
    pub smtp: Option<String>,
    /// `smtp_starttls`, `smtp_username`, `smtp_password_file`, `smtp_ca_file` (lvs additions):
    /// how alert mail is protected and authenticated.
    pub smtp_security: SmtpSecurity,
    /// `notify`: a command run on every state change with the real, the service and the new
    /// state (as keepalived's notify scripts).
    pub notify: Option<String>,
    /// `maintenancedir`: a file named after a real forces it down.
    pub maintenance_dir: Option<PathBuf>,
    /// `cleanstop`: detach the data plane on a clean exit (default yes).
    pub cleanstop: bool,
    /// `callback`: a command run after each reload.
    pub callback: Option<String>,
    /// Interface to attach to (lvs addition; default: the one holding the VIPs).
    pub interface: Option<String>,
    /// Verify TLS certificates in https checks (lvs addition; ldirectord never does).
    pub verify_tls: bool,
    /// Prometheus metrics listen address (lvs addition; off when `None`).
    pub metrics: Option<SocketAddr>,
    /// `allow_empty` (lvs addition): a reload to a config with no virtual service is applied
    /// only when that config says this; otherwise it is refused (a file caught while an editor
    /// rewrites it looks empty, and would empty the director).
    pub allow_empty: bool,
    /// `extra_macs` (lvs addition): Ethernet destinations balanced beside the interface's own
    /// MAC, such as a VRRP virtual MAC (`00:00:5e:00:01:VRID`). A frame to any other MAC is
    /// left to the kernel.
    pub extra_macs: Vec<[u8; 6]>,
    /// `timeout_tcp`, `timeout_tcpfin`, `timeout_udp` (lvs addition, IPVS's
    /// `ipvsadm --set tcp tcpfin udp`): idle timeouts of the connection table, global as
    /// IPVS's are.
    pub timeouts: ConnTimeouts,
    /// `connection_table_size`, `persistence_table_size` (lvs additions): how many flows and
    /// persistence entries the data plane holds. Applied at the start; a restart with other
    /// sizes migrates the pinned tables.
    pub tables: TableSizes,
}

/// The sizes of the data plane's flow tables (see the README's limits section for what each
/// costs in memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSizes {
    /// Flows in the connection table: a power of two (a size asked for is rounded up), at
    /// least [`TableSizes::MIN_CONNECTIONS`], at most [`TableSizes::MAX_CONNECTIONS`].
    pub connections: u32,
    /// Entries of the persistence table (one per client and persistent service).
    pub persistence: u32,
}

impl TableSizes {
    /// The default connection table: 4,194,304 flows (256 MiB). At IPVS's 900 s ESTABLISHED
    /// timeout it holds every flow of about 4,600 new connections a second; past that, a new
    /// flow takes the place of the least recently seen flow of its bucket.
    pub const DEFAULT_CONNECTIONS: u32 = 1 << 22;
    /// The default persistence table: 262,144 entries.
    pub const DEFAULT_PERSISTENCE: u32 = 1 << 18;
    /// The smallest connection table.
    pub const MIN_CONNECTIONS: u32 = 1 << 10;
    /// The largest connection table: 67,108,864 flows (4 GiB).
    pub const MAX_CONNECTIONS: u32 = 1 << 26;
    /// The smallest persistence table.
    pub const MIN_PERSISTENCE: u32 = 1 << 10;
    /// The largest persistence table.
    pub const MAX_PERSISTENCE: u32 = 1 << 24;
    /// Bytes of memory one flow of the connection table takes.
    pub const CONNECTION_BYTES: u64 = 64;
    /// Bytes of kernel memory one persistence entry takes (an LRU hash element with its key
    /// and value: the map's `memlock` as Linux 6.18 reports it on x86-64).
    pub const PERSISTENCE_BYTES: u64 = 104;

    /// The memory the connection table takes.
    pub fn connection_bytes(&self) -> u64 {
        self.connections as u64 * Self::CONNECTION_BYTES
    }

    /// The memory the persistence table takes (about).
    pub fn persistence_bytes(&self) -> u64 {
        self.persistence as u64 * Self::PERSISTENCE_BYTES
    }
}

impl Default for TableSizes {
    fn default() -> Self {
        TableSizes {
            connections: Self::DEFAULT_CONNECTIONS,
            persistence: Self::DEFAULT_PERSISTENCE,
        }
    }
}

/// STARTTLS and AUTH for alert mail (lvs additions; ldirectord sends plain SMTP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmtpSecurity {
    /// `smtp_starttls`.
    pub starttls: StartTls,
    /// `smtp_username`: AUTH (PLAIN or LOGIN) as this user; `None`: no AUTH.
    pub username: Option<String>,
    /// `smtp_password_file`: the file whose first line is the password (read at each
    /// delivery; never written into the configuration, `lvs check` or a log).
    pub password_file: Option<PathBuf>,
    /// `smtp_ca_file`: PEM certificates trusted for the server's certificate besides the
    /// built-in web roots.
    pub ca_file: Option<PathBuf>,
}

/// `smtp_starttls`: whether alert mail upgrades its connection with STARTTLS (RFC 3207).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StartTls {
    /// Plain SMTP, as ldirectord (the default).
    #[default]
    Never,
    /// STARTTLS when the server offers it, plain otherwise (no AUTH then).
    Opportunistic,
    /// STARTTLS or no mail.
    Required,
}

impl StartTls {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            StartTls::Never => "never",
            StartTls::Opportunistic => "opportunistic",
            StartTls::Required => "required",
        }
    }
}

/// The three connection idle timeouts `ipvsadm --set tcp tcpfin udp` sets, in seconds; every
/// other state keeps IPVS's default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnTimeouts {
    /// ESTABLISHED (IPVS's default 900).
    pub tcp: u32,
    /// FIN_WAIT (default 120).
    pub tcpfin: u32,
    /// UDP (default 300).
    pub udp: u32,
}

impl Default for ConnTimeouts {
    fn default() -> Self {
        ConnTimeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300,
        }
    }
}

impl ConnTimeouts {
    /// Every state's timeout for the data plane.
    pub fn table(&self) -> lvs_common::CtTimeouts {
        lvs_common::CtTimeouts::ipvs(self.tcp, self.tcpfin, self.udp)
    }
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            check_interval: Duration::from_secs(10),
            check_timeout: Duration::from_secs(5),
            negotiate_timeout: Duration::from_secs(30),
            failure_count: 1,
            success_count: 1,
            fallback: None,
            fallback6: None,
            fallback_command: None,
            quiescent: false,
            autoreload: false,
            log: LogTarget::Stdout,
            supervised: false,
            email_alert: Vec::new(),
            email_alert_from: None,
            email_alert_freq: Duration::ZERO,
            email_alert_status: AlertStatus::ALL,
            smtp: None,
            smtp_security: SmtpSecurity::default(),
            notify: None,
            maintenance_dir: None,
            cleanstop: true,
            callback: None,
            interface: None,
            verify_tls: false,
            metrics: None,
            allow_empty: false,
            timeouts: ConnTimeouts::default(),
            extra_macs: Vec::new(),
            tables: TableSizes::default(),
        }
    }
}

/// Transport protocol of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// Scheduler of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    /// Weighted round-robin, the cycle of the kernel's ip_vs_wrr.c.
    Wrr,
    /// Round-robin over reals with weight above 0.
    Rr,
    /// Source-address hashing, weighted.
    Sh,
    /// Least connections (`lc`): least `active*256 + inactive`.
    Lc,
    /// Weighted least connections (`wlc`), ipvsadm's and keepalived's default.
    Wlc,
    /// Shortest expected delay (`sed`): least `(active + 1) / weight`.
    Sed,
    /// Never queue (`nq`): a real without active connections, else as `sed`.
    Nq,
    /// Weighted failover (`fo`): the highest weight.
    Fo,
    /// Weighted overflow (`ovf`): the highest weight whose active count is not above it.
    Ovf,
    /// Destination hashing (`dh`): by the packet's destination address.
    Dh,
    /// Maglev hashing (IPVS's `mh`), with its flags.
    Mh(MhFlags),
}

/// Flags of the `mh` scheduler, as IPVS names them (`ipvsadm -b`, keepalived, `schedflags`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MhFlags {
    /// `mh-port`: hash the client's source port as well as its address.
    pub port: bool,
    /// `mh-fallback`: a flow whose real takes no new connections tries the next slots of its
    /// sequence instead of being dropped.
    pub fallback: bool,
}

impl Scheduler {
    /// Every scheduler lvs implements, by ipvsadm's name (`mh` without flags).
    pub const ALL: [(&'static str, Scheduler); 11] = [
        ("wrr", Scheduler::Wrr),
        ("rr", Scheduler::Rr),
        ("sh", Scheduler::Sh),
        ("lc", Scheduler::Lc),
        ("wlc", Scheduler::Wlc),
        ("sed", Scheduler::Sed),
        ("nq", Scheduler::Nq),
        ("fo", Scheduler::Fo),
        ("ovf", Scheduler::Ovf),
        ("dh", Scheduler::Dh),
        (
            "mh",
            Scheduler::Mh(MhFlags {
                port: false,
                fallback: false,
            }),
        ),
    ];

    /// The scheduler ipvsadm calls `name` (`mh` without flags).
    pub fn from_name(name: &str) -> Option<Scheduler> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, s)| s)
    }

    /// ipvsadm's name.
    pub fn name(self) -> &'static str {
        if let Scheduler::Mh(_) = self {
            return "mh";
        }
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("?", |&(n, _)| n)
    }

    /// The scheduler's flags as ipvsadm writes them (`mh-port,mh-fallback`); empty when none.
    pub fn flags_text(&self) -> String {
        match self {
            Scheduler::Mh(f) => {
                let mut v = Vec::new();
                if f.port {
                    v.push("mh-port");
                }
                if f.fallback {
                    v.push("mh-fallback");
                }
                v.join(",")
            }
            _ => String::new(),
        }
    }
}

/// How packets reach a real server (IPVS's forwarding methods that lvs implements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarding {
    /// Direct routing (`gate`): rewrite the destination MAC.
    Gate,
    /// IP-in-IP tunnel (`ipip`): encapsulate to the real, which may be anywhere routable.
    Tunnel,
    /// Network address translation (`masq`): the destination becomes the real's address and
    /// port (which may differ from the VIP's); the real's replies, routed back through the
    /// director, get the VIP's back.
    Masq,
}

impl Forwarding {
    /// The name ldirectord.cf and the TOML format use (`gate`, `ipip`, `masq`).
    pub fn config_name(self) -> &'static str {
        match self {
            Forwarding::Gate => "gate",
            Forwarding::Tunnel => "ipip",
            Forwarding::Masq => "masq",
        }
    }

    /// The name ipvsadm prints in its Forward column (`Route`, `Tunnel`, `Masq`).
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forwarding::Gate => "Route",
            Forwarding::Tunnel => "Tunnel",
            Forwarding::Masq => "Masq",
        }
    }
}

/// A fallback ("sorry") server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    /// Its address; port 0 means the service's port.
    pub addr: SocketAddr,
    /// How it is reached.
    pub forwarding: Forwarding,
}

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

/// A real server of a virtual service.
#[derive(Clone, Debug, PartialEq)]
pub struct RealServer {
    /// Where it was configured.
    pub location: Location,
    /// Its address; port 0 means the service's port.
    pub addr: SocketAddr,
    /// Weight (default 1); 0 means no new connections.
    pub weight: u32,
    /// How packets reach it.
    pub forwarding: Forwarding,
    /// Per-real `request` override.
    pub request: Option<String>,
    /// Per-real `receive` override.
    pub receive: Option<String>,
    /// Per-real `digest` override (keepalived's `url { digest }` differs per real).
    pub digest: Option<String>,
    /// Per-real `check_address` override (keepalived's `connect_ip` in a real's first
    /// checker): the service's check goes there instead of to the real's address.
    pub check_address: Option<IpAddr>,
    /// Per-real overrides of the service's check source, field by field (keepalived's
    /// `bindto`, `bind_port`, `bind_if`, `fwmark` in a real's first checker when they differ
    /// between reals): for the service's check only.
    pub check_source: CheckSource,
    /// keepalived's `notify_up`: a command run (with no argument added) when the real comes
    /// up.
    pub notify_up: Option<String>,
    /// keepalived's `notify_down`: run when the real goes down.
    pub notify_down: Option<String>,
    /// Connection thresholds (ipvsadm's `-x`/`-y`).
    pub thresholds: Thresholds,
}

/// A real's connection thresholds: ipvsadm's `-x` (upper) and `-y` (lower), keepalived's
/// `uthreshold`/`lthreshold`, ldirectord's `u:N`/`l:N`, TOML's `upper_threshold` /
/// `lower_threshold`. 0 means unset. A real whose connections (active and inactive) reach the
/// upper threshold is overloaded: it takes no new connection, its flows go on, until its count
/// falls below the lower threshold (below ¾ of the upper one when no lower one is set), as
/// IPVS's `IP_VS_DEST_F_OVERLOAD`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    /// Overloaded from this many connections on (0: never).
    pub upper: u32,
    /// No longer overloaded below this many (0: below ¾ of `upper`).
    pub lower: u32,
}

impl Thresholds {
    /// Whether a real with these thresholds and `total` connections (active + inactive) is
    /// overloaded, given whether it `was` (IPVS sets the flag when a connection is bound and
    /// clears it when one is unbound: `ip_vs_bind_dest`, `ip_vs_unbind_dest`).
    pub fn overloaded(self, was: bool, total: u64) -> bool {
        let (upper, lower) = (u64::from(self.upper), u64::from(self.lower));
        if upper == 0 {
            false
        } else if !was {
            total >= upper
        } else if lower != 0 {
            total >= lower
        } else {
            total * 4 >= upper * 3
        }
    }

    /// Whether any threshold is set.
    pub fn any(self) -> bool {
        self.upper != 0 || self.lower != 0
    }
}

/// A virtual service.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    /// Where it was configured.
    pub location: Location,
    /// `servicename`, if any.
    pub name: Option<String>,
    /// `comment`, if any.
    pub comment: Option<String>,
    /// VIP and port; port 0 means every port. For a firewall-mark service, the first of its
    /// matches (the unspecified address of its family until the host's rules are read).
    pub vip: SocketAddr,
    /// Transport protocol (a firewall-mark service: its first match's).
    pub protocol: Protocol,
    /// A firewall-mark service (`virtual=N`, `virtual_server fwmark N`): the mark, and the
    /// VIP/protocol/port matches derived from the host's rules that set it.
    pub fwmark: Option<Fwmark>,
    /// Scheduler.
    pub scheduler: Scheduler,
    /// `persistent` timeout; `None` when not persistent.
    pub persistent: Option<Duration>,
    /// `netmask` for persistence, as a prefix length within the VIP's family.
    pub netmask_prefix: u8,
    /// `ops`: IPVS's one-packet scheduling. Each UDP packet is scheduled on its own and no
    /// connection entry is kept (a UDP or firewall-mark service only).
    pub one_packet: bool,
    /// Real servers, in file order, ranges expanded.
    pub reals: Vec<RealServer>,
    /// The fallback server (the service's own or the global one for its family).
    pub fallback: Option<Fallback>,
    /// `fallbackcommand`.
    pub fallback_command: Option<String>,
    /// `quiescent`: a failed real keeps its established flows (weight 0) instead of being
    /// removed.
    pub quiescent: bool,
    /// Health checking.
    pub check: CheckSpec,
    /// Further checks every real must pass too (keepalived: a real with several checkers, an
    /// `HTTP_GET` with several `url` blocks; TOML `[[virtual.also_check]]`): a real is up only
    /// when all its checks are. The real's `request`/`receive`/`digest` overrides apply to
    /// `check` only.
    pub also_checks: Vec<CheckSpec>,
    /// keepalived's `quorum`: the summed weight of the reals that are up below which the
    /// service turns to its sorry server (1: ldirectord's "no real is up").
    pub quorum: u32,
    /// keepalived's `hysteresis` around the quorum: lost below `quorum - hysteresis`,
    /// regained at `quorum + hysteresis`.
    pub hysteresis: u32,
    /// keepalived's `quorum_up`: a command run (no argument added) when the service regains
    /// its quorum.
    pub quorum_up: Option<String>,
    /// keepalived's `quorum_down`: run when the service loses its quorum.
    pub quorum_down: Option<String>,
}

/// A firewall-mark virtual service: packets the host's netfilter rules mark with `mark`. XDP
/// runs before netfilter, so lvs turns those rules into the matches the data plane looks up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fwmark {
    /// The mark (`virtual=N`).
    pub mark: u32,
    /// IPv6 (`virtual6=N`, keepalived's `ip_family inet6`) rather than IPv4.
    pub v6: bool,
    /// What the rules setting the mark match, sorted, every one pointing to this service
    /// (empty until the host's rules are read: see `config::fwmark`).
    pub matches: Vec<MarkMatch>,
}

/// One destination a mark rule matches: address, protocol and port (0: every port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MarkMatch {
    /// Destination address and port (0: every port).
    pub vip: SocketAddr,
    /// Transport protocol.
    pub protocol: Protocol,
}
