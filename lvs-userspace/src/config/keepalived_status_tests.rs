//! keepalived's `url { status_code }` and its never following a redirect: read, described by
//! `lvs check`, converted to TOML and read back, and the checks the agent builds from them.

use std::path::Path;

use crate::config::{Config, model::*, render_check, to_toml, toml};

use super::tests::{err, ok};

/// A DR service on 10.0.0.1:80, its real 10.0.0.2 checked by `checker` (from line 6 on).
fn service(checker: &str) -> String {
    format!(
        "virtual_server 10.0.0.1 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  \
         real_server 10.0.0.2 80 {{\n{checker}\n  }}\n}}\n"
    )
}

/// An `HTTP_GET` whose one url (path `/`) has these lines (its first at line 8).
fn http_url(lines: &str) -> String {
    service(&format!(
        "    HTTP_GET {{\n      url {{\n{lines}\n        path /\n      }}\n    }}"
    ))
}

/// The converted TOML reads back to the same model.
fn round_trip(c: &Config) -> Config {
    let text = to_toml(c);
    let back =
        toml::parse_str(Path::new("k.toml"), &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        super::tests::normalized(back.clone()).virtuals,
        super::tests::normalized(c.clone()).virtuals,
        "{text}"
    );
    back
}

#[test]
fn status_code_ranges_are_read_as_keepalived_does() {
    // Codes and ranges, on one line or several (they add up), any of 100-599.
    let c = ok(&http_url(
        "        status_code 200-204 301\n        status_code 404 100-101",
    ));
    let k = &c.virtuals[0].check;
    assert_eq!(k.status_codes.to_string(), "100-101,200-204,301,404");
    for (code, passes) in [
        (100, true),
        (204, true),
        (205, false),
        (301, true),
        (302, false),
    ] {
        assert_eq!(k.status_codes.contains(code), passes, "{code}");
    }
    // keepalived never follows a redirect: the 3xx is the status.
    assert!(!k.follow_redirects);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // None written: keepalived's 200-299.
    let c = ok(&http_url("        digest 9b3a0c85a887a256d6939da88aabd8cd"));
    assert_eq!(c.virtuals[0].check.status_codes, StatusCodes::default());
    assert!(!c.virtuals[0].check.follow_redirects);
    // SSL_GET too.
    let c = ok(&service(
        "    SSL_GET {\n      url {\n        path /\n        status_code 503\n      }\n    }",
    ));
    assert_eq!(c.virtuals[0].check.status_codes.to_string(), "503");
    assert!(!c.virtuals[0].check.follow_redirects);
    // Other checkers are untouched: no status, redirects as the default.
    let c = ok(&service("    TCP_CHECK {\n    }"));
    assert!(c.virtuals[0].check.follow_redirects);
}

#[test]
fn bad_status_codes_are_refused_with_their_line() {
    for (bad, shown) in [
        ("99", "99"),
        ("600", "600"),
        ("200-600", "200-600"),
        ("299-200", "299-200"),
        ("2xx", "2xx"),
        ("200-", "200-"),
        ("200 abc", "abc"),
    ] {
        let e = err(&http_url(&format!("        status_code {bad}")));
        assert!(
            e.starts_with(&format!(
                "k.conf:8: status_code: `{shown}` is not a status code or range of them \
                 (100-599)"
            )),
            "{bad}: {e}"
        );
    }
    assert!(
        err(&http_url("        status_code")).starts_with("k.conf:8: status_code: needs"),
        "no code"
    );
}

#[test]
fn each_url_keeps_its_own_codes_through_check_and_convert() {
    let c = ok(&service(
        "    HTTP_GET {\n      url {\n        path /\n        status_code 200-204 301\n      }\n      \
         url {\n        path /gone\n        status_code 404\n      }\n    }",
    ));
    let v = &c.virtuals[0];
    assert_eq!(v.check.status_codes.to_string(), "200-204,301");
    assert_eq!(v.also_checks[0].status_codes.to_string(), "404");
    assert!(!v.check.follow_redirects && !v.also_checks[0].follow_redirects);
    // lvs check says what passes.
    let plan = render_check(&c);
    assert!(
        plan.contains("passes on status 200-204,301; a redirect is its status, not followed"),
        "{plan}"
    );
    assert!(plan.contains("passes on status 404;"), "{plan}");
    // lvs convert writes them, and the TOML reads back to the same model.
    let text = to_toml(&c);
    assert!(text.contains("status_codes = \"200-204,301\""), "{text}");
    assert!(text.contains("status_codes = \"404\""), "{text}");
    assert!(text.contains("follow_redirects = false"), "{text}");
    let back = round_trip(&c);
    assert_eq!(back.virtuals[0].check.status_codes, v.check.status_codes);
    assert!(!back.virtuals[0].check.follow_redirects);
    // The agent's checks carry them.
    let keys = crate::health::CheckKey::all_for(&back.virtuals[0], &back.virtuals[0].reals[0]);
    assert_eq!(keys[0].status_codes.to_string(), "200-204,301");
    assert_eq!(keys[1].status_codes.to_string(), "404");
    assert!(!keys[0].follow_redirects && !keys[1].follow_redirects);
}
