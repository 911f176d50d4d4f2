//! Records from the kernel ring buffer: any bytes decode or fail cleanly, and a
//! record that decodes goes through attribution and both output formats without
//! a panic (its fields are whatever the kernel, or a bug, put there).
#![no_main]
use std::{
    mem::offset_of,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use libfuzzer_sys::fuzz_target;
use tracer::{
    attribute::{Attributor, Context},
    decode::decode,
    event::{Host, Policy},
    identity::{
        cgroup::CgroupResolver, resolve::IdentityResolver, spiffe::Registry, users::UserDb,
    },
    proc::table::ProcessTable,
    sink::ocsf::event_to_ocsf,
};
use tracer_common::{Header, RECORD_VERSION};

fn attributor() -> &'static Mutex<Attributor> {
    static A: OnceLock<Mutex<Attributor>> = OnceLock::new();
    A.get_or_init(|| {
        let ctx = Context {
            host: Arc::new(Host {
                name: "fuzz".into(),
                boot_id: "00000000-0000-0000-0000-000000000000".into(),
            }),
            policy: Arc::new(Policy {
                tracer_version: "fuzz",
                config_digest: "sha256:0".into(),
            }),
            realtime_offset_ns: 0,
            ticks_per_second: 100,
            page_size: 4096,
            lineage_depth: 8,
            lineage_ids: false,
            emit_lifecycle: true,
            usage_interval_ns: 0,
        };
        let registry = Registry::new("example.org", true).expect("trust domain");
        Mutex::new(Attributor::new(
            ctx,
            ProcessTable::new(Duration::from_secs(1), 1024),
            UserDb::new("/nonexistent"),
            CgroupResolver::with_mount("/nonexistent".into()),
            IdentityResolver::new(None, registry),
        ))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    // Most inputs get a plausible header, so the fuzzer reaches the record bodies.
    if buf.len() >= size_of::<Header>() && buf[0] & 3 != 0 {
        let kind = u16::from(buf[1] % 6);
        buf[offset_of!(Header, kind)..][..2].copy_from_slice(&kind.to_ne_bytes());
        buf[offset_of!(Header, version)..][..2].copy_from_slice(&RECORD_VERSION.to_ne_bytes());
        let len = buf.len() as u32;
        buf[offset_of!(Header, len)..][..4].copy_from_slice(&len.to_ne_bytes());
    }
    let Ok(rec) = decode(&buf) else { return };
    let mut a = attributor().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(out) = a.handle(rec) {
        let _ = serde_json::to_vec(&out.event).expect("event serializes");
        let _ = tracer::sink::ocsf::write(&event_to_ocsf(&out.event), &mut Vec::new());
    }
});
