//! A million mutated frames through BPF_PROG_TEST_RUN, each checked against a model of what
//! the balancer must do, written here from the README's rules and not from the program's
//! code: valid IPv4/IPv6 TCP/UDP frames to the VIPs (with VLAN tags, IPv4 options, IPv6
//! extension headers, TCP options, padding), and the fragments of datagrams (in order or
//! not), mutated by bit flips, truncations, length fields, header fields and martian sources.
//! The model keeps the datagrams whose first fragment it saw, and where it went: a later
//! fragment must reach that very real.
//!
//! Seeded and reproducible: `LVS_FUZZ_SEED` (default fixed) and `LVS_FUZZ_FRAMES` (default
//! 20,000; `cargo xtask fuzz` runs 1,000,000). A failure names the seed and the frame's index.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use aya::maps::{HashMap as BpfHashMap, MapData};
use lvs::{
    config::{Protocol, Scheduler},
    dataplane::{Dataplane, DestPlan, ServicePlan, Target},
};
use lvs_common::{
    FlowKey, FragKey, FragValue,
    limits::{CT_BUCKETS, map_names},
    stats::DropReason,
};
use lvs_tests::{
    packet::{ACK, DIRECTOR_MAC, Frame, SYN, fix_ipv4_checksum, fragments},
    xdp::{TEST_RUN_IFINDEX, ct_map, flow_key, pin_to_one_cpu, run},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x100);
const OTHER4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 0x2);

fn real_mac(i: u8) -> [u8; 6] {
    [0x02, 0xaa, 0, 0, 0, i]
}

fn reals() -> Vec<DestPlan> {
    (1..=3u8)
        .map(|i| DestPlan {
            addr: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10 + i)),
            weight: u32::from(i),
            table_weight: u32::from(i),
            target: Target::Remote {
                mac: real_mac(i),
                src_mac: DIRECTOR_MAC,
                ifindex: TEST_RUN_IFINDEX,
            },
        })
        .collect()
}

/// The services: (VIP, port, protocol); port 0 is every port.
const SERVICES: [(IpAddr, u16, u8); 4] = [
    (IpAddr::V4(VIP4), 80, 6),
    (IpAddr::V4(VIP4), 53, 17),
    (IpAddr::V6(VIP6), 80, 6),
    (IpAddr::V6(VIP6), 0, 17),
];

fn plans() -> Vec<ServicePlan> {
    SERVICES
        .iter()
        .enumerate()
        .map(|(i, &(vip, port, p))| ServicePlan {
            one_packet: false,
            vip: SocketAddr::new(vip, port),
            protocol: if p == 6 { Protocol::Tcp } else { Protocol::Udp },
            scheduler: Scheduler::Wrr,
            persistence: (i == 2).then_some((300, 64)),
            dests: reals(),
            fallback: None,
            aliases: Vec::new(),
        })
        .collect()
}

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

// ---------------------------------------------------------------------------------------
// The model: what the README says the balancer does with a frame.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// XDP_PASS, the frame untouched.
    Pass,
    /// XDP_DROP, counted under the reason.
    Drop(DropReason),
    /// XDP_TX to a real of the service, only the MACs changed.
    Forward,
    /// XDP_TX to this real (a later fragment following its first), only the MACs changed.
    ForwardTo([u8; 6]),
}

/// The model's verdict for `f`, with the flow it parsed (when it got that far) and, for the
/// first fragment of a datagram, the datagram's key.
struct Verdict {
    expect: Expect,
    parsed: Option<Parsed>,
    first_of: Option<FragId>,
}

fn be16(f: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([f[at], f[at + 1]]))
}

fn mapped(a: &[u8]) -> bool {
    a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff
}

/// The 16-byte form of an IPv4 address (IPv4-mapped), as services are keyed.
fn v4_key(a: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[10] = 0xff;
    k[11] = 0xff;
    k[12..].copy_from_slice(a);
    k
}

fn ip_key(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => v4_key(&a.octets()),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The parsed fields the model needs.
struct Parsed {
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    proto: u8,
}

/// A datagram, as its fragments name it: (source, destination, protocol, identification).
type FragId = ([u8; 16], [u8; 16], u8, u32);

/// What the first fragment of a datagram left for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// They go to this real.
    Real([u8; 6]),
    /// It was to a VIP address but for no service: they are passed like it.
    Pass,
}

