//! Requestor profiles: which environment variables an automation system (a CI
//! runner, a workflow engine) sets, by its own documentation, to say which run
//! and whose request a process serves. At exec the environment the kernel
//! captured is matched against them; only the variables a profile lists are
//! kept, never one that a credential pattern names.
use std::{collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{
    escape::escape,
    event::{RESERVED_FIELDS, RequestorValues},
    glob::Glob,
    proc::env::CredentialPatterns,
};

/// Bytes of one kept value; longer ones are cut (and the requestor marked).
pub const VALUE_MAX: usize = 256;
/// Bytes of the display string.
pub const DISPLAY_MAX: usize = 512;
/// Fields of one profile.
pub const FIELDS_MAX: usize = 16;
/// Operator-defined profiles.
pub const PROFILES_MAX: usize = 32;
/// Agent patterns of one profile.
const AGENTS_MAX: usize = 16;
/// Bytes of a variable name a profile may list.
const VAR_NAME_MAX: usize = 128;
/// Arguments of the parent looked at for an agent's name (`java -jar agent.jar`).
const AGENT_ARGS: usize = 4;

/// A profile as written: built in, in the config file (`[[requestor_profile]]`)
/// or given as JSON to `--requestor-profile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// `executor.requestor.system`; replaces a built-in profile of that name.
    pub name: String,
    /// `VAR` (set and not empty) or `VAR=value` (set to exactly that).
    pub detect: String,
    /// Field name -> the variable it is read from.
    pub fields: std::collections::BTreeMap<String, String>,
    /// `{field}` placeholders filled in (`?` for a field not set); default:
    /// the fields' values joined with spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Globs on the base name of the system's agent (the parent of a step
    /// it starts): its binary, or one of its first arguments (`agent.jar`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
}

/// A profile that cannot be used, named.
#[derive(Debug, thiserror::Error)]
#[error("requestor profile {name:?}: {why}")]
pub struct ProfileError {
    name: String,
    why: String,
}

/// One built-in profile: name, detection, (field, variable) in output order,
/// display template, agent globs.
type Builtin = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static [&'static str],
);

