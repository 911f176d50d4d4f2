//! `executor.requestor`: for each built-in profile (and an operator's one), a
//! process tree started the way that system's runner starts a job step: a
//! stand-in agent named like the real one (a copy of bash: the kernel's comm
//! and the tracer's binary come from the executed file's name) runs a shell
//! step with the system's documented variables and a secret in its
//! environment; the step runs deeper children that connect to a local
//! listener. The requestor must be on the deep children's exec and connect
//! events with the step as its origin, survive `env -i`, show an override as
//! one, and the secret must appear nowhere.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::{LoopbackListener, Tracer, executor_argv, marker, output_within, scratch_dir};

struct Case {
    system: &'static str,
    /// The agent's executable name, and its `$0` (`java -jar agent.jar`).
    agent: Option<(&'static str, &'static str)>,
    vars: &'static [(&'static str, &'static str)],
    /// A secret the system also puts in the step's environment.
    secret_var: &'static str,
    /// The identifying variable an overriding child changes, and its field.
    override_var: &'static str,
    override_field: &'static str,
    /// Field -> value expected on every event of the step's tree.
    want: &'static [(&'static str, &'static str)],
    display: &'static str,
}

const CASES: &[Case] = &[
    Case {
        system: "github-actions",
        agent: Some(("Runner.Worker", "Runner.Worker")),
        vars: &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "9001"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_WORKFLOW", "deploy"),
            ("GITHUB_JOB", "ship"),
            ("GITHUB_REPOSITORY", "octo/app"),
            ("GITHUB_ACTOR", "alice"),
            ("GITHUB_TRIGGERING_ACTOR", "bob"),
            ("GITHUB_SERVER_URL", "https://github.com"),
        ],
        secret_var: "GITHUB_TOKEN",
        override_var: "GITHUB_ACTOR",
        override_field: "actor",
        want: &[
            ("run", "9001"),
            ("attempt", "2"),
            ("workflow", "deploy"),
            ("job", "ship"),
            ("repository", "octo/app"),
            ("actor", "alice"),
            ("triggering_actor", "bob"),
        ],
        display: "octo/app#9001/2 by alice",
    },
    Case {
        system: "gitlab-ci",
        agent: Some(("gitlab-runner", "gitlab-runner")),
        vars: &[
            ("GITLAB_CI", "true"),
            ("CI_PIPELINE_ID", "4711"),
            ("CI_JOB_ID", "4712"),
            ("CI_PROJECT_PATH", "grp/proj"),
            ("GITLAB_USER_LOGIN", "carol"),
        ],
        secret_var: "CI_JOB_TOKEN",
        override_var: "GITLAB_USER_LOGIN",
        override_field: "actor",
        want: &[
            ("run", "4711"),
            ("job", "4712"),
            ("project", "grp/proj"),
            ("actor", "carol"),
        ],
        display: "grp/proj pipeline 4711 job 4712 by carol",
    },
    Case {
        system: "jenkins",
        agent: Some(("java", "/opt/jenkins/agent.jar")),
        vars: &[
            ("JENKINS_URL", "http://jenkins.local/"),
            ("JOB_NAME", "deploy-prod"),
            ("BUILD_NUMBER", "77"),
            ("BUILD_TAG", "jenkins-deploy-prod-77"),
            ("BUILD_USER_ID", "dave"),
        ],
        secret_var: "DEPLOY_PASSWORD",
        override_var: "BUILD_USER_ID",
        override_field: "actor",
        want: &[
            ("job", "deploy-prod"),
            ("run", "77"),
            ("build_tag", "jenkins-deploy-prod-77"),
            ("actor", "dave"),
        ],
        display: "deploy-prod#77 by dave",
    },
    Case {
        system: "buildkite",
        agent: Some(("buildkite-agent", "buildkite-agent")),
        vars: &[
            ("BUILDKITE", "true"),
            ("BUILDKITE_BUILD_ID", "0190-abcd"),
            ("BUILDKITE_BUILD_NUMBER", "12"),
            ("BUILDKITE_PIPELINE_SLUG", "web"),
            ("BUILDKITE_ORGANIZATION_SLUG", "acme"),
            ("BUILDKITE_BUILD_CREATOR", "erin"),
        ],
        secret_var: "BUILDKITE_AGENT_ACCESS_TOKEN",
        override_var: "BUILDKITE_BUILD_CREATOR",
        override_field: "actor",
        want: &[
            ("run", "0190-abcd"),
            ("build_number", "12"),
            ("pipeline", "web"),
            ("organization", "acme"),
            ("actor", "erin"),
        ],
        display: "acme/web#12 by erin",
    },
    Case {
        system: "circleci",
        agent: Some(("circleci-agent", "circleci-agent")),
        vars: &[
            ("CIRCLECI", "true"),
            ("CIRCLE_WORKFLOW_ID", "wf-1"),
            ("CIRCLE_JOB", "build"),
            ("CIRCLE_BUILD_NUM", "33"),
            ("CIRCLE_PROJECT_USERNAME", "acme"),
            ("CIRCLE_PROJECT_REPONAME", "api"),
            ("CIRCLE_USERNAME", "frank"),
        ],
        secret_var: "CIRCLE_OIDC_TOKEN",
        override_var: "CIRCLE_USERNAME",
        override_field: "actor",
        want: &[
            ("run", "wf-1"),
            ("job", "build"),
            ("build", "33"),
            ("actor", "frank"),
        ],
        display: "acme/api build#33 by frank",
    },
    Case {
        system: "argo-workflows",
        agent: Some(("argoexec", "argoexec")),
        vars: &[
            ("ARGO_WORKFLOW_NAME", "nightly-x7k2"),
            ("ARGO_WORKFLOW_UID", "5b1e-uid"),
            ("ARGO_NODE_ID", "nightly-x7k2-123"),
            ("ARGO_POD_NAME", "nightly-x7k2-main-123"),
        ],
        secret_var: "AWS_SECRET_ACCESS_KEY",
        override_var: "ARGO_NODE_ID",
        override_field: "node",
        want: &[
            ("workflow", "nightly-x7k2"),
            ("run", "5b1e-uid"),
            ("node", "nightly-x7k2-123"),
        ],
        display: "nightly-x7k2 node nightly-x7k2-123",
    },
    // An operator's profile (--requestor-profile), its step started by no
    // agent at all: a descendant claim.
    Case {
        system: "deployer",
        agent: None,
        vars: &[("DEPLOYER_RUN", "r-42"), ("DEPLOYER_USER", "grace")],
        secret_var: "DEPLOYER_TOKEN",
        override_var: "DEPLOYER_USER",
        override_field: "actor",
        want: &[("run", "r-42"), ("actor", "grace")],
        display: "r-42 by grace",
    },
];

