//! Attribution driven as a state machine: scripted process lives (fork, exec,
//! connect, exit, a pid reused, processes only /proc knows) fed as typed
//! records to an [`Attributor`] whose host is a fake, no kernel or /proc
//! involved; each case checks the events that come out.
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use tracer_common::{ConnectRecord, ExecRecord, TaskInfo};

use super::{Attributor, Context, HostView};
use crate::{
    decode::{Exec, Record},
    event::{Event, Host, ImageSource, Kind, Policy},
    exec_id::{ImageLayout, exec_id},
    identity::{
        cgroup::CgroupResolver, resolve::IdentityResolver, spiffe::Registry, users::UserDb,
    },
    proc::{
        scan::{ProcCgroups, ProcCwd, ProcSnapshot, ScanError},
        table::ProcessTable,
    },
};

pub(super) const BOOT_ID: &str = "00000000-0000-0000-0000-000000000000";
/// Clock ticks per second of the scenarios (ns per tick: 10 ms).
const HZ: u64 = 100;
const NS_PER_TICK: u64 = 1_000_000_000 / HZ;

/// A host whose /proc is what the test put there.
#[derive(Clone, Default)]
pub(super) struct FakeHost(Arc<Mutex<FakeProcs>>);

#[derive(Default)]
pub(super) struct FakeProcs {
    pub procs: HashMap<u32, ProcSnapshot>,
    pub cwds: HashMap<u32, ProcCwd>,
    pub cgroups: HashMap<u32, ProcCgroups>,
    /// How often the cgroups of a process were asked for.
    pub cgroup_reads: u64,
}

impl FakeHost {
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut FakeProcs) -> R) -> R {
        f(&mut self.0.lock().expect("fake host lock"))
    }
}

impl HostView for FakeHost {
    fn snapshot(&self, pid: u32) -> Result<ProcSnapshot, ScanError> {
        self.with(|h| h.procs.get(&pid).cloned())
            .ok_or(ScanError::Gone { pid })
    }

    fn cwd(&self, pid: u32) -> Option<ProcCwd> {
        self.with(|h| h.cwds.get(&pid).cloned())
    }

    fn cgroups(&self, pid: u32) -> Option<ProcCgroups> {
        self.with(|h| {
            h.cgroup_reads += 1;
            h.cgroups.get(&pid).cloned()
        })
    }
}

/// An attributor on `host`, its cgroups under `v2_mount`.
pub(super) fn attributor_on(host: FakeHost, v2_mount: PathBuf, emit_lifecycle: bool) -> Attributor {
    let ctx = Context {
        host: Arc::new(Host {
            name: "test".into(),
            boot_id: BOOT_ID.into(),
        }),
        policy: Arc::new(Policy {
            tracer_version: "test",
            config_digest: "sha256:0".into(),
        }),
        realtime_offset_ns: 0,
        ticks_per_second: HZ,
        page_size: 4096,
        lineage_depth: 4,
        lineage_ids: false,
        emit_lifecycle,
        usage_interval_ns: 0,
    };
    Attributor::new(
        ctx,
        ProcessTable::new(Duration::from_secs(1), 1024),
        UserDb::new("/nonexistent"),
        CgroupResolver::with_mount(v2_mount).with_rescan_interval(Duration::ZERO),
        IdentityResolver::new(None, Registry::new("example.org", true).expect("registry")),
    )
    .with_host_view(Box::new(host))
}

