//! The matrix: the guest command (a load check with verifier statistics, then
//! the live suites), the options that run it, and building those suites.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::Options;

/// Live suites the matrix runs in each guest: exec, connect, lineage, login
/// (events), every path a connect or failed exec can take (evasion), one
/// image one identity (image_identity), workload identity and its forgeries
/// (identity, forgery; skipped on `-v1` guests), containers found in v1
/// hierarchies (cgroup_v1), real podman and containerd containers (runtimes),
/// what an exit says the image used (usage) and destination names from DNS
/// answers (dns), and real workloads (a cargo build, a pip install, git:
/// the host's toolchains, over the shared root file system).
pub(crate) const MATRIX_TESTS: &[&str] = &[
    "events",
    "usage",
    "evasion",
    "image_identity",
    "identity",
    "forgery",
    "cgroup_v1",
    "runtimes",
    "dns",
    "authority",
    // The requestor behind automation, from the environment the exec probe
    // copies (passes on 5.10 and 6.1: 104 s and 43 s under TCG).
    "requestor",
    "real_workloads",
    "cwd",
];
/// The matrix's guest command: a load check of every program with its verifier
/// statistics (kept in the output directory for the table), then the live tests.
pub(super) const MATRIX_CMD: &str = r#"set -u
if ! "$TRACER_BIN" check-kernel >"$VMTEST_OUT/check-kernel.json"; then
  echo "vmtest: tracer check-kernel failed on $(uname -r)"
  exit 10
fi
cat "$VMTEST_OUT/check-kernel.json"
rc=0
for t in $VMTEST_TESTS; do
  if [ "${VMTEST_CGROUP:-}" = v1 ] && { [ "${t##*/identity-}" != "$t" ] || [ "${t##*/forgery-}" != "$t" ]; }; then
    # Builds kubepods trees in the v2 hierarchy, which a v1-only host lacks.
    echo "vmtest: == ${t##*/}: skipped on a cgroup-v1-only guest"
    continue
  fi
  if [ "${t##*/real_workloads-}" != "$t" ] && { [ "${VMTEST_CGROUP:-}" = v1 ] || [ "${VMTEST_KERNEL:-}" = host ]; }; then
    # The slowest suite (cargo, pip and git under TCG, 2 to 3.5 minutes a
    # guest): on the three kernels' own guests. The host kernel runs it live
    # outside the matrix, and it passed on the v1 guest when it was added.
    echo "vmtest: == ${t##*/}: skipped on this guest (run on 5.10, 6.1, 6.12 and live on the host)"
    continue
  fi
  echo "vmtest: == ${t##*/}"
  # A suite that hangs fails alone, and the guest still reports a status.
  # shellcheck disable=SC2086
  timeout -k 10 "${VMTEST_SUITE_TIMEOUT:-300}" "$t" --test-threads=2 $VMTEST_TEST_ARGS
  st=$?
  if [ "$st" -ne 0 ]; then
    rc=1
    if [ "$st" -eq 124 ] || [ "$st" -eq 137 ]; then
      echo "vmtest: ${t##*/}: no result after ${VMTEST_SUITE_TIMEOUT:-300} s, killed"
    fi
  fi
done
exit $rc
"#;
/// Seconds a guest may take in the matrix (boot, the load check, every suite)
/// before QEMU is killed. A matrix guest takes about two minutes under TCG
/// (5.10 with the runtimes suite is the slowest), and a hung suite is killed
/// in the guest after `VMTEST_SUITE_TIMEOUT` (300 s), so this only bounds a
/// guest that hangs as a whole: five of them must stay well inside CI's time.
pub(crate) const MATRIX_GUEST_TIMEOUT: u64 = 900;

/// Options for the matrix: [`MATRIX_CMD`] with the live suites `tests` built
/// here, on `kernels` (default [`MATRIX_KERNELS`]).
pub(crate) fn matrix(
    root: &Path,
    kernels: Vec<String>,
    tests: &[String],
    test_args: &[String],
    mut env: Vec<String>,
) -> Result<Options> {
    let bins = test_binaries(root, tests)?;
    env.push(format!("VMTEST_TESTS={}", bins.join(" ")));
    env.push(format!("VMTEST_TEST_ARGS={}", test_args.join(" ")));
    env.push(format!(
        "TRACER_BIN={}",
        root.join("target/release/tracer").display()
    ));
    Ok(Options {
        kernels,
        matrix: true,
        guest_cmd: MATRIX_CMD.to_string(),
        env,
        timeout: Duration::from_secs(MATRIX_GUEST_TIMEOUT),
        cpus: 2,
        memory: "2G".to_string(),
    })
}

/// Build the live test suites `names` and return their executables.
fn test_binaries(root: &Path, names: &[String]) -> Result<Vec<String>> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).args([
        "test",
        "--release",
        "-p",
        "tracer-tests",
        "--no-run",
        "--message-format=json",
    ]);
    for n in names {
        cmd.args(["--test", n]);
    }
    eprintln!("xtask: {cmd:?}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("building the live tests failed: {}", out.status);
    }
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_test = v["reason"] == "compiler-artifact"
            && v["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"));
        if let (true, Some(exe)) = (is_test, v["executable"].as_str()) {
            bins.push(exe.to_string());
        }
    }
    if bins.len() != names.len() {
        bail!(
            "expected {} test executables, cargo named {bins:?}",
            names.len()
        );
    }
    Ok(bins)
}
