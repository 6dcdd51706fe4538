//! The host's rules that set firewall marks, as `iptables-save`/`ip6tables-save` print them
//! (the mangle table) and as `nft -j list ruleset` prints native nftables rules, each turned
//! into the VIP/protocol/port matches it stands for, or into the reason it cannot be.
//!
//! Only rules that mark packets arriving at the host count: iptables' PREROUTING and INPUT
//! chains of the mangle table (where IPVS sees the marks), nftables base chains on the
//! prerouting and input hooks of the ip, ip6 and inet families. Rules iptables-nft stores in
//! nftables carry `xt` expressions that hide the mark: they are read from iptables-save.

use std::net::IpAddr;

use serde_json::Value;

use super::model::{MarkMatch, Protocol};

/// At most this many addresses or ports one rule may stand for (each match takes one entry
/// of the data plane's service table).
pub(crate) const MAX_PER_RULE: usize = 256;

/// One rule that sets a mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MarkRule {
    /// The mark it sets.
    pub mark: u32,
    /// The rule as its tool prints it, prefixed by the tool (`iptables-save: -A ...`).
    pub text: String,
    /// What it matches, or why lvs cannot express it.
    pub matches: Result<Vec<MarkMatch>, String>,
}

/// Splits an iptables-save line into words, double-quoted strings kept whole.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// A mark value as iptables writes it: `0x3`, `3`, with an optional `/mask`.
fn mark_value(s: &str) -> Option<u32> {
    let v = s.split('/').next()?;
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The addresses of `a[/len]`, or why not.
fn addresses(a: &str, v6: bool) -> Result<Vec<IpAddr>, String> {
    let (ip, len) = match a.split_once('/') {
        Some((ip, l)) => (ip, Some(l)),
        None => (a, None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("`{a}` is not an address lvs can read"))?;
    if ip.is_ipv6() != v6 {
        return Err(format!("`{a}` is not of the rule's address family"));
    }
    let bits = if v6 { 128 } else { 32 };
    let len: u32 = match len {
        None => bits,
        Some(l) => l
            .parse()
            .ok()
            .filter(|&l| l <= bits)
            .ok_or_else(|| format!("`{a}` has a prefix length lvs cannot read (a mask?)"))?,
    };
    let count = 1u128 << (bits - len);
    if count > MAX_PER_RULE as u128 {
        return Err(format!(
            "destination {a} stands for {count} addresses; lvs lists each VIP in its service \
             table and takes at most {MAX_PER_RULE} per rule (write the VIPs)"
        ));
    }
    Ok(match ip {
        IpAddr::V4(v4) => {
            let base = u32::from(v4) & (u32::MAX.checked_shl(32 - len).unwrap_or(0));
            (0..count as u32)
                .map(|i| IpAddr::V4((base + i).into()))
                .collect()
        }
        IpAddr::V6(v6a) => {
            let base = u128::from(v6a) & (u128::MAX.checked_shl(128 - len).unwrap_or(0));
            (0..count).map(|i| IpAddr::V6((base + i).into())).collect()
        }
    })
}

/// Ports of `80`, `80:82` (iptables) or `80-82` (nft ranges arrive as pairs).
fn port_range(lo: u16, hi: u16, out: &mut Vec<u16>) -> Result<(), String> {
    if lo > hi || lo == 0 {
        return Err(format!("port range {lo}:{hi} is not one lvs can read"));
    }
    if usize::from(hi - lo) + 1 + out.len() > MAX_PER_RULE {
        return Err(format!(
            "ports {lo}:{hi} are more than the {MAX_PER_RULE} ports lvs lists per rule (each \
             port takes an entry of its service table)"
        ));
    }
    out.extend(lo..=hi);
    Ok(())
}

fn ports_of(list: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for item in list.split(',') {
        let (lo, hi) = item.split_once(':').unwrap_or((item, item));
        match (lo.parse::<u16>(), hi.parse::<u16>()) {
            (Ok(lo), Ok(hi)) => port_range(lo, hi, &mut out)?,
            _ => {
                return Err(format!(
                    "ports `{list}`: `{item}` is not a port or port range"
                ));
            }
        }
    }
    Ok(out)
}

/// Every (address, protocol, port) of a rule.
fn expand(addrs: &[IpAddr], protos: &[Protocol], ports: &[u16]) -> Vec<MarkMatch> {
    let mut out = Vec::new();
    for &a in addrs {
        for &p in protos {
            for &port in ports {
                out.push(MarkMatch {
                    vip: std::net::SocketAddr::new(a, port),
                    protocol: p,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

const BOTH: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];

/// The rules of `iptables-save` (or `ip6tables-save`, `v6`) output that set a mark.
pub(crate) fn parse_iptables_save(text: &str, v6: bool) -> Vec<MarkRule> {
    let tool = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    let mut table = "";
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix('*') {
            table = if t == "mangle" { "mangle" } else { "" };
            continue;
        }
        if table != "mangle" || !line.starts_with("-A ") {
            continue;
        }
        let w = words(line);
        let Some(j) = w.iter().position(|x| x == "-j" || x == "--jump") else {
            continue;
        };
        if w.get(j + 1).map(String::as_str) != Some("MARK") {
            continue;
        }
        let mut mark = None;
        let mut i = j + 2;
        while i < w.len() {
            match w[i].as_str() {
                "--set-mark" | "--set-xmark" | "--or-mark" | "--xor-mark" => {
                    mark = w.get(i + 1).and_then(|v| mark_value(v));
                    i += 2;
                }
                _ => i += 1,
            }
        }
        // `--and-mark` (or a mark of 0) clears bits: no packet is marked by it.
        let Some(mark) = mark.filter(|&m| m != 0) else {
            continue;
        };
        let chain = w.get(1).map(String::as_str).unwrap_or("");
        let matches = match chain {
            "PREROUTING" | "INPUT" => iptables_matches(&w[2..j], v6),
            "OUTPUT" | "FORWARD" | "POSTROUTING" => continue,
            c => Err(format!(
                "it is in the chain {c}: lvs reads only rules written directly in PREROUTING \
                 (or INPUT) of the mangle table"
            )),
        };
        out.push(MarkRule {
            mark,
            text: format!("{tool}: {line}"),
            matches,
        });
    }
    out
}

fn iptables_matches(w: &[String], v6: bool) -> Result<Vec<MarkMatch>, String> {
    let mut addrs: Option<Vec<IpAddr>> = None;
    let mut protos: Option<Vec<Protocol>> = None;
    let mut ports: Option<Vec<u16>> = None;
    let mut i = 0;
    let arg = |i: usize| {
        w.get(i + 1)
            .map(String::as_str)
            .ok_or_else(|| format!("`{}` without a value", w[i]))
    };
    while i < w.len() {
        let opt = w[i].as_str();
        match opt {
            "!" => {
                return Err(format!(
                    "it negates `{}`: lvs can only list what a rule matches",
                    w.get(i + 1).map_or("", String::as_str)
                ));
            }
            "-d" | "--destination" | "--dst" => {
                let mut all = Vec::new();
                for a in arg(i)?.split(',') {
                    all.extend(addresses(a, v6)?);
                }
                addrs = Some(all);
                i += 2;
            }
            "-p" | "--protocol" => {
                protos = Some(match arg(i)? {
                    "tcp" | "6" => vec![Protocol::Tcp],
                    "udp" | "17" => vec![Protocol::Udp],
                    "all" | "0" => BOTH.to_vec(),
                    p => {
                        return Err(format!(
                            "it matches protocol {p}: lvs balances TCP and UDP only"
                        ));
                    }
                });
                i += 2;
            }
            "-m" | "--match" => {
                match arg(i)? {
                    "tcp" | "udp" | "multiport" | "comment" => {}
                    m => {
                        return Err(format!(
                            "it uses the match `-m {m}`, which lvs cannot express as \
                             VIP/protocol/port"
                        ));
                    }
                }
                i += 2;
            }
            "--comment" => i += 2,
            "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                let mut p = ports.take().unwrap_or_default();
                p.extend(ports_of(arg(i)?)?);
                ports = Some(p);
                i += 2;
            }
            o => {
                let what = match o {
                    "-s" | "--source" | "--src" => "the source address (-s)".to_string(),
                    "-i" | "--in-interface" => "the incoming interface (-i)".to_string(),
                    "--sport" | "--source-port" | "--sports" | "--source-ports" => {
                        format!("the source port ({o})")
                    }
                    o => format!("`{o}`"),
                };
                return Err(format!(
                    "it matches on {what}, which lvs cannot turn into VIP/protocol/port matches \
                     (XDP looks a packet's service up by destination address, protocol and port)"
                ));
            }
        }
    }
    let Some(addrs) = addrs else {
        return Err(
            "it has no destination address (-d): lvs balances packets to VIPs; add -d VIP".into(),
        );
    };
    let protos = protos.unwrap_or_else(|| BOTH.to_vec());
    let ports = ports.unwrap_or_else(|| vec![0]);
    Ok(expand(&addrs, &protos, &ports))
}

/// The native rules of `nft -j list ruleset` output that set `meta mark`.
pub(crate) fn parse_nft_json(text: &str) -> Result<Vec<MarkRule>, String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("nft's JSON cannot be read: {e}"))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft's JSON has no `nftables` list")?;
    // Base chains on the hooks that see arriving packets: (family, table, chain).
    let mut hooked: Vec<(String, String, String)> = Vec::new();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    for it in items {
        if let Some(c) = it.get("chain")
            && matches!(
                c.get("hook").and_then(Value::as_str),
                Some("prerouting" | "input")
            )
        {
            hooked.push((s(c, "family"), s(c, "table"), s(c, "name")));
        }
    }
    let mut out = Vec::new();
    for it in items {
        let Some(r) = it.get("rule") else { continue };
        let (family, table, chain) = (s(r, "family"), s(r, "table"), s(r, "chain"));
        if !matches!(family.as_str(), "ip" | "ip6" | "inet") {
            continue;
        }
        let expr = r
            .get("expr")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // iptables-nft's rules: their marks are read from iptables-save.
        if expr.iter().any(|e| e.get("xt").is_some()) {
            continue;
        }
        let mut mark = None;
        for e in &expr {
            if let Some(m) = e.get("mangle")
                && m.pointer("/key/meta/key").and_then(Value::as_str) == Some("mark")
            {
                mark = Some(
                    m.get("value")
                        .and_then(nft_number)
                        .ok_or_else(|| "the mark is computed, not a constant".to_string()),
                );
            }
        }
        let Some(mark) = mark else { continue };
        let handle = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
        let text = format!(
            "nft: table {family} {table} chain {chain} handle {handle} ({})",
            nft_text(&expr)
        );
        let (mark, matches) = match mark {
            Ok(0) => continue,
            Ok(m) => {
                let on_hook = hooked.contains(&(family.clone(), table.clone(), chain.clone()));
                let matches = if on_hook {
                    nft_matches(&expr, &family)
                } else {
                    Err(format!(
                        "it is in the chain {chain}, not a base chain on the prerouting or input \
                         hook: lvs reads only rules written directly there"
                    ))
                };
                (m, matches)
            }
            // A computed mark: not knowable, named by the rule.
            Err(why) => (0, Err(why)),
        };
        out.push(MarkRule {
            mark,
            text,
            matches,
        });
    }
    Ok(out)
}

fn nft_number(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => mark_value(s),
        _ => None,
    }
}

/// A short text of a rule's statements for messages.
fn nft_text(expr: &[Value]) -> String {
    expr.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Values of a match's right side: a scalar, a set, a prefix or a range.
fn nft_values(right: &Value) -> Vec<&Value> {
    match right.get("set").and_then(Value::as_array) {
        Some(set) => set.iter().collect(),
        None => vec![right],
    }
}

fn nft_matches(expr: &[Value], family: &str) -> Result<Vec<MarkMatch>, String> {
    let mut addrs: Option<Vec<IpAddr>> = None;
    let mut protos: Option<Vec<Protocol>> = None;
    let mut ports: Option<Vec<u16>> = None;
    for e in expr {
        let Some(m) = e.get("match") else {
            // Mark, counters, logging and verdicts do not change what is matched.
            let k = e.as_object().and_then(|o| o.keys().next().cloned());
            match k.as_deref() {
                Some("mangle" | "counter" | "log" | "accept" | "continue" | "return") => continue,
                _ => {
                    return Err(format!(
                        "its statement {e} is not one lvs can turn into VIP/protocol/port matches"
                    ));
                }
            }
        };
        let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
        if op != "==" && op != "in" {
            return Err(format!(
                "it compares with `{op}` ({e}): lvs can only list what a rule matches"
            ));
        }
        let left = m.get("left").cloned().unwrap_or(Value::Null);
        let right = m.get("right").cloned().unwrap_or(Value::Null);
        let payload = |k: &str| {
            left.pointer(&format!("/payload/{k}"))
                .and_then(Value::as_str)
        };
        let meta = left.pointer("/meta/key").and_then(Value::as_str);
        match (payload("protocol"), payload("field"), meta) {
            (Some(f @ ("ip" | "ip6")), Some("daddr"), _) => {
                let v6 = f == "ip6";
                let mut all = Vec::new();
                for v in nft_values(&right) {
                    if let Some(a) = v.as_str() {
                        all.extend(addresses(a, v6)?);
                    } else if let Some(p) = v.get("prefix") {
                        let a = format!(
                            "{}/{}",
                            p.get("addr").and_then(Value::as_str).unwrap_or(""),
                            p.get("len").and_then(Value::as_u64).unwrap_or(0)
                        );
                        all.extend(addresses(&a, v6)?);
                    } else {
                        return Err(format!("its destination {right} is not one lvs can list"));
                    }
                }
                addrs = Some(all);
            }
            (Some(p @ ("tcp" | "udp" | "th")), Some("dport"), _) => {
                let proto = match p {
                    "tcp" => Some(vec![Protocol::Tcp]),
                    "udp" => Some(vec![Protocol::Udp]),
                    _ => None,
                };
                if let Some(proto) = proto {
                    protos = Some(proto);
                }
                let mut all = Vec::new();
                for v in nft_values(&right) {
                    let n = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok());
                    if let Some(p) = n(v) {
                        port_range(p, p, &mut all)?;
                    } else if let Some([lo, hi]) =
                        v.get("range").and_then(Value::as_array).map(Vec::as_slice)
                        && let (Some(lo), Some(hi)) = (n(lo), n(hi))
                    {
                        port_range(lo, hi, &mut all)?;
                    } else {
                        return Err(format!(
                            "its destination port {right} is not one lvs can list"
                        ));
                    }
                }
                ports = Some(all);
            }
            (_, _, Some("l4proto"))
            | (Some("ip"), Some("protocol"), _)
            | (Some("ip6"), Some("nexthdr"), _) => {
                let mut all = Vec::new();
                for v in nft_values(&right) {
                    match v
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| v.as_u64().map(|n| n.to_string()))
                        .as_deref()
                    {
                        Some("tcp" | "6") => all.push(Protocol::Tcp),
                        Some("udp" | "17") => all.push(Protocol::Udp),
                        _ => {
                            return Err(format!(
                                "it matches protocol {v}: lvs balances TCP and UDP only"
                            ));
                        }
                    }
                }
                protos = Some(all);
            }
            (_, _, Some("nfproto")) => {}
            _ => {
                return Err(format!(
                    "it matches on {left}, which lvs cannot turn into VIP/protocol/port matches \
                     (XDP looks a packet's service up by destination address, protocol and port)"
                ));
            }
        }
    }
    let Some(addrs) = addrs else {
        return Err(format!(
            "it has no destination address ({family} daddr): lvs balances packets to VIPs; add \
             `ip daddr VIP`"
        ));
    };
    let protos = protos.unwrap_or_else(|| BOTH.to_vec());
    let ports = ports.unwrap_or_else(|| vec![0]);
    Ok(expand(&addrs, &protos, &ports))
}

#[cfg(test)]
#[path = "fwmark_rules_tests.rs"]
mod tests;
