//! The mysql and pgsql checks against loopback fakes that speak just enough of each protocol
//! (the handshake, a login, one query's answer). Test code only: the checks themselves go
//! through the client crates.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use super::*;
use crate::health::tests::within;

/// How a fake server behaves.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Server {
    /// Logs `probe` in; `SELECT 1` gives one row, anything else none.
    Right,
    /// Refuses every login.
    BadLogin,
    /// Says nothing.
    Silent,
    /// Answers the query with a 100 KB row.
    Huge,
}

async fn listen(how: Server, dialect: Dialect) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                if how == Server::Silent {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                let _ = match dialect {
                    Dialect::Mysql => mysql_session(s, how).await,
                    Dialect::Pgsql => pg_session(s, how).await,
                };
            });
        }
    });
    addr
}

// --- MySQL: packets of a 3-byte length, a sequence number and a payload.

async fn my_send(s: &mut TcpStream, seq: u8, payload: &[u8]) -> io::Result<()> {
    let len = payload.len() as u32;
    let mut p = len.to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    s.write_all(&p).await
}

async fn my_recv(s: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).await?;
    Ok((head[3], p))
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() < 251 {
        out.push(s.len() as u8);
    } else {
        out.push(0xfd);
        out.extend_from_slice(&(s.len() as u32).to_le_bytes()[..3]);
    }
    out.extend_from_slice(s);
}

const MY_OK: &[u8] = &[0, 0, 0, 2, 0, 0, 0];
const MY_EOF: &[u8] = &[0xfe, 0, 0, 2, 0];

async fn mysql_session(mut s: TcpStream, how: Server) -> io::Result<()> {
    // Handshake v10, mysql_native_password.
    let caps: u32 = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x20000 | 0x80000 | 0x200000;
    let mut h = vec![10];
    h.extend_from_slice(b"8.0.0-fake\0");
    h.extend_from_slice(&7u32.to_le_bytes());
    h.extend_from_slice(b"abcdefgh\0");
    h.extend_from_slice(&(caps as u16).to_le_bytes());
    h.push(0x21);
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    h.push(21);
    h.extend_from_slice(&[0; 10]);
    h.extend_from_slice(b"ijklmnopqrst\0");
    h.extend_from_slice(b"mysql_native_password\0");
    my_send(&mut s, 0, &h).await?;
    let (seq, response) = my_recv(&mut s).await?;
    let user = &response[32..];
    let user = &user[..user.iter().position(|&b| b == 0).unwrap_or(user.len())];
    if how == Server::BadLogin || user != b"probe" {
        let mut e = vec![0xff];
        e.extend_from_slice(&1045u16.to_le_bytes());
        e.extend_from_slice(b"#28000Access denied");
        return my_send(&mut s, seq + 1, &e).await;
    }
    my_send(&mut s, seq + 1, MY_OK).await?;
    loop {
        let (_, cmd) = my_recv(&mut s).await?;
        match cmd.first() {
            Some(3) => {}
            _ => return Ok(()), // COM_QUIT or anything else: done
        }
        let rows: Vec<Vec<u8>> = match how {
            Server::Huge => vec![vec![b'x'; 100_000]],
            _ if &cmd[1..] == b"SELECT 1" => vec![b"1".to_vec()],
            _ => vec![],
        };
        my_send(&mut s, 1, &[1]).await?;
        let mut col = Vec::new();
        for part in [&b"def"[..], b"", b"", b"", b"x", b""] {
            lenenc_str(&mut col, part);
        }
        col.push(0x0c);
        col.extend_from_slice(&0x21u16.to_le_bytes());
        col.extend_from_slice(&255u32.to_le_bytes());
        col.push(0xfd);
        col.extend_from_slice(&[0, 0, 0, 0, 0]);
        my_send(&mut s, 2, &col).await?;
        my_send(&mut s, 3, MY_EOF).await?;
        let mut seq = 4;
        for r in rows {
            let mut row = Vec::new();
            lenenc_str(&mut row, &r);
            my_send(&mut s, seq, &row).await?;
            seq += 1;
        }
        my_send(&mut s, seq, MY_EOF).await?;
    }
}

// --- PostgreSQL: messages of a type byte and a 4-byte length.

