//! Keeping every server's link-layer address known: a thread that resolves the addresses it
//! is given (actively, over netlink), follows the kernel's neighbour table for changes, and
//! reports each server's [`Target`] to the agent whenever it changes.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::mpsc as std_mpsc,
    time::{Duration, Instant},
};

use tokio::sync::mpsc;

use crate::{
    dataplane::Target,
    neighbour::{self, NeighbourWatch},
};

/// The first delay before an unresolved address is probed again; it doubles after each
/// failed probe up to [`RETRY_MAX`] (a server that comes up may be noticed sooner: the kernel
/// announces its entry when anything resolves it, a health check included, though not a check
/// of a silent address, which sends nothing).
const RETRY: Duration = Duration::from_secs(1);
/// The longest delay between two probes of an unresolved address: how late a silent real that
/// answers again can be noticed (each probe is a few ARP broadcasts; 5,000 silent reals cost
/// 500 probes a second).
const RETRY_MAX: Duration = Duration::from_secs(10);
/// How often every address's neighbour entry is re-read (besides the change notifications).
const REFRESH: Duration = Duration::from_secs(5);
/// How often the followed addresses are looked at.
const ROUND: Duration = Duration::from_millis(200);
/// How long a looked-up route is reused.
const ROUTE_REFRESH: Duration = Duration::from_secs(30);

/// A server's target changed (`None`: it cannot be reached now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUpdate {
    /// The server.
    pub addr: IpAddr,
    /// How to reach it now.
    pub target: Option<Target>,
    /// Why it cannot be reached, when it cannot.
    pub reason: Option<String>,
    /// It does not answer address resolution: the kernel's entry went `FAILED`, and no valid
    /// one has come since. Health checks send it nothing meanwhile (see
    /// [`crate::health::silent`]); this thread goes on probing it.
    pub silent: bool,
}

/// The handle to the resolver thread.
pub struct Neighbours {
    addrs: std_mpsc::Sender<HashSet<IpAddr>>,
}

impl Neighbours {
    /// Starts the resolver thread; updates arrive on the returned channel.
    pub fn spawn() -> (Neighbours, mpsc::UnboundedReceiver<TargetUpdate>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (addrs_tx, addrs_rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("lvs-neighbours".into())
            .spawn(move || Resolver::new(tx).run(addrs_rx))
            .expect("spawning the neighbour thread");
        (Neighbours { addrs: addrs_tx }, rx)
    }

    /// The addresses to keep resolved (replaces the previous set).
    pub fn follow(&self, addrs: HashSet<IpAddr>) {
        // The thread only stops when this handle is dropped.
        let _ = self.addrs.send(addrs);
    }
}

struct Resolver {
    updates: mpsc::UnboundedSender<TargetUpdate>,
    known: HashMap<IpAddr, Option<Target>>,
    /// Addresses followed but not yet reported either way: an address unresolved from the
    /// start is reported once its first probe has had a second to get an answer.
    unreported: HashSet<IpAddr>,
    /// Addresses whose resolution failed and has not succeeded since (see
    /// [`TargetUpdate::silent`]).
    silent: HashSet<IpAddr>,
    /// Unresolved addresses: when to probe next, and the delay after that.
    next_try: HashMap<IpAddr, (Instant, Duration)>,
    /// Routes looked up, with when.
    routes: HashMap<IpAddr, (Instant, Result<neighbour::Route, String>)>,
    /// The kernel's tables as last read, the neighbour table kept current by notifications.
    snap: Snapshot,
    /// The netlink connection for route lookups and probes (opened again after an error).
    rtnl: Option<neighbour::Rtnl>,
}

/// The kernel's neighbour table and local addresses, read at once (one dump each) instead of
/// per address.
#[derive(Default)]
struct Snapshot {
    neighbours: HashMap<(IpAddr, u32), (neighbour::NudState, Option<neighbour::MacAddr>)>,
    local: HashSet<IpAddr>,
}

impl Snapshot {
    fn read() -> Result<Snapshot, String> {
        Ok(Snapshot {
            neighbours: neighbour::neighbour_table().map_err(|e| e.to_string())?,
            local: neighbour::local_addresses().map_err(|e| e.to_string())?,
        })
    }

    fn is_local(&self, addr: IpAddr) -> bool {
        let loopback = match addr {
            IpAddr::V4(a) => a.is_loopback(),
            IpAddr::V6(a) => {
                a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        };
        loopback || self.local.contains(&addr)
    }
}

impl Resolver {
    fn new(updates: mpsc::UnboundedSender<TargetUpdate>) -> Self {
        Resolver {
            updates,
            known: HashMap::new(),
            unreported: HashSet::new(),
            silent: HashSet::new(),
            next_try: HashMap::new(),
            routes: HashMap::new(),
            snap: Snapshot::default(),
            rtnl: None,
        }
    }