/// One step of a scenario.
#[derive(Clone, Copy)]
enum Step {
    /// A process that predates the tracer: in the fake /proc, no record yet.
    Proc {
        pid: u32,
        ppid: u32,
        exe: &'static str,
        argv: &'static [&'static str],
    },
    /// A process neither /proc nor any record showed (hidden, or gone).
    Unknown {
        pid: u32,
        comm: &'static str,
    },
    /// The start-up scan: every process in the fake /proc is seeded.
    Scan,
    /// `pid` forks `child`.
    Fork {
        pid: u32,
        child: u32,
    },
    /// `pid` execs `path`; relative paths resolve against `cwd`, which the
    /// fake /proc shows (the exec's directory is inode 77).
    Exec {
        pid: u32,
        path: &'static str,
        argv: &'static [&'static str],
        cwd: Option<&'static str>,
    },
    /// `pid` tries to exec `path` and fails (ENOENT).
    ExecFails {
        pid: u32,
        path: &'static str,
    },
    /// `pid` execs, but its record is lost; /proc shows the new image.
    ExecUnseen {
        pid: u32,
        exe: &'static str,
        argv: &'static [&'static str],
    },
    Connect {
        pid: u32,
    },
    Exit {
        pid: u32,
    },
}

/// What a step's event must say.
#[derive(Clone, Copy)]
enum Check {
    /// No event at all.
    None,
    Kind(Kind),
    Binary(&'static str),
    Argv(&'static [&'static str]),
    Source(ImageSource),
    /// Binaries of the lineage, parent first.
    Lineage(&'static [&'static str]),
    /// The executor is the image the event of that step had.
    SameImageAs(usize),
    OtherImageThan(usize),
    /// The executor's exec_id is its lineage entry's in the event of that step
    /// (whose executor is this one's parent).
    ParentOf(usize),
    /// /proc was read for this many processes the table did not know, so far.
    ProcLookups(u64),
}

/// The kernel's side: each live process's task as its records show it.
struct Sim {
    a: Attributor,
    host: FakeHost,
    tasks: HashMap<u32, TaskInfo>,
    ticks: u64,
    /// Makes every image's layout unique.
    images: u64,
}

impl Sim {
    fn new(emit_lifecycle: bool) -> Sim {
        let host = FakeHost::default();
        // No cgroup mount: cgroups resolve to nothing, which these cases ignore.
        let a = attributor_on(host.clone(), "/nonexistent".into(), emit_lifecycle);
        Sim {
            a,
            host,
            tasks: HashMap::new(),
            ticks: 100,
            images: 0,
        }
    }

    fn now_ns(&mut self) -> u64 {
        self.ticks += 1;
        self.ticks * NS_PER_TICK
    }

    /// A new image for `t`: a layout and AT_RANDOM no other image has.
    fn new_image(&mut self, t: &mut TaskInfo, comm: &str) -> [u8; 16] {
        self.images += 1;
        let n = self.images;
        t.arg_start = 0x7ff0_0000_0000 + n * 0x1000;
        t.start_code = 0x5500_0000_0000 + n * 0x1000;
        t.start_brk = 0x5600_0000_0000 + n * 0x1000;
        t.exec_seq += 1;
        t.comm = [0; 16];
        let name = comm.rsplit('/').next().unwrap_or(comm).as_bytes();
        let len = name.len().min(15);
        t.comm[..len].copy_from_slice(&name[..len]);
        let mut at_random = [0u8; 16];
        at_random[..8].copy_from_slice(&n.to_le_bytes());
        at_random
    }

    /// What /proc shows of the image `t` runs.
    fn snapshot(t: &TaskInfo, exe: &str, argv: &[&str], at_random: [u8; 16]) -> ProcSnapshot {
        ProcSnapshot {
            pid: t.tgid,
            ppid: t.ptgid,
            comm: String::from_utf8_lossy(crate::decode::c_str(&t.comm)).into_owned(),
            start_ticks: t.start_boottime_ns / NS_PER_TICK,
            arg_start: t.arg_start,
            start_code: t.start_code,
            start_brk: t.start_brk,
            at_random,
            file: None,
            loader_env: None,
            environ: Vec::new(),
            environ_cut: false,
            uid: t.uid,
            euid: t.euid,
            gid: t.gid,
            egid: t.egid,
            auid: t.auid,
            sessionid: t.sessionid,
            argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
            argv_truncated: false,
            exe: Some(exe.as_bytes().to_vec()),
            cwd: None,
            cwd_ino: 0,
            cgroups: ProcCgroups::default(),
            kernel_thread: false,
        }
    }