async fn pg_send(s: &mut TcpStream, kind: u8, body: &[u8]) -> io::Result<()> {
    let mut m = vec![kind];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    s.write_all(&m).await
}

async fn pg_recv(s: &mut TcpStream, typed: bool) -> io::Result<(u8, Vec<u8>)> {
    let kind = if typed { s.read_u8().await? } else { 0 };
    let len = s.read_u32().await? as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    s.read_exact(&mut body).await?;
    Ok((kind, body))
}

async fn pg_session(mut s: TcpStream, how: Server) -> io::Result<()> {
    let (_, startup) = pg_recv(&mut s, false).await?;
    let fields: Vec<&[u8]> = startup[4..].split(|&b| b == 0).collect();
    let user = fields
        .windows(2)
        .find(|w| w[0] == b"user")
        .map(|w| w[1])
        .unwrap_or(b"");
    // Cleartext password.
    pg_send(&mut s, b'R', &3u32.to_be_bytes()).await?;
    let (_, password) = pg_recv(&mut s, true).await?;
    if how == Server::BadLogin || user != b"probe" || password != b"pw\0" {
        return pg_send(
            &mut s,
            b'E',
            b"SFATAL\0C28P01\0Mpassword authentication failed\0\0",
        )
        .await;
    }
    pg_send(&mut s, b'R', &0u32.to_be_bytes()).await?;
    pg_send(&mut s, b'Z', b"I").await?;
    loop {
        let (kind, query) = pg_recv(&mut s, true).await?;
        if kind != b'Q' {
            return Ok(());
        }
        let mut desc = 1u16.to_be_bytes().to_vec();
        desc.extend_from_slice(b"x\0");
        desc.extend_from_slice(&0u32.to_be_bytes());
        desc.extend_from_slice(&0u16.to_be_bytes());
        desc.extend_from_slice(&25u32.to_be_bytes());
        desc.extend_from_slice(&(-1i16).to_be_bytes());
        desc.extend_from_slice(&(-1i32).to_be_bytes());
        desc.extend_from_slice(&0u16.to_be_bytes());
        pg_send(&mut s, b'T', &desc).await?;
        let rows: Vec<Vec<u8>> = match how {
            Server::Huge => vec![vec![b'x'; 100_000]],
            _ if query == b"SELECT 1\0" => vec![b"1".to_vec()],
            _ => vec![],
        };
        let n = rows.len();
        for r in rows {
            let mut row = 1u16.to_be_bytes().to_vec();
            row.extend_from_slice(&(r.len() as u32).to_be_bytes());
            row.extend_from_slice(&r);
            pg_send(&mut s, b'D', &row).await?;
        }
        pg_send(&mut s, b'C', format!("SELECT {n}\0").as_bytes()).await?;
        pg_send(&mut s, b'Z', b"I").await?;
    }
}

fn check(dialect: Dialect, addr: SocketAddr, user: &str, query: &str) -> SqlCheck {
    SqlCheck {
        dialect,
        addr,
        user: user.into(),
        passwd: "pw".into(),
        database: Some("app".into()),
        query: query.into(),
        timeout: Duration::from_millis(1500),
        source: Default::default(),
    }
}

async fn run(c: SqlCheck) -> Result<String, SqlError> {
    within(10, "the sql check", c.run()).await
}

