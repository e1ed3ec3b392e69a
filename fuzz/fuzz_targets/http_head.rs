//! The boot port's own HTTP/1.1 request-head parser (`flakeboot_httpboot::h1`), from anyone on
//! the LAN: any bytes as the start of a connection.
//!
//! Asserts, for any input:
//! - nothing panics; a complete head is at most `MAX_HEAD` bytes and within the input, and
//!   parsing exactly its bytes gives the same head (a head ends where it says);
//! - a shorter prefix of a complete head is never complete (no head is read twice);
//! - the body length is either at most `MAX_BODY` or refused with 400, 413 or 501;
//! - the response head written for it has one status line, ends with one blank line, and has no
//!   bare CR or LF inside a line.
#![no_main]

use flakeboot_httpboot::h1::{self, MAX_BODY, MAX_HEAD, Parsed};
use axum::http::StatusCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Parsed::Complete(head) = h1::parse_head(data) else {
        return;
    };
    assert!(head.len <= data.len() && head.len <= MAX_HEAD);
    let again = h1::parse_head(&data[..head.len]);
    let Parsed::Complete(same) = again else {
        panic!("its own bytes do not parse: {again:?}");
    };
    assert_eq!(same.len, head.len);
    assert_eq!(same.method, head.method);
    assert_eq!(same.uri, head.uri);
    assert_eq!(same.headers, head.headers);
    if head.len > 0 {
        assert!(!matches!(
            h1::parse_head(&data[..head.len - 1]),
            Parsed::Complete(_)
        ));
    }
    match h1::body_len(&head.headers) {
        Ok(n) => assert!(n <= MAX_BODY),
        Err(s) => assert!(
            [
                StatusCode::BAD_REQUEST,
                StatusCode::PAYLOAD_TOO_LARGE,
                StatusCode::NOT_IMPLEMENTED
            ]
            .contains(&s),
            "{s}"
        ),
    }
    let keep = h1::keep_alive(head.version, &head.headers);
    // The request's headers echoed as a response's: what a handler might pass on.
    let out = h1::response_head(StatusCode::OK, &head.headers, keep, head.version);
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(out.ends_with(b"\r\n\r\n"));
    let body = &out[..out.len() - 2];
    for line in body.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        assert!(line.ends_with(b"\r"), "a line without CR: {line:?}");
        assert!(!line[..line.len() - 1].contains(&b'\r'), "a bare CR: {line:?}");
    }
});
