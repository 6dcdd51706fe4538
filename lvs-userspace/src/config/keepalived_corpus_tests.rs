//! Every keepalived.conf of the corpus (tests/fixtures/keepalived): accepted or refused as
//! expected, and an accepted one read back the same after `lvs convert`.

use std::path::{Path, PathBuf};

use super::{parse_with_id, tests::normalized};
use crate::config::{to_toml, toml};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/keepalived")
}

/// Accepted with this many virtual services, or refused at this line with this message.
type Outcome = Result<usize, (usize, &'static str)>;

/// Every keepalived.conf of the corpus (tests/fixtures/keepalived, see its SOURCES.md): the
/// outcome of each, and for an accepted one, `lvs convert` reads back to the same model.
#[test]
fn corpus() {
    let fnat = "lb_kind: FNAT forwarding (DPVS's full NAT) is not IPVS";
    let expected: &[(&str, Outcome)] = &[
        ("001.conf", Ok(1)),
        ("002.conf", Ok(2)),
        ("003.conf", Ok(1)),
        (
            "004.conf",
            Err((37, "lb_kind: unknown forwarding method `dr`")),
        ),
        ("005.conf", Ok(1)),
        ("006.conf", Ok(1)),
        ("007.conf", Ok(1)),
        // DPVS's fork: a group of VIPs, read; its FNAT is not.
        ("008.conf", Err((44, fnat))),
        ("009.conf", Err((48, fnat))),
        ("010.conf", Ok(1)),
        ("011.conf", Ok(1)),
        ("012.conf", Ok(1)),
        ("013.conf", Ok(2)),
        // A real that is the VIP itself: the director serves it (IPVS's local node).
        ("014.conf", Ok(1)),
        ("015.conf", Ok(1)),
        ("016.conf", Ok(2)),
        ("017.conf", Ok(1)),
        ("018.conf", Ok(1)),
        // An IPv6 VIP with an IPv4 real: IPVS mixes families for tunnels only (keepalived
        // skips the real, then the service without reals).
        (
            "019.conf",
            Err((
                24,
                "real_server: 10.175.147.247 is IPv4 and the virtual server \
                 fdd6:5a50:af9e:1::5 is IPv6: IPVS forwards to a server of the other address \
                 family only through a tunnel (TUN), and NAT cannot",
            )),
        ),
        ("020.conf", Ok(1)),
        ("021.conf", Ok(1)),
        ("022.conf", Ok(1)),
        ("023.conf", Ok(1)),
        (
            "024.conf",
            Err((29, "lb_algo: scheduler `loadbalance` is not supported")),
        ),
        ("025.conf", Ok(1)),
        ("026.conf", Ok(1)),
        // keepalived logs an unknown keyword (`weigth 1`) and goes on (the weight stays 1);
        // so does lvs, with a warning.
        ("027.conf", Ok(2)),
        ("028.conf", Ok(1)),
        // Two files in one (the master's and the backup's): the second virtual_server repeats
        // the first (its digests are read).
        ("029.conf", Err((119, "virtual: duplicate virtual service"))),
    ];
    let mut files: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".conf"))
        .collect();
    files.sort();
    let listed: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        files, listed,
        "every file of the corpus has its expected outcome"
    );
    for (name, want) in expected {
        let path = corpus_dir().join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        // The content says keepalived.conf.
        assert_eq!(
            crate::config::detect(&path, &text).unwrap(),
            crate::config::Format::Keepalived,
            "{name}"
        );
        match (want, parse_with_id(&path, &text, "lb1")) {
            (Ok(n), Ok(c)) => {
                assert_eq!(c.virtuals.len(), *n, "{name}");
                let toml_text = to_toml(&c);
                let back =
                    toml::parse_str(Path::new("converted.toml"), &toml_text).unwrap_or_else(|e| {
                        panic!("{name}: the converted TOML does not read: {e}\n{toml_text}")
                    });
                assert_eq!(normalized(back), normalized(c), "{name}: {toml_text}");
            }
            (Ok(_), Err(e)) => panic!("{name}: refused: {e}"),
            (Err((line, why)), Ok(_)) => panic!("{name}: accepted, expected {line}: {why}"),
            (Err((line, why)), Err(e)) => {
                let prefix = format!("{}:{line}: {why}", path.display());
                assert!(
                    e.to_string().starts_with(&prefix),
                    "{name}: want {prefix}, got {e}"
                );
            }
        }
    }
}