#[tokio::test]
async fn right_wrong_slow_huge_and_absent() {
    for dialect in [Dialect::Pgsql, Dialect::Mysql] {
        let addr = listen(Server::Right, dialect).await;
        // Right: the leading `/` of ldirectord's request is dropped.
        let ok = run(check(dialect, addr, "probe", "/SELECT 1")).await;
        assert!(ok.is_ok(), "{dialect:?}: {ok:?}");
        // Wrong: no row, or the login refused.
        let e = run(check(dialect, addr, "probe", "SELECT 0"))
            .await
            .unwrap_err();
        assert!(matches!(e, SqlError::NoRow { .. }), "{dialect:?}: {e}");
        let e = run(check(dialect, addr, "intruder", "SELECT 1"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, SqlError::Mysql { .. } | SqlError::Pgsql { .. }),
            "{dialect:?}: {e}"
        );
        let addr = listen(Server::BadLogin, dialect).await;
        let e = run(check(dialect, addr, "probe", "SELECT 1"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, SqlError::Mysql { .. } | SqlError::Pgsql { .. }),
            "{dialect:?}: {e}"
        );
        // More than 64 KiB.
        let addr = listen(Server::Huge, dialect).await;
        let e = run(check(dialect, addr, "probe", "SELECT 1"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, SqlError::Mysql { .. } | SqlError::Pgsql { .. }),
            "{dialect:?}: {e}"
        );
        // Slow.
        let addr = listen(Server::Silent, dialect).await;
        let e = run(check(dialect, addr, "probe", "SELECT 1"))
            .await
            .unwrap_err();
        assert!(matches!(e, SqlError::Timeout { .. }), "{dialect:?}: {e}");
        // Absent.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = l.local_addr().unwrap();
        drop(l);
        let e = run(check(dialect, gone, "probe", "SELECT 1"))
            .await
            .unwrap_err();
        assert!(
            matches!(e, SqlError::Mysql { .. } | SqlError::Connect { .. }),
            "{dialect:?}: {e}"
        );
    }
}

/// A PostgreSQL server of the host's (Debian's `postgresql` package), run as `nobody` on a
/// loopback port in a scratch directory, stopped (its process group) on drop.
struct RealPostgres {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: crate::testdir::TestDir,
}

impl RealPostgres {
    /// The server, or why there is none (no package, not root).
    fn start() -> Result<RealPostgres, String> {
        use std::{os::unix::process::CommandExt as _, process::Command};
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no /usr/lib/postgresql: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .ok_or("no initdb under /usr/lib/postgresql")?;
        if !nix::unistd::Uid::effective().is_root() {
            return Err("not root (the server runs as nobody)".into());
        }
        let dir = crate::testdir::TestDir::new("sql-real-postgres");
        std::fs::write(dir.join("pw"), "pw\n").unwrap();
        let nobody = |p: &std::path::Path| {
            nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap()
        };
        nobody(&dir);
        nobody(&dir.join("pw"));
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(bin.join("initdb"))
            .args(["-U", "probe", "--auth=password", "-D"])
            .arg(dir.join("data"))
            .arg(format!("--pwfile={}", dir.join("pw").display()))
            .current_dir(&*dir)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-k")
            .arg(&*dir)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .current_dir(&*dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        Ok(RealPostgres {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        })
    }
}

impl Drop for RealPostgres {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn pgsql_against_a_real_postgresql() {
    let pg = match RealPostgres::start() {
        Ok(pg) => pg,
        Err(why) if std::env::var_os("LVS_TEST_ALLOW_SKIP").is_some() => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED pgsql_against_a_real_postgresql: {why}; LVS_TEST_ALLOW_SKIP is set"
            );
            return;
        }
        Err(why) => panic!(
            "pgsql_against_a_real_postgresql needs PostgreSQL (Debian's postgresql) and root: \
             {why}; set LVS_TEST_ALLOW_SKIP=1 to skip"
        ),
    };
    // Up once it accepts connections.
    within(30, "the PostgreSQL server to listen", async {
        while TcpStream::connect(pg.addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let mut c = check(Dialect::Pgsql, pg.addr, "probe", "/SELECT 1");
    c.database = Some("postgres".into());
    c.timeout = Duration::from_secs(5);
    // The server may still be starting after its socket listens.
    let mut ok = c.run().await;
    for _ in 0..20 {
        if ok.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        ok = c.run().await;
    }
    assert_eq!(ok.unwrap(), "pgsql: a row");
    c.query = "SELECT 1 WHERE false".into();
    let e = run(c.clone()).await.unwrap_err();
    assert!(matches!(e, SqlError::NoRow { .. }), "{e}");
    c.query = "SELECT * FROM no_such_table".into();
    let e = run(c.clone()).await.unwrap_err();
    assert!(matches!(e, SqlError::Pgsql { .. }), "{e}");
    c.query = "SELECT 1".into();
    c.passwd = "wrong".into();
    let e = run(c.clone()).await.unwrap_err();
    assert!(matches!(e, SqlError::Pgsql { .. }), "{e}");
    c.passwd = "pw".into();
    c.database = Some("nope".into());
    let e = run(c).await.unwrap_err();
    assert!(matches!(e, SqlError::Pgsql { .. }), "{e}");
}
