//! keepalived's `FILE_CHECK` (a `track_file`), as keepalived 2.2's `track_file.c` reads it: the
//! file's first 127 bytes are a number (C's `strtol` with base 0: decimal, `0x` hex, `0`
//! octal; a missing, unreadable, empty or non-numeric file reads 0; a number outside
//! [-2^31, 2^31] is ignored, the last value kept).
//!
//! * weight 0: a non-zero value is a failure, 0 is up (`reverse`: the other way round).
//! * weight W: the value times W (negated with `reverse`) is added to the real's configured
//!   weight (at least 0); only a product at or below -2^31 is a failure (keepalived's FAULT).
//!
//! keepalived reads the file when inotify says it changed; lvs reads it at every check (the
//! check interval of a file check is one second).

use std::{io::Read as _, path::PathBuf};

/// keepalived's `IPVS_WEIGHT_FAULT` (`-INT32_MAX - 1`).
const FAULT: i64 = i32::MIN as i64;

/// Why a file check failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The value read means down.
    #[error("tracked file {path}: {value}{}", if *.reverse { " (reverse)" } else { "" })]
    Down {
        /// The file.
        path: PathBuf,
        /// The value read.
        value: i64,
        /// `reverse` was set.
        reverse: bool,
    },
}

/// A prepared file check.
#[derive(Clone, Debug)]
pub struct FileCheck {
    /// The tracked file.
    pub path: PathBuf,
    /// `weight`.
    pub weight: i32,
    /// `reverse`.
    pub reverse: bool,
    /// The real's configured weight (a non-zero `weight` adds to it).
    pub base: u32,
    /// The last valid value (an invalid one keeps it).
    pub last: i64,
}

impl FileCheck {
    /// Reads the file: up with the weight to set (a non-zero `weight`), or why down.
    pub fn run(&mut self) -> Result<(String, Option<u32>), FileError> {
        if let Some(v) = read_value(&self.path) {
            self.last = v;
        }
        let value = self.last;
        if self.weight == 0 {
            let down = (value != 0) != self.reverse;
            if down {
                return Err(FileError::Down {
                    path: self.path.clone(),
                    value,
                    reverse: self.reverse,
                });
            }
            return Ok((
                format!("tracked file {}: {value}", self.path.display()),
                None,
            ));
        }
        let sign = if self.reverse { -1 } else { 1 };
        let status = (value * i64::from(self.weight) * sign).clamp(FAULT, i64::from(i32::MAX));
        if status <= FAULT {
            return Err(FileError::Down {
                path: self.path.clone(),
                value,
                reverse: self.reverse,
            });
        }
        let weight = (i64::from(self.base) + status).clamp(0, i64::from(i32::MAX)) as u32;
        Ok((
            format!(
                "tracked file {}: {value}, weight {weight}",
                self.path.display()
            ),
            Some(weight),
        ))
    }
}

/// The value of the file, `None` when it is out of keepalived's range (keep the last one).
fn read_value(path: &std::path::Path) -> Option<i64> {
    let mut buf = [0u8; 127];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut buf))
        .unwrap_or(0);
    let v = strtol(&buf[..n]);
    (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1)
        .contains(&v)
        .then_some(v)
}

/// C's `strtol(text, NULL, 0)`, saturating: leading white space, a sign, `0x` (hex) or `0`
/// (octal) or decimal digits; no digits: 0.
fn strtol(text: &[u8]) -> i64 {
    let mut s = text;
    while let [c, rest @ ..] = s
        && c.is_ascii_whitespace()
    {
        s = rest;
    }
    let negative = matches!(s.first(), Some(b'-'));
    if matches!(s.first(), Some(b'-' | b'+')) {
        s = &s[1..];
    }
    let (radix, digits) = match s {
        [b'0', b'x' | b'X', rest @ ..] if rest.first().is_some_and(u8::is_ascii_hexdigit) => {
            (16, rest)
        }
        [b'0', rest @ ..] => (8, rest),
        _ => (10, s),
    };
    let mut v: i64 = 0;
    for &c in digits {
        let Some(d) = (c as char).to_digit(radix) else {
            break;
        };
        v = v
            .saturating_mul(i64::from(radix))
            .saturating_add(i64::from(d));
    }
    if negative { -v } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_as_c_reads_it() {
        for (text, v) in [
            (&b"0"[..], 0),
            (b"  42\n", 42),
            (b"-7", -7),
            (b"+3x", 3),
            (b"0x1F", 31),
            (b"010", 8),
            (b"", 0),
            (b"up", 0),
            (b"99999999999", 99_999_999_999),
        ] {
            assert_eq!(strtol(text), v, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn weight_zero_is_a_flag_and_a_weight_adds() {
        let dir = crate::testdir::TestDir::new("file-check");
        let path = dir.join("flag");
        let check = |weight, reverse| FileCheck {
            path: path.clone(),
            weight,
            reverse,
            base: 5,
            last: 0,
        };
        // Missing: 0, up (reverse: down).
        let _ = std::fs::remove_file(&path);
        assert!(check(0, false).run().is_ok());
        assert!(check(0, true).run().is_err());
        std::fs::write(&path, "1\n").unwrap();
        let e = check(0, false).run().unwrap_err();
        assert_eq!(e.to_string(), format!("tracked file {}: 1", path.display()));
        assert!(check(0, true).run().is_ok());
        // A weight: base + value × weight, at least 0; reverse subtracts.
        std::fs::write(&path, "3").unwrap();
        assert_eq!(check(2, false).run().unwrap().1, Some(11));
        assert_eq!(check(2, true).run().unwrap().1, Some(0));
        std::fs::write(&path, "-2147483648").unwrap();
        assert!(check(1, false).run().is_err(), "FAULT");
        // Out of range: the last value kept.
        let mut c = check(0, false);
        std::fs::write(&path, "0").unwrap();
        assert!(c.run().is_ok());
        std::fs::write(&path, "99999999999").unwrap();
        assert!(c.run().is_ok(), "the last value (0) kept");
    }
}
