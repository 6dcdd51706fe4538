//! The TOML reader.
//!
//! # Schema
//!
//! Keys have ldirectord's names and meanings; defaults are ldirectord's. Durations are whole
//! seconds (`checkinterval`, `checktimeout` and `negotiatetimeout`: 1 to 86400). Unknown keys
//! are errors.
//!
//! ```toml
//! # Global settings (all optional).
//! checktimeout = 5          # connect/ping/external timeout; default negotiatetimeout, else 5
//! negotiatetimeout = 30     # negotiate timeout; default checktimeout, else 30
//! checkinterval = 10        # seconds between checks of one real
//! failurecount = 1          # consecutive failures that take a real down
//! successcount = 1          # consecutive successes that bring it back (lvs addition)
//! fallback = "127.0.0.1:80"     # IPv4 sorry server for every IPv4 virtual without its own
//! fallback6 = "[::1]:80"        # IPv6 sorry server
//! fallbackcommand = "/usr/local/bin/sorry"
//! quiescent = false         # a failed real keeps its flows (weight 0) instead of removal
//! autoreload = false        # reload when the file changes
//! logfile = "/var/log/lvs.log"  # a path, or a syslog facility such as "local0"
//! supervised = false
//! emailalert = ["admin@example.org"]   # or one string, comma-separated
//! emailalertfrom = "lvs@example.org"
//! emailalertfreq = 0        # repeat alerts for unrecovered reals (0: never)
//! emailalertstatus = "all"  # all, none, or e.g. "starting,stopping"
//! smtp = "mail.example.org"
//! smtp_starttls = "never"   # lvs addition: never (default) | opportunistic | required
//! smtp_username = "alerts"  # lvs addition: AUTH PLAIN/LOGIN as this user
//! smtp_password_file = "/etc/lvs/smtp.password"  # its first line is the password
//! smtp_ca_file = "/etc/lvs/smtp-ca.pem"          # extra trusted roots for STARTTLS
//! notify = "/usr/local/bin/notify"     # run on every state change
//! maintenancedir = "/etc/lvs/maintenance"
//! cleanstop = true
//! callback = "/usr/local/bin/reloaded"
//! interface = "eth0"        # lvs addition: where to attach XDP
//! metrics = "127.0.0.1:9100"   # lvs addition: Prometheus listener (true: 127.0.0.1:9100)
//! verify_tls = false        # lvs addition: verify certificates in https checks
//! allow_empty = false       # lvs addition: a reload to a config without virtual services is applied
//! timeout_tcp = 900         # idle timeout of an ESTABLISHED connection (ipvsadm --set tcp)
//! timeout_tcpfin = 120      # idle timeout after the client's FIN (ipvsadm --set tcpfin)
//! timeout_udp = 300         # idle timeout of a UDP flow (ipvsadm --set udp)
//! connection_table_size = 4194304   # lvs addition: flows held (power of two; 64 B each)
//! persistence_table_size = 262144   # lvs addition: persistence entries held
//! extra_macs = ["00:00:5e:00:01:0a"]  # lvs addition: balance frames to these MACs too (VRRP vmac)
//!
//! [[virtual]]
//! address = "192.168.6.240:80"   # VIP:port; IPv6 "[2001:db8::5]:80"; port 0: every port
//! protocol = "tcp"          # tcp | udp (default tcp, udp for port 53)
//! scheduler = "wrr"         # wrr | rr | sh | lc | wlc | sed | nq | fo | ovf | dh | mh
//! schedflags = "mh-port,mh-fallback"  # mh only (ipvsadm -b): hash the port too; skip unusable reals
//! persistent = 600          # seconds; omit for no persistence
//! netmask = "255.255.255.255"   # persistence granularity: dotted quad or prefix length
//! ops = false               # one-packet scheduling (UDP): every datagram scheduled on its own
//! fallback = "127.0.0.1:80" # this service's sorry server (overrides the global one)
//! fallbackcommand = "..."
//! quiescent = false
//! checktype = "negotiate"   # connect | negotiate | ping | external | on | off | N
//! service = "http"          # http | https | simpletcp | dns | smtp | submission | pop | pops
//!                           # | imap | imaps | nntp | ftp | none (default: from the port)
//! checkport = 80            # default: the real's port
//! request = "/index.html"
//! receive = "Test Page"     # a regular expression
//! httpmethod = "GET"        # GET | HEAD
//! virtualhost = "www.example.org"
//! checkcommand = "/usr/local/bin/check"   # for checktype = "external"
//! dynamic_weight = true    # external: exit 1 down, 0 up, 2-255 up at weight code-2
//! checkcommand_style = "keepalived"  # external: split as keepalived's misc_path, no arguments added
//! retry_interval = 1        # keepalived's delay_before_retry: seconds between retries
//! # checktype = "file": keepalived's FILE_CHECK, the number in the file `request` names:
//! track_weight = 0          # 0: non-zero is down; else value × weight added to the weight
//! track_reverse = false     # 0 is down (weight 0), or the product subtracted
//! login = "monitor"         # pop(s), imap(s), ftp, ldap(s), sip, radius, mysql, pgsql
//! passwd = "secret"         # with login
//! database = "app"          # mysql, pgsql: the database logged into
//! secret = "shared"         # radius: the shared secret
//! digest = "9b3a0c85a887a256d6939da88aabd8cd"  # http(s): the body's MD5 (keepalived's digest)
//! status_codes = "200-299"  # http(s), http_proxy: the statuses that pass (keepalived's status_code)
//! follow_redirects = true  # http(s): follow a redirect to the same real (ldirectord); false:
//!                           # the 3xx is the status (keepalived)
//! dns_type = "SOA"          # dns: ask this type; a NOERROR answer passes (keepalived's DNS_CHECK)
//! check_address = "10.0.0.9" # check there instead of at each real (keepalived's connect_ip)
//! check_source = "10.0.0.1"  # the checks' source address (keepalived's bindto)
//! check_source_port = 4000   # their source port (bind_port)
//! check_interface = "eth1"   # SO_BINDTODEVICE, the scope of a link-local address (bind_if)
//! check_mark = 7             # SO_MARK on the checks' sockets (a checker's fwmark)
//! checkinterval = 10        # these five override the globals
//! checktimeout = 5
//! negotiatetimeout = 30
//! failurecount = 1
//! successcount = 1
//! verify_tls = false
//! servicename = "Web site"
//! quorum = 1                 # keepalived's: sorry server below this summed weight of live reals
//! hysteresis = 0             # around the quorum
//! quorum_up = "/usr/local/bin/q-up"     # run (no argument added) when the quorum is regained
//! quorum_down = "/usr/local/bin/q-down" # run when it is lost
//! comment = "..."
//!
//! [[virtual.real]]
//! address = "192.168.6.2:80"     # also ranges: "192.168.6.2->192.168.6.7:80"
//! weight = 1                # default 1; 0: no new connections
//! method = "gate"           # gate (direct routing, the default), ipip (IP-in-IP tunnel) or
//!                           # masq (NAT: the real's port may differ from the VIP's)
//! request = "/other.html"   # optional per-real overrides
//! receive = "pattern"
//! digest = "..."            # http(s): this real's page MD5
//! check_address = "10.0.0.9" # the service's check of this real goes there (connect_ip)
//! check_source = "10.1.0.1"  # and leaves from there (also check_source_port,
//!                            # check_interface, check_mark): over the service's
//! notify_up = "/usr/local/bin/up"      # run (no argument added) when this real comes up
//! notify_down = "/usr/local/bin/down"  # … when it goes down (keepalived's)
//! upper_threshold = 0       # ipvsadm -x: no new connections from this many on (0: none)
//! lower_threshold = 0       # ipvsadm -y: … until below this many (0: below 3/4 of upper)
//! ```

