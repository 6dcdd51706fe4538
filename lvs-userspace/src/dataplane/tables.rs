//! Writing the kernel's tables from a [`ServicePlan`] list, so that packets always meet a
//! consistent state.
//!
//! The rules that make an update atomic as packets see it:
//! - A service's value (live ring, ring length, fallback) is one hash-map element, replaced
//!   whole by one update. Each service has two rings; the new ring is written into the one not
//!   in use (only the slots that differ), then the service value switches to it.
//! - A destination slot is written before any ring names it, and loses its SCHEDULABLE flag
//!   only after the ring that stopped naming it is live.
//! - A removed destination's slot gets a new generation and no VALID flag: flows and
//!   persistence entries scheduled to it are scheduled again on their next packet.
//! - A freed slot is reused only with the generation it got when freed, which no remembered
//!   flow holds.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::IpAddr,
};

use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError};
use lvs_common::{
    Addr, Dest, Service, VipKey,
    dest::{dest_flags, forward},
    fragment::vip_protos,
    limits::{MAX_DESTS, MAX_SERVICES, NO_DEST, RING_SIZE},
    service::{sched, service_flags, table_flags},
};

use super::{
    conns::Counts,
    maglev,
    plan::{DestPlan, ServicePlan, Target, ip_of, kernel_addr, key_order},
    ring::{self, RingKind, Weighted},
    stats::{Stats, StatsError},
};
use crate::config::Scheduler;

/// Errors writing the tables.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    /// A map write failed.
    #[error("writing map {map}: {source}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// The cause.
        #[source]
        source: MapError,
    },
    /// More services than the data plane holds.
    #[error("too many virtual services: at most {max}")]
    TooManyServices {
        /// The limit.
        max: u32,
    },
    /// A counter reset failed.
    #[error(transparent)]
    Stats(#[from] StatsError),
    /// More destinations than the data plane holds.
    #[error("too many real servers across all services: at most {max}")]
    TooManyDests {
        /// The limit.
        max: u32,
    },
}

/// Which role a destination slot plays in its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Role {
    Real,
    Fallback,
}

/// What is written for one service.
#[derive(Clone, Debug)]
struct ServiceState {
    value: Service,
    /// The contents of both rings as written.
    rings: [Vec<u32>; 2],
    /// Destination slots by (address, role).
    dests: BTreeMap<(IpAddr, Role), u32>,
    /// Whether `value` has been written to the services map.
    in_kernel: bool,
    /// Further keys written with the same value (a firewall-mark service's other matches).
    aliases: Vec<VipKey>,
}

/// The maps the agent writes, with a shadow copy of what they hold.
pub struct Tables {
    services: BpfHashMap<MapData, VipKey, Service>,
    dests: Array<MapData, Dest>,
    rings: Array<MapData, u32>,
    vip_addrs: BpfHashMap<MapData, Addr, u32>,
    /// The tables' flags ([`Tables::write_flags`]), and what was last written to them.
    flags: Array<MapData, u32>,
    flags_written: Option<u32>,
    stats: Stats,
    counts: Counts,
    written: HashMap<VipKey, ServiceState>,
    /// The VIP address table as written.
    written_addrs: HashMap<Addr, u32>,
    /// Every destination slot's contents as written (index = id).
    slots: Vec<Dest>,
    free_dests: Vec<u32>,
    free_services: Vec<u32>,
}

fn map_err(map: &'static str) -> impl Fn(MapError) -> TablesError {
    move |source| TablesError::Map { map, source }
}

