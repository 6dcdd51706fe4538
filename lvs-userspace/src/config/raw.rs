//! The readers' common ground: a raw description of a configuration (every value as written,
//! with its line) and [`resolve`], the one place that applies ldirectord's defaults, refuses
//! what lvs cannot do, and builds the [`Config`](super::Config).

/// A value as written, with its 1-based line.
#[derive(Clone, Debug)]
pub(crate) struct Val<T> {
    pub value: T,
    pub line: usize,
}

impl<T> Val<T> {
    pub fn new(value: T, line: usize) -> Self {
        Val { value, line }
    }
}

/// An optional value with its line.
pub(crate) type Opt<T> = Option<Val<T>>;

/// An address family, when the syntax fixes it (`virtual6=`, `real6=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// Global settings as written.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawGlobals {
    pub checktimeout: Opt<u64>,
    pub negotiatetimeout: Opt<u64>,
    pub checkinterval: Opt<u64>,
    pub failurecount: Opt<u64>,
    pub successcount: Opt<u64>,
    pub fallback: Opt<String>,
    pub fallback6: Opt<String>,
    pub fallbackcommand: Opt<String>,
    pub quiescent: Opt<bool>,
    pub autoreload: Opt<bool>,
    pub logfile: Opt<String>,
    pub supervised: Opt<bool>,
    pub emailalert: Opt<Vec<String>>,
    pub emailalertfrom: Opt<String>,
    pub emailalertfreq: Opt<u64>,
    pub emailalertstatus: Opt<String>,
    pub smtp: Opt<String>,
    pub smtp_starttls: Opt<String>,
    pub smtp_username: Opt<String>,
    pub smtp_password_file: Opt<String>,
    pub smtp_ca_file: Opt<String>,
    pub notify: Opt<String>,
    pub maintenancedir: Opt<String>,
    pub cleanstop: Opt<bool>,
    pub callback: Opt<String>,
    pub interface: Opt<String>,
    pub metrics: Opt<String>,
    pub verify_tls: Opt<bool>,
    pub allow_empty: Opt<bool>,
    pub timeout_tcp: Opt<u64>,
    pub timeout_tcpfin: Opt<u64>,
    pub timeout_udp: Opt<u64>,
    pub connection_table_size: Opt<u64>,
    pub persistence_table_size: Opt<u64>,
    pub extra_macs: Opt<Vec<String>>,
}

/// A virtual service as written.
#[derive(Clone, Debug)]
pub(crate) struct RawVirtual {
    /// `VIP:port`, `[VIP6]:port`, a host name, or a fwmark number.
    pub address: Val<String>,
    /// Fixed by `virtual=`/`virtual6=`; `None` (TOML): taken from the address.
    pub family: Option<Family>,
    pub protocol: Opt<String>,
    pub scheduler: Opt<String>,
    /// Scheduler flags, comma- or space-separated, as ipvsadm's `-b` (`mh-port,mh-fallback`).
    pub schedflags: Opt<String>,
    pub persistent: Opt<u64>,
    pub netmask: Opt<String>,
    /// One-packet scheduling (`ops`, ipvsadm's `-o`).
    pub ops: Opt<bool>,
    pub fallback: Opt<String>,
    pub fallbackcommand: Opt<String>,
    pub quiescent: Opt<bool>,
    pub checktype: Opt<String>,
    pub service: Opt<String>,
    pub checkport: Opt<u64>,
    pub request: Opt<String>,
    pub receive: Opt<String>,
    pub httpmethod: Opt<String>,
    pub virtualhost: Opt<String>,
    pub checkcommand: Opt<String>,
    /// keepalived's `misc_dynamic` (TOML `dynamic_weight`): the external check's exit code
    /// sets the real's weight.
    pub dynamic_weight: Opt<bool>,
    /// How `checkcommand` runs: `ldirectord` (its words and four arguments) or `keepalived`
    /// (`misc_path`: split with quotes and escapes, nothing appended).
    pub checkcommand_style: Opt<String>,
    pub login: Opt<String>,
    pub passwd: Opt<String>,
    /// `database` (mysql, pgsql).
    pub database: Opt<String>,
    /// keepalived's `delay_before_retry` (TOML `retry_interval`), seconds.
    pub retry_interval: Opt<u64>,
    /// A file check's `weight` and `reverse` (TOML `track_weight`, `track_reverse`).
    pub track_weight: Opt<i64>,
    pub track_reverse: Opt<bool>,
    /// keepalived's `quorum_up` and `quorum_down` scripts (TOML too).
    pub quorum_up: Opt<String>,
    pub quorum_down: Opt<String>,
    /// `secret` (radius).
    pub secret: Opt<String>,
    pub dns_type: Opt<String>,
    pub digest: Opt<String>,
    /// keepalived's `url { status_code }` (TOML `status_codes`).
    pub status_codes: Opt<String>,
    /// `false` for keepalived's checks, which never follow a redirect (TOML too).
    pub follow_redirects: Opt<bool>,
    /// keepalived's `connect_ip` (TOML `check_address`).
    pub check_address: Opt<String>,
    /// keepalived's `bindto`, `bind_port`, `bind_if`, checker `fwmark` (TOML `check_source`,
    /// `check_source_port`, `check_interface`, `check_mark`).
    pub check_source: Opt<String>,
    pub check_source_port: Opt<u64>,
    pub check_interface: Opt<String>,
    pub check_mark: Opt<u64>,
    pub checkinterval: Opt<u64>,
    pub checktimeout: Opt<u64>,
    pub negotiatetimeout: Opt<u64>,
    pub failurecount: Opt<u64>,
    pub successcount: Opt<u64>,
    pub verify_tls: Opt<bool>,
    pub servicename: Opt<String>,
    pub comment: Opt<String>,
    /// keepalived's `quorum` and `hysteresis` (TOML too).
    pub quorum: Opt<u64>,
    pub hysteresis: Opt<u64>,
    pub reals: Vec<RawReal>,
    /// Further checks every real must pass too, each written as a virtual with only its check
    /// keys set (its address, protocol and reals are the enclosing virtual's).
    pub also_checks: Vec<RawVirtual>,
}

