//! exec, fork and exit as Process Activity (1007), and the process, user,
//! session and container objects every class uses.
use super::{
    Origin, header,
    model::{
        Actor, Ancestry, CmdLine, ContainerObject, Entity, Enum, File, Fingerprint, Group, Image,
        Process, Record, Session, Text, UserObject, basename,
    },
    unmapped::{ActionView, EventUnmapped},
};
use crate::event::{
    Event, ExecAction, Executor, ExitAction, FileId, ForkAction, Login, Outcome, UsageAction, User,
    Workload,
};

pub(super) type EventRecord<'a> = Record<'a, EventUnmapped<'a>>;

const LAUNCH: Enum = (1, "Launch");
const TERMINATE: Enum = (2, "Terminate");
/// A usage sample of a live process: no Process Activity activity fits, and
/// Other with a name says what it is.
const USAGE: Enum = (99, "Usage");

/// process_activity.launch_type_id: the two steps of Unix process creation.
const LAUNCH_FORK: Enum = (2, "Fork");
const LAUNCH_EXEC: Enum = (3, "Exec");

const PROCESS_ACTIVITY: super::model::Class = super::model::Class {
    uid: 1007,
    name: "Process Activity",
    category_uid: 1,
    category_name: "System Activity",
};

fn process_header<'a>(
    ev: &'a Event,
    activity: Enum,
    unmapped: EventUnmapped<'a>,
) -> EventRecord<'a> {
    header(
        &PROCESS_ACTIVITY,
        activity,
        Origin::of(ev),
        &["host", "container"],
        unmapped,
    )
}

pub(super) fn exec<'a>(ev: &'a Event, a: &'a ExecAction) -> EventRecord<'a> {
    let x = &ev.executor;
    let action = ActionView {
        argv_truncated: Some(a.argv_truncated),
        path_search: (!a.path_search.is_empty()).then_some(a.path_search.as_slice()),
        ..ActionView::default()
    };
    let mut r = process_header(ev, LAUNCH, EventUnmapped::new(ev, &a.argv, Some(action)));
    r.set_launch_type(LAUNCH_EXEC);
    let actor_process = match a.outcome {
        Outcome::Failure => {
            r.set_status(super::FAILURE);
            r.set_error(a.error.as_deref());
            // The old image stays and is the one that tried; the process names
            // what it tried to run, which never got an exec_id.
            r.process = Some(process(ev, &a.binary, &a.argv, None));
            Some(executor_process(x))
        }
        Outcome::Success | Outcome::InProgress | Outcome::Unknown => {
            r.set_status(super::SUCCESS);
            r.process = Some(process(ev, &x.binary, &x.argv, Some(&x.exec_id)));
            // Creator and parent are the same process on Linux.
            parent_process(ev)
        }
    };
    r.actor = Some(actor(x, actor_process));
    r
}

pub(super) fn fork<'a>(ev: &'a Event, a: &ForkAction) -> EventRecord<'a> {
    let x = &ev.executor;
    let mut r = process_header(ev, LAUNCH, EventUnmapped::new(ev, &x.argv, None));
    r.set_launch_type(LAUNCH_FORK);
    r.set_status(super::SUCCESS);
    // The child: a copy of the executor with its own pid (its exec_id is not known yet).
    let mut child = process(ev, &x.binary, &x.argv, None);
    child.pid = a.child_pid;
    child.ptid = None;
    child.created_time = Some(ev.time.millis());
    child.parent_process = Some(Box::new(executor_process(x)));
    child.ancestry = Some(Ancestry {
        first: Some(Entity {
            cmd_line: CmdLine(&x.argv),
            created_time: Some(x.start_time.millis()),
            name: basename(&x.binary),
            path: &x.binary,
            pid: x.pid,
            uid: &x.exec_id,
        }),
        lineage: &ev.lineage,
    });
    r.process = Some(child);
    r.actor = Some(actor(x, Some(executor_process(x))));
    r
}

pub(super) fn exit<'a>(ev: &'a Event, a: &'a ExitAction) -> EventRecord<'a> {
    let x = &ev.executor;
    let action = (a.signal.is_some() || a.usage.is_some()).then(|| ActionView {
        signal: a.signal,
        usage: a.usage.as_ref(),
        ..ActionView::default()
    });
    let mut r = process_header(ev, TERMINATE, EventUnmapped::new(ev, &x.argv, action));
    r.set_status(super::SUCCESS);
    r.exit_code = Some(a.exit_code);
    let mut p = process(ev, &x.binary, &x.argv, Some(&x.exec_id));
    p.terminated_time = Some(ev.time.millis());
    r.process = Some(p);
    // An exit is reflexive: the process is its own actor.
    r.actor = Some(actor(x, Some(executor_process(x))));
    r
}

pub(super) fn usage<'a>(ev: &'a Event, a: &'a UsageAction) -> EventRecord<'a> {
    let x = &ev.executor;
    let action = ActionView {
        usage: Some(&a.usage),
        threads: Some(a.threads),
        threads_cut: a.threads_cut.then_some(true),
        ..ActionView::default()
    };
    let mut r = process_header(ev, USAGE, EventUnmapped::new(ev, &x.argv, Some(action)));
    r.set_status(super::SUCCESS);
    r.process = Some(process(ev, &x.binary, &x.argv, Some(&x.exec_id)));
    // Like an exit: the process is its own actor.
    r.actor = Some(actor(x, Some(executor_process(x))));
    r
}

