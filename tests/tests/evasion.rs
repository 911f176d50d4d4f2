//! Every inet connect is seen, whatever path it takes (issue: attribution an
//! unprivileged workload cannot evade). Each test makes a connect the way an
//! evasive workload would (io_uring, TCP Fast Open, a 32-bit compat syscall, a
//! non-blocking socket, an unconnected datagram) and asserts on the event: the
//! destination, the real outcome, and how it was seen. docs/threat-model.md
//! names each test.
use std::{
    mem::size_of,
    net::{Ipv4Addr, TcpListener, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    time::Duration,
};

use serde_json::Value;
use tracer_tests::Tracer;

/// The connect event of this test process to `port` (any outcome).
fn connect_to(tracer: &Tracer, port: u16, method: &str) -> Value {
    tracer
        .wait_for(1, |e| {
            e["kind"] == "connect"
                && e["action"]["destination"]["port"] == port
                && e["action"]["method"] == method
                && e["executor"]["pid"] == std::process::id()
        })
        .remove(0)
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

fn sockaddr_in(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn socket(domain: i32, ty: i32) -> OwnedFd {
    // SAFETY: plain syscall; the descriptor is owned from here on.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a fresh descriptor (checked above) that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn assert_outcome(e: &Value, outcome: &str, error: Option<&str>, from: &str, in_syscall: bool) {
    let a = &e["action"];
    assert_eq!(a["outcome"], outcome, "{e:#}");
    assert_eq!(a["error"].as_str(), error, "{e:#}");
    assert_eq!(a["outcome_from"], from, "{e:#}");
    assert_eq!(a["in_syscall"], in_syscall, "{e:#}");
    assert!(a["socket_cookie"].as_u64().unwrap_or(0) > 0, "{e:#}");
}

fn io_uring_connect(fd: RawFd, addr: &libc::sockaddr_in) -> i32 {
    use io_uring::{IoUring, opcode, types};
    let mut ring = IoUring::new(4).expect("io_uring_setup (io_uring disabled by sysctl?)");
    let sqe = opcode::Connect::new(
        types::Fd(fd),
        (addr as *const libc::sockaddr_in).cast(),
        size_of::<libc::sockaddr_in>() as libc::socklen_t,
    )
    .build()
    .user_data(7);
    // SAFETY: `addr` outlives the submission, which completes before we return.
    unsafe { ring.submission().push(&sqe).expect("queue the connect") };
    ring.submit_and_wait(1).expect("io_uring_enter");
    let cqe = ring.completion().next().expect("a completion");
    cqe.result()
}

#[test]
fn io_uring_connect_is_seen_with_its_outcome() {
    let tracer = Tracer::start(&[]);
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = l.local_addr().expect("addr").port();
    let s = socket(libc::AF_INET, libc::SOCK_STREAM);
    assert_eq!(
        io_uring_connect(s.as_raw_fd(), &sockaddr_in(Ipv4Addr::LOCALHOST, port)),
        0
    );
    let e = connect_to(&tracer, port, "connect");
    assert_outcome(&e, "success", None, "socket", false);
    assert_eq!(e["action"]["source"]["ip"], "127.0.0.1", "{e:#}");

    let closed = closed_port();
    let s = socket(libc::AF_INET, libc::SOCK_STREAM);
    let r = io_uring_connect(s.as_raw_fd(), &sockaddr_in(Ipv4Addr::LOCALHOST, closed));
    assert_eq!(r, -libc::ECONNREFUSED);
    let e = connect_to(&tracer, closed, "connect");
    assert_outcome(&e, "failure", Some("ECONNREFUSED"), "socket", false);
}

#[test]
fn tcp_fast_open_connect_is_seen() {
    let tracer = Tracer::start(&[]);
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = l.local_addr().expect("addr").port();
    let s = socket(libc::AF_INET, libc::SOCK_STREAM);
    let addr = sockaddr_in(Ipv4Addr::LOCALHOST, port);
    // SAFETY: valid buffer and address for the call's duration.
    let n = unsafe {
        libc::sendto(
            s.as_raw_fd(),
            b"hello".as_ptr().cast(),
            5,
            libc::MSG_FASTOPEN,
            (&addr as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert!(
        n >= 0,
        "sendto(MSG_FASTOPEN): {}",
        std::io::Error::last_os_error()
    );
    let e = connect_to(&tracer, port, "connect");
    assert_outcome(&e, "success", None, "socket", false);
}

/// A page below 4 GiB, where the 32-bit ABI can point; unmapped on drop.
#[cfg(target_arch = "x86_64")]
struct LowPage(*mut u8);

#[cfg(target_arch = "x86_64")]
impl LowPage {
    fn new() -> LowPage {
        // SAFETY: an anonymous private mapping, owned by the value.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED, "mmap MAP_32BIT");
        LowPage(page.cast())
    }

    /// Write `bytes` at `offset`; returns their 32-bit address.
    fn put(&self, offset: usize, bytes: &[u8]) -> u32 {
        assert!(offset + bytes.len() <= 4096);
        // SAFETY: inside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.0.add(offset), bytes.len()) };
        (self.0 as usize + offset) as u32
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for LowPage {
    fn drop(&mut self) {
        // SAFETY: our mapping, unmapped once.
        unsafe { libc::munmap(self.0.cast(), 4096) };
    }
}

/// A syscall through the 32-bit table (`int 0x80`) from this 64-bit process:
/// the native syscall tracepoints never see it.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32, a: u32, b: u32, c: u32) -> i64 {
    let mut ret = i64::from(nr);
    // SAFETY: an i386 syscall with the given arguments; rbx is LLVM's own, so
    // the first argument is swapped in and out around the call.
    unsafe {
        std::arch::asm!(
            "xchg rbx, {a}",
            "int 0x80",
            "xchg rbx, {a}",
            a = inout(reg) u64::from(a) => _,
            inlateout("rax") ret,
            in("rcx") u64::from(b),
            in("rdx") u64::from(c),
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
        );
    }
    // The kernel returns a 32-bit value.
    i64::from(ret as i32)
}

#[cfg(target_arch = "x86_64")]
fn require_ia32(ret: i64) {
    assert!(
        ret != -i64::from(libc::ENOSYS),
        "this kernel runs without IA-32 emulation: the compat path cannot be tested here"
    );
}

/// i386 connect(fd, addr, len).
#[cfg(target_arch = "x86_64")]
fn compat_connect(fd: RawFd, ip: Ipv4Addr, port: u16) -> i64 {
    let page = LowPage::new();
    let addr = sockaddr_in(ip, port);
    // SAFETY: viewing a plain C struct as its bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&addr as *const libc::sockaddr_in).cast::<u8>(),
            size_of::<libc::sockaddr_in>(),
        )
    };
    let at = page.put(0, bytes);
    int80(362, fd as u32, at, size_of::<libc::sockaddr_in>() as u32)
}

/// A failed exec through the 32-bit table (i386 execve, number 11, whose
/// native twin is munmap): reported with its path, argv and errno.
#[cfg(target_arch = "x86_64")]
#[test]
fn compat_syscall_failed_exec_is_seen() {
    let tracer = Tracer::start(&["--compat-exec-probes"]);
    let mark = tracer_tests::marker("compat-exec");
    let path = format!("/nonexistent/{mark}\0");
    let page = LowPage::new();
    let file = page.put(0, path.as_bytes());
    let arg1 = page.put(512, b"--from-int80\0");
    let argv: Vec<u8> = [file, arg1, 0]
        .iter()
        .flat_map(|p| p.to_le_bytes())
        .collect();
    let argv_at = page.put(1024, &argv);
    let r = int80(11, file, argv_at, 0);
    require_ia32(r);
    assert_eq!(r, -i64::from(libc::ENOENT), "execve through int 0x80");
    let e = tracer
        .wait_for(1, |e| {
            e["kind"] == "exec"
                && e["action"]["binary"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(&mark)
        })
        .remove(0);
    assert_eq!(e["action"]["outcome"], "failure", "{e:#}");
    assert_eq!(e["action"]["error"], "ENOENT", "{e:#}");
    assert_eq!(
        e["action"]["argv"],
        serde_json::json!([format!("/nonexistent/{mark}"), "--from-int80"]),
        "{e:#}"
    );
    assert_eq!(e["executor"]["pid"], std::process::id(), "{e:#}");
    // A failing native munmap (also number 11) is not an exec.
    assert_eq!(
        // SAFETY: an unaligned address: EINVAL, nothing unmapped.
        unsafe { libc::munmap(std::ptr::dangling_mut::<u8>().wrapping_add(1).cast(), 4096) },
        -1
    );
    tracer.settle();
    let n = tracer
        .events()
        .iter()
        .filter(|e| e["kind"] == "exec" && e["executor"]["pid"] == std::process::id())
        .count();
    assert_eq!(n, 1, "one failed exec, and no munmap taken for one");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn compat_syscall_connect_is_seen() {
    let tracer = Tracer::start(&[]);
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = l.local_addr().expect("addr").port();
    let s = socket(libc::AF_INET, libc::SOCK_STREAM);
    let r = compat_connect(s.as_raw_fd(), Ipv4Addr::LOCALHOST, port);
    require_ia32(r);
    assert_eq!(r, 0, "int 0x80 connect");
    let e = connect_to(&tracer, port, "connect");
    assert_outcome(&e, "success", None, "socket", false);
}

#[test]
fn non_blocking_connect_reports_its_real_outcome() {
    let tracer = Tracer::start(&[]);
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = l.local_addr().expect("addr").port();
    let closed = closed_port();
    for (p, outcome, error) in [
        (port, "success", None),
        (closed, "failure", Some("ECONNREFUSED")),
    ] {
        let s = socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK);
        let addr = sockaddr_in(Ipv4Addr::LOCALHOST, p);
        // SAFETY: valid address for the call's duration.
        let r = unsafe {
            libc::connect(
                s.as_raw_fd(),
                (&addr as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        let err = std::io::Error::last_os_error().raw_os_error();
        assert!(r == 0 || err == Some(libc::EINPROGRESS), "connect: {err:?}");
        // Poll it the way event loops do: connect again until it is decided.
        // Repeats are not new actions and must not become events.
        for _ in 0..3 {
            // SAFETY: as above.
            unsafe {
                libc::connect(
                    s.as_raw_fd(),
                    (&addr as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            std::thread::sleep(Duration::from_millis(20));
        }
        let e = connect_to(&tracer, p, "connect");
        assert_outcome(&e, outcome, error, "socket", true);
    }
    tracer.settle();
    let n = tracer
        .events()
        .iter()
        .filter(|e| e["kind"] == "connect" && e["action"]["destination"]["port"] == port)
        .count();
    assert_eq!(n, 1, "one connect, however often it was polled");
}

#[test]
fn unconnected_datagrams_are_reported_once_per_destination_and_capped() {
    let tracer = Tracer::start(&["--loss-interval", "200"]);
    let sink = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = sink.local_addr().expect("addr").port();
    let u = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    for ip in ["127.0.0.1", "127.0.0.1", "127.0.0.2"] {
        u.send_to(b"x", (ip, port)).expect("sendto");
    }
    let sends = |port: u16| {
        move |e: &Value| {
            e["kind"] == "connect"
                && e["action"]["method"] == "sendmsg"
                && e["action"]["destination"]["port"] == port
                && e["executor"]["pid"] == std::process::id()
        }
    };
    let got = tracer.wait_for(2, sends(port));
    let cookie = got[0]["action"]["socket_cookie"].clone();
    for e in &got {
        assert_eq!(e["action"]["protocol"], "udp", "{e:#}");
        assert_eq!(e["action"]["in_syscall"], false, "{e:#}");
        assert_eq!(e["action"]["outcome"], "unknown", "{e:#}");
        assert_eq!(e["action"]["socket_cookie"], cookie, "{e:#}");
    }

    // A scan from one socket: reported up to the per-socket cap, the rest counted.
    let scan = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let scan_port = closed_port();
    for last in 1..=80u8 {
        let _ = scan.send_to(b"x", (Ipv4Addr::new(127, 0, 1, last), scan_port));
    }
    tracer.wait_for(64, sends(scan_port));
    let loss = tracer.wait_for(1, |e| {
        e["kind"] == "loss" && e["lost"]["sends_unreported"].as_u64().unwrap_or(0) > 0
    });
    assert!(
        loss[0]["lost"]["sends_unreported"].as_u64().unwrap_or(0) >= 16,
        "{:#}",
        loss[0]
    );
    tracer.settle();
    let all = tracer.events();
    assert_eq!(
        all.iter().filter(|e| sends(port)(e)).count(),
        2,
        "once per destination"
    );
    assert_eq!(
        all.iter().filter(|e| sends(scan_port)(e)).count(),
        64,
        "capped per socket"
    );
}

#[test]
fn v4_mapped_destination_is_reported_as_ipv4() {
    let tracer = Tracer::start(&[]);
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = l.local_addr().expect("addr").port();
    let _s = std::net::TcpStream::connect(("::ffff:127.0.0.1", port)).expect("connect");
    let e = connect_to(&tracer, port, "connect");
    let a = &e["action"];
    assert_eq!(a["family"], "ipv4", "{e:#}");
    assert_eq!(a["socket_family"], "ipv6", "{e:#}");
    assert_eq!(a["destination"]["ip"], "127.0.0.1", "{e:#}");
    assert_eq!(a["source"]["ip"], "127.0.0.1", "{e:#}");
    assert_outcome(&e, "success", None, "socket", true);
}

/// AF_UNIX connects are not inet actions and make no event; one in between
/// must not lend its result to the next inet connect of the thread.
#[test]
fn unix_connect_makes_no_event_and_leaves_no_state() {
    let tracer = Tracer::start(&[]);
    let dir = tracer_tests::scratch_dir();
    let path = dir.join("sock");
    let _ul = std::os::unix::net::UnixListener::bind(&path).expect("bind unix");
    let _u = std::os::unix::net::UnixStream::connect(&path).expect("connect unix");
    let closed = closed_port();
    let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    udp.connect((Ipv4Addr::LOCALHOST, closed))
        .expect("udp connect");
    let e = connect_to(&tracer, closed, "connect");
    assert_eq!(e["action"]["protocol"], "udp", "{e:#}");
    assert_outcome(&e, "success", None, "syscall", true);
    assert_eq!(
        e["action"]["source"]["port"],
        udp.local_addr().expect("addr").port()
    );
    let _ = std::fs::remove_dir_all(dir);
}
