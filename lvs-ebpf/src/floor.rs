//! The benchmark floor: the least a DR balancer must do for a packet of a known flow. Parse
//! Ethernet, IPv4 and TCP; one hash lookup of the 5-tuple; rewrite the MACs; XDP_TX.
//! `cargo xtask bench` runs it beside `lvs_xdp` to put the balancer's cost in proportion.

use aya_ebpf::{
    bindings::xdp_action::{XDP_PASS, XDP_TX},
    macros::{map, xdp},
    maps::HashMap,
    programs::XdpContext,
};
use lvs_common::{Addr, FlowKey};

/// 5-tuple → the 12 MAC bytes to write.
#[map(name = "LVS_FLOOR_FLOWS")]
static FLOOR_FLOWS: HashMap<FlowKey, [u8; 12]> = HashMap::with_max_entries(1024, 0);

/// The floor program.
#[xdp]
pub fn lvs_floor(ctx: XdpContext) -> u32 {
    floor(&ctx).unwrap_or(XDP_PASS)
}

#[inline(always)]
fn floor(ctx: &XdpContext) -> Option<u32> {
    let start = ctx.data();
    // Ethernet 14 + IPv4 20 + TCP ports 4.
    if start + 38 > ctx.data_end() {
        return None;
    }
    let p = start as *const u8;
    // SAFETY: all reads below are within the 38 bytes checked above.
    unsafe {
        if core::ptr::read_unaligned(p.add(12) as *const u16) != 0x0800u16.to_be()
            || *p.add(14) != 0x45
            || *p.add(23) != 6
        {
            return None;
        }
        let key = FlowKey {
            src: Addr::from_v4_wire(core::ptr::read_unaligned(p.add(26) as *const u32)),
            dst: Addr::from_v4_wire(core::ptr::read_unaligned(p.add(30) as *const u32)),
            sport_be: core::ptr::read_unaligned(p.add(34) as *const u16),
            dport_be: core::ptr::read_unaligned(p.add(36) as *const u16),
            proto: 6,
            _pad0: 0,
            _pad1: 0,
        };
        // The MACs written as the balancer writes a real's ([`crate::rewrite`]): three word
        // copies. (Copied as one `[u8; 12]`, the compiler made them a call to `memmove`, a
        // loop of one byte a turn, which made the floor dearer than the work it stands for.)
        let macs = FLOOR_FLOWS.get(key)? as *const [u8; 12] as *const u32;
        for i in 0..3 {
            // A map value is 8-aligned (the kernel's layout), so its words may be read as
            // `u32`s; the packet's may not be aligned.
            core::ptr::write_unaligned((start as *mut u32).add(i), *macs.add(i));
        }
    }
    Some(XDP_TX)
}
