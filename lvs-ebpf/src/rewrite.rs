//! Stage 6: direct routing. The IP packet is untouched; the Ethernet destination becomes the
//! real server's MAC and the source the egress interface's. Out through the ingress interface:
//! XDP_TX; through another one: XDP_REDIRECT via the devmap. A local destination (the
//! director as fallback): XDP_PASS, so its own stack answers on the VIP.

use aya_ebpf::{
    bindings::xdp_action::{XDP_PASS, XDP_TX},
    programs::XdpContext,
};
use lvs_common::{Dest, dest::dest_flags, stats::DropReason};

use crate::{maps::TX_PORTS, stats};

/// Rewrites the frame for `dest` and gives the verdict that sends it there.
#[inline(always)]
pub fn forward(ctx: &XdpContext, dest: &Dest) -> Result<u32, u32> {
    if dest.flags & dest_flags::LOCAL != 0 {
        return Ok(XDP_PASS);
    }
    let start = ctx.data();
    if start + 12 > ctx.data_end() {
        return Err(XDP_PASS);
    }
    // `dst_mac` and `src_mac` are the first 12 bytes of `Dest`, in the order of the Ethernet
    // header: three word copies, no call to memcpy on the hot path.
    let from = dest as *const Dest as *const u32;
    let to = start as *mut u32;
    // SAFETY: `Dest` is `#[repr(C)]`, 4-aligned and starts with the two 6-byte MACs; the 12
    // bytes written are within the packet (checked above), possibly unaligned.
    unsafe {
        for i in 0..3 {
            core::ptr::write_unaligned(to.add(i), *from.add(i));
        }
    }

    if dest.ifindex == ctx.ingress_ifindex() as u32 {
        return Ok(XDP_TX);
    }
    TX_PORTS
        .redirect(dest.ifindex, 0)
        .map_err(|_| stats::drop(ctx, DropReason::RedirectFailed))
}
