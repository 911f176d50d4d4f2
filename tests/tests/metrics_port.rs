//! The metrics port under a local flood of idle connections (issue 10). Seen in
//! the field: connections that never send used up the tracer's 1,024
//! descriptors, the accept loop spun a core, /healthz went silent and rotation
//! failed with EMFILE. Here the tracer gets a small limit (prlimit) and four
//! times as many connections; it must keep answering, stay off the CPU, keep
//! tracing, time out idle and trickling clients, and count what it closed.
use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use tracer_tests::{Tracer, argv, exec_storm, is_exec, marker};

/// The tracer's hard open-file limit here; its soft limit starts lower.
const NOFILE: u64 = 256;
/// Its connection cap for that limit (metrics::connection_cap: an eighth).
const CAP: u64 = NOFILE / 8;
const FLOOD: usize = 4 * NOFILE as usize;
/// The server's whole-request timeout (metrics::REQUEST_TIMEOUT).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The tracer's log without colour codes (the subscriber writes ANSI even to a file).
fn plain_log(tracer: &Tracer) -> String {
    let log = tracer.stderr_log();
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ ... letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// GET with every step bounded: (status, whole response).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let code = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, resp))
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Poll /metrics until `ok` holds for it (or fail after `within`).
fn metrics_until(addr: SocketAddr, within: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = http_get(addr, "/metrics")
            .map(|(_, t)| t)
            .unwrap_or_default();
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "condition not met:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// utime + stime of a process (all threads), in clock ticks.
fn cpu_ticks(stat_path: &str) -> u64 {
    let stat = std::fs::read_to_string(stat_path).expect("read stat");
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// The stat file of the tracer's thread named `name`.
fn thread_stat(pid: u32, name: &str) -> String {
    let dir = format!("/proc/{pid}/task");
    for t in std::fs::read_dir(&dir).expect("read task dir").flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            return t.path().join("stat").to_string_lossy().into_owned();
        }
    }
    panic!("no thread {name} in {dir}");
}

/// Share of one core used over `window`, from two reads of a stat file.
fn cpu_share(stat_path: &str, window: Duration) -> f64 {
    let hz = 100.0; // USER_HZ on x86 Linux
    let (t0, c0) = (Instant::now(), cpu_ticks(stat_path));
    std::thread::sleep(window);
    (cpu_ticks(stat_path) - c0) as f64 / hz / t0.elapsed().as_secs_f64()
}

/// This test holds more sockets than a default 1,024 soft limit may allow.
fn raise_own_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain rlimit calls on our own process with a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    assert!(
        lim.rlim_cur > FLOOD as u64 + 64,
        "need {FLOOD} sockets, hard limit {}",
        lim.rlim_max
    );
}

#[test]
fn idle_connection_flood_neither_starves_nor_silences_the_tracer() {
    raise_own_nofile();
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let nofile = format!("--nofile={}:{NOFILE}", NOFILE - 56);
    let tracer = Tracer::start_wrapped(
        &["prlimit", &nofile, "--"],
        &["--metrics-addr", &addr.to_string()],
        &[],
    );
    let log = plain_log(&tracer);
    // Start-up raised the soft limit to the hard one and sized the cap from it.
    assert!(
        log.contains(&format!("before={} after={NOFILE}", NOFILE - 56)),
        "{log}"
    );
    assert!(log.contains(&format!("max_connections={CAP}")), "{log}");

    // Connections that never send a byte, four times the tracer's descriptors.
    let mut idle = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect #{} failed: {e}", idle.len()),
        }
    }

    // Still answering, at once, while they are held.
    let t = Instant::now();
    let (code, _) = http_get(addr, "/healthz").expect("/healthz during the flood");
    assert_eq!(code, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Off the CPU: a spinning accept loop would show as ~100% of a core. The
    // HTTP thread is measured on its own, strictly (the whole process also
    // handles every exec on this shared host, so it gets a looser bound).
    let http = thread_stat(tracer.pid(), "metrics-http");
    let used = cpu_share(&http, Duration::from_secs(2));
    assert!(
        used < 0.1,
        "metrics-http used {:.0}% of a core",
        used * 100.0
    );
    let process = format!("/proc/{}/stat", tracer.pid());
    let used = cpu_share(&process, Duration::from_secs(2));
    assert!(used < 0.5, "tracer used {:.0}% of a core", used * 100.0);

    // Tracing goes on, into the output file.
    let mark = marker("ports");
    exec_storm(20, &mark);
    tracer.wait_for(20, |e| {
        is_exec(e) && argv(e) == ["/bin/true", mark.as_str()]
    });

    // What was closed to stay under the cap is counted and logged.
    let text = metrics_until(addr, Duration::from_secs(10), |t| {
        metric(t, "tracer_http_connections_total{outcome=\"evicted\"}") >= FLOOD as u64 - CAP
    });
    assert!(
        metric(&text, "tracer_http_connections_open") <= CAP,
        "{text}"
    );
    assert_eq!(metric(&text, "tracer_open_files_limit"), NOFILE, "{text}");
    let log = plain_log(&tracer);
    assert!(
        log.contains("metrics port: too many connections; closing the oldest"),
        "{log}"
    );

    // The newest idle connections were not evicted: the timeout closes them.
    let newest = idle.last_mut().expect("connections");
    newest
        .set_read_timeout(Some(REQUEST_TIMEOUT * 3))
        .expect("read timeout");
    let mut buf = [0u8; 64];
    match newest.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("idle connection not closed by the tracer: {other:?}"),
    }
    metrics_until(addr, Duration::from_secs(10), |t| {
        metric(t, "tracer_http_connections_total{outcome=\"timed_out\"}") >= 1
    });

    // A client trickling a request, one byte at a time, is cut off too.
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut slow = TcpStream::connect(addr).expect("connect");
    let started = Instant::now();
    let mut closed_after = None;
    for b in request {
        if slow.write_all(&[*b]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        // Closed yet? A non-blocking read says so without waiting.
        slow.set_nonblocking(true).expect("nonblocking");
        let r = slow.read(&mut buf);
        slow.set_nonblocking(false).expect("blocking");
        match r {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(n) => panic!(
                "trickled request answered: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
        }
        // The trickle's pace: the whole request would take about 8 s.
        std::thread::sleep(Duration::from_millis(200));
    }
    let closed_after = closed_after.expect("trickling client never cut off");
    assert!(
        closed_after >= REQUEST_TIMEOUT - Duration::from_millis(500)
            && closed_after < REQUEST_TIMEOUT * 2,
        "cut off after {closed_after:?}"
    );

    // Once the flood is gone the port is back to normal.
    drop(idle);
    let text = metrics_until(addr, Duration::from_secs(10), |t| {
        metric(t, "tracer_http_connections_open") <= 1
    });
    assert!(text.contains("tracer_events_total"), "{text}");
    let (code, _) = http_get(addr, "/metrics").expect("/metrics after the flood");
    assert_eq!(code, 200);
}
