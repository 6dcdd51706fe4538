//! keepalived's `delay_before_retry` and `warmup` at every level: `virtual_server`,
//! `real_server` and checker.

use std::time::Duration;

use super::tests::{err, ok};

/// A virtual_server with `vs` lines, one real with `real` lines and a TCP_CHECK with
/// `check` lines: at lines 5, 7 and 9.
fn conf(vs: &str, real: &str, check: &str) -> String {
    format!(
        "virtual_server 10.0.0.1 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{vs}\n  \
         real_server 10.0.0.2 80 {{\n{real}\n    TCP_CHECK {{\n{check}\n    }}\n  }}\n}}\n"
    )
}

#[test]
fn delay_before_retry_and_warmup_at_every_level() {
    let retry = |vs, real, check| ok(&conf(vs, real, check)).virtuals[0].check.retry_interval;
    let secs = |n| Some(Duration::from_secs(n));
    // The innermost delay_before_retry wins.
    let (vs, real, check) = (
        "  delay_before_retry 3",
        "    delay_before_retry 4",
        "      delay_before_retry 5",
    );
    assert_eq!(retry(vs, "", ""), secs(3));
    assert_eq!(retry(vs, real, ""), secs(4));
    assert_eq!(retry(vs, real, check), secs(5));
    assert_eq!(retry("", real, ""), secs(4));
    assert_eq!(retry("", "", check), secs(5));
    // warmup: read as a time, then ignored with a warning at its line, at every level.
    let (vs, real, check) = ("  warmup 2", "    warmup 2", "      warmup 2");
    for (text, line) in [
        (conf(vs, "", ""), 5),
        (conf("", real, ""), 7),
        (conf("", "", check), 9),
    ] {
        let c = ok(&text);
        assert_eq!(
            c.warnings,
            [format!(
                "k.conf:{line}: warmup: ignored: lvs checks at delay_loop and counts \
                 failures with retry"
            )]
        );
        assert_eq!(c.virtuals[0].check.retry_interval, retry("", "", ""));
        assert_eq!(
            err(&text.replace("warmup 2", "warmup x")),
            format!("k.conf:{line}: warmup: `x` is not a number of seconds")
        );
        assert_eq!(
            err(&text.replace("warmup 2", "delay_before_retry 0")),
            format!("k.conf:{line}: delay_before_retry: must be above 0 seconds")
        );
    }
}