const OPERATOR_PROFILE: &str = r#"{"name":"deployer","detect":"DEPLOYER_RUN","fields":{"run":"DEPLOYER_RUN","actor":"DEPLOYER_USER"},"display":"{run} by {actor}","agents":["deploy-agent"]}"#;

/// Python that connects to the listener and exits.
fn python(port: u16) -> String {
    format!("import socket; socket.create_connection(('127.0.0.1', {port})).close()")
}

/// The step a runner runs: a deep child (under `sh`), one with its
/// environment cleaned (`env -i`), one that overrides an identifying value.
/// None is its last command (bash would exec that one in its own place).
fn step_script(override_var: &str) -> String {
    format!(
        "sh -c 'python3 -c \"$PY\" \"$MARK\" deep'\n\
         env -i /usr/bin/python3 -c \"$PY\" \"$MARK\" clean\n\
         {override_var}=mallory python3 -c \"$PY\" \"$MARK\" override\n\
         true\n"
    )
}

fn run_case(c: &Case, dir: &Path, port: u16, mark: &str, secret: &str) {
    // The secret reaches the agent through its environment (never an argv,
    // which events carry), and the step under the system's own name.
    let mut assigns: String = c.vars.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    assigns.push_str(&format!("{}=\"$JOBSECRET\" ", c.secret_var));
    // The agent sets the job's variables for the step only, as runners do;
    // the step is not its last command, so bash forks for it rather than
    // exec'ing it in the agent's place.
    let agent_script =
        format!("{assigns}PY=\"$3\" MARK=\"$4\" bash -c \"$1\" \"$2\"; s=$?; exit $s");
    let (bin, arg0): (PathBuf, &str) = match c.agent {
        Some((name, arg0)) => {
            let p = dir.join(name);
            std::fs::copy("/bin/bash", &p).expect("copy bash");
            (p, arg0)
        }
        None => (PathBuf::from("/bin/bash"), "no-agent"),
    };
    let out = output_within(
        Command::new(&bin)
            .args([
                "-c",
                &agent_script,
                arg0,
                &step_script(c.override_var),
                &format!("step-{mark}"),
                &python(port),
                mark,
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("JOBSECRET", secret),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}: {out:?}", c.system);
}

fn req(v: &Value) -> &Value {
    let r = &v["executor"]["requestor"];
    assert!(r.is_object(), "no requestor: {v}");
    r
}

/// A python child's events of `role` (its argv ends with the mark and role).
fn is_child(v: &Value, mark: &str, role: &str, kind: &str) -> bool {
    let a = executor_argv(v);
    v["kind"] == kind
        && a.first().is_some_and(|a0| a0.contains("python3"))
        && a.len() >= 2
        && a[a.len() - 2] == mark
        && a[a.len() - 1] == role
}

fn check_values(c: &Case, r: &Value, what: &str) {
    assert_eq!(r["system"], c.system, "{what}: {r}");
    assert_eq!(r["source"], "environment", "{what}: {r}");
    for (k, want) in c.want {
        assert_eq!(r[*k], *want, "{}: {what}: {k} in {r}", c.system);
    }
    assert_eq!(r["display"], c.display, "{what}: {r}");
}

#[test]
fn requestors_of_each_runner_reach_deep_children() {
    let dir = scratch_dir();
    let ocsf = dir.join("ocsf.jsonl");
    let tracer = Tracer::start(&[
        "--requestor-profile",
        OPERATOR_PROFILE,
        "--ocsf-output",
        ocsf.to_str().unwrap(),
    ]);
    let listener = LoopbackListener::start();
    let mut secrets = Vec::new();
    let mut deep_connects = Vec::new();
    for c in CASES {
        let mark = marker(c.system);
        let secret = format!("s3cr3t-{mark}-value");
        run_case(c, &dir, listener.port, &mark, &secret);
        secrets.push(secret);
        let step_name = format!("step-{mark}");
        let step = tracer.wait_for(1, |v| {
            v["kind"] == "exec" && executor_argv(v).last() == Some(&step_name)
        });
        let step = &step[0];
        let step_id = step["executor"]["exec_id"].as_str().expect("exec_id");
        let r = req(step);
        check_values(c, r, "step");
        assert_eq!(r["inherited_from"], step_id, "the step introduced it: {r}");
        let claim = if c.agent.is_some() {
            "runner"
        } else {
            "descendant"
        };
        assert_eq!(r["claim"], claim, "{}: {r}", c.system);
        assert!(r.get("overrides").is_none(), "{r}");

        // The deep child and the one with a cleaned environment: the step's.
        for role in ["deep", "clean"] {
            for kind in ["exec", "connect"] {
                let ev = tracer.wait_for(1, |v| is_child(v, &mark, role, kind));
                let r = req(&ev[0]);
                check_values(c, r, &format!("{role} {kind}"));
                assert_eq!(r["inherited_from"], step_id, "{role} {kind}: {r}");
                assert_eq!(r["claim"], claim, "{role} {kind}: {r}");
                if role == "deep" && kind == "connect" {
                    deep_connects.push((c.system, step_id.to_owned(), ev[0].clone()));
                }
            }
        }
        // The overriding child is its own origin, a descendant, and says
        // what it replaced.
        for kind in ["exec", "connect"] {
            let ev = tracer.wait_for(1, |v| is_child(v, &mark, "override", kind));
            let own = ev[0]["executor"]["exec_id"].as_str().unwrap();
            let r = req(&ev[0]);
            assert_eq!(r[c.override_field], "mallory", "{r}");
            assert_eq!(r["inherited_from"], own, "{r}");
            assert_eq!(r["claim"], "descendant", "{r}");
            let o = &r["overrides"];
            assert_eq!(o["inherited_from"], step_id, "{r}");
            assert_eq!(o["system"], c.system, "{r}");
            let old = c
                .want
                .iter()
                .find(|(k, _)| *k == c.override_field)
                .unwrap()
                .1;
            assert_eq!(
                o["fields"],
                serde_json::json!({ c.override_field: old }),
                "{r}"
            );
        }
    }

    // OCSF: the system as actor.invoked_by, the whole requestor unmapped.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (system, step_id, ours) in &deep_connects {
        let pid = ours["executor"]["pid"].as_u64();
        let line = loop {
            let text = std::fs::read_to_string(&ocsf).unwrap_or_default();
            let hit = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|o| {
                    o["class_uid"] == 4001
                        && o["actor"]["process"]["pid"].as_u64() == pid
                        && o["unmapped"]["requestor"]["inherited_from"] == step_id.as_str()
                });
            if let Some(o) = hit {
                break o;
            }
            assert!(Instant::now() < deadline, "no OCSF connect for {system}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(line["actor"]["invoked_by"], *system, "{line}");
        assert_eq!(
            line["unmapped"]["requestor"]["display"],
            ours["executor"]["requestor"]["display"]
        );
    }

    // Those OCSF lines validate against OCSF 1.8.0.
    let req_ocsf = dir.join("requestor.ocsf.jsonl");
    let text = std::fs::read_to_string(&ocsf).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"requestor\":{"))
        .collect();
    assert!(lines.len() >= 5 * CASES.len(), "{} OCSF lines", lines.len());
    std::fs::write(&req_ocsf, lines.join("\n") + "\n").unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = output_within(
        Command::new("python3")
            .arg(repo.join("tests/ocsf/validate_ocsf.py"))
            .args(["--version", "1.8.0"])
            .arg(&req_ocsf),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "OCSF validation (run `cargo xtask setup` if modules are missing): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // `tracer tail --requestor` picks a run's events out of the file.
    let out = output_within(
        Command::new(tracer_tests::tracer_bin())
            .args(["tail", "--file"])
            .arg(&tracer.output)
            .args([
                "--from-start",
                "--json",
                "--kind",
                "connect",
                "--requestor",
                "octo/app#9001/*",
                "--count",
                "3",
            ]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    let shown: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("tail --json line"))
        .collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    for v in &shown {
        assert_eq!(
            v["executor"]["requestor"]["system"], "github-actions",
            "{v}"
        );
    }

    for file in [&tracer.output, &ocsf] {
        let text = std::fs::read_to_string(file).unwrap();
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "a secret is in {}",
                file.display()
            );
        }
    }
    tracer_tests::check_schema(&tracer.output);
    assert!(tracer.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_profile_is_refused_at_start() {
    tracer_tests::require_root();
    let cases = [
        (r#"{"name":"x","detect":"X"}"#, "requestor profile"),
        (
            r#"{"name":"x","detect":"X","fields":{"actor":"X_TOKEN"}}"#,
            "credential pattern",
        ),
        (
            r#"{"name":"x","detect":"X","fields":{"run":"X"},"display":"{nope}"}"#,
            "not one of the fields",
        ),
    ];
    for (spec, why) in cases {
        let out = output_within(
            Command::new(tracer_tests::tracer_bin()).args([
                "check-config",
                "--requestor-profile",
                spec,
            ]),
            Duration::from_secs(30),
        );
        assert!(!out.status.success(), "{spec} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{spec}: {err}");
    }
    // The config file's `[[requestor_profile]]` tables are the same profiles.
    let dir = scratch_dir();
    let conf = dir.join("tracer.toml");
    std::fs::write(
        &conf,
        "[[requestor_profile]]\nname = \"deployer\"\ndetect = \"DEPLOYER_RUN\"\n\
         fields = { run = \"DEPLOYER_RUN\", actor = \"DEPLOYER_PASSWORD\" }\n",
    )
    .unwrap();
    let out = output_within(
        Command::new(tracer_tests::tracer_bin()).args([
            "check-config",
            "--config",
            conf.to_str().unwrap(),
        ]),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("deployer") && err.contains("DEPLOYER_PASSWORD"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
