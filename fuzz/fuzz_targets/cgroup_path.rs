//! cgroup path -> workload: any path (the kernel's cgroup events and /proc give
//! whatever names a workload chose for its cgroups) parses without panicking, and
//! what comes out is normalised as documented.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tracer::identity::workload::{KubeRoots, parse, parse_path};

fuzz_target!(|data: &[u8]| {
    let path = String::from_utf8_lossy(data);
    let w = parse(&path);
    let parsed = parse_path(&path, &KubeRoots::default());
    assert_eq!(parsed.workload, w);
    for w in std::iter::once(&w).chain(parsed.claim.as_ref()) {
        if let Some(uid) = &w.pod_uid {
            assert!(!uid.contains('_'), "pod uid not normalised: {uid}");
            assert!(
                uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
                "{uid}"
            );
        }
        if let Some(id) = &w.container_id {
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
    }
});
