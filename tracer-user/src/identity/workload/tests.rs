use super::{
    segments::{UNIT_NAME_MAX, is_container_id},
    *,
};

const C1: &str = "9bcb30efecaadfa3e489a40e3ad0a1ad33cf83900c2c76aa869ffa4099a47d7e";
const C2: &str = "4656816d6883380f5300ff46d90c80e6eb3eacc0eef7b083c82d4b9089de8c04";
const POD: &str = "b4ac4218-25f3-48ec-821f-3e95d98bb26a";
const POD_: &str = "b4ac4218_25f3_48ec_821f_3e95d98bb26a";
const POD2: &str = "998842d9-e219-42c3-82b8-42a239952351";
const STATIC_POD: &str = "fb8d0735d5d45e391224dd0aab4d5613";

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn host() -> CgroupWorkload {
    CgroupWorkload::default()
}

fn service(unit: &str) -> CgroupWorkload {
    CgroupWorkload {
        kind: WorkloadKind::Service,
        unit: s(unit),
        ..host()
    }
}

fn pod(uid: &str, qos: &str) -> CgroupWorkload {
    CgroupWorkload {
        kind: WorkloadKind::Pod,
        pod_uid: s(uid),
        qos: s(qos),
        ..host()
    }
}

fn pod_container(
    uid: &str,
    qos: &str,
    id: &str,
    runtime: Option<&str>,
    unit: Option<&str>,
) -> CgroupWorkload {
    CgroupWorkload {
        kind: WorkloadKind::Container,
        container_id: s(id),
        runtime: runtime.map(str::to_owned),
        unit: unit.map(str::to_owned),
        ..pod(uid, qos)
    }
}

fn container(id: &str, runtime: &str, unit: Option<&str>) -> CgroupWorkload {
    CgroupWorkload {
        kind: WorkloadKind::Container,
        container_id: s(id),
        runtime: s(runtime),
        unit: unit.map(str::to_owned),
        ..host()
    }
}

