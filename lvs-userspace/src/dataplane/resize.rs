//! Resizing the pinned flow tables: a restarted agent whose config asks for other table sizes
//! than the pinned maps have moves the live flows into new maps of the asked sizes, or refuses.
//!
//! The connection table, its settings and the persistence table are made anew (unpinned)
//! beside the pinned ones. The settings keep the pinned seed and timeouts, with the new
//! bucket mask; every live flow of the pinned table is put into its bucket of the new table
//! (re-hashed: the bucket index has more or fewer bits), and a NATed flow's reply way made
//! anew, pointing to the flow's new way. If any live flow (or reply way) finds its new
//! bucket full (a smaller table), nothing is changed and the start is refused
//! ([`super::loader::LoadError::Resize`]): no flow is dropped without the operator asking.
//! The persistence entries are copied most recently used first.
//!
//! The old program goes on forwarding with the old maps until the new one is swapped into
//! the pinned link. Flows it created after the first copy are then copied too (a flow the new
//! program already holds keeps its newer entry), and only then are the new maps pinned in
//! place of the old ones (pinned beside them, then renamed over them: a pin is never
//! missing).

use std::path::{Path, PathBuf};

use aya::{
    Ebpf,
    maps::{Array, HashMap as BpfHashMap, Map, MapData},
};
use lvs_common::{CtConfig, CtEntry, Dest, PersistKey, PersistValue, limits::map_names};

use super::{
    conntrack::{Inserted, Table},
    loader::LoadError,
};
use crate::config::TableSizes;

/// The maps a resize makes anew.
pub const RESIZED: [&str; 3] = [map_names::CONNTRACK, map_names::CT_SEED, map_names::PERSIST];

/// A resize under way: the old maps, until the new ones are pinned.
pub struct Resize {
    dir: PathBuf,
    from: TableSizes,
    to: TableSizes,
    old_ct: MapData,
    config: CtConfig,
}

fn pinned(dir: &Path, name: &'static str) -> Result<MapData, LoadError> {
    MapData::from_pin(dir.join(name)).map_err(|source| LoadError::Map { name, source })
}

fn ct_error(source: super::conntrack::ConntrackError) -> LoadError {
    LoadError::Conntrack { source }
}

