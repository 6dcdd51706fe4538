//! keepalived.conf syntax: comments, blocks, includes, variables, conditional lines.

use std::path::Path;

use super::*;
use crate::testdir::TestDir;

/// The tree as text: `key args [line] { ... }`, one statement per entry.
fn show(stmts: &[Stmt]) -> Vec<String> {
    stmts
        .iter()
        .map(|s| {
            let mut t = format!("{}@{}", s.words.join(" "), s.loc.line);
            if let Some(b) = &s.block {
                t.push_str(&format!(" {{{}}}", show(b).join("; ")));
            }
            t
        })
        .collect()
}

fn tree(text: &str) -> Vec<String> {
    show(&parse(Path::new("k.conf"), text, "lb1").unwrap().stmts)
}

fn error(text: &str) -> String {
    parse(Path::new("k.conf"), text, "lb1")
        .unwrap_err()
        .to_string()
}

#[test]
fn comments_and_blocks_in_every_layout() {
    let text = "! Configuration File\n\
                # another comment\n\
                global_defs {   ! trailing\n   router_id LVS_1 # trailing\n}\n\
                virtual_server 10.0.0.1 80\n{\n  lb_algo rr\n  real_server 10.0.0.2 80 { weight 2 }\n\
                  HTTP_GET { url { path /x\n status_code 200 } }\n}\n\
                notification_email_from \"a b\"\n";
    assert_eq!(
        tree(text),
        [
            "global_defs@3 {router_id LVS_1@4}",
            "virtual_server 10.0.0.1 80@6 {lb_algo rr@8; real_server 10.0.0.2 80@9 {weight 2@9}; \
             HTTP_GET@10 {url@10 {path /x@10; status_code 200@11}}}",
            "notification_email_from a b@13",
        ]
    );
}

#[test]
fn unbalanced_braces_name_their_line() {
    assert_eq!(
        error("virtual_server 10.0.0.1 80 {\n  lb_algo rr\n"),
        "k.conf:1: {: this block is never closed: a `}` is missing"
    );
    assert_eq!(error("a {\n}\n}\n"), "k.conf:3: }: closes no block");
    assert_eq!(
        error("x\n{\n}\n{\n}\n"),
        "k.conf:4: {: a block needs a keyword before its `{`"
    );
}

#[test]
fn variables_are_defined_and_replaced() {
    let text = "$VIP=10.0.0.1\n$PORT = 80\n$BOTH=${VIP} $PORT\nvirtual_server $BOTH {\n}\n";
    assert_eq!(tree(text), ["virtual_server 10.0.0.1 80@4 {}"]);
    // As keepalived's replace_param: a name no definition has, or one followed by anything
    // but a space, a tab or the end of the line, is left as it is (a shell variable).
    assert_eq!(
        tree("$P=80\nscript \"/bin/sh -c 'kill -0 $MAINPID'\" $P\nx $P:1 ${P}:1 $1 $\n"),
        [
            "script /bin/sh -c 'kill -0 $MAINPID' 80@2",
            "x $P:1 80:1 $1 $@3"
        ]
    );
    let p = parse(Path::new("k.conf"), "auth_pass $NOPE\n", "lb1").unwrap();
    assert_eq!(show(&p.stmts), ["auth_pass $NOPE@1"]);
    assert_eq!(
        p.warnings,
        [
            "k.conf:1: `$NOPE` is no variable defined before this line: left as it is, as keepalived leaves it"
        ]
    );
    assert!(error("$A=$A\nx $A\n").contains("nest deeper than 16"));
    assert!(error("x ${_INSTANCE}\n").contains("`_INSTANCE` is not supported"));
    assert!(error("$A=1 \\\n 2\n").starts_with("k.conf:1: A: multi-line variable"));
    assert_eq!(
        show(
            &parse(Path::new("/etc/k/k.conf"), "x ${_PWD}/y\n", "lb1")
                .unwrap()
                .stmts
        ),
        ["x /etc/k/y@1"]
    );
}

