//! keepalived.conf syntax, as keepalived reads it, into a tree of statements.
//!
//! - `!` and `#` start a comment anywhere outside double quotes.
//! - A statement is the words of one line; `{` opens its block (on the same line or on the
//!   next one) and `}` closes it; `{` and `}` may also share a line with words
//!   (`url { path / }`). Double-quoted strings are one word, without their quotes.
//! - `include PATTERN` (and keepalived's `includer`, `includem`, `includew`, `includeb`,
//!   `includea`) reads the matching files in place, sorted; a relative pattern is taken from
//!   the including file's directory. `*`, `?` and `[...]` are expanded in the last component
//!   only; a pattern matching nothing, a plain `include`'s file that does not exist, and a file
//!   that is not regular or has an execute bit are skipped with a warning (keepalived logs
//!   them and goes on); a reporting variant's missing file is an error.
//! - `$NAME=value` defines a variable; `$NAME` and `${NAME}` are replaced by its value
//!   (recursively) in later lines, as keepalived replaces them (see `substitute`); `${_PWD}` is
//!   the current file's directory. A `$NAME` that no definition has is left as it is, with a
//!   warning (a shell variable in a script line); keepalived's other predefined variables
//!   (`${_INSTANCE}`...) and multi-line definitions (a value ending in `\`) are refused.
//! - `@ID line` is read only when ID is the config id, `@^ID line` only when it is not. The
//!   config id is keepalived's default: the host name up to its first dot (lvs has no `-i`).
//! - `~SEQ(...)` lines are refused: lvs does not expand them.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use super::{ConfigError, Location};

/// One statement: its words, where it starts, and its block if it has one.
#[derive(Clone, Debug)]
pub(crate) struct Stmt {
    /// The words, the keyword first.
    pub words: Vec<String>,
    /// Where the keyword is.
    pub loc: Location,
    /// The statements between `{` and `}`, when it opens a block.
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    /// The keyword.
    pub fn key(&self) -> &str {
        &self.words[0]
    }

    /// The words after the keyword.
    pub fn args(&self) -> &[String] {
        &self.words[1..]
    }
}

/// A parsed file: its statements and the warnings of reading it.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub stmts: Vec<Stmt>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Eol,
}

/// The deepest `include` nesting read (keepalived has no cycle check either; this stops one).
const MAX_INCLUDE_DEPTH: usize = 16;
/// The deepest variable-in-variable substitution.
const MAX_VAR_DEPTH: usize = 16;

struct Lexer {
    toks: Vec<(Tok, Location)>,
    vars: HashMap<String, String>,
    warnings: Vec<String>,
    config_id: String,
}

/// The config id keepalived uses by default: the host name up to its first dot.
pub(crate) fn default_config_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    host.trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Reads `text` (the content of `path`) and every file it includes. `config_id` decides the
/// `@ID` lines.
pub(crate) fn parse(path: &Path, text: &str, config_id: &str) -> Result<Parsed, ConfigError> {
    let mut lx = Lexer {
        toks: Vec::new(),
        vars: HashMap::new(),
        warnings: Vec::new(),
        config_id: config_id.to_string(),
    };
    lx.file(path, text, 0)?;
    let mut it = lx.toks.into_iter().peekable();
    let stmts = block(&mut it, None)?;
    Ok(Parsed {
        stmts,
        warnings: lx.warnings,
    })
}

