//! Talking to verdict as a proxy would: an awc client, the auth-request call, and raw
//! sockets for what a client library would refuse to send.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::instance::Verdict;

/// A check in the auth-request dialect, as the shipped nginx config sends it (GET).
pub fn auth_request(v: &Verdict, uri: &str) -> awc::ClientRequest {
    client()
        .get(v.url("/_resolver/auth-request"))
        .insert_header(("X-Original-URI", uri.to_string()))
        .insert_header(("X-Original-Method", "GET"))
}

/// A check in the auth-request dialect for a video viewer at `live.example.com`, as the
/// shipped nginx config sends it.
pub fn viewer_check(v: &Verdict, uri: &str) -> awc::ClientRequest {
    auth_request(v, uri)
        .insert_header(("X-Forwarded-Proto", "https"))
        .insert_header(("X-Forwarded-Host", "live.example.com"))
        .insert_header(("X-Real-IP", "203.0.113.7"))
        .insert_header(("User-Agent", "VLC/3.0"))
}

/// Sending without the `.send().await.expect(..)` ceremony: a request that cannot be
/// sent fails the test.
pub trait Sent {
    async fn sent(self) -> awc::ClientResponse;
    async fn status(self) -> u16;
}

impl Sent for awc::ClientRequest {
    async fn sent(self) -> awc::ClientResponse {
        self.send().await.expect("send")
    }
    async fn status(self) -> u16 {
        self.sent().await.status().as_u16()
    }
}

/// A plain awc client (plays the proxy).
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .disable_redirects()
        .finish()
}

/// Sends raw bytes and reads until the peer closes or `wait` passes with no data.
pub fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    stream.write_all(request).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (out, closed)
}

/// Parsed status and headers of every response in a byte stream of bodiless responses.
pub fn responses(bytes: &[u8]) -> Vec<(u16, Vec<(String, String)>)> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for block in text.split("\r\n\r\n").filter(|b| b.starts_with("HTTP/")) {
        let mut lines = block.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        out.push((status, headers));
    }
    out
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
