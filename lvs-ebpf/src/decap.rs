//! `lvs_decap`, for real servers behind a tunnelling director (`lvs decap`): an IP-in-IP
//! packet (IPv4 in IPv4, protocol 4; IPv6 in IPv6, next header 41) whose inner destination is
//! one of the VIPs in [`DECAP_VIPS`] loses its outer header and goes up the stack as the
//! client's packet to the VIP, as from the kernel's `ipip`/`ip6tnl` device, which some kernels
//! (this one) lack. Everything else is XDP_PASS untouched. The outer header must be a plain
//! one (IPv4 without options, IPv6 without extension headers), as lvs and IPVS send it.

use aya_ebpf::{
    bindings::xdp_action::XDP_PASS, helpers::generated::bpf_xdp_adjust_head, macros::map,
    maps::HashMap, programs::XdpContext,
};
use lvs_common::Addr;

use crate::{headers, parse::read};

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;

/// The VIPs this real server serves (value unused), written by `lvs decap`.
#[map(name = "LVS_DECAP_VIPS")]
pub static DECAP_VIPS: HashMap<Addr, u32> = HashMap::with_max_entries(1024, 0);

/// Strips the outer header of a tunnelled packet to a VIP; passes everything.
#[inline(always)]
pub fn run(ctx: &XdpContext) -> Result<u32, u32> {
    let mut l3 = 14;
    let mut ethertype = u16::from_be(read::<u16>(ctx, 12)?);
    if ethertype == ETH_P_8021Q {
        ethertype = u16::from_be(read::<u16>(ctx, 16)?);
        l3 = 18;
    }
    let outer = match ethertype {
        ETH_P_IPV4 => {
            if read::<u8>(ctx, l3)? != 0x45 || read::<u8>(ctx, l3 + 9)? != IPPROTO_IPIP {
                return Ok(XDP_PASS);
            }
            let inner = read::<[u8; 20]>(ctx, l3 + 20)?;
            if inner[0] >> 4 != 4 {
                return Ok(XDP_PASS);
            }
            let dst = u32::from_ne_bytes([inner[16], inner[17], inner[18], inner[19]]);
            if DECAP_VIPS.get_ptr(Addr::from_v4_wire(dst)).is_none() {
                return Ok(XDP_PASS);
            }
            20
        }
        ETH_P_IPV6 => {
            if read::<u8>(ctx, l3 + 6)? != IPPROTO_IPV6 || read::<u8>(ctx, l3 + 40)? >> 4 != 6 {
                return Ok(XDP_PASS);
            }
            let dst = Addr {
                words: read::<[u32; 4]>(ctx, l3 + 40 + 24)?,
            };
            if DECAP_VIPS.get_ptr(dst).is_none() {
                return Ok(XDP_PASS);
            }
            40
        }
        _ => return Ok(XDP_PASS),
    };
    // The Ethernet header moves forward over the outer IP header, which then falls off the
    // front (same family: the type stays).
    headers::copy::<u16>(ctx, 12, outer + 12)?;
    if l3 > 14 {
        headers::copy::<u32>(ctx, 14, outer + 14)?;
    }
    headers::copy::<[u32; 3]>(ctx, 0, outer)?;
    // SAFETY: the helper moves `data` forward by `outer` bytes or fails, leaving it.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, outer as i32) } != 0 {
        return Ok(XDP_PASS);
    }
    Ok(XDP_PASS)
}