    /// Runs `f` on the netlink connection, opening it first if needed; a socket error closes
    /// it, so the next call starts on a fresh one.
    fn with_rtnl<T>(
        &mut self,
        f: impl FnOnce(&mut neighbour::Rtnl) -> Result<T, neighbour::NeighbourError>,
    ) -> Result<T, String> {
        let rtnl = match self.rtnl.as_mut() {
            Some(r) => r,
            None => self
                .rtnl
                .insert(neighbour::Rtnl::open().map_err(|e| e.to_string())?),
        };
        f(rtnl).map_err(|e| {
            if matches!(e, neighbour::NeighbourError::Socket { .. }) {
                self.rtnl = None;
            }
            e.to_string()
        })
    }

    fn run(mut self, addrs: std_mpsc::Receiver<HashSet<IpAddr>>) {
        let mut watch: Option<NeighbourWatch> = neighbour::watch()
            .map_err(|e| tracing::warn!("not following neighbour changes: {e}"))
            .ok();
        let mut last_refresh = Instant::now();
        let mut last_retries = Instant::now();
        loop {
            let mut new = HashSet::new();
            match addrs.try_recv() {
                Ok(set) => new = self.set(set),
                Err(std_mpsc::TryRecvError::Disconnected) => return,
                Err(std_mpsc::TryRecvError::Empty) => {}
            }
            let mut changed = HashSet::new();
            let mut lost = false;
            if let Some(w) = watch.as_mut() {
                // Rounds every 200 ms: the notifications of a round are read together at its
                // end (one wakeup per round however many come, and a flood of them costs one
                // pass over the followed addresses).
                std::thread::sleep(ROUND);
                loop {
                    match w.try_next() {
                        Ok(Some(ev)) => {
                            let key = (ev.addr, ev.ifindex);
                            match ev.kind {
                                neighbour::NeighbourEventKind::Deleted => {
                                    self.snap.neighbours.remove(&key);
                                }
                                _ => {
                                    self.snap.neighbours.insert(key, (ev.state, ev.mac));
                                }
                            }
                            changed.insert(ev.addr);
                        }
                        Ok(None) => break,
                        Err(neighbour::NeighbourError::EventsLost) => lost = true,
                        Err(e) => {
                            tracing::warn!("neighbour notifications stopped: {e}");
                            watch = None;
                            break;
                        }
                    }
                }
            } else {
                std::thread::sleep(ROUND);
            }
            if lost {
                // The socket stays usable: re-read everything instead.
                tracing::debug!("neighbour notifications were lost: re-reading every address");
            }
            let refresh = lost || !new.is_empty() || last_refresh.elapsed() >= REFRESH;
            if refresh {
                last_refresh = Instant::now();
                if let Some(r) = self.rtnl.as_mut() {
                    r.forget_links();
                }
                match Snapshot::read() {
                    Ok(snap) => self.snap = snap,
                    Err(e) => tracing::warn!("reading the neighbour table: {e}"),
                }
            }
            let now = Instant::now();
            // Retries are seconds apart: unresolved addresses are looked at once a second.
            let retries = now.duration_since(last_retries) >= RETRY;
            if retries {
                last_retries = now;
            }
            let due: Vec<IpAddr> = if refresh {
                self.known.keys().copied().collect()
            } else {
                let mut due: HashSet<IpAddr> = new
                    .iter()
                    .chain(&changed)
                    .filter(|a| self.known.contains_key(*a))
                    .copied()
                    .collect();
                if retries {
                    due.extend(
                        self.known
                            .iter()
                            .filter(|(a, t)| {
                                t.is_none()
                                    && self.next_try.get(*a).is_none_or(|&(at, _)| at <= now)
                            })
                            .map(|(a, _)| *a),
                    );
                }
                due.into_iter().collect()
            };
            for addr in due {
                self.check(addr);
            }
        }
    }

    /// Follows `set` from now on; returns the addresses new to it.
    fn set(&mut self, set: HashSet<IpAddr>) -> HashSet<IpAddr> {
        self.known.retain(|a, _| set.contains(a));
        self.unreported.retain(|a| set.contains(a));
        self.silent.retain(|a| set.contains(a));
        self.next_try.retain(|a, _| set.contains(a));
        self.routes.retain(|a, _| set.contains(a));
        let mut new = HashSet::new();
        for addr in set {
            if let std::collections::hash_map::Entry::Vacant(e) = self.known.entry(addr) {
                e.insert(None);
                self.unreported.insert(addr);
                new.insert(addr);
            }
        }
        new
    }

