//! The deployment files: the Kubernetes manifests (deploy/kubernetes) and the
//! systemd unit (deploy/systemd) say what the README promises, and every flag and
//! config key they hand `tracer run` is one the real binary accepts: their
//! arguments go through `tracer check-config` unchanged, except that paths inside
//! the container or under /etc/tracer point at the repository's files.
use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde::Deserialize as _;
use serde_norway::Value;
use tracer_tests::{
    Containerd, RUNTIME_CMD, Tracer, argv, exec_storm, is_exec, marker, run_ok, scratch_dir,
    tracer_bin,
};

/// Where the ConfigMap is mounted in the DaemonSet, and where the systemd unit
/// expects its config file.
const CONFIG_DIR: &str = "/etc/tracer/";

/// The capabilities the DaemonSet grants, without the `CAP_` prefix. No
/// SYS_ADMIN: the node's tracefs and cgroup2 are mounted in, not by the tracer.
const CAPS: [&str; 5] = [
    "BPF",
    "PERFMON",
    "NET_ADMIN",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
];

/// The systemd unit's: the DaemonSet's, plus SYS_ADMIN so that the tracer can
/// mount tracefs on a host that has not.
const UNIT_CAPS: [&str; 6] = [
    "BPF",
    "PERFMON",
    "NET_ADMIN",
    "SYS_PTRACE",
    "DAC_READ_SEARCH",
    "SYS_ADMIN",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn kube_dir() -> PathBuf {
    repo().join("deploy/kubernetes")
}

/// One YAML document and the file it came from.
struct Doc {
    file: String,
    value: Value,
}

/// Every document of every YAML file in deploy/kubernetes, in file-name order
/// (a file may hold several documents separated by `---`; empty ones are skipped).
fn manifests() -> Vec<Doc> {
    let mut files: Vec<PathBuf> = fs::read_dir(kube_dir())
        .expect("deploy/kubernetes exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in deploy/kubernetes");
    let mut docs = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        for de in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(de).unwrap_or_else(|e| panic!("{file}: {e}"));
            if !value.is_null() {
                docs.push(Doc {
                    file: file.clone(),
                    value,
                });
            }
        }
    }
    docs
}

/// The only document of this kind.
fn one<'a>(docs: &'a [Doc], kind: &str) -> &'a Value {
    let found: Vec<&Doc> = docs.iter().filter(|d| d.value["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected exactly one {kind}");
    &found[0].value
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v:?}"))
}

fn strings(v: &Value, what: &str) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v:?}"))
        .iter()
        .map(|s| str_of(s, what).to_owned())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The DaemonSet's one container.
fn container(ds: &Value) -> &Value {
    let containers = ds["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("DaemonSet containers");
    assert_eq!(containers.len(), 1, "one container in the DaemonSet");
    &containers[0]
}

fn named<'a>(list: &'a Value, name: &str, what: &str) -> &'a Value {
    list.as_sequence()
        .unwrap_or_else(|| panic!("{what}: expected a list"))
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{what}: no entry named {name}"))
}

#[test]
fn manifests_parse_and_have_the_expected_kinds() {
    let docs = manifests();
    let kinds = sorted(
        docs.iter()
            .map(|d| str_of(&d.value["kind"], &d.file).to_owned())
            .collect(),
    );
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet",
            "Kustomization",
            "Namespace",
            "NetworkPolicy",
            "ServiceAccount",
        ]
    );
    let ns = str_of(&one(&docs, "Namespace")["metadata"]["name"], "namespace");
    assert_eq!(ns, "tracer-system");
    for d in &docs {
        let v = &d.value;
        let kind = str_of(&v["kind"], &d.file);
        assert!(v["apiVersion"].is_string(), "{}: no apiVersion", d.file);
        if kind == "Kustomization" {
            continue;
        }
        assert!(v["metadata"]["name"].is_string(), "{}: no name", d.file);
        let cluster_scoped = matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding");
        if cluster_scoped {
            assert!(v["metadata"]["namespace"].is_null(), "{}", d.file);
        } else {
            assert_eq!(v["metadata"]["namespace"], ns, "{}: namespace", d.file);
        }
    }

    // The kustomization lists every other manifest, and nothing else.
    let listed = sorted(strings(
        &one(&docs, "Kustomization")["resources"],
        "kustomization resources",
    ));
    let mut files: Vec<String> = docs
        .iter()
        .map(|d| d.file.clone())
        .filter(|f| f != "kustomization.yaml")
        .collect();
    files.dedup();
    assert_eq!(listed, files);
}

