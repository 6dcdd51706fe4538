//! Stage 3: find the virtual service of a packet: (VIP, port, protocol), then (VIP, every
//! port, protocol) if the tables hold a service of every port (the agent's flag,
//! [`lvs_common::service::table_flags::ANY_PORT`]: without one, a packet to no service, such
//! as the director's own traffic or a NATed flow's reply, costs one lookup, not two). Not a
//! virtual service: XDP_PASS.

use aya_ebpf::bindings::xdp_action::XDP_PASS;
use lvs_common::{Addr, FlowKey, Service, VipKey, service::table_flags};

use crate::maps::{SERVICES, TABLE_FLAGS, VIP_ADDRS};

/// The service the packet is addressed to.
#[inline(always)]
pub fn lookup(key: &FlowKey) -> Result<&'static Service, u32> {
    let mut vip = VipKey {
        addr: key.dst,
        port_be: key.dport_be,
        proto: key.proto,
        _pad: 0,
    };
    // SAFETY: the value is only read; the agent replaces services whole (hash-map updates
    // swap in a new element), so the reference never sees a half-written value.
    if let Some(s) = unsafe { SERVICES.get(vip) } {
        return Ok(s);
    }
    if !flag(table_flags::ANY_PORT) {
        return Err(XDP_PASS);
    }
    vip.port_be = 0;
    // SAFETY: as above.
    unsafe { SERVICES.get(vip) }.ok_or(XDP_PASS)
}

/// Whether the agent's flags word has `bit` ([`lvs_common::service::table_flags`]).
#[inline(always)]
pub fn flag(bit: u32) -> bool {
    TABLE_FLAGS.get(0).is_some_and(|&f| f & bit != 0)
}

/// Whether `addr` is the address of a virtual service of one of the protocols in `protos`
/// ([`lvs_common::fragment::vip_protos`] bits): what a packet without ports (a later
/// fragment, an IPv6 chain the parser does not follow) is judged by.
#[inline(always)]
pub fn is_vip_addr(addr: &Addr, protos: u32) -> bool {
    // SAFETY: a `u32` copied out at once.
    unsafe { VIP_ADDRS.get(addr) }.is_some_and(|&p| p & protos != 0)
}