use std::path::Path;

use ::toml::Spanned;
use serde::Deserialize;

mod check;

use check::{TomlCheck, with_check_keys};

use super::{
    Config, ConfigError, Location,
    raw::{Opt, RawConfig, RawGlobals, RawReal, RawVirtual, Val, resolve},
};

/// Reads TOML text; `path` names it in messages and in [`Config::source`]. The result is
/// validated.
pub fn parse_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let file: TomlFile = ::toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
    let raw = file.into_raw(text);
    let config = resolve(path, raw)?;
    super::validate(&config)?;
    Ok(config)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn toml_error(path: &Path, text: &str, e: ::toml::de::Error) -> ConfigError {
    let (line, key) = match e.span() {
        Some(span) => {
            let line = line_of(text, span.start);
            let src = text.lines().nth(line - 1).unwrap_or("");
            let key = match src.split_once('=') {
                Some((k, _)) => k.trim().to_string(),
                None => src.trim().to_string(),
            };
            (line, key)
        }
        None => (1, "?".to_string()),
    };
    // Prefer the key named in the message (`unknown field `x``).
    let msg = e.message();
    let key = match msg.split('`').nth(1) {
        Some(k) if msg.starts_with("unknown field") => k.to_string(),
        _ if key.is_empty() => "?".to_string(),
        _ => key,
    };
    ConfigError::Toml {
        location: Location {
            file: path.to_path_buf(),
            line,
        },
        key,
        source: Box::new(e),
    }
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A string or an integer (`checktype = 3`, `netmask = 24`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StrOrInt {
    Str(String),
    Int(u64),
}

/// `metrics = "ADDR:PORT"` or `metrics = true` (the default address).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StrOrBool {
    Str(String),
    Bool(bool),
}

impl StrOrInt {
    fn into_string(self) -> String {
        match self {
            StrOrInt::Str(s) => s,
            StrOrInt::Int(n) => n.to_string(),
        }
    }
}

type S<T> = Option<Spanned<T>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    checktimeout: S<u64>,
    negotiatetimeout: S<u64>,
    checkinterval: S<u64>,
    failurecount: S<u64>,
    successcount: S<u64>,
    fallback: S<String>,
    fallback6: S<String>,
    fallbackcommand: S<String>,
    quiescent: S<bool>,
    autoreload: S<bool>,
    logfile: S<String>,
    supervised: S<bool>,
    emailalert: S<OneOrMany>,
    emailalertfrom: S<String>,
    emailalertfreq: S<u64>,
    emailalertstatus: S<String>,
    smtp: S<String>,
    smtp_starttls: S<String>,
    smtp_username: S<String>,
    smtp_password_file: S<String>,
    smtp_ca_file: S<String>,
    notify: S<String>,
    maintenancedir: S<String>,
    cleanstop: S<bool>,
    callback: S<String>,
    interface: S<String>,
    metrics: S<StrOrBool>,
    verify_tls: S<bool>,
    allow_empty: S<bool>,
    timeout_tcp: S<u64>,
    timeout_tcpfin: S<u64>,
    timeout_udp: S<u64>,
    connection_table_size: S<u64>,
    persistence_table_size: S<u64>,
    extra_macs: S<OneOrMany>,
    #[serde(default, rename = "virtual")]
    virtuals: Vec<TomlVirtual>,
}

