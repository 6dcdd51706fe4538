//! Every ldirectord.cf of the corpus (tests/fixtures/ldirectord, see its SOURCES.md): the
//! outcome of each, and for an accepted one, `lvs convert` reads back to the same model.

use std::path::{Path, PathBuf};

use super::parse_str;
use crate::config::{Config, Location, to_toml, toml};

fn normalized(mut c: Config) -> Config {
    let nowhere = Location {
        file: PathBuf::new(),
        line: 0,
    };
    c.source = PathBuf::new();
    c.warnings.clear();
    c.resolved.clear();
    for v in &mut c.virtuals {
        v.location = nowhere.clone();
        for r in &mut v.reals {
            r.location = nowhere.clone();
        }
    }
    c
}

/// Accepted with this many virtual services, or refused at this line with this message.
type Outcome = Result<usize, (usize, &'static str)>;

#[test]
fn corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ldirectord");
    // A service of a patched ldirectord (not in ldirectord's list): refused, as ldirectord
    // itself refuses a service it does not know.
    let pingpong = "service: unknown service `pingpong_master`";
    let expected: &[(&str, Outcome)] = &[
        ("001.cf", Ok(1)),
        ("002.cf", Ok(1)),
        ("003.cf", Ok(1)),
        ("004.cf", Ok(1)),
        ("005.cf", Ok(1)),
        ("006.cf", Err((8, pingpong))),
        ("007.cf", Err((28, pingpong))),
        ("008.cf", Err((19, pingpong))),
        ("009.cf", Err((32, pingpong))),
        ("010.cf", Err((31, pingpong))),
        ("011.cf", Err((31, pingpong))),
        ("012.cf", Err((35, pingpong))),
        ("013.cf", Err((28, pingpong))),
        // A mysql check (login, passwd, database, request).
        ("014.cf", Ok(1)),
        ("015.cf", Err((33, pingpong))),
        ("016.cf", Err((33, pingpong))),
        ("017.cf", Ok(2)),
        ("018.cf", Err((33, pingpong))),
        ("019.cf", Ok(1)),
    ];
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cf"))
        .collect();
    files.sort();
    let listed: Vec<&str> = expected.iter().map(|(f, _)| *f).collect();
    assert_eq!(
        files, listed,
        "every file of the corpus has its expected outcome"
    );
    for (name, want) in expected {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            crate::config::detect(&path, &text).unwrap(),
            crate::config::Format::Ldirectord,
            "{name}"
        );
        match (want, parse_str(&path, &text)) {
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
