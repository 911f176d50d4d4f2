//! The lineage root: what launched an executor, the part of "what tells
//! executors apart" that the process tree gives.
//!
//! The rule: walk from the executor up its lineage (nearest ancestor first),
//! stopping before pid 1 and before the first ancestor in another workload
//! (the tracer marks those: a container's runtime, outside it). The first
//! process that [`LAUNCHERS`] knows is the root; when none is, the topmost
//! process walked is (a host daemon below pid 1, a container's init).
use super::read::Text;

/// How a launcher's root is told apart further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// By the job it started: the first process below it (a cron job's command).
    Job,
    /// By the login user of the executor's session (an ssh session).
    Login,
    /// Not further: every job of a CI runner is the same automation.
    None,
}

/// How a launcher is recognised.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Match {
    /// The binary's file name is one of these.
    Binary(&'static [&'static str]),
    /// A JVM (`java`) with an argument ending in this (a Jenkins agent jar).
    JavaJar(&'static [&'static str]),
}

/// (kind, label, how recognised, how told apart).
pub(crate) const LAUNCHERS: &[(&str, &str, Match, Detail)] = &[
    (
        "cron",
        "cron",
        Match::Binary(&["cron", "crond", "anacron", "fcron", "cronie"]),
        Detail::Job,
    ),
    (
        "ssh",
        "ssh session",
        Match::Binary(&["sshd", "sshd-session"]),
        Detail::Login,
    ),
    (
        "ci",
        "GitHub Actions runner",
        Match::Binary(&["Runner.Worker", "Runner.Listener"]),
        Detail::None,
    ),
    (
        "ci",
        "GitLab runner",
        Match::Binary(&["gitlab-runner", "gitlab-ci-multi-runner"]),
        Detail::None,
    ),
    (
        "ci",
        "Jenkins agent",
        Match::JavaJar(&["agent.jar", "slave.jar", "remoting.jar"]),
        Detail::None,
    ),
    (
        "ci",
        "Buildkite agent",
        Match::Binary(&["buildkite-agent"]),
        Detail::None,
    ),
];

/// A process of the chain as the report knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proc<'s> {
    pub binary: &'s str,
    pub argv: Argv<'s>,
}

/// An argv from a line or from the report's memory of a process.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Argv<'s> {
    Line(&'s [Text<'s>]),
    Kept(&'s [Box<str>]),
}