/// The DaemonSet's claim that its capabilities suffice, on this kernel: a
/// tracer holding exactly those (bounding set, no_new_privs as
/// allowPrivilegeEscalation: false gives) starts, with tracefs mounted for it
/// as the node's volume would be, and reports a marked exec.
#[test]
fn daemonset_capabilities_suffice_to_trace() {
    let docs = manifests();
    let caps = strings(
        &container(one(&docs, "DaemonSet"))["securityContext"]["capabilities"]["add"],
        "add",
    );
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    if !mountinfo.contains(" /sys/kernel/tracing ") {
        let st = Command::new("mount")
            .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
            .status()
            .expect("run mount");
        assert!(st.success(), "mounting tracefs for the test");
    }
    let bounding = std::iter::once("-all".to_owned())
        .chain(caps.iter().map(|c| format!("+{}", c.to_lowercase())))
        .collect::<Vec<_>>()
        .join(",");
    let bounding = format!("--bounding-set={bounding}");
    let tracer = Tracer::start_wrapped(&["setpriv", &bounding, "--no-new-privs", "--"], &[], &[]);
    let mark = marker("deploy-caps");
    exec_storm(3, &mark);
    tracer.wait_for(3, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()]);
    // It really ran with only those: no CAP_SYS_ADMIN (bit 21) in its set.
    let status = fs::read_to_string(format!("/proc/{}/status", tracer.pid())).expect("status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff");
    assert_eq!(eff & (1 << 21), 0, "CapEff {eff:x}");
    assert_eq!(eff.count_ones() as usize, caps.len(), "CapEff {eff:x}");
}

/// Capability bits (linux/capability.h) of the names the DaemonSet may add.
fn cap_bit(name: &str) -> u32 {
    match name.trim_start_matches("CAP_") {
        "DAC_READ_SEARCH" => 2,
        "NET_ADMIN" => 12,
        "SYS_PTRACE" => 19,
        "SYS_ADMIN" => 21,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("no bit known for {other}: add it here"),
    }
}