    /// The route to `addr`, looked up again when older than [`ROUTE_REFRESH`] or `fresh`.
    fn route(&mut self, addr: IpAddr, fresh: bool) -> Result<neighbour::Route, String> {
        let now = Instant::now();
        if let Some((at, r)) = self.routes.get(&addr)
            && !fresh
            && now.duration_since(*at) < ROUTE_REFRESH
        {
            return r.clone();
        }
        let r = self.with_rtnl(|n| n.route_to(addr));
        self.routes.insert(addr, (now, r.clone()));
        r
    }

    /// Reads the address's target from the tables as known; probes it when unresolved and due (with
    /// backoff); reports a change.
    fn check(&mut self, addr: IpAddr) {
        let now = Instant::now();
        let due = self.next_try.get(&addr).is_none_or(|&(at, _)| at <= now);
        // Due for another probe after one already sent: the first one went unanswered.
        let probe_unanswered = due && self.next_try.contains_key(&addr);
        // The kernel gave up resolving it.
        let mut failed = false;
        let target = if self.snap.is_local(addr) {
            Ok(Some(Target::Local))
        } else {
            // An unresolved address due for a probe also has its route looked up again.
            let fresh = due && self.known.get(&addr) == Some(&None);
            let was_resolved = matches!(self.known.get(&addr), Some(Some(Target::Remote { .. })));
            match self.route(addr, fresh) {
                Err(e) => Err(e),
                Ok(route) => {
                    let entry = self.snap.neighbours.get(&(addr, route.ifindex)).copied();
                    let lookup = lookup(entry, was_resolved, || {
                        self.with_rtnl(|n| n.neighbour_entry(addr, route.ifindex))
                    });
                    match lookup {
                        Lookup::Valid { mac, reread } => {
                            if let Some(e) = reread {
                                self.snap.neighbours.insert((addr, route.ifindex), e);
                            }
                            Ok(Some(Target::Remote {
                                mac: mac.octets(),
                                src_mac: route.src_mac.octets(),
                                ifindex: route.ifindex,
                            }))
                        }
                        Lookup::Keep { error } => {
                            tracing::debug!(
                                "re-reading the neighbour entry of {addr}: {error}; keeping \
                                 its last known address"
                            );
                            Ok(None)
                        }
                        Lookup::Unresolved { failed: f, reread } => {
                            failed = f;
                            if was_resolved {
                                match reread {
                                    Some(e) => {
                                        self.snap.neighbours.insert((addr, route.ifindex), e);
                                    }
                                    None => {
                                        self.snap.neighbours.remove(&(addr, route.ifindex));
                                    }
                                }
                            }
                            Err(format!(
                                "no link-layer address for {addr} on {} yet",
                                route.ifname
                            ))
                        }
                    }
                }
            }
        };
        // `Ok(None)`: the address keeps its last known target.
        let target = match target {
            Ok(None) => match self.known.get(&addr) {
                Some(Some(t)) => Ok(*t),
                _ => Err(format!("no link-layer address for {addr} yet")),
            },
            Ok(Some(t)) => Ok(t),
            Err(e) => Err(e),
        };
        let (target, reason) = match target {
            Ok(t) => {
                self.next_try.remove(&addr);
                (Some(t), None)
            }
            Err(reason) => {
                if due {
                    // Make the kernel resolve it (ARP/ND); the answer arrives as a
                    // notification.
                    let ifindex = self
                        .routes
                        .get(&addr)
                        .and_then(|(_, r)| r.as_ref().ok())
                        .map(|r| r.ifindex);
                    if let Some(ifindex) = ifindex
                        && let Err(e) = self.with_rtnl(|n| n.probe_on(addr, ifindex))
                    {
                        tracing::debug!("probing {addr}: {e}");
                    }
                    let delay = self.next_try.get(&addr).map_or(RETRY, |&(_, d)| d);
                    self.next_try
                        .insert(addr, (now + delay, (delay * 2).min(RETRY_MAX)));
                }
                (None, Some(reason))
            }
        };
        // Silent from the kernel's failure until it resolves.
        let was_silent = self.silent.contains(&addr);
        let silent = target.is_none() && (failed || was_silent);
        if silent {
            self.silent.insert(addr);
        } else {
            self.silent.remove(&addr);
        }
        let old = self.known.insert(addr, target);
        let first_report =
            self.unreported.contains(&addr) && (target.is_some() || probe_unanswered || silent);
        if first_report {
            self.unreported.remove(&addr);
        }
        if old != Some(target) || first_report || silent != was_silent {
            let _ = self.updates.send(TargetUpdate {
                addr,
                target,
                reason,
                silent,
            });
        }
    }
}

/// A neighbour entry: its state and link-layer address.
type Entry = (neighbour::NudState, Option<neighbour::MacAddr>);

/// What [`lookup`] found for an address.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// It has a valid link-layer address; `reread` is the entry read on its own, when it was.
    Valid {
        mac: neighbour::MacAddr,
        reread: Option<Entry>,
    },
    /// The tables show it unresolved but it was resolved, and reading its entry on its own
    /// failed: keep its last known address (one failed or incomplete read is no evidence).
    Keep { error: String },
    /// It is unresolved (`failed`: the kernel gave up resolving it); `reread` is the entry
    /// read on its own, when it was read.
    Unresolved { failed: bool, reread: Option<Entry> },
}

/// Looks an address up: `entry` is what the neighbour table as last read (a dump, then
/// notifications) holds for it. An address that was resolved (`was_resolved`) and that the
/// table shows unresolved is read again on its own (`reread`, a targeted `RTM_GETNEIGH`)
/// before it is taken as unresolved, so a dump that missed it does not take a healthy real
/// out.
fn lookup(
    entry: Option<Entry>,
    was_resolved: bool,
    reread: impl FnOnce() -> Result<Option<Entry>, String>,
) -> Lookup {
    fn valid(entry: Option<Entry>) -> Option<neighbour::MacAddr> {
        match entry {
            Some((state, Some(mac))) if state.is_valid() => Some(mac),
            _ => None,
        }
    }
    fn failed(entry: Option<Entry>) -> bool {
        entry.is_some_and(|(state, _)| state.0 & neighbour::NudState::FAILED != 0)
    }
    if let Some(mac) = valid(entry) {
        return Lookup::Valid { mac, reread: None };
    }
    if !was_resolved {
        return Lookup::Unresolved {
            failed: failed(entry),
            reread: None,
        };
    }
    match reread() {
        Err(error) => Lookup::Keep { error },
        Ok(e) => match valid(e) {
            Some(mac) => Lookup::Valid { mac, reread: e },
            None => Lookup::Unresolved {
                failed: failed(e),
                reread: e,
            },
        },
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::*;
    use neighbour::{MacAddr, NudState};

    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

    fn no_reread() -> Result<Option<Entry>, String> {
        panic!("an address never resolved is not read again")
    }

    #[test]
    fn a_valid_entry_is_used_as_is() {
        let e = Some((NudState(NudState::STALE), Some(MAC)));
        assert_eq!(
            lookup(e, true, no_reread),
            Lookup::Valid {
                mac: MAC,
                reread: None
            }
        );
    }

    #[test]
    fn a_known_good_address_missing_from_a_dump_is_read_again() {
        let fresh = (NudState(NudState::REACHABLE), Some(MAC));
        assert_eq!(
            lookup(None, true, || Ok(Some(fresh))),
            Lookup::Valid {
                mac: MAC,
                reread: Some(fresh)
            }
        );
    }

    #[test]
    fn a_known_good_address_is_kept_when_it_cannot_be_read_again() {
        assert!(matches!(
            lookup(None, true, || Err("netlink receive (timed out)".into())),
            Lookup::Keep { .. }
        ));
    }

    #[test]
    fn a_known_good_address_confirmed_gone_is_unresolved() {
        assert_eq!(
            lookup(None, true, || Ok(None)),
            Lookup::Unresolved {
                failed: false,
                reread: None
            }
        );
        let failed = (NudState(NudState::FAILED), None);
        assert_eq!(
            lookup(None, true, || Ok(Some(failed))),
            Lookup::Unresolved {
                failed: true,
                reread: Some(failed)
            }
        );
    }

    #[test]
    fn an_address_never_resolved_is_not_read_again() {
        let failed = (NudState(NudState::FAILED), None);
        assert_eq!(
            lookup(Some(failed), false, no_reread),
            Lookup::Unresolved {
                failed: true,
                reread: None
            }
        );
        assert_eq!(
            lookup(None, false, no_reread),
            Lookup::Unresolved {
                failed: false,
                reread: None
            }
        );
    }
}
