use super::*;
use proptest::prelude::*;

proptest! {
    /// No bytes make the head parser or the chunked decoder panic.
    #[test]
    fn heads_and_chunks_take_any_bytes(buf in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_head(&buf);
        let mut d = Dechunk::default();
        for n in 0..=buf.len() {
            if d.advance(&buf[..n]).is_err() {
                break;
            }
        }
    }

    /// A body sent in chunks of any sizes (extensions, bare-LF size lines, trailers)
    /// and read in pieces of any sizes is decoded to itself, once.
    #[test]
    fn chunked_bodies_round_trip(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        sizes in proptest::collection::vec(1usize..50, 1..20),
        bare_lf in any::<bool>(),
        ext in any::<bool>(),
        trailer in any::<bool>(),
        reads in proptest::collection::vec(1usize..40, 1..40),
    ) {
        let eol: &[u8] = if bare_lf { b"\n" } else { b"\r\n" };
        let mut raw = Vec::new();
        let mut rest = &body[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            raw.extend_from_slice(format!("{n:x}").as_bytes());
            if ext {
                raw.extend_from_slice(b";x=y");
            }
            raw.extend_from_slice(eol);
            raw.extend_from_slice(&rest[..n]);
            raw.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            i += 1;
        }
        raw.extend_from_slice(b"0\r\n");
        if trailer {
            raw.extend_from_slice(b"X-T: 1\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        let len = raw.len();
        raw.extend_from_slice(b"HTTP/1.1 200 OK\r\n"); // what follows is not its body
        let mut d = Dechunk::default();
        let mut end = None;
        let mut have = 0;
        let mut r = 0;
        while end.is_none() && have < raw.len() {
            have = (have + reads[r % reads.len()]).min(raw.len());
            r += 1;
            end = d.advance(&raw[..have]).unwrap();
        }
        prop_assert_eq!(end, Some(len));
        prop_assert_eq!(d.out, body);
    }

    /// A head of any status, reason and fields is read as written.
    #[test]
    fn heads_round_trip(
        status in 100u16..=999,
        reason in "[ -~]{0,20}",
        len in proptest::option::of(0usize..100_000),
        lf_only in any::<bool>(),
    ) {
        let eol = if lf_only { "\n" } else { "\r\n" };
        let mut head = format!("HTTP/1.1 {status} {reason}{eol}Server: x{eol}");
        if let Some(l) = len {
            head.push_str(&format!("Content-Length: {l}{eol}"));
        }
        head.push_str(eol);
        let h = parse_head(head.as_bytes()).unwrap().expect("a complete head");
        prop_assert_eq!(h.status, status);
        prop_assert_eq!(h.reason, reason.trim());
        prop_assert_eq!(h.content_length, len);
        prop_assert_eq!(h.body_start, head.len());
        prop_assert!(parse_head(&head.as_bytes()[..head.len() - 1]).unwrap().is_none());
    }
}