impl Resize {
    /// Starts moving the flow tables pinned in `dir` (of sizes `from`) into the new, unpinned
    /// maps of `ebpf` (of sizes `to`): settings, live flows, persistence entries. Refuses,
    /// changing nothing pinned, if a live flow does not fit.
    pub fn prepare(
        dir: &Path,
        ebpf: &mut Ebpf,
        from: TableSizes,
        to: TableSizes,
    ) -> Result<Resize, LoadError> {
        let name = map_names::CT_SEED;
        let old_config: CtConfig = {
            let data = pinned(dir, name)?;
            let configs: Array<MapData, CtConfig> = Array::try_from(Map::Array(data))
                .map_err(|source| LoadError::Map { name, source })?;
            configs
                .get(&0, 0)
                .map_err(|source| LoadError::Map { name, source })?
        };
        let config = CtConfig {
            bucket_mask: to.connections / lvs_common::limits::CT_WAYS as u32 - 1,
            ..old_config
        };
        {
            let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap { name })?;
            let mut configs: Array<&mut MapData, CtConfig> =
                Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
            configs
                .set(0, config, 0)
                .map_err(|source| LoadError::Map { name, source })?;
        }
        let resize = Resize {
            dir: dir.to_path_buf(),
            from,
            to,
            old_ct: pinned(dir, map_names::CONNTRACK)?,
            config,
        };
        let (live, unfit) = resize.copy_flows(ebpf)?;
        if unfit > 0 {
            return Err(LoadError::Resize {
                dir: dir.to_path_buf(),
                from: from.connections,
                to: to.connections,
                live,
                unfit,
            });
        }
        let persist = resize.copy_persistence(ebpf)?;
        tracing::info!(
            flows = live,
            persistence = persist,
            from = from.connections,
            to = to.connections,
            persistence_from = from.persistence,
            persistence_to = to.persistence,
            "resizing the pinned flow tables: live flows copied into the new tables"
        );
        Ok(resize)
    }

    /// Copies the live flows of the old table into the new one (those it does not hold yet),
    /// with a reply way for each NATed flow (pointing to the flow's way in the new table): how
    /// many flows were live, and how many flows or reply ways found their bucket full.
    fn copy_flows(&self, ebpf: &Ebpf) -> Result<(u64, u64), LoadError> {
        let old = Table::map(&self.old_ct, false).map_err(ct_error)?;
        let new = Table::map(super::conntrack::table_map(ebpf).map_err(ct_error)?, true)
            .map_err(ct_error)?;
        let now = super::conns::table_now_ns();
        let (mut live, mut unfit) = (0, 0);
        let mut nated = Vec::new();
        old.for_each_way(|e: &CtEntry| {
            if e.is_live(now, &self.config.timeouts) {
                live += 1;
                match new.insert(e, self.config.seed) {
                    Inserted::Full => unfit += 1,
                    Inserted::Added(place) | Inserted::Present(place) => nated.push((*e, place)),
                }
            }
        });
        // The pinned destinations: the program's own map may already be the agent's tables'.
        let name = map_names::DESTS;
        let dests: Array<MapData, Dest> = Array::try_from(Map::Array(pinned(&self.dir, name)?))
            .map_err(|source| LoadError::Map { name, source })?;
        unfit += new.insert_replies(&nated, |id| dests.get(&id, 0).ok(), now, self.config.seed);
        Ok((live, unfit))
    }

    /// Copies the old persistence entries the new table does not hold, most recently used
    /// first, as many as it holds; how many were copied.
    fn copy_persistence(&self, ebpf: &mut Ebpf) -> Result<u64, LoadError> {
        let name = map_names::PERSIST;
        let old: BpfHashMap<MapData, PersistKey, PersistValue> =
            BpfHashMap::try_from(Map::LruHashMap(pinned(&self.dir, name)?))
                .map_err(|source| LoadError::Map { name, source })?;
        let mut entries: Vec<(PersistKey, PersistValue)> =
            old.iter().filter_map(Result::ok).collect();
        entries.sort_by_key(|(_, v)| std::cmp::Reverse(v.last_used_ns));
        entries.truncate(self.to.persistence as usize);
        let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap { name })?;
        let mut new: BpfHashMap<&mut MapData, PersistKey, PersistValue> =
            BpfHashMap::try_from(map).map_err(|source| LoadError::Map { name, source })?;
        let mut copied = 0;
        // Oldest first, so an LRU eviction (if any) takes the oldest.
        for (k, v) in entries.iter().rev() {
            // BPF_NOEXIST: an entry the new program made is newer.
            if new.insert(k, v, 1).is_ok() {
                copied += 1;
            }
        }
        Ok(copied)
    }

    /// Ends the resize once no old program runs (the new one swapped into the pinned link, or
    /// no link): copies what the old program added since [`Resize::prepare`], then pins the
    /// new maps in place of the old ones.
    pub fn finish(self, ebpf: &mut Ebpf) -> Result<(), LoadError> {
        let (live, unfit) = self.copy_flows(ebpf)?;
        if unfit > 0 {
            tracing::warn!(
                unfit,
                "resizing: {unfit} flows the old program created during the restart found \
                 their bucket of the new table full; their next packets are scheduled again"
            );
        }
        let persist = self.copy_persistence(ebpf)?;
        for name in RESIZED {
            let path = self.dir.join(name);
            let fresh = self.dir.join(format!("NEW_{name}"));
            let _ = std::fs::remove_file(&fresh);
            let map = ebpf.map(name).ok_or(LoadError::MissingMap { name })?;
            map.pin(&fresh).map_err(|e| LoadError::Pin {
                action: "pinning",
                path: fresh.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
            std::fs::rename(&fresh, &path).map_err(|source| LoadError::Pin {
                action: "renaming over",
                path: path.clone(),
                source,
            })?;
        }
        tracing::info!(
            from = self.from.connections,
            to = self.to.connections,
            persistence_from = self.from.persistence,
            persistence_to = self.to.persistence,
            late_flows = live,
            late_persistence = persist,
            "resized the pinned flow tables: {} live flows now in a table of {} flows",
            self.count_live(ebpf)?,
            self.to.connections
        );
        Ok(())
    }

    fn count_live(&self, ebpf: &Ebpf) -> Result<u64, LoadError> {
        let now = super::conns::table_now_ns();
        let mut n = 0;
        super::conntrack::for_each_way(ebpf, |e| n += e.is_live(now, &self.config.timeouts) as u64)
            .map_err(ct_error)?;
        Ok(n)
    }
}
