//! Real servers for the remote-tier tests: `redis-server` (Debian package `redis-server`)
//! and `moto_server` (PyPI `moto[server]`, an S3-compatible server), each started on a free
//! loopback port and killed when dropped. The test binaries that use them run under
//! `harness.rs` (their `mod harness`), which reports a test whose server is missing as
//! ignored (or failed, with `FILE_CACHE_TEST_SERVERS=require`) and names the command that
//! installs it.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which storage engine a server is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Redis,
    S3,
}

impl Kind {
    pub fn parse(name: &str) -> Kind {
        match name {
            "redis" => Kind::Redis,
            "s3" => Kind::S3,
            other => panic!("unknown backend {other}"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Redis => "redis",
            Kind::S3 => "s3",
        }
    }

    /// The server's program.
    pub fn program(self) -> &'static str {
        match self {
            Kind::Redis => "redis-server",
            Kind::S3 => "moto_server",
        }
    }

    /// The command that installs [`Kind::program`].
    pub fn install(self) -> &'static str {
        match self {
            Kind::Redis => "apt-get install redis-server",
            Kind::S3 => "python3 -m pip install 'moto[server]'",
        }
    }
}

pub const BUCKET: &str = "file-cache-test";
pub const PREFIX: &str = "team/cache";

/// A running server on 127.0.0.1.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    /// The port that speaks TLS: beside the plain one for Redis ([`Server::start_tls`]);
    /// the only one, equal to `port`, for S3 over HTTPS ([`Server::start_s3_tls`]).
    pub tls_port: Option<u16>,
    child: Option<Child>,
}

/// A port nothing listens on right now, never handed out before in this process.
///
/// Tests run in parallel, and the kernel may hand the same free port to two of them in a
/// row; two servers racing for one port would leave a test talking to the other's server.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poison| poison.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a loopback port")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}

fn spawn(kind: Kind, args: &[String]) -> Child {
    let program = kind.program();
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => panic!(
            "cannot start `{program}` ({error}): the remote-tier tests need a real server; \
             install it with `{}` (.ci/run does)",
            kind.install()
        ),
    }
}

impl Server {
    pub fn start(kind: Kind) -> Server {
        Server::start_on(kind, free_port())
    }

    pub fn start_on(kind: Kind, port: u16) -> Server {
        Server::launch(kind, port, None)
    }