/// (path, expected, nested)
fn cases() -> Vec<(String, CgroupWorkload, bool)> {
    let sd_pod = |qos: &str| match qos {
        "guaranteed" => format!("/kubepods.slice/kubepods-pod{POD_}.slice"),
        q => format!("/kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{POD_}.slice"),
    };
    let scope = |prefix: &str, id: &str| format!("{prefix}-{id}.scope");
    let mut v = vec![
        // Host and plain systemd.
        ("/".into(), host(), false),
        ("".into(), host(), false),
        ("/system.slice".into(), host(), false),
        ("/user.slice".into(), host(), false),
        ("/some/test/dir".into(), host(), false),
        (
            "/init.scope".into(),
            CgroupWorkload {
                unit: s("init.scope"),
                ..host()
            },
            false,
        ),
        ("/system.slice/cron.service".into(), service("cron.service"), false),
        ("/system.slice/nginx.service".into(), service("nginx.service"), false),
        ("//system.slice//nginx.service//".into(), service("nginx.service"), false),
        (
            "/system.slice/system-getty.slice/getty@tty1.service".into(),
            service("getty@tty1.service"),
            false,
        ),
        ("/system.slice/foo.service/payload".into(), service("foo.service"), false),
        // A delegated service cannot rename itself by nesting a unit-like name.
        ("/system.slice/foo.service/sshd.service".into(), service("foo.service"), false),
        ("/system.slice/boot-efi.mount".into(), service("boot-efi.mount"), false),
        ("/system.slice/run-r3f2a9c.scope".into(), service("run-r3f2a9c.scope"), false),
        (
            "/machine.slice/machine-qemu\\x2d1\\x2dvm.scope".into(),
            service("machine-qemu\\x2d1\\x2dvm.scope"),
            false,
        ),
        // User sessions and managers.
        (
            "/user.slice/user-1000.slice".into(),
            CgroupWorkload {
                session_uid: Some(1000),
                ..host()
            },
            false,
        ),
        (
            "/user.slice/user-1000.slice/session-3.scope".into(),
            CgroupWorkload {
                kind: WorkloadKind::Session,
                unit: s("session-3.scope"),
                session_id: Some(3),
                session_uid: Some(1000),
                ..host()
            },
            false,
        ),
        (
            "/user.slice/user-120.slice/session-c1.scope".into(),
            CgroupWorkload {
                kind: WorkloadKind::Session,
                unit: s("session-c1.scope"),
                session_uid: Some(120),
                ..host()
            },
            false,
        ),
        (
            "/user.slice/user-1000.slice/user@1000.service".into(),
            CgroupWorkload {
                session_uid: Some(1000),
                ..service("user@1000.service")
            },
            false,
        ),
        (
            "/user.slice/user-1000.slice/user@1000.service/init.scope".into(),
            CgroupWorkload {
                session_uid: Some(1000),
                ..service("init.scope")
            },
            true,
        ),
        (
            "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service".into(),
            CgroupWorkload {
                session_uid: Some(1000),
                ..service("foo.service")
            },
            true,
        ),
        (
            "/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1d2e.scope".into(),
            CgroupWorkload {
                session_uid: Some(1000),
                ..service("vte-spawn-1d2e.scope")
            },
            true,
        ),
        // Mismatched manager uid: a plain unit, session_uid from the slice only.
        (
            "/user.slice/user-1000.slice/user@0.service".into(),
            CgroupWorkload {
                session_uid: Some(1000),
                ..service("user@0.service")
            },
            false,
        ),
        // Sessions and uids only from the host's user.slice.
        (
            "/user.slice/user-1000.slice/user@1000.service/user.slice/user-0.slice/session-1.scope".into(),
            CgroupWorkload {
                session_uid: Some(1000),
                ..service("session-1.scope")
            },
            true,
        ),
        ("/user.slice/user-01000.slice".into(), host(), false),
        ("/user.slice/user-+1000.slice".into(), host(), false),
        ("/user.slice/user-4294967295.slice".into(), host(), false),
        ("/user.slice/user-4294967296.slice".into(), host(), false),
        // Kubernetes, systemd driver.
        (sd_pod("besteffort"), pod(POD, "besteffort"), false),
        (sd_pod("burstable"), pod(POD, "burstable"), false),
        (sd_pod("guaranteed"), pod(POD, "guaranteed"), false),
        (
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{STATIC_POD}.slice"),
            pod(STATIC_POD, "burstable"),
            false,
        ),
        (
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice", POD_.to_uppercase()),
            pod(POD, "besteffort"),
            false,
        ),
        (
            "/kubepods.slice".into(),
            host(),
            false,
        ),
        (
            "/kubepods.slice/kubepods-burstable.slice".into(),
            CgroupWorkload {
                qos: s("burstable"),
                ..host()
            },
            false,
        ),
    ];
    for qos in ["besteffort", "burstable", "guaranteed"] {
        for (prefix, runtime) in [
            ("cri-containerd", "containerd"),
            ("crio", "cri-o"),
            ("docker", "docker"),
            ("libpod", "podman"),
        ] {
            let leaf = scope(prefix, C1);
            v.push((
                format!("{}/{leaf}", sd_pod(qos)),
                pod_container(POD, qos, C1, Some(runtime), Some(&leaf)),
                false,
            ));
        }
        let conmon = scope("crio-conmon", C1);
        v.push((
            format!("{}/{conmon}", sd_pod(qos)),
            CgroupWorkload {
                unit: s(&conmon),
                ..pod(POD, qos)
            },
            false,
        ));
    }
    let mut more = vec![
        // Colon-joined leaf (cgroupsPath taken literally).
        (
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_}.slice:cri-containerd:{C1}"
            ),
            pod_container(POD, "burstable", C1, Some("containerd"), None),
            false,
        ),
        (
            format!("/kubepods-burstable-pod{POD_}.slice:cri-containerd:{C1}"),
            pod_container(POD, "burstable", C1, Some("containerd"), None),
            false,
        ),
        (
            format!("/kubepods.slice/kubepods-pod{POD_}.slice:crio:{C1}"),
            pod_container(POD, "guaranteed", C1, Some("cri-o"), None),
            false,
        ),
        // Kubernetes, cgroupfs driver.
        (
            format!("/kubepods/besteffort/pod{POD}"),
            pod(POD, "besteffort"),
            false,
        ),
        (
            format!("/kubepods/besteffort/pod{POD}/{C1}"),
            pod_container(POD, "besteffort", C1, None, None),
            false,
        ),
        (
            format!("/kubepods/burstable/pod{POD}/{C1}"),
            pod_container(POD, "burstable", C1, None, None),
            false,
        ),
        (
            format!("/kubepods/pod{POD}/{C1}"),
            pod_container(POD, "guaranteed", C1, None, None),
            false,
        ),
        (
            format!("/kubepods/burstable/pod{POD}/crio-{C1}"),
            pod_container(POD, "burstable", C1, Some("cri-o"), None),
            false,
        ),
        (
            format!("/kubepods/burstable/pod{POD}/crio-conmon-{C1}"),
            pod(POD, "burstable"),
            false,
        ),
        (
            format!("/kubepods/burstable/pod{STATIC_POD}/{C1}"),
            pod_container(STATIC_POD, "burstable", C1, None, None),
            false,
        ),
        // Bogus pod / container ids yield nothing bogus.
        (
            "/kubepods/besteffort/podnot-a-uid/x".into(),
            CgroupWorkload {
                qos: s("besteffort"),
                ..host()
            },
            false,
        ),
        (
            format!("/kubepods/besteffort/podnot-a-uid/{C1}"),
            CgroupWorkload {
                qos: s("besteffort"),
                ..host()
            },
            false,
        ),
        (
            format!("/kubepods/besteffort/pod{}/{C1}", &POD[1..]),
            CgroupWorkload {
                qos: s("besteffort"),
                ..host()
            },
            false,
        ),
        (
            format!("/kubepods/besteffort/pod{POD}/{}", &C1[1..]),
            pod(POD, "besteffort"),
            false,
        ),
        (
            format!("/kubepods/besteffort/pod{POD}/{}", C1.to_uppercase()),
            pod(POD, "besteffort"),
            false,
        ),
        (
            format!("/kubepods/besteffort/pod{POD_}"),
            CgroupWorkload {
                qos: s("besteffort"),
                ..host()
            },
            false,
        ),
        // A burstable pod slice under the besteffort tier is out of place.
        (
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-burstable-pod{POD_}.slice"),
            CgroupWorkload {
                qos: s("besteffort"),
                ..host()
            },
            false,
        ),
        (
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/cri-containerd-{}.scope",
                &C1[2..]
            ),
            CgroupWorkload {
                unit: Some(format!("cri-containerd-{}.scope", &C1[2..])),
                ..service("x")
            }
            .with_pod(POD, "besteffort"),
            false,
        ),
        // Nested: Kubernetes in Docker; the innermost pod wins.
        (
            format!("/docker/{C2}/kubepods/besteffort/pod{POD}/{C1}"),
            pod_container(POD, "besteffort", C1, None, None),
            true,
        ),
        (
            format!("/system.slice/docker-{C2}.scope/kubepods/burstable/pod{POD}/{C1}"),
            pod_container(POD, "burstable", C1, None, None),
            true,
        ),
        (
            format!("/system.slice/docker-{C2}.scope/kubepods/burstable/pod{POD}"),
            pod(POD, "burstable"),
            true,
        ),
        (
            format!(
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{POD_}.slice/cri-containerd-{C1}.scope"
            ),
            pod_container(
                POD,
                "besteffort",
                C1,
                Some("containerd"),
                Some(&format!("cri-containerd-{C1}.scope")),
            ),
            false,
        ),
        (
            format!(
                "/system.slice/docker-{C2}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{POD_}.slice/cri-containerd-{C1}.scope"
            ),
            pod_container(
                POD,
                "guaranteed",
                C1,
                Some("containerd"),
                Some(&format!("cri-containerd-{C1}.scope")),
            ),
            true,
        ),
        // A pod nested in another pod's container: the outer pod is gone.
        (
            format!("/kubepods/pod{POD2}/{C2}/kubepods/besteffort/pod{POD}"),
            pod(POD, "besteffort"),
            true,
        ),
        // Plain containers.
        (
            format!("/docker/{C1}"),
            container(C1, "docker", None),
            false,
        ),
        (
            format!("/system.slice/docker-{C1}.scope"),
            container(C1, "docker", Some(&format!("docker-{C1}.scope"))),
            false,
        ),
        (
            format!("/docker/{C2}/docker/{C1}"),
            container(C1, "docker", None),
            true,
        ),
        (
            format!("/machine.slice/libpod-{C1}.scope"),
            container(C1, "podman", Some(&format!("libpod-{C1}.scope"))),
            false,
        ),
        (
            format!("/machine.slice/libpod-{C1}.scope/container"),
            container(C1, "podman", Some(&format!("libpod-{C1}.scope"))),
            false,
        ),
        (
            format!("/machine.slice/libpod-conmon-{C1}.scope"),
            service(&format!("libpod-conmon-{C1}.scope")),
            false,
        ),
        (
            format!("/libpod_parent/libpod-{C1}"),
            container(C1, "podman", None),
            false,
        ),
        (
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{C1}.scope"),
            CgroupWorkload {
                session_uid: Some(1000),
                ..container(C1, "podman", Some(&format!("libpod-{C1}.scope")))
            },
            true,
        ),
        (
            format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{C1}.scope/container"
            ),
            CgroupWorkload {
                session_uid: Some(1000),
                ..container(C1, "podman", Some(&format!("libpod-{C1}.scope")))
            },
            true,
        ),
        (
            format!("/default/{C1}"),
            CgroupWorkload {
                containerd_namespace: s("default"),
                ..container(C1, "containerd", None)
            },
            false,
        ),
        (
            format!("/k8s.io/{C1}"),
            CgroupWorkload {
                containerd_namespace: s("k8s.io"),
                ..container(C1, "containerd", None)
            },
            false,
        ),
        ("/default/not-an-id".into(), host(), false),
        (format!("/other/{C1}"), host(), false),
        (format!("/system.slice/default/{C1}"), host(), false),
        // systemd inside a container: the service keeps its container.
        (
            format!("/system.slice/docker-{C1}.scope/system.slice/nginx.service"),
            CgroupWorkload {
                container_id: s(C1),
                runtime: s("docker"),
                ..service("nginx.service")
            },
            true,
        ),
        (
            format!("/machine.slice/libpod-{C1}.scope/container/init.scope"),
            container(C1, "podman", Some("init.scope")),
            true,
        ),
        (
            format!("/docker/{C1}/init.scope"),
            container(C1, "docker", Some("init.scope")),
            true,
        ),
        // Container scopes only where systemd creates units.
        (
            format!("/system.slice/foo.service/docker-{C1}.scope"),
            service("foo.service"),
            false,
        ),
        // A delegated service may fake a container below itself: flagged.
        (
            format!("/system.slice/foo.service/docker/{C1}"),
            container(C1, "docker", None),
            true,
        ),
    ];
    v.append(&mut more);
    v
}