/// containerd's default capability set (oci.WithDefaultSpec); `ctr` 1.6 takes
/// no `--cap-drop ALL`, so the DaemonSet's `drop: [ALL]` drops these by name.
const CONTAINERD_DEFAULT_CAPS: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A root file system holding only the tracer (at the path the harness runs
/// it from) and the shared libraries it loads.
fn tracer_rootfs() -> Scratch {
    let dir = Scratch(scratch_dir());
    let root = dir.0.clone();
    let bin = tracer_bin();
    let copy = |from: &Path| {
        let to = root.join(from.strip_prefix("/").expect("absolute path"));
        fs::create_dir_all(to.parent().expect("has a parent")).expect("mkdir in rootfs");
        fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    };
    copy(&bin);
    let ldd = run_ok(Command::new("ldd").arg(&bin), RUNTIME_CMD);
    for lib in ldd
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(Path::new)
    {
        copy(lib);
    }
    for d in ["proc", "sys", "dev", "tmp", "etc", "run/tracer"] {
        fs::create_dir_all(root.join(d)).expect("mkdir in rootfs");
    }
    dir
}

/// The DaemonSet's container security, enforced by a real runtime: containerd's
/// default seccomp profile (what RuntimeDefault means on containerd), no_new_privs,
/// exactly the added capabilities, the node's tracefs, BTF and cgroups mounted
/// read-only. The tracer must start and report a marked exec: this is the
/// claim that bpf(2) and perf_event_open(2) pass RuntimeDefault with CAP_BPF
/// and CAP_PERFMON and no CAP_SYS_ADMIN.
#[test]
fn daemonset_security_context_runs_under_containerd_default_seccomp() {
    let docs = manifests();
    let sc = &container(one(&docs, "DaemonSet"))["securityContext"];
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    let caps = strings(&sc["capabilities"]["add"], "add");
    let mut daemon = Containerd::start();
    let (ns, id) = (marker("ns"), marker("tracer"));
    daemon.track(&ns, &id);
    let rootfs = tracer_rootfs();
    let address = daemon.address.to_str().expect("utf-8 path").to_owned();
    let mut wrapper: Vec<String> = ["ctr", "--address", &address, "-n", &ns, "run", "--rm"]
        .map(String::from)
        .to_vec();
    // --seccomp: containerd's default profile, as the CRI plugin applies for RuntimeDefault.
    wrapper.extend(["--rootfs", "--seccomp"].map(String::from));
    for c in CONTAINERD_DEFAULT_CAPS {
        wrapper.extend(["--cap-drop".to_owned(), format!("CAP_{c}")]);
    }
    for c in &caps {
        wrapper.extend(["--cap-add".to_owned(), format!("CAP_{c}")]);
    }
    let tmp = std::env::temp_dir();
    let tmp = tmp.to_str().expect("utf-8 temp dir");
    for (src, dst, mode) in [
        ("/sys/kernel/tracing", "/sys/kernel/tracing", "ro"),
        ("/sys/kernel/btf", "/sys/kernel/btf", "ro"),
        ("/sys/fs/cgroup", "/sys/fs/cgroup", "ro"),
        // The harness's output file and the test's scratch files.
        (tmp, tmp, "rw"),
    ] {
        wrapper.extend([
            "--mount".to_owned(),
            format!("type=bind,src={src},dst={dst},options=rbind:{mode}"),
        ]);
    }
    wrapper.extend([
        rootfs.0.to_str().expect("utf-8 path").to_owned(),
        id.clone(),
    ]);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let tracer = Tracer::start_wrapped(&wrapper, &[], &[]);

    let mark = marker("ctr-seccomp");
    exec_storm(3, &mark);
    tracer.wait_for(3, |e| is_exec(e) && argv(e) == ["/bin/true", mark.as_str()]);

    // It ran filtered, without new privileges, with exactly those capabilities.
    let tasks = run_ok(daemon.ctr(&ns).args(["task", "ls"]), RUNTIME_CMD);
    let pid = tasks
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no task {id}: {tasks}"));
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("task status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .to_owned()
    };
    assert_eq!(field("Seccomp:"), "2", "seccomp filter mode");
    assert_eq!(field("NoNewPrivs:"), "1");
    let want = caps.iter().fold(0u64, |m, c| m | 1 << cap_bit(c));
    let eff = u64::from_str_radix(&field("CapEff:"), 16).expect("CapEff");
    assert_eq!(eff, want, "CapEff {eff:x}, manifest {want:x}");
    assert_eq!(eff & (1 << cap_bit("SYS_ADMIN")), 0);
}

#[test]
fn network_policy_admits_only_the_metrics_port() {
    let docs = manifests();
    let ds = one(&docs, "DaemonSet");
    let np = one(&docs, "NetworkPolicy");
    let selector = np["spec"]["podSelector"]["matchLabels"]
        .as_mapping()
        .expect("podSelector.matchLabels");
    assert!(!selector.is_empty());
    for (k, v) in selector {
        assert_eq!(
            &ds["spec"]["template"]["metadata"]["labels"][str_of(k, "label")],
            v,
            "the policy selects the tracer's pods"
        );
    }
    assert_eq!(
        strings(&np["spec"]["policyTypes"], "policyTypes"),
        ["Ingress"]
    );
    let args = strings(&container(ds)["args"], "args");
    let addr = flag_value(&args, "--metrics-addr").expect("--metrics-addr in args");
    let port: u64 = addr.rsplit(':').next().unwrap().parse().expect("port");
    let rules = np["spec"]["ingress"].as_sequence().expect("ingress rules");
    assert!(!rules.is_empty());
    for rule in rules {
        let ports = rule["ports"]
            .as_sequence()
            .expect("every rule names its ports");
        for p in ports {
            assert_eq!(p["port"].as_u64(), Some(port), "{p:?}");
            assert_eq!(p["protocol"], "TCP");
        }
        // Some source is named: an empty `from` would admit everyone.
        assert!(
            rule["from"].as_sequence().is_some_and(|f| !f.is_empty()),
            "{rule:?}"
        );
    }
}

#[test]
fn cluster_role_only_reads_pods_services_and_endpointslices() {
    let docs = manifests();
    let role = one(&docs, "ClusterRole");
    let rules = role["rules"].as_sequence().expect("rules");
    // (apiGroup, resource): pods for workload metadata; Services and
    // EndpointSlices to name connect destinations. Read-only, nothing else.
    let mut granted: Vec<(String, String)> = Vec::new();
    for rule in rules {
        assert_eq!(
            sorted(strings(&rule["verbs"], "verbs")),
            ["get", "list", "watch"],
            "{rule:?}"
        );
        assert!(
            rule["resourceNames"].is_null() && rule["nonResourceURLs"].is_null(),
            "{rule:?}"
        );
        for g in strings(&rule["apiGroups"], "apiGroups") {
            for r in strings(&rule["resources"], "resources") {
                granted.push((g.clone(), r));
            }
        }
    }
    granted.sort();
    let want: Vec<(String, String)> = [
        ("", "pods"),
        ("", "services"),
        ("discovery.k8s.io", "endpointslices"),
    ]
    .iter()
    .map(|(g, r)| ((*g).to_owned(), (*r).to_owned()))
    .collect();
    assert_eq!(granted, want, "{rules:?}");

    let binding = one(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let sa = one(&docs, "ServiceAccount");
    let subjects = binding["subjects"].as_sequence().expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], sa["metadata"]["name"]);
    assert_eq!(subjects[0]["namespace"], sa["metadata"]["namespace"]);

    let ds = one(&docs, "DaemonSet");
    assert_eq!(
        ds["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
}

#[test]
fn daemonset_is_narrowly_privileged() {
    let docs = manifests();
    let ds = one(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"].as_bool(), Some(true), "hostPID");
    assert_ne!(pod["hostNetwork"].as_bool(), Some(true), "hostNetwork");
    assert_ne!(pod["hostIPC"].as_bool(), Some(true), "hostIPC");
    let c = container(ds);
    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"].as_bool(), Some(true), "privileged");
    assert_ne!(
        pod["securityContext"]["privileged"].as_bool(),
        Some(true),
        "pod privileged"
    );
    assert_eq!(sc["runAsUser"].as_u64(), Some(0));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strings(&sc["capabilities"]["drop"], "drop"), ["ALL"]);
    let added = strings(&sc["capabilities"]["add"], "add");
    assert!(
        !added
            .iter()
            .any(|c| c.trim_start_matches("CAP_") == "SYS_ADMIN"),
        "SYS_ADMIN is not needed with the node's tracefs mounted in"
    );
    assert_eq!(sorted(added), sorted(CAPS.map(String::from).to_vec()));
    // Possible (and required) without SYS_ADMIN: no_new_privs and a syscall filter.
    assert_eq!(
        sc["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "allowPrivilegeEscalation"
    );
    let seccomp = str_of(&sc["seccompProfile"]["type"], "seccompProfile");
    assert_eq!(seccomp, "RuntimeDefault");
    assert_ne!(
        pod["securityContext"]["seccompProfile"]["type"], "Unconfined",
        "pod-level seccomp"
    );
    // Metrics on the pod IP only: no port of the node's.
    for port in c["ports"].as_sequence().expect("ports") {
        assert!(port["hostPort"].is_null(), "hostPort: {port:?}");
    }
    assert_eq!(sc["appArmorProfile"]["type"], "Unconfined");
    let annotation = &ds["spec"]["template"]["metadata"]["annotations"][format!(
        "container.apparmor.security.beta.kubernetes.io/{}",
        str_of(&c["name"], "name")
    )
    .as_str()];
    assert_eq!(annotation, "unconfined", "legacy AppArmor annotation");
}

#[test]
fn daemonset_runs_everywhere_with_probes_and_resources() {
    let docs = manifests();
    let ds = one(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    let tolerations = pod["tolerations"].as_sequence().expect("tolerations");
    assert!(
        tolerations
            .iter()
            .any(|t| t["operator"] == "Exists" && t["key"].is_null() && t["effect"].is_null()),
        "a toleration of every taint: {tolerations:?}"
    );
    // The selector picks the template's own pods.
    let selector = ds["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("matchLabels");
    for (k, v) in selector {
        assert_eq!(
            &ds["spec"]["template"]["metadata"]["labels"][str_of(k, "label")],
            v
        );
    }

    let c = container(ds);
    assert!(str_of(&c["image"], "image").contains(':'), "tagged image");
    let node = named(&c["env"], "NODE_NAME", "env");
    assert_eq!(node["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");

    // The probes ask the port the tracer serves on (--metrics-addr).
    let args = strings(&c["args"], "args");
    let addr = flag_value(&args, "--metrics-addr").expect("--metrics-addr in args");
    let port: u64 = addr.rsplit(':').next().unwrap().parse().expect("port");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"].as_u64(), Some(port), "{probe}");
    }

    let res = &c["resources"];
    assert_eq!(res["requests"]["cpu"], "50m");
    assert_eq!(res["requests"]["memory"], "64Mi");
    assert_eq!(res["limits"]["cpu"], "1");
    // The tracer's --memory-limit default is sized to fit this.
    assert_eq!(res["limits"]["memory"], "256Mi");

    // Every mount has its volume; host paths are read-only unless written to.
    let volumes = &pod["volumes"];
    let mounts: BTreeMap<String, (String, bool)> = c["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            let name = str_of(&m["name"], "mount name").to_owned();
            named(volumes, &name, "volumes");
            let path = str_of(&m["mountPath"], "mountPath").to_owned();
            (path, (name, m["readOnly"].as_bool() == Some(true)))
        })
        .collect();
    let host_path = |mount: &str| {
        let (name, ro) = mounts
            .get(mount)
            .unwrap_or_else(|| panic!("nothing mounted at {mount}"));
        let hp = &named(volumes, name, "volumes")["hostPath"];
        (
            str_of(&hp["path"], "hostPath").to_owned(),
            hp["type"].clone(),
            *ro,
        )
    };
    assert_eq!(host_path("/sys/kernel/btf").0, "/sys/kernel/btf");
    assert!(host_path("/sys/kernel/btf").2, "btf read-only");
    assert_eq!(host_path("/sys/kernel/tracing").0, "/sys/kernel/tracing");
    assert!(
        host_path("/sys/kernel/tracing").2,
        "tracefs read-only: without SYS_ADMIN the tracer mounts nothing there"
    );
    assert_eq!(host_path("/sys/fs/cgroup").0, "/sys/fs/cgroup");
    assert!(host_path("/sys/fs/cgroup").2, "cgroup read-only");
    assert_eq!(host_path("/host/etc").0, "/etc");
    assert!(host_path("/host/etc").2, "host /etc read-only");
    assert_eq!(
        flag_value(&args, "--host-root").as_deref(),
        Some("/host"),
        "--host-root matches the /host/etc mount"
    );
    let log = host_path("/var/log/tracer");
    assert_eq!((log.0.as_str(), log.2), ("/var/log/tracer", false));
    assert_eq!(log.1, "DirectoryOrCreate");
    // The socket's directory is a volume (the root filesystem is read-only).
    let socket = flag_value(&args, "--socket").expect("--socket in args");
    let socket_dir = Path::new(&socket).parent().unwrap().to_str().unwrap();
    assert!(
        mounts.contains_key(socket_dir),
        "{socket_dir} is not mounted"
    );

    // The optional signing key: a Secret, read-only, root-readable only, and
    // the (commented) --signing-key names a file in it.
    let key_mount = mounts
        .iter()
        .find(|(_, (name, _))| !named(volumes, name, "volumes")["secret"].is_null())
        .map(|(path, (name, ro))| (path.clone(), name.clone(), *ro))
        .expect("a Secret volume for the signing key");
    assert!(key_mount.2, "signing key mounted read-only");
    let secret = &named(volumes, &key_mount.1, "volumes")["secret"];
    assert_eq!(secret["defaultMode"].as_u64(), Some(0o400), "{secret:?}");
    assert_eq!(secret["optional"].as_bool(), Some(true), "{secret:?}");
    let key_path = commented_signing_key();
    assert!(
        key_path.starts_with(&format!("{}/", key_mount.0)),
        "{key_path} is not in the Secret's mount {}",
        key_mount.0
    );

    // The ConfigMap is what is mounted at /etc/tracer.
    let (config_volume, _) = &mounts[CONFIG_DIR.trim_end_matches('/')];
    let cm = one(&docs, "ConfigMap");
    assert_eq!(
        named(volumes, config_volume, "volumes")["configMap"]["name"],
        cm["metadata"]["name"]
    );
}

/// The path the DaemonSet's commented-out `--signing-key` names.
fn commented_signing_key() -> String {
    let text = fs::read_to_string(kube_dir().join("daemonset.yaml")).expect("daemonset.yaml");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| *l == "# - --signing-key")
        .expect("a commented --signing-key in the args");
    lines[at + 1]
        .strip_prefix("# - ")
        .expect("its path on the next line")
        .to_owned()
}

/// The value of `--flag VALUE` or `--flag=VALUE`.
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == flag {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_owned());
        }
    }
    None
}

