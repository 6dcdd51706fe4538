//! The ldirectord.cf reader.
//!
//! Syntax, as ldirectord reads it, with a little more leniency:
//! - `key=value`, spaces allowed around `=`; a value wholly in double quotes is unquoted.
//! - Global directives start in the first column. `virtual=` / `virtual6=` open a block; the
//!   block's directives are the following lines that begin with whitespace (any amount: the
//!   seed example indents by two spaces where ldirectord wants four). Blank lines and comment
//!   lines do not end a block; the next unindented directive does.
//! - `#` starts a comment, outside double quotes, on any line (ldirectord only strips trailing
//!   comments inside blocks; configs in the wild put them on global lines too).
//!
//! Every directive ldirectord knows is honoured, refused with the reason, or accepted with a
//! warning in [`Config::warnings`]; anything else is an error. Values are interpreted (and
//! defaults applied) by the reader shared with TOML.

use std::path::Path;

use super::{
    Config, ConfigError,
    raw::{Family, RawConfig, RawReal, RawVirtual, Val, resolve},
};

/// Directives only meaningful inside a virtual block.
const VIRTUAL_ONLY: &[&str] = &[
    "real",
    "real6",
    "request",
    "receive",
    "checktype",
    "checkcommand",
    "checkport",
    "login",
    "passwd",
    "database",
    "secret",
    "load",
    "scheduler",
    "persistent",
    "schedflags",
    "netmask",
    "protocol",
    "ops",
    "service",
    "httpmethod",
    "virtualhost",
    "monitorfile",
    "servicename",
    "comment",
];
/// Directives only meaningful at the top level.
const GLOBAL_ONLY: &[&str] = &[
    "autoreload",
    "callback",
    "logfile",
    "execute",
    "fork",
    "supervised",
    "readdquiescent",
    "emailalertfrom",
    "maintenancedir",
    "notify",
    "interface",
    "metrics",
    "allow_empty",
    "extra_macs",
    "timeout",
    "smtp_starttls",
    "smtp_username",
    "smtp_password_file",
    "smtp_ca_file",
];

/// Reads ldirectord.cf text; `path` names it in messages and in [`Config::source`]. The result
/// is validated.
pub fn parse_str(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw = parse_raw(path, text)?;
    let config = resolve(path, raw)?;
    super::validate(&config)?;
    Ok(config)
}

/// Removes a `#` comment that is outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// A value wholly in double quotes loses them.
fn unquote(v: &str) -> &str {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

struct Reader<'a> {
    file: &'a Path,
    raw: RawConfig,
}

