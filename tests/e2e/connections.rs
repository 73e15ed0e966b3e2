//! Hostile connections on raw sockets: oversized request heads, broken framing and slow
//! clients. Each is answered or closed within the server's limits, nothing is stored, and
//! other clients are served meanwhile.
//!
//! Answers to a request head that cannot be parsed (431, 400, and 408 for slow headers)
//! come from actix-web before any route runs, so they have an empty body rather than the
//! API's JSON error (SECURITY.md, "Limits").

use pedigree_core::keys::{Algorithm, PrivateKey};
use pedigree_tests::{get_json, post, sha256_hex, step_statement, submission, Server};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What a client sends: each part after a delay in milliseconds.
type Parts = Vec<(u64, Vec<u8>)>;

/// What a raw connection saw.
#[derive(Debug)]
struct Outcome {
    response: Vec<u8>,
    answered_after: Option<Duration>,
    closed_after: Option<Duration>,
}

impl Outcome {
    fn status(&self) -> u16 {
        let text = String::from_utf8_lossy(&self.response);
        text.strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The body after the head, when the answer has one.
    fn body(&self) -> &[u8] {
        let at = self
            .response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(self.response.len(), |p| p + 4);
        &self.response[at..]
    }
}

/// Connects to `server` and sends each part after its delay, reading whatever comes
/// back, until the server closes the connection or `give_up` passes.
fn drive(server: &Server, parts: &[(u64, Vec<u8>)], give_up: Duration) -> Outcome {
    let addr = server.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let start = Instant::now();
    let mut out = Outcome {
        response: Vec::new(),
        answered_after: None,
        closed_after: None,
    };
    let mut due = start;
    let mut parts = parts.iter();
    let mut next = parts.next();
    let mut buf = [0u8; 65536];
    while start.elapsed() < give_up {
        if let Some((delay_ms, bytes)) = next {
            if Instant::now() >= due + Duration::from_millis(*delay_ms) {
                // A server that already closed makes this fail: the read below says so.
                let _ = s.write_all(bytes);
                due = Instant::now();
                next = parts.next();
            }
        }
        match s.read(&mut buf) {
            Ok(0) => {
                out.closed_after = Some(start.elapsed());
                break;
            }
            Ok(n) => {
                out.answered_after.get_or_insert(start.elapsed());
                out.response.extend_from_slice(&buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                out.closed_after = Some(start.elapsed());
                break;
            }
        }
    }
    out
}

/// The whole of `bytes` at once.
fn at_once(bytes: impl Into<Vec<u8>>) -> Parts {
    vec![(0, bytes.into())]
}

/// `bytes` one byte at a time, `every_ms` apart.
fn trickled(bytes: &[u8], every_ms: u64) -> Parts {
    bytes.iter().map(|b| (every_ms, vec![*b])).collect()
}

fn tree_size(server: &Server) -> u64 {
    let (status, log) = get_json(&format!("{}/api/v1/log", server.url));
    assert_eq!(status, 200, "the server must still answer: {log}");
    log["tree_size"].as_u64().unwrap()
}

fn headers(count: usize) -> Vec<u8> {
    let mut req = b"GET /checkpoint HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..count {
        req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[test]
fn oversized_or_broken_request_heads_get_4xx_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let big = |n: usize| {
        let mut r = b"GET /checkpoint HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        r.extend(std::iter::repeat_n(b'a', n));
        r.extend_from_slice(b"\r\n\r\n");
        r
    };
    let mut long_target = b"GET /".to_vec();
    long_target.extend(std::iter::repeat_n(b'a', 140 * 1024));
    long_target.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let post_head = |extra: &str| {
        format!(
            "POST /api/v1/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n"
        )
        .into_bytes()
    };
    // (name, request, status, JSON error code or None for actix's empty-bodied answer)
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        ("95 header fields", headers(94), 200, None),
        ("97 header fields", headers(96), 431, None),
        ("one header of 100 KiB", big(100 * 1024), 200, None),
        ("one header of 140 KiB", big(140 * 1024), 431, None),
        ("request target of 140 KiB", long_target, 431, None),
        (
            "no host header",
            b"GET /checkpoint HTTP/1.1\r\n\r\n".to_vec(),
            400,
            None,
        ),
        (
            "tls client hello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdefgh\r\n\r\n".to_vec(),
            400,
            None,
        ),
        (
            "content-length overflowing",
            post_head("Content-Length: 99999999999999999999999\r\n"),
            400,
            None,
        ),
        (
            "content-length negative",
            post_head("Content-Length: -1\r\n"),
            400,
            None,
        ),
        (
            "content-length and chunked both",
            post_head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            400,
            None,
        ),
        (
            "chunk size overflowing",
            [
                post_head("Transfer-Encoding: chunked\r\n"),
                b"FFFFFFFFFFFFFFFFFF\r\n".to_vec(),
            ]
            .concat(),
            400,
            Some("invalid_request"),
        ),
        (
            "content-length over the body cap",
            post_head("Content-Length: 5000000\r\n"),
            413,
            Some("body_too_large"),
        ),
    ];
    for (name, request, status, code) in &cases {
        let out = drive(&server, &at_once(request.clone()), Duration::from_secs(5));
        assert_eq!(out.status(), *status, "{name}: {out:?}");
        match code {
            Some(code) => {
                let answer: serde_json::Value = serde_json::from_slice(out.body())
                    .unwrap_or_else(|e| panic!("{name}: body is not JSON ({e}): {out:?}"));
                assert_eq!(answer["error"], *code, "{name}");
            }
            None if *status != 200 => assert!(out.body().is_empty(), "{name}: {out:?}"),
            None => {}
        }
        assert_eq!(tree_size(&server), 0, "{name}: changed the tree");
    }
}

#[test]
fn slow_clients_are_cut_off_after_the_client_timeout_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--client-timeout-ms", "1000"]);
    let key = PrivateKey::generate(Algorithm::Ed25519);
    let good = submission(
        &step_statement("https://pedigree.dev/ml/train/v1", &sha256_hex(b"s"), &[]),
        &key,
    );
    let post_head = format!(
        "POST /api/v1/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        good.len()
    )
    .into_bytes();
    let half_body = [post_head.clone(), good[..good.len() / 2].to_vec()].concat();
    let head = b"GET /checkpoint HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut body_trickle = at_once(post_head);
    body_trickle.extend(trickled(&good[..40], 100));
    let mut keep_alive_trickle = at_once(&head[..]);
    keep_alive_trickle.extend(trickled(head, 100));