impl RawVirtual {
    /// A virtual with only its address set.
    pub fn new(address: Val<String>, family: Option<Family>) -> Self {
        RawVirtual {
            address,
            family,
            protocol: None,
            scheduler: None,
            schedflags: None,
            persistent: None,
            netmask: None,
            ops: None,
            fallback: None,
            fallbackcommand: None,
            quiescent: None,
            checktype: None,
            service: None,
            checkport: None,
            request: None,
            receive: None,
            httpmethod: None,
            virtualhost: None,
            checkcommand: None,
            dynamic_weight: None,
            checkcommand_style: None,
            login: None,
            passwd: None,
            database: None,
            retry_interval: None,
            quorum_up: None,
            quorum_down: None,
            track_weight: None,
            track_reverse: None,
            secret: None,
            dns_type: None,
            digest: None,
            status_codes: None,
            follow_redirects: None,
            check_address: None,
            check_source: None,
            check_source_port: None,
            check_interface: None,
            check_mark: None,
            checkinterval: None,
            checktimeout: None,
            negotiatetimeout: None,
            failurecount: None,
            successcount: None,
            verify_tls: None,
            servicename: None,
            quorum: None,
            hysteresis: None,
            comment: None,
            reals: Vec::new(),
            also_checks: Vec::new(),
        }
    }
}

/// A real server (or a range of them) as written.
#[derive(Clone, Debug)]
pub(crate) struct RawReal {
    pub line: usize,
    /// `host[:port]`, `[v6][:port]` or `first->last[:port]`.
    pub address: String,
    /// Fixed by `real=`/`real6=`.
    pub family: Option<Family>,
    /// `gate`, `masq`, `ipip`; `None` means gate.
    pub method: Option<String>,
    pub weight: Option<u64>,
    pub request: Option<String>,
    pub receive: Option<String>,
    pub digest: Option<String>,
    /// Its own external check command (keepalived's `misc_path` when it differs per real;
    /// TOML `checkcommand` in the real).
    pub checkcommand: Option<String>,
    /// The check's address for this real (keepalived's `connect_ip`; TOML `check_address`).
    pub check_address: Option<String>,
    /// Its own check source (keepalived's `bindto`... of its first checker; TOML
    /// `check_source`, `check_source_port`, `check_interface`, `check_mark`).
    pub check_source: Opt<String>,
    pub check_source_port: Opt<u64>,
    pub check_interface: Opt<String>,
    pub check_mark: Opt<u64>,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    /// Upper and lower connection thresholds, each with its line.
    pub u_threshold: Option<(usize, u64)>,
    pub l_threshold: Option<(usize, u64)>,
}

/// A whole configuration as written.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawConfig {
    pub globals: RawGlobals,
    pub virtuals: Vec<RawVirtual>,
    /// Warnings the reader already produced (`file:line: key: why`).
    pub warnings: Vec<String>,
}

mod address;
mod check;
mod globals;
mod real;
mod resolve;
mod virtual_service;

pub(crate) use address::{not_a_host_name, service_port};
pub(crate) use check::{DNS_TYPES, dns_type_name, dns_type_number};
pub(crate) use resolve::resolve;