fn bad(loc: &Location, key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        location: loc.clone(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The statements up to the `}` that closes the block opened at `open` (or to the end, at the
/// top level).
fn block(
    it: &mut std::iter::Peekable<std::vec::IntoIter<(Tok, Location)>>,
    open: Option<&Location>,
) -> Result<Vec<Stmt>, ConfigError> {
    let mut out = Vec::new();
    loop {
        let Some((tok, loc)) = it.next() else {
            return match open {
                None => Ok(out),
                Some(o) => Err(bad(o, "{", "this block is never closed: a `}` is missing")),
            };
        };
        match tok {
            Tok::Eol => continue,
            Tok::Close => {
                return match open {
                    Some(_) => Ok(out),
                    None => Err(bad(&loc, "}", "closes no block")),
                };
            }
            Tok::Open => return Err(bad(&loc, "{", "a block needs a keyword before its `{`")),
            Tok::Word(w) => {
                let mut words = vec![w];
                while let Some((Tok::Word(_), _)) = it.peek() {
                    let Some((Tok::Word(w), _)) = it.next() else {
                        unreachable!()
                    };
                    words.push(w);
                }
                // The block may open on a later line.
                while let Some((Tok::Eol, _)) = it.peek() {
                    it.next();
                }
                let block = if let Some((Tok::Open, _)) = it.peek() {
                    let (_, oloc) = it.next().expect("peeked");
                    Some(self::block(it, Some(&oloc))?)
                } else {
                    None
                };
                out.push(Stmt { words, loc, block });
            }
        }
    }
}

/// Cuts a `!` or `#` comment outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' | '!' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Whether `name` is a variable name.
fn is_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Lexer {
    fn file(&mut self, path: &Path, text: &str, depth: usize) -> Result<(), ConfigError> {
        for (i, raw) in text.lines().enumerate() {
            let loc = Location {
                file: path.to_path_buf(),
                line: i + 1,
            };
            let mut line = strip_comment(raw.trim_end_matches('\r')).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('@') {
                let (id, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let (negate, id) = match id.strip_prefix('^') {
                    Some(id) => (true, id),
                    None => (false, id),
                };
                if id.is_empty() {
                    return Err(bad(&loc, "@", "a conditional line needs an id after `@`"));
                }
                if (id == self.config_id) == negate {
                    continue;
                }
                line = after.trim();
                if line.is_empty() {
                    continue;
                }
            }
            if let Some(def) = line.strip_prefix('$')
                && let Some((name, value)) = def.split_once('=')
                && is_name(name.trim())
            {
                let value = value.trim();
                if value.ends_with('\\') {
                    return Err(bad(
                        &loc,
                        name.trim(),
                        "multi-line variable definitions (a value ending in `\\`) are not \
                         supported: write the value on one line",
                    ));
                }
                self.vars.insert(name.trim().to_string(), value.to_string());
                continue;
            }
            if line.starts_with('~') {
                return Err(bad(
                    &loc,
                    line.split_whitespace().next().unwrap_or("~"),
                    "`~SEQ` and `~` list expansion are not supported: write the lines out",
                ));
            }
            let mut undefined = Vec::new();
            let line = self.substitute(path, &loc, line, 0, &mut undefined)?;
            for name in undefined {
                self.warnings.push(format!(
                    "{loc}: `${name}` is no variable defined before this line: left as it is, \
                     as keepalived leaves it"
                ));
            }
            let line = line.trim();
            let words = split_words(&loc, line)?;
            if let Some(Tok::Word(first)) = words.first()
                && matches!(
                    first.as_str(),
                    "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
                )
            {
                let args: Vec<&Tok> = words[1..].iter().collect();
                let [Tok::Word(pattern)] = args.as_slice() else {
                    return Err(bad(&loc, first, "takes one file name or pattern"));
                };
                self.include(path, &loc, first == "include", pattern, depth)?;
                continue;
            }
            for w in words {
                self.toks.push((w, loc.clone()));
            }
            self.toks.push((Tok::Eol, loc));
        }
        Ok(())
    }

    /// The files of `include PATTERN` (`plain`: `include`, not one of keepalived's reporting
    /// variants such as `includer`) read in place, as keepalived reads them: a file that is
    /// not a regular file or has an execute bit is skipped with a warning, and so is a plain
    /// include's file that does not exist (keepalived logs both and goes on).
    fn include(
        &mut self,
        from: &Path,
        loc: &Location,
        plain: bool,
        pattern: &str,
        depth: usize,
    ) -> Result<(), ConfigError> {
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(bad(
                loc,
                "include",
                format!(
                    "includes nest deeper than {MAX_INCLUDE_DEPTH} files (a file includes itself?)"
                ),
            ));
        }
        let dir = from.parent().unwrap_or(Path::new("."));
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            dir.join(pattern)
        };
        let wild = |s: &str| s.contains(['*', '?', '[']);
        if pattern.contains(['{', '}']) {
            return Err(bad(
                loc,
                "include",
                "brace expansion in include patterns is not supported: write one include per pattern",
            ));
        }
        let parent = full.parent().unwrap_or(Path::new("/"));
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if wild(&parent.to_string_lossy()) {
            return Err(bad(
                loc,
                "include",
                "wildcards are only supported in the last component of an include pattern",
            ));
        }
        let files = if wild(&name) {
            let mut found: Vec<PathBuf> = match std::fs::read_dir(parent) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .filter(|e| glob_match(name.as_bytes(), e.file_name().as_encoded_bytes()))
                    .filter(|e| e.path().is_file())
                    .map(|e| e.path())
                    .collect(),
                Err(_) => Vec::new(),
            };
            found.sort();
            if found.is_empty() {
                self.warnings.push(format!(
                    "{loc}: include: `{pattern}` matches no file: nothing included"
                ));
            }
            found
        } else {
            vec![full]
        };
        for f in files {
            use std::os::unix::fs::PermissionsExt as _;
            match std::fs::metadata(&f) {
                Err(e) if plain && e.kind() == std::io::ErrorKind::NotFound => {
                    self.warnings.push(format!(
                        "{loc}: include: {} does not exist: nothing included (keepalived logs \
                         it and goes on)",
                        f.display()
                    ));
                    continue;
                }
                Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 != 0 => {
                    self.warnings.push(format!(
                        "{loc}: include: {} is not a regular non-executable file: skipped, as \
                         keepalived skips it",
                        f.display()
                    ));
                    continue;
                }
                _ => {}
            }
            let text = super::read_text(&f).map_err(|e| {
                bad(
                    loc,
                    "include",
                    format!("cannot include {}: {e}", f.display()),
                )
            })?;
            self.file(&f, &text, depth + 1)?;
        }
        Ok(())
    }

    /// `line` with `$NAME` and `${NAME}` replaced, as keepalived's `replace_param` replaces
    /// them: a name of letters, digits and `_` (not starting with a digit), which without
    /// braces ends at a space, a tab or the end of the line. Anything else after a `$`, and a
    /// name no definition has (pushed to `undefined`), is left as it is (shell and awk
    /// variables in a script line, a password starting with `$`).
    fn substitute(
        &self,
        path: &Path,
        loc: &Location,
        line: &str,
        depth: usize,
        undefined: &mut Vec<String>,
    ) -> Result<String, ConfigError> {
        if !line.contains('$') {
            return Ok(line.to_string());
        }
        if depth >= MAX_VAR_DEPTH {
            return Err(bad(
                loc,
                "$",
                format!("variables nest deeper than {MAX_VAR_DEPTH} (a variable uses itself?)"),
            ));
        }
        let mut out = String::new();
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let braced = after.strip_prefix('{');
            let body = braced.unwrap_or(after);
            let e = body
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len());
            let name = &body[..e];
            let next = match braced {
                Some(_) => body[e..].strip_prefix('}'),
                None => Some(&body[e..]).filter(|n| n.is_empty() || n.starts_with([' ', '\t'])),
            };
            let Some(next) =
                next.filter(|_| name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
            else {
                // Not a variable's name: the `$` stays, and the text after it is read on.
                out.push('$');
                rest = after;
                continue;
            };
            let value = if name == "_PWD" {
                path.parent()
                    .unwrap_or(Path::new("."))
                    .display()
                    .to_string()
            } else if let Some(v) = self.vars.get(name) {
                self.substitute(path, loc, v, depth + 1, undefined)?
            } else if name.starts_with('_') {
                return Err(bad(
                    loc,
                    name,
                    format!(
                        "keepalived's predefined variable `{name}` is not supported (only _PWD)"
                    ),
                ));
            } else {
                undefined.push(name.to_string());
                out.push('$');
                rest = after;
                continue;
            };
            out.push_str(&value);
            rest = next;
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// The words of a line, `{` and `}` on their own, quoted strings whole.
fn split_words(loc: &Location, line: &str) -> Result<Vec<Tok>, ConfigError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '{' {
            chars.next();
            out.push(Tok::Open);
        } else if c == '}' {
            chars.next();
            out.push(Tok::Close);
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some(c) => s.push(c),
                    None => return Err(bad(loc, "\"", "unterminated quoted string")),
                }
            }
            out.push(Tok::Word(s));
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '{' || c == '}' || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            out.push(Tok::Word(s));
        }
    }
    Ok(out)
}

/// Shell-style matching of one file name: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`; a leading `.`
/// is matched only by a `.` in the pattern.
fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pat.first() != Some(&b'.') {
        return false;
    }
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some(b'?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some(b'[') => {
                let Some(end) = p.iter().skip(2).position(|&c| c == b']').map(|e| e + 2) else {
                    return n.first() == Some(&b'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let set = &p[1..end];
                let (neg, set) = match set.first() {
                    Some(b'!' | b'^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && go(&p[end + 1..], &n[1..])
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    go(pat, name)
}

#[cfg(test)]
#[path = "keepalived_lex_tests.rs"]
mod tests;
