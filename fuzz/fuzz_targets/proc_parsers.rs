//! /proc and /etc content is whatever the host (or a process) put there: the
//! parsers must return an answer or an error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tracer::{
    escape::unescape,
    identity::{
        cgroup::{choose_v1_controller, parse_mountinfo_cgroup2, parse_mountinfo_cgroups},
        users::{parse_group, parse_passwd},
    },
    proc::scan::{
        parse_cgroup_v1_line, parse_cgroup_v1_lines, parse_cgroup_v2_line, parse_stat,
        parse_status_ids, split_cmdline,
    },
};

fuzz_target!(|data: &[u8]| {
    // cmdline: NUL-separated; no byte is lost except the separators.
    let args = split_cmdline(data);
    let kept: usize = args.iter().map(Vec::len).sum();
    assert!(kept <= data.len());
    assert_eq!(kept + data.iter().filter(|&&b| b == 0).count(), data.len());
    let text = String::from_utf8_lossy(data);
    let _ = parse_cgroup_v2_line(data);
    let _ = parse_mountinfo_cgroup2(&text);
    let _ = choose_v1_controller(&parse_mountinfo_cgroups(&text));
    let _ = parse_cgroup_v1_line(data, "memory");
    let _ = parse_cgroup_v1_lines(data);
    for (_, name) in parse_passwd(&text).into_iter().chain(parse_group(&text)) {
        assert!(!name.is_empty() && !name.contains(':') && !name.contains('\n'));
    }
    // Every process's stat is read at start-up; its comm is the process's choice.
    // (procfs parses it, behind our check of the shape it slices on.)
    if let Ok(st) = parse_stat(data) {
        assert!(!st.comm.contains('\0') || data.contains(&0));
    }
    let _ = parse_status_ids(data);
    let _ = unescape(&text);
});
