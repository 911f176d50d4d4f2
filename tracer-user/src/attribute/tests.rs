use super::*;

use std::{os::unix::fs::MetadataExt as _, path::Path, time::Duration};

use super::scenarios::{FakeHost, attributor_on};
use crate::{decode::Exec, identity::workload::WorkloadKind};

/// An attributor whose host shows no process at all.
fn attributor(v2_mount: &Path) -> Attributor {
    attributor_on(FakeHost::default(), v2_mount.to_owned(), false)
}

/// The exec event of a process (no /proc entry) with these cgroup ids.
fn exec_in(a: &mut Attributor, pid: u32, v2_id: u64, v1_id: u64) -> Event {
    let mut rec = tracer_common::ExecRecord::default();
    rec.task.tgid = pid;
    rec.task.tid = pid;
    rec.task.start_boottime_ns = u64::from(pid);
    rec.task.cgroup_id = v2_id;
    rec.task.cgroup_v1_id = v1_id;
    let exec = Exec {
        rec,
        path: b"/bin/true".to_vec(),
        argv: b"/bin/true\0".to_vec(),
        env: Vec::new(),
        cwd: None,
    };
    a.handle(Record::Exec(exec)).expect("an exec event").event
}

/// The probe's walk names the cwd, with what is odd about it, whatever /proc
/// shows now; /proc only where the walk did not run, its `(unreachable)`
/// prefix turned into the same mark.
#[test]
fn cwd_from_the_walk_else_from_proc() {
    use crate::{decode::WalkedCwd, event::CwdSource, proc::scan::ProcCwd};
    let top = TempTree(std::env::temp_dir().join(format!(
        "tracer-attr-cwd-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )));
    std::fs::create_dir_all(&top.0).unwrap();
    let host = FakeHost::default();
    for pid in [200, 300] {
        let cwd = ProcCwd {
            path: b"(unreachable)/srv/jail".to_vec(),
            ino: Some(77),
        };
        host.with(|h| h.cwds.insert(pid, cwd));
    }
    let mut a = attributor_on(host, top.0.clone(), false);
    let mut exec = |pid: u32, cwd: Option<WalkedCwd>| {
        let mut rec = tracer_common::ExecRecord::default();
        rec.task.tgid = pid;
        rec.task.tid = pid;
        rec.task.start_boottime_ns = u64::from(pid);
        (rec.cwd_dentry, rec.cwd_mnt, rec.cwd_ino) =
            (0xffff_1000 + u64::from(pid), 0xffff_2000, 77);
        let exec = Exec {
            rec,
            path: b"x".to_vec(),
            argv: b"x\0".to_vec(),
            env: Vec::new(),
            cwd,
        };
        a.handle(Record::Exec(exec)).expect("an exec event").event
    };
    let walked = exec(
        200,
        Some(WalkedCwd {
            path: b".../b/c".to_vec(),
            truncated: true,
            outside_root: false,
        }),
    );
    let x = &walked.executor;
    assert_eq!(x.cwd.as_deref(), Some(".../b/c"));
    assert_eq!(x.cwd_source, Some(CwdSource::Kernel));
    assert!(x.cwd_truncated && !x.cwd_outside_root);
    // A relative exec path resolves against it.
    assert_eq!(&*x.binary, ".../b/c/x");

    let read = exec(300, None);
    let x = &read.executor;
    assert_eq!(x.cwd.as_deref(), Some("/srv/jail"));
    assert_eq!(x.cwd_source, Some(CwdSource::Proc));
    assert!(!x.cwd_truncated && x.cwd_outside_root);
    let json = serde_json::to_value(x).unwrap();
    assert_eq!(json["cwd_source"], "proc");
    assert_eq!(json["cwd_outside_root"], true);
    assert!(json.get("cwd_truncated").is_none());
}

/// Removed on drop, even if the test fails.
struct TempTree(std::path::PathBuf);

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the v2 cgroup is the root, the workload comes from the v1
/// hierarchy the probes read; anywhere else from v2, as before.
#[test]
fn workload_from_v1_only_where_the_v2_cgroup_is_the_root() {
    let top = TempTree(std::env::temp_dir().join(format!(
        "tracer-attr-v1-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )));
    let (v2, v1) = (top.0.join("v2"), top.0.join("v1"));
    let (cid, short_lived) = ("ab".repeat(32), "cd".repeat(32));
    std::fs::create_dir_all(v2.join("system.slice/x.service")).unwrap();
    std::fs::create_dir_all(v1.join(format!("docker/{cid}"))).unwrap();
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let (v2_root, v2_svc) = (ino(&v2), ino(&v2.join("system.slice/x.service")));
    let (v1_root, v1_ctr) = (ino(&v1), ino(&v1.join(format!("docker/{cid}"))));

    let memory = V1Controller {
        name: "memory",
        subsys_id: "memory_cgrp_id",
        hierarchy: "v1:memory",
        mount: v1.clone(),
    };
    let v1_resolver = CgroupResolver::with_mount(v1.clone()).with_rescan_interval(Duration::ZERO);
    let mut a = attributor(&v2).with_cgroup_v1(memory, v1_resolver, 4);
    // A cgroup of the v1 hierarchy named by its mkdir record only (already
    // gone from disk); one of another v1 hierarchy is not ours.
    let mkdir = |root: i32, id: u64, path: String| Record::Cgroup {
        ts_boot_ns: 0,
        op: tracer_common::CGROUP_MKDIR,
        root,
        id,
        path: path.into_bytes(),
    };
    assert!(
        a.handle(mkdir(4, 4242, format!("/docker/{short_lived}")))
            .is_none()
    );
    assert!(a.handle(mkdir(7, 4343, format!("/docker/{cid}"))).is_none());

    let docker = format!("/docker/{cid}");
    let docker_short = format!("/docker/{short_lived}");
    type Case<'a> = (
        &'a str,
        u64,
        u64,
        &'a str,
        &'a str,
        Option<u64>,
        WorkloadKind,
    );
    let cases: &[Case] = &[
        (
            "v1 container, v2 root",
            v2_root,
            v1_ctr,
            &docker,
            "v1:memory",
            Some(v1_ctr),
            WorkloadKind::Container,
        ),
        (
            "v2 names a service",
            v2_svc,
            v1_ctr,
            "/system.slice/x.service",
            "v2",
            Some(v1_ctr),
            WorkloadKind::Service,
        ),
        (
            "both roots",
            v2_root,
            v1_root,
            "/",
            "v2",
            Some(v1_root),
            WorkloadKind::Host,
        ),
        (
            "v1 read failed",
            v2_root,
            0,
            "/",
            "v2",
            None,
            WorkloadKind::Host,
        ),
        (
            "v1 from a mkdir record",
            v2_root,
            4242,
            &docker_short,
            "v1:memory",
            Some(4242),
            WorkloadKind::Container,
        ),
        (
            "another hierarchy's record",
            v2_root,
            4343,
            "/",
            "v2",
            Some(4343),
            WorkloadKind::Host,
        ),
    ];
    for (i, (what, v2_id, v1_id, path, hierarchy, v1_seen, kind)) in cases.iter().enumerate() {
        let ev = exec_in(&mut a, u32::MAX - i as u32, *v2_id, *v1_id);
        let c = &ev.executor.cgroup;
        assert_eq!(c.id, *v2_id, "{what}");
        assert_eq!(c.path.as_deref(), Some(*path), "{what}");
        assert_eq!(c.hierarchy, *hierarchy, "{what}");
        assert_eq!(c.v1_id, *v1_seen, "{what}");
        assert_eq!(ev.executor.workload.kind, *kind, "{what}");
    }

    // No v1 hierarchy read (pure v2 host): v2 only, whatever the record says.
    let mut a = attributor(&v2);
    let ev = exec_in(&mut a, u32::MAX - 100, v2_root, v1_ctr);
    assert_eq!(ev.executor.cgroup.path.as_deref(), Some("/"));
    assert_eq!(ev.executor.cgroup.hierarchy, "v2");
    assert_eq!(ev.executor.cgroup.v1_id, None);
    assert_eq!(ev.executor.workload.kind, WorkloadKind::Host);
}

/// A cgroup whose path the kernel's record cut (longer than 1023 bytes)
/// and that is gone from disk: the event carries the cut path, flagged,
/// and the workload is named from the deepest cgroup the cut path names
/// whole, never from a name cut short (`x.service-not` cut to `x.service`).
#[test]
fn a_cut_cgroup_path_is_flagged_and_names_no_workload_by_half_a_name() {
    let top = TempTree(std::env::temp_dir().join(format!(
        "tracer-attr-cut-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )));
    let v2 = top.0.join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    let mut a = attributor(&v2);
    let ancestor = format!(
        "/system.slice/deep.service/{}/{}/{}/{}",
        "a".repeat(200),
        "b".repeat(200),
        "c".repeat(200),
        "d".repeat(200)
    );
    let unit = "x.service";
    let pad = 1023 - ancestor.len() - 1 - unit.len();
    let cut = format!("{ancestor}/{}{unit}", "p".repeat(pad));
    assert_eq!(cut.len(), 1023);
    let (id, ours) = (5151, u32::MAX - 200);
    let mkdir = Record::Cgroup {
        ts_boot_ns: 0,
        op: tracer_common::CGROUP_MKDIR,
        root: 0,
        id,
        path: cut.clone().into_bytes(),
    };
    assert!(a.handle(mkdir).is_none());
    let ev = exec_in(&mut a, ours, id, 0);
    let c = &ev.executor.cgroup;
    assert_eq!(c.path.as_deref(), Some(cut.as_str()));
    assert!(c.path_truncated);
    assert_eq!(c.naming_path().as_deref(), Some(ancestor.as_str()));
    let json = serde_json::to_value(c).unwrap();
    assert_eq!(json["path_truncated"], true);
    assert_eq!(ev.executor.workload.unit.as_deref(), Some("deep.service"));
    // `cgroup:path:` selectors (what registrations glob on) see the whole
    // ancestor, so `**/x.service` cannot match half a name.
    let sel = &ev.executor.identity.selectors;
    assert!(sel.contains(&format!("cgroup:path:{ancestor}")), "{sel:?}");
    assert!(!sel.iter().any(|s| s.ends_with("x.service")), "{sel:?}");

    // A path shorter than the bound: as it is, and no flag on the wire.
    let short = Record::Cgroup {
        ts_boot_ns: 0,
        op: tracer_common::CGROUP_MKDIR,
        root: 0,
        id: id + 1,
        path: b"/system.slice/x.service".to_vec(),
    };
    assert!(a.handle(short).is_none());
    let ev = exec_in(&mut a, ours - 1, id + 1, 0);
    assert!(!ev.executor.cgroup.path_truncated);
    let json = serde_json::to_value(&ev.executor.cgroup).unwrap();
    assert!(json.get("path_truncated").is_none(), "{json}");
    assert_eq!(ev.executor.workload.unit.as_deref(), Some("x.service"));
}

/// A cgroup id no record named: the path the process claims in its /proc
/// (through the host view) names it, read once and only on that miss.
#[test]
fn an_unnamed_cgroup_is_named_from_the_host_views_claim() {
    let top = TempTree(std::env::temp_dir().join(format!(
        "tracer-attr-claim-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )));
    let v2 = top.0.join("v2");
    let unit = "/system.slice/claimed.service";
    std::fs::create_dir_all(v2.join(&unit[1..])).unwrap();
    let id = std::fs::metadata(v2.join(&unit[1..])).unwrap().ino();
    let host = FakeHost::default();
    let claims = crate::proc::scan::ProcCgroups {
        v2: Some(unit.into()),
        v1: Vec::new(),
    };
    let pid = u32::MAX - 300;
    host.with(|h| h.cgroups.insert(pid, claims));
    let mut a = attributor_on(host.clone(), v2, false);
    let ev = exec_in(&mut a, pid, id, 0);
    assert_eq!(ev.executor.cgroup.path.as_deref(), Some(unit));
    assert_eq!(
        ev.executor.workload.unit.as_deref(),
        Some("claimed.service")
    );
    assert_eq!(host.with(|h| h.cgroup_reads), 1);
    // Cached now: another process there costs no read.
    let ev = exec_in(&mut a, pid - 1, id, 0);
    assert_eq!(ev.executor.cgroup.path.as_deref(), Some(unit));
    assert_eq!(host.with(|h| h.cgroup_reads), 1);
}
