//! Stage 0: is the frame addressed to this director? Its Ethernet destination must be one of
//! the accepted MACs (the interface's own, and those the config adds, such as a VRRP virtual
//! MAC), written by the agent. Anything else (broadcast, multicast, another host's unicast
//! MAC, flooded by a switch) is XDP_PASS, untouched and counted nowhere: the kernel decides.

use aya_ebpf::{bindings::xdp_action::XDP_PASS, programs::XdpContext};
use lvs_common::mac::{MAC_WORD_MASK, MAX_OWN_MACS};

use crate::maps::OWN_MACS;

/// `Ok` for a frame to an accepted MAC, else the verdict XDP_PASS.
#[inline(always)]
pub fn check(ctx: &XdpContext) -> Result<(), u32> {
    let start = ctx.data();
    if start + 8 > ctx.data_end() {
        return Err(XDP_PASS);
    }
    // SAFETY: the 8 bytes read are within the packet (checked above), possibly unaligned.
    let word = unsafe { core::ptr::read_unaligned(start as *const u64) } & MAC_WORD_MASK;
    let own = OWN_MACS.get(0).ok_or(XDP_PASS)?;
    let count = own.count as usize;
    for i in 0..MAX_OWN_MACS {
        if i >= count {
            break;
        }
        if own.macs[i] == word {
            return Ok(());
        }
    }
    Err(XDP_PASS)
}