/// `[Service]` of the unit: key -> values (a key may repeat), continuation
/// lines joined, comments skipped.
fn unit_service() -> BTreeMap<String, Vec<String>> {
    let text = fs::read_to_string(repo().join("deploy/systemd/tracer.service"))
        .expect("deploy/systemd/tracer.service");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
        {
            continue;
        }
        if let Some(rest) = line.strip_suffix('\\') {
            pending.push_str(rest);
            pending.push(' ');
            continue;
        }
        let full = std::mem::take(&mut pending) + line;
        if full.starts_with('[') {
            section = full;
            continue;
        }
        if section == "[Service]"
            && let Some((k, v)) = full.split_once('=')
        {
            out.entry(k.trim().to_owned())
                .or_default()
                .push(v.trim().to_owned());
        }
    }
    out
}

fn unit_value(unit: &BTreeMap<String, Vec<String>>, key: &str) -> String {
    let values = unit
        .get(key)
        .unwrap_or_else(|| panic!("tracer.service: no {key}="));
    assert_eq!(values.len(), 1, "{key} given more than once");
    values[0].clone()
}

/// ExecStart split into words (the unit uses no quoting).
fn exec_start() -> Vec<String> {
    let exec = unit_value(&unit_service(), "ExecStart");
    assert!(
        !exec.contains(['"', '\'', '$', '%']),
        "ExecStart needs a real parser now: {exec}"
    );
    exec.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn systemd_unit_runs_the_tracer_hardened() {
    let exec = exec_start();
    assert_eq!(exec[..2], ["/usr/local/bin/tracer", "run"]);
    assert_eq!(
        flag_value(&exec, "--config").as_deref(),
        Some("/etc/tracer/tracer.toml")
    );
    let unit = unit_service();
    assert_eq!(unit_value(&unit, "Restart"), "on-failure");
    let caps = sorted(UNIT_CAPS.iter().map(|c| format!("CAP_{c}")).collect());
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let got = unit_value(&unit, key)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        assert_eq!(sorted(got), caps, "{key}");
    }
    assert_eq!(unit_value(&unit, "NoNewPrivileges"), "yes");
    assert_eq!(unit_value(&unit, "ProtectSystem"), "strict");
    assert_eq!(unit_value(&unit, "ProtectHome"), "yes");
    assert_eq!(unit_value(&unit, "PrivateTmp"), "yes");
    assert_eq!(unit_value(&unit, "LogsDirectory"), "tracer");
    assert_eq!(unit_value(&unit, "RuntimeDirectory"), "tracer");
    let rw: Vec<String> = unit["ReadWritePaths"]
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect();
    for path in ["/var/log/tracer", "/run/tracer", "/sys/kernel/tracing"] {
        assert!(rw.iter().any(|p| p == path), "ReadWritePaths lacks {path}");
    }
    // Descriptors well above systemd's 1,024 default soft limit (the tracer
    // raises its soft limit to this), and memory the --memory-limit budget fits.
    let nofile: u64 = unit_value(&unit, "LimitNOFILE")
        .parse()
        .expect("LimitNOFILE a number");
    assert!(nofile >= 65536, "LimitNOFILE={nofile}");
    assert_eq!(unit_value(&unit, "MemoryMax"), "256M");
}