impl<'s> Argv<'s> {
    fn iter(self) -> impl Iterator<Item = &'s str> {
        let (a, b) = match self {
            Argv::Line(v) => (Some(v.iter().map(|t| &**t)), None),
            Argv::Kept(v) => (None, Some(v.iter().map(|t| &**t))),
        };
        a.into_iter().flatten().chain(b.into_iter().flatten())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Root {
    /// `cron`, `ssh`, `ci` (a known launcher), `top` (the topmost process walked).
    pub kind: &'static str,
    pub label: String,
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn matches(m: Match, p: &Proc) -> bool {
    let name = basename(p.binary);
    match m {
        Match::Binary(names) => names.contains(&name),
        Match::JavaJar(jars) => {
            name == "java"
                && p.argv
                    .iter()
                    .any(|a| jars.iter().any(|j| basename(a) == *j))
        }
    }
}

/// The command a process ran, short: binary name and arguments, cut.
pub(crate) fn command(p: &Proc) -> String {
    const MAX: usize = 96;
    let mut out = basename(p.binary).to_owned();
    for a in p.argv.iter().skip(1) {
        if out.len() >= MAX {
            break;
        }
        out.push(' ');
        out.push_str(a);
    }
    if out.len() > MAX {
        let mut cut = MAX;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// The root of `chain`: the executor first, then the ancestors walked (already
/// cut at pid 1 and at a workload boundary), nearest first. `login` is the
/// executor's login user (name, or auid).
pub(crate) fn root(chain: &[Proc], login: Option<&str>) -> Root {
    for (i, p) in chain.iter().enumerate() {
        let Some(&(kind, label, _, detail)) = LAUNCHERS.iter().find(|(_, _, m, _)| matches(*m, p))
        else {
            continue;
        };
        let label = match detail {
            Detail::None => label.to_owned(),
            Detail::Login => match login {
                Some(user) => format!("{label}, login {user}"),
                None => label.to_owned(),
            },
            // The first process below the launcher that is not the launcher
            // again (cron forks itself before it runs the job).
            Detail::Job => match chain[..i]
                .iter()
                .rev()
                .find(|q| basename(q.binary) != basename(p.binary))
            {
                Some(job) => format!("{label}: {}", command(job)),
                None => label.to_owned(),
            },
        };
        return Root { kind, label };
    }
    match chain.last() {
        Some(top) => Root {
            kind: "top",
            label: command(top),
        },
        None => Root {
            kind: "top",
            label: "?".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(v: &[&str]) -> Vec<Box<str>> {
        v.iter().map(|s| (*s).into()).collect()
    }

    #[test]
    fn roots_by_case() {
        // (name, chain as (binary, argv) nearest first, login, kind, label)
        type Case = (
            &'static str,
            Vec<(&'static str, Vec<&'static str>)>,
            Option<&'static str>,
            &'static str,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "cron job",
                vec![
                    ("/usr/bin/curl", vec!["curl", "x"]),
                    ("/bin/sh", vec!["sh", "-c", "/opt/backup.sh"]),
                    ("/usr/sbin/cron", vec!["/usr/sbin/cron", "-f"]),
                    ("/usr/sbin/cron", vec!["/usr/sbin/cron", "-f"]),
                    ("/usr/bin/containerd", vec!["containerd"]),
                ],
                None,
                "cron",
                "cron: sh -c /opt/backup.sh",
            ),
            (
                "ssh session with its login user",
                vec![
                    ("/usr/bin/bash", vec!["-bash"]),
                    ("/usr/sbin/sshd", vec!["sshd: alice@pts/0"]),
                    ("/usr/sbin/sshd", vec!["sshd", "-D"]),
                ],
                Some("alice"),
                "ssh",
                "ssh session, login alice",
            ),
            (
                "OpenSSH 9.8 session binary",
                vec![
                    ("/usr/bin/id", vec!["id"]),
                    ("/usr/lib/openssh/sshd-session", vec!["sshd-session"]),
                ],
                None,
                "ssh",
                "ssh session",
            ),
            (
                "GitHub Actions",
                vec![
                    ("/usr/bin/git", vec!["git", "fetch"]),
                    (
                        "/usr/bin/bash",
                        vec!["bash", "/home/runner/work/_temp/1.sh"],
                    ),
                    ("/home/runner/bin/Runner.Worker", vec!["Runner.Worker"]),
                    ("/home/runner/bin/Runner.Listener", vec!["Runner.Listener"]),
                ],
                None,
                "ci",
                "GitHub Actions runner",
            ),
            (
                "GitLab",
                vec![
                    ("/usr/bin/make", vec!["make"]),
                    ("/usr/bin/gitlab-runner", vec!["gitlab-runner", "run"]),
                ],
                None,
                "ci",
                "GitLab runner",
            ),
            (
                "Jenkins agent",
                vec![
                    ("/usr/bin/mvn", vec!["mvn"]),
                    (
                        "/usr/lib/jvm/bin/java",
                        vec!["java", "-jar", "/var/lib/jenkins/agent.jar"],
                    ),
                ],
                None,
                "ci",
                "Jenkins agent",
            ),
            (
                "java that is no agent",
                vec![("/usr/lib/jvm/bin/java", vec!["java", "-jar", "app.jar"])],
                None,
                "top",
                "java -jar app.jar",
            ),
            (
                "Buildkite",
                vec![
                    ("/bin/sh", vec!["sh"]),
                    ("/usr/bin/buildkite-agent", vec!["buildkite-agent", "start"]),
                ],
                None,
                "ci",
                "Buildkite agent",
            ),
            (
                "no launcher: the topmost process",
                vec![
                    ("/usr/bin/curl", vec!["curl"]),
                    ("/usr/local/bin/app", vec!["app", "--serve"]),
                ],
                None,
                "top",
                "app --serve",
            ),
            (
                "the executor alone",
                vec![("/pause", vec!["/pause"])],
                None,
                "top",
                "pause",
            ),
            (
                "a launcher that ran nothing else",
                vec![("/usr/sbin/cron", vec!["cron"])],
                None,
                "cron",
                "cron",
            ),
        ];
        for (name, chain, login, kind, label) in cases {
            let argvs: Vec<Vec<Box<str>>> = chain.iter().map(|(_, a)| kept(a)).collect();
            let procs: Vec<Proc> = chain
                .iter()
                .zip(&argvs)
                .map(|((b, _), a)| Proc {
                    binary: b,
                    argv: Argv::Kept(a),
                })
                .collect();
            let r = root(&procs, login);
            assert_eq!((r.kind, r.label.as_str()), (kind, label), "{name}");
        }
        assert_eq!(root(&[], None).label, "?");
    }

    #[test]
    fn long_commands_are_cut_on_a_char_boundary() {
        let argv = kept(&["sh", "-c", &"é".repeat(100)]);
        let c = command(&Proc {
            binary: "/bin/sh",
            argv: Argv::Kept(&argv),
        });
        assert!(c.len() <= 96 + '…'.len_utf8(), "{}", c.len());
        assert!(c.ends_with('…'));
    }
}