#[test]
fn conditional_lines_follow_the_config_id() {
    let text = "@lb1 a 1\n@lb2 b 2\n@^lb1 c 3\n@^lb2 d 4\ne 5\n";
    assert_eq!(tree(text), ["a 1@1", "d 4@4", "e 5@5"]);
    assert_eq!(
        error("@ x\n"),
        "k.conf:1: @: a conditional line needs an id after `@`"
    );
}

#[test]
fn seq_is_refused() {
    assert_eq!(
        error("\n~SEQ(i,1,1,3) real_server 10.0.0.$i 80 {\n}\n"),
        "k.conf:2: ~SEQ(i,1,1,3): `~SEQ` and `~` list expansion are not supported: write the lines out"
    );
}

#[test]
fn includes_read_files_in_place_relative_to_the_includer() {
    let dir = TestDir::new("keepalived-include");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(dir.join("conf.d/b.conf"), "b 1\n").unwrap();
    std::fs::write(dir.join("conf.d/a.conf"), "a 1\ninclude ../leaf\n").unwrap();
    std::fs::write(dir.join("conf.d/.hidden.conf"), "hidden\n").unwrap();
    std::fs::write(dir.join("conf.d/c.txt"), "c\n").unwrap();
    std::fs::write(dir.join("leaf"), "leaf {\n}\n").unwrap();
    let main = dir.join("keepalived.conf");
    let text = "top {\n  include conf.d/*.conf\n}\ninclude conf.d/[x]*.conf\n";
    let p = parse(&main, text, "lb1").unwrap();
    assert_eq!(show(&p.stmts), ["top@1 {a 1@1; leaf@1 {}; b 1@1}"]);
    // Each statement knows its own file.
    let files: Vec<_> = p.stmts[0]
        .block
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.loc.file.strip_prefix(&*dir).unwrap().to_owned())
        .collect();
    assert_eq!(
        files,
        [
            Path::new("conf.d/a.conf"),
            Path::new("conf.d/../leaf"),
            Path::new("conf.d/b.conf")
        ]
    );
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(
        p.warnings[0].ends_with("include: `conf.d/[x]*.conf` matches no file: nothing included")
    );
    // A plain include's missing file, and an executable file, are skipped with a warning,
    // as keepalived skips them; a reporting variant's missing file is an error.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(dir.join("conf.d/x.conf"), "x 1\n").unwrap();
    std::fs::set_permissions(
        dir.join("conf.d/x.conf"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let p = parse(
        &main,
        "include missing.conf\ninclude conf.d/*.conf\n",
        "lb1",
    )
    .unwrap();
    assert_eq!(show(&p.stmts), ["a 1@1", "leaf@1 {}", "b 1@1"]);
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(
        p.warnings[0].ends_with(
            "missing.conf does not exist: nothing included (keepalived logs it and goes on)"
        ),
        "{:?}",
        p.warnings
    );
    assert!(
        p.warnings[1].ends_with(
            "x.conf is not a regular non-executable file: skipped, as keepalived skips it"
        ),
        "{:?}",
        p.warnings
    );
    std::fs::remove_file(dir.join("conf.d/x.conf")).unwrap();
    let e = parse(&main, "\nincluder missing.conf\n", "lb1")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "{}:2: include: cannot include {}",
            main.display(),
            dir.join("missing.conf").display()
        )),
        "{e}"
    );
    std::fs::write(dir.join("loop"), "include loop\n").unwrap();
    let e = parse(&main, "include loop\n", "lb1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("nest deeper than 16 files"), "{e}");
}

#[test]
fn glob_matches_like_the_shell() {
    for (p, n, want) in [
        ("*.conf", "a.conf", true),
        ("*.conf", "a.confx", false),
        ("*.conf", ".a.conf", false),
        ("?.conf", "ab.conf", false),
        ("[ab]*", "b1", true),
        ("[!ab]*", "b1", false),
        ("[a-c]x", "cx", true),
        ("vs_*", "vs_web", true),
    ] {
        assert_eq!(glob_match(p.as_bytes(), n.as_bytes()), want, "{p} {n}");
    }
}