/// Whether `dst` is the address of a service of `proto` (6, 17), or of any protocol for
/// `None`.
fn vip_addr(dst: &[u8; 16], proto: Option<u8>) -> bool {
    SERVICES
        .iter()
        .any(|&(vip, _, p)| ip_key(vip) == *dst && proto.is_none_or(|want| want == p))
}

/// Whether a fragment of a datagram keyed by protocol `proto` (IPv4's protocol, IPv6's
/// Fragment header's Next Header) is to a VIP address: TCP or UDP to an address with a
/// service of that protocol, or IPv6 Destination Options first (any protocol may follow).
fn frag_to_vip(dst: &[u8; 16], proto: u8, v4: bool) -> bool {
    match proto {
        6 | 17 => vip_addr(dst, Some(proto)),
        60 if !v4 => vip_addr(dst, None),
        _ => false,
    }
}

/// What a fragment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Whole,
    First,
    Later,
}

/// The README's rules, with the datagrams whose first fragment was seen.
#[derive(Default)]
struct Model {
    follows: HashMap<FragId, Follow>,
}

impl Model {
    fn verdict(&self, f: &[u8]) -> Verdict {
        let v = |expect, parsed, first_of| Verdict {
            expect,
            parsed,
            first_of,
        };
        let pass = || v(Expect::Pass, None, None);
        let len = f.len();
        // Only frames to the director's own MAC are looked at.
        if f[..6] != DIRECTOR_MAC {
            return pass();
        }
        // Parsing: anything it cannot follow (not IP, a second VLAN tag, IPv4 with IHL under
        // 5, a protocol other than TCP/UDP, a header cut short) is passed.
        let mut l3 = 14;
        let mut ethertype = be16(f, 12);
        if ethertype == 0x8100 || ethertype == 0x88a8 {
            if len < 18 {
                return pass();
            }
            ethertype = be16(f, 16);
            l3 = 18;
        }
        let (v4, src, dst, proto, l4, kind, id, frag_proto) = match ethertype {
            0x0800 => {
                if len < l3 + 20 || f[l3] >> 4 != 4 || usize::from(f[l3] & 0xf) < 5 {
                    return pass();
                }
                let frag = be16(f, l3 + 6);
                let kind = if frag & 0x3fff == 0 {
                    Kind::Whole
                } else if frag & 0x1fff == 0 {
                    Kind::First
                } else {
                    Kind::Later
                };
                let src = v4_key(&f[l3 + 12..l3 + 16]);
                let dst = v4_key(&f[l3 + 16..l3 + 20]);
                let id = be16(f, l3 + 4) as u32;
                let l4 = l3 + usize::from(f[l3] & 0xf) * 4;
                (true, src, dst, f[l3 + 9], l4, kind, id, f[l3 + 9])
            }
            0x86dd => {
                if len < l3 + 40 || f[l3] >> 4 != 6 {
                    return pass();
                }
                let src: [u8; 16] = f[l3 + 8..l3 + 24].try_into().unwrap();
                let dst: [u8; 16] = f[l3 + 24..l3 + 40].try_into().unwrap();
                let mut next = f[l3 + 6];
                let mut off = l3 + 40;
                let (mut kind, mut id, mut frag_proto) = (Kind::Whole, 0, 0);
                let mut seen_fragment = false;
                // A chain longer than followed (or a second Fragment header): dropped at a
                // VIP address, passed elsewhere.
                let long = || {
                    if vip_addr(&dst, None) {
                        v(Expect::Drop(DropReason::LongExtChain), None, None)
                    } else {
                        pass()
                    }
                };
                let mut later = false;
                for _ in 0..6 {
                    match next {
                        0 | 43 | 60 => {
                            if len < off + 2 {
                                return pass();
                            }
                            next = f[off];
                            off += (usize::from(f[off + 1]) + 1) * 8;
                        }
                        44 => {
                            if seen_fragment {
                                return long();
                            }
                            seen_fragment = true;
                            if len < off + 8 {
                                return pass();
                            }
                            next = f[off];
                            let om = be16(f, off + 2);
                            let fid = u32::from_be_bytes(f[off + 4..off + 8].try_into().unwrap());
                            off += 8;
                            if om & 0xfff9 != 0 {
                                (id, frag_proto) = (fid, next);
                                if om & 0xfff8 != 0 {
                                    kind = Kind::Later;
                                    later = true;
                                    break;
                                }
                                kind = Kind::First;
                            }
                        }
                        _ => break,
                    }
                }
                if !later && matches!(next, 0 | 43 | 60 | 44) {
                    return long();
                }
                // A datagram's key protocol is its Fragment header's Next Header.
                (false, src, dst, next, off, kind, id, frag_proto)
            }
            _ => return pass(),
        };
        let frag_id: FragId = (src, dst, frag_proto, id);
        if kind == Kind::Later {
            return v(
                self.later(f, v4, l3, l4, &src, &dst, proto, frag_id),
                None,
                None,
            );
        }
        if proto != 6 && proto != 17 {
            return pass();
        }
        if len < l4 + 4 || (proto == 6 && len < l4 + 14) {
            if kind == Kind::First {
                // Too short for the transport header's fields: malformed at a VIP address.
                let expect = if frag_to_vip(&dst, frag_proto, v4) {
                    Expect::Drop(DropReason::Malformed)
                } else {
                    Expect::Pass
                };
                return v(expect, None, None);
            }
            return pass();
        }
        let p = Parsed {
            src,
            dst,
            sport: be16(f, l4) as u16,
            dport: be16(f, l4 + 2) as u16,
            proto,
        };
        let to_vip = SERVICES.iter().any(|&(vip, port, sp)| {
            ip_key(vip) == p.dst && sp == proto && (port == 0 || port == p.dport)
        });
        let first = kind == Kind::First;
        if well_formed(f, v4, l3, l4, &p, kind) {
            if to_vip {
                return v(Expect::Forward, Some(p), first.then_some(frag_id));
            }
            // A first fragment to a VIP address for no service: the others follow it.
            let first_of = (first && frag_to_vip(&dst, frag_proto, v4)).then_some(frag_id);
            return v(Expect::Pass, Some(p), first_of);
        }
        let expect = if to_vip {
            Expect::Drop(DropReason::Malformed)
        } else {
            Expect::Pass
        };
        v(expect, Some(p), None)
    }

