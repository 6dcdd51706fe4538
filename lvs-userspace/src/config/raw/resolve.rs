//! [`resolve`]: the one resolver every reader's raw configuration goes through, with what
//! its parts share: the error collector of a virtual service and the checks of numbers.

use std::path::Path;

use super::{Opt, RawConfig, Val};
use super::{globals::resolve_globals, virtual_service::resolve_virtual};
use crate::config::{ConfigError, model::*};

/// Collects the errors of one virtual service; the earliest line wins, so the reported error
/// is the first one in file order whatever order the checks run in.
pub(super) struct Errors<'a> {
    file: &'a Path,
    first: Option<(usize, ConfigError)>,
}

impl<'a> Errors<'a> {
    pub(super) fn new(file: &'a Path) -> Self {
        Errors { file, first: None }
    }

    pub(super) fn push(&mut self, e: ConfigError) {
        let line = e.location().map_or(0, |l| l.line);
        if self.first.as_ref().is_none_or(|(l, _)| line < *l) {
            self.first = Some((line, e));
        }
    }

    pub(super) fn bad(&mut self, line: usize, key: &str, reason: impl Into<String>) {
        let e = ConfigError::invalid(self.file, line, key, reason);
        self.push(e);
    }

    /// Keeps the value of `r`, or records its error and returns `None`.
    pub(super) fn ok<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    pub(super) fn finish(self) -> Result<(), ConfigError> {
        match self.first {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

pub(super) fn loc(file: &Path, line: usize) -> Location {
    Location {
        file: file.to_path_buf(),
        line,
    }
}

pub(super) fn warn(warnings: &mut Vec<String>, file: &Path, line: usize, key: &str, why: &str) {
    warnings.push(format!("{}:{line}: {key}: {why}", file.display()));
}

/// Turns a raw configuration into the model: ldirectord's defaults, lvs's refusals, host and
/// port resolution, range expansion. Does not run [`crate::config::validate`].
pub(crate) fn resolve(file: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let mut warnings = raw.warnings;
    let mut names = Vec::new();
    let g = &raw.globals;
    let globals = resolve_globals(file, g, &mut warnings, &mut names)?;
    let mut virtuals = Vec::with_capacity(raw.virtuals.len());
    for v in &raw.virtuals {
        virtuals.push(resolve_virtual(
            file,
            v,
            g,
            &globals,
            &mut warnings,
            &mut names,
        )?);
    }
    Ok(Config {
        source: file.to_path_buf(),
        globals,
        virtuals,
        warnings,
        resolved: names,
    })
}

/// A connection timeout in seconds: positive, and at most what the data plane holds.
pub(super) fn timeout(file: &Path, key: &str, v: &Opt<u64>) -> Result<Option<u32>, ConfigError> {
    match positive(file, key, v)? {
        None => Ok(None),
        Some(s) => u32::try_from(s).map(Some).map_err(|_| {
            ConfigError::invalid(
                file,
                v.as_ref().map_or(0, |v| v.line),
                key,
                "must be at most 4294967295 seconds",
            )
        }),
    }
}

pub(super) fn positive(file: &Path, key: &str, v: &Opt<u64>) -> Result<Option<u64>, ConfigError> {
    match v {
        None => Ok(None),
        Some(Val { value: 0, line }) => Err(ConfigError::invalid(
            file,
            *line,
            key,
            "must be a positive whole number",
        )),
        Some(Val { value, .. }) => Ok(Some(*value)),
    }
}

/// The longest `checkinterval`, `checktimeout` or `negotiatetimeout`: a day. A check that
/// waits longer never tells a failure in time, and such a number is a typo (a time in
/// milliseconds, a stray digit), not a choice.
pub const MAX_CHECK_SECONDS: u64 = 86_400;

/// `checkinterval`, `checktimeout`, `negotiatetimeout`: 1 to [`MAX_CHECK_SECONDS`] seconds.
pub(super) fn check_seconds(
    file: &Path,
    key: &str,
    v: &Opt<u64>,
) -> Result<Option<u64>, ConfigError> {
    match positive(file, key, v)? {
        Some(n) if n > MAX_CHECK_SECONDS => Err(ConfigError::invalid(
            file,
            v.as_ref().map_or(0, |v| v.line),
            key,
            format!("{n} seconds is more than a day: lvs takes 1 to {MAX_CHECK_SECONDS} seconds"),
        )),
        n => Ok(n),
    }
}

pub(super) fn count(file: &Path, key: &str, v: &Opt<u64>) -> Result<Option<u32>, ConfigError> {
    match positive(file, key, v)? {
        None => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            ConfigError::invalid(file, v.as_ref().unwrap().line, key, "number too large")
        }),
    }
}
