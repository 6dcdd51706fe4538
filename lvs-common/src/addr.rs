//! One address type for both families.
//!
//! IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`), so every map has a single key type
//! for both families and the kernel never branches on the family after parsing.

/// An IPv4 or IPv6 address as four 32-bit words in network byte order, exactly as the bytes
/// stand in the packet. IPv4 is stored IPv4-mapped: words `[0, 0, 0x0000ffff (network order),
/// v4]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Addr {
    /// The 16 address bytes, read as native-endian words straight from the wire.
    pub words: [u32; 4],
}

/// The third word of an IPv4-mapped address, `0x0000ffff` as it stands in memory read
/// natively from network order (bytes `00 00 ff ff`).
pub const V4_MAPPED_WORD: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

impl Addr {
    /// An IPv4-mapped address from the 4 bytes of an IPv4 address as they stand on the wire,
    /// read natively.
    #[inline(always)]
    pub const fn from_v4_wire(v4: u32) -> Self {
        Self {
            words: [0, 0, V4_MAPPED_WORD, v4],
        }
    }

    /// The address from its 16 bytes in network order.
    #[inline(always)]
    pub const fn from_octets(b: [u8; 16]) -> Self {
        Self {
            words: [
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
                u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
                u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
            ],
        }
    }

    /// The 16 bytes in network order.
    #[inline(always)]
    pub const fn octets(&self) -> [u8; 16] {
        let [a, b, c, d] = self.words;
        let (a, b, c, d) = (
            a.to_ne_bytes(),
            b.to_ne_bytes(),
            c.to_ne_bytes(),
            d.to_ne_bytes(),
        );
        [
            a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3], d[0], d[1],
            d[2], d[3],
        ]
    }

    /// Whether this is an IPv4-mapped address.
    #[inline(always)]
    pub const fn is_v4(&self) -> bool {
        self.words[0] == 0 && self.words[1] == 0 && self.words[2] == V4_MAPPED_WORD
    }

    /// The address with every bit outside `mask` cleared.
    #[inline(always)]
    pub const fn masked(&self, mask: &Addr) -> Self {
        Self {
            words: [
                self.words[0] & mask.words[0],
                self.words[1] & mask.words[1],
                self.words[2] & mask.words[2],
                self.words[3] & mask.words[3],
            ],
        }
    }

    /// The mask that keeps the first `prefix` bits of a 128-bit address (prefix over 128 keeps
    /// everything).
    pub const fn prefix_mask(prefix: u32) -> Self {
        let mut octets = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            let bits = prefix as i64 - (i as i64) * 8;
            octets[i] = if bits >= 8 {
                0xff
            } else if bits <= 0 {
                0
            } else {
                0xffu8 << (8 - bits)
            };
            i += 1;
        }
        Self::from_octets(octets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapped_round_trip() {
        let a = Addr::from_v4_wire(u32::from_ne_bytes([192, 0, 2, 7]));
        assert!(a.is_v4());
        assert_eq!(
            a.octets(),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7]
        );
        assert_eq!(Addr::from_octets(a.octets()), a);
    }

    #[test]
    fn prefix_masks() {
        assert_eq!(Addr::prefix_mask(128).octets(), [0xff; 16]);
        assert_eq!(Addr::prefix_mask(0).octets(), [0; 16]);
        let m = Addr::prefix_mask(96 + 24).octets();
        assert_eq!(&m[12..], &[0xff, 0xff, 0xff, 0]);
        let m = Addr::prefix_mask(100).octets();
        assert_eq!(m[12], 0xf0);
    }
}
