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
    let eth = start as *mut [u8; 12];
    let mut macs = [0u8; 12];
    macs[..6].copy_from_slice(&dest.dst_mac);
    macs[6..].copy_from_slice(&dest.src_mac);
    // SAFETY: the 12 bytes of the two MAC addresses are within the packet (checked above).
    unsafe { core::ptr::write_unaligned(eth, macs) };

    if dest.ifindex == ctx.ingress_ifindex() as u32 {
        return Ok(XDP_TX);
    }
    TX_PORTS
        .redirect(dest.ifindex, 0)
        .map_err(|_| stats::drop(ctx, DropReason::RedirectFailed))
}
