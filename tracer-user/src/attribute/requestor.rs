//! `executor.requestor`: matched from an image's own environment at its exec
//! (or at the /proc scan), else inherited, so that a process three levels
//! under a CI step still names the run even if its environment was cleaned
//! (`env -i`, sudo).
use std::sync::Arc;

use super::Attributor;
use crate::{
    event::{Overrides, Requestor, RequestorClaim, RequestorValues},
    proc::table::Process,
};

/// The fields of `old` that `new` changes, with their old values (None: `old`
/// did not have the field).
fn changed(old: &RequestorValues, new: &RequestorValues) -> Vec<(Arc<str>, Option<String>)> {
    let mut out: Vec<(Arc<str>, Option<String>)> = new
        .fields
        .iter()
        .filter(|(k, v)| old.get(k) != Some(v.as_str()))
        .map(|(k, _)| (k.clone(), old.get(k).map(str::to_owned)))
        .collect();
    out.extend(
        old.fields
            .iter()
            .filter(|(k, _)| new.get(k).is_none())
            .map(|(k, v)| (k.clone(), Some(v.clone()))),
    );
    out.sort();
    out
}

impl Attributor {
    /// The requestor of image `p`, whose environment at exec was `env`.
    ///
    /// What it would inherit is its process's previous entry (its fork
    /// child, which carries its parent's, or the image it replaced) when that
    /// is the same process, else its parent's. Its own environment naming
    /// the same values keeps that one (same origin, same `Arc`); naming
    /// other values makes this image the origin, overriding what it would
    /// have inherited; naming none inherits.
    pub(super) fn requestor_of(&self, p: &Process, env: &[u8]) -> Option<Arc<Requestor>> {
        // A parent that started after its child is a reused pid, not the parent.
        let parent = self
            .table
            .get(p.ppid)
            .filter(|q| q.pid != p.pid && q.start_ticks <= p.start_ticks);
        let before = self
            .table
            .get(p.pid)
            .filter(|q| q.start_ticks == p.start_ticks)
            .and_then(|q| q.requestor.clone())
            .or_else(|| parent.and_then(|q| q.requestor.clone()));
        let Some(found) = self.requestor_profiles.find(env) else {
            return before;
        };
        if let Some(b) = &before
            && b.values == found.values
        {
            return before;
        }
        let claim = match parent {
            Some(q) if self.requestor_profiles.is_agent(&found, &q.binary, &q.argv) => {
                RequestorClaim::Runner
            }
            _ => RequestorClaim::Descendant,
        };
        let overrides = before.map(|b| Overrides {
            inherited_from: b.inherited_from.clone(),
            system: b.values.system.clone(),
            fields: changed(&b.values, &found.values),
        });
        Some(Arc::new(Requestor {
            values: found.values,
            inherited_from: p.exec_id.clone(),
            claim,
            overrides,
        }))
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{ConnectRecord, ExecRecord, TaskInfo};

    use super::super::scenarios::{FakeHost, attributor_on};
    use super::*;
    use crate::decode::{Exec, Record};

    /// The records of a small process tree, as the kernel would send them.
    struct Tree {
        a: Attributor,
        tasks: std::collections::HashMap<u32, TaskInfo>,
        images: u64,
    }

    impl Tree {
        fn new() -> Tree {
            Tree {
                a: attributor_on(FakeHost::default(), "/nonexistent".into(), false),
                tasks: Default::default(),
                images: 0,
            }
        }

        fn fork(&mut self, parent: u32, child: u32) {
            let mut t = self.tasks.get(&parent).copied().unwrap_or(TaskInfo {
                tgid: parent,
                ..TaskInfo::default()
            });
            (t.tgid, t.tid, t.ptgid) = (child, child, parent);
            // Later pids start later (whole seconds: distinct clock ticks).
            t.start_boottime_ns = u64::from(child) * 1_000_000_000;
            self.tasks.insert(child, t);
            self.a.handle(Record::Fork {
                ts_boot_ns: t.start_boottime_ns,
                task: t,
            });
        }

        /// `pid` execs `path` with environment `env`; its exec event.
        fn exec(&mut self, pid: u32, path: &str, env: &[(&str, &str)]) -> crate::event::Event {
            self.images += 1;
            let n = self.images;
            let mut t = self.tasks[&pid];
            (t.arg_start, t.start_code, t.start_brk) = (0x7000 + n, 0x5000 + n, 0x6000 + n);
            t.exec_seq += 1;
            self.tasks.insert(pid, t);
            let mut at_random = [0; 16];
            at_random[..8].copy_from_slice(&n.to_le_bytes());
            let rec = ExecRecord {
                task: t,
                at_random,
                ..Default::default()
            };
            let env = env
                .iter()
                .flat_map(|(k, v)| format!("{k}={v}\0").into_bytes())
                .collect();
            let exec = Exec {
                rec,
                path: path.as_bytes().to_vec(),
                argv: format!("{path}\0").into_bytes(),
                env,
                cwd: None,
            };
            self.a.handle(Record::Exec(exec)).expect("exec event").event
        }

        fn connect(&mut self, pid: u32) -> crate::event::Event {
            let mut c = ConnectRecord {
                task: self.tasks[&pid],
                family: tracer_common::AF_INET,
                protocol: 6,
                dport: 443,
                op: tracer_common::CONNECT_OP_CONNECT,
                ..Default::default()
            };
            c.daddr[..4].copy_from_slice(&[10, 0, 0, 1]);
            self.a.handle(Record::Connect(c)).expect("connect").event
        }
    }

    fn requestor(ev: &crate::event::Event) -> Arc<Requestor> {
        ev.executor.requestor.clone().expect("a requestor")
    }

    const GH: &[(&str, &str)] = &[
        ("PATH", "/bin"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_RUN_ID", "9001"),
        ("GITHUB_ACTOR", "alice"),
        ("GITHUB_TOKEN", "ghs_secret"),
    ];

    #[test]
    fn origin_inheritance_claim_and_override() {
        let mut t = Tree::new();
        t.fork(1, 10);
        let agent = t.exec(10, "/opt/runner/bin/Runner.Worker", &[("PATH", "/bin")]);
        assert!(agent.executor.requestor.is_none());
        // The step: its environment introduces the values; its parent is the agent.
        t.fork(10, 11);
        let step = t.exec(11, "/bin/bash", GH);
        let r = requestor(&step);
        assert_eq!(r.inherited_from, step.executor.exec_id);
        assert_eq!(r.claim, RequestorClaim::Runner);
        assert!(r.overrides.is_none());
        assert_eq!(r.values.get("actor"), Some("alice"));
        assert!(
            !crate::escape::to_vec(&step)
                .map(|j| String::from_utf8_lossy(&j).contains("ghs_secret"))
                .unwrap_or(true)
        );
        type Case<'a> = (&'a str, u32, &'a [(&'a str, &'a str)]);
        // Same values, none, or only unrelated ones: the step's, shared.
        let inherit: &[Case] = &[
            ("same environment", 12, GH),
            ("env -i", 13, &[]),
            ("unrelated variables", 14, &[("PATH", "/usr/bin")]),
        ];
        for (what, pid, env) in inherit {
            t.fork(11, *pid);
            let ev = t.exec(*pid, "/usr/bin/python3", env);
            assert!(Arc::ptr_eq(&requestor(&ev), &r), "{what}");
            assert!(
                Arc::ptr_eq(&requestor(&t.connect(*pid)), &r),
                "{what}: connect"
            );
        }
        // A grandchild of a cleaned child still names the step.
        t.fork(13, 15);
        assert!(Arc::ptr_eq(
            &requestor(&t.exec(15, "/usr/bin/curl", &[])),
            &r
        ));
        // Another actor: its own origin, a descendant, naming what it replaced.
        t.fork(11, 16);
        let mut env = GH.to_vec();
        env[3] = ("GITHUB_ACTOR", "mallory");
        let ev = t.exec(16, "/usr/bin/python3", &env);
        let o = requestor(&ev);
        assert_eq!(o.inherited_from, ev.executor.exec_id);
        assert_eq!(o.claim, RequestorClaim::Descendant);
        let over = o.overrides.as_ref().expect("overrides");
        assert_eq!(over.inherited_from, step.executor.exec_id);
        assert_eq!(
            over.fields,
            vec![(Arc::from("actor"), Some("alice".to_owned()))]
        );
        // Its children inherit the override.
        t.fork(16, 17);
        assert!(Arc::ptr_eq(&requestor(&t.exec(17, "/bin/sh", &env)), &o));
        // Values set with no agent above: a descendant claim.
        t.fork(1, 20);
        let ev = t.exec(20, "/bin/bash", GH);
        let d = requestor(&ev);
        assert_eq!(d.claim, RequestorClaim::Descendant);
        assert!(d.overrides.is_none());
    }

    #[test]
    fn changed_lists_old_values_sorted() {
        let v = |f: &[(&str, &str)]| RequestorValues {
            system: "s".into(),
            fields: f
                .iter()
                .map(|(k, v)| (Arc::from(*k), (*v).to_owned()))
                .collect(),
            truncated: false,
            display: String::new(),
        };
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, Option<&'a str>)],
        );
        let cases: &[Case] = &[
            (&[("run", "1")], &[("run", "1")], &[]),
            (&[("run", "1")], &[("run", "2")], &[("run", Some("1"))]),
            (
                &[("run", "1"), ("actor", "a")],
                &[("run", "1")],
                &[("actor", Some("a"))],
            ),
            (
                &[("run", "1")],
                &[("run", "1"), ("actor", "b")],
                &[("actor", None)],
            ),
            (
                &[("run", "1"), ("actor", "a")],
                &[("run", "2"), ("actor", "b")],
                &[("actor", Some("a")), ("run", Some("1"))],
            ),
        ];
        for (old, new, want) in cases {
            let got = changed(&v(old), &v(new));
            let want: Vec<(Arc<str>, Option<String>)> = want
                .iter()
                .map(|(k, v)| (Arc::from(*k), v.map(str::to_owned)))
                .collect();
            assert_eq!(got, want, "{old:?} -> {new:?}");
        }
    }
}
