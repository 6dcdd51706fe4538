//! `status_codes` and `follow_redirects`: parsing, TOML's keys and defaults, what is refused.

use std::path::Path;

use super::StatusCodes;
use crate::config::{CheckService, Config, ConfigError, render_check, to_toml, toml};

fn parse(text: &str) -> Result<Config, ConfigError> {
    toml::parse_str(Path::new("t.toml"), text)
}

/// A TOML service checked by `service` with these further keys (from line 5 on).
fn service(service: &str, keys: &str) -> String {
    format!(
        "[[virtual]]\naddress = \"10.0.0.1:80\"\nchecktype = \"negotiate\"\nservice = \
         \"{service}\"\n{keys}\n[[virtual.real]]\naddress = \"10.0.0.2:80\"\n"
    )
}

#[test]
fn ranges_parse_merge_and_print() {
    let c = StatusCodes::parse("301, 200-204 205-210,204").unwrap();
    assert_eq!(c.to_string(), "200-210,301");
    assert!(c.contains(200) && c.contains(210) && c.contains(301));
    assert!(!c.contains(211) && !c.contains(300) && !c.contains(302));
    assert_eq!(StatusCodes::default().to_string(), "200-299");
    assert_eq!(
        StatusCodes::parse("200-299").unwrap(),
        StatusCodes::default()
    );
    for bad in [
        "", "2xx", "99", "600", "300-200", "200-", "-200", "+200", "200-600",
    ] {
        assert!(StatusCodes::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn toml_defaults_are_ldirectords() {
    let c = parse(&service("http", "")).unwrap();
    let k = &c.virtuals[0].check;
    assert_eq!(k.status_codes, StatusCodes::default());
    assert!(k.follow_redirects);
    let plan = render_check(&c);
    assert!(
        plan.contains("passes on status 200-299; follows redirects to the same real"),
        "{plan}"
    );
    // Nothing written for the defaults.
    let text = to_toml(&c);
    assert!(
        !text.contains("status_codes") && !text.contains("follow_redirects"),
        "{text}"
    );
    // ldirectord's check too.
    let c = crate::config::ldirectord::parse_str(
        Path::new("l.cf"),
        "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n\tservice=http\n\tchecktype=negotiate\n",
    )
    .unwrap();
    assert_eq!(c.virtuals[0].check.service, CheckService::Http);
    assert_eq!(c.virtuals[0].check.status_codes, StatusCodes::default());
    assert!(c.virtuals[0].check.follow_redirects);
}

#[test]
fn toml_keys_are_read_and_written_back() {
    let c = parse(&service(
        "https",
        "status_codes = \"200, 301-302\"\nfollow_redirects = false",
    ))
    .unwrap();
    let k = &c.virtuals[0].check;
    assert_eq!(k.status_codes.to_string(), "200,301-302");
    assert!(!k.follow_redirects);
    let text = to_toml(&c);
    assert!(
        text.contains("status_codes = \"200,301-302\"\nfollow_redirects = false\n"),
        "{text}"
    );
    let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back.virtuals[0].check, c.virtuals[0].check);
    // http_proxy has a status, never follows a redirect.
    let c = parse(&service(
        "http_proxy",
        "request = \"http://example.org/\"\nstatus_codes = \"204\"",
    ))
    .unwrap();
    assert_eq!(c.virtuals[0].check.status_codes.to_string(), "204");
    assert!(render_check(&c).contains("passes on status 204"));
    // An also_check has its own.
    let c = parse(&format!(
        "{}[[virtual.also_check]]\nchecktype = \"negotiate\"\nservice = \"http\"\nrequest = \
         \"/b\"\nstatus_codes = \"404\"\n",
        service("http", "")
    ))
    .unwrap();
    assert_eq!(c.virtuals[0].also_checks[0].status_codes.to_string(), "404");
    let back = parse(&to_toml(&c)).unwrap();
    assert_eq!(back.virtuals[0].also_checks, c.virtuals[0].also_checks);
}

#[test]
fn toml_refuses_what_has_no_meaning() {
    let e = |svc: &str, keys: &str| match parse(&service(svc, keys)) {
        Ok(_) => panic!("accepted {svc} {keys}"),
        Err(e) => e.to_string(),
    };
    let m = e("http", "status_codes = \"2xx\"");
    assert!(
        m.starts_with("t.toml:5: status_codes: `2xx` is not a status code or range"),
        "{m}"
    );
    let m = e("http", "status_codes = \"301\"");
    assert!(
        m.starts_with("t.toml:5: status_codes: `301` lists a redirection (3xx)")
            && m.contains("follow_redirects = false"),
        "{m}"
    );
    let m = e("smtp", "status_codes = \"200\"");
    assert!(
        m.starts_with("t.toml:5: status_codes: has no effect"),
        "{m}"
    );
    let m = e("dns", "follow_redirects = false");
    assert!(
        m.starts_with("t.toml:5: follow_redirects: has no effect"),
        "{m}"
    );
}