/// A scratch directory that stands in for /etc/tracer, removed on drop.
struct ConfigDir(PathBuf);

impl ConfigDir {
    /// `files`: name -> content; `/etc/tracer/` inside them is rewritten too
    /// (a config file may name the registrations file).
    fn new(files: &BTreeMap<String, String>) -> ConfigDir {
        let dir = ConfigDir(scratch_dir());
        for (name, content) in files {
            fs::write(dir.0.join(name), dir.rewrite(content)).expect("write config file");
        }
        dir
    }

    fn rewrite(&self, s: &str) -> String {
        s.replace(CONFIG_DIR, &format!("{}/", self.0.display()))
    }

    /// `tracer check-config` with `run`'s arguments (those after "run"),
    /// /etc/tracer paths pointing here.
    fn check_config(&self, run_args: &[String]) -> CheckConfig {
        let args: Vec<String> = run_args.iter().map(|a| self.rewrite(a)).collect();
        let out = Command::new(tracer_bin())
            .arg("check-config")
            .args(&args)
            // What the downward API gives the DaemonSet.
            .env("NODE_NAME", "deploy-test-node")
            .env_remove("KUBECONFIG")
            .output()
            .expect("run tracer check-config");
        CheckConfig {
            cmdline: format!("tracer check-config {}", args.join(" ")),
            out,
        }
    }
}

