use std::path::Path;

use super::*;

#[test]
fn too_many_virtuals() {
    let mut text = String::new();
    for i in 0..=MAX_VIRTUALS {
        text.push_str(&format!("virtual=10.0.{}.{}:80\n", i / 200, i % 200 + 1));
    }
    let e = ldirectord::parse_str(Path::new("m.cf"), &text)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("m.cf:257: virtual: too many virtual services: 257"),
        "{e}"
    );
}

#[test]
fn too_many_destinations_across_virtuals_names_the_one_that_crosses() {
    // 5 virtual services of 4,095 reals each (one range each): every one fits its ring,
    // together they need 20,475 destination slots.
    let mut text = String::new();
    for i in 1..=5 {
        text.push_str(&format!(
            "virtual=10.{i}.0.1:80\n\treal=10.{i}.16.1->10.{i}.31.255:80 gate\n"
        ));
    }
    let Err(e) = ldirectord::parse_str(Path::new("m.cf"), &text) else {
        panic!("20,475 destinations were accepted");
    };
    let e = e.to_string();
    // 4 × 4,095 = 16,380 fit; the 5th virtual (line 9) crosses 16,384.
    assert!(e.starts_with("m.cf:9: virtual: "), "{e}");
    assert!(e.contains("20475") && e.contains("16384"), "{e}");
    // The same with room: 4 of them load.
    let four: String = text.lines().take(8).map(|l| format!("{l}\n")).collect();
    let c = ldirectord::parse_str(Path::new("m.cf"), &four).unwrap();
    assert_eq!(
        c.virtuals.iter().map(|v| v.reals.len()).sum::<usize>(),
        16_380
    );
}

#[test]
fn same_vip_other_protocol_is_not_a_duplicate() {
    let text = "virtual=10.0.0.1:80\nvirtual=10.0.0.1:80\n\tprotocol=udp\n";
    let c = ldirectord::parse_str(Path::new("m.cf"), text).unwrap();
    let got: Vec<_> = c
        .virtuals
        .iter()
        .map(|v| (v.vip.to_string(), v.protocol, v.location.line))
        .collect();
    assert_eq!(
        got,
        [
            ("10.0.0.1:80".to_string(), Protocol::Tcp, 1),
            ("10.0.0.1:80".to_string(), Protocol::Udp, 2),
        ],
        "two services on one address, told apart by their protocol"
    );
    // The same address and protocol twice is the duplicate.
    let text = "virtual=10.0.0.1:80\n\tprotocol=udp\nvirtual=10.0.0.1:80\n\tprotocol=udp\n";
    let e = ldirectord::parse_str(Path::new("m.cf"), text)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("m.cf:3: ") && e.contains("duplicate virtual service udp 10.0.0.1:80"),
        "{e}"
    );
}

#[test]
fn check_output_shows_the_plan() {
    let text = "fallback=127.0.0.1:80\nvirtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 3\n\treal=10.0.0.3:80 gate\n\treceive=\"ok\"\n\tlogin=\"x\"\n";
    let c = ldirectord::parse_str(Path::new("m.cf"), text).unwrap();
    let out = render_check(&c);
    assert!(out.contains("virtual tcp 10.0.0.1:80  (m.cf:2)"), "{out}");
    assert!(
        out.contains("real 10.0.0.2:80 gate weight 3 (75%)"),
        "{out}"
    );
    assert!(
        out.contains(
            "check negotiate http on the real's port, every 10s, timeout 5s (negotiate 30s)"
        ),
        "{out}"
    );
    assert!(out.contains("GET /"), "{out}");
    assert!(out.contains("expect \"ok\""), "{out}");
    assert!(out.contains("fallback 127.0.0.1:80 gate"), "{out}");
    assert!(out.contains("warning: m.cf:6: login: ignored"), "{out}");
}

#[test]
fn load_picks_the_reader_by_extension() {
    let dir = std::env::temp_dir().join(format!("lvs-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let t = dir.join("a.toml");
    std::fs::write(&t, "[[virtual]]\naddress = \"10.0.0.1:80\"\n").unwrap();
    assert_eq!(load(&t).unwrap().virtuals.len(), 1);
    let c = dir.join("a.cf");
    std::fs::write(&c, "virtual=10.0.0.1:80\n").unwrap();
    assert_eq!(load(&c).unwrap().virtuals.len(), 1);
    let e = load(&dir.join("missing.cf")).unwrap_err().to_string();
    assert!(e.contains("missing.cf: cannot read"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
