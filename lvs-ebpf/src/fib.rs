//! The next hop from the kernel's FIB (`bpf_fib_lookup`), for the forwarding methods that
//! route ([`crate::tunnel`], [`crate::nat`], [`crate::nat_reply`]): the egress interface, its
//! MAC, the next hop's MAC (from the kernel's neighbour table) and, when asked
//! (`BPF_FIB_LOOKUP_SRC`), the route's preferred source address. A route or neighbour change
//! is followed at the next packet, with nothing for the agent to do. The helper answers only
//! when forwarding is enabled on the interface the packet came in on (the agent checks that
//! at start).

use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_action::XDP_TX},
    helpers::generated::{bpf_fib_lookup as fib_lookup, bpf_redirect},
    programs::XdpContext,
};
use lvs_common::Addr;

use crate::headers;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// Asks the FIB for the route of a packet of `tot_len` bytes (its IP length) and protocol
/// `l4_proto` from `src` to `dst`, as if it came in on interface `ingress` (the packet's:
/// [`ingress`]), with the helper's `flags`. Returns the helper's code (`BPF_FIB_LKUP_RET_*`)
/// and what it filled in.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn lookup(
    ctx: &XdpContext,
    ingress: u32,
    v4: bool,
    l4_proto: u8,
    src: &Addr,
    dst: &Addr,
    tot_len: usize,
    flags: u32,
) -> (i64, bpf_fib_lookup) {
    // SAFETY: a plain C struct of integers; all zero is a valid value.
    let mut fib: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    fib.ifindex = ingress;
    fib.__bindgen_anon_1.tot_len = tot_len as u16;
    fib.l4_protocol = l4_proto;
    if v4 {
        fib.family = AF_INET;
        fib.__bindgen_anon_3.ipv4_src = src.words[3];
        fib.__bindgen_anon_4.ipv4_dst = dst.words[3];
    } else {
        fib.family = AF_INET6;
        fib.__bindgen_anon_3.ipv6_src = src.words;
        fib.__bindgen_anon_4.ipv6_dst = dst.words;
    }
    // SAFETY: `fib` is a valid `bpf_fib_lookup` of the size passed; the context is the
    // program's.
    let rc = unsafe {
        fib_lookup(
            ctx.ctx as *mut _,
            &mut fib,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            flags,
        )
    };
    (rc, fib)
}

/// The route's MTU, after a lookup that answered `BPF_FIB_LKUP_RET_FRAG_NEEDED`.
#[inline(always)]
pub fn mtu(fib: &bpf_fib_lookup) -> usize {
    // SAFETY: the helper wrote the route's MTU into the union.
    (unsafe { fib.__bindgen_anon_1.mtu_result }) as usize
}

/// Writes the Ethernet addresses of the next hop: the neighbour's MAC as destination, the
/// egress interface's as source.
#[inline(always)]
pub fn write_macs(ctx: &XdpContext, fib: &bpf_fib_lookup) -> Result<(), u32> {
    headers::write(ctx, 0, fib.dmac)?;
    headers::write(ctx, 6, fib.smac)
}

/// The verdict that sends the frame out of the route's interface: XDP_TX if it is `ingress`,
/// the one the packet came in on, else a redirect.
#[inline(always)]
pub fn send(ingress: u32, fib: &bpf_fib_lookup) -> u32 {
    if fib.ifindex == ingress {
        return XDP_TX;
    }
    // SAFETY: a helper taking plain integers.
    (unsafe { bpf_redirect(fib.ifindex, 0) }) as u32
}

/// The interface the packet came in on. Read it once per program and pass it on: the
/// verifier refuses a load through a context pointer the compiler kept with the field's
/// offset added, as it may for a second read.
#[inline(always)]
pub fn ingress(ctx: &XdpContext) -> u32 {
    // SAFETY: the context is the program's; `ingress_ifindex` is one of its fields.
    unsafe { core::ptr::read_volatile(&(*ctx.ctx).ingress_ifindex) }
}
