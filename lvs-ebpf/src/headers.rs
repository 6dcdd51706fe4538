//! Writing headers into the packet, and the Internet checksum (RFC 1071), for the stages that
//! build headers of their own ([`crate::tunnel`], [`crate::too_big`]).
//!
//! Every value here is in *wire order read natively*: a `u16`/`u32` read straight from the
//! packet and written back unchanged. The one's complement sum does not depend on byte order
//! (RFC 1071, 2.(B)), so a checksum summed over such words, folded and complemented, is
//! written back natively as is. Header fields are handled as whole words, never byte by byte
//! (bytes held one per register would not fit the BPF stack).

use aya_ebpf::{
    bindings::xdp_action::XDP_PASS, helpers::generated::bpf_csum_diff, programs::XdpContext,
};

/// Writes `value` at `offset` bytes into the packet, if the packet is long enough.
#[inline(always)]
pub fn write<T: Copy>(ctx: &XdpContext, offset: usize, value: T) -> Result<(), u32> {
    let start = ctx.data();
    if start + offset + core::mem::size_of::<T>() > ctx.data_end() {
        return Err(XDP_PASS);
    }
    // SAFETY: the bytes written lie within the packet (checked above); headers need not be
    // aligned.
    unsafe { core::ptr::write_unaligned((start + offset) as *mut T, value) };
    Ok(())
}

/// Copies a `T` from `from` to `to` bytes into the packet.
#[inline(always)]
pub fn copy<T: Copy>(ctx: &XdpContext, from: usize, to: usize) -> Result<(), u32> {
    let v = crate::parse::read::<T>(ctx, from)?;
    write(ctx, to, v)
}

/// The two 16-bit words of a 32-bit one, for the sum.
#[inline(always)]
pub const fn words32(w: u32) -> u64 {
    (w & 0xffff) as u64 + (w >> 16) as u64
}

/// A 16-bit word from its two bytes in wire order.
#[inline(always)]
pub const fn word(first: u8, second: u8) -> u16 {
    u16::from_ne_bytes([first, second])
}

/// Adds the 16-bit words of the `N` packet bytes at `offset` (`N` a multiple of 4, at most
/// 512) to `sum`, with the `bpf_csum_diff` helper (a loop here would be unrolled into more
/// registers than the BPF stack holds).
#[inline(always)]
pub fn add_packet_words<const N: usize>(
    ctx: &XdpContext,
    offset: usize,
    sum: u64,
) -> Result<u64, u32> {
    let start = ctx.data();
    if start + offset + N > ctx.data_end() {
        return Err(XDP_PASS);
    }
    // SAFETY: the `N` bytes at `offset` lie within the packet (checked above); nothing is
    // written.
    let partial = unsafe {
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            (start + offset) as *mut u32,
            N as u32,
            0,
        )
    };
    if partial < 0 {
        return Err(XDP_PASS);
    }
    Ok(sum + (partial as u64 & 0xffff_ffff))
}

/// The checksum field's value for `sum`: folded to 16 bits and complemented.
#[inline(always)]
pub fn finish(sum: u64) -> u16 {
    let mut s = sum;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}