    /// A Redis server that also speaks TLS on [`Server::tls_port`], with the certificate
    /// and key in `cert` and `key` (PEM files); clients are not asked for certificates.
    /// The plain port stays open for the test's own checks ([`Server::get`]).
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path) -> Server {
        let tls_port = free_port();
        let mut args: Vec<String> = vec!["--tls-port".into(), tls_port.to_string()];
        for (option, file) in [
            ("--tls-cert-file", cert),
            ("--tls-key-file", key),
            ("--tls-ca-cert-file", ca),
        ] {
            args.push(option.into());
            args.push(file.display().to_string());
        }
        args.extend(["--tls-auth-clients".into(), "no".into()]);
        Server::launch(Kind::Redis, free_port(), Some((tls_port, args)))
    }

    /// An S3 server (moto) that speaks HTTPS only, with the certificate and key in `cert`
    /// and `key` (PEM files), which `ca` signed; its bucket is made over HTTPS by Python's
    /// standard library (moto_server is a Python program: where it runs, so does
    /// `python3`).
    pub fn start_s3_tls(cert: &Path, key: &Path, ca: &Path) -> Server {
        let port = free_port();
        let child = spawn(
            Kind::S3,
            &[
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                "-c".into(),
                cert.display().to_string(),
                "-k".into(),
                key.display().to_string(),
            ],
        );
        let mut server = Server {
            kind: Kind::S3,
            port,
            tls_port: Some(port),
            child: Some(child),
        };
        let script = "import ssl, sys, urllib.request as r\n\
             context = ssl.create_default_context(cafile=sys.argv[2])\n\
             request = r.Request(sys.argv[1], method='PUT', data=b'', \
             headers={'Authorization': sys.argv[3]})\n\
             print(r.urlopen(request, context=context, timeout=5).status)\n";
        let url = format!("https://127.0.0.1:{port}/{BUCKET}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                panic!("moto_server exited at start: {status}");
            }
            let made = Command::new("python3")
                .args(["-c", script, &url, &ca.display().to_string(), FAKE_AUTH])
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|out| out.status.success());
            if made {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server over HTTPS did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the server; for Redis, `tls` holds the TLS port and options.
    fn launch(kind: Kind, port: u16, tls: Option<(u16, Vec<String>)>) -> Server {
        let tls_port = tls.as_ref().map(|(tls_port, _)| *tls_port);
        let child = match kind {
            Kind::Redis => {
                let mut args: Vec<String> = vec![
                    "--port".into(),
                    port.to_string(),
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--save".into(),
                    String::new(),
                    "--appendonly".into(),
                    "no".into(),
                ];
                args.extend(tls.into_iter().flat_map(|(_, options)| options));
                spawn(kind, &args)
            }
            Kind::S3 => spawn(
                kind,
                &[
                    "-H".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                ],
            ),
        };
        let mut server = Server {
            kind,
            port,
            tls_port,
            child: Some(child),
        };
        server.wait_ready();
        if kind == Kind::S3 {
            let (status, _) = http(port, "PUT", &format!("/{BUCKET}"), b"");
            assert_eq!(status, 200, "create bucket");
        }
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let hint = match self.tls_port {
                        Some(_) => " (a redis-server built without TLS exits on --tls-port)",
                        None => "",
                    };
                    panic!(
                        "{} server exited at start: {status}{hint}",
                        self.kind.name()
                    );
                }
            }
            let ready = match self.kind {
                Kind::Redis => redis_ping(self.port),
                // A whole HTTP exchange, not a bare connect: the listening socket may be
                // open before the server answers on it.
                Kind::S3 => try_http(self.port, "GET", "/", b"").is_ok(),
            };
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} server did not start",
                self.kind.name()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `FILE_CACHE_REMOTE` and the backend's credentials, for a child's environment.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("FILE_CACHE_REMOTE".to_owned(), self.url())];
        if self.kind == Kind::S3 {
            env.extend(s3_env(self.port));
            if self.tls_port.is_some() {
                for (name, value) in &mut env {
                    if name == "AWS_ENDPOINT_URL" {
                        *value = format!("https://127.0.0.1:{}", self.port);
                    }
                }
            }
        }
        env
    }

    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis => format!("redis://127.0.0.1:{}/0", self.port),
            Kind::S3 => format!("s3://{BUCKET}/{PREFIX}"),
        }
    }

    /// The stored object of one entry (`<function dir>/<key hex>`), read without file_cache.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        match self.kind {
            Kind::Redis => {
                let mut connection = redis_connection(self.port);
                redis::cmd("GET")
                    .arg(format!("file_cache/{name}"))
                    .query(&mut connection)
                    .expect("redis GET")
            }
            Kind::S3 => {
                let (status, body) = http(self.port, "GET", &object_path(name), b"");
                match status {
                    200 => Some(body),
                    404 => None,
                    other => panic!("S3 GET answered {other}"),
                }
            }
        }
    }

    /// Overwrites one entry's object, without file_cache.
    pub fn put(&self, name: &str, bytes: &[u8]) {
        match self.kind {
            Kind::Redis => {
                let mut connection = redis_connection(self.port);
                redis::cmd("SET")
                    .arg(format!("file_cache/{name}"))
                    .arg(bytes)
                    .query::<()>(&mut connection)
                    .expect("redis SET");
            }
            Kind::S3 => {
                let (status, _) = http(self.port, "PUT", &object_path(name), bytes);
                assert_eq!(status, 200, "S3 PUT");
            }
        }
    }

    /// The seconds one entry's key has left to live (Redis `TTL`: -1 for none, -2 for no
    /// such key).
    pub fn ttl(&self, name: &str) -> i64 {
        let mut connection = redis_connection(self.port);
        redis::cmd("TTL")
            .arg(format!("file_cache/{name}"))
            .query(&mut connection)
            .expect("redis TTL")
    }

    /// Closes every client connection but the one asking (Redis only).
    pub fn kill_clients(&self) {
        let mut connection = redis_connection(self.port);
        redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
            .query::<u64>(&mut connection)
            .expect("CLIENT KILL");
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn s3_env(port: u16) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn object_path(name: &str) -> String {
    format!("/{BUCKET}/{PREFIX}/{name}")
}

fn redis_connection(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .expect("connect to the test redis-server")
}

fn redis_ping(port: u16) -> bool {
    redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

/// moto does not check signatures, but treats a request without one as anonymous.
const FAKE_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, \
                         SignedHeaders=host, Signature=0";

/// One plain HTTP/1.1 request to the S3 test server (moto accepts unsigned requests);
/// returns the status and the body.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    try_http(port, method, path, body).expect("HTTP exchange with moto_server")
}

/// [`http`], with a failed or garbled exchange as an error.
fn try_http(port: u16, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let garbled = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Authorization: {FAKE_AUTH}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| garbled("no HTTP response head"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| garbled("no HTTP status"))?;
    let mut body = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = bytes
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&bytes[..line_end])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .expect("chunk size");
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&bytes[start..start + size]);
        bytes = &bytes[start + size + 2..];
    }
}

/// A server that is not one: it accepts connections and then misbehaves in one way.
pub enum Fake {
    /// Reads the request, never answers.
    Silent,
    /// Answers with the start of a value much longer than what it sends, then closes.
    Partial,
}

/// Starts a fake server on a loopback port (a thread that lives as long as the process).
pub fn fake_server(kind: Kind, fake: Fake) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = stream.read(&mut buffer);
            match fake {
                Fake::Silent => held.push(stream),
                Fake::Partial => {
                    let reply: &[u8] = match kind {
                        Kind::Redis => b"$100000\r\nFCACHE\r\n\x01\x00",
                        Kind::S3 => {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: application/octet-stream\r\n\r\nFCACHE\r\n\x01\x00"
                        }
                    };
                    let _ = stream.write_all(reply);
                    // Dropped: the connection closes mid-value.
                }
            }
        }
    });
    port
}