    /// A fragment without a transport header.
    #[allow(clippy::too_many_arguments)]
    fn later(
        &self,
        f: &[u8],
        v4: bool,
        l3: usize,
        l4: usize,
        src: &[u8; 16],
        dst: &[u8; 16],
        proto: u8,
        id: FragId,
    ) -> Expect {
        if !frag_to_vip(dst, proto, v4) {
            return Expect::Pass;
        }
        let p = Parsed {
            src: *src,
            dst: *dst,
            sport: 0,
            dport: 0,
            proto,
        };
        if !well_formed(f, v4, l3, l4, &p, Kind::Later) {
            return Expect::Drop(DropReason::Malformed);
        }
        match self.follows.get(&id) {
            Some(Follow::Real(mac)) => Expect::ForwardTo(*mac),
            Some(Follow::Pass) => Expect::Pass,
            None => Expect::Drop(DropReason::OrphanFragment),
        }
    }
}

/// The README's "malformed", as a list of what a well-formed packet is.
/// A first fragment's UDP length covers more than it holds; a later fragment (no transport
/// header) has only the IP checks.
fn well_formed(f: &[u8], v4: bool, l3: usize, l4: usize, p: &Parsed, kind: Kind) -> bool {
    let len = f.len();
    if len < l4 {
        return false;
    }
    let end = if v4 {
        let ihl = l4 - l3;
        let tot = be16(f, l3 + 2);
        if tot < ihl {
            return false;
        }
        // The header's one's complement sum is 0xffff.
        let mut sum: u32 = (0..ihl / 2).map(|i| be16(f, l3 + 2 * i) as u32).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        if sum != 0xffff {
            return false;
        }
        l3 + tot
    } else {
        if mapped(&p.src) || mapped(&p.dst) {
            return false;
        }
        l3 + 40 + be16(f, l3 + 4)
    };
    // The frame ends where the packet does, unless Ethernet padded a short one.
    if end > len || (end < len && len > 64) || end < l4 {
        return false;
    }
    if kind == Kind::Later {
        // Fragment data: no transport checks.
    } else if p.proto == 6 {
        let doff = usize::from(f[l4 + 12] >> 4) * 4;
        if doff < 20 || l4 + doff > end || f[l4 + 13] & 0x03 == 0x03 {
            return false;
        }
    } else {
        if len < l4 + 6 {
            return false;
        }
        let ulen = be16(f, l4 + 4);
        let holds = if kind == Kind::First {
            l4 + ulen > end
        } else {
            l4 + ulen == end
        };
        if ulen < 8 || !holds {
            return false;
        }
    }
    let s = &p.src;
    let martian = if v4 {
        s[12] == 0 || s[12] == 127 || s[12] >= 224
    } else {
        s.iter().all(|&b| b == 0) || (s[..15].iter().all(|&b| b == 0) && s[15] == 1) || s[0] == 0xff
    };
    !martian && p.src != p.dst
}

