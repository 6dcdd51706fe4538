//! The connection table's settings in the kernel: its hash seed (random, drawn once and kept
//! across restarts), its bucket mask, and its idle timeouts.

use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use lvs_common::{CtConfig, CtTimeouts, conntrack::CT_LAYOUT, limits::map_names};

use super::{Dataplane, LoadError, buckets};
use crate::config::TableSizes;

/// Gives the connection table a random non-zero hash seed and IPVS's default timeouts if it
/// has no seed (a new map), before any program runs on it. A seed already there (pinned maps
/// adopted from an earlier agent) is kept, and so are its timeouts: the flows in the table are
/// where that seed put them, and the agent sets the config's timeouts itself
/// ([`Dataplane::set_timeouts`]).
pub(super) fn seed_conntrack(ebpf: &mut Ebpf, sizes: TableSizes) -> Result<(), LoadError> {
    let name = map_names::CT_SEED;
    let map = ebpf.map_mut(name).ok_or(LoadError::MissingMap { name })?;
    let mut configs: Array<&mut MapData, CtConfig> =
        Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
    let config = configs
        .get(&0, 0)
        .map_err(|source| LoadError::Map { name, source })?;
    let bucket_mask = buckets(sizes) - 1;
    if config.seed != 0 && config.bucket_mask == bucket_mask {
        return Ok(());
    }
    let config = if config.seed != 0 {
        CtConfig {
            bucket_mask,
            ..config
        }
    } else {
        CtConfig {
            seed: random_seed()?,
            timeouts: CtTimeouts::DEFAULT,
            bucket_mask,
            layout: CT_LAYOUT,
        }
    };
    configs
        .set(0, config, 0)
        .map_err(|source| LoadError::Map { name, source })
}

/// A random non-zero `u64` from the kernel's random pool.
fn random_seed() -> Result<u64, LoadError> {
    loop {
        let mut bytes = [0u8; 8];
        // SAFETY: getrandom(2) writes at most `bytes.len()` bytes into the buffer.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            let source = std::io::Error::last_os_error();
            if source.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(LoadError::Random { source });
        }
        let seed = u64::from_ne_bytes(bytes);
        if n as usize == bytes.len() && seed != 0 {
            return Ok(seed);
        }
    }
}

impl Dataplane {
    /// Sets the connection table's idle timeouts (the seed is kept). Flows already in the
    /// table are judged by the new timeouts from their next lookup on, as IPVS's are not (its
    /// timer keeps the timeout it was armed with until the next packet).
    pub fn set_timeouts(&mut self, timeouts: CtTimeouts) -> Result<(), LoadError> {
        let name = map_names::CT_SEED;
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(LoadError::MissingMap { name })?;
        let mut configs: Array<&mut MapData, CtConfig> =
            Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
        let mut config = configs
            .get(&0, 0)
            .map_err(|source| LoadError::Map { name, source })?;
        if config.timeouts == timeouts {
            return Ok(());
        }
        config.timeouts = timeouts;
        configs
            .set(0, config, 0)
            .map_err(|source| LoadError::Map { name, source })
    }

    /// The connection table's idle timeouts.
    pub fn timeouts(&mut self) -> Result<CtTimeouts, LoadError> {
        self.ct_config().map(|c| c.timeouts)
    }

    /// The connection table's settings (seed, timeouts, size), as the data plane reads them.
    pub(super) fn ct_config(&mut self) -> Result<CtConfig, LoadError> {
        let name = map_names::CT_SEED;
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(LoadError::MissingMap { name })?;
        let configs: Array<&mut MapData, CtConfig> =
            Array::try_from(map).map_err(|source| LoadError::Map { name, source })?;
        configs
            .get(&0, 0)
            .map_err(|source| LoadError::Map { name, source })
    }
}
