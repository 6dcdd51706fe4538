//! The HTTP statuses an http(s) check passes on: keepalived's `url { status_code }`, TOML's
//! `status_codes`.

use std::fmt;

/// A set of HTTP status codes, as ranges: keepalived's `status_code 200-204 301` (each code
/// or range between 100 and 599), TOML's `status_codes = "200-204,301"`. The default is
/// 200-299, keepalived's when a url names none and what ldirectord's check accepts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatusCodes {
    /// Sorted, disjoint and not adjacent: the same set is always written the same way.
    ranges: Vec<(u16, u16)>,
}

impl StatusCodes {
    /// The lowest code keepalived takes (`HTTP_STATUS_CODE_MIN`).
    pub const MIN: u16 = 100;
    /// The highest (`HTTP_STATUS_CODE_MAX`).
    pub const MAX: u16 = 599;

    /// The set of these ranges (each `lo <= hi`, within [`Self::MIN`]..=[`Self::MAX`]).
    pub fn from_ranges(mut ranges: Vec<(u16, u16)>) -> Self {
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        StatusCodes { ranges: merged }
    }

    /// One code (`301`) or range (`200-299`), as keepalived's `status_code` reads it: whole
    /// numbers within [`Self::MIN`]..=[`Self::MAX`], the first not above the second.
    pub fn parse_range(text: &str) -> Option<(u16, u16)> {
        let number = |t: &str| {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<u16>().ok())
                .flatten()
                .filter(|c| (Self::MIN..=Self::MAX).contains(c))
        };
        let (lo, hi) = text.split_once('-').unwrap_or((text, text));
        let (lo, hi) = (number(lo)?, number(hi)?);
        (lo <= hi).then_some((lo, hi))
    }

    /// Codes and ranges separated by commas or spaces (`"200-299,301"`); the error names the
    /// first item that is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in text.split([',', ' ', '\t']).filter(|i| !i.is_empty()) {
            ranges.push(Self::parse_range(item).ok_or_else(|| {
                format!(
                    "`{item}` is not a status code or range of them ({}-{})",
                    Self::MIN,
                    Self::MAX
                )
            })?);
        }
        if ranges.is_empty() {
            return Err("no status code".to_string());
        }
        Ok(Self::from_ranges(ranges))
    }

    /// Whether `status` is one of them.
    pub fn contains(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// Whether any of them is a redirection (3xx).
    pub fn any_redirect(&self) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= 399 && hi >= 300)
    }
}

impl Default for StatusCodes {
    fn default() -> Self {
        StatusCodes {
            ranges: vec![(200, 299)],
        }
    }
}

/// `200-299,301`: the form `status_codes` takes in TOML.
impl fmt::Display for StatusCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(lo, hi)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "status_codes_tests.rs"]
mod tests;