/// From each system's documentation of the variables it sets for a job's
/// processes (README, "Requestor profiles", links each). Tekton puts no run
/// identity in a step's environment, so it has no profile.
pub const BUILTIN: &[Builtin] = &[
    (
        "github-actions",
        "GITHUB_ACTIONS=true",
        &[
            ("run", "GITHUB_RUN_ID"),
            ("attempt", "GITHUB_RUN_ATTEMPT"),
            ("run_number", "GITHUB_RUN_NUMBER"),
            ("workflow", "GITHUB_WORKFLOW"),
            ("workflow_ref", "GITHUB_WORKFLOW_REF"),
            ("job", "GITHUB_JOB"),
            ("repository", "GITHUB_REPOSITORY"),
            ("actor", "GITHUB_ACTOR"),
            ("actor_id", "GITHUB_ACTOR_ID"),
            ("triggering_actor", "GITHUB_TRIGGERING_ACTOR"),
            ("event", "GITHUB_EVENT_NAME"),
            ("ref", "GITHUB_REF"),
            ("sha", "GITHUB_SHA"),
            ("server", "GITHUB_SERVER_URL"),
        ],
        "{repository}#{run}/{attempt} by {actor}",
        &["Runner.Worker"],
    ),
    (
        "gitlab-ci",
        "GITLAB_CI=true",
        &[
            ("run", "CI_PIPELINE_ID"),
            ("job", "CI_JOB_ID"),
            ("job_name", "CI_JOB_NAME"),
            ("pipeline_source", "CI_PIPELINE_SOURCE"),
            ("project", "CI_PROJECT_PATH"),
            ("ref", "CI_COMMIT_REF_NAME"),
            ("sha", "CI_COMMIT_SHA"),
            ("actor", "GITLAB_USER_LOGIN"),
            ("actor_id", "GITLAB_USER_ID"),
            ("server", "CI_SERVER_URL"),
        ],
        "{project} pipeline {run} job {job} by {actor}",
        &["gitlab-runner", "gitlab-runner-helper"],
    ),
    (
        "jenkins",
        "JENKINS_URL",
        &[
            ("job", "JOB_NAME"),
            ("run", "BUILD_NUMBER"),
            ("build_tag", "BUILD_TAG"),
            ("url", "BUILD_URL"),
            ("node", "NODE_NAME"),
            // Set only by the build-user-vars plugin.
            ("actor", "BUILD_USER_ID"),
            ("actor_name", "BUILD_USER"),
            ("server", "JENKINS_URL"),
        ],
        "{job}#{run} by {actor}",
        &["agent.jar", "remoting.jar", "slave.jar", "jenkins.war"],
    ),
    (
        "buildkite",
        "BUILDKITE=true",
        &[
            ("run", "BUILDKITE_BUILD_ID"),
            ("build_number", "BUILDKITE_BUILD_NUMBER"),
            ("job", "BUILDKITE_JOB_ID"),
            ("step", "BUILDKITE_STEP_KEY"),
            ("label", "BUILDKITE_LABEL"),
            ("pipeline", "BUILDKITE_PIPELINE_SLUG"),
            ("organization", "BUILDKITE_ORGANIZATION_SLUG"),
            ("actor", "BUILDKITE_BUILD_CREATOR"),
            ("actor_email", "BUILDKITE_BUILD_CREATOR_EMAIL"),
            ("unblocker", "BUILDKITE_UNBLOCKER"),
            ("retry", "BUILDKITE_RETRY_COUNT"),
            ("url", "BUILDKITE_BUILD_URL"),
        ],
        "{organization}/{pipeline}#{build_number} by {actor}",
        &["buildkite-agent"],
    ),
    (
        "circleci",
        "CIRCLECI=true",
        &[
            ("run", "CIRCLE_WORKFLOW_ID"),
            ("job", "CIRCLE_JOB"),
            ("build", "CIRCLE_BUILD_NUM"),
            ("workflow_job", "CIRCLE_WORKFLOW_JOB_ID"),
            ("organization", "CIRCLE_PROJECT_USERNAME"),
            ("project", "CIRCLE_PROJECT_REPONAME"),
            ("actor", "CIRCLE_USERNAME"),
            ("branch", "CIRCLE_BRANCH"),
            ("sha", "CIRCLE_SHA1"),
            ("url", "CIRCLE_BUILD_URL"),
        ],
        "{organization}/{project} {job}#{build} by {actor}",
        &["circleci-agent"],
    ),
    (
        "argo-workflows",
        "ARGO_WORKFLOW_NAME",
        &[
            ("workflow", "ARGO_WORKFLOW_NAME"),
            ("run", "ARGO_WORKFLOW_UID"),
            ("node", "ARGO_NODE_ID"),
            ("template", "ARGO_TEMPLATE"),
            ("pod", "ARGO_POD_NAME"),
            ("container", "ARGO_CONTAINER_NAME"),
        ],
        "{workflow} node {node}",
        &["argoexec"],
    ),
];