// ---------------------------------------------------------------------------------------
// The frames.
// ---------------------------------------------------------------------------------------

/// A valid frame and where its headers are.
struct Base {
    frame: Vec<u8>,
    v4: bool,
    tcp: bool,
    l3: usize,
    l4: usize,
}

fn base(rng: &mut Rng) -> Base {
    let v4 = rng.one_in(2);
    let tcp = rng.one_in(2);
    let (src, dst) = if v4 {
        let src = IpAddr::V4(Ipv4Addr::new(
            198,
            18,
            1 + rng.below(4) as u8,
            rng.below(256) as u8,
        ));
        let dst = if rng.one_in(10) { OTHER4 } else { VIP4 };
        (src, IpAddr::V4(dst))
    } else {
        let src = IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0x198,
            0x18,
            1,
            0,
            0,
            0,
            rng.below(65536) as u16,
        ));
        let dst = if rng.one_in(10) { OTHER6 } else { VIP6 };
        (src, IpAddr::V6(dst))
    };
    let sport = 1024 + rng.below(60000) as u16;
    let dport = match (tcp, rng.below(8)) {
        (_, 0) => rng.below(65536) as u16,
        (true, _) => 80,
        (false, _) => 53,
    };
    let mut fr = if tcp {
        let flags = rng.pick(&[SYN, SYN, ACK, ACK, ACK | 0x08, ACK | 0x01, SYN | ACK, 0x04]);
        Frame::tcp(src, sport, dst, dport, flags)
    } else {
        Frame::udp(src, sport, dst, dport)
    };
    fr.payload = (0..rng.below(120)).map(|_| rng.next() as u8).collect();
    if rng.one_in(4) {
        fr.vlan = Some(rng.below(4095) as u16 + 1);
    }
    if v4 && rng.one_in(4) {
        let mut opts = vec![1u8; 4 * (1 + rng.below(10))];
        *opts.last_mut().unwrap() = 0;
        fr.ipv4_options = opts;
    }
    if !v4 && rng.one_in(3) {
        fr.ipv6_ext = (0..1 + rng.below(7))
            .map(|_| (rng.pick(&[0u8, 43, 60]), 8 * (1 + rng.below(3))))
            .collect();
    }
    let mut frame = fr.build();
    let l3 = if fr.vlan.is_some() { 18 } else { 14 };
    let l4 = if v4 {
        l3 + 20 + fr.ipv4_options.len()
    } else {
        l3 + 40 + fr.ipv6_ext.iter().map(|e| e.1).sum::<usize>()
    };
    // TCP options: the first words of the payload.
    if tcp && fr.payload.len() >= 4 && rng.one_in(3) {
        let words = 1 + rng.below((fr.payload.len() / 4).min(10));
        frame[l4 + 12] = ((5 + words) as u8) << 4;
    }
    // A second VLAN tag in front (802.1ad), which the parser does not follow.
    if fr.vlan.is_some() && rng.one_in(8) {
        frame.splice(12..12, [0x88, 0xa8, 0x00, 0x07]);
        return Base {
            frame,
            v4,
            tcp,
            l3: l3 + 4,
            l4: l4 + 4,
        };
    }
    Base {
        frame,
        v4,
        tcp,
        l3,
        l4,
    }
}