    fn task(&self, pid: u32) -> TaskInfo {
        *self
            .tasks
            .get(&pid)
            .expect("a scenario acts only with live pids")
    }

    fn exec_record(&mut self, pid: u32, path: &str, argv: &[&str], errno: i32) -> Record {
        let ts = self.now_ns();
        let mut t = self.task(pid);
        let mut rec = ExecRecord {
            errno,
            ..Default::default()
        };
        if errno == 0 {
            rec.at_random = self.new_image(&mut t, path);
            self.tasks.insert(pid, t);
        }
        rec.header.ts_boot_ns = ts;
        rec.task = t;
        (rec.cwd_dentry, rec.cwd_mnt, rec.cwd_ino) = (0xffff_1000, 0xffff_2000, 77);
        let mut argv_bytes = Vec::new();
        for a in argv {
            argv_bytes.extend_from_slice(a.as_bytes());
            argv_bytes.push(0);
        }
        Record::Exec(Exec {
            rec,
            path: path.as_bytes().to_vec(),
            argv: argv_bytes,
            env: Vec::new(),
            // The walk did not run: the /proc fallback (`Step::Exec`'s cwd).
            cwd: None,
        })
    }

    fn step(&mut self, step: Step) -> Option<Event> {
        let rec = match step {
            Step::Proc {
                pid,
                ppid,
                exe,
                argv,
            } => {
                let mut t = TaskInfo {
                    tgid: pid,
                    tid: pid,
                    ptgid: ppid,
                    start_boottime_ns: self.now_ns(),
                    ..TaskInfo::default()
                };
                let at_random = self.new_image(&mut t, exe);
                let snap = Self::snapshot(&t, exe, argv, at_random);
                self.host.with(|h| h.procs.insert(pid, snap));
                self.tasks.insert(pid, t);
                return None;
            }
            Step::Unknown { pid, comm } => {
                let mut t = TaskInfo {
                    tgid: pid,
                    tid: pid,
                    ptgid: 1,
                    start_boottime_ns: self.now_ns(),
                    ..TaskInfo::default()
                };
                self.new_image(&mut t, comm);
                self.tasks.insert(pid, t);
                return None;
            }
            Step::Scan => {
                let all: Vec<ProcSnapshot> =
                    self.host.with(|h| h.procs.values().cloned().collect());
                self.a.seed(all);
                return None;
            }
            Step::Fork { pid, child } => {
                let mut t = self.task(pid);
                (t.tgid, t.tid, t.ptgid) = (child, child, pid);
                t.start_boottime_ns = self.now_ns();
                self.tasks.insert(child, t);
                Record::Fork {
                    ts_boot_ns: t.start_boottime_ns,
                    task: t,
                }
            }
            Step::Exec {
                pid,
                path,
                argv,
                cwd,
            } => {
                if let Some(cwd) = cwd {
                    let c = ProcCwd {
                        path: cwd.as_bytes().to_vec(),
                        ino: Some(77),
                    };
                    self.host.with(|h| h.cwds.insert(pid, c));
                }
                self.exec_record(pid, path, argv, 0)
            }
            Step::ExecFails { pid, path } => self.exec_record(pid, path, &[path], 2),
            Step::ExecUnseen { pid, exe, argv } => {
                let mut t = self.task(pid);
                let at_random = self.new_image(&mut t, exe);
                let snap = Self::snapshot(&t, exe, argv, at_random);
                self.host.with(|h| h.procs.insert(pid, snap));
                self.tasks.insert(pid, t);
                return None;
            }
            Step::Connect { pid } => {
                let mut c = ConnectRecord {
                    task: self.task(pid),
                    family: tracer_common::AF_INET,
                    protocol: 6,
                    dport: 443,
                    op: tracer_common::CONNECT_OP_CONNECT,
                    ..Default::default()
                };
                c.header.ts_boot_ns = self.now_ns();
                c.daddr[..4].copy_from_slice(&[10, 0, 0, 1]);
                Record::Connect(c)
            }
            Step::Exit { pid } => {
                let task = self.tasks.remove(&pid).expect("a live pid exits");
                self.host.with(|h| h.procs.remove(&pid));
                Record::Exit {
                    ts_boot_ns: self.now_ns(),
                    task,
                    exit_code: 0,
                    cpu: Default::default(),
                    maxrss_pages: 0,
                }
            }
        };
        self.a.handle(rec).map(|a| a.event)
    }
}