with_check_keys! {
    /// A `[[virtual]]` table: the service's keys, then its own check's.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TomlVirtual {
        address: Spanned<String>,
        protocol: S<String>,
        scheduler: S<String>,
        schedflags: S<String>,
        persistent: S<u64>,
        netmask: S<StrOrInt>,
        ops: S<bool>,
        fallback: S<String>,
        fallbackcommand: S<String>,
        quiescent: S<bool>,
        quorum_up: S<String>,
        quorum_down: S<String>,
        servicename: S<String>,
        comment: S<String>,
        quorum: S<u64>,
        hysteresis: S<u64>,
        #[serde(default)]
        real: Vec<TomlReal>,
        /// `[[virtual.also_check]]`: further checks every real must pass too.
        #[serde(default)]
        also_check: Vec<TomlCheck>,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlReal {
    address: Spanned<String>,
    weight: Option<u64>,
    method: Option<String>,
    request: Option<String>,
    receive: Option<String>,
    digest: Option<String>,
    checkcommand: Option<String>,
    check_address: Option<String>,
    check_source: S<String>,
    check_source_port: S<u64>,
    check_interface: S<String>,
    check_mark: S<u64>,
    notify_up: Option<String>,
    notify_down: Option<String>,
    upper_threshold: S<u64>,
    lower_threshold: S<u64>,
}

/// Converts spanned values into line-numbered ones.
struct Lines<'a>(&'a str);