/// The fragments of one datagram to a VIP (now and then another address), in order or with
/// two of them swapped, each as a [`Base`] to mutate.
fn fragmented(rng: &mut Rng) -> Vec<Base> {
    let v4 = rng.one_in(2);
    let tcp = rng.one_in(2);
    let (src, dst) = if v4 {
        let src = Ipv4Addr::new(198, 18, 1 + rng.below(2) as u8, rng.below(16) as u8);
        let dst = if rng.one_in(10) { OTHER4 } else { VIP4 };
        (IpAddr::V4(src), IpAddr::V4(dst))
    } else {
        let src = Ipv6Addr::new(0xfd00, 0x198, 0x18, 1, 0, 0, 0, rng.below(16) as u16);
        let dst = if rng.one_in(10) { OTHER6 } else { VIP6 };
        (IpAddr::V6(src), IpAddr::V6(dst))
    };
    let sport = 1024 + rng.below(64) as u16;
    let dport = match (tcp, rng.below(8)) {
        (_, 0) => rng.below(65536) as u16,
        (true, _) => 80,
        (false, _) => 53,
    };
    let mut fr = if tcp {
        Frame::tcp(src, sport, dst, dport, rng.pick(&[SYN, ACK, ACK | 0x08]))
    } else {
        Frame::udp(src, sport, dst, dport)
    };
    fr.payload = (0..8 + rng.below(600)).map(|_| rng.next() as u8).collect();
    if rng.one_in(4) {
        fr.vlan = Some(1 + rng.below(4094) as u16);
    }
    if !v4 && rng.one_in(3) {
        fr.ipv6_ext = (0..1 + rng.below(2))
            .map(|_| (rng.pick(&[0u8, 43, 60]), 8))
            .collect();
    }
    // A few identifications, so that datagrams of one client meet again under one key.
    let id = rng.below(4) as u32 * 0x0101;
    let chunk = 8 * (1 + rng.below(40));
    let l3 = if fr.vlan.is_some() { 18 } else { 14 };
    let head = if v4 {
        20
    } else {
        40 + fr.ipv6_ext.iter().map(|e| e.1).sum::<usize>() + 8
    };
    let mut out: Vec<Base> = fragments(&fr, chunk, id)
        .into_iter()
        .map(|frame| Base {
            frame,
            v4,
            tcp,
            l3,
            l4: l3 + head,
        })
        .collect();
    if out.len() > 1 && rng.one_in(4) {
        let (i, j) = (rng.below(out.len()), rng.below(out.len()));
        out.swap(i, j);
    }
    out
}

/// Empties the kernel's fragment table.
fn clear_fragments(dp: &mut Dataplane) {
    let map = dp
        .ebpf()
        .map_mut(map_names::FRAGMENTS)
        .expect("fragment table");
    let mut table: BpfHashMap<&mut MapData, FragKey, FragValue> =
        BpfHashMap::try_from(map).expect("fragment table as a hash map");
    let keys: Vec<FragKey> = table.keys().filter_map(Result::ok).collect();
    for k in keys {
        table.remove(&k).expect("removing a fragment entry");
    }
}

