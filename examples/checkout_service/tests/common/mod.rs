//! A loopback server and a small blocking HTTP/1.1 client (keep-alive, Content-Length or
//! chunked bodies) for the tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use checkout_service::{App, router, wall_clock};
use coupons::repository::Repository;
use coupons::service::Service;
use serde_json::Value;

/// A service on a loopback port, running on its own thread until the process ends.
pub fn start<R: Repository + 'static>(store: R, demo: bool) -> (SocketAddr, Arc<App<R>>) {
    let mut app = App::new(Service::new(store), wall_clock());
    if demo {
        app = app.with_offer_arms(checkout_service::demo::offer_arms().expect("arms"));
    }
    let app = Arc::new(app);
    if demo {
        checkout_service::demo::seed(&app, app.now()).expect("demo seed");
    }
    (serve(Arc::clone(&app)), app)
}

/// Serves `app` on a loopback port, on its own thread until the process ends.
pub fn serve<R: Repository + 'static>(app: Arc<App<R>>) -> SocketAddr {
    let served = app;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            axum::serve(listener, router(served)).await.expect("serve");
        });
    });
    rx.recv().expect("server address")
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an error body: status, kind and (if given) field.
    pub fn assert_error(&self, status: u16, kind: &str, field: Option<&str>) -> Value {
        let v = self.json();
        assert_eq!(self.status, status, "{v}");
        let e = &v["error"];
        assert_eq!(e["kind"], kind, "{v}");
        assert_eq!(e["status"], status, "{v}");
        assert!(e["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
        if let Some(f) = field {
            assert_eq!(e["field"], f, "{v}");
        }
        v
    }
}

/// One keep-alive connection.
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    pub fn get(&mut self, path: &str) -> Resp {
        self.send("GET", path, &[], b"")
    }

    pub fn post(&mut self, path: &str, key: Option<&str>, body: &Value) -> Resp {
        let body = serde_json::to_vec(body).expect("json");
        self.post_raw(path, key, &body)
    }

    pub fn post_raw(&mut self, path: &str, key: Option<&str>, body: &[u8]) -> Resp {
        let mut h = vec![("Content-Type", "application/json")];
        if let Some(k) = key {
            h.push(("Idempotency-Key", k));
        }
        self.send("POST", path, &h, body)
    }

    /// A POST with an `Acting-Party` header.
    pub fn post_as(&mut self, path: &str, key: &str, actor: &str, body: &Value) -> Resp {
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).expect("json")
        };
        let h = [
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
            ("Acting-Party", actor),
        ];
        self.send("POST", path, &h, &body)
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        for attempt in 0..2 {
            match self.try_send(method, path, headers, body) {
                Ok(r) => return r,
                Err(e) if attempt == 0 => {
                    self.conn = None; // the server closed an idle connection: reconnect once
                    let _ = e;
                }
                Err(e) => panic!("{method} {path}: {e}"),
            }
        }
        unreachable!()
    }

    fn try_send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Resp> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::new(s));
        }
        let conn = self.conn.as_mut().expect("connected");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let s = conn.get_mut();
        s.write_all(req.as_bytes())?;
        s.write_all(body)?;
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if let Some(len) = find("content-length") {
            let len: usize = len.parse().map_err(std::io::Error::other)?;
            body.resize(len, 0);
            conn.read_exact(&mut body)?;
        } else if find("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                line.clear();
                conn.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)?;
                let mut chunk = vec![0; n + 2];
                conn.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        if find("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
            self.conn = None;
        }
        Ok(Resp {
            status,
            headers,
            body,
        })
    }
}
