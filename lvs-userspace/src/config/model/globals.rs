//! Global settings ([`Globals`]) and their parts: the log target, mail alerts (phases, SMTP
//! security), the connection table's timeouts and the flow tables' sizes.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use super::Fallback;

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
