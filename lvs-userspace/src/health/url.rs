//! Resolving a redirect's `Location` against the request it answers, as RFC 3986 section 5.2
//! says (the base is the check's own URL: its scheme and host, the path and query asked).

/// A `Location` resolved against the request's target.
#[derive(Debug, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The reference's scheme, when it names one (`https:` …), without the `:`.
    pub scheme: Option<&'a str>,
    /// The reference's authority (`host[:port]`), when it names one (`//host/x`, `http://host/`).
    pub authority: Option<&'a str>,
    /// The path and query to request (never empty; the fragment dropped).
    pub target: String,
}

/// `reference` (a `Location` value) resolved against `base`, the path and query of the request
/// it answers (RFC 3986 5.2.2, with the non-strict reading that a reference naming the base's
/// scheme without an authority, `http:g`, is relative).
pub fn resolve<'a>(base: &str, reference: &'a str) -> Resolved<'a> {
    let reference = reference.split('#').next().unwrap_or_default();
    let (scheme, rest) = match split_scheme(reference) {
        Some((s, rest)) => (Some(s), rest),
        None => (None, reference),
    };
    let (base_path, base_query) = split_query(base);
    if let Some(after) = rest.strip_prefix("//") {
        let end = after.find(['/', '?']).unwrap_or(after.len());
        let (path, query) = split_query(&after[end..]);
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            remove_dot_segments(path)
        };
        return Resolved {
            scheme,
            authority: Some(&after[..end]),
            target: join(path, query),
        };
    }
    let (path, query) = split_query(rest);
    let target = if path.is_empty() {
        join(base_path.to_string(), query.or(base_query))
    } else if path.starts_with('/') {
        join(remove_dot_segments(path), query)
    } else {
        join(remove_dot_segments(&merge(base_path, path)), query)
    };
    Resolved {
        scheme,
        authority: None,
        target,
    }
}

/// `scheme` and what follows the `:`, when `s` starts with a scheme (RFC 3986 3.1: a letter,
/// then letters, digits, `+`, `-`, `.`); a `:` after a `/` or `?` (`a/b:c`) is not one.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let colon = s.find(':')?;
    let scheme = &s[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| (scheme, &s[colon + 1..]))
}

fn split_query(s: &str) -> (&str, Option<&str>) {
    match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    }
}

fn join(path: String, query: Option<&str>) -> String {
    let mut t = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    if let Some(q) = query {
        t.push('?');
        t.push_str(q);
    }
    t
}

/// RFC 3986 5.2.3: `reference` after the base path's last `/`.
fn merge(base_path: &str, reference: &str) -> String {
    match base_path.rfind('/') {
        Some(i) => format!("{}{reference}", &base_path[..=i]),
        None => format!("/{reference}"),
    }
}

/// RFC 3986 5.2.4: `.` and `..` segments taken out of `path`.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path;
    let mut out = String::with_capacity(path.len());
    while !input.is_empty() {
        if let Some(r) = input.strip_prefix("../") {
            input = r;
        } else if let Some(r) = input.strip_prefix("./") {
            input = r;
        } else if input.starts_with("/./") {
            input = &input[2..];
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") || input == "/.." {
            input = if input == "/.." { "/" } else { &input[3..] };
            match out.rfind('/') {
                Some(i) => out.truncate(i),
                None => out.clear(),
            }
        } else if input == "." || input == ".." {
            input = "";
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3986 5.4's examples, base `http://a/b/c/d;p?q` (the check asked `/b/c/d;p?q` of
    /// host `a`).
    #[test]
    fn rfc_3986_examples() {
        let base = "/b/c/d;p?q";
        let path = |r: &str| {
            let t = resolve(base, r);
            assert_eq!(t.authority, None, "{r}");
            t.target
        };
        for (r, want) in [
            // 5.4.1 normal examples.
            ("g", "/b/c/g"),
            ("./g", "/b/c/g"),
            ("g/", "/b/c/g/"),
            ("/g", "/g"),
            ("?y", "/b/c/d;p?y"),
            ("g?y", "/b/c/g?y"),
            ("#s", "/b/c/d;p?q"),
            ("g#s", "/b/c/g"),
            ("g?y#s", "/b/c/g?y"),
            (";x", "/b/c/;x"),
            ("g;x", "/b/c/g;x"),
            ("", "/b/c/d;p?q"),
            (".", "/b/c/"),
            ("./", "/b/c/"),
            ("..", "/b/"),
            ("../", "/b/"),
            ("../g", "/b/g"),
            ("../..", "/"),
            ("../../", "/"),
            ("../../g", "/g"),
            // 5.4.2 abnormal examples.
            ("../../../g", "/g"),
            ("../../../../g", "/g"),
            ("/./g", "/g"),
            ("/../g", "/g"),
            ("g.", "/b/c/g."),
            (".g", "/b/c/.g"),
            ("g..", "/b/c/g.."),
            ("..g", "/b/c/..g"),
            ("./../g", "/b/g"),
            ("./g/.", "/b/c/g/"),
            ("g/./h", "/b/c/g/h"),
            ("g/../h", "/b/c/h"),
            ("g;x=1/./y", "/b/c/g;x=1/y"),
            ("g;x=1/../y", "/b/c/y"),
            ("g?y/./x", "/b/c/g?y/./x"),
            ("g?y/../x", "/b/c/g?y/../x"),
            ("g#s/./x", "/b/c/g"),
            ("g#s/../x", "/b/c/g"),
            // The non-strict reading of "http:g".
            ("http:g", "/b/c/g"),
        ] {
            assert_eq!(path(r), want, "{r}");
        }
        assert_eq!(resolve(base, "http:g").scheme, Some("http"));
    }

    #[test]
    fn network_path_and_absolute_references() {
        assert_eq!(
            resolve("/b/c", "//g"),
            Resolved {
                scheme: None,
                authority: Some("g"),
                target: "/".into()
            }
        );
        assert_eq!(
            resolve("/b/c", "//h:8080/x/../y?z#f"),
            Resolved {
                scheme: None,
                authority: Some("h:8080"),
                target: "/y?z".into()
            }
        );
        assert_eq!(
            resolve("/b/c", "HTTPS://h?x"),
            Resolved {
                scheme: Some("HTTPS"),
                authority: Some("h"),
                target: "/?x".into()
            }
        );
        assert_eq!(resolve("/b/c", "g:h").scheme, Some("g"));
        // A colon after a slash is part of a path, not a scheme.
        assert_eq!(resolve("/b/c", "x/y:z").target, "/b/x/y:z");
        assert_eq!(resolve("/", "1a:b").target, "/1a:b");
    }
}
