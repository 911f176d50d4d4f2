//! `destination.name`: a connect after a real DNS lookup (glibc's resolver,
//! through dnsmasq on a loopback address, port 53) carries the name that was
//! asked for, and the CNAME target when the answer had one; a process in
//! another network namespace connecting to the same address gets no name, and
//! neither does an answer no query asked for.
use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{Tracer, check_schema, marker, output_within, require_tools, scratch_dir};

/// dnsmasq answering for `records` (`--host-record`/`--cname` arguments) on
/// `addr`:53, nothing else (no upstream, no /etc/hosts). Killed on drop.
struct Dnsmasq {
    child: Child,
    pub addr: String,
    log: PathBuf,
}

impl Dnsmasq {
    fn start(dir: &Path, records: &[String]) -> Dnsmasq {
        let tools = require_tools(&["dnsmasq", "unshare", "mount"]);
        let log = dir.join("dnsmasq.log");
        // A loopback address of its own per test process, so parallel runs
        // (and a resolver on 127.0.0.53) never share a port 53.
        let pid = std::process::id();
        let addr = format!("127.53.{}.{}", (pid >> 8) & 0xff, (pid & 0xff).max(1));
        let child = Command::new(&tools[0])
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--port=53",
                "--user=root",
                "--pid-file=",
                "--log-facility=-",
                "--log-queries",
            ])
            .arg(format!("--listen-address={addr}"))
            .args(records)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("dnsmasq log"))
            .spawn()
            .unwrap_or_else(|e| panic!("dnsmasq: {e} (run `cargo xtask setup`)"));
        let mut d = Dnsmasq { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = fs::read_to_string(&d.log).unwrap_or_default();
            if text.contains("started, version") {
                break;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("dnsmasq exited ({st}):\n{text}");
            }
            assert!(Instant::now() < deadline, "dnsmasq did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP listener on `ip` (any free port), accepting in the background.
fn listen(ip: &str) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    let port = l.local_addr().expect("local_addr").port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    port
}

/// python3 resolving `name` through glibc with `resolv` as /etc/resolv.conf
/// (bind-mounted in a private mount namespace), then connecting to what it
/// got on `port`. `argv_mark` lands in its argv. Returns the address.
fn resolve_and_connect(resolv: &Path, name: &str, port: u16, argv_mark: &str) -> String {
    let script = format!(
        "import socket, sys\n\
         ip = socket.getaddrinfo('{name}', {port}, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]\n\
         socket.create_connection((ip, {port}), timeout=10).close()\n\
         print(ip)\n"
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$1\" /etc/resolv.conf && shift && exec python3 -c \"$@\"")
        .arg("sh")
        .arg(resolv)
        .arg(script)
        .arg(argv_mark);
    let out = output_within(&mut cmd, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "lookup of {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn connect_of<'a>(events: &'a [Value], mark: &str, ip: &str, port: u16) -> Option<&'a Value> {
    events.iter().find(|e| {
        e["kind"] == "connect"
            && e["action"]["method"] == "connect"
            && e["action"]["destination"]["ip"] == ip
            && e["action"]["destination"]["port"] == port
            && tracer_tests::executor_argv(e).iter().any(|a| a == mark)
    })
}

fn wait_connect(tracer: &Tracer, mark: &str, ip: &str, port: u16) -> Value {
    let mark = mark.to_owned();
    let ip = ip.to_owned();
    let found = tracer.wait_for(1, move |e| {
        connect_of(std::slice::from_ref(e), &mark, &ip, port).is_some()
    });
    found[0].clone()
}

#[test]
fn connect_after_a_lookup_carries_the_name() {
    let dir = scratch_dir();
    let tag = marker("dns").to_ascii_lowercase();
    let name = format!("svc-{tag}.example");
    let alias = format!("alias-{tag}.example");
    // Addresses of this test's own: no other process's lookup names them.
    let pid = std::process::id();
    let ip = format!("127.88.{}.{}", (pid >> 8) & 0xff, (pid & 0xff).max(1));
    let tracer = Tracer::start(&[]);
    let dns = Dnsmasq::start(
        &dir,
        &[
            format!("--host-record={name},{ip}"),
            format!("--cname={alias},{name}"),
        ],
    );
    let resolv = dir.join("resolv.conf");
    fs::write(
        &resolv,
        format!("nameserver {}\noptions attempts:2\n", dns.addr),
    )
    .expect("resolv");
    let port = listen(&ip);

    // A name, directly.
    let mark = marker("dns-direct");
    let got = resolve_and_connect(&resolv, &name, port, &mark);
    assert_eq!(
        got,
        ip,
        "dnsmasq log:\n{}",
        fs::read_to_string(&dns.log).unwrap_or_default()
    );
    let ev = wait_connect(&tracer, &mark, &ip, port);
    let dest = &ev["action"]["destination"];
    assert_eq!(dest["name"], name.as_str(), "{ev}");
    assert!(dest.get("cname").is_none(), "{ev}");

    // Through a CNAME: the name asked for, and where it led.
    let mark = marker("dns-cname");
    assert_eq!(resolve_and_connect(&resolv, &alias, port, &mark), ip);
    let ev = wait_connect(&tracer, &mark, &ip, port);
    let dest = &ev["action"]["destination"];
    assert_eq!(dest["name"], alias.as_str(), "{ev}");
    assert_eq!(dest["cname"], name.as_str(), "{ev}");

    // Another network namespace: the same address, no lookup there, no name.
    let mark = marker("dns-otherns");
    let script = format!(
        "import socket\n\
         s = socket.socket()\n\
         try:\n\
         \x20   s.connect(('{ip}', {port}))\n\
         except OSError:\n\
         \x20   pass\n"
    );
    let out = output_within(
        Command::new("unshare")
            .args(["--net", "python3", "-c"])
            .arg(script)
            .arg(&mark),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = wait_connect(&tracer, &mark, &ip, port);
    assert!(
        ev["action"]["destination"].get("name").is_none(),
        "a name from the host's lookups in another namespace: {ev}"
    );
    check_schema(&tracer.output);
    drop(dns);
    let _ = fs::remove_dir_all(&dir);
}

/// An answer nobody asked for (a process sending itself a "response" from
/// port 53 on a socket that did connect there, but sent no query) names nothing.
#[test]
fn unsolicited_answers_name_nothing() {
    let pid = std::process::id();
    let fake_server = format!("127.54.{}.{}", (pid >> 8) & 0xff, (pid & 0xff).max(1));
    let ip = format!("127.89.{}.{}", (pid >> 8) & 0xff, (pid & 0xff).max(1));
    let tracer = Tracer::start(&[]);
    let port = listen(&ip);
    let mark = marker("dns-forged");
    let [a, b, c, d]: [u8; 4] = ip
        .split('.')
        .map(|p| p.parse().expect("octet"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("4 octets");
    // id 0x4242, one question (forged.example A), one answer (pointer to it).
    let script = format!(
        "import socket, struct\n\
         srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         srv.bind(('{fake_server}', 53))\n\
         cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         cli.connect(('{fake_server}', 53))\n\
         q = b'\\x06forged\\x07example\\x00' + struct.pack('>HH', 1, 1)\n\
         msg = struct.pack('>HHHHHH', 0x4242, 0x8180, 1, 1, 0, 0) + q\n\
         msg += b'\\xc0\\x0c' + struct.pack('>HHIH', 1, 1, 300, 4) + bytes([{a}, {b}, {c}, {d}])\n\
         srv.sendto(msg, cli.getsockname())\n\
         cli.recv(2048)\n\
         socket.create_connection(('{ip}', {port}), timeout=10).close()\n"
    );
    let out = output_within(
        Command::new("python3").arg("-c").arg(script).arg(&mark),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = wait_connect(&tracer, &mark, &ip, port);
    assert!(
        ev["action"]["destination"].get("name").is_none(),
        "an unsolicited answer named the destination: {ev}"
    );
}
