//! The ldap and ldaps negotiate checks, as ldirectord's `check_ldap` (`Net::LDAP`), through
//! the `ldap3` crate (ldaps: over TLS, the certificate verified only with `verify_tls`, as
//! the other TLS checks): a simple bind (as `login` with `passwd` when both are set, else anonymous), then a
//! base-scope search of the DN in `request` (its leading `/` removed; none: the root DSE) for
//! `(objectClass=*)`. The real is up when exactly one entry comes back and, when `receive` is
//! set, its DN matches it.
//!
//! Bounds: the whole exchange runs under the negotiate timeout; the search asks for no
//! attributes (`1.1`) and at most two entries, so the answer is a few hundred bytes (`ldap3`
//! has no cap of its own on what it reads; the timeout bounds a server that sends more).

use std::{net::SocketAddr, time::Duration};

use regex::Regex;

/// Why an ldap check failed.
#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    /// Connecting, binding or searching failed.
    #[error("ldap: {stage} failed: {source}")]
    Ldap {
        /// connect, bind or search.
        stage: &'static str,
        /// The client's error (an LDAP result code, or the cause).
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// The search did not find exactly one entry.
    #[error("ldap: the base search of {base:?} found {count} entries, not 1")]
    Count {
        /// The base DN.
        base: String,
        /// What it found.
        count: usize,
    },
    /// The entry's DN does not match `receive`.
    #[error("ldap: DN {dn:?} does not match {pattern:?}")]
    NoMatch {
        /// The DN found.
        dn: String,
        /// `receive`.
        pattern: String,
    },
    /// No answer within the timeout.
    #[error("ldap: no answer within {timeout:?}")]
    Timeout {
        /// The negotiate timeout.
        timeout: Duration,
    },
}

/// A prepared ldap check of one real.
#[derive(Clone, Debug)]
pub struct LdapCheck {
    /// Where the real's LDAP server listens.
    pub addr: SocketAddr,
    /// `ldaps`: LDAP over TLS with this client configuration.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// `login` and `passwd`, when both are set (else an anonymous bind).
    pub bind: Option<(String, String)>,
    /// `request`: the base DN.
    pub base: String,
    /// `receive`: what the DN must match.
    pub receive: Option<Regex>,
    /// The whole exchange's timeout.
    pub timeout: Duration,
}

impl LdapCheck {
    /// Runs the check: the DN found when up.
    pub async fn run(&self) -> Result<String, LdapError> {
        tokio::time::timeout(self.timeout, self.exchange())
            .await
            .unwrap_or(Err(LdapError::Timeout {
                timeout: self.timeout,
            }))
    }

    async fn exchange(&self) -> Result<String, LdapError> {
        let fail = |stage| {
            move |e: ldap3::LdapError| LdapError::Ldap {
                stage,
                source: Box::new(e),
            }
        };
        let scheme = if self.tls.is_some() { "ldaps" } else { "ldap" };
        let url = format!("{scheme}://{}", self.addr);
        let mut settings = ldap3::LdapConnSettings::new().set_conn_timeout(self.timeout);
        if let Some(config) = &self.tls {
            settings = settings.set_config(config.clone());
        }
        let (conn, mut ldap) = ldap3::LdapConnAsync::with_settings(settings, &url)
            .await
            .map_err(fail("connect"))?;
        let task = tokio::spawn(async move {
            let _ = conn.drive().await;
        });
        let result = async {
            let (dn, pw) = match &self.bind {
                Some((dn, pw)) if !dn.is_empty() && !pw.is_empty() => (dn.as_str(), pw.as_str()),
                _ => ("", ""),
            };
            ldap.simple_bind(dn, pw)
                .await
                .and_then(|r| r.success())
                .map_err(fail("bind"))?;
            let base = self.base.trim_start_matches('/');
            let (entries, _) = ldap
                .with_search_options(ldap3::SearchOptions::new().sizelimit(2))
                .search(base, ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"])
                .await
                .and_then(|r| r.success())
                .map_err(fail("search"))?;
            let _ = ldap.unbind().await;
            if entries.len() != 1 {
                return Err(LdapError::Count {
                    base: base.to_string(),
                    count: entries.len(),
                });
            }
            let dn = entries
                .into_iter()
                .next()
                .map(|e| ldap3::SearchEntry::construct(e).dn)
                .unwrap_or_default();
            if let Some(re) = &self.receive
                && !re.is_match(&dn)
            {
                return Err(LdapError::NoMatch {
                    dn,
                    pattern: re.as_str().to_string(),
                });
            }
            Ok(format!("ldap: {dn:?}"))
        }
        .await;
        task.abort();
        result
    }
}

#[cfg(test)]
#[path = "ldap_tests.rs"]
mod tests;
