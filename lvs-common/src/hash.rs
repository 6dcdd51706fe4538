//! The source-address hash of the `sh` scheduler, shared so the agent and its tests can say
//! which ring slot a client lands on.

use crate::addr::Addr;

/// A 32-bit hash of an address (a multiply-xorshift mix of its four words). Cheap in the
/// kernel (no loops, no tables) and well spread over the low bits used for `% ring_len`.
#[inline(always)]
pub const fn addr_hash(addr: &Addr) -> u32 {
    let mut h: u32 = 0x9e37_79b9;
    let mut i = 0;
    while i < 4 {
        h ^= addr.words[i];
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        i += 1;
    }
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The ring slot the `sh` scheduler picks for `client` in a ring of `ring_len` slots (0 for an
/// empty ring).
#[inline(always)]
pub const fn source_hash_slot(client: &Addr, ring_len: u32) -> u32 {
    match addr_hash(client).checked_rem(ring_len) {
        Some(slot) => slot,
        None => 0,
    }
}
