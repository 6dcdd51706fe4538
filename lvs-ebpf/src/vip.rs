//! Stage 3: find the virtual service of a packet: (VIP, port, protocol), then (VIP, every
//! port, protocol). Not a virtual service: XDP_PASS.

use aya_ebpf::bindings::xdp_action::XDP_PASS;
use lvs_common::{FlowKey, Service, VipKey};

use crate::maps::SERVICES;

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