fn mutate(rng: &mut Rng, b: &mut Base) {
    let f = &mut b.frame;
    let (l3, l4) = (b.l3, b.l4);
    for _ in 0..1 + rng.below(3) {
        match rng.below(14) {
            0 => {
                let bit = rng.below(f.len() * 8);
                f[bit / 8] ^= 1 << (bit % 8);
            }
            1 | 2 => {
                let bit = rng.below(f.len().min(l4 + 20) * 8);
                f[bit / 8] ^= 1 << (bit % 8);
            }
            3 if f.len() > 14 => {
                let len = 14 + rng.below(f.len() - 14);
                f.truncate(len);
            }
            4 => {
                let at = if b.v4 { l3 + 2 } else { l3 + 4 };
                if f.len() >= at + 2 {
                    let v = be16(f, at) as i64;
                    let v = match rng.below(3) {
                        0 => v + 1 + rng.below(8) as i64,
                        1 => v - 1 - rng.below(8) as i64,
                        _ => rng.below(65536) as i64,
                    };
                    f[at..at + 2].copy_from_slice(&(v.clamp(0, 65535) as u16).to_be_bytes());
                }
            }
            5 if f.len() > l4 + 13 => {
                if b.tcp {
                    f[l4 + 12] = (rng.below(16) as u8) << 4;
                } else {
                    let any = rng.below(65536) as u16;
                    let v = rng.pick(&[0u16, 4, 7, 8, 9, any]);
                    f[l4 + 4..l4 + 6].copy_from_slice(&v.to_be_bytes());
                }
            }
            6 if f.len() > l4 + 13 && b.tcp => f[l4 + 13] = rng.next() as u8,
            7 => {
                let n = 1 + rng.below(20);
                f.extend((0..n).map(|_| rng.next() as u8));
            }
            8 if f.len() >= l3 + 40 => {
                if b.v4 {
                    let a = rng.pick(&[
                        [0u8, 0, 0, 0],
                        [127, 0, 0, 1],
                        [255; 4],
                        [224, 0, 0, 5],
                        [240, 1, 2, 3],
                        VIP4.octets(),
                    ]);
                    f[l3 + 12..l3 + 16].copy_from_slice(&a);
                } else {
                    let a = rng.pick(&[
                        Ipv6Addr::UNSPECIFIED,
                        Ipv6Addr::LOCALHOST,
                        "ff02::1".parse().unwrap(),
                        VIP6,
                        "::ffff:198.18.1.1".parse().unwrap(),
                    ]);
                    f[l3 + 8..l3 + 24].copy_from_slice(&a.octets());
                }
            }
            9 => {
                let m = rng.pick(&[
                    [0xff; 6],
                    [0x01, 0, 0x5e, 0, 0, 1],
                    [0x33, 0x33, 0, 0, 0, 1],
                    real_mac(2),
                ]);
                f[..6].copy_from_slice(&m);
            }
            10 if b.v4 && f.len() > l3 => f[l3] = (f[l3] & 0xf0) | rng.below(16) as u8,
            10 if f.len() >= l3 + 42 => {
                // The next-header chain: a random type or length.
                let at = if rng.one_in(2) {
                    l3 + 6
                } else {
                    l3 + 40 + rng.below(2)
                };
                if at < f.len() {
                    let any = rng.next() as u8;
                    f[at] = rng.pick(&[0u8, 6, 17, 43, 44, 51, 59, 60, any]);
                }
            }
            11 if b.v4 && f.len() >= l3 + 8 => {
                // Fragment bits.
                f[l3 + 6] ^= rng.pick(&[0x20u8, 0x40, 0x01, 0x80]);
            }
            12 if !b.v4 && f.len() >= l3 + 40 => {
                // An IPv4-mapped destination.
                let a: Ipv6Addr = "::ffff:198.18.0.100".parse().unwrap();
                f[l3 + 24..l3 + 40].copy_from_slice(&a.octets());
            }
            _ => {} // left valid
        }
    }
    // Half the time the IPv4 checksum is made right again, so the other checks are reached.
    let ihl = usize::from(f.get(l3).map_or(0, |v| v & 0xf)) * 4;
    if b.v4 && ihl >= 20 && f.len() >= l3 + ihl && rng.one_in(2) {
        fix_ipv4_checksum(f, l3);
    }
}

