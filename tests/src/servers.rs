//! Debian's Go servers ([`crate::debian`]) run for tests: a node exporter and a one-member
//! etcd on free loopback ports (killed on drop), clients that load them, temp directories.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::process::{GOTRACEBACK_ALL, Spawned};

/// How long a server gets to start answering.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A running node exporter on a free loopback port, answering `/metrics`.
pub struct NodeExporter {
    /// The server process (killed on drop).
    pub p: Spawned,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl NodeExporter {
    /// Starts it and waits until `/metrics` answers.
    pub fn start(bin: &Path) -> Self {
        let port = crate::debian::free_port().expect("free port");
        let p = Spawned::spawn(
            bin,
            [
                format!("--web.listen-address=127.0.0.1:{port}"),
                // A private, empty directory: no files from the host's textfile collector.
                "--no-collector.textfile".to_owned(),
            ],
            &[GOTRACEBACK_ALL],
        )
        .expect("spawn node exporter");
        let ne = Self { p, port };
        ne.wait_serving();
        ne
    }

    /// Waits until `/metrics` answers (panics after a timeout).
    pub fn wait_serving(&self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match crate::debian::http_get(self.port, "/metrics") {
                Ok((200, body)) if body.contains("node_cpu_seconds_total") => return,
                r if Instant::now() > deadline => panic!(
                    "node exporter never served /metrics: {r:?}\n{}",
                    self.p.stderr()
                ),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// A single-member etcd on free loopback ports with a private data directory.
pub struct Etcd {
    /// The server process (killed on drop).
    pub p: Spawned,
    /// Its client port on 127.0.0.1 (HTTP/JSON gateway).
    pub port: u16,
    _dir: TempDir,
}

impl Etcd {
    /// Starts it and waits until `/health` says true.
    pub fn start(bin: &Path) -> Self {
        let dir = TempDir::new("etcd");
        let (client, peer) = (
            crate::debian::free_port().unwrap(),
            crate::debian::free_port().unwrap(),
        );
        let c = format!("http://127.0.0.1:{client}");
        let pe = format!("http://127.0.0.1:{peer}");
        let p = Spawned::spawn(
            bin,
            [
                "--data-dir",
                dir.0.to_str().unwrap(),
                "--listen-client-urls",
                &c,
                "--advertise-client-urls",
                &c,
                "--listen-peer-urls",
                &pe,
                "--initial-advertise-peer-urls",
                &pe,
                "--initial-cluster",
                &format!("default={pe}"),
            ],
            &[GOTRACEBACK_ALL],
        )
        .expect("spawn etcd");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match crate::debian::http_get(client, "/health") {
                Ok((200, body)) if body.contains("true") => break,
                r if Instant::now() > deadline => {
                    panic!("etcd never became healthy: {r:?}\n{}", p.stderr())
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        Self {
            p,
            port: client,
            _dir: dir,
        }
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(what: &str) -> Self {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "gtrace-realworld-{what}-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An etcd v3 put through its HTTP/JSON gateway.
pub fn put(port: u16, key: &str, value: &str) -> std::io::Result<String> {
    use std::io::Read as _;
    let b64 = |s: &str| {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in s.as_bytes().chunks(3) {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= c.len() {
                    T[(n >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        out
    };
    let body = format!(r#"{{"key":"{}","value":"{}"}}"#, b64(key), b64(value));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "POST /v3/kv/put HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Clients scraping node exporter's `/metrics` in a loop until stopped.
pub struct Scrapers {
    stop: Arc<AtomicBool>,
    /// Scrapes completed so far.
    pub done: Arc<AtomicU64>,
    failed: Arc<std::sync::Mutex<Option<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Scrapers {
    /// `clients` threads scraping `127.0.0.1:port/metrics`.
    pub fn start(port: u16, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::Mutex::new(None));
        let threads = (0..clients)
            .map(|_| {
                let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match crate::debian::http_get(port, "/metrics") {
                            Ok((200, _)) => {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            r => {
                                *failed.lock().unwrap() = Some(format!("{r:?}"));
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            done,
            failed,
            threads,
        }
    }

    /// Stops the clients; returns how many scrapes completed. Panics if one failed.
    pub fn stop(mut self) -> u64 {
        self.join();
        if let Some(e) = self.failed.lock().unwrap().take() {
            panic!("a scrape failed: {e}");
        }
        self.done.load(Ordering::Relaxed)
    }

    /// Stops the clients of a server that was made to exit (their errors are expected).
    pub fn abandon(mut self) {
        self.join();
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().expect("scrape client");
        }
    }
}

impl Drop for Scrapers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