type Case = (
    &'static str,
    bool,
    &'static [Step],
    &'static [(usize, &'static [Check])],
);

const INIT: Step = Step::Proc {
    pid: 1,
    ppid: 0,
    exe: "/sbin/init",
    argv: &["/sbin/init"],
};

const CASES: &[Case] = &[
    (
        "fork -> exec -> connect -> exit",
        true,
        &[
            INIT,
            Step::Scan,
            Step::Fork { pid: 1, child: 100 },
            Step::Exec {
                pid: 100,
                path: "/usr/bin/curl",
                argv: &["curl", "-s", "https://example.org"],
                cwd: None,
            },
            Step::Connect { pid: 100 },
            Step::Exit { pid: 100 },
        ],
        &[
            (0, &[Check::None]),
            (1, &[Check::None]),
            // The child runs its parent's image until it execs.
            (
                2,
                &[
                    Check::Kind(Kind::Fork),
                    Check::Binary("/sbin/init"),
                    Check::Source(ImageSource::Proc),
                    Check::Lineage(&["/sbin/init"]),
                ],
            ),
            (
                3,
                &[
                    Check::Kind(Kind::Exec),
                    Check::Binary("/usr/bin/curl"),
                    Check::Argv(&["curl", "-s", "https://example.org"]),
                    Check::Source(ImageSource::Exec),
                    Check::OtherImageThan(2),
                    Check::Lineage(&["/sbin/init"]),
                ],
            ),
            (
                4,
                &[
                    Check::Kind(Kind::Connect),
                    Check::Binary("/usr/bin/curl"),
                    Check::SameImageAs(3),
                    Check::Lineage(&["/sbin/init"]),
                    Check::ProcLookups(0),
                ],
            ),
            (5, &[Check::Kind(Kind::Exit), Check::SameImageAs(3)]),
        ],
    ),
    (
        "lifecycle events off: fork and exit only keep the table",
        false,
        &[
            INIT,
            Step::Scan,
            Step::Fork { pid: 1, child: 100 },
            Step::Exec {
                pid: 100,
                path: "/bin/sh",
                argv: &["sh"],
                cwd: None,
            },
            Step::Exit { pid: 100 },
        ],
        &[
            (2, &[Check::None]),
            (3, &[Check::Binary("/bin/sh")]),
            (4, &[Check::None]),
        ],
    ),
    (
        "unknown pids fall back to the host view",
        true,
        &[
            Step::Proc {
                pid: 200,
                ppid: 1,
                exe: "/usr/sbin/sshd",
                argv: &["sshd: alice [priv]"],
            },
            // Not scanned: the first record of it asks /proc.
            Step::Connect { pid: 200 },
            Step::Connect { pid: 200 },
            Step::Proc {
                pid: 201,
                ppid: 1,
                exe: "/usr/bin/python3",
                argv: &["python3", "app.py"],
            },
            // A failed exec: the executor is the image /proc shows.
            Step::ExecFails {
                pid: 201,
                path: "/nonexistent",
            },
            // Its exec record was lost: /proc shows the new image.
            Step::ExecUnseen {
                pid: 201,
                exe: "/usr/bin/perl",
                argv: &["perl"],
            },
            Step::Connect { pid: 201 },
            // Gone from /proc by now; the table still knows it.
            Step::Exit { pid: 201 },
            // A relative path resolves against the cwd /proc shows.
            Step::Exec {
                pid: 200,
                path: "./run",
                argv: &["./run"],
                cwd: Some("/srv/app"),
            },
            // Known nowhere: the kernel's name is all there is.
            Step::Unknown {
                pid: 202,
                comm: "kworker-ish",
            },
            Step::Connect { pid: 202 },
        ],
        &[
            (
                1,
                &[
                    Check::Binary("/usr/sbin/sshd"),
                    Check::Argv(&["sshd: alice [priv]"]),
                    Check::Source(ImageSource::Proc),
                    Check::ProcLookups(1),
                ],
            ),
            // Known now: /proc is not read again.
            (2, &[Check::SameImageAs(1), Check::ProcLookups(1)]),
            (
                4,
                &[
                    Check::Kind(Kind::Exec),
                    Check::Binary("/usr/bin/python3"),
                    Check::Source(ImageSource::Proc),
                    Check::ProcLookups(2),
                ],
            ),
            (
                6,
                &[
                    Check::Binary("/usr/bin/perl"),
                    Check::OtherImageThan(4),
                    Check::ProcLookups(3),
                ],
            ),
            (7, &[Check::Kind(Kind::Exit), Check::SameImageAs(6)]),
            (
                8,
                &[
                    Check::Binary("/srv/app/run"),
                    Check::Source(ImageSource::Exec),
                ],
            ),
            (
                10,
                &[
                    Check::Binary("[kworker-ish]"),
                    Check::Argv(&[]),
                    Check::Source(ImageSource::Comm),
                    Check::ProcLookups(4),
                ],
            ),
        ],
    ),
    (
        "a pid reused after exit is another process",
        true,
        &[
            INIT,
            Step::Scan,
            Step::Fork { pid: 1, child: 300 },
            Step::Exec {
                pid: 300,
                path: "/bin/old",
                argv: &["old"],
                cwd: None,
            },
            Step::Fork {
                pid: 300,
                child: 301,
            },
            Step::Exit { pid: 300 },
            Step::Fork { pid: 1, child: 300 },
            Step::Exec {
                pid: 300,
                path: "/bin/new",
                argv: &["new"],
                cwd: None,
            },
            Step::Connect { pid: 300 },
            // The orphan's parent pid now names a younger process: not its parent.
            Step::Connect { pid: 301 },
        ],
        &[
            (3, &[Check::Binary("/bin/old")]),
            (
                7,
                &[
                    Check::Binary("/bin/new"),
                    Check::OtherImageThan(3),
                    Check::Lineage(&["/sbin/init"]),
                ],
            ),
            (8, &[Check::SameImageAs(7)]),
            (
                9,
                &[
                    Check::Binary("/bin/old"),
                    Check::OtherImageThan(3),
                    Check::Lineage(&[]),
                    Check::ProcLookups(0),
                ],
            ),
        ],
    ),
    (
        "lineage through the table",
        false,
        &[
            INIT,
            Step::Proc {
                pid: 10,
                ppid: 1,
                exe: "/usr/sbin/sshd",
                argv: &["sshd"],
            },
            Step::Scan,
            Step::Fork { pid: 10, child: 20 },
            Step::Exec {
                pid: 20,
                path: "/bin/bash",
                argv: &["-bash"],
                cwd: None,
            },
            Step::Fork { pid: 20, child: 30 },
            Step::Exec {
                pid: 30,
                path: "/usr/bin/curl",
                argv: &["curl"],
                cwd: None,
            },
            Step::Connect { pid: 30 },
        ],
        &[
            (
                4,
                &[
                    Check::Binary("/bin/bash"),
                    Check::Lineage(&["/usr/sbin/sshd", "/sbin/init"]),
                ],
            ),
            (
                6,
                &[
                    Check::Lineage(&["/bin/bash", "/usr/sbin/sshd", "/sbin/init"]),
                    Check::ParentOf(4),
                ],
            ),
            (7, &[Check::SameImageAs(6), Check::ParentOf(4)]),
        ],
    ),
];