impl Tables {
    /// Takes the writable maps. The tables start empty: freshly created maps.
    pub fn new(
        services: BpfHashMap<MapData, VipKey, Service>,
        dests: Array<MapData, Dest>,
        rings: Array<MapData, u32>,
        vip_addrs: BpfHashMap<MapData, Addr, u32>,
        flags: Array<MapData, u32>,
        stats: Stats,
        counts: Counts,
    ) -> Self {
        Tables {
            services,
            dests,
            rings,
            vip_addrs,
            flags,
            flags_written: None,
            stats,
            counts,
            written: HashMap::new(),
            written_addrs: HashMap::new(),
            slots: vec![Dest::default(); MAX_DESTS as usize],
            free_dests: (0..MAX_DESTS).rev().collect(),
            free_services: (0..MAX_SERVICES).rev().collect(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The per-real connection counts.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// (ActiveConn, InActConn) of destination slot `id` as the data plane counts them: one
    /// word of [`Counts`], read for the generation the slot holds now (counts of an earlier
    /// real of the slot are never shown for it); `None` for a slot out of range or whose word is
    /// of another generation.
    pub fn conns(&self, id: u32) -> Option<(u64, u64)> {
        let generation = self.dest_generation(id)?;
        self.counts.get(id, generation)
    }

    /// The flows counted for every destination slot in use (active and inactive), in total.
    pub fn conns_total(&self) -> u64 {
        (0..self.slots.len() as u32)
            .filter(|&id| self.slots[id as usize].flags & dest_flags::VALID != 0)
            .filter_map(|id| self.conns(id))
            .map(|(a, i)| a + i)
            .sum()
    }

    /// The per-real connection counts, to sweep or rebuild.
    pub fn counts_mut(&mut self) -> &mut Counts {
        &mut self.counts
    }

    /// Every destination slot as written (index = id).
    pub fn slots(&self) -> &[Dest] {
        &self.slots
    }

    /// The destination id of `addr` in the service `key` (a real, not a fallback).
    pub fn dest_id(&self, key: &VipKey, addr: IpAddr) -> Option<u32> {
        self.written
            .get(key)?
            .dests
            .get(&(addr, Role::Real))
            .copied()
    }

    /// The destination id of the fallback of the service `key`, if it has one.
    pub fn fallback_id(&self, key: &VipKey) -> Option<u32> {
        self.written
            .get(key)?
            .dests
            .iter()
            .find(|((_, role), _)| *role == Role::Fallback)
            .map(|(_, &id)| id)
    }

    /// The generation destination slot `id` currently holds (flows remembered with another
    /// generation are stale).
    pub fn dest_generation(&self, id: u32) -> Option<u32> {
        self.slots.get(id as usize).map(|d| d.generation)
    }

    /// The service id of `key`.
    pub fn service_id(&self, key: &VipKey) -> Option<u32> {
        self.written.get(key).map(|s| s.value.id)
    }

    /// Rebuilds the shadow from tables an earlier agent left behind (pinned maps), so this
    /// agent goes on from exactly what the kernel holds: the same service ids, destination
    /// slots and generations, and the live rings. Returns how many services were adopted.
    /// Slots of services that no longer exist are invalidated.
    pub fn adopt(&mut self) -> Result<usize, TablesError> {
        for (id, slot) in self.dests.iter().enumerate() {
            self.slots[id] = slot.map_err(map_err("LVS_DESTS"))?;
        }
        let services: Vec<(VipKey, Service)> = self
            .services
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_err("LVS_SERVICES"))?;
        let mut used_dests = vec![false; MAX_DESTS as usize];
        let mut used_services = vec![false; MAX_SERVICES as usize];
        // Several keys of one service (a firewall-mark service's matches): the first in
        // `key_order` is its key, the others its aliases.
        let mut by_id: BTreeMap<u32, Vec<VipKey>> = BTreeMap::new();
        for (key, value) in &services {
            by_id.entry(value.id).or_default().push(*key);
        }
        for keys in by_id.values_mut() {
            keys.sort_by_key(key_order);
        }
        let adopted = by_id.len();
        for (key, value) in &services {
            let keys = &by_id[&value.id];
            if keys[0] != *key {
                continue;
            }
            let Some(used) = used_services.get_mut(value.id as usize) else {
                continue;
            };
            *used = true;
            let mut live = Vec::with_capacity(value.ring_len as usize);
            for pos in 0..value.ring_len.min(RING_SIZE) {
                let index = Service::ring_index(value.id, value.ring_gen, pos);
                live.push(self.rings.get(&index, 0).map_err(map_err("LVS_RINGS"))?);
            }
            let mut rings = [Vec::new(), Vec::new()];
            rings[(value.ring_gen & 1) as usize] = live;
            let mut dests = BTreeMap::new();
            for (id, slot) in self.slots.iter().enumerate() {
                if slot.flags & dest_flags::VALID != 0 && slot.service == value.id {
                    let role = if value.fallback == id as u32 {
                        Role::Fallback
                    } else {
                        Role::Real
                    };
                    dests.insert((ip_of(&slot.addr), role), id as u32);
                    used_dests[id] = true;
                }
            }
            self.written.insert(
                *key,
                ServiceState {
                    value: *value,
                    rings,
                    dests,
                    in_kernel: true,
                    aliases: keys[1..].to_vec(),
                },
            );
        }
        self.free_services = (0..MAX_SERVICES)
            .rev()
            .filter(|&i| !used_services[i as usize])
            .collect();
        self.write_vip_addrs()?;
        self.write_flags(0)?;
        self.free_dests = Vec::new();
        for id in (0..MAX_DESTS).rev() {
            if used_dests[id as usize] {
                continue;
            }
            if self.slots[id as usize].flags & dest_flags::VALID != 0 {
                // An orphan: its service is gone. Its flows must not keep it.
                self.free_dest(id)?;
            } else {
                self.free_dests.push(id);
            }
        }
        Ok(adopted)
    }

    /// The destination slot of a real of a service, as written.
    pub fn dest(&self, key: &VipKey, addr: IpAddr) -> Option<Dest> {
        self.dest_id(key, addr).map(|id| self.slots[id as usize])
    }

    /// How every written destination is reached (to seed what a restarted agent knows). A
    /// tunnelled or NATed destination has nothing resolved to seed and is left out.
    pub fn targets(&self) -> Vec<(IpAddr, Target)> {
        self.written
            .values()
            .flat_map(|s| s.dests.values())
            .filter(|&&id| self.slots[id as usize].method == forward::DIRECT)
            .map(|&id| {
                let d = &self.slots[id as usize];
                let target = if d.flags & dest_flags::LOCAL != 0 {
                    Target::Local
                } else {
                    Target::Remote {
                        mac: d.dst_mac,
                        src_mac: d.src_mac,
                        ifindex: d.ifindex,
                    }
                };
                (ip_of(&d.addr), target)
            })
            .collect()
    }

    /// Makes the kernel's tables say what `plans` say. Services not in `plans` are removed.
    pub fn apply(&mut self, plans: &[ServicePlan]) -> Result<(), TablesError> {
        let wanted: HashMap<VipKey, &ServicePlan> = plans.iter().map(|p| (p.key(), p)).collect();
        let mut keys: HashSet<VipKey> = wanted.keys().copied().collect();
        keys.extend(plans.iter().flat_map(|p| p.alias_keys()));
        // A service of every port is looked for only once its flag is up: up before the
        // service is written, down (if it goes) only after.
        let any_port = if keys.iter().any(|k| k.port_be == 0) {
            table_flags::ANY_PORT
        } else {
            0
        };
        self.write_flags(any_port)?;
        let gone: Vec<VipKey> = self
            .written
            .keys()
            .filter(|k| !wanted.contains_key(k))
            .copied()
            .collect();
        for key in gone {
            self.remove_service(&key, &keys)?;
        }
        // The VIP address table follows the services, also when a service failed to be
        // written (it holds what `written` holds).
        let result = plans
            .iter()
            .try_for_each(|plan| self.apply_service(plan, &keys));
        self.write_vip_addrs()?;
        self.write_flags(0)?;
        result
    }

    /// Writes the tables' flags ([`lvs_common::limits::map_names::TABLE_FLAGS`]): what the
    /// written tables hold ([`table_flags::ANY_PORT`] while a service of every port is
    /// written), with `also`.
    fn write_flags(&mut self, also: u32) -> Result<(), TablesError> {
        let any_port = self
            .written
            .iter()
            .any(|(k, s)| k.port_be == 0 || s.aliases.iter().any(|a| a.port_be == 0));
        let flags = also | if any_port { table_flags::ANY_PORT } else { 0 };
        if self.flags_written != Some(flags) {
            self.flags
                .set(0, flags, 0)
                .map_err(map_err("LVS_TABLE_FLAGS"))?;
            self.flags_written = Some(flags);
        }
        Ok(())
    }

    /// Makes the VIP address table ([`lvs_common::limits::map_names::VIP_ADDRS`]) hold each
    /// address of a written service, with the protocols of its services: what fragments,
    /// which carry no ports, are judged by.
    fn write_vip_addrs(&mut self) -> Result<(), TablesError> {
        let mut wanted: HashMap<Addr, u32> = HashMap::new();
        for key in self.written.keys() {
            *wanted.entry(key.addr).or_default() |= vip_protos::of(key.proto);
        }
        for (addr, &protos) in &wanted {
            if self.written_addrs.get(addr) != Some(&protos) {
                self.vip_addrs
                    .insert(addr, protos, 0)
                    .map_err(map_err("LVS_VIP_ADDRS"))?;
                self.written_addrs.insert(*addr, protos);
            }
        }
        let gone: Vec<Addr> = self
            .written_addrs
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        for addr in gone {
            match self.vip_addrs.remove(&addr) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(map_err("LVS_VIP_ADDRS")(e)),
            }
            self.written_addrs.remove(&addr);
        }
        Ok(())
    }

    fn apply_service(
        &mut self,
        plan: &ServicePlan,
        keys: &HashSet<VipKey>,
    ) -> Result<(), TablesError> {
        let key = plan.key();
        let mut state = match self.written.remove(&key) {
            Some(s) => s,
            None => {
                let id = self
                    .free_services
                    .pop()
                    .ok_or(TablesError::TooManyServices { max: MAX_SERVICES })?;
                self.stats.reset_service(id)?;
                ServiceState {
                    value: Service {
                        id,
                        fallback: NO_DEST,
                        ..Service::default()
                    },
                    rings: [Vec::new(), Vec::new()],
                    dests: BTreeMap::new(),
                    in_kernel: false,
                    aliases: Vec::new(),
                }
            }
        };
        let result = self.write_service(plan, &key, &mut state, keys);
        // Keep the shadow of whatever was written, also when a later write failed.
        self.written.insert(key, state);
        result
    }

    fn write_service(
        &mut self,
        plan: &ServicePlan,
        key: &VipKey,
        state: &mut ServiceState,
        keys: &HashSet<VipKey>,
    ) -> Result<(), TablesError> {
        let service_id = state.value.id;
        let members: Vec<(IpAddr, Role, &DestPlan)> = plan
            .dests
            .iter()
            .map(|d| (d.addr, Role::Real, d))
            .chain(plan.fallback.iter().map(|d| (d.addr, Role::Fallback, d)))
            .collect();

        // 1. Destination slots: allocate new ones, rewrite changed ones. Slots that stop being
        //    schedulable are written after the switch.
        let mut late: Vec<(u32, Dest)> = Vec::new();
        let mut ids: BTreeMap<(IpAddr, Role), u32> = BTreeMap::new();
        for &(addr, role, d) in &members {
            let id = match state.dests.get(&(addr, role)) {
                Some(&id) => id,
                None => {
                    let id = self
                        .free_dests
                        .pop()
                        .ok_or(TablesError::TooManyDests { max: MAX_DESTS })?;
                    self.stats.reset_dest(id)?;
                    state.dests.insert((addr, role), id);
                    id
                }
            };
            ids.insert((addr, role), id);
            let old = self.slots[id as usize];
            let mut new = dest_value(d, service_id, old.generation);
            if role == Role::Fallback {
                new.flags &= !dest_flags::SCHEDULABLE;
            }
            if new == old {
                continue;
            }
            if old.flags & dest_flags::SCHEDULABLE != 0 && new.flags & dest_flags::SCHEDULABLE == 0
            {
                // Keep it schedulable until the new ring is live, but take the new MAC now.
                late.push((id, new));
                new.flags |= dest_flags::SCHEDULABLE;
            }
            self.write_dest(id, new)?;
        }

        // 2. The new ring, into the ring not in use, only the slots that differ.
        let ring = match plan.scheduler {
            Scheduler::Mh(_) => maglev_table(plan, &ids),
            Scheduler::Rr => weighted_ring(RingKind::RoundRobin, plan, &ids),
            Scheduler::Wrr | Scheduler::Sh => weighted_ring(RingKind::Weighted, plan, &ids),
            Scheduler::Dh => weighted_ring(RingKind::DestHash, plan, &ids),
            Scheduler::Lc
            | Scheduler::Wlc
            | Scheduler::Sed
            | Scheduler::Nq
            | Scheduler::Fo
            | Scheduler::Ovf => weighted_ring(RingKind::Candidates, plan, &ids),
        };
        let live = (state.value.ring_gen & 1) as usize;
        let live_ring = &state.rings[live][..state.value.ring_len as usize];
        let ring_changed = live_ring != ring.as_slice();
        let mut new_value = Service {
            id: service_id,
            flags: if plan.persistence.is_some() {
                service_flags::PERSISTENT
            } else {
                0
            } | mh_flags(plan.scheduler)
                | if plan.one_packet {
                    service_flags::ONE_PACKET
                } else {
                    0
                },
            scheduler: match plan.scheduler {
                Scheduler::Wrr | Scheduler::Rr => sched::RING_WALK,
                Scheduler::Sh => sched::SOURCE_HASH,
                Scheduler::Mh(_) => sched::MAGLEV,
                Scheduler::Lc => sched::LC,
                Scheduler::Wlc => sched::WLC,
                Scheduler::Sed => sched::SED,
                Scheduler::Nq => sched::NQ,
                Scheduler::Fo => sched::FO,
                Scheduler::Ovf => sched::OVF,
                Scheduler::Dh => sched::DEST_HASH,
            },
            ring_gen: state.value.ring_gen,
            ring_len: state.value.ring_len,
            fallback: plan
                .fallback
                .as_ref()
                .map_or(NO_DEST, |f| ids[&(f.addr, Role::Fallback)]),
            persist_timeout_s: plan.persistence.map_or(0, |(t, _)| t),
            _pad: 0,
            persist_mask: plan.persist_mask(),
        };
        if ring_changed {
            let spare = 1 - live;
            let spare_ring = &mut state.rings[spare];
            for (pos, &id) in ring.iter().enumerate() {
                if spare_ring.get(pos) != Some(&id) {
                    let index = Service::ring_index(service_id, spare as u32, pos as u32);
                    self.rings.set(index, id, 0).map_err(map_err("LVS_RINGS"))?;
                }
            }
            // Slots past the new length are never read; keep the shadow exact.
            spare_ring.clear();
            spare_ring.extend_from_slice(&ring);
            new_value.ring_gen = spare as u32;
            new_value.ring_len = ring.len() as u32;
        }
        debug_assert!(new_value.ring_len <= RING_SIZE);

        // 3. The switch: one element replaced (and each alias's: one service, several keys).
        let aliases = plan.alias_keys();
        let changed = new_value != state.value || !state.in_kernel;
        if changed {
            self.services
                .insert(key, new_value, 0)
                .map_err(map_err("LVS_SERVICES"))?;
            state.value = new_value;
            state.in_kernel = true;
        }
        for a in &aliases {
            if changed || !state.aliases.contains(a) {
                self.services
                    .insert(a, new_value, 0)
                    .map_err(map_err("LVS_SERVICES"))?;
                if !state.aliases.contains(a) {
                    state.aliases.push(*a);
                }
            }
        }
        let stale: Vec<VipKey> = state
            .aliases
            .iter()
            .filter(|a| !aliases.contains(a))
            .copied()
            .collect();
        for a in stale {
            // A key another service now holds was overwritten by it: not removed.
            if !keys.contains(&a) {
                self.remove_key(&a)?;
            }
            state.aliases.retain(|x| *x != a);
        }

        // 4. After the switch: drop SCHEDULABLE where it went, free the slots of removed
        //    destinations.
        for (id, value) in late {
            self.write_dest(id, value)?;
        }
        let removed: Vec<(IpAddr, Role)> = state
            .dests
            .keys()
            .filter(|k| !ids.contains_key(k))
            .copied()
            .collect();
        for k in removed {
            if let Some(id) = state.dests.remove(&k) {
                self.free_dest(id)?;
            }
        }
        Ok(())
    }

    fn remove_key(&mut self, key: &VipKey) -> Result<(), TablesError> {
        match self.services.remove(key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err("LVS_SERVICES")(e)),
        }
    }

