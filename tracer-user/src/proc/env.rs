//! The environment an image started with (NUL-separated `NAME=value`, as the
//! probe copies it from the new stack or `/proc/<pid>/environ` shows it), cut
//! down to what the tracer reports: the dynamic loader's variables (with their
//! values), and the *names* of the variables that hold credentials. Every
//! other value (tokens, passwords) is dropped here, never kept or emitted.
use std::{collections::HashSet, sync::Arc};

use crate::{
    escape::escape,
    event::{CredentialEnv, LoaderEnv},
    glob::Glob,
};

/// Variables that make the dynamic loader load or search for other code.
pub const LOADER_VARS: &[&str] = &["LD_AUDIT", "LD_LIBRARY_PATH", "LD_PRELOAD"];

/// The loader variables set in `env`; None when none is. The first definition
/// of a name wins, as glibc's `getenv` finds it.
pub fn loader_env(env: &[u8]) -> Option<Arc<LoaderEnv>> {
    let mut out = LoaderEnv::new();
    // Only entries that start with `LD_` matter: find those (SIMD search)
    // rather than walking every entry of an environment of a few KiB.
    let starts = memchr::memmem::find_iter(env, b"LD_").filter(|&at| at == 0 || env[at - 1] == 0);
    for start in starts {
        let rest = &env[start..];
        let entry = &rest[..memchr::memchr(0, rest).unwrap_or(rest.len())];
        let Some(eq) = memchr::memchr(b'=', entry) else {
            continue;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        if let Some(known) = LOADER_VARS.iter().find(|v| v.as_bytes() == name) {
            out.entry((*known).to_owned())
                .or_insert_with(|| escape(value));
        }
    }
    (!out.is_empty()).then(|| Arc::new(out))
}

/// Variable names that hold credentials or lead to them, matched without
/// regard to case (`*` is any run of characters). Where a provider or CI
/// system documents the variable, it is named; the suffixes catch the rest
/// (`STRIPE_API_KEY`, `DB_PASSWORD`).
pub const DEFAULT_CREDENTIAL_ENV: &[&str] = &[
    // Cloud providers.
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "CLOUDSDK_AUTH_ACCESS_TOKEN",
    // Clusters, vaults, agents.
    "KUBECONFIG",
    "VAULT_TOKEN",
    "SSH_AUTH_SOCK",
    "DOCKER_AUTH_CONFIG",
    // CI systems.
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "CI_JOB_TOKEN",
    "CI_JOB_JWT*",
    "CI_REGISTRY_PASSWORD",
    "BUILDKITE_AGENT_ACCESS_TOKEN",
    "CIRCLE_OIDC_TOKEN*",
    // Databases: these carry a password in the URL or the variable.
    "DATABASE_URL",
    "PGPASSWORD",
    "MYSQL_PWD",
    // Anything else named like a secret.
    "*_TOKEN",
    "*_SECRET",
    "*_SECRET_KEY",
    "*_PASSWORD",
    "*_PASSWD",
    "*_API_KEY",
    "*_APIKEY",
    "*_ACCESS_KEY",
    "*_PRIVATE_KEY",
    "*_CREDENTIALS",
    "PASSWORD",
    "SECRET",
    "TOKEN",
    "API_KEY",
];

/// Credential variable names kept per image; an environment with more is
/// flagged incomplete (names are in the process table for every process).
pub const CREDENTIAL_NAMES_MAX: usize = 32;
/// Bytes of one name kept; a longer one is not a name anyone set by hand.
const CREDENTIAL_NAME_MAX: usize = 128;

/// Compiled `--credential-env` patterns. Exact names and `*SUFFIX` /
/// `PREFIX*` patterns (all of the defaults) are set and string lookups; only
/// the rest run the glob matcher, so checking every variable of every exec
/// stays cheap.
#[derive(Debug, Default)]
pub struct CredentialPatterns {
    exact: HashSet<String>,
    suffixes: Vec<String>,
    prefixes: Vec<String>,
    globs: Vec<Glob>,
}

/// A pattern `--credential-env` cannot use.
#[derive(Debug, thiserror::Error)]
#[error("--credential-env {pattern:?}: {why}")]
pub struct CredentialPatternError {
    pattern: String,
    why: String,
}

impl CredentialPatterns {
    /// `patterns` compiled; matching ignores ASCII case.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, CredentialPatternError> {
        let mut out = CredentialPatterns::default();
        for raw in patterns {
            let p = raw.as_ref().to_ascii_uppercase();
            let bad = |why: &str| CredentialPatternError {
                pattern: raw.as_ref().to_owned(),
                why: why.to_owned(),
            };
            if p.is_empty() || p.contains('=') || p.contains('\0') {
                return Err(bad("a variable name (or glob of one) without '=' or NUL"));
            }
            let wild = |c: char| c == '*' || c == '?' || c == '\\';
            match (p.strip_prefix('*'), p.strip_suffix('*')) {
                _ if !p.contains(wild) => {
                    out.exact.insert(p);
                }
                (Some(rest), _) if !rest.contains(wild) => out.suffixes.push(rest.to_owned()),
                (_, Some(rest)) if !rest.contains(wild) => out.prefixes.push(rest.to_owned()),
                _ => out
                    .globs
                    .push(Glob::text(&p).map_err(|e| bad(&e.to_string()))?),
            }
        }
        Ok(out)
    }

    /// The built-in list.
    pub fn defaults() -> Self {
        // The built-in patterns are all valid: an error here is a bug in them.
        Self::new(DEFAULT_CREDENTIAL_ENV).unwrap_or_default()
    }

    /// Whether variable `name` (upper-cased) matches.
    pub(crate) fn matches(&self, upper: &str) -> bool {
        self.exact.contains(upper)
            || self.suffixes.iter().any(|s| upper.ends_with(s.as_str()))
            || self.prefixes.iter().any(|s| upper.starts_with(s.as_str()))
            || self.globs.iter().any(|g| g.matches(upper))
    }
}