impl CgroupWorkload {
    fn with_pod(self, uid: &str, qos: &str) -> Self {
        Self {
            pod_uid: s(uid),
            qos: s(qos),
            ..self
        }
    }
}

/// Every form: what the path names, either trusted (`nested` false) or
/// as the claim below a delegated cgroup (`nested` true).
#[test]
fn table() {
    for (path, want, nested) in cases() {
        let p = parse_path(&path, &KubeRoots::default());
        if nested {
            assert_eq!(p.claim.as_ref(), Some(&want), "{path}");
            assert_ne!(p.workload, want, "{path}");
        } else {
            assert_eq!((&p.workload, &p.claim), (&want, &None), "{path}");
        }
    }
}

/// What the host vouches for when a path goes on below a delegated cgroup,
/// and what the rest claims. The attacks of issue 9 (class 1) are here:
/// pods and containers named inside a user manager, a delegated service or
/// a container, and Kubernetes roots out of place.
#[test]
fn trust_boundary() {
    let um = "/user.slice/user-1000.slice/user@1000.service";
    let manager = || CgroupWorkload {
        session_uid: Some(1000),
        ..service("user@1000.service")
    };
    let sd_pod = format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_}.slice/cri-containerd-{C1}.scope"
    );
    let fake_pod = pod_container(
        POD,
        "besteffort",
        C1,
        Some("containerd"),
        Some(&format!("cri-containerd-{C1}.scope")),
    );
    let fs_pod = pod_container(POD, "besteffort", C1, None, None);
    let docker_c2 = container(C2, "docker", Some(&format!("docker-{C2}.scope")));
    // (path, trusted, claim, system_unit, user_unit)
    type Case = (
        String,
        CgroupWorkload,
        Option<CgroupWorkload>,
        bool,
        Option<(u32, String)>,
    );
    let cases: Vec<Case> = vec![
        // A user manager's subtree is the user's to name.
        (
            format!("{um}/{sd_pod}"),
            manager(),
            Some(CgroupWorkload {
                session_uid: Some(1000),
                ..fake_pod.clone()
            }),
            true,
            Some((1000, format!("cri-containerd-{C1}.scope"))),
        ),
        (
            format!("{um}/kubepods/besteffort/pod{POD}/{C1}"),
            manager(),
            Some(CgroupWorkload {
                session_uid: Some(1000),
                ..fs_pod.clone()
            }),
            true,
            None,
        ),
        (
            format!("{um}/app.slice/backup.service"),
            manager(),
            Some(CgroupWorkload {
                session_uid: Some(1000),
                ..service("backup.service")
            }),
            true,
            Some((1000, "backup.service".into())),
        ),
        (
            format!("{um}/user.slice/libpod-{C1}.scope/container/init.scope"),
            manager(),
            Some(CgroupWorkload {
                session_uid: Some(1000),
                ..container(C1, "podman", Some("init.scope"))
            }),
            true,
            // The container's own init.scope is not the user's unit.
            Some((1000, format!("libpod-{C1}.scope"))),
        ),
        (um.to_owned(), manager(), None, true, None),
        // A Delegate=yes service.
        (
            format!("/system.slice/ci.service/kubepods/besteffort/pod{POD}/{C1}"),
            service("ci.service"),
            Some(fs_pod.clone()),
            true,
            None,
        ),
        (
            format!("/system.slice/ci.service/{sd_pod}"),
            service("ci.service"),
            Some(fake_pod.clone()),
            true,
            None,
        ),
        (
            format!("/system.slice/ci.service/docker/{C1}"),
            service("ci.service"),
            Some(container(C1, "docker", None)),
            true,
            None,
        ),
        // A container's own tree (cgroup namespace, nested runtimes, kind).
        (
            format!("/libpod_parent/libpod-{C2}/{sd_pod}"),
            container(C2, "podman", None),
            Some(fake_pod.clone()),
            false,
            None,
        ),
        (
            format!("/system.slice/docker-{C2}.scope/{sd_pod}"),
            docker_c2.clone(),
            Some(fake_pod.clone()),
            true,
            None,
        ),
        (
            format!("/system.slice/docker-{C2}.scope/system.slice/nginx.service"),
            docker_c2.clone(),
            Some(CgroupWorkload {
                container_id: s(C2),
                runtime: s("docker"),
                ..service("nginx.service")
            }),
            true,
            None,
        ),
        (
            format!("/kubepods/pod{POD2}/{C2}/kubepods/besteffort/pod{POD}/{C1}"),
            pod_container(POD2, "guaranteed", C2, None, None),
            Some(fs_pod.clone()),
            false,
            None,
        ),
        // A Kubernetes root out of place: below a plain directory
        // (which root may have chowned to anyone).
        (
            format!("/scratch/kubepods/besteffort/pod{POD}/{C1}"),
            host(),
            Some(fs_pod.clone()),
            false,
            None,
        ),
        (
            format!("/scratch/{sd_pod}"),
            host(),
            Some(fake_pod.clone()),
            false,
            None,
        ),
        (
            format!("/scratch/kubepods-besteffort-pod{POD_}.slice:cri-containerd:{C1}"),
            host(),
            Some(pod_container(
                POD,
                "besteffort",
                C1,
                Some("containerd"),
                None,
            )),
            false,
            None,
        ),
        // At the kubelet's places: trusted.
        (format!("/{sd_pod}"), fake_pod.clone(), None, true, None),
        (
            format!("/kubepods/besteffort/pod{POD}/{C1}"),
            fs_pod.clone(),
            None,
            false,
            None,
        ),
        (
            format!(
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{POD_}.slice/cri-containerd-{C1}.scope"
            ),
            fake_pod.clone(),
            None,
            true,
            None,
        ),
        // A session scope is not delegated, but nothing below it is logind's.
        (
            format!("/user.slice/user-1000.slice/session-3.scope/{sd_pod}"),
            CgroupWorkload {
                kind: WorkloadKind::Session,
                unit: s("session-3.scope"),
                session_id: Some(3),
                session_uid: Some(1000),
                ..host()
            },
            Some(CgroupWorkload {
                session_uid: Some(1000),
                ..fake_pod.clone()
            }),
            true,
            None,
        ),
    ];
    for (path, trusted, claim, system_unit, user_unit) in cases {
        let p = parse_path(&path, &KubeRoots::default());
        assert_eq!(
            p,
            Parsed {
                workload: trusted,
                claim,
                system_unit,
                user_unit,
            },
            "{path}"
        );
    }
}

