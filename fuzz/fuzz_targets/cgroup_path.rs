//! cgroup path -> workload: any path (the kernel's cgroup events and /proc give
//! whatever names a workload chose for its cgroups) parses without panicking, and
//! what comes out is normalised as documented.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tracer::identity::workload::{parse, parse_nested};

fuzz_target!(|data: &[u8]| {
    let path = String::from_utf8_lossy(data);
    let w = parse(&path);
    let (nested, _) = parse_nested(&path);
    for w in [&w, &nested] {
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