#[test]
fn a_million_mutated_frames_match_the_model() {
    let frames: u64 = std::env::var("LVS_FUZZ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("LVS_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1505);
    eprintln!("fuzzing {frames} frames, LVS_FUZZ_SEED={seed}");
    pin_to_one_cpu();
    let mut dp = Dataplane::load().expect("load the balancer");
    dp.set_own_macs(&[DIRECTOR_MAC]).unwrap();
    dp.tables.apply(&plans()).unwrap();
    let real_macs: Vec<[u8; 6]> = (1..=3).map(real_mac).collect();
    let mut rng = Rng((seed ^ 0x9e37_79b9_7f4a_7c15).max(1));
    let mut model = Model::default();
    let mut pending: VecDeque<Base> = VecDeque::new();
    let mut counted: HashMap<u32, u64> = HashMap::new();
    let (mut forwarded, mut followed, mut passed) = (0u64, 0u64, 0u64);
    let mut dropped_keys: HashSet<FlowKey> = HashSet::new();
    let mut forwarded_keys: HashSet<FlowKey> = HashSet::new();
    for n in 0..frames {
        // The fragment table forgets now and then, with the model: what the kernel's LRU
        // would evict, or its timeout expire, is never a question.
        if n % 4096 == 0 {
            clear_fragments(&mut dp);
            model.follows.clear();
        }
        if pending.is_empty() && rng.one_in(5) {
            pending.extend(fragmented(&mut rng));
        }
        let mut b = match pending.pop_front() {
            Some(b) => {
                if rng.one_in(5) {
                    let mut b = b;
                    mutate(&mut rng, &mut b);
                    b
                } else {
                    b
                }
            }
            None => {
                let mut b = base(&mut rng);
                if !rng.one_in(4) {
                    mutate(&mut rng, &mut b);
                }
                b
            }
        };
        let f = std::mem::take(&mut b.frame);
        let Verdict {
            expect: want,
            parsed,
            first_of,
        } = model.verdict(&f);
        let out = run(&mut dp, &f);
        let ctx = || format!("frame {n} of seed {seed} ({want:?}): {f:02x?}");
        let key = parsed.map(|p| {
            let ip = |k: [u8; 16]| {
                let a = Ipv6Addr::from(k);
                a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4)
            };
            flow_key(ip(p.src), p.sport, ip(p.dst), p.dport, p.proto)
        });
        match want {
            Expect::Pass => {
                passed += 1;
                assert_eq!(out.verdict, XDP_PASS, "{}: passed", ctx());
                assert_eq!(&out.frame, &f, "{}: untouched", ctx());
                if let Some(id) = first_of {
                    model.follows.insert(id, Follow::Pass);
                }
            }
            Expect::Drop(reason) => {
                *counted.entry(reason as u32).or_default() += 1;
                assert_eq!(out.verdict, XDP_DROP, "{}: dropped", ctx());
                if let Some(k) = key {
                    dropped_keys.insert(k);
                }
            }
            Expect::Forward | Expect::ForwardTo(_) => {
                assert_eq!(out.verdict, XDP_TX, "{}: forwarded", ctx());
                assert_eq!(out.frame.len(), f.len(), "{}", ctx());
                assert_eq!(
                    &out.frame[12..],
                    &f[12..],
                    "{}: only the MACs change",
                    ctx()
                );
                assert_eq!(&out.frame[6..12], &DIRECTOR_MAC, "{}: source MAC", ctx());
                let mac: [u8; 6] = out.frame[..6].try_into().unwrap();
                assert!(real_macs.contains(&mac), "{}: to a real's MAC", ctx());
                if let Expect::ForwardTo(want_mac) = want {
                    followed += 1;
                    assert_eq!(mac, want_mac, "{}: to its first fragment's real", ctx());
                } else {
                    forwarded += 1;
                    forwarded_keys.insert(key.unwrap());
                }
                if let Some(id) = first_of {
                    model.follows.insert(id, Follow::Real(mac));
                }
            }
        }
    }
    let count = |r: DropReason| counted.get(&(r as u32)).copied().unwrap_or(0);
    let malformed = count(DropReason::Malformed);
    eprintln!(
        "{forwarded} forwarded, {followed} later fragments followed their first, {passed} \
         passed, {malformed} dropped as malformed, {} orphan fragments, {} long IPv6 chains",
        count(DropReason::OrphanFragment),
        count(DropReason::LongExtChain)
    );
    for r in DropReason::ALL {
        assert_eq!(
            dp.tables.stats().drops(r).unwrap(),
            count(r),
            "{r:?} drops counted"
        );
    }
    // Fragments were met often enough to mean something.
    for (what, c) in [
        ("later fragments followed", followed),
        ("orphan fragments", count(DropReason::OrphanFragment)),
        ("long IPv6 chains", count(DropReason::LongExtChain)),
    ] {
        assert!(c * 200 >= frames, "only {c} {what} of {frames} frames");
    }
    // Every kind was met often enough to mean something.
    for (what, count) in [
        ("forwarded", forwarded),
        ("passed", passed),
        ("malformed", malformed),
    ] {
        assert!(
            count * 10 >= frames,
            "only {count} of {frames} frames {what}"
        );
    }
    // The connection table holds no flow that only malformed frames named.
    let table = ct_map(&mut dp);
    let held: HashSet<FlowKey> = (0..CT_BUCKETS)
        .filter_map(|i| table.get(&i, 0).ok())
        .flat_map(|b| b.ways())
        .filter(|e| !e.is_empty())
        .map(|e| e.key)
        .collect();
    let wrongly: Vec<_> = dropped_keys
        .iter()
        .filter(|k| !forwarded_keys.contains(k) && held.contains(k))
        .collect();
    assert!(
        wrongly.is_empty(),
        "{} flows of malformed frames in the connection table, e.g. {:?}",
        wrongly.len(),
        wrongly.first()
    );
    let _ = ACK;
}