#[test]
fn scenarios() {
    for (name, lifecycle, steps, checks) in CASES {
        let mut sim = Sim::new(*lifecycle);
        let mut events: Vec<Option<Event>> = Vec::new();
        let mut lookups = Vec::new();
        for step in *steps {
            events.push(sim.step(*step));
            lookups.push(sim.a.proc_lookups);
        }
        let exec_id = |i: usize| -> Arc<str> {
            let ev = events[i].as_ref();
            ev.unwrap_or_else(|| panic!("{name}: step {i} made no event"))
                .executor
                .exec_id
                .clone()
        };
        for (i, wanted) in *checks {
            let at = format!("{name}: step {i}");
            let ev = events[*i].as_ref();
            for check in *wanted {
                if let Check::None = check {
                    assert!(ev.is_none(), "{at}: unexpected event");
                    continue;
                }
                if let Check::ProcLookups(n) = check {
                    assert_eq!(lookups[*i], *n, "{at}: /proc lookups");
                    continue;
                }
                let ev = ev.unwrap_or_else(|| panic!("{at}: no event"));
                let x = &ev.executor;
                match *check {
                    Check::None | Check::ProcLookups(_) => {}
                    Check::Kind(k) => assert_eq!(ev.kind, k, "{at}"),
                    Check::Binary(b) => assert_eq!(&*x.binary, b, "{at}"),
                    Check::Argv(want) => assert_eq!(&*x.argv, want, "{at}"),
                    Check::Source(s) => assert_eq!(x.image_source, s, "{at}"),
                    Check::Lineage(want) => {
                        let got: Vec<&str> = ev.lineage.iter().map(|a| &*a.binary).collect();
                        assert_eq!(got, want, "{at}");
                    }
                    Check::SameImageAs(j) => assert_eq!(x.exec_id, exec_id(j), "{at}"),
                    Check::OtherImageThan(j) => assert_ne!(x.exec_id, exec_id(j), "{at}"),
                    Check::ParentOf(j) => {
                        assert_eq!(
                            ev.lineage.first().map(|a| a.exec_id.clone()),
                            Some(exec_id(j)),
                            "{at}"
                        )
                    }
                }
            }
        }
    }
}