/// `--kubepods-root`: the operator's word makes a nested root trusted
/// (kind), and only that root.
#[test]
fn configured_roots() {
    let node = format!("/system.slice/docker-{C2}.scope/kubelet.slice/kubelet-kubepods.slice");
    let pod_path = format!(
        "{node}/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{POD_}.slice/cri-containerd-{C1}.scope"
    );
    let roots = KubeRoots::new(std::slice::from_ref(&node)).unwrap();
    let p = parse_path(&pod_path, &roots);
    assert_eq!(
        p.workload,
        pod_container(
            POD,
            "besteffort",
            C1,
            Some("containerd"),
            Some(&format!("cri-containerd-{C1}.scope"))
        )
    );
    assert_eq!(p.claim, None);
    // The scope is the node's systemd's, not the host's.
    assert!(!p.system_unit);
    // Without the root: the node container, claiming the pod.
    let plain = parse_path(&pod_path, &KubeRoots::default());
    assert_eq!(
        plain.workload,
        container(C2, "docker", Some(&format!("docker-{C2}.scope")))
    );
    assert_eq!(plain.claim.map(|c| c.pod_uid), Some(s(POD)));
    // The root itself, and a sibling that only starts like it.
    assert_eq!(parse_path(&node, &roots).workload, host());
    let sibling = pod_path.replace("kubelet-kubepods.slice/", "kubelet-kubepods2.slice/");
    assert_eq!(parse_path(&sibling, &roots).workload.pod_uid, None);
    // Below a pod of a configured root, the container is again a boundary.
    let deeper = format!("{pod_path}/kubepods/pod{POD2}/{C2}");
    let d = parse_path(&deeper, &roots);
    assert_eq!(d.workload.pod_uid, s(POD));
    assert_eq!(d.claim.and_then(|c| c.pod_uid), s(POD2));
    // A top-level root the operator names: its units are the host's.
    let top = KubeRoots::new(&["/k8s"]).unwrap();
    let t = parse_path(&format!("/k8s/besteffort/pod{POD}/{C1}"), &top);
    assert_eq!(t.workload, pod_container(POD, "besteffort", C1, None, None));
    assert!(KubeRoots::new(&["relative/x"]).is_err());
    assert!(KubeRoots::new(&["/"]).is_err());
    assert!(KubeRoots::new(&["/a/../b"]).is_err());
}

