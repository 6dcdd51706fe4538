//! `maintenancedir`: a file named after a real forces it down.
//!
//! As ldirectord's `_check_real_for_maintenance`, in this order: `IP:port`, `IP`,
//! `hostname:port`, `hostname`, `shortname:port`, `shortname`, where the port is the real's
//! port, the hostname comes from a reverse lookup of the real's address, and the short name is
//! the hostname's first label when it matches `^[a-z][a-z0-9-]+\.`. IPv6 addresses are tried
//! both bare (`::1`) and bracketed (`[::1]`), since ldirectord keeps the brackets of its config.

use std::{
    collections::HashSet,
    ffi::CStr,
    io,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Errors of the maintenance check.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// The directory could not be listed.
    #[error("cannot list maintenance directory {path}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A candidate file could not be tested.
    #[error("cannot test maintenance file {path}")]
    Stat {
        /// The file tested.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The file names that put a real in maintenance, in ldirectord's order.
///
/// `real` is the real's address and port; `hostname` its reverse-resolved name, if any.
pub fn candidate_names(real: SocketAddr, hostname: Option<&str>) -> Vec<String> {
    let port = real.port();
    let mut names = Vec::with_capacity(8);
    match real.ip() {
        IpAddr::V4(ip) => {
            names.push(format!("{ip}:{port}"));
            names.push(ip.to_string());
        }
        IpAddr::V6(ip) => {
            names.push(format!("[{ip}]:{port}"));
            names.push(format!("{ip}:{port}"));
            names.push(format!("[{ip}]"));
            names.push(ip.to_string());
        }
    }
    if let Some(host) = hostname.filter(|h| !h.is_empty()) {
        names.push(format!("{host}:{port}"));
        names.push(host.to_string());
        if let Some(short) = short_name(host) {
            names.push(format!("{short}:{port}"));
            names.push(short.to_string());
        }
    }
    names
}

/// The first label of `host` when it matches ldirectord's `^([a-z][a-z0-9\-]+)\.`.
fn short_name(host: &str) -> Option<&str> {
    let (first, _) = host.split_once('.')?;
    let mut chars = first.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && first.len() >= 2
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then_some(first)
}

/// Returns the first of `names` that exists in `dir` (following symlinks, as Perl's `-e`).
///
/// A plain `stat` per name: cheap on a local directory, so it is done inline.
pub fn find_in(dir: &Path, names: &[String]) -> Result<Option<String>, MaintenanceError> {
    for name in names {
        let path = dir.join(name);
        match path.try_exists() {
            Ok(true) => return Ok(Some(name.clone())),
            Ok(false) => {}
            // A name that is not a valid path component cannot be there.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(source) => return Err(MaintenanceError::Stat { path, source }),
        }
    }
    Ok(None)
}

/// A `maintenancedir` shared by every target, its listing cached for a short while so that
/// thousands of checks per second cost one directory read per refresh, not a `stat` each.
#[derive(Debug)]
pub struct MaintenanceDir {
    dir: PathBuf,
    refresh: Duration,
    cache: Mutex<Listing>,
}

#[derive(Debug, Default)]
struct Listing {
    read_at: Option<Instant>,
    names: HashSet<String>,
    /// The last listing error, logged once per change.
    error: Option<String>,
}

impl MaintenanceDir {
    /// The directory `dir`, re-listed at most every `refresh`.
    pub fn new(dir: impl Into<PathBuf>, refresh: Duration) -> Self {
        MaintenanceDir {
            dir: dir.into(),
            refresh,
            cache: Mutex::new(Listing::default()),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The first of `names` present (as Perl's `-e`: dangling symlinks do not count). A
    /// directory that cannot be listed holds nothing (logged once per distinct error).
    pub fn find(&self, names: &[String]) -> Option<String> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.read_at.is_none_or(|t| t.elapsed() >= self.refresh) {
            match self.list() {
                Ok(names) => {
                    cache.names = names;
                    cache.error = None;
                }
                Err(e) => {
                    let text = e.to_string();
                    if cache.error.as_ref() != Some(&text) {
                        tracing::warn!(error = %text, source = ?std::error::Error::source(&e),
                            "maintenance directory unreadable; no real is in maintenance");
                        cache.error = Some(text);
                    }
                    cache.names.clear();
                }
            }
            cache.read_at = Some(Instant::now());
        }
        names.iter().find(|n| cache.names.contains(*n)).cloned()
    }

    fn list(&self) -> Result<HashSet<String>, MaintenanceError> {
        let read_err = |source| MaintenanceError::ReadDir {
            path: self.dir.clone(),
            source,
        };
        let mut names = HashSet::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if entry.path().try_exists().unwrap_or(false) {
                names.insert(name);
            }
        }
        Ok(names)
    }
}

/// Reverse-resolves `ip` with the system resolver (`getnameinfo`, `NI_NAMEREQD`), blocking.
///
/// Run it on a blocking thread, once per target, not per check.
pub fn reverse_lookup(ip: IpAddr) -> Option<String> {
    let addr = socket2::SockAddr::from(SocketAddr::new(ip, 0));
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: `addr` is a valid sockaddr of the given length and `host` a writable buffer of
    // the given length; no service buffer is asked for.
    let rc = unsafe {
        libc::getnameinfo(
            addr.as_ptr().cast(),
            addr.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    name.to_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_ldirectord_order() {
        let real: SocketAddr = "10.0.0.5:80".parse().unwrap();
        assert_eq!(
            candidate_names(real, Some("web1.example.com")),
            vec![
                "10.0.0.5:80",
                "10.0.0.5",
                "web1.example.com:80",
                "web1.example.com",
                "web1:80",
                "web1"
            ]
        );
        assert_eq!(candidate_names(real, None), vec!["10.0.0.5:80", "10.0.0.5"]);
    }

    #[test]
    fn short_name_rules() {
        assert_eq!(short_name("web-1.example"), Some("web-1"));
        assert_eq!(short_name("localhost"), None, "needs a dot");
        assert_eq!(
            short_name("Web.example"),
            None,
            "lowercase only, as ldirectord"
        );
        assert_eq!(short_name("1web.example"), None);
        assert_eq!(short_name("w.example"), None, "at least two characters");
    }

    #[test]
    fn ipv6_names_bare_and_bracketed() {
        let real: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let names = candidate_names(real, None);
        assert!(names.contains(&"[2001:db8::1]:443".to_string()));
        assert!(names.contains(&"2001:db8::1".to_string()));
    }

    #[test]
    fn finds_files_in_dir() {
        let dir = std::env::temp_dir().join(format!("lvs-maint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let real: SocketAddr = "10.1.2.3:8080".parse().unwrap();
        let names = candidate_names(real, Some("app.example.org"));
        assert_eq!(find_in(&dir, &names).unwrap(), None);
        std::fs::write(dir.join("app"), b"").unwrap();
        assert_eq!(find_in(&dir, &names).unwrap().as_deref(), Some("app"));
        std::fs::write(dir.join("10.1.2.3:8080"), b"").unwrap();
        assert_eq!(
            find_in(&dir, &names).unwrap().as_deref(),
            Some("10.1.2.3:8080")
        );
        // Another port of the same IP does not match the port-specific file.
        let other = candidate_names("10.1.2.3:9090".parse().unwrap(), None);
        assert_eq!(find_in(&dir, &other).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cached_listing_refreshes() {
        let dir = std::env::temp_dir().join(format!("lvs-maint-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let names = candidate_names("10.9.9.9:80".parse().unwrap(), None);
        let m = MaintenanceDir::new(&dir, Duration::from_millis(100));
        assert_eq!(m.find(&names), None);
        std::fs::write(dir.join("10.9.9.9"), b"").unwrap();
        assert_eq!(m.find(&names), None, "cached listing");
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(m.find(&names).as_deref(), Some("10.9.9.9"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("missing"), dir.join("10.9.9.9:80")).unwrap();
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(
                m.find(&names).as_deref(),
                Some("10.9.9.9"),
                "dangling link ignored"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(m.find(&names), None, "a missing directory holds nothing");
    }
}