/// A process seen by the start-up scan and one looked up later (a record of
/// a pid the table did not know) get the same entry from the same snapshot:
/// one constructor, one exec_id.
#[test]
fn scanned_and_looked_up_processes_are_built_alike() {
    let mut sim = Sim::new(false);
    sim.step(Step::Proc {
        pid: 50,
        ppid: 1,
        exe: "/usr/bin/redis-server",
        argv: &["redis-server", "*:6379"],
    });
    let snap = sim.host.with(|h| h.procs[&50].clone());
    let looked_up = sim
        .step(Step::Connect { pid: 50 })
        .expect("a connect event");

    let mut scanned = Sim::new(false);
    scanned.a.seed([snap.clone()]);
    let entry = scanned.a.table.get(50).expect("seeded").clone();
    assert_eq!(entry.exec_id, looked_up.executor.exec_id);
    assert_eq!(entry.binary, looked_up.executor.binary);
    assert_eq!(entry.argv, looked_up.executor.argv);
    let layout = ImageLayout {
        arg_start: snap.arg_start,
        start_code: snap.start_code,
        start_brk: snap.start_brk,
        at_random: snap.at_random,
    };
    assert_eq!(
        &*entry.exec_id,
        exec_id(BOOT_ID, 50, snap.start_ticks, layout)
    );
    // The scan never replaces a newer image a record told of.
    let mut older = snap.clone();
    older.start_ticks -= 1;
    older.exe = Some(b"/old".to_vec());
    scanned.a.seed([older]);
    assert_eq!(
        scanned.a.table.get(50).expect("kept").exec_id,
        entry.exec_id
    );
}
