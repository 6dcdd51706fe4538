//! Health states kept across a reload that changes how reals are checked.

use std::{collections::HashMap, net::SocketAddr};

use crate::{
    config::{Config, Protocol},
    health::{CheckKey, HardState, real_state},
};

/// Gives each check of a real of `new` that changed (a new [`CheckKey`]: another interval,
/// timeout, request...) the hard state its old check had in the same virtual service, so a
/// reload that changes how a real is checked does not take it out until its new check has
/// run (ldirectord and IPVS keep such reals in the table). The new check still runs at once;
/// no event, and so no alert, comes unless its result changes the state.
pub(super) fn carry_states(old: &Config, new: &Config, states: &mut HashMap<CheckKey, HardState>) {
    let mut was: HashMap<(SocketAddr, Protocol, SocketAddr), HardState> = HashMap::new();
    for v in &old.virtuals {
        for r in &v.reals {
            let keys = CheckKey::all_for(v, r);
            if let Some(state) = real_state(&keys, |k| states.get(k).copied()) {
                was.insert((v.vip, v.protocol, r.addr), state);
            }
        }
    }
    for v in &new.virtuals {
        for r in &v.reals {
            let Some(&state) = was.get(&(v.vip, v.protocol, r.addr)) else {
                continue;
            };
            for key in CheckKey::all_for(v, r) {
                states.entry(key).or_insert(state);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(interval: u32, receive: &str, reals: &[&str]) -> Config {
        let mut text = format!(
            "checkinterval = {interval}\n\n[[virtual]]\naddress = \"192.0.2.10:80\"\n\
             checktype = \"negotiate\"\nservice = \"http\"\nrequest = \"/\"\n\
             receive = \"{receive}\"\n"
        );
        for r in reals {
            text.push_str(&format!("[[virtual.real]]\naddress = \"{r}\"\n"));
        }
        crate::config::toml::parse_str(Path::new("t.toml"), &text).expect("a valid config")
    }

    fn state_of(
        c: &Config,
        states: &HashMap<CheckKey, HardState>,
        real: usize,
    ) -> Option<HardState> {
        let v = &c.virtuals[0];
        states
            .get(&CheckKey::from_config(v, &v.reals[real]))
            .copied()
    }

    #[test]
    fn a_changed_check_keeps_the_state_of_the_old_one() {
        let old = config(1, "ok", &["192.0.2.21:80", "192.0.2.22:80"]);
        let mut states = HashMap::new();
        states.insert(
            CheckKey::from_config(&old.virtuals[0], &old.virtuals[0].reals[0]),
            HardState::Up,
        );
        states.insert(
            CheckKey::from_config(&old.virtuals[0], &old.virtuals[0].reals[1]),
            HardState::Down,
        );
        // Another interval and another receive: new keys for both reals, and a new real.
        let new = config(
            2,
            "fine",
            &["192.0.2.21:80", "192.0.2.22:80", "192.0.2.23:80"],
        );
        assert_eq!(state_of(&new, &states, 0), None, "the keys did change");
        carry_states(&old, &new, &mut states);
        assert_eq!(state_of(&new, &states, 0), Some(HardState::Up));
        assert_eq!(state_of(&new, &states, 1), Some(HardState::Down));
        assert_eq!(
            state_of(&new, &states, 2),
            None,
            "a new real starts unknown"
        );
    }

    #[test]
    fn a_state_already_known_for_the_new_check_wins() {
        let old = config(1, "ok", &["192.0.2.21:80"]);
        let new = config(2, "ok", &["192.0.2.21:80"]);
        let mut states = HashMap::new();
        states.insert(
            CheckKey::from_config(&old.virtuals[0], &old.virtuals[0].reals[0]),
            HardState::Up,
        );
        states.insert(
            CheckKey::from_config(&new.virtuals[0], &new.virtuals[0].reals[0]),
            HardState::Down,
        );
        carry_states(&old, &new, &mut states);
        assert_eq!(state_of(&new, &states, 0), Some(HardState::Down));
    }
}
