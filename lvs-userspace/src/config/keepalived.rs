//! The keepalived.conf reader (its LVS part).

use std::path::Path;

use super::{Config, ConfigError};

/// Reads keepalived.conf text; `path` names it in messages and in [`Config::source`], and
/// `include`s are found relative to it. The result is validated.
pub fn parse_str(path: &Path, _text: &str) -> Result<Config, ConfigError> {
    Err(ConfigError::invalid(
        path,
        1,
        "keepalived.conf",
        "this lvs does not read keepalived.conf yet",
    ))
}