#[test]
fn truncations_do_not_panic() {
    for (path, _, _) in cases() {
        for end in (0..=path.len()).filter(|&i| path.is_char_boundary(i)) {
            let w = parse(&path[..end]);
            check_invariants(&w);
        }
        for start in (0..=path.len()).filter(|&i| path.is_char_boundary(i)) {
            check_invariants(&parse(&path[start..]));
        }
    }
}

fn check_invariants(w: &CgroupWorkload) {
    if let Some(id) = &w.container_id {
        assert!(is_container_id(id), "{w:?}");
    }
    if let Some(uid) = &w.pod_uid {
        assert!(uid.len() == 36 || uid.len() == 32, "{w:?}");
        assert!(
            uid.bytes()
                .all(|c| c == b'-' || matches!(c, b'0'..=b'9' | b'a'..=b'f')),
            "{w:?}"
        );
    }
    if let Some(unit) = &w.unit {
        assert!(unit.len() <= UNIT_NAME_MAX, "{w:?}");
    }
    match w.kind {
        WorkloadKind::Pod => assert!(w.pod_uid.is_some() && w.container_id.is_none(), "{w:?}"),
        WorkloadKind::Container => assert!(w.container_id.is_some(), "{w:?}"),
        WorkloadKind::Session => assert!(w.session_uid.is_some(), "{w:?}"),
        WorkloadKind::Service | WorkloadKind::Host => {}
    }
}

