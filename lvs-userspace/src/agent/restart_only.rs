//! What a reload cannot apply: the settings fixed at the start ([`Fixed`]), and the warning
//! for each one a new config changes.

use std::{net::SocketAddr, path::PathBuf};

use crate::{
    config::{self, Config},
    dataplane::AttachMode,
};

/// Settings applied once, at the start: a reload that changes them is told that they need a
/// restart (see [`restart_only_changes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Fixed {
    /// The interface the balancer is attached to.
    pub(super) interface: String,
    /// Whether `--interface` chose it (then `interface=` never applies).
    pub(super) interface_from_option: bool,
    /// Where the metrics listener listens, if it runs.
    pub(super) metrics: Option<SocketAddr>,
    /// The maintenance directory the checks look at.
    pub(super) maintenance_dir: Option<PathBuf>,
    /// The flow tables' sizes.
    pub(super) tables: config::TableSizes,
    /// How the balancer is attached (to the NAT inside interfaces too).
    pub(super) mode: AttachMode,
}

/// The settings of `new` that differ from what runs and that only a restart applies, each as
/// a warning that says so; a reload applies everything else.
pub(super) fn restart_only_changes(fixed: &Fixed, new: &Config) -> Vec<String> {
    let file = new.source.display();
    let needs = "the change needs a restart of lvs and is not applied";
    let mut out = Vec::new();
    if !fixed.interface_from_option
        && let Some(i) = &new.globals.interface
        && *i != fixed.interface
    {
        out.push(format!(
            "{file}: interface = {i}, but the balancer is attached to {}: {needs}",
            fixed.interface
        ));
    }
    if new.globals.metrics != fixed.metrics {
        let show = |m: Option<SocketAddr>| m.map_or("off".to_string(), |a| a.to_string());
        out.push(format!(
            "{file}: metrics = {}, but the metrics listener is {}: {needs}",
            show(new.globals.metrics),
            match fixed.metrics {
                Some(a) => format!("on {a}"),
                None => "off".into(),
            }
        ));
    }
    if new.globals.maintenance_dir != fixed.maintenance_dir {
        let show = |m: &Option<PathBuf>| {
            m.as_ref()
                .map_or("none".into(), |d| d.display().to_string())
        };
        out.push(format!(
            "{file}: maintenancedir = {}, but the checks look at {}: {needs}",
            show(&new.globals.maintenance_dir),
            show(&fixed.maintenance_dir)
        ));
    }
    if new.globals.tables != fixed.tables {
        let (n, f) = (&new.globals.tables, &fixed.tables);
        out.push(format!(
            "{file}: connection_table_size = {}, persistence_table_size = {}, but the tables \
             hold {} and {}: {needs} (a restart moves the live flows into tables of the new \
             sizes)",
            n.connections, n.persistence, f.connections, f.persistence
        ));
    }
    out
}

/// Settings a reload cannot apply are named, not ignored in silence.
#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> Fixed {
        Fixed {
            interface: "eth0".into(),
            interface_from_option: false,
            metrics: Some("127.0.0.1:9100".parse().unwrap()),
            maintenance_dir: None,
            tables: config::TableSizes::default(),
            mode: AttachMode::Auto,
        }
    }

    fn config(text: &str) -> Config {
        config::toml::parse_str(std::path::Path::new("lvs.toml"), text).unwrap()
    }

    #[test]
    fn interface_metrics_and_maintenancedir_changes_are_named() {
        let same = config("interface = \"eth0\"\nmetrics = true\n");
        assert_eq!(restart_only_changes(&fixed(), &same), Vec::<String>::new());
        // Without interface=, the one chosen at the start stays: nothing to say.
        let chosen = config("metrics = \"127.0.0.1:9100\"\n");
        assert!(restart_only_changes(&fixed(), &chosen).is_empty());
        let changed = config(
            "interface = \"eth1\"\nmetrics = \"127.0.0.1:9200\"\nmaintenancedir = \"/tmp\"\n",
        );
        assert_eq!(
            restart_only_changes(&fixed(), &changed),
            vec![
                "lvs.toml: interface = eth1, but the balancer is attached to eth0: the change \
                 needs a restart of lvs and is not applied"
                    .to_string(),
                "lvs.toml: metrics = 127.0.0.1:9200, but the metrics listener is on \
                 127.0.0.1:9100: the change needs a restart of lvs and is not applied"
                    .to_string(),
                "lvs.toml: maintenancedir = /tmp, but the checks look at none: the change needs \
                 a restart of lvs and is not applied"
                    .to_string(),
            ]
        );
        let off = config("");
        assert_eq!(
            restart_only_changes(&fixed(), &off),
            vec![
                "lvs.toml: metrics = off, but the metrics listener is on 127.0.0.1:9100: the \
                 change needs a restart of lvs and is not applied"
                    .to_string()
            ]
        );
        // --interface overrides interface=, at the start as after it.
        let by_option = Fixed {
            interface_from_option: true,
            ..fixed()
        };
        assert!(
            restart_only_changes(
                &by_option,
                &config("interface = \"eth1\"\nmetrics = true\n")
            )
            .is_empty()
        );
    }

    #[test]
    fn table_size_changes_are_named() {
        let same = config("metrics = true\nconnection_table_size = 4194304\n");
        assert!(restart_only_changes(&fixed(), &same).is_empty());
        let grown = config("metrics = true\nconnection_table_size = 16777216\n");
        assert_eq!(
            restart_only_changes(&fixed(), &grown),
            vec![
                "lvs.toml: connection_table_size = 16777216, persistence_table_size = 262144, \
                 but the tables hold 4194304 and 262144: the change needs a restart of lvs and \
                 is not applied (a restart moves the live flows into tables of the new sizes)"
                    .to_string()
            ]
        );
    }
}