impl Reader<'_> {
    fn err(&self, line: usize, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.file, line, key, reason)
    }

    fn warn(&mut self, line: usize, key: &str, why: &str) {
        self.raw
            .warnings
            .push(format!("{}:{line}: {key}: {why}", self.file.display()));
    }

    fn cur(&mut self) -> &mut RawVirtual {
        self.raw.virtuals.last_mut().expect("in a virtual")
    }

    fn yes_no(&self, line: usize, key: &str, v: &str) -> Result<Val<bool>, ConfigError> {
        match v {
            "yes" => Ok(Val::new(true, line)),
            "no" => Ok(Val::new(false, line)),
            _ => Err(self.err(line, key, format!("must be 'yes' or 'no', not `{v}`"))),
        }
    }

    fn number(&self, line: usize, key: &str, v: &str) -> Result<Val<u64>, ConfigError> {
        v.parse::<u64>()
            .map(|n| Val::new(n, line))
            .map_err(|_| self.err(line, key, format!("`{v}` is not a whole number")))
    }

    fn nonempty(&self, line: usize, key: &str, v: &str) -> Result<Val<String>, ConfigError> {
        if v.is_empty() {
            Err(self.err(line, key, "no value given"))
        } else {
            Ok(Val::new(v.to_string(), line))
        }
    }

    /// A directive both levels share; `Ok(false)` when `key` is not one of them.
    fn common(
        &mut self,
        line: usize,
        key: &str,
        v: &str,
        in_virtual: bool,
    ) -> Result<bool, ConfigError> {
        // Which set of fields: the current virtual's or the globals'.
        macro_rules! slot {
            ($field:ident) => {
                if in_virtual {
                    &mut self.raw.virtuals.last_mut().expect("in a virtual").$field
                } else {
                    &mut self.raw.globals.$field
                }
            };
        }
        match key {
            "checktimeout" | "negotiatetimeout" | "checkinterval" | "failurecount"
            | "successcount" => {
                let n = self.number(line, key, v)?;
                if n.value == 0 {
                    return Err(self.err(line, key, "must be a positive whole number"));
                }
                *match key {
                    "checktimeout" => slot!(checktimeout),
                    "negotiatetimeout" => slot!(negotiatetimeout),
                    "checkinterval" => slot!(checkinterval),
                    "failurecount" => slot!(failurecount),
                    _ => slot!(successcount),
                } = Some(n);
            }
            "connecttimeout" => {
                return Err(self.err(
                    line,
                    key,
                    "connecttimeout is deprecated in favour of negotiatetimeout (as in ldirectord)",
                ));
            }
            "checkcount" => {
                self.number(line, key, v)?;
                self.warn(
                    line,
                    key,
                    "checkcount is deprecated (ldirectord too) and ignored: use failurecount",
                );
            }
            "fallbackcommand" => *slot!(fallbackcommand) = Some(self.nonempty(line, key, v)?),
            "quiescent" => *slot!(quiescent) = Some(self.yes_no(line, key, v)?),
            "verify_tls" => *slot!(verify_tls) = Some(self.yes_no(line, key, v)?),
            "fallback" | "fallback6" if !in_virtual => {
                let val = Some(self.nonempty(line, key, v)?);
                if key == "fallback" {
                    self.raw.globals.fallback = val;
                } else {
                    self.raw.globals.fallback6 = val;
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn global(&mut self, line: usize, key: &str, v: &str, bare: bool) -> Result<(), ConfigError> {
        if bare && key != "supervised" {
            return Err(self.err(line, key, "expected key=value"));
        }
        if self.common(line, key, v, false)? {
            return Ok(());
        }
        match key {
            "autoreload" => self.raw.globals.autoreload = Some(self.yes_no(line, key, v)?),
            "supervised" if bare => {
                self.raw.globals.supervised = Some(Val::new(true, line));
                self.warn(
                    line,
                    key,
                    "a bare `supervised` means supervised=yes; write that",
                );
            }
            "supervised" => self.raw.globals.supervised = Some(self.yes_no(line, key, v)?),
            "cleanstop" => self.raw.globals.cleanstop = Some(self.yes_no(line, key, v)?),
            "callback" => self.raw.globals.callback = Some(self.nonempty(line, key, v)?),
            "logfile" => self.raw.globals.logfile = Some(self.nonempty(line, key, v)?),
            "emailalert" => self.raw.globals.emailalert = Some(Val::new(vec![v.to_string()], line)),
            "emailalertfreq" => self.raw.globals.emailalertfreq = Some(self.number(line, key, v)?),
            "emailalertstatus" => {
                self.raw.globals.emailalertstatus = Some(Val::new(v.to_string(), line))
            }
            "emailalertfrom" => {
                self.raw.globals.emailalertfrom = Some(self.nonempty(line, key, v)?)
            }
            "smtp" => self.raw.globals.smtp = Some(self.nonempty(line, key, v)?),
            "smtp_starttls" => self.raw.globals.smtp_starttls = Some(self.nonempty(line, key, v)?),
            "smtp_username" => self.raw.globals.smtp_username = Some(self.nonempty(line, key, v)?),
            "smtp_password_file" => {
                self.raw.globals.smtp_password_file = Some(self.nonempty(line, key, v)?)
            }
            "smtp_ca_file" => self.raw.globals.smtp_ca_file = Some(self.nonempty(line, key, v)?),
            "maintenancedir" => {
                self.raw.globals.maintenancedir = Some(self.nonempty(line, key, v)?)
            }
            "notify" => self.raw.globals.notify = Some(self.nonempty(line, key, v)?),
            "interface" => self.raw.globals.interface = Some(self.nonempty(line, key, v)?),
            "metrics" => self.raw.globals.metrics = Some(self.nonempty(line, key, v)?),
            "allow_empty" => self.raw.globals.allow_empty = Some(self.yes_no(line, key, v)?),
            "extra_macs" => self.raw.globals.extra_macs = Some(Val::new(vec![v.to_string()], line)),
            "fork" => {
                self.yes_no(line, key, v)?;
                self.warn(
                    line,
                    key,
                    "ignored: lvs always checks every virtual service concurrently",
                );
            }
            "readdquiescent" => {
                self.yes_no(line, key, v)?;
                self.warn(
                    line,
                    key,
                    "ignored: lvs starts every real server down until its first check passes",
                );
            }
            "execute" => {
                return Err(self.err(
                    line,
                    key,
                    "not supported: run one lvs agent per configuration instead",
                ));
            }
            "timeout" => {
                return Err(self.err(
                    line,
                    key,
                    "timeout is deprecated in favour of checktimeout and negotiatetimeout \
                     (as in ldirectord)",
                ));
            }
            k if VIRTUAL_ONLY.contains(&k) => {
                return Err(self.err(
                    line,
                    key,
                    "belongs inside a virtual= block: indent it under its virtual",
                ));
            }
            _ => return Err(self.err(line, key, "unknown directive")),
        }
        Ok(())
    }

    fn virtual_directive(&mut self, line: usize, key: &str, v: &str) -> Result<(), ConfigError> {
        if self.common(line, key, v, true)? {
            return Ok(());
        }
        let vfamily = self.raw.virtuals.last().and_then(|x| x.family);
        let val = Val::new(v.to_string(), line);
        match key {
            "real" | "real6" => {
                let family = if key == "real6" {
                    Family::V6
                } else {
                    Family::V4
                };
                let real = parse_real(self.file, line, key, v, family)?;
                self.raw
                    .virtuals
                    .last_mut()
                    .expect("in a virtual")
                    .reals
                    .push(real);
            }
            "fallback" | "fallback6" => {
                let want = if vfamily == Some(Family::V6) {
                    "fallback6"
                } else {
                    "fallback"
                };
                if key != want {
                    return Err(self.err(
                        line,
                        key,
                        format!("cannot specify `{key}` here: use `{want}`"),
                    ));
                }
                self.cur().fallback = Some(val);
            }
            "request" => self.cur().request = Some(val),
            "receive" => self.cur().receive = Some(val),
            "checktype" => self.cur().checktype = Some(val),
            "checkcommand" => self.cur().checkcommand = Some(val),
            "checkport" => self.cur().checkport = Some(self.number(line, key, v)?),
            "scheduler" => self.cur().scheduler = Some(val),
            "persistent" => self.cur().persistent = Some(self.number(line, key, v)?),
            "netmask" => self.cur().netmask = Some(val),
            "protocol" => self.cur().protocol = Some(val),
            "service" => self.cur().service = Some(val),
            "httpmethod" => self.cur().httpmethod = Some(val),
            "virtualhost" => self.cur().virtualhost = Some(val),
            "servicename" => self.cur().servicename = Some(val),
            "comment" => self.cur().comment = Some(val),
            "ops" => match v {
                "no" | "yes" => self.cur().ops = Some(Val::new(v == "yes", line)),
                _ => return Err(self.err(line, key, "ops must be 'yes' or 'no'")),
            },
            "schedflags" => self.cur().schedflags = Some(val),
            "login" => self.cur().login = Some(val),
            "passwd" => self.cur().passwd = Some(val),
            "database" => self.cur().database = Some(val),
            "secret" => self.cur().secret = Some(val),
            "load" => self.warn(line, key, "ignored: load-based checks are not supported"),
            "monitorfile" => self.warn(
                line,
                key,
                "ignored: lvs reports check results in its log and metrics instead",
            ),
            "cleanstop" => {
                self.yes_no(line, key, v)?;
                self.warn(
                    line,
                    key,
                    "ignored per virtual service: the global cleanstop applies",
                );
            }
            "emailalert" | "emailalertfreq" | "emailalertstatus" | "smtp" => {
                return Err(self.err(
                    line,
                    key,
                    "per-virtual email alerts are not supported: set it globally",
                ));
            }
            k if GLOBAL_ONLY.contains(&k) => {
                return Err(self.err(
                    line,
                    key,
                    "is a global directive: write it unindented, outside virtual blocks",
                ));
            }
            _ => return Err(self.err(line, key, "unknown directive")),
        }
        Ok(())
    }
}

/// `real=ADDR[->ADDR][:PORT] [gate|masq|ipip] [WEIGHT] ["REQUEST" "RECEIVE"]`.
fn parse_real(
    file: &Path,
    line: usize,
    key: &str,
    v: &str,
    family: Family,
) -> Result<RawReal, ConfigError> {
    let bad = |why: String| ConfigError::invalid(file, line, key, why);
    // Words, with double-quoted strings kept whole (and marked quoted).
    let mut words: Vec<(String, bool)> = Vec::new();
    let mut chars = v.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || c == ',' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err(bad("unterminated quoted string".into())),
                }
            }
            words.push((s, true));
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            words.push((s, false));
        }
    }
    let mut it = words.into_iter().peekable();
    let Some((address, false)) = it.next() else {
        return Err(bad("no real server address given".into()));
    };
    let mut real = RawReal {
        line,
        address,
        family: Some(family),
        method: None,
        weight: None,
        request: None,
        receive: None,
        digest: None,
        checkcommand: None,
        check_address: None,
        check_source: None,
        check_source_port: None,
        check_interface: None,
        check_mark: None,
        notify_up: None,
        notify_down: None,
        u_threshold: None,
        l_threshold: None,
    };
    if let Some((w, false)) = it.peek()
        && !w.chars().all(|c| c.is_ascii_digit())
    {
        real.method = Some(w.clone());
        it.next();
    }
    if let Some((w, false)) = it.peek()
        && w.chars().all(|c| c.is_ascii_digit())
    {
        real.weight = Some(
            w.parse()
                .map_err(|_| bad(format!("weight `{w}` is too large")))?,
        );
        it.next();
    }
    if let Some((_, true)) = it.peek() {
        let (req, _) = it.next().expect("peeked");
        match it.next() {
            Some((rec, true)) => {
                real.request = Some(req);
                real.receive = Some(rec);
            }
            _ => {
                return Err(bad(
                    "a per-real request must be followed by a quoted receive string".into(),
                ));
            }
        }
    }
    // Then ` l:N` and ` u:N`, each optional, in that order (ldirectord's parser).
    for (prefix, slot) in [("l:", &mut real.l_threshold), ("u:", &mut real.u_threshold)] {
        if let Some((w, false)) = it.peek()
            && let Some(n) = w.strip_prefix(prefix)
        {
            let n = n
                .parse()
                .map_err(|_| bad(format!("`{w}`: a threshold is a number of connections")))?;
            *slot = Some((line, n));
            it.next();
        }
    }
    if let Some((w, _)) = it.next() {
        return Err(bad(format!("invalid real server line, around `{w}`")));
    }
    Ok(real)
}

