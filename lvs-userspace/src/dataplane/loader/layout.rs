//! Pinned maps against this build: a map whose type, key, value, size or flags differ from
//! what the object declares (but for the flow tables' sizes, which a restart may change:
//! [`super::Resize`]), and a connection table whose buckets have another layout, are refused
//! before anything is adopted.

use std::path::Path;

use aya::maps::{Array, Map, MapData, MapInfo};
use lvs_common::{
    CtConfig,
    conntrack::CT_LAYOUT,
    limits::{CT_WAYS, map_names},
};

use super::{EBPF_OBJECT, LoadError, TableSizes, buckets};

/// Flags the kernel sets on a map by itself (a devmap is always `BPF_F_RDONLY_PROG`): not
/// part of the layout an object declares.
const KERNEL_SET_FLAGS: u32 = 0x80 | 0x100;

/// A map's layout as the kernel sees it.
fn layout(map_type: u32, key: u32, value: u32, max: u32, flags: u32) -> String {
    let flags = flags & !KERNEL_SET_FLAGS;
    format!("type {map_type}, key {key} B, value {value} B, {max} entries, flags {flags:#x}")
}

/// Refuses pinned maps whose layout differs from what this binary's object declares with the
/// flow tables of `sizes`, but for the sizes of the flow tables: those of the pinned tables
/// when they differ (the tables are resized, [`Resize`]).
pub(super) fn check_layout(dir: &Path, sizes: TableSizes) -> Result<Option<TableSizes>, LoadError> {
    let obj = aya_obj::Object::parse(EBPF_OBJECT).map_err(|source| LoadError::Parse { source })?;
    let mut pinned_sizes = sizes;
    for name in map_names::ALL {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let Some(def) = obj.maps.get(name) else {
            return Err(LoadError::MissingMap { name });
        };
        let info = MapInfo::from_pin(&path).map_err(|source| LoadError::Map { name, source })?;
        let wanted_max = match name {
            map_names::CONNTRACK => buckets(sizes),
            map_names::PERSIST => sizes.persistence,
            _ => def.max_entries(),
        };
        let wanted = layout(
            def.map_type(),
            def.key_size(),
            def.value_size(),
            wanted_max,
            def.map_flags(),
        );
        let pinned_max = info.max_entries();
        let pinned_type = info.map_type().map(|t| t as u32).unwrap_or(u32::MAX);
        let pinned_layout = |max| {
            layout(
                pinned_type,
                info.key_size(),
                info.value_size(),
                max,
                info.map_flags(),
            )
        };
        // Only the flow tables' sizes may differ (a resize).
        if pinned_max != wanted_max && pinned_layout(wanted_max) == wanted {
            match name {
                map_names::CONNTRACK => {
                    pinned_sizes.connections = pinned_max.saturating_mul(CT_WAYS as u32);
                    continue;
                }
                map_names::PERSIST => {
                    pinned_sizes.persistence = pinned_max;
                    continue;
                }
                _ => {}
            }
        }
        let pinned = pinned_layout(pinned_max);
        if wanted != pinned {
            return Err(LoadError::Layout {
                path,
                pinned,
                wanted,
                dir: dir.to_path_buf(),
            });
        }
    }
    check_table_layout(dir)?;
    Ok((pinned_sizes != sizes).then_some(pinned_sizes))
}

/// Refuses a pinned connection table whose buckets have another layout than this build's
/// ([`CT_LAYOUT`], recorded in its settings since lvs wrote one): its size and value size can
/// be the same while its ways lie elsewhere in the bucket.
fn check_table_layout(dir: &Path) -> Result<(), LoadError> {
    let name = map_names::CT_SEED;
    let path = dir.join(name);
    if !path.exists() {
        return Ok(());
    }
    let data = MapData::from_pin(&path).map_err(|source| LoadError::Map { name, source })?;
    let configs: Array<MapData, CtConfig> =
        Array::try_from(Map::Array(data)).map_err(|source| LoadError::Map { name, source })?;
    let config = configs
        .get(&0, 0)
        .map_err(|source| LoadError::Map { name, source })?;
    if config.seed == 0 || config.layout == CT_LAYOUT {
        return Ok(());
    }
    Err(LoadError::Layout {
        path,
        pinned: format!("connection table buckets of layout {}", config.layout),
        wanted: format!("layout {CT_LAYOUT}"),
        dir: dir.to_path_buf(),
    })
}
