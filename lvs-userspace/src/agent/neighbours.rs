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

/// How often an unresolved address is probed again.
const RETRY: Duration = Duration::from_secs(1);
/// How often resolved addresses are re-read (besides the change notifications).
const REFRESH: Duration = Duration::from_secs(5);

/// A server's target changed (`None`: it cannot be reached now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUpdate {
    /// The server.
    pub addr: IpAddr,
    /// How to reach it now.
    pub target: Option<Target>,
    /// Why it cannot be reached, when it cannot.
    pub reason: Option<String>,
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
    next_try: HashMap<IpAddr, Instant>,
}

/// The target of `addr` as the kernel knows it now, without waiting.
pub fn target_now(addr: IpAddr) -> Result<Target, String> {
    if neighbour::is_local(addr).map_err(|e| e.to_string())? {
        return Ok(Target::Local);
    }
    let route = neighbour::route_to(addr).map_err(|e| e.to_string())?;
    match neighbour::neighbour_entry(addr, route.ifindex).map_err(|e| e.to_string())? {
        Some((state, Some(mac))) if state.is_valid() => Ok(Target::Remote {
            mac: mac.octets(),
            src_mac: route.src_mac.octets(),
            ifindex: route.ifindex,
        }),
        _ => Err(format!(
            "no link-layer address for {addr} on {} yet",
            route.ifname
        )),
    }
}

impl Resolver {
    fn new(updates: mpsc::UnboundedSender<TargetUpdate>) -> Self {
        Resolver {
            updates,
            known: HashMap::new(),
            next_try: HashMap::new(),
        }
    }

    fn run(mut self, addrs: std_mpsc::Receiver<HashSet<IpAddr>>) {
        let mut watch: Option<NeighbourWatch> = neighbour::watch()
            .map_err(|e| tracing::warn!("not following neighbour changes: {e}"))
            .ok();
        let mut last_refresh = Instant::now();
        loop {
            match addrs.try_recv() {
                Ok(set) => self.set(set),
                Err(std_mpsc::TryRecvError::Disconnected) => return,
                Err(std_mpsc::TryRecvError::Empty) => {}
            }
            let mut changed = HashSet::new();
            if let Some(w) = watch.as_mut() {
                match w.next_timeout(Some(Duration::from_millis(200))) {
                    Ok(Some(ev)) => {
                        changed.insert(ev.addr);
                        while let Ok(Some(ev)) = w.try_next() {
                            changed.insert(ev.addr);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!("neighbour notifications stopped: {e}");
                        watch = None;
                    }
                }
            } else {
                std::thread::sleep(Duration::from_millis(200));
            }
            let refresh = last_refresh.elapsed() >= REFRESH;
            if refresh {
                last_refresh = Instant::now();
            }
            let now = Instant::now();
            let due: Vec<IpAddr> = self
                .known
                .iter()
                .filter(|(a, t)| {
                    changed.contains(a)
                        || refresh
                        || (t.is_none() && self.next_try.get(a).is_none_or(|&at| at <= now))
                })
                .map(|(a, _)| *a)
                .collect();
            for addr in due {
                self.check(addr);
            }
        }
    }

    fn set(&mut self, set: HashSet<IpAddr>) {
        self.known.retain(|a, _| set.contains(a));
        self.next_try.retain(|a, _| set.contains(a));
        for addr in set {
            if let std::collections::hash_map::Entry::Vacant(e) = self.known.entry(addr) {
                e.insert(None);
                self.check(addr);
            }
        }
    }

    /// Reads the address's target; probes it when unresolved; reports a change.
    fn check(&mut self, addr: IpAddr) {
        let (target, reason) = match target_now(addr) {
            Ok(t) => (Some(t), None),
            Err(reason) => {
                // Make the kernel resolve it (ARP/ND); the answer arrives as a notification.
                if let Err(e) = neighbour::probe(addr) {
                    tracing::debug!("probing {addr}: {e}");
                }
                self.next_try.insert(addr, Instant::now() + RETRY);
                (None, Some(reason))
            }
        };
        let old = self.known.insert(addr, target);
        if old != Some(target) {
            let _ = self.updates.send(TargetUpdate {
                addr,
                target,
                reason,
            });
        }
    }
}
