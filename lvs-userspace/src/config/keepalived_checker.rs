//! keepalived's checkers (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `MISC_CHECK`, `SMTP_CHECK`,
//! `DNS_CHECK`, `UDP_CHECK`, `PING_CHECK`, `FILE_CHECK`) and their keywords, onto the model's
//! check terms.

use super::*;

impl Mapper {
    /// One checker block `s` of the real at `ip`:`rport`, with the timers it inherits: one
    /// check, or one per `url` of an `HTTP_GET`/`SSL_GET`.
    pub(super) fn checker(
        &mut self,
        s: &Stmt,
        ip: &str,
        rport: u16,
        inherited: &Timers,
    ) -> Result<Vec<Check>, ConfigError> {
        let mut t = inherited.clone();
        let kind = s.key();
        if kind == "FILE_CHECK" {
            // Read every second (keepalived reads the file as soon as it changes); no retry.
            let f = self.file_check(s)?;
            return Ok(vec![Check {
                request: Some(f.path),
                track_weight: f.weight,
                track_reverse: f.reverse,
                ..Check::socketless("file", 1, 1)
            }]);
        }
        let (checktype, service, default_retry) = match kind {
            "TCP_CHECK" => ("connect", "none", 1),
            "HTTP_GET" => ("negotiate", "http", 1),
            "SSL_GET" => ("negotiate", "https", 1),
            "MISC_CHECK" => ("external", "none", 0),
            "SMTP_CHECK" => ("negotiate", "smtp", 1),
            "DNS_CHECK" => ("negotiate", "dns", 3),
            "UDP_CHECK" => ("negotiate", "udp", 1),
            _ => ("ping", "none", 1),
        };
        let mut connect_port = None;
        let mut connect_ip: Option<(std::net::IpAddr, &Stmt)> = None;
        let mut source = CheckSource::default();
        let mut bindto_at: Option<&Stmt> = None;
        let mut bind_port_at: Option<&Stmt> = None;
        let mut urls: Vec<&Stmt> = Vec::new();
        let mut misc_path = None;
        let mut misc_timeout = None;
        let mut dynamic = false;
        let (mut payload, mut require_reply) = (None, None);
        let mut helo_name = None;
        let (mut dns_name, mut dns_type) = (None, None);
        for i in s.block.iter().flatten() {
            let k = i.key();
            let connects = !matches!(kind, "MISC_CHECK");
            match k {
                "connect_port" if connects => connect_port = Some(port(i, one_arg(i)?)?),
                "connect_ip" if connects => connect_ip = Some((address(i)?, i)),
                "connect_timeout" if connects => {
                    t.connect_timeout = Some(timer(i, &mut self.warnings)?)
                }
                "bindto" if connects => {
                    source.address = Some(address(i)?);
                    bindto_at = Some(i);
                }
                "bind_port" if connects => {
                    source.port = Some(port(i, one_arg(i)?)?);
                    bind_port_at = Some(i);
                }
                "bind_if" if connects => {
                    let name = one_arg(i)?;
                    if name.len() > 15 {
                        return Err(bad(
                            &i.loc,
                            k,
                            format!("`{name}` is too long for an interface name"),
                        ));
                    }
                    source.interface = Some(name.to_string());
                }
                "fwmark" if connects => {
                    let n = number(i)?.value;
                    source.mark =
                        Some(u32::try_from(n).map_err(|_| bad(&i.loc, k, "must fit in 32 bits"))?);
                }
                "retry" => t.retry = Some(number(i)?),
                "nb_get_retry" if matches!(kind, "HTTP_GET" | "SSL_GET") => {
                    t.retry = Some(number(i)?)
                }
                "nb_get_retry" => self.warn(
                    &i.loc,
                    k,
                    &format!(
                        "ignored, as keepalived 2 does (\"Unknown keyword\": it reads \
                         nb_get_retry in HTTP_GET and SSL_GET only): {kind} keeps retry's \
                         default (write `retry N`)"
                    ),
                ),
                "delay_loop" => t.delay_loop = Some(timer(i, &mut self.warnings)?),
                "delay_before_retry" | "warmup" => self.retry_timer(i, &mut t)?,
                "alpha" => {
                    boolean(i)?;
                }
                "log_all_failures" => self.warn(&i.loc, k, "ignored: lvs logs every change"),
                "url" if matches!(kind, "HTTP_GET" | "SSL_GET") => urls.push(i),
                "virtualhost" if matches!(kind, "HTTP_GET" | "SSL_GET") => {
                    t.virtualhost = Some(one_arg(i)?.to_string())
                }
                "http_protocol" | "fast_recovery" | "enable_sni" | "sni_name" | "tls_compliant"
                    if matches!(kind, "HTTP_GET" | "SSL_GET") =>
                {
                    self.warn(&i.loc, k, "ignored: lvs's HTTP check has its own settings")
                }
                "name" if kind == "DNS_CHECK" => dns_name = Some(one_arg(i)?.to_string()),
                "type" if kind == "DNS_CHECK" => {
                    let t = one_arg(i)?;
                    if crate::config::raw::dns_type_number(t).is_none() {
                        return Err(bad(
                            &i.loc,
                            k,
                            format!("`{t}` is not one of {}", crate::config::raw::DNS_TYPES),
                        ));
                    }
                    dns_type = Some(t.to_ascii_uppercase());
                }
                "payload" if kind == "UDP_CHECK" => {
                    let hex: String = i.args().concat();
                    if crate::health::udp::parse_hex(&hex, false).is_none() {
                        return Err(bad(&i.loc, k, format!("`{hex}` is not hex bytes")));
                    }
                    payload = Some(hex);
                }
                "require_reply" if kind == "UDP_CHECK" => {
                    let hex: String = i.args().concat();
                    if crate::health::udp::parse_hex(&hex, true).is_none() {
                        return Err(bad(
                            &i.loc,
                            k,
                            format!("`{hex}` is not hex bytes (X for a wild nibble)"),
                        ));
                    }
                    require_reply = Some(hex);
                }
                "min_reply_length" | "max_reply_length" if kind == "UDP_CHECK" => {
                    let n = number(i)?.value;
                    let default = if k == "min_reply_length" { 0 } else { 255 };
                    if n != default {
                        return Err(bad(
                            &i.loc,
                            k,
                            "not supported: lvs checks the reply's first bytes against \
                             require_reply, not its length",
                        ));
                    }
                }
                "helo_name" if kind == "SMTP_CHECK" => helo_name = Some(one_arg(i)?.to_string()),
                "host" if kind == "SMTP_CHECK" => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "not supported: a host block is a deprecated second checker; write one \
                         SMTP_CHECK per real with connect_ip/connect_port",
                    ));
                }
                // keepalived reads the rest of the line, and splits it with quotes and escapes
                // when it runs it: one quoted value is that text; several words are quoted
                // back where they need it, so that they split as they were read.
                "misc_path" if kind == "MISC_CHECK" => {
                    misc_path = Some(match i.args() {
                        [] => return Err(bad(&i.loc, k, "needs a value")),
                        [one] => one.clone(),
                        words => words
                            .iter()
                            .map(|w| requote(w))
                            .collect::<Vec<_>>()
                            .join(" "),
                    })
                }
                "misc_timeout" if kind == "MISC_CHECK" => {
                    misc_timeout = Some(timer(i, &mut self.warnings)?.value)
                }
                "misc_dynamic" if kind == "MISC_CHECK" => {
                    if !i.args().is_empty() {
                        return Err(bad(&i.loc, k, "takes no argument"));
                    }
                    dynamic = true;
                }
                "user" if kind == "MISC_CHECK" => {
                    return Err(bad(
                        &i.loc,
                        k,
                        "not supported: lvs runs checks as its own user",
                    ));
                }
                "nb_sock_retry" => {
                    number(i)?;
                    self.warn(&i.loc, k, "ignored: not a keepalived 2.x keyword");
                }
                _ => self.unknown(&i.loc, k, Block::Checker(kind))?,
            }
        }
        let real_ip: Option<std::net::IpAddr> = ip.parse().ok();
        let target = connect_ip.map(|(a, _)| a).or(real_ip);
        if let (Some(t), Some(b), Some(at)) = (target, source.address, bindto_at)
            && t.is_ipv4() != b.is_ipv4()
        {
            return Err(bad(
                &at.loc,
                "bindto",
                format!("{b} is not of the family of the address checked, {t}"),
            ));
        }
        if source.interface.is_none() {
            let link_local = |a: std::net::IpAddr| matches!(a, std::net::IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80);
            if let Some((a, at)) = connect_ip.filter(|(a, _)| link_local(*a)) {
                return Err(bad(
                    &at.loc,
                    "connect_ip",
                    format!("the link-local address {a} needs a bind_if, as keepalived requires"),
                ));
            }
            if let (Some(b), Some(at)) = (source.address.filter(|b| link_local(*b)), bindto_at) {
                return Err(bad(
                    &at.loc,
                    "bindto",
                    format!("the link-local address {b} needs a bind_if (its scope)"),
                ));
            }
        }
        if let (Some(at), None) = (bind_port_at, source.address) {
            self.warn(
                &at.loc,
                "bind_port",
                "without bindto, keepalived ignores it; lvs binds this port on the \
                 wildcard address",
            );
        }
        let connect_ip = connect_ip.map(|(a, _)| a).filter(|a| Some(*a) != real_ip);
        let (mut request, mut receive, vhost) = (None, None, t.virtualhost.clone());
        let digest = None;
        // An HTTP_GET/SSL_GET checks each of its urls; every one must pass.
        let mut pages = Vec::new();
        if matches!(kind, "HTTP_GET" | "SSL_GET") {
            for u in &urls {
                pages.push(self.url(u)?);
            }
            if pages.is_empty() {
                request = Some("/".to_string());
            }
        }
        if kind == "SMTP_CHECK" {
            // keepalived's check_smtp: HELO with this name (lvs sends EHLO first, then HELO).
            request = Some(helo_name.unwrap_or_else(|| "smtpchecker.keepalived.org".to_string()));
        }
        if kind == "UDP_CHECK" {
            // keepalived's check_udp: the payload, and a reply only when required.
            request = payload;
            receive = require_reply;
        }
        if kind == "DNS_CHECK" {
            // keepalived's check_dns: SOA of the root unless told.
            request = Some(dns_name.unwrap_or_else(|| ".".to_string()));
            dns_type = Some(dns_type.unwrap_or_else(|| "SOA".to_string()));
        }
        let command = if kind == "MISC_CHECK" {
            let Some(p) = misc_path else {
                return Err(bad(&s.loc, kind, "needs a misc_path"));
            };
            Some(p)
        } else {
            None
        };
        let interval = t.delay_loop.as_ref().map_or(60, |d| d.value);
        let timeout = if kind == "MISC_CHECK" {
            misc_timeout.unwrap_or(interval)
        } else {
            t.connect_timeout.as_ref().map_or(5, |d| d.value)
        };
        let check = Check {
            checktype,
            service,
            port: connect_port.filter(|p| *p != rport),
            request,
            receive,
            virtualhost: vhost,
            command,
            dynamic,
            dns_type,
            digest,
            status_codes: StatusCodes::default(),
            interval,
            timeout,
            // keepalived's defaults: 3 s for HTTP_GET and SSL_GET, delay_loop for DNS_CHECK,
            // else 1 s (0 is read as 1: lvs counts whole seconds).
            retry_interval: t
                .delay_before_retry
                .as_ref()
                .map(|d| d.value)
                .unwrap_or(match kind {
                    "HTTP_GET" | "SSL_GET" => 3,
                    "DNS_CHECK" => interval,
                    _ => 1,
                })
                .max(1),
            track_weight: 0,
            track_reverse: false,
            failures: t.retry.as_ref().map_or(default_retry, |r| r.value) + 1,
            connect_ip,
            source,
        };
        if pages.is_empty() {
            return Ok(vec![check]);
        }
        Ok(pages
            .into_iter()
            .map(|u| Check {
                request: Some(u.path),
                receive: u.regex,
                virtualhost: u.virtualhost.or_else(|| check.virtualhost.clone()),
                digest: u.digest,
                status_codes: u.status_codes,
                ..check.clone()
            })
            .collect())
    }

    /// A `url` block: path, the `regex` the body must match, the Host, the body's MD5 and the
    /// statuses that pass.
    fn url(&mut self, s: &Stmt) -> Result<Url, ConfigError> {
        let (mut path, mut regex, mut vhost, mut digest) = (None, None, None, None);
        let mut codes: Option<Vec<(u16, u16)>> = None;
        for i in s.block.iter().flatten() {
            let k = i.key();
            match k {
                "path" => path = Some(one_arg(i)?.to_string()),
                "virtualhost" => vhost = Some(one_arg(i)?.to_string()),
                "regex" => regex = Some(one_arg(i)?.to_string()),
                // keepalived's status_code_handler: codes and ranges, 100 to 599, added to
                // those of the url's earlier status_code lines (keepalived reports a bad one
                // and skips it; lvs refuses it).
                "status_code" => {
                    if i.args().is_empty() {
                        return Err(bad(&i.loc, k, "needs a status code or range"));
                    }
                    for a in i.args() {
                        let Some(range) = StatusCodes::parse_range(a) else {
                            return Err(bad(
                                &i.loc,
                                k,
                                format!(
                                    "`{a}` is not a status code or range of them ({}-{})",
                                    StatusCodes::MIN,
                                    StatusCodes::MAX
                                ),
                            ));
                        };
                        codes.get_or_insert_with(Vec::new).push(range);
                    }
                }
                "digest" => {
                    let d = one_arg(i)?;
                    if crate::health::http::parse_digest(d).is_none() {
                        return Err(bad(
                            &i.loc,
                            k,
                            format!("`{d}` is not an MD5 (32 hex digits, as genhash prints it)"),
                        ));
                    }
                    digest = Some(d.to_ascii_lowercase());
                }
                _ => return Err(bad(&i.loc, k, "unknown or unsupported keyword in url")),
            }
        }
        let Some(path) = path else {
            return Err(bad(&s.loc, "url", "needs a path"));
        };
        Ok(Url {
            path,
            regex,
            virtualhost: vhost,
            digest,
            // keepalived's default when a url names none: 200-299.
            status_codes: codes.map(StatusCodes::from_ranges).unwrap_or_default(),
        })
    }
}

