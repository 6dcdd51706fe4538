//! The next-hop cache's generation ([`lvs_common::next_hop`]): the data plane keeps the FIB's
//! answers for tunnelled and NATed packets in a cache whose entries hold only while they are
//! of the current generation, and the agent bumps the generation on every routing change the
//! kernel announces ([`NextHopFollower`]), so a route or neighbour change is followed from the
//! first packet after the agent heard of it. Entries also expire after
//! [`lvs_common::next_hop::NEXT_HOP_MAX_AGE_NS`], for changes no one bumped the generation
//! for (no agent running).

use std::{
    os::fd::AsFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use aya::maps::{Array, Map, MapData, MapError};
use lvs_common::limits::map_names;

use crate::{
    dataplane::Dataplane,
    neighbour::{self, NeighbourError},
};

/// Errors of the next-hop cache's generation.
#[derive(Debug, thiserror::Error)]
pub enum NextHopError {
    /// The generation map is missing from the object.
    #[error("map {name} is missing from the BPF object")]
    MissingMap {
        /// The map's name.
        name: &'static str,
    },
    /// Its descriptor could not be duplicated for the follower.
    #[error("duplicating the descriptor of map {name}")]
    Dup {
        /// The map's name.
        name: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing it failed.
    #[error("map {name}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// The cause.
        #[source]
        source: MapError,
    },
    /// The follower's thread could not be started.
    #[error("starting the next-hop follower's thread")]
    Spawn {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Routing changes cannot be followed.
    #[error("following routing changes")]
    Watch {
        /// The cause.
        #[source]
        source: NeighbourError,
    },
}

const NAME: &str = map_names::NEXT_HOP_GENERATION;

/// A handle on the generation, usable from any thread.
pub struct NextHopGeneration {
    map: Array<MapData, u32>,
}

impl NextHopGeneration {
    /// The generation of `dp`'s next-hop cache.
    pub fn of(dp: &mut Dataplane) -> Result<Self, NextHopError> {
        let Some(Map::Array(data)) = dp.ebpf().map(NAME) else {
            return Err(NextHopError::MissingMap { name: NAME });
        };
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| NextHopError::Dup { name: NAME, source })?;
        let data =
            MapData::from_fd(fd).map_err(|source| NextHopError::Map { name: NAME, source })?;
        let map = Array::try_from(Map::Array(data))
            .map_err(|source| NextHopError::Map { name: NAME, source })?;
        Ok(NextHopGeneration { map })
    }

    /// The current generation.
    pub fn current(&self) -> Result<u32, NextHopError> {
        self.map
            .get(&0, 0)
            .map_err(|source| NextHopError::Map { name: NAME, source })
    }

    /// Makes every cached next hop old; returns the new generation.
    pub fn bump(&mut self) -> Result<u32, NextHopError> {
        let next = self.current()?.wrapping_add(1);
        self.map
            .set(0, next, 0)
            .map_err(|source| NextHopError::Map { name: NAME, source })?;
        Ok(next)
    }
}

/// How often the follower looks whether it is to stop.
const STOP_POLL: Duration = Duration::from_millis(200);

/// Bumps the generation on every routing change, from a thread of its own, until dropped.
pub struct NextHopFollower {
    stop: Arc<AtomicBool>,
}

impl NextHopFollower {
    /// Subscribes to the routing changes of the calling thread's network namespace, bumps the
    /// generation once (for changes before the subscription), then on every change.
    pub fn spawn(mut generation: NextHopGeneration) -> Result<Self, NextHopError> {
        let mut watch =
            neighbour::watch_routing().map_err(|source| NextHopError::Watch { source })?;
        generation.bump()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("lvs-next-hops".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    let changed = match watch.wait(STOP_POLL) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(
                                "routing changes no longer followed ({e}): tunnelled and \
                                 NATed packets follow a change within the next-hop cache's \
                                 maximum age (1 s)"
                            );
                            return;
                        }
                    };
                    if changed && let Err(e) = generation.bump() {
                        tracing::warn!("bumping the next-hop cache's generation: {e}");
                    }
                }
            })
            .map_err(|source| NextHopError::Spawn { source })?;
        Ok(NextHopFollower { stop })
    }
}

impl Drop for NextHopFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts a [`NextHopFollower`] for `dp`, in the calling thread's network namespace. A failure
/// is logged (with its causes), not fatal: the cache's entries then expire by their maximum age
/// alone.
pub fn follow(dp: &mut Dataplane) -> Option<NextHopFollower> {
    match NextHopGeneration::of(dp).and_then(NextHopFollower::spawn) {
        Ok(f) => Some(f),
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            tracing::warn!(
                "{msg}: tunnelled and NATed packets follow a route or neighbour change only \
                 within the next-hop cache's maximum age (1 s)"
            );
            None
        }
    }
}