impl Lines<'_> {
    fn val<T>(&self, s: Spanned<T>) -> Val<T> {
        let line = line_of(self.0, s.span().start);
        Val::new(s.into_inner(), line)
    }

    fn opt<T>(&self, s: S<T>) -> Opt<T> {
        s.map(|s| self.val(s))
    }

    fn opt_string(&self, s: S<StrOrInt>) -> Opt<String> {
        self.opt(s).map(|v| Val::new(v.value.into_string(), v.line))
    }

    fn opt_list(&self, s: S<OneOrMany>) -> Opt<Vec<String>> {
        self.opt(s).map(|v| {
            let list = match v.value {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(m) => m,
            };
            Val::new(list, v.line)
        })
    }
}

impl TomlFile {
    fn into_raw(self, text: &str) -> RawConfig {
        let l = Lines(text);
        let globals = RawGlobals {
            checktimeout: l.opt(self.checktimeout),
            negotiatetimeout: l.opt(self.negotiatetimeout),
            checkinterval: l.opt(self.checkinterval),
            failurecount: l.opt(self.failurecount),
            successcount: l.opt(self.successcount),
            fallback: l.opt(self.fallback),
            fallback6: l.opt(self.fallback6),
            fallbackcommand: l.opt(self.fallbackcommand),
            quiescent: l.opt(self.quiescent),
            autoreload: l.opt(self.autoreload),
            logfile: l.opt(self.logfile),
            supervised: l.opt(self.supervised),
            emailalert: l.opt_list(self.emailalert),
            emailalertfrom: l.opt(self.emailalertfrom),
            emailalertfreq: l.opt(self.emailalertfreq),
            emailalertstatus: l.opt(self.emailalertstatus),
            smtp: l.opt(self.smtp),
            smtp_starttls: l.opt(self.smtp_starttls),
            smtp_username: l.opt(self.smtp_username),
            smtp_password_file: l.opt(self.smtp_password_file),
            smtp_ca_file: l.opt(self.smtp_ca_file),
            notify: l.opt(self.notify),
            maintenancedir: l.opt(self.maintenancedir),
            cleanstop: l.opt(self.cleanstop),
            callback: l.opt(self.callback),
            interface: l.opt(self.interface),
            metrics: l.opt(self.metrics).map(|v| {
                let text = match v.value {
                    StrOrBool::Str(s) => s,
                    StrOrBool::Bool(b) => b.to_string(),
                };
                Val::new(text, v.line)
            }),
            verify_tls: l.opt(self.verify_tls),
            allow_empty: l.opt(self.allow_empty),
            timeout_tcp: l.opt(self.timeout_tcp),
            timeout_tcpfin: l.opt(self.timeout_tcpfin),
            timeout_udp: l.opt(self.timeout_udp),
            connection_table_size: l.opt(self.connection_table_size),
            persistence_table_size: l.opt(self.persistence_table_size),
            extra_macs: l.opt_list(self.extra_macs),
        };
        let virtuals = self
            .virtuals
            .into_iter()
            .map(|mut v| {
                let mut rv = RawVirtual::new(l.val(v.address.clone()), None);
                v.checks_into_raw(&l, &mut rv);
                rv.protocol = l.opt(v.protocol);
                rv.scheduler = l.opt(v.scheduler);
                rv.schedflags = l.opt(v.schedflags);
                rv.persistent = l.opt(v.persistent);
                rv.netmask = l.opt_string(v.netmask);
                rv.ops = l.opt(v.ops);
                rv.fallback = l.opt(v.fallback);
                rv.fallbackcommand = l.opt(v.fallbackcommand);
                rv.quiescent = l.opt(v.quiescent);
                rv.quorum_up = l.opt(v.quorum_up);
                rv.quorum_down = l.opt(v.quorum_down);
                rv.servicename = l.opt(v.servicename);
                rv.quorum = l.opt(v.quorum);
                rv.hysteresis = l.opt(v.hysteresis);
                rv.comment = l.opt(v.comment);
                rv.reals = v
                    .real
                    .into_iter()
                    .map(|r| {
                        let a = l.val(r.address);
                        RawReal {
                            line: a.line,
                            address: a.value,
                            family: None,
                            method: r.method,
                            weight: r.weight,
                            request: r.request,
                            receive: r.receive,
                            digest: r.digest,
                            checkcommand: r.checkcommand,
                            check_address: r.check_address,
                            check_source: l.opt(r.check_source),
                            check_source_port: l.opt(r.check_source_port),
                            check_interface: l.opt(r.check_interface),
                            check_mark: l.opt(r.check_mark),
                            notify_up: r.notify_up,
                            notify_down: r.notify_down,
                            u_threshold: l.opt(r.upper_threshold).map(|v| (v.line, v.value)),
                            l_threshold: l.opt(r.lower_threshold).map(|v| (v.line, v.value)),
                        }
                    })
                    .collect();
                rv.also_checks = v
                    .also_check
                    .into_iter()
                    .map(|c| c.into_raw(&l, &rv.address))
                    .collect();
                rv
            })
            .collect();
        RawConfig {
            globals,
            virtuals,
            warnings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        path::{Path, PathBuf},
        time::Duration,
    };

    use super::parse_str;
    use crate::config::{load, model::*, to_toml};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name)
    }

    /// Drops what a conversion does not keep: source, locations, warnings.
    fn normalized(mut c: Config) -> Config {
        let nowhere = Location {
            file: PathBuf::new(),
            line: 0,
        };
        c.source = PathBuf::new();
        c.warnings.clear();
        c.resolved.clear();
        for v in &mut c.virtuals {
            v.location = nowhere.clone();
            for r in &mut v.reals {
                r.location = nowhere.clone();
            }
        }
        c
    }

    fn round_trip(c: Config) {
        let text = to_toml(&c);
        let back =
            parse_str(Path::new("converted.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(normalized(back), normalized(c), "{text}");
    }

    #[test]
    fn sample_round_trips() {
        round_trip(load(&fixture("ldirectord-sample.cf")).unwrap());
        let seed = std::fs::read_to_string(fixture("seed-ldirectord.cf"))
            .unwrap()
            .replace("virtual=3", "virtual=192.168.1.100:80");
        round_trip(crate::config::ldirectord::parse_str(Path::new("seed.cf"), &seed).unwrap());
    }

    #[test]
    fn varied_config_round_trips() {
        let text = r#"
fallback6 = "[::1]:80"
emailalert = "a@b, c@d"
emailalertstatus = "starting,stopping"
logfile = "local0"
metrics = "127.0.0.1:9100"
notify = "/bin/notify"
supervised = true

[[virtual]]
address = "[2001:db8::5]:443"
scheduler = "sh"
persistent = 300
netmask = 64
checktype = 2
request = "health"
receive = "ok|fine"
httpmethod = "HEAD"
virtualhost = "www.example.org"
verify_tls = true

[[virtual.real]]
address = "[2001:db8::1]:443"
weight = 4

[[virtual.real]]
address = "[2001:db8::2]:443"
request = "/other"
receive = "x"

[[virtual]]
address = "10.0.0.1:53"
checktype = "external"
fallbackcommand = "/bin/sorry"
ops = true

[[virtual.real]]
address = "10.0.0.2->10.0.0.4:53"
weight = 0

[[virtual.real]]
address = "10.0.0.5:53"
checkcommand = "/bin/check 10.0.0.5"
"#;
        let c = parse_str(Path::new("t.toml"), text).unwrap();
        let v = &c.virtuals[0];
        assert_eq!(v.scheduler, Scheduler::Sh);
        assert_eq!(v.netmask_prefix, 64);
        assert_eq!(v.check.check_type, CheckType::ConnectThenNegotiate(2));
        assert_eq!(v.check.service, CheckService::Https);
        assert_eq!(v.check.request.as_deref(), Some("/health"));
        assert_eq!(v.fallback.as_ref().unwrap().addr.to_string(), "[::1]:80");
        assert_eq!(v.reals[0].location.line, 23);
        let w = &c.virtuals[1];
        assert_eq!(w.protocol, Protocol::Udp);
        assert!(w.one_packet && !v.one_packet);
        assert_eq!(w.check.service, CheckService::Dns);
        assert_eq!(w.check.command.as_deref(), Some("/bin/true"));
        assert_eq!(w.reals.len(), 4);
        assert_eq!(
            w.reals[3].check_command.as_deref(),
            Some("/bin/check 10.0.0.5")
        );
        // A real's own checkcommand on a service whose check is not external: refused.
        let e = parse_str(
            Path::new("t.toml"),
            "[[virtual]]\naddress = \"10.0.0.1:80\"\n[[virtual.real]]\naddress = \"10.0.0.2\"\ncheckcommand = \"/bin/x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("checkcommand: a real's own checkcommand needs checktype"),
            "{e}"
        );
        assert_eq!(w.check.negotiate_timeout, Duration::from_secs(30));
        assert_eq!(c.globals.email_alert.len(), 2);
        round_trip(c);
    }

    /// Addresses are read strictly (issue 14, defect 7), as in ldirectord.cf.
    #[test]
    fn addresses_are_strict_and_names_look_like_names() {
        let virt = |vip: &str| format!("[[virtual]]\naddress = \"{vip}\"\n");
        let real = |r: &str| {
            format!(
                "{}[[virtual.real]]\naddress = \"{r}\"\n",
                virt("10.0.0.1:80")
            )
        };
        for (text, want) in [
            // Was read as 8.212.0.100.
            (
                virt("010.212.0.100:80"),
                "x.toml:2: virtual: `010.212.0.100` is not a valid address: ",
            ),
            // Was read as 10.212.0.8.
            (
                real("10.212.0.010:80"),
                "x.toml:4: real: `10.212.0.010` is not a valid address: ",
            ),
            // Was read as 10.0.0.212.
            (
                real("10.212:80"),
                "x.toml:4: real: `10.212` is not a valid address: ",
            ),
            // Was looked up in DNS.
            (
                real("10.212.0.256:80"),
                "x.toml:4: real: `10.212.0.256` is not a valid address: ",
            ),
            (
                real("0x0a.0.0.1:80"),
                "x.toml:4: real: `0x0a.0.0.1` is not a valid address: ",
            ),
            (
                real("10.0.0.2->10.0.0.010:80"),
                "x.toml:4: real: `10.0.0.010` is not a valid address: ",
            ),
            (
                "fallback = \"127.0.0.010:80\"\n".to_string(),
                "x.toml:1: fallback: `127.0.0.010` is not a valid address: ",
            ),
            (
                virt("[2001:db8::00001]:80"),
                "x.toml:2: virtual: `[2001:db8::00001]` is not a valid address: ",
            ),
            (
                virt("[fe80::1%eth0]:80"),
                "x.toml:2: virtual: `[fe80::1%eth0]` is not a valid address: ",
            ),
            (
                real("web_1:80"),
                "x.toml:4: real: `web_1` is neither an address nor a host name: ",
            ),
            (
                "smtp = \"010.0.0.25\"\n".to_string(),
                "x.toml:1: smtp: `010.0.0.25` is not a valid address: ",
            ),
            (
                "metrics = \"127.0.0.01:9100\"\n".to_string(),
                "x.toml:1: metrics: `127.0.0.01:9100` is not an address:port",
            ),
        ] {
            let e = parse_str(Path::new("x.toml"), &text).unwrap_err();
            assert!(
                matches!(e, crate::config::ConfigError::Invalid { .. }),
                "for {text:?}: {e:?}"
            );
            let e = e.to_string();
            assert!(e.starts_with(want), "for {text:?}: got {e}");
        }
        let c = parse_str(Path::new("x.toml"), &real("10.212.0.10:80")).unwrap();
        assert_eq!(c.virtuals[0].reals[0].addr.to_string(), "10.212.0.10:80");
        assert!(c.resolved.is_empty());
        let c = parse_str(Path::new("x.toml"), &real("localhost:80")).unwrap();
        assert_eq!(c.virtuals[0].reals[0].addr.to_string(), "127.0.0.1:80");
        let out = crate::config::render_check(&c);
        assert!(
            out.contains("name: x.toml:4: real localhost: resolved to 127.0.0.1 (a host name"),
            "{out}"
        );
    }

    #[test]
    fn metrics_true_means_the_default_address() {
        let m = |v: &str| {
            parse_str(Path::new("x.toml"), &format!("metrics = {v}\n"))
                .unwrap()
                .globals
                .metrics
        };
        assert_eq!(m("true"), Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(m("false"), None);
        assert_eq!(m("\"[::1]:9200\""), Some("[::1]:9200".parse().unwrap()));
        assert!(parse_str(Path::new("x.toml"), "metrics = \"nope\"\n").is_err());
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = "checkinterval = 3\n\n[[virtual]]\naddress = \"10.0.0.1:80\"\nbogus = 1\n";
        let e = parse_str(Path::new("x.toml"), text).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("x.toml:5: bogus: unknown field `bogus`"),
            "{msg}"
        );
        let e = parse_str(Path::new("x.toml"), "checkinterval = 3\nchecktimout = 4\n").unwrap_err();
        assert!(e.to_string().starts_with("x.toml:2: checktimout: "), "{e}");
        let e = parse_str(Path::new("x.toml"), "checkinterval = \"often\"\n").unwrap_err();
        assert!(
            e.to_string().starts_with("x.toml:1: checkinterval: "),
            "{e}"
        );
    }

    #[test]
    fn value_errors_name_line_and_key() {
        let text = "[[virtual]]\naddress = \"10.0.0.1:80\"\nscheduler = \"lblcr\"\n";
        let e = parse_str(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.toml:3: scheduler: scheduler `lblcr` is not supported"),
            "{e}"
        );
        let text = "[[virtual]]\naddress = \"10.0.0.1:80\"\n[[virtual.real]]\naddress = \"10.0.0.2:80\"\nmethod = \"ipip\"\n";
        let c = parse_str(Path::new("x.toml"), text).unwrap();
        assert_eq!(
            c.virtuals[0].reals[0].forwarding,
            crate::config::model::Forwarding::Tunnel
        );
        // NAT: the real's port may differ from the VIP's, without a warning.
        let text = "[[virtual]]\naddress = \"10.0.0.1:80\"\n[[virtual.real]]\naddress = \"10.0.0.2:8080\"\nmethod = \"masq\"\n";
        let c = parse_str(Path::new("x.toml"), text).unwrap();
        let r = &c.virtuals[0].reals[0];
        assert_eq!(r.forwarding, crate::config::model::Forwarding::Masq);
        assert_eq!(r.addr.port(), 8080);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let text = text.replace("masq", "gate");
        let c = parse_str(Path::new("x.toml"), &text).unwrap();
        assert!(
            c.warnings[0].contains("direct routing cannot change the port"),
            "{:?}",
            c.warnings
        );
        // A firewall mark: `fwmark:N` (as lvs convert writes it) or a bare number.
        for a in ["3", "fwmark:3"] {
            let text = format!("[[virtual]]\naddress = \"{a}\"\nprotocol = \"fwm\"\n");
            let c = parse_str(Path::new("x.toml"), &text).unwrap();
            assert_eq!(c.virtuals[0].fwmark.as_ref().unwrap().mark, 3);
        }
        let text = "[[virtual]]\naddress = \"fwmark6:3\"\n";
        let c = parse_str(Path::new("x.toml"), text).unwrap();
        assert!(c.virtuals[0].fwmark.as_ref().unwrap().v6);
        let text = "[[virtual]]\naddress = \"fwmark:x\"\n";
        let e = parse_str(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.toml:2: virtual: `x` is not a firewall mark"),
            "{e}"
        );
        let text = "[[virtual]]\naddress = \"10.0.0.1:80\"\nfallback = \"[::1]:80\"\n";
        let e = parse_str(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:3: fallback: "), "{e}");
    }

    #[test]
    fn also_checks_every_real_must_pass_too() {
        let text = "[[virtual]]\naddress = \"10.0.0.1:80\"\nchecktype = \"connect\"\n\
                    [[virtual.also_check]]\nchecktype = \"negotiate\"\nservice = \"http\"\n\
                    request = \"/health\"\nreceive = \"ok\"\nfailurecount = 2\n\
                    [[virtual.real]]\naddress = \"10.0.0.2:80\"\n";
        let c = parse_str(Path::new("x.toml"), text).unwrap();
        let v = &c.virtuals[0];
        assert_eq!(v.check.check_type, CheckType::Connect);
        assert_eq!(v.also_checks.len(), 1);
        let a = &v.also_checks[0];
        assert_eq!(
            (a.service, a.request.as_deref(), a.receive.as_deref()),
            (CheckService::Http, Some("/health"), Some("ok"))
        );
        assert_eq!(a.failure_count, 2);
        // Refused as the service's own check keys are, at their line.
        let bad = text.replace("service = \"http\"", "service = \"gopher\"");
        let e = parse_str(Path::new("x.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.toml:6: service: unknown service `gopher`"),
            "{e}"
        );
        let bad = text.replace("failurecount = 2", "weight = 2");
        let e = parse_str(Path::new("x.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `weight`"), "{e}");
    }
}