/// The names of the variables in `env` that `patterns` call credentials,
/// sorted, at most [`CREDENTIAL_NAMES_MAX`]; `cut` says the environment was
/// not all seen (the probe's bound, an unreadable page). None when there is
/// nothing to say.
pub fn credential_env(
    env: &[u8],
    cut: bool,
    patterns: &CredentialPatterns,
) -> Option<Arc<CredentialEnv>> {
    let mut names = std::collections::BTreeSet::new();
    let mut incomplete = cut;
    let mut upper = String::new();
    for entry in env.split(|&b| b == 0) {
        let Some(eq) = memchr::memchr(b'=', entry) else {
            continue;
        };
        let name = &entry[..eq];
        if name.is_empty() || name.len() > CREDENTIAL_NAME_MAX {
            continue;
        }
        upper.clear();
        upper.extend(name.iter().map(|b| char::from(b.to_ascii_uppercase())));
        if !patterns.matches(&upper) {
            continue;
        }
        if names.len() == CREDENTIAL_NAMES_MAX {
            incomplete = true;
            break;
        }
        names.insert(escape(name));
    }
    (incomplete || !names.is_empty()).then(|| {
        Arc::new(CredentialEnv {
            names: names.into_iter().collect(),
            incomplete,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_credentials_never_values() {
        let p = CredentialPatterns::defaults();
        type Case<'a> = (&'a [u8], bool, Option<(&'a [&'a str], bool)>);
        let cases: &[Case] = &[
            (b"", false, None),
            (b"PATH=/usr/bin\0HOME=/root\0LANG=C.UTF-8\0", false, None),
            // A GitHub Actions step: documented names and a suffix.
            (
                b"GITHUB_TOKEN=ghs_x\0ACTIONS_ID_TOKEN_REQUEST_TOKEN=y\0GITHUB_RUN_ID=1\0",
                false,
                Some((&["ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GITHUB_TOKEN"], false)),
            ),
            // Cloud keys, case ignored, a secret-looking suffix, a CI prefix.
            (
                b"aws_secret_access_key=s\0AWS_REGION=eu\0Stripe_Api_Key=k\0CI_JOB_JWT_V2=j\0",
                false,
                Some((
                    &["CI_JOB_JWT_V2", "Stripe_Api_Key", "aws_secret_access_key"],
                    false,
                )),
            ),
            // The same name twice is one name; not an assignment is nothing.
            (
                b"VAULT_TOKEN=a\0VAULT_TOKEN=b\0KUBECONFIG\0",
                false,
                Some((&["VAULT_TOKEN"], false)),
            ),
            // A cut copy: nothing found, but the reader must know it was not all seen.
            (b"PATH=/bin\0DB_PASSW", true, Some((&[], true))),
            // Not UTF-8: escaped, not lost.
            (b"X\xff_TOKEN=v\0", false, Some((&["X\\xff_TOKEN"], false))),
        ];
        for (env, cut, want) in cases {
            let got = credential_env(env, *cut, &p);
            let got = got.map(|c| (c.names.clone(), c.incomplete));
            let want = want.map(|(n, i)| (n.iter().map(|s| (*s).to_owned()).collect(), i));
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(env));
        }
    }

    #[test]
    fn credential_names_are_bounded() {
        let p = CredentialPatterns::defaults();
        let env: Vec<u8> = (0..100)
            .flat_map(|i| format!("K{i:03}_TOKEN=v\0").into_bytes())
            .collect();
        let c = credential_env(&env, false, &p).expect("names");
        assert_eq!(c.names.len(), CREDENTIAL_NAMES_MAX);
        assert!(c.incomplete);
        let long = format!("{}_TOKEN=v\0", "A".repeat(200));
        assert!(credential_env(long.as_bytes(), false, &p).is_none());
    }

    #[test]
    fn operator_patterns() {
        let p = CredentialPatterns::new(&["MY_APP_*", "*CERT?", "exact_name"]).unwrap();
        let env = b"MY_APP_KEY=1\0X_CERTS=2\0X_CERT=3\0EXACT_NAME=4\0GITHUB_TOKEN=5\0";
        let c = credential_env(env, false, &p).unwrap();
        assert_eq!(c.names, ["EXACT_NAME", "MY_APP_KEY", "X_CERTS"]);
        for bad in ["", "A=B", "x\\"] {
            assert!(CredentialPatterns::new(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keeps_only_loader_variables() {
        type Case<'a> = (&'a [u8], &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            (b"", &[]),
            (b"PATH=/usr/bin\0HOME=/root\0", &[]),
            (
                b"PATH=/bin\0LD_PRELOAD=/tmp/evil.so\0AWS_SECRET_ACCESS_KEY=x\0",
                &[("LD_PRELOAD", "/tmp/evil.so")],
            ),
            // A cut copy: the last entry may lack its NUL; first definition wins.
            (
                b"LD_LIBRARY_PATH=/a:/b\0LD_AUDIT=/x.so\0LD_PRELOAD=1\0LD_PRELOAD=2",
                &[
                    ("LD_AUDIT", "/x.so"),
                    ("LD_LIBRARY_PATH", "/a:/b"),
                    ("LD_PRELOAD", "1"),
                ],
            ),
            // Not loader variables, or not assignments.
            (b"LD_DEBUG=all\0LD_PRELOAD\0XLD_PRELOAD=y\0", &[]),
            // Empty value is still set (and still loads nothing, but was asked for).
            (b"LD_PRELOAD=\0", &[("LD_PRELOAD", "")]),
            // Bytes that are not UTF-8 are escaped, not lost.
            (
                b"LD_PRELOAD=/tmp/\xff.so\0",
                &[("LD_PRELOAD", "/tmp/\\xff.so")],
            ),
        ];
        for (env, want) in cases {
            let got = loader_env(env);
            let got: Vec<(String, String)> = got
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(env));
        }
    }
}