    fn remove_service(&mut self, key: &VipKey, keys: &HashSet<VipKey>) -> Result<(), TablesError> {
        let Some(state) = self.written.remove(key) else {
            return Ok(());
        };
        for k in std::iter::once(key).chain(state.aliases.iter()) {
            // A key another service now holds is overwritten by it.
            if !keys.contains(k) {
                self.remove_key(k)?;
            }
        }
        for id in state.dests.into_values() {
            self.free_dest(id)?;
        }
        self.free_services.push(state.value.id);
        Ok(())
    }

    fn write_dest(&mut self, id: u32, value: Dest) -> Result<(), TablesError> {
        self.dests.set(id, value, 0).map_err(map_err("LVS_DESTS"))?;
        self.slots[id as usize] = value;
        Ok(())
    }

    /// Invalidates a slot with a new generation and returns it to the free list.
    fn free_dest(&mut self, id: u32) -> Result<(), TablesError> {
        let old = self.slots[id as usize];
        // The new generation's counts start at 0 before any flow can name it; the old
        // generation's flows no longer change them.
        self.counts.reset(id, old.generation.wrapping_add(1));
        self.write_dest(
            id,
            Dest {
                generation: old.generation.wrapping_add(1),
                ..Dest::default()
            },
        )?;
        self.free_dests.push(id);
        Ok(())
    }
}