/// ldirectord.cf text into the raw form.
fn parse_raw(file: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    let mut r = Reader {
        file,
        raw: RawConfig::default(),
    };
    let mut in_virtual = false;
    for (i, full) in text.lines().enumerate() {
        let line = i + 1;
        let content = strip_comment(full.trim_end_matches('\r')).trim_end();
        if content.trim().is_empty() {
            continue;
        }
        let indented = content.starts_with([' ', '\t']);
        let content = content.trim();
        let (key, value, bare) = match content.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim(), false),
            None => (content, "", true),
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(r.err(
                line,
                key,
                format!("cannot parse `{content}`: expected key=value"),
            ));
        }
        if indented {
            if !in_virtual {
                return Err(r.err(
                    line,
                    key,
                    "indented directive outside a virtual block (global directives start in \
                     the first column)",
                ));
            }
            if bare {
                return Err(r.err(line, key, "expected key=value"));
            }
            // Real lines keep their quotes (per-real request and receive).
            let v = if key == "real" || key == "real6" {
                value
            } else {
                unquote(value)
            };
            r.virtual_directive(line, key, v)?;
            continue;
        }
        in_virtual = false;
        if key == "virtual" || key == "virtual6" {
            if bare || value.is_empty() {
                return Err(r.err(line, key, "no virtual service address given"));
            }
            let family = if key == "virtual6" {
                Family::V6
            } else {
                Family::V4
            };
            let value = unquote(value);
            if family == Family::V4 && value.starts_with('[') {
                return Err(r.err(
                    line,
                    key,
                    "cannot specify an IPv6 address here: use virtual6=",
                ));
            }
            r.raw.virtuals.push(RawVirtual::new(
                Val::new(value.to_string(), line),
                Some(family),
            ));
            in_virtual = true;
            continue;
        }
        r.global(line, key, unquote(value), bare)?;
    }
    Ok(r.raw)
}