/// One `url` of an `HTTP_GET`/`SSL_GET`.
struct Url {
    path: String,
    regex: Option<String>,
    virtualhost: Option<String>,
    /// The body's MD5.
    digest: Option<String>,
    status_codes: StatusCodes,
}

/// Writes a checker's settings into `v`'s check keys.
pub(super) fn set_check(v: &mut RawVirtual, check: &Check, line: usize) {
    let at = |x: String| Some(Val::new(x, line));
    v.checktype = at(check.checktype.to_string());
    v.service = at(check.service.to_string());
    v.checkport = check.port.map(|p| Val::new(u64::from(p), line));
    v.request = check.request.clone().and_then(at);
    v.receive = check.receive.clone().and_then(at);
    v.virtualhost = check.virtualhost.clone().and_then(at);
    v.checkcommand = check.command.clone().and_then(at);
    v.dynamic_weight = check.dynamic.then(|| Val::new(true, line));
    // A MISC_CHECK's misc_path runs as keepalived runs it.
    v.checkcommand_style =
        (check.checktype == "external").then(|| Val::new("keepalived".into(), line));
    v.dns_type = check.dns_type.clone().and_then(at);
    v.digest = check.digest.clone().and_then(at);
    v.status_codes = (check.status_codes != StatusCodes::default())
        .then(|| Val::new(check.status_codes.to_string(), line));
    // keepalived never follows a redirect: the 3xx is the status.
    v.follow_redirects = matches!(check.service, "http" | "https").then(|| Val::new(false, line));
    v.check_address = check.connect_ip.map(|a| a.to_string()).and_then(at);
    v.check_source = check.source.address.map(|a| a.to_string()).and_then(at);
    v.check_source_port = check.source.port.map(|p| Val::new(u64::from(p), line));
    v.check_interface = check.source.interface.clone().and_then(at);
    v.check_mark = check.source.mark.map(|m| Val::new(u64::from(m), line));
    v.checkinterval = Some(Val::new(check.interval, line));
    v.checktimeout = Some(Val::new(check.timeout, line));
    v.negotiatetimeout = Some(Val::new(check.timeout, line));
    v.failurecount = Some(Val::new(check.failures, line));
    if check.checktype == "file" {
        v.track_weight = Some(Val::new(i64::from(check.track_weight), line));
        v.track_reverse = Some(Val::new(check.track_reverse, line));
    }
    // Only while retrying does it matter (retry 0: the first failure takes the real down).
    v.retry_interval = (check.failures > 1).then(|| Val::new(check.retry_interval, line));
    v.successcount = Some(Val::new(1, line));
}

/// A statement's one argument as an IP address (`connect_ip`, `bindto`).
fn address(s: &Stmt) -> Result<std::net::IpAddr, ConfigError> {
    let a = one_arg(s)?;
    a.parse()
        .map_err(|_| bad(&s.loc, s.key(), format!("`{a}` is not an IP address")))
}

/// `word` as keepalived's command splitter reads it back as one word: in double quotes, with
/// `"` and `\` escaped, when it holds whitespace, a quote or a `\`.
fn requote(word: &str) -> String {
    if word.contains(|c: char| c.is_whitespace() || "'\"\\".contains(c)) {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        word.to_string()
    }
}
