//! Stage 2: is the packet well formed? A packet that no host would accept must not create a
//! connection-table or persistence entry nor move a scheduler. Checked here, on every parsed
//! packet before the connection table:
//!
//! - IPv4: the header checksum; the total length against the frame;
//! - IPv6: the payload length against the frame; no IPv4-mapped address (it would match an
//!   IPv4 VIP);
//! - the frame holds exactly the IP packet, or is a short frame (at most 64 bytes) that
//!   Ethernet padded;
//! - the IP packet holds its own headers (for IPv6, the extension headers followed);
//! - TCP: a data offset of at least 5 within the packet, not SYN with FIN;
//! - UDP: a length of at least 8 that ends where the IP packet ends (in a first fragment:
//!   past its end, where the other fragments carry the rest);
//! - a later fragment (no transport header) only has the IP checks;
//! - the source is not unspecified (0.0.0.0/8, `::`), loopback (127/8, `::1`), multicast or
//!   broadcast (224/4, 240/4, ff00::/8), nor the destination itself.
//!
//! The caller drops a malformed packet to a VIP (counted as `malformed`) and passes any other
//! malformed packet untouched: what is not for a VIP is the kernel's business.

use aya_ebpf::programs::XdpContext;
use lvs_common::{Addr, service::proto};

use crate::parse::{Packet, frag, read};

/// The longest frame Ethernet may have padded (60 bytes, 64 with a VLAN tag; no FCS).
const PADDED_FRAME: u64 = 64;
const IPV6_HLEN: u64 = 40;
const TCP_HLEN: u64 = 20;
const UDP_HLEN: u64 = 8;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;

/// Whether the packet is well formed.
#[inline(always)]
pub fn ok(ctx: &XdpContext, pkt: &Packet) -> bool {
    check(ctx, pkt).is_ok()
}

#[inline(always)]
fn check(ctx: &XdpContext, pkt: &Packet) -> Result<(), u32> {
    let l3 = pkt.l3 as u64;
    let l4 = pkt.l4 as u64;
    let end = if pkt.v4 {
        let tot = u16::from_be(read::<u16>(ctx, pkt.l3 + 2)?) as u64;
        if l3 + tot < l4 {
            return Err(0);
        }
        ipv4_checksum(ctx, pkt.l3, (pkt.l4 - pkt.l3) / 4)?;
        l3 + tot
    } else {
        if pkt.key.src.is_v4() || pkt.key.dst.is_v4() {
            return Err(0);
        }
        l3 + IPV6_HLEN + u16::from_be(read::<u16>(ctx, pkt.l3 + 4)?) as u64
    };
    if end > pkt.len || (end < pkt.len && pkt.len > PADDED_FRAME) || end < l4 {
        return Err(0);
    }
    if pkt.frag == frag::LATER {
        // No transport header: fragment data.
    } else if pkt.key.proto == proto::TCP {
        let b = read::<[u8; 2]>(ctx, pkt.l4 + 12)?;
        let doff = (b[0] >> 4) as u64 * 4;
        if doff < TCP_HLEN || l4 + doff > end || b[1] & (TCP_SYN | TCP_FIN) == TCP_SYN | TCP_FIN {
            return Err(0);
        }
    } else {
        let ulen = u16::from_be(read::<u16>(ctx, pkt.l4 + 4)?) as u64;
        // A first fragment holds only the start of the datagram the length covers.
        let whole = if pkt.frag == frag::FIRST {
            l4 + ulen > end
        } else {
            l4 + ulen == end
        };
        if ulen < UDP_HLEN || !whole {
            return Err(0);
        }
    }
    if martian(&pkt.key.src, pkt.v4) || pkt.key.src == pkt.key.dst {
        return Err(0);
    }
    Ok(())
}

/// Checks the IPv4 header checksum over `words` 32-bit words at `l3`.
#[inline(always)]
fn ipv4_checksum(ctx: &XdpContext, l3: usize, words: usize) -> Result<(), u32> {
    let mut sum: u64 = 0;
    for i in 0..15 {
        if i >= words {
            break;
        }
        sum += read::<u32>(ctx, l3 + 4 * i)? as u64;
    }
    // One's complement sum, folded to 16 bits: 0xffff when the checksum is right (the same
    // in either byte order).
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    if sum == 0xffff { Ok(()) } else { Err(0) }
}

/// A source no host can have.
#[inline(always)]
fn martian(src: &Addr, v4: bool) -> bool {
    if v4 {
        let first = src.words[3].to_ne_bytes()[0];
        first == 0 || first == 127 || first >= 224
    } else {
        let w = src.words;
        let unspecified_or_loopback =
            w[0] == 0 && w[1] == 0 && w[2] == 0 && (w[3] == 0 || w[3] == 1u32.to_be());
        unspecified_or_loopback || w[0].to_ne_bytes()[0] == 0xff
    }
}
