//! Crafting Ethernet frames for packet tests: IPv4 (with options) or IPv6 (with extension
//! headers), TCP or UDP, optional 802.1Q tag, fragments.

use std::net::IpAddr;

/// Transport of a crafted packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP with the given flags byte.
    Tcp {
        /// Flags (0x02 SYN, 0x10 ACK, ...).
        flags: u8,
    },
    /// UDP.
    Udp,
    /// Another IP protocol number, with 8 bytes of payload.
    Other(u8),
}

/// TCP SYN flags.
pub const SYN: u8 = 0x02;
/// TCP ACK flags.
pub const ACK: u8 = 0x10;

/// A packet to craft.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// An 802.1Q VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Source address.
    pub src: IpAddr,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Transport.
    pub l4: L4,
    /// IPv4 option bytes (a multiple of 4).
    pub ipv4_options: Vec<u8>,
    /// IPv6 extension headers to put first: (type, total length in bytes, a multiple of 8).
    pub ipv6_ext: Vec<(u8, usize)>,
    /// IPv4: set more-fragments; IPv6: insert a fragment header.
    pub fragment: bool,
    /// IPv4: a non-zero fragment offset.
    pub fragment_offset: u16,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// The client MAC used by default.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
/// The director MAC used by default.
pub const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

impl Frame {
    /// A TCP packet with `flags` from `src:sport` to `dst:dport`.
    pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8) -> Frame {
        Frame {
            dst_mac: DIRECTOR_MAC,
            src_mac: CLIENT_MAC,
            vlan: None,
            src,
            dst,
            sport,
            dport,
            l4: L4::Tcp { flags },
            ipv4_options: Vec::new(),
            ipv6_ext: Vec::new(),
            fragment: false,
            fragment_offset: 0,
            payload: b"lvs test payload".to_vec(),
        }
    }

    /// A UDP packet.
    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Frame {
        Frame {
            l4: L4::Udp,
            ..Frame::tcp(src, sport, dst, dport, 0)
        }
    }

    /// The bytes on the wire.
    pub fn build(&self) -> Vec<u8> {
        let mut l4 = Vec::new();
        let proto = match self.l4 {
            L4::Tcp { flags } => {
                l4.extend_from_slice(&self.sport.to_be_bytes());
                l4.extend_from_slice(&self.dport.to_be_bytes());
                l4.extend_from_slice(&1u32.to_be_bytes()); // seq
                l4.extend_from_slice(&0u32.to_be_bytes()); // ack
                l4.push(5 << 4);
                l4.push(flags);
                l4.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]); // window, csum, urg
                6
            }
            L4::Udp => {
                l4.extend_from_slice(&self.sport.to_be_bytes());
                l4.extend_from_slice(&self.dport.to_be_bytes());
                l4.extend_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                l4.extend_from_slice(&[0, 0]);
                17
            }
            L4::Other(p) => {
                l4.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
                p
            }
        };
        l4.extend_from_slice(&self.payload);

        let mut f = Vec::new();
        f.extend_from_slice(&self.dst_mac);
        f.extend_from_slice(&self.src_mac);
        if let Some(vid) = self.vlan {
            f.extend_from_slice(&0x8100u16.to_be_bytes());
            f.extend_from_slice(&vid.to_be_bytes());
        }
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&0x0800u16.to_be_bytes());
                let ihl = 5 + self.ipv4_options.len() / 4;
                let total = ihl * 4 + l4.len();
                let mut frag = self.fragment_offset & 0x1fff;
                if self.fragment {
                    frag |= 0x2000;
                }
                let mut h = vec![(4 << 4) | ihl as u8, 0];
                h.extend_from_slice(&(total as u16).to_be_bytes());
                h.extend_from_slice(&[0x12, 0x34]);
                h.extend_from_slice(&frag.to_be_bytes());
                h.extend_from_slice(&[64, proto, 0, 0]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                h.extend_from_slice(&self.ipv4_options);
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&0x86ddu16.to_be_bytes());
                // Extension headers, then the fragment header, then L4.
                let mut chain: Vec<(u8, usize)> = self.ipv6_ext.clone();
                if self.fragment {
                    chain.push((44, 8));
                }
                let mut ext = Vec::new();
                for (i, &(_, len)) in chain.iter().enumerate() {
                    let next = chain.get(i + 1).map_or(proto, |n| n.0);
                    let mut h = vec![0u8; len];
                    h[0] = next;
                    h[1] = if chain[i].0 == 44 {
                        0
                    } else {
                        (len / 8 - 1) as u8
                    };
                    ext.extend_from_slice(&h);
                }
                let first = chain.first().map_or(proto, |n| n.0);
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
                f.push(first);
                f.push(64);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
                f.extend_from_slice(&ext);
            }
            _ => panic!("source and destination of different families"),
        }
        f.extend_from_slice(&l4);
        f
    }
}

