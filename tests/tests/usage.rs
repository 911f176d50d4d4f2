//! `exit` events carry what the image used, read in the kernel at the exit:
//! CPU time (user, system), peak RSS and lifetime; with `--usage-interval`,
//! `usage` events say the same of live processes so far. Checked against
//! what /proc said of the same process around the moment.
use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
};

use tracer_tests::{Tracer, marker};

/// utime + stime of `pid` from /proc, in ns.
fn proc_cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are
    // fields 14 and 15 of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap();
    ticks * 1_000_000_000 / hz
}

fn proc_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Run `script` (argv: `mark`) in the interpreter itself, not a launcher in
/// PATH (pyenv's shims are shell scripts that exec it in the same process:
/// their CPU is theirs, not the image's, and /proc would count it), and wait
/// for it to print `line`. Its stdin is a pipe: closing it ends the scripts.
fn python_until(script: &str, mark: &str, line: &str) -> (std::process::Child, u32) {
    let real = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8(real.stdout).unwrap().trim().to_owned();
    let mut child = Command::new(&python)
        .args(["-c", script, mark])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut got = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut got)
        .unwrap();
    assert_eq!(got.trim(), line);
    (child, pid)
}

#[test]
fn exit_carries_cpu_time_and_peak_memory_of_the_image() {
    let tracer = Tracer::start(&["--emit-lifecycle"]);
    let mark = marker("usage");
    // Busy for 0.6 s of CPU with 64 MiB touched, then wait for stdin to close.
    let script = "import sys, time\n\
                  buf = bytearray(64 << 20)\n\
                  for i in range(0, len(buf), 4096): buf[i] = 1\n\
                  t = time.process_time()\n\
                  while time.process_time() - t < 0.6:\n\
                  \x20   for _ in range(200000): pass\n\
                  print('done', flush=True)\n\
                  sys.stdin.read()\n";
    let (mut child, pid) = python_until(script, &mark, "done");
    let (cpu, hwm) = (proc_cpu_ns(pid), proc_hwm_kib(pid));
    child.stdin.take().unwrap().write_all(b"").unwrap();
    assert!(child.wait().unwrap().success());

    let exit = tracer.wait_for(1, |v| {
        v["kind"] == "exit" && v["executor"]["pid"].as_u64() == Some(u64::from(pid))
    });
    let u = &exit[0]["action"]["usage"];
    let got = u["cpu_user_ns"].as_u64().unwrap() + u["cpu_system_ns"].as_u64().unwrap();
    let diff = got.abs_diff(cpu) as f64 / cpu as f64;
    assert!(
        diff <= 0.10,
        "CPU {got} ns at exit vs {cpu} ns in /proc just before: {:.1}% off; {}",
        diff * 100.0,
        exit[0]
    );
    assert!(
        u["cpu_user_ns"].as_u64().unwrap() > u["cpu_system_ns"].as_u64().unwrap(),
        "a busy loop is user time: {u}"
    );
    let peak = u["peak_rss_kib"].as_u64().unwrap();
    assert!(
        // The kernel's RSS counters are per-CPU and batched: two reads of
        // the same high-water mark may differ by a few pages.
        peak.abs_diff(hwm) * 20 <= hwm && peak >= 64 * 1024,
        "peak {peak} KiB, VmHWM {hwm} KiB"
    );
    assert!(u["lifetime_ns"].as_u64().unwrap() >= 600_000_000, "{u}");
    assert_eq!(u["since"], "exec");
    assert_eq!(exit[0]["action"]["exit_code"], 0);
    tracer_tests::check_schema(&tracer.output);
    assert!(tracer.stop().success());
}

/// Unix time of an event, ns, from its id (which starts with it).
fn event_unix_ns(v: &serde_json::Value) -> u128 {
    let id = v["event_id"].as_str().unwrap();
    id.split('-').next().unwrap().parse().unwrap()
}