/// The slot value for a destination plan.
/// The ring of a ring scheduler (`kind`), from the reals' weights in config order.
fn weighted_ring(
    kind: RingKind,
    plan: &ServicePlan,
    ids: &BTreeMap<(IpAddr, Role), u32>,
) -> Vec<u32> {
    let weighted: Vec<Weighted> = plan
        .dests
        .iter()
        .map(|d| Weighted {
            id: ids[&(d.addr, Role::Real)],
            weight: d.weight,
        })
        .collect();
    ring::build(kind, &weighted)
}

/// The Maglev table of an `mh` service: every real present, by the weight it has when up; empty
/// (so new flows go to the fallback) while no real takes new connections.
fn maglev_table(plan: &ServicePlan, ids: &BTreeMap<(IpAddr, Role), u32>) -> Vec<u32> {
    if plan.dests.iter().all(|d| d.weight == 0) {
        return Vec::new();
    }
    let members: Vec<maglev::Member> = plan
        .dests
        .iter()
        .map(|d| maglev::Member {
            addr: d.addr,
            id: ids[&(d.addr, Role::Real)],
            weight: d.table_weight.max(d.weight),
        })
        .collect();
    maglev::build(&members)
}

/// The kernel's flag bits for the scheduler's flags.
fn mh_flags(s: Scheduler) -> u32 {
    match s {
        Scheduler::Mh(f) => {
            (if f.port { service_flags::MH_PORT } else { 0 })
                | (if f.fallback {
                    service_flags::MH_FALLBACK
                } else {
                    0
                })
        }
        _ => 0,
    }
}

fn dest_value(d: &DestPlan, service: u32, generation: u32) -> Dest {
    let mut flags = dest_flags::VALID;
    if d.weight > 0 {
        flags |= dest_flags::SCHEDULABLE;
    }
    let mut method = forward::DIRECT;
    let mut tunnel_src = lvs_common::Addr::default();
    let mut port_be = 0;
    let (dst_mac, src_mac, ifindex) = match d.target {
        Target::Remote {
            mac,
            src_mac,
            ifindex,
        } => (mac, src_mac, ifindex),
        Target::Local => {
            flags |= dest_flags::LOCAL;
            ([0; 6], [0; 6], 0)
        }
        Target::Tunnel { src } => {
            method = forward::TUNNEL;
            if let Some(src) = src {
                tunnel_src = kernel_addr(src);
            }
            ([0; 6], [0; 6], 0)
        }
        Target::Masq { port } => {
            method = forward::MASQ;
            port_be = port.to_be();
            ([0; 6], [0; 6], 0)
        }
    };
    Dest {
        dst_mac,
        src_mac,
        ifindex,
        generation,
        flags,
        service,
        addr: kernel_addr(d.addr),
        method,
        _pad: 0,
        port_be,
        tunnel_src,
    }
}