    // (name, what the client sends, status, JSON error code or None for an empty body)
    let cases: Vec<(&str, Parts, u16, Option<&str>)> = vec![
        ("connects and sends nothing", Vec::new(), 408, None),
        (
            "half a request head, then nothing",
            at_once(&head[..20]),
            408,
            None,
        ),
        (
            "request head one byte every 100 ms",
            trickled(head, 100),
            408,
            None,
        ),
        (
            "whole head, half the body, then nothing",
            at_once(half_body),
            408,
            Some("request_timeout"),
        ),
        (
            "whole head, body one byte every 100 ms",
            body_trickle,
            408,
            Some("request_timeout"),
        ),
        // Keep-alive is off by default: the connection closes after one answer, so a
        // second request cannot be trickled in without a deadline.
        (
            "second request on the connection, trickled",
            keep_alive_trickle,
            200,
            None,
        ),
    ];
    let started = Instant::now();
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let workers: Vec<_> = cases
            .iter()
            .map(|(_, parts, _, _)| s.spawn(|| drive(&server, parts, Duration::from_secs(8))))
            .collect();
        // Meanwhile: 200 more stalled connections, and a client that must still be served.
        let stalled: Vec<TcpStream> = (0..200)
            .map(|_| {
                let mut c = TcpStream::connect(server.url.trim_start_matches("http://")).unwrap();
                c.write_all(b"GET /checkpoint HTTP/1.1\r\n").unwrap();
                c
            })
            .collect();
        let t = Instant::now();
        assert_eq!(tree_size(&server), 0);
        let (status, answer) = post(
            &format!("{}/api/v1/entries", server.url),
            "application/json",
            &good,
        );
        assert_eq!(status, 201, "{answer}");
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "served in {:?} while 200 connections stalled",
            t.elapsed()
        );
        let outcomes = workers.into_iter().map(|w| w.join().unwrap()).collect();
        drop(stalled);
        outcomes
    });
    for ((name, _, status, code), out) in cases.iter().zip(&outcomes) {
        assert_eq!(out.status(), *status, "{name}: {out:?}");
        match code {
            Some(code) => {
                let answer: serde_json::Value = serde_json::from_slice(out.body())
                    .unwrap_or_else(|e| panic!("{name}: body is not JSON ({e}): {out:?}"));
                assert_eq!(answer["error"], *code, "{name}");
            }
            None if *status != 200 => assert!(out.body().is_empty(), "{name}: {out:?}"),
            None => {}
        }
        let answered = out.answered_after.expect("an answer");
        let closed = out
            .closed_after
            .unwrap_or_else(|| panic!("{name}: still open after 8 s"));
        println!("{name}: {status} after {answered:?}, closed after {closed:?}");
        if *status == 408 {
            assert!(
                answered >= Duration::from_millis(800) && answered < Duration::from_secs(3),
                "{name}: answered after {answered:?}, the timeout is 1 s"
            );
        }
        // After a 408 the server waits up to its 2 s disconnect timeout for the client.
        assert!(
            closed < answered + Duration::from_secs(4),
            "{name}: closed {closed:?} after the start, answered at {answered:?}"
        );
    }
    // Only the one good submission was stored.
    assert_eq!(tree_size(&server), 1);
    println!(
        "slow clients: {} cases and 200 stalled connections handled in {:?}",
        cases.len(),
        started.elapsed()
    );
}