/// Writes a correct header checksum into the IPv4 header at `l3` of `frame` (after a test
/// changed a field of it).
pub fn fix_ipv4_checksum(frame: &mut [u8], l3: usize) {
    let ihl = usize::from(frame[l3] & 0x0f) * 4;
    frame[l3 + 10..l3 + 12].fill(0);
    let c = checksum(&frame[l3..l3 + ihl]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

/// The Internet checksum of `b` (RFC 1071).
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The packet `f` (built whole) cut into fragments as a sender would: the data after the IP
/// header (IPv4) or after the IPv6 header and `f.ipv6_ext` (the unfragmentable part, followed
/// by a Fragment header) in pieces of `chunk` bytes (a multiple of 8), with identification
/// `id` (IPv4 takes its low 16 bits). In order, first fragment first.
pub fn fragments(f: &Frame, chunk: usize, id: u32) -> Vec<Vec<u8>> {
    assert!(
        chunk > 0 && chunk.is_multiple_of(8),
        "fragment data is a multiple of 8 bytes"
    );
    let whole = Frame {
        fragment: false,
        fragment_offset: 0,
        ..f.clone()
    }
    .build();
    let l3 = if f.vlan.is_some() { 18 } else { 14 };
    let v4 = matches!(f.src, IpAddr::V4(_));
    let unfrag = if v4 {
        usize::from(whole[l3] & 0x0f) * 4
    } else {
        40 + f.ipv6_ext.iter().map(|e| e.1).sum::<usize>()
    };
    let mut whole = whole;
    set_l4_checksum(&mut whole, f, l3 + unfrag);
    let head = &whole[..l3 + unfrag];
    let data = &whole[l3 + unfrag..];
    let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    let mut out = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let offset = (i * chunk / 8) as u16;
        let more = i + 1 < pieces.len();
        let mut fr = head.to_vec();
        if v4 {
            let total = (unfrag + piece.len()) as u16;
            fr[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
            fr[l3 + 4..l3 + 6].copy_from_slice(&(id as u16).to_be_bytes());
            let frag = offset | if more { 0x2000 } else { 0 };
            fr[l3 + 6..l3 + 8].copy_from_slice(&frag.to_be_bytes());
            fix_ipv4_checksum(&mut fr, l3);
        } else {
            // The Next Header that named the transport now names the Fragment header.
            let at = if f.ipv6_ext.is_empty() {
                l3 + 6
            } else {
                l3 + 40
                    + f.ipv6_ext[..f.ipv6_ext.len() - 1]
                        .iter()
                        .map(|e| e.1)
                        .sum::<usize>()
            };
            let proto = fr[at];
            fr[at] = 44;
            let plen = (unfrag - 40 + 8 + piece.len()) as u16;
            fr[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
            let om = (offset << 3) | u16::from(more);
            fr.extend_from_slice(&[proto, 0]);
            fr.extend_from_slice(&om.to_be_bytes());
            fr.extend_from_slice(&id.to_be_bytes());
        }
        fr.extend_from_slice(piece);
        out.push(fr);
    }
    out
}

/// Writes the TCP or UDP checksum of the whole packet `frame` (built from `f`, transport
/// header at `l4`), so that a real host accepts it.
fn set_l4_checksum(frame: &mut [u8], f: &Frame, l4: usize) {
    let (proto, at) = match f.l4 {
        L4::Tcp { .. } => (6u8, l4 + 16),
        L4::Udp => (17, l4 + 6),
        L4::Other(_) => return,
    };
    let len = frame.len() - l4;
    let mut pseudo = Vec::new();
    match (f.src, f.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(len as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => return,
    }
    frame[at..at + 2].fill(0);
    pseudo.extend_from_slice(&frame[l4..]);
    let mut c = checksum(&pseudo);
    if c == 0 && proto == 17 {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
}
