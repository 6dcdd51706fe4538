//! keepalived's `track_file` blocks and `FILE_CHECK` checkers (keepalived 2.2's
//! `track_file.c` and `check_file.c`):
//!
//! ```text
//! track_file NAME { file PATH; weight W [reverse]; init_file [VALUE] [overwrite] }
//! real_server ... { FILE_CHECK { track_file NAME; weight W [reverse|noreverse]; dynamic } }
//! ```
//!
//! `dynamic` is in keepalived's man page but not in its parser: keepalived ignores it (and
//! says "Unknown keyword"); lvs warns that it changes nothing.
//!
//! The checker's `weight` defaults to the track_file's (itself 1). What the value read means
//! is in [`crate::health::file`].

use super::{Mapper, bad, keywords::Block};
use crate::config::{ConfigError, keepalived_lex::Stmt};

/// One `track_file`.
#[derive(Clone, Debug)]
pub(super) struct TrackFile {
    /// `file`.
    pub path: String,
    /// `weight`.
    pub weight: i32,
    /// `reverse`.
    pub reverse: bool,
}

/// `weight W [reverse]` within `limit` (and `noreverse` when `noreverse` is allowed).
fn weight(s: &Stmt, limit: i64, noreverse: bool) -> Result<(i32, bool), ConfigError> {
    let (w, rest) = match s.args() {
        [w, rest @ ..] => (w, rest),
        [] => return Err(bad(&s.loc, "weight", "needs a value")),
    };
    let w = w
        .parse::<i64>()
        .ok()
        .filter(|w| (-limit..=limit).contains(w))
        .ok_or_else(|| {
            bad(
                &s.loc,
                "weight",
                format!("must be within -{limit}..{limit}"),
            )
        })?;
    let reverse = match rest {
        [] => false,
        [r] if r == "reverse" => true,
        [r] if r == "noreverse" && noreverse => false,
        _ => {
            return Err(bad(
                &s.loc,
                "weight",
                "only `reverse` may follow the weight",
            ));
        }
    };
    Ok((w as i32, reverse))
}

impl Mapper {
    /// A top-level `track_file NAME { ... }`, kept for the `FILE_CHECK`s that name it.
    pub(super) fn track_file(&mut self, s: &Stmt) -> Result<(), ConfigError> {
        let [name] = s.args() else {
            return Err(bad(&s.loc, "track_file", "needs a name"));
        };
        let mut file = None;
        let mut w = (1, false);
        for i in s.block.as_deref().unwrap_or_default() {
            match i.key() {
                "file" => match i.args() {
                    [path] => file = Some(path.clone()),
                    _ => return Err(bad(&i.loc, "file", "needs one path")),
                },
                "weight" => w = weight(i, 254, false)?,
                "init_file" => match i.args() {
                    [] => self.warn(
                        &i.loc,
                        "init_file",
                        "lvs does not create the file: a missing file reads 0, the same value",
                    ),
                    [v] if v == "0" => self.warn(
                        &i.loc,
                        "init_file",
                        "lvs does not create the file: a missing file reads 0, the same value",
                    ),
                    _ => {
                        return Err(bad(
                            &i.loc,
                            "init_file",
                            "a value or overwrite is not supported: lvs does not write the file \
                             (write it before lvs starts)",
                        ));
                    }
                },
                k => self.unknown(&i.loc, k, Block::TrackFile)?,
            }
        }
        let path = file.ok_or_else(|| bad(&s.loc, "track_file", "no file given"))?;
        self.track_files.insert(
            name.clone(),
            TrackFile {
                path,
                weight: w.0,
                reverse: w.1,
            },
        );
        Ok(())
    }

    /// A `FILE_CHECK { track_file NAME; weight W [reverse] }`: the file and how to read it.
    pub(super) fn file_check(&mut self, s: &Stmt) -> Result<TrackFile, ConfigError> {
        let mut tracked: Option<TrackFile> = None;
        let mut w = None;
        for i in s.block.as_deref().unwrap_or_default() {
            match i.key() {
                "track_file" => {
                    let [name] = i.args() else {
                        return Err(bad(&i.loc, "track_file", "needs a name"));
                    };
                    tracked = Some(self.track_files.get(name).cloned().ok_or_else(|| {
                        bad(
                            &i.loc,
                            "track_file",
                            format!("track_file {name} not found (define it at the top level)"),
                        )
                    })?);
                }
                "weight" => w = Some(weight(i, i64::from(i32::MAX), true)?),
                // keepalived 2.2's man page lists it, but check_file.c does not install it:
                // keepalived logs "Unknown keyword" and goes on. Its meaning is what a weight
                // already does.
                "dynamic" => self.warn(
                    &i.loc,
                    "dynamic",
                    "no effect, as in keepalived 2.2 (which does not read it: \"Unknown \
                     keyword\"): with a non-zero weight the file's value times the weight is \
                     always added to the real's weight; with weight 0 the value only takes the \
                     real down or up",
                ),
                k => self.unknown(&i.loc, k, Block::Checker("FILE_CHECK"))?,
            }
        }
        let t = tracked.ok_or_else(|| bad(&s.loc, "FILE_CHECK", "has no track_file"))?;
        let (weight, reverse) = w.unwrap_or((t.weight, t.reverse));
        Ok(TrackFile {
            path: t.path.clone(),
            weight,
            reverse,
        })
    }
}