/// A `tracer check-config` run and its command line.
struct CheckConfig {
    cmdline: String,
    out: Output,
}

impl std::fmt::Display for CheckConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}\nstdout:\n{}\nstderr:\n{}",
            self.cmdline,
            self.out.status,
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The DaemonSet's args after `run`, and the ConfigMap's files.
fn daemonset_run() -> (Vec<String>, BTreeMap<String, String>) {
    let docs = manifests();
    let c = container(one(&docs, "DaemonSet"));
    assert!(
        c["command"].is_null(),
        "the image's ENTRYPOINT is the tracer"
    );
    let args = strings(&c["args"], "args");
    assert_eq!(args.first().map(String::as_str), Some("run"));
    let data: BTreeMap<String, String> = one(&docs, "ConfigMap")["data"]
        .as_mapping()
        .expect("ConfigMap data")
        .iter()
        .map(|(k, v)| (str_of(k, "key").to_owned(), str_of(v, "value").to_owned()))
        .collect();
    // Every /etc/tracer file the args name is in the ConfigMap.
    for a in &args {
        if let Some(i) = a.find(CONFIG_DIR) {
            let name = &a[i + CONFIG_DIR.len()..];
            assert!(data.contains_key(name), "{a}: not in the ConfigMap");
        }
    }
    (args[1..].to_vec(), data)
}

