//! Stage 4, destination hashing (`dh`): IPVS's 256-bucket table, filled by the agent
//! round-robin over the service's reals in IPVS's list order (weights ignored), indexed by the
//! hash of the packet's destination address ([`lvs_common::conns::dh_bucket`]). A bucket whose
//! real has weight 0 has no destination, as in IPVS (no fallback to another bucket).

use lvs_common::{
    FlowKey, Service,
    conns::{DH_BUCKETS, candidate_id, candidate_weight, dh_bucket},
};

use crate::maps::RINGS;

/// The destination id of the bucket of `key`'s destination address, or `None` if its real takes
/// no new connection (or the table is not whole).
#[inline(always)]
pub fn choose(service: &Service, key: &FlowKey, len: u32) -> Option<u32> {
    if len != DH_BUCKETS {
        return None;
    }
    let pos = dh_bucket(&key.dst);
    let &c = RINGS.get(Service::ring_index(service.id, service.ring_gen, pos))?;
    (candidate_weight(c) > 0).then_some(candidate_id(c))
}