#[test]
fn garbage_does_not_panic() {
    const PIECES: &[&str] = &[
        "/",
        "//",
        "-",
        "_",
        ":",
        ".",
        "..",
        "@",
        "\\",
        "é",
        "\0",
        "pod",
        "kubepods",
        ".slice",
        ".scope",
        ".service",
        "user-",
        "user@",
        "session-",
        "docker",
        "crio",
        "cri-containerd",
        "libpod",
        "conmon",
        "besteffort",
        "burstable",
        "default",
        "0",
        "1000",
        "abc",
        POD,
        POD_,
        C1,
        STATIC_POD,
        "container",
        "user.slice",
    ];
    // xorshift64: deterministic, no dependency.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = next() % 24;
        let path: String = (0..len)
            .filter_map(|_| PIECES.get((next() % PIECES.len() as u64) as usize).copied())
            .collect();
        check_invariants(&parse(&path));
    }
}

#[test]
fn huge_inputs() {
    check_invariants(&parse(&"/".repeat(1 << 20)));
    check_invariants(&parse(&"a".repeat(1 << 20)));
    check_invariants(&parse(&"-".repeat(1 << 20)));
    check_invariants(&parse(&format!("{}.slice", "kubepods-".repeat(1 << 16))));
    let deep = format!("/kubepods/besteffort/pod{POD}/{C1}").repeat(1 << 12);
    assert_eq!(
        parse(&deep),
        pod_container(POD, "besteffort", C1, None, None)
    );
    let long_unit = format!("/system.slice/{}.service", "a".repeat(UNIT_NAME_MAX));
    assert_eq!(parse(&long_unit), host());
}

#[test]
fn kind_serializes_snake_case() -> Result<(), serde_json::Error> {
    assert_eq!(serde_json::to_string(&WorkloadKind::Pod)?, "\"pod\"");
    assert_eq!(serde_json::to_string(&WorkloadKind::Host)?, "\"host\"");
    Ok(())
}
