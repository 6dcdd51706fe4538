//! The data plane's per-CPU counters: per service, per destination, drops by reason.

use aya::maps::{MapData, MapError, PerCpuArray, PerCpuValues};
use lvs_common::{Counters, limits::map_names, stats::DropReason};

/// The counter maps.
pub struct Stats {
    services: PerCpuArray<MapData, Counters>,
    dests: PerCpuArray<MapData, Counters>,
    drops: PerCpuArray<MapData, u64>,
    cpus: usize,
}

/// A counter map could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("counters in map {map}: {source}")]
pub struct StatsError {
    /// The map's name.
    pub map: &'static str,
    /// The cause.
    #[source]
    pub source: MapError,
}

fn err(map: &'static str) -> impl Fn(MapError) -> StatsError {
    move |source| StatsError { map, source }
}

impl Stats {
    /// Wraps the three counter maps; `cpus` is the number of possible CPUs.
    pub fn new(
        services: PerCpuArray<MapData, Counters>,
        dests: PerCpuArray<MapData, Counters>,
        drops: PerCpuArray<MapData, u64>,
        cpus: usize,
    ) -> Self {
        Stats {
            services,
            dests,
            drops,
            cpus,
        }
    }

    /// A service's counters, summed over CPUs.
    pub fn service(&self, id: u32) -> Result<Counters, StatsError> {
        sum(&self.services, id).map_err(err(map_names::SERVICE_STATS))
    }

    /// A destination's counters, summed over CPUs.
    pub fn dest(&self, id: u32) -> Result<Counters, StatsError> {
        sum(&self.dests, id).map_err(err(map_names::DEST_STATS))
    }

    /// Drops for `reason`, summed over CPUs.
    pub fn drops(&self, reason: DropReason) -> Result<u64, StatsError> {
        let v = self
            .drops
            .get(&(reason as u32), 0)
            .map_err(err(map_names::DROPS))?;
        Ok(v.iter().sum())
    }

    /// Zeroes a service's counters (its id is being given to a new service).
    pub fn reset_service(&mut self, id: u32) -> Result<(), StatsError> {
        zero(&mut self.services, id, self.cpus).map_err(err(map_names::SERVICE_STATS))
    }

    /// Zeroes a destination's counters (its slot is being reused).
    pub fn reset_dest(&mut self, id: u32) -> Result<(), StatsError> {
        zero(&mut self.dests, id, self.cpus).map_err(err(map_names::DEST_STATS))
    }
}

fn sum(map: &PerCpuArray<MapData, Counters>, id: u32) -> Result<Counters, MapError> {
    Ok(map
        .get(&id, 0)?
        .iter()
        .fold(Counters::default(), |a, b| a.plus(*b)))
}

fn zero(map: &mut PerCpuArray<MapData, Counters>, id: u32, cpus: usize) -> Result<(), MapError> {
    map.set(
        id,
        PerCpuValues::try_from(vec![Counters::default(); cpus])?,
        0,
    )
}
