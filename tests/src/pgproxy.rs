//! A TCP proxy in front of PostgreSQL that records every statement its clients run: the text
//! of each `Query` message and of the prepared statement behind each `Execute` message
//! (PostgreSQL's wire protocol), per connection and in order, BEGIN, COMMIT and `LISTEN`
//! included. Statement budgets and idleness are measured through it, the server under test
//! unchanged. The server must connect without TLS (`sslmode=disable`, which
//! [`CountingProxy::url_for`] adds).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// One statement run: the connection it ran on (numbered in accept order) and its text.
#[derive(Debug, Clone)]
pub struct Executed {
    pub connection: usize,
    pub sql: String,
}

/// The proxy and what went through it.
#[derive(Debug, Clone)]
pub struct CountingProxy {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Executed>>>,
}

impl CountingProxy {
    /// Starts a proxy forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                connection += 1;
                let (log, id) = (shared.clone(), connection);
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                    });
                    let _ = forward(&mut client_read, &mut server_write, id, &log).await;
                });
            }
        });
        CountingProxy { addr, log }
    }

    /// `url` (a PostgreSQL URL) pointed at this proxy, without TLS.
    pub fn url_for(&self, url: &str) -> String {
        let mut parsed = reqwest::Url::parse(url).expect("a PostgreSQL URL");
        parsed.set_host(Some("127.0.0.1")).expect("a host");
        parsed.set_port(Some(self.addr.port())).expect("a port");
        parsed.query_pairs_mut().append_pair("sslmode", "disable");
        parsed.to_string()
    }

    /// The upstream `host:port` of a PostgreSQL URL.
    pub fn upstream_of(url: &str) -> String {
        let parsed = reqwest::Url::parse(url).expect("a PostgreSQL URL");
        format!("{}:{}", parsed.host_str().unwrap_or("127.0.0.1"), parsed.port().unwrap_or(5432))
    }

    /// How many statements ran so far.
    pub fn count(&self) -> usize {
        self.log.lock().expect("the log").len()
    }

    /// The statements run since the `from`-th.
    pub fn since(&self, from: usize) -> Vec<Executed> {
        self.log.lock().expect("the log")[from..].to_vec()
    }
}

/// A NUL-terminated string at the start of `bytes`, and the rest.
fn cstr(bytes: &[u8]) -> (String, &[u8]) {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    (String::from_utf8_lossy(&bytes[..end]).into_owned(), bytes.get(end + 1..).unwrap_or(&[]))
}

/// Forwards a client's messages to the server, logging statements; the first message (the
/// startup message) has no type byte.
async fn forward(from: &mut OwnedReadHalf, to: &mut OwnedWriteHalf, connection: usize, log: &Mutex<Vec<Executed>>) -> std::io::Result<()> {
    let mut length = [0u8; 4];
    from.read_exact(&mut length).await?;
    let mut startup = vec![0u8; (u32::from_be_bytes(length) as usize).saturating_sub(4)];
    from.read_exact(&mut startup).await?;
    to.write_all(&length).await?;
    to.write_all(&startup).await?;
    // Prepared statements by name, and the statement each portal is bound to.
    let (mut prepared, mut portals) = (HashMap::<String, String>::new(), HashMap::<String, String>::new());
    loop {
        let mut header = [0u8; 5];
        from.read_exact(&mut header).await?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        from.read_exact(&mut body).await?;
        match header[0] {
            b'Q' => log.lock().expect("the log").push(Executed { connection, sql: cstr(&body).0 }),
            b'P' => {
                let (name, rest) = cstr(&body);
                prepared.insert(name, cstr(rest).0);
            }
            b'B' => {
                let (portal, rest) = cstr(&body);
                portals.insert(portal, cstr(rest).0);
            }
            b'E' => {
                let portal = cstr(&body).0;
                let sql = portals.get(&portal).and_then(|s| prepared.get(s)).cloned().unwrap_or_default();
                log.lock().expect("the log").push(Executed { connection, sql });
            }
            _ => {}
        }
        to.write_all(&header).await?;
        to.write_all(&body).await?;
    }
}
