//! The Ethernet destinations the balancer accepts: the attached interface's own MAC and the
//! extra ones the config adds (a VRRP virtual MAC). A frame to any other destination
//! (broadcast, multicast, another host's unicast MAC) is left to the kernel, untouched.

/// MACs the accepted-MAC record holds: the interface's own and up to `MAX_OWN_MACS - 1` more.
pub const MAX_OWN_MACS: usize = 8;

/// A MAC as the kernel compares it: the first 8 bytes of a frame read natively, with the two
/// bytes after the destination MAC cleared (see [`MAC_WORD_MASK`]).
#[inline(always)]
pub const fn mac_word(mac: [u8; 6]) -> u64 {
    u64::from_ne_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0])
}

/// Keeps the six destination-MAC bytes of the first 8 bytes of a frame read natively.
pub const MAC_WORD_MASK: u64 = u64::from_ne_bytes([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);

/// The one value of the accepted-MAC map ([`crate::limits::map_names::OWN_MACS`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnMacs {
    /// Entries of `macs` in use (at most [`MAX_OWN_MACS`]). 0: no frame is balanced.
    pub count: u32,
    /// Explicit padding, always 0.
    pub _pad: u32,
    /// The accepted MACs as [`mac_word`]s, the interface's own first.
    pub macs: [u64; MAX_OWN_MACS],
}

const _: () = assert!(core::mem::size_of::<OwnMacs>() == 8 + 8 * MAX_OWN_MACS);

impl OwnMacs {
    /// The record for `macs` (at most [`MAX_OWN_MACS`]; the rest are left out). Zero and
    /// group (multicast, broadcast) MACs are left out: a frame to one is never ours.
    pub fn new(macs: &[[u8; 6]]) -> Self {
        let mut o = OwnMacs::default();
        for m in macs {
            if o.count as usize == MAX_OWN_MACS {
                break;
            }
            if *m == [0; 6] || m[0] & 1 != 0 || o.contains(*m) {
                continue;
            }
            o.macs[o.count as usize] = mac_word(*m);
            o.count += 1;
        }
        o
    }

    /// Whether `mac` is accepted.
    pub fn contains(&self, mac: [u8; 6]) -> bool {
        let w = mac_word(mac);
        self.macs[..(self.count as usize).min(MAX_OWN_MACS)].contains(&w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_word_masked_is_its_destination_mac() {
        let frame = [2u8, 0, 0, 0, 0, 2, 0xaa, 0xbb];
        let word = u64::from_ne_bytes(frame) & MAC_WORD_MASK;
        assert_eq!(word, mac_word([2, 0, 0, 0, 0, 2]));
    }

    #[test]
    fn group_and_zero_macs_are_never_accepted() {
        let o = OwnMacs::new(&[
            [0xff; 6],
            [0x01, 0, 0x5e, 0, 0, 1],
            [0; 6],
            [2, 0, 0, 0, 0, 2],
        ]);
        assert_eq!(o.count, 1);
        assert!(o.contains([2, 0, 0, 0, 0, 2]));
        assert!(!o.contains([0xff; 6]));
    }
}
