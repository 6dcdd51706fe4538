//! Stage 3: find the virtual service of a packet: (VIP, port, protocol), then (VIP, every
//! port, protocol). Not a virtual service: XDP_PASS.

use aya_ebpf::bindings::xdp_action::XDP_PASS;
use lvs_common::{Addr, FlowKey, Service, VipKey};

use crate::maps::{SERVICES, VIP_ADDRS};

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
    vip.port_be = 0;
    // SAFETY: as above.
    unsafe { SERVICES.get(vip) }.ok_or(XDP_PASS)
}

/// Whether `addr` is the address of a virtual service of one of the protocols in `protos`
/// ([`lvs_common::fragment::vip_protos`] bits): what a packet without ports (a later
/// fragment, an IPv6 chain the parser does not follow) is judged by.
#[inline(always)]
pub fn is_vip_addr(addr: &Addr, protos: u32) -> bool {
    // SAFETY: a `u32` copied out at once.
    unsafe { VIP_ADDRS.get(addr) }.is_some_and(|&p| p & protos != 0)
}