fn now_unix_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn cpu_of(v: &serde_json::Value) -> u64 {
    let u = &v["action"]["usage"];
    u["cpu_user_ns"].as_u64().unwrap() + u["cpu_system_ns"].as_u64().unwrap()
}

/// With `--usage-interval`, a live process that has run for an interval gets
/// `usage` events: the CPU of all its threads so far (within what /proc said
/// just before and just after the sample), its memory, its image's exec_id;
/// its exit then reports at least as much.
#[test]
fn usage_samples_report_live_threads_cpu() {
    let tracer = Tracer::start(&["--usage-interval", "2", "--emit-lifecycle"]);
    let mark = marker("usage-live");
    // A worker thread burns a second of CPU, then sleeps; the main thread,
    // blocked on stdin, has used almost none: only the walk of the live
    // threads can account for the worker's time. 32 MiB touched. Idle by the
    // time it says ready, so /proc and the samples agree closely.
    let script = "import sys, threading, time\n\
                  buf = bytearray(32 << 20)\n\
                  for i in range(0, len(buf), 4096): buf[i] = 1\n\
                  done = threading.Event()\n\
                  def work():\n\
                  \x20   while time.thread_time() < 1.0:\n\
                  \x20       for _ in range(100000): pass\n\
                  \x20   done.set()\n\
                  \x20   time.sleep(3600)\n\
                  threading.Thread(target=work, daemon=True).start()\n\
                  done.wait()\n\
                  print('ready', flush=True)\n\
                  sys.stdin.read()\n";
    let (mut child, pid) = python_until(script, &mark, "ready");
    let is_sample = |v: &serde_json::Value| {
        v["kind"] == "usage" && v["executor"]["pid"].as_u64() == Some(u64::from(pid))
    };

    // /proc before and after a sample taken between the two reads.
    let (before_ns, cpu_before) = (now_unix_ns(), proc_cpu_ns(pid));
    let sample = tracer
        .wait_for(1, |v| is_sample(v) && event_unix_ns(v) > before_ns)
        .remove(0);
    let cpu_after = proc_cpu_ns(pid);
    let got = cpu_of(&sample);
    // /proc counts in clock ticks (10 ms at HZ=100) per thread.
    let slack = 50_000_000;
    assert!(
        got + slack >= cpu_before && got <= cpu_after + slack,
        "sample CPU {got} ns outside /proc's {cpu_before}..{cpu_after} ns around it: {sample}"
    );
    let action = &sample["action"];
    assert_eq!(action["threads"], 2, "{action}");
    assert!(
        got >= 1_000_000_000,
        "the worker's second of CPU is in: {action}"
    );
    assert_eq!(action["usage"]["since"], "exec");
    assert!(
        action["usage"]["peak_rss_kib"].as_u64().unwrap() >= 32 * 1024,
        "{action}"
    );
    assert!(action["usage"]["lifetime_ns"].as_u64().unwrap() >= 1_000_000_000);
    let exec = tracer.wait_for(1, |v| {
        tracer_tests::is_exec(v) && v["executor"]["pid"].as_u64() == Some(u64::from(pid))
    });
    assert_eq!(
        sample["executor"]["exec_id"], exec[0]["executor"]["exec_id"],
        "the sample names the image the exec started"
    );

    child.stdin.take().unwrap().write_all(b"").unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let exit = tracer.wait_for(1, |v| {
        v["kind"] == "exit" && v["executor"]["pid"].as_u64() == Some(u64::from(pid))
    });
    assert!(cpu_of(&exit[0]) >= got, "exit {} < sample {got}", exit[0]);
    // This process's events only: every process on the host is sampled, and
    // the schema check of them all takes minutes in the QEMU matrix.
    let own = tracer.output.with_extension("own.jsonl");
    let lines: Vec<String> = [&exec[0], &sample, &exit[0]]
        .iter()
        .map(|v| v.to_string())
        .collect();
    std::fs::write(&own, lines.join("\n") + "\n").unwrap();
    tracer_tests::check_schema(&own);
    assert!(tracer.stop().success());
}