#[test]
fn daemonset_flags_pass_check_config() {
    let (args, data) = daemonset_run();
    assert!(
        args.iter().any(|a| a == "--config"),
        "the DaemonSet passes its config file"
    );
    let dir = ConfigDir::new(&data);
    let run = dir.check_config(&args);
    assert!(run.out.status.success(), "{run}");
}

/// Uncommented, the signing-key flag works with a key as the manifest says to
/// make one, and (as its comment warns) stops the tracer without the file.
#[test]
fn daemonset_signing_key_flag_needs_the_secret() {
    let (mut args, data) = daemonset_run();
    let dir = ConfigDir::new(&data);
    let key = dir.0.join(
        Path::new(&commented_signing_key())
            .file_name()
            .expect("a file name"),
    );
    args.extend(["--signing-key".to_owned(), key.display().to_string()]);
    let run = dir.check_config(&args);
    assert!(!run.out.status.success(), "no key file, yet: {run}");
    let st = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .status()
        .expect("run openssl");
    assert!(st.success(), "openssl genpkey");
    let run = dir.check_config(&args);
    assert!(run.out.status.success(), "{run}");
}

/// The test above would be worth little if check-config ignored the config file.
#[test]
fn check_config_rejects_an_unknown_key_in_the_daemonset_config() {
    let (args, mut data) = daemonset_run();
    let config = data
        .get_mut("tracer.toml")
        .expect("tracer.toml in the ConfigMap");
    config.insert_str(0, "no_such_key_for_test = 1\n");
    let dir = ConfigDir::new(&data);
    let run = dir.check_config(&args);
    assert_eq!(run.out.status.code(), Some(1), "{run}");
    let err = String::from_utf8_lossy(&run.out.stderr);
    assert!(err.contains("no_such_key_for_test"), "{run}");
}

#[test]
fn systemd_flags_pass_check_config() {
    let exec = exec_start();
    let mut files = BTreeMap::new();
    // The unit's config file, and the example registrations should it name them.
    files.insert(
        "tracer.toml".to_owned(),
        fs::read_to_string(repo().join("deploy/systemd/tracer.toml"))
            .expect("deploy/systemd/tracer.toml"),
    );
    files.insert(
        "registrations.toml".to_owned(),
        fs::read_to_string(repo().join("deploy/registrations.example.toml"))
            .expect("deploy/registrations.example.toml"),
    );
    let dir = ConfigDir::new(&files);
    let run = dir.check_config(&exec[2..]);
    assert!(run.out.status.success(), "{run}");
}
