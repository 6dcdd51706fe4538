//! Alert mail: the `smtp` target, envelope and header addresses, the message (its text made
//! printable) and its delivery over `smtp`.

use std::{
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use super::{AlertError, MailSettings, smtp};

/// `host:port` for the `smtp` setting: `host`, `host:port`, `ip`, `[ipv6]:port`.
pub(super) fn smtp_target(server: &str) -> Option<(String, u16)> {
    let s = server.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip().to_string(), sa.port()));
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Some((ip.to_string(), 25));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| (ip.to_string(), 25));
    }
    // A name only when it looks like one (the config refuses anything else): the resolver
    // reads `10.0.0.010` as inet_aton(3) does.
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && !h.is_empty() => (h, p.parse::<u16>().ok()?),
        Some(_) => return None,
        None => (s, 25),
    };
    crate::config::not_a_host_name(host)
        .is_none()
        .then(|| (host.to_string(), port))
}

/// The address inside `Name <addr>`, or the whole thing when it has no angle brackets.
pub(super) fn envelope_address(from: &str) -> Option<String> {
    let s = match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => &from[a + 1..b],
        _ => from,
    };
    let s = s.trim();
    (!s.is_empty() && !s.contains(char::is_whitespace)).then(|| s.to_string())
}

pub(super) async fn send_mail(
    mail: &MailSettings,
    subject: &str,
    body: &str,
) -> Result<(), AlertError> {
    match tokio::time::timeout(mail.timeout, smtp_deliver(mail, subject, body)).await {
        Ok(r) => r,
        Err(_) => Err(AlertError::SmtpTimeout {
            server: mail.server.clone(),
            timeout: mail.timeout,
        }),
    }
}

/// `addr` as an envelope address (`lettre` checks its form); a bare local part (`root`) is
/// qualified with this host's name, as a mail server does.
pub(super) fn mail_address(addr: &str, hostname: &str) -> Result<lettre::Address, AlertError> {
    let bad = |source| AlertError::BadAddress {
        address: addr.to_string(),
        source,
    };
    let plain = envelope_address(addr).unwrap_or_else(|| addr.trim().to_string());
    if plain.contains('@') {
        plain.parse().map_err(bad)
    } else {
        lettre::Address::new(&plain, hostname).map_err(bad)
    }
}

/// `text` as a mailbox for a header: `Name <addr>` or `addr`; when `lettre` cannot read it as
/// one, the envelope address alone.
fn mailbox(text: &str, addr: &lettre::Address) -> lettre::message::Mailbox {
    text.trim()
        .parse()
        .unwrap_or_else(|_| lettre::message::Mailbox::new(None, addr.clone()))
}

/// One delivery over `lettre`'s SMTP client: connect, greeting and EHLO, MAIL, RCPT for every
/// recipient, DATA, QUIT (STARTTLS and AUTH as configured; see [`smtp::open`]). The message is built by `lettre`
/// (headers encoded, Message-ID, Date, the body's line ends normalised and dot-stuffed).
async fn smtp_deliver(mail: &MailSettings, subject: &str, body: &str) -> Result<(), AlertError> {
    let server = mail.server.as_str();
    let (host, port) = smtp_target(server).ok_or_else(|| AlertError::BadSmtpServer {
        server: server.to_string(),
    })?;
    // Every address is checked before anything is sent.
    let from = mail_address(&mail.envelope_from, &mail.hostname)?;
    let to = mail
        .recipients
        .iter()
        .map(|r| mail_address(r, &mail.hostname))
        .collect::<Result<Vec<_>, _>>()?;
    let mut message = lettre::Message::builder()
        .from(mailbox(&mail.from_header, &from))
        .subject(printable(subject))
        .date(SystemTime::now())
        .message_id(Some(format!(
            "<{}.{}@{}>",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            std::process::id(),
            mail.hostname
        )))
        .header(lettre::message::header::ContentType::TEXT_PLAIN);
    for (text, addr) in mail.recipients.iter().zip(&to) {
        message = message.to(mailbox(text, addr));
    }
    let envelope = lettre::address::Envelope::new(Some(from), to)
        .map_err(|source| AlertError::Message { source })?;
    // Plain 7-bit text as ldirectord's mails when it is (ASCII, lines under 998 bytes);
    // quoted-printable or base64 otherwise.
    let body = lettre::message::Body::new_with_encoding(
        printable_lines(body),
        lettre::message::header::ContentTransferEncoding::SevenBit,
    )
    .unwrap_or_else(lettre::message::Body::new);
    let message = message
        .body(body)
        .map_err(|source| AlertError::Message { source })?;

    let mut conn = smtp::open(server, &host, port, &mail.hostname, &mail.security).await?;
    conn.send(&envelope, &message.formatted())
        .await
        .map_err(|e| smtp::smtp_error(server, "message", e))?;
    // The mail is accepted; a failing QUIT changes nothing.
    let _ = conn.quit().await;
    Ok(())
}

/// `text` with every control character (CR, LF, ESC, … and C1) written as an escape (`\r`,
/// `\u{1b}`): text from a real server (an HTTP reason phrase, a banner) can go into a log line
/// or a mail without ending or forging a line.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// [`printable`] line by line: the line ends (LF or CRLF) kept as CRLF, any other control
/// character, a bare CR included, escaped.
pub(super) fn printable_lines(text: &str) -> String {
    text.split('\n')
        .map(|l| printable(l.strip_suffix('\r').unwrap_or(l)))
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// The message after `DATA` as the agent wrote it before it sent mail with `lettre` (kept for
/// the tests that check header folding and dot-stuffing).
#[cfg(test)]
pub(super) fn format_message(
    mail: &MailSettings,
    subject: &str,
    body: &str,
    now: SystemTime,
) -> String {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let mut m = String::new();
    m.push_str(&format!("From: {}\r\n", clean(&mail.from_header)));
    m.push_str(&format!("To: {}\r\n", clean(&mail.recipients.join(", "))));
    m.push_str(&format!("Subject: {}\r\n", clean(subject)));
    m.push_str(&format!("Date: {}\r\n", rfc2822_date(now)));
    m.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    for line in printable_lines(body).split("\r\n") {
        if line.starts_with('.') {
            m.push('.');
        }
        m.push_str(line);
        m.push_str("\r\n");
    }
    m.push_str(".\r\n");
    m
}

/// `Tue, 24 Nov 2026 19:04:50 +0000`.
#[cfg(test)]
pub(super) fn rfc2822_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WD[days.rem_euclid(7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month (1-12), day (1-31) of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