impl ProfileSpec {
    fn builtin(b: &Builtin) -> ProfileSpec {
        let (name, detect, fields, display, agents) = *b;
        ProfileSpec {
            name: name.into(),
            detect: detect.into(),
            fields: fields
                .iter()
                .map(|(f, v)| ((*f).into(), (*v).into()))
                .collect(),
            display: Some(display.into()),
            agents: agents.iter().map(|a| (*a).into()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Field(usize),
}

#[derive(Debug)]
struct Profile {
    name: Arc<str>,
    /// The detection variable's required value; None: any non-empty one.
    detect_value: Option<Box<[u8]>>,
    fields: Vec<Arc<str>>,
    display: Vec<Piece>,
    agents: Vec<Glob>,
}

/// Which slot of a profile a variable fills.
const DETECT: u16 = u16::MAX;

/// The compiled profiles: operator-defined ones first (in the order given),
/// then the built-ins they do not replace. The first profile whose detection
/// variable matches and that keeps at least one value wins.
#[derive(Debug)]
pub struct Profiles {
    profiles: Vec<Profile>,
    /// Variable name -> (profile, slot) it fills.
    vars: HashMap<Box<[u8]>, Vec<(u16, u16)>>,
    /// Whether some variable name starts with this byte: most entries of an
    /// environment are passed over without hashing their name.
    first_bytes: [bool; 256],
}

fn valid_var(v: &str) -> bool {
    !v.is_empty() && v.len() <= VAR_NAME_MAX && !v.contains(['=', '\0'])
}

fn valid_name(s: &str, max: usize, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || extra.contains(&c))
}

/// Template `t` as pieces; `{name}` must name one of `fields`, or one of
/// `dropped` (a built-in's field a credential pattern names: shown as `?`).
fn parse_display(t: &str, fields: &[Arc<str>], dropped: &[&str]) -> Result<Vec<Piece>, String> {
    if t.len() > DISPLAY_MAX {
        return Err(format!("display: longer than {DISPLAY_MAX} bytes"));
    }
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("display: `}}` without `{{` in {t:?}"));
        }
        if open > 0 {
            out.push(Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("display: `{{` without `}}` in {t:?}"))?;
        let name = &after[..close];
        match fields.iter().position(|f| &**f == name) {
            Some(at) => out.push(Piece::Field(at)),
            None if dropped.contains(&name) => out.push(Piece::Text("?".into())),
            None => return Err(format!("display: `{{{name}}}` is not one of the fields")),
        }
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

/// `s` cut to `max` bytes at a character boundary; whether it was cut.
fn cut(mut s: String, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    (s, true)
}

impl Profile {
    /// `spec` compiled; a listed variable that `credentials` names is an
    /// error for an operator's profile and left out of a built-in one.
    fn compile(
        spec: &ProfileSpec,
        credentials: &CredentialPatterns,
        builtin: bool,
    ) -> Result<Option<(Profile, Vec<String>, String)>, ProfileError> {
        let bad = |why: String| ProfileError {
            name: spec.name.clone(),
            why,
        };
        if !valid_name(&spec.name, 64, &['-', '.']) {
            return Err(bad(
                "name: 1 to 64 of a-z, 0-9, `_`, `-`, `.` (it is `system` in events)".into(),
            ));
        }
        let (detect_var, detect_value) = match spec.detect.split_once('=') {
            Some((var, value)) => (var, Some(value.as_bytes().into())),
            None => (spec.detect.as_str(), None),
        };
        if !valid_var(detect_var) {
            return Err(bad(format!(
                "detect: {:?} is not VAR or VAR=value",
                spec.detect
            )));
        }
        if spec.fields.is_empty() || spec.fields.len() > FIELDS_MAX {
            return Err(bad(format!("fields: 1 to {FIELDS_MAX} of them")));
        }
        let mut fields = Vec::new();
        let mut vars = Vec::new();
        let mut dropped = Vec::new();
        // Built-ins keep their documented order; a spec's map is sorted.
        let ordered: Vec<(&str, &str)> = match BUILTIN.iter().find(|b| b.0 == spec.name) {
            Some(b) if builtin => b.2.to_vec(),
            _ => spec
                .fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        };
        for (field, var) in ordered {
            if !valid_name(field, 32, &[]) || RESERVED_FIELDS.contains(&field) {
                return Err(bad(format!(
                    "field {field:?}: 1 to 32 of a-z, 0-9, `_`, and not one of {}",
                    RESERVED_FIELDS.join(", ")
                )));
            }
            if !valid_var(var) {
                return Err(bad(format!(
                    "field {field}: {var:?} is not a variable name"
                )));
            }
            if credentials.matches(&var.to_ascii_uppercase()) {
                if builtin {
                    tracing::warn!(
                        profile = %spec.name, variable = var,
                        "a credential pattern names this variable: not kept"
                    );
                    dropped.push(field);
                    continue;
                }
                return Err(bad(format!(
                    "field {field}: {var} is named by a credential pattern (--credential-env) and is never kept"
                )));
            }
            fields.push(Arc::<str>::from(field));
            vars.push(var.to_owned());
        }
        if fields.is_empty() {
            // Only a built-in gets here: every field of it is a credential
            // by the operator's patterns. Left out, not a reason to stop.
            tracing::warn!(profile = %spec.name, "every variable is named by a credential pattern: profile not used");
            return Ok(None);
        }
        let display = match &spec.display {
            Some(t) => parse_display(t, &fields, &dropped).map_err(bad)?,
            None => {
                let mut p = Vec::new();
                for i in 0..fields.len() {
                    if i > 0 {
                        p.push(Piece::Text(" ".into()));
                    }
                    p.push(Piece::Field(i));
                }
                p
            }
        };
        if spec.agents.len() > AGENTS_MAX {
            return Err(bad(format!("agents: at most {AGENTS_MAX}")));
        }
        let agents = spec
            .agents
            .iter()
            .map(|a| Glob::text(a).map_err(|e| bad(format!("agent {a:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(Some((
            Profile {
                name: spec.name.as_str().into(),
                detect_value,
                fields,
                display,
                agents,
            },
            vars,
            detect_var.to_owned(),
        )))
    }
}

/// What a profile kept from one environment, and which profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    profile: usize,
    pub values: RequestorValues,
}

impl Profiles {
    /// `operator`'s profiles, then the built-ins they do not replace.
    pub fn new(
        operator: &[ProfileSpec],
        credentials: &CredentialPatterns,
    ) -> Result<Profiles, ProfileError> {
        if operator.len() > PROFILES_MAX {
            return Err(ProfileError {
                name: operator[PROFILES_MAX].name.clone(),
                why: format!("at most {PROFILES_MAX} profiles"),
            });
        }
        let builtins: Vec<ProfileSpec> = BUILTIN.iter().map(ProfileSpec::builtin).collect();
        let mut out = Profiles {
            profiles: Vec::new(),
            vars: HashMap::new(),
            first_bytes: [false; 256],
        };
        let specs = operator.iter().map(|s| (s, false)).chain(
            builtins
                .iter()
                .filter(|b| operator.iter().all(|o| o.name != b.name))
                .map(|s| (s, true)),
        );
        for (spec, builtin) in specs {
            if out.profiles.iter().any(|p| *p.name == *spec.name) {
                return Err(ProfileError {
                    name: spec.name.clone(),
                    why: "defined twice".into(),
                });
            }
            let Some((profile, vars, detect)) = Profile::compile(spec, credentials, builtin)?
            else {
                continue;
            };
            // Bounded above: at most PROFILES_MAX + built-ins, FIELDS_MAX each.
            let at = out.profiles.len() as u16;
            let slots = vars
                .iter()
                .enumerate()
                .map(|(i, v)| (v.as_str(), i as u16))
                .chain([(detect.as_str(), DETECT)]);
            for (var, slot) in slots {
                out.first_bytes[usize::from(var.as_bytes()[0])] = true;
                out.vars
                    .entry(var.as_bytes().into())
                    .or_default()
                    .push((at, slot));
            }
            out.profiles.push(profile);
        }
        Ok(out)
    }

    /// The built-in profiles with the built-in credential patterns.
    pub fn defaults() -> Profiles {
        // The built-ins are valid: an error here is a bug in them (tested).
        Profiles::new(&[], &CredentialPatterns::defaults()).unwrap_or_else(|_| Profiles {
            profiles: Vec::new(),
            vars: HashMap::new(),
            first_bytes: [false; 256],
        })
    }

    /// The requestor `env` (NUL-separated `NAME=value`) names, if any profile
    /// detects its system there and keeps a value. The first definition of
    /// a name wins, as `getenv` finds it.
    pub fn find(&self, env: &[u8]) -> Option<Found> {
        // (profile, slot, value) of each listed variable set; empty (no
        // allocation) for the environments of most processes.
        let mut hits: Vec<(u16, u16, &[u8])> = Vec::new();
        // Entries found with memchr (SIMD) rather than a byte-by-byte split:
        // this runs on every exec, over environments of a few KiB.
        let mut rest = env;
        while !rest.is_empty() {
            let end = memchr::memchr(0, rest).unwrap_or(rest.len());
            let entry = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or_default();
            let Some(&first) = entry.first() else {
                continue;
            };
            if !self.first_bytes[usize::from(first)] {
                continue;
            }
            let Some(eq) = memchr::memchr(b'=', entry) else {
                continue;
            };
            if let Some(uses) = self.vars.get(&entry[..eq]) {
                for &(p, slot) in uses {
                    if !hits.iter().any(|&(q, s, _)| q == p && s == slot) {
                        hits.push((p, slot, &entry[eq + 1..]));
                    }
                }
            }
        }
        if hits.is_empty() {
            return None;
        }
        for (i, profile) in self.profiles.iter().enumerate() {
            let at = i as u16;
            let detected = hits.iter().any(|&(p, s, v)| {
                p == at
                    && s == DETECT
                    && match &profile.detect_value {
                        Some(want) => v == &**want,
                        None => !v.is_empty(),
                    }
            });
            if !detected {
                continue;
            }
            let mut fields = Vec::new();
            let mut truncated = false;
            for (slot, name) in profile.fields.iter().enumerate() {
                let value = hits
                    .iter()
                    .find(|&&(p, s, _)| p == at && usize::from(s) == slot)
                    .map(|&(_, _, v)| v);
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    let (v, was_cut) = cut(escape(v), VALUE_MAX);
                    truncated |= was_cut;
                    fields.push((name.clone(), v));
                }
            }
            if fields.is_empty() {
                continue;
            }
            let mut display = String::new();
            for piece in &profile.display {
                match piece {
                    Piece::Text(t) => display.push_str(t),
                    Piece::Field(f) => {
                        let name = &profile.fields[*f];
                        match fields.iter().find(|(k, _)| k == name) {
                            Some((_, v)) => display.push_str(v),
                            None => display.push('?'),
                        }
                    }
                }
            }
            let (display, _) = cut(display, DISPLAY_MAX);
            return Some(Found {
                profile: i,
                values: RequestorValues {
                    system: profile.name.clone(),
                    fields,
                    truncated,
                    display,
                },
            });
        }
        None
    }

    /// Whether a parent running `binary` with `argv` is the agent of the
    /// system `found` came from.
    pub fn is_agent(&self, found: &Found, binary: &str, argv: &[String]) -> bool {
        let Some(p) = self.profiles.get(found.profile) else {
            return false;
        };
        let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
        let mut names =
            std::iter::once(base(binary)).chain(argv.iter().take(AGENT_ARGS).map(|a| base(a)));
        names.any(|n| !n.is_empty() && p.agents.iter().any(|g| g.matches(&n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<u8> {
        vars.iter()
            .flat_map(|(k, v)| format!("{k}={v}\0").into_bytes())
            .collect()
    }

    #[test]
    fn builtins_compile_and_keep_no_credential() {
        let p = Profiles::defaults();
        assert_eq!(p.profiles.len(), BUILTIN.len());
        let creds = CredentialPatterns::defaults();
        for b in BUILTIN {
            for (_, var) in b.2 {
                assert!(!creds.matches(var), "{} lists {var}", b.0);
            }
        }
    }

    #[test]
    fn matcher() {
        let p = Profiles::defaults();
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, &'a str)>,
            Option<(&'a str, &'a [(&'a str, &'a str)], &'a str)>,
        );
        let gh = vec![
            ("PATH", "/bin"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_ID", "9001"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_REPOSITORY", "octo/app"),
            ("GITHUB_ACTOR", "alice"),
            ("GITHUB_TOKEN", "ghs_secret"),
            ("GITHUB_RUN_ID", "shadowed"),
        ];
        let cases: Vec<Case> = vec![
            ("nothing", vec![("PATH", "/bin")], None),
            (
                "github",
                gh.clone(),
                Some((
                    "github-actions",
                    &[
                        ("run", "9001"),
                        ("attempt", "2"),
                        ("repository", "octo/app"),
                        ("actor", "alice"),
                    ],
                    "octo/app#9001/2 by alice",
                )),
            ),
            (
                "detection value must match",
                vec![("GITHUB_ACTIONS", "false"), ("GITHUB_RUN_ID", "1")],
                None,
            ),
            (
                "detected but nothing kept",
                vec![("GITHUB_ACTIONS", "true"), ("GITHUB_TOKEN", "x")],
                None,
            ),
            (
                "values without the detection variable",
                vec![("GITHUB_RUN_ID", "1"), ("GITHUB_ACTOR", "a")],
                None,
            ),
            (
                "gitlab",
                vec![
                    ("GITLAB_CI", "true"),
                    ("CI_PIPELINE_ID", "77"),
                    ("CI_JOB_ID", "78"),
                    ("CI_PROJECT_PATH", "g/p"),
                    ("GITLAB_USER_LOGIN", "bob"),
                    ("CI_JOB_TOKEN", "secret"),
                ],
                Some((
                    "gitlab-ci",
                    &[
                        ("run", "77"),
                        ("job", "78"),
                        ("project", "g/p"),
                        ("actor", "bob"),
                    ],
                    "g/p pipeline 77 job 78 by bob",
                )),
            ),
            (
                "jenkins, any URL, no build-user plugin",
                vec![
                    ("JENKINS_URL", "http://ci/"),
                    ("JOB_NAME", "deploy"),
                    ("BUILD_NUMBER", "5"),
                ],
                Some((
                    "jenkins",
                    &[("job", "deploy"), ("run", "5"), ("server", "http://ci/")],
                    "deploy#5 by ?",
                )),
            ),
            (
                "empty values are not set",
                vec![
                    ("JENKINS_URL", "x"),
                    ("JOB_NAME", ""),
                    ("BUILD_NUMBER", "5"),
                ],
                Some(("jenkins", &[("run", "5"), ("server", "x")], "?#5 by ?")),
            ),
            (
                "escaped as argv is",
                vec![("CIRCLECI", "true"), ("CIRCLE_USERNAME", "a\\b")],
                Some(("circleci", &[("actor", "a\\\\b")], "?/? ?#? by a\\\\b")),
            ),
        ];
        for (what, vars, want) in cases {
            let got = p.find(&env(&vars)).map(|f| f.values);
            let want = want.map(|(system, fields, display)| RequestorValues {
                system: system.into(),
                fields: fields
                    .iter()
                    .map(|(k, v)| (Arc::from(*k), (*v).to_owned()))
                    .collect(),
                truncated: false,
                display: display.into(),
            });
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn values_are_cut_and_marked() {
        let p = Profiles::defaults();
        let long = "é".repeat(VALUE_MAX);
        let f = p
            .find(&env(&[
                ("BUILDKITE", "true"),
                ("BUILDKITE_BUILD_CREATOR", &long),
            ]))
            .unwrap();
        assert!(f.values.truncated);
        let v = f.values.get("actor").unwrap();
        assert!(v.len() <= VALUE_MAX && long.starts_with(v));
        assert!(f.values.display.len() <= DISPLAY_MAX);
        // A copy the probe cut: the last entry has no NUL, and still counts.
        let f = p.find(b"GITHUB_ACTIONS=true\0\0GITHUB_RUN_ID=7").unwrap();
        assert_eq!(f.values.get("run"), Some("7"));
    }

    #[test]
    fn agents() {
        let p = Profiles::defaults();
        let gh = p
            .find(&env(&[("GITHUB_ACTIONS", "true"), ("GITHUB_RUN_ID", "1")]))
            .unwrap();
        let jk = p
            .find(&env(&[("JENKINS_URL", "x"), ("BUILD_NUMBER", "1")]))
            .unwrap();
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&Found, &str, &[&str], bool)] = &[
            (
                &gh,
                "/home/runner/bin/Runner.Worker",
                &["Runner.Worker"],
                true,
            ),
            (&gh, "/bin/bash", &["bash", "-e", "step.sh"], false),
            (&gh, "/usr/bin/gitlab-runner", &["gitlab-runner"], false),
            (
                &jk,
                "/usr/bin/java",
                &["java", "-jar", "/opt/agent.jar"],
                true,
            ),
            (&jk, "/usr/bin/java", &["java", "-jar", "app.jar"], false),
        ];
        for (found, binary, argv, want) in cases {
            assert_eq!(
                p.is_agent(found, binary, &v(argv)),
                *want,
                "{binary} {argv:?}"
            );
        }
    }

    fn spec(
        name: &str,
        detect: &str,
        fields: &[(&str, &str)],
        display: Option<&str>,
    ) -> ProfileSpec {
        ProfileSpec {
            name: name.into(),
            detect: detect.into(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            display: display.map(Into::into),
            agents: vec!["my-agent".into()],
        }
    }

    #[test]
    fn operator_profiles_come_first_and_bad_ones_are_named() {
        let creds = CredentialPatterns::defaults();
        let mine = spec(
            "deployer",
            "DEPLOYER_RUN",
            &[("run", "DEPLOYER_RUN"), ("actor", "DEPLOYER_USER")],
            Some("{run} by {actor}"),
        );
        let p = Profiles::new(std::slice::from_ref(&mine), &creds).unwrap();
        let f = p
            .find(&env(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_RUN_ID", "1"),
                ("DEPLOYER_RUN", "r1"),
                ("DEPLOYER_USER", "carol"),
            ]))
            .unwrap();
        assert_eq!(&*f.values.system, "deployer");
        assert_eq!(f.values.display, "r1 by carol");
        // Replacing a built-in by name.
        let gh = spec(
            "github-actions",
            "GITHUB_ACTIONS",
            &[("run", "GITHUB_RUN_ID")],
            None,
        );
        let p = Profiles::new(&[gh], &creds).unwrap();
        let f = p
            .find(&env(&[
                ("GITHUB_ACTIONS", "yes"),
                ("GITHUB_RUN_ID", "1"),
                ("GITHUB_ACTOR", "a"),
            ]))
            .unwrap();
        assert_eq!(f.values.fields, vec![(Arc::from("run"), "1".to_owned())]);
        assert_eq!(f.values.display, "1");
        let bad: &[(ProfileSpec, &str)] = &[
            (spec("Bad Name", "X", &[("a", "X")], None), "name"),
            (spec("x", "=1", &[("a", "X")], None), "detect"),
            (spec("x", "X", &[], None), "fields"),
            (spec("x", "X", &[("system", "X")], None), "system"),
            (spec("x", "X", &[("A", "X")], None), "field"),
            (spec("x", "X", &[("a", "X=Y")], None), "variable name"),
            (spec("x", "X", &[("a", "DEPLOY_TOKEN")], None), "credential"),
            (spec("x", "X", &[("a", "X")], Some("{b}")), "not one of"),
            (spec("x", "X", &[("a", "X")], Some("{a")), "without"),
            (spec("x", "X", &[("a", "X")], Some("a}")), "without"),
        ];
        for (s, why) in bad {
            let e = Profiles::new(std::slice::from_ref(s), &creds)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(why), "{s:?}: {e}");
        }
        let e = Profiles::new(&[mine.clone(), mine], &creds).err().unwrap();
        assert!(e.to_string().contains("twice"), "{e}");
        let many: Vec<_> = (0..=PROFILES_MAX)
            .map(|i| spec(&format!("p{i}"), "X", &[("a", "X")], None))
            .collect();
        assert!(Profiles::new(&many, &creds).is_err());
        let agents = ProfileSpec {
            agents: vec!["x\\".into()],
            ..spec("x", "X", &[("a", "X")], None)
        };
        assert!(Profiles::new(&[agents], &creds).is_err());
    }

    /// An operator's credential pattern that names a built-in's field: the
    /// field is not kept and its placeholder shows `?`; the tracer still starts.
    #[test]
    fn a_credential_pattern_removes_a_builtin_field() {
        let creds = CredentialPatterns::new(&["GITHUB_ACTOR"]).unwrap();
        let p = Profiles::new(&[], &creds).unwrap();
        let f = p
            .find(&env(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_RUN_ID", "1"),
                ("GITHUB_RUN_ATTEMPT", "1"),
                ("GITHUB_REPOSITORY", "o/r"),
                ("GITHUB_ACTOR", "alice"),
            ]))
            .unwrap();
        assert_eq!(f.values.get("actor"), None);
        assert_eq!(f.values.display, "o/r#1/1 by ?");
        // Every variable a credential: the built-in is left out, no error.
        let p = Profiles::new(&[], &CredentialPatterns::new(&["*"]).unwrap()).unwrap();
        assert!(p.profiles.is_empty());
    }

    #[test]
    fn specs_parse_from_json_and_reject_unknown_keys() {
        let s: ProfileSpec = serde_json::from_str(
            r#"{"name":"x","detect":"X=1","fields":{"run":"X_RUN"},"agents":["a"]}"#,
        )
        .unwrap();
        assert_eq!(s.fields["run"], "X_RUN");
        assert!(
            serde_json::from_str::<ProfileSpec>(
                r#"{"name":"x","detect":"X","fields":{},"oops":1}"#
            )
            .is_err()
        );
    }
}