pub(super) fn actor<'a>(x: &'a Executor, process: Option<Process<'a>>) -> Actor<'a> {
    Actor {
        invoked_by: x.requestor.as_ref().map(|r| &*r.values.system),
        process,
        session: x.login.as_ref().and_then(session),
        user: user(&x.user),
    }
}

/// The executor as the top-level process object, running `binary`/`argv`
/// (the executor's own image, or what a failed exec tried to run).
pub(super) fn process<'a>(
    ev: &'a Event,
    binary: &'a str,
    argv: &'a [String],
    uid: Option<&'a str>,
) -> Process<'a> {
    let x = &ev.executor;
    // The executor's own image (it has an exec_id): its file's hash applies.
    let own = uid.and(x.file.as_ref());
    Process {
        ancestry: (!ev.lineage.is_empty()).then_some(Ancestry {
            first: None,
            lineage: &ev.lineage,
        }),
        cmd_line: Some(CmdLine(argv)),
        container: container(&x.workload),
        created_time: Some(x.start_time.millis()),
        file: Some(file(binary, own)),
        name: Some(basename(binary)),
        parent_process: parent_process(ev).map(Box::new),
        pid: x.pid,
        ptid: Some(x.tid),
        session: x.login.as_ref().and_then(session),
        terminated_time: None,
        uid,
        user: Some(user(&x.user)),
        working_directory: x.cwd.as_deref(),
    }
}

/// lineage[0], or only the ppid when the lineage is unknown.
fn parent_process(ev: &Event) -> Option<Process<'_>> {
    match ev.lineage.first() {
        Some(a) => {
            let workload = a.workload.as_deref().unwrap_or(&ev.executor.workload);
            Some(Process {
                container: container(workload),
                ..small_process(a.pid, &a.exec_id, &a.binary, &a.argv)
            })
        }
        None => (ev.executor.ppid != 0).then(|| Process {
            pid: ev.executor.ppid,
            ..Process::default()
        }),
    }
}

/// The executor's image in short, for the actor or a parent.
fn executor_process(x: &Executor) -> Process<'_> {
    Process {
        file: Some(file(&x.binary, x.file.as_ref())),
        ptid: Some(x.tid),
        created_time: Some(x.start_time.millis()),
        ..small_process(x.pid, &x.exec_id, &x.binary, &x.argv)
    }
}

fn small_process<'a>(pid: u32, uid: &'a str, binary: &'a str, argv: &'a [String]) -> Process<'a> {
    Process {
        cmd_line: Some(CmdLine(argv)),
        file: Some(file(binary, None)),
        name: Some(basename(binary)),
        pid,
        uid: Some(uid),
        ..Process::default()
    }
}

/// OCSF Fingerprint `algorithm_id` of SHA-256.
const SHA_256: Enum = (3, "SHA-256");

/// The file at `path`; with its content's SHA-256 (`hashes`) when `id`, the
/// executed file as the kernel named it, has one.
fn file<'a>(path: &'a str, id: Option<&'a FileId>) -> File<'a> {
    let hashes = id.and_then(|id| id.sha256.as_deref()).map(|h| {
        [Fingerprint {
            algorithm: SHA_256.1,
            algorithm_id: SHA_256.0,
            value: h,
        }]
    });
    // What exec maps is a regular file; OCSF's "Executable File" is a Windows notion.
    File {
        hashes,
        name: basename(path),
        path,
        type_: "Regular File",
        type_id: 1,
    }
}

/// The real user (the one with a name); euid/egid go to `unmapped.user`, as
/// OCSF has them only in the linux_users profile.
fn user(u: &User) -> UserObject<'_> {
    UserObject {
        groups: [Group {
            name: u.group.as_deref(),
            uid: Text(u.gid),
        }],
        name: u.name.as_deref(),
        uid: Text(u.uid),
    }
}

/// The audit login session; the login uid itself goes to `unmapped.login`.
fn session(l: &Login) -> Option<Session<'_>> {
    let s = Session {
        terminal: l.tty.as_deref(),
        uid: l.session_id.map(Text),
    };
    (s.terminal.is_some() || s.uid.is_some()).then_some(s)
}

fn container(w: &Workload) -> Option<ContainerObject<'_>> {
    let c = w.container.as_ref()?;
    let image = c.image.as_deref().map(|image| Image {
        name: image,
        // image.uid is required: the digest where the reference is pinned to
        // one, else the reference itself, the most specific id we have.
        uid: image.split_once('@').map_or(image, |(_, d)| d),
    });
    let pod = w.pod.as_ref();
    Some(ContainerObject {
        image,
        name: c.name.as_deref(),
        orchestrator: pod.map(|_| "Kubernetes"),
        // Static pods have 32-hex uids, which uuid_t does not take.
        pod_uuid: pod.map(|p| p.uid.as_str()).filter(|u| is_uuid(u)),
        runtime: c.runtime.as_deref(),
        uid: &c.id,
    })
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}
