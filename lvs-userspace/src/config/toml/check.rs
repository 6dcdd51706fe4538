//! The check keys of the TOML reader: one list, for a `[[virtual]]` table (the service's own
//! check) and a `[[virtual.also_check]]` table (a further check).
//!
//! The keys cannot be one struct flattened into both tables (`#[serde(flatten)]`): a
//! flattened field is buffered by serde, which loses the spans that give every error its
//! line, and unknown keys would be reported at the table's line. So the list is a macro that
//! adds the keys to a table's struct, with the method that moves them into the raw config.

use serde::Deserialize;

use super::{Lines, S, StrOrInt};
use crate::config::raw::{RawVirtual, Val};

/// Declares the struct of a TOML table that holds the check keys: the struct's own fields as
/// given, then every check key (`S<T>`, named as in [`RawVirtual`]), and a method
/// `checks_into_raw` that moves the check keys into a [`RawVirtual`].
macro_rules! with_check_keys {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($(#[$fm:meta])* $f:ident: $t:ty,)* }) => {
        $crate::config::toml::check::with_check_keys!(@emit [$(#[$m])* $vis] $name
            [$($(#[$fm])* $f: $t,)*]
            checktype: StrOrInt => opt_string,
            service: String => opt,
            checkport: u64 => opt,
            request: String => opt,
            receive: String => opt,
            httpmethod: String => opt,
            virtualhost: String => opt,
            checkcommand: String => opt,
            dynamic_weight: bool => opt,
            checkcommand_style: String => opt,
            login: String => opt,
            passwd: String => opt,
            database: String => opt,
            secret: String => opt,
            dns_type: String => opt,
            digest: String => opt,
            status_codes: String => opt,
            follow_redirects: bool => opt,
            check_address: String => opt,
            check_source: String => opt,
            check_source_port: u64 => opt,
            check_interface: String => opt,
            check_mark: u64 => opt,
            checkinterval: u64 => opt,
            checktimeout: u64 => opt,
            negotiatetimeout: u64 => opt,
            failurecount: u64 => opt,
            successcount: u64 => opt,
            retry_interval: u64 => opt,
            track_weight: i64 => opt,
            track_reverse: bool => opt,
            verify_tls: bool => opt,
        );
    };
    (@emit [$($m:tt)*] $name:ident [$($own:tt)*] $($k:ident: $kt:ty => $conv:ident,)*) => {
        $($m)* struct $name {
            $($own)*
            $($k: S<$kt>,)*
        }

        impl $name {
            /// Moves the check keys into `rv` (`rv`'s check keys are set, whether or not
            /// the table had them).
            fn checks_into_raw(&mut self, l: &Lines<'_>, rv: &mut RawVirtual) {
                $(rv.$k = l.$conv(self.$k.take());)*
            }
        }
    };
}
pub(super) use with_check_keys;

with_check_keys! {
    /// A `[[virtual.also_check]]` table: the check keys alone.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct TomlCheck {}
}

impl TomlCheck {
    /// The further check these keys make, a raw virtual service at `address` with only its
    /// check keys set.
    pub(super) fn into_raw(mut self, l: &Lines<'_>, address: &Val<String>) -> RawVirtual {
        let mut a = RawVirtual::new(address.clone(), None);
        self.checks_into_raw(l, &mut a);
        a
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse_str;

    /// Check keys of every kind, one set a check.
    const CHECKS: &[&str] = &[
        "checktype = \"negotiate\"\nservice = \"http\"\ncheckport = 8080\nrequest = \"/h\"\n\
         receive = \"ok\"\nhttpmethod = \"HEAD\"\nvirtualhost = \"w.example\"\n\
         digest = \"9b3a0c85a887a256d6939da88aabd8cd\"\nstatus_codes = \"200-204\"\n\
         follow_redirects = false\ncheck_address = \"10.0.0.9\"\ncheck_source = \"10.0.0.1\"\n\
         check_source_port = 4000\ncheck_interface = \"lo\"\ncheck_mark = 7\n\
         checkinterval = 7\nchecktimeout = 3\nnegotiatetimeout = 4\nfailurecount = 2\n\
         successcount = 3\nretry_interval = 1\nverify_tls = true\n",
        "checktype = \"negotiate\"\nservice = \"mysql\"\nlogin = \"u\"\npasswd = \"p\"\n\
         database = \"d\"\nrequest = \"SELECT 1\"\n",
        "checktype = \"negotiate\"\nservice = \"radius\"\nlogin = \"u\"\npasswd = \"p\"\n\
         secret = \"s\"\n",
        "checktype = \"negotiate\"\nservice = \"dns\"\nrequest = \"example.org\"\n\
         dns_type = \"SOA\"\n",
        "checktype = \"external\"\ncheckcommand = \"/bin/true\"\ndynamic_weight = true\n",
        "checktype = \"file\"\nrequest = \"/tmp/w\"\ntrack_weight = 2\ntrack_reverse = true\n",
        "checktype = 3\nservice = \"http\"\n",
    ];

    #[test]
    fn a_virtual_and_an_also_check_take_the_same_check_keys() {
        for keys in CHECKS {
            let own = format!("[[virtual]]\naddress = \"10.0.0.1:80\"\n{keys}");
            let own = parse_str(Path::new("x.toml"), &own).unwrap_or_else(|e| panic!("{e}"));
            let also =
                format!("[[virtual]]\naddress = \"10.0.0.1:80\"\n[[virtual.also_check]]\n{keys}");
            let also = parse_str(Path::new("x.toml"), &also).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                own.virtuals[0].check, also.virtuals[0].also_checks[0],
                "{keys}"
            );
        }
    }

    #[test]
    fn errors_in_check_keys_name_their_line() {
        for table in ["", "[[virtual.also_check]]\n"] {
            let text = format!(
                "[[virtual]]\naddress = \"10.0.0.1:80\"\n{table}checktype = \"connect\"\n\
                 checkinterval = \"often\"\n"
            );
            let e = parse_str(Path::new("x.toml"), &text)
                .unwrap_err()
                .to_string();
            let line = 4 + usize::from(!table.is_empty());
            assert!(
                e.starts_with(&format!("x.toml:{line}: checkinterval: ")),
                "{e}"
            );
            let text = text.replace("checkinterval = \"often\"", "checkintervall = 3");
            let e = parse_str(Path::new("x.toml"), &text)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "x.toml:{line}: checkintervall: unknown field `checkintervall`"
                )),
                "{e}"
            );
        }
    }
}