#[cfg(test)]
#[path = "ldirectord_tests.rs"]
mod tests;

#[cfg(test)]
mod proptests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::{parse_raw, parse_str};
    use crate::config::to_toml;

    /// One line of an ldirectord.cf made of its own words: keys it knows, values it may or may
    /// not take, addresses only as literals (nothing is looked up).
    fn line() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("virtual"),
            Just("real"),
            Just("checktype"),
            Just("checktimeout"),
            Just("checkinterval"),
            Just("scheduler"),
            Just("service"),
            Just("request"),
            Just("receive"),
            Just("protocol"),
            Just("quiescent"),
            Just("fallback"),
            Just("weight"),
            Just("persistent"),
            Just("netmask"),
            Just("virtualhost"),
            Just("emailalert"),
            Just("logfile"),
            Just("nonsense"),
        ];
        let value = prop_oneof![
            (1u8..255, 1u8..255, 0u16..=65535).prop_map(|(a, b, p)| format!("10.0.{a}.{b}:{p}")),
            (1u8..255, 1u8..255).prop_map(|(a, b)| format!("10.0.{a}.{b}:80 gate {a}")),
            "[0-9]{1,6}".prop_map(|s| s),
            "(rr|wrr|lc|wlc|sh|dh|connect|negotiate|on|off|http|none|tcp|udp|yes|no)"
                .prop_map(|s| s),
            "\"[ -~]{0,16}\"".prop_map(|s| s),
            "[ -~]{0,24}".prop_map(|s| s),
            "[0-9.:>\\-\\[\\]a-f]{0,24}".prop_map(|s| s),
        ];
        (
            any::<bool>(),
            key,
            value,
            proptest::option::of("#[ -~]{0,8}"),
        )
            .prop_map(|(indent, k, v, comment)| {
                format!(
                    "{}{k}={v}{}",
                    if indent { "\t" } else { "" },
                    comment.unwrap_or_default()
                )
            })
    }

    /// An option of the virtual service with a value it takes (mostly).
    fn good_line() -> impl Strategy<Value = String> {
        prop_oneof![
            (1u8..255, 1u8..255, 1u16..=65535, 0u8..10)
                .prop_map(|(a, b, p, w)| format!("\treal=10.0.{a}.{b}:{p} gate {w}")),
            "(connect|negotiate|on|off|[1-9])".prop_map(|s| format!("\tchecktype={s}")),
            "(rr|wrr|lc|wlc|sh|dh|sed|nq)".prop_map(|s| format!("\tscheduler={s}")),
            "(http|none)".prop_map(|s| format!("\tservice={s}")),
            "[a-z/.#]{0,8}".prop_map(|s| format!("\trequest=\"/{s}\"")),
            "[a-z .#\\\\]{0,8}".prop_map(|s| format!("\treceive=\"{s}\"")),
            "(yes|no)".prop_map(|s| format!("\tquiescent={s}")),
            "[1-9]".prop_map(|s| format!("\tchecktimeout={s}")),
            "[1-9]".prop_map(|s| format!("\tcheckinterval={s}")),
            "[a-z]{1,8}".prop_map(|s| format!("\tvirtualhost={s}.example.test")),
            Just("\tfallback=127.0.0.1:80".to_string()),
            "[1-9][0-9]{0,3}".prop_map(|s| format!("\tpersistent={s}")),
        ]
    }

    proptest! {
        /// Any text: the line reader never panics (it refuses, with file:line, or reads).
        #[test]
        fn any_text_is_read_or_refused(text in "[ -~\t\r\n\u{e9}\u{fffd}]{0,400}") {
            let _ = parse_raw(Path::new("p.cf"), &text);
        }

        /// Lines of its own words, in any order: read, resolved and validated or refused,
        /// never a panic; what is read converts to TOML and reads back the same.
        #[test]
        fn configs_of_known_words_read_and_convert_back(
            lines in proptest::collection::vec(
                prop_oneof![9 => good_line(), 1 => line()],
                0..10,
            ),
            vip in (1u8..255, 1u16..=65535),
        ) {
            let text = format!(
                "virtual=198.18.0.{}:{}\n{}\n",
                vip.0,
                vip.1,
                lines.join("\n")
            );
            // About half of these read (measured: 140 of 256).
            if let Ok(config) = parse_str(Path::new("p.cf"), &text) {
                let toml = to_toml(&config);
                let back = crate::config::toml::parse_str(Path::new("p.toml"), &toml)
                    .unwrap_or_else(|e| panic!("{text}\n=> {toml}\n=> {e}"));
                // The first line names the file converted.
                let body = |t: &str| t.split_once('\n').map(|(_, b)| b.to_string());
                prop_assert_eq!(body(&to_toml(&back)), body(&toml), "from:\n{}", text);
            }
        }
    }
}

#[cfg(test)]
#[path = "ldirectord_corpus_tests.rs"]
mod corpus_tests;
