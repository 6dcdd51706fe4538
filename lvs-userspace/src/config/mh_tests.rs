//! The `mh` scheduler and its flags in each config format, and their refusals.

use std::path::Path;

use super::{ConfigError, keepalived, ldirectord, model::*, to_toml, toml};

const MH: Scheduler = Scheduler::Mh(MhFlags {
    port: false,
    fallback: false,
});
const MH_BOTH: Scheduler = Scheduler::Mh(MhFlags {
    port: true,
    fallback: true,
});

fn toml_of(extra: &str) -> Result<Config, ConfigError> {
    toml::parse_str(
        Path::new("t.toml"),
        &format!(
            "[[virtual]]\naddress = \"10.0.0.1:80\"\n{extra}\n[[virtual.real]]\n\
             address = \"10.0.0.2:80\"\n"
        ),
    )
}

fn cf_of(extra: &str) -> Result<Config, ConfigError> {
    ldirectord::parse_str(
        Path::new("l.cf"),
        &format!("virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate\n{extra}"),
    )
}

fn keepalived_of(extra: &str) -> Result<Config, ConfigError> {
    keepalived::parse_with_id(
        Path::new("k.conf"),
        &format!(
            "virtual_server 10.0.0.1 80 {{\n  lb_kind DR\n  protocol TCP\n{extra}\n  \
             real_server 10.0.0.2 80 {{\n  }}\n}}\n"
        ),
        "lb1",
    )
}

#[test]
fn toml_takes_mh_and_its_flags() {
    assert_eq!(
        toml_of("scheduler = \"mh\"").unwrap().virtuals[0].scheduler,
        MH
    );
    let c = toml_of("scheduler = \"mh\"\nschedflags = \"mh-port,mh-fallback\"").unwrap();
    assert_eq!(c.virtuals[0].scheduler, MH_BOTH);
    // What `lvs convert` writes reads back the same.
    let again = toml::parse_str(Path::new("t.toml"), &to_toml(&c)).unwrap();
    assert_eq!(again.virtuals[0].scheduler, MH_BOTH);
    assert_eq!(
        toml_of("scheduler = \"mh\"\nschedflags = \"mh-port mh-nope\"")
            .unwrap_err()
            .to_string(),
        "t.toml:4: schedflags: unknown flag `mh-nope` for mh: lvs implements mh-port and \
         mh-fallback"
    );
    assert_eq!(
        toml_of("scheduler = \"wrr\"\nschedflags = \"mh-port\"")
            .unwrap_err()
            .to_string(),
        "t.toml:4: schedflags: scheduler flags are only implemented for mh (mh-port, mh-fallback)"
    );
}

#[test]
fn ldirectord_takes_scheduler_mh_and_schedflags() {
    let c = cf_of("\tscheduler=mh\n\tschedflags=mh-fallback\n").unwrap();
    assert_eq!(
        c.virtuals[0].scheduler,
        Scheduler::Mh(MhFlags {
            port: false,
            fallback: true
        })
    );
    assert_eq!(
        cf_of("\tscheduler=mh\n\tschedflags=sh-port\n")
            .unwrap_err()
            .to_string(),
        "l.cf:4: schedflags: unknown flag `sh-port` for mh: lvs implements mh-port and mh-fallback"
    );
}

#[test]
fn keepalived_takes_lb_algo_mh_and_its_flags() {
    let c = keepalived_of("  lb_algo mh\n  mh-port\n  mh-fallback").unwrap();
    assert_eq!(c.virtuals[0].scheduler, MH_BOTH);
    let c = keepalived_of("  lb_algo mh").unwrap();
    assert_eq!(c.virtuals[0].scheduler, MH);
    assert_eq!(
        keepalived_of("  lb_algo rr\n  mh-port")
            .unwrap_err()
            .to_string(),
        "k.conf:5: schedflags: scheduler flags are only implemented for mh (mh-port, mh-fallback)"
    );
    assert!(
        keepalived_of("  lb_algo mh\n  sh-port")
            .unwrap_err()
            .to_string()
            .starts_with("k.conf:5: sh-port: scheduler flags other than")
    );
}
