//! A real that is the virtual address itself (keepalived's own test configs have such), in
//! the namespace lab: IPVS's local node. The director serves that real's share of the
//! connections with its own stack, whatever the forwarding method written (here `TUN`, as in
//! keepalived's configs: nothing is encapsulated), and the other reals take theirs as usual.

use std::{net::SocketAddr, time::Duration};

use lvs::lab::{Lab, LabOptions};
use lvs_tests::agent::{RunningLvs, count, start_sorry_server, who_answers};

#[test]
fn a_real_that_is_the_vip_is_served_by_the_director_itself() {
    let lab = Lab::create(LabOptions::default()).expect("lab");
    // The director's own server, on every address (so on the VIP): it answers "sorry".
    start_sorry_server(&lab).expect("the director's server");
    let vip = SocketAddr::new(lab.vip_v4().into(), 80);
    let real1 = lab.reals()[0].addr_v4;
    let conf = format!(
        "virtual_server {v} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  \
         real_server {v} 80 {{\n    lvs_method TUN\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n  \
         real_server {real1} 80 {{\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n}}\n",
        v = lab.vip_v4()
    );
    let lvs = RunningLvs::start_file(&lab, "keepalived.conf", &conf).unwrap();
    for real in [vip, SocketAddr::new(real1.into(), 80)] {
        lvs.wait_real_weight(real, "1", Duration::from_secs(30))
            .unwrap();
    }
    assert!(
        lvs.log().contains("is the virtual address itself"),
        "lvs says the VIP is one of the reals:\n{}",
        lvs.log()
    );
    let names = who_answers(&lab, vip, 20).expect("connections through the VIP");
    // rr: each CPU alternates on its own, so the halves may differ by one per CPU.
    let (own, real1) = (count(&names, "sorry"), count(&names, "real1"));
    assert!(
        own + real1 == 20 && own.abs_diff(10) <= 2,
        "rr between the director itself and real1: {names:?}\n{}",
        lvs.log()
    );
    let status = lvs.status(&[]).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with(&format!("  -> {vip} ")) && l.contains("Local")),
        "lvs status shows the VIP's real as Local:\n{status}"
    );
    assert!(lvs.stop(), "lvs stops on SIGTERM");
}
