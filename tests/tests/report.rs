//! `tracer report`: two automations (a cron job and a CI runner) running as one
//! user are two executors of one shared credential, in the table, the JSON and
//! the HTML page, and the page renders in a real headless browser (Chromium);
//! so are two Deployments under one Kubernetes service account.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;
use tracer_tests::{
    LoopbackListener, TestCgroup, TestUser, Tracer, find_tool,
    kubeapi::{FakeApi, pod_json},
    marker, run_ok, scratch_dir, test_container_id, test_uuid, tracer_bin,
};

/// Removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Run `launcher` (a copy of dash named as a known launcher) as root, which
/// starts the job as `user` the way cron does: sh, then `true` and a bash that
/// connects to `port`. `; exit 0` keeps each shell from exec'ing its last
/// command in place (the lineage keeps every process).
fn automation(launcher: &Path, user: &TestUser, port: u16) {
    let job = format!(
        "/bin/true {}; /bin/bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'; exit 0",
        marker("job")
    );
    run_ok(
        Command::new(launcher)
            .arg("-c")
            .arg(format!(
                "/usr/bin/setpriv --reuid={} --regid={} --clear-groups /bin/sh -c \"$0\"; exit 0",
                user.uid, user.gid
            ))
            .arg(job),
        Duration::from_secs(30),
    );
}

fn report(files: &[&Path], args: &[&str]) -> String {
    let mut cmd = Command::new(tracer_bin());
    cmd.arg("report").args(args).args(files);
    run_ok(&mut cmd, Duration::from_secs(120))
}

#[test]
fn two_automations_under_one_uid_are_two_executors_of_a_shared_credential() {
    let user = TestUser::new();
    let dir = Dir(std::env::temp_dir().join(marker("report")));
    fs::create_dir_all(&dir.0).unwrap();
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
    let (cron, runner) = (dir.0.join("cron"), dir.0.join("gitlab-runner"));
    for l in [&cron, &runner] {
        fs::copy("/usr/bin/dash", l).unwrap();
    }
    let listener = LoopbackListener::start();

    let tracer = Tracer::start(&["--emit-lifecycle", "--lineage", "ids", "--no-socket"]);
    automation(&cron, &user, listener.port);
    automation(&runner, &user, listener.port);
    // Both connects are written before the tracer stops.
    let uid = u64::from(user.uid);
    tracer.wait_for(2, |e| {
        e["kind"] == "connect"
            && e["action"]["destination"]["port"] == listener.port
            && (e["executor"]["user"]["uid"] == uid || e["executor"]["ref"] == true)
    });
    // Stopped cleanly, the tracer has written everything; its file goes with it.
    let mut tracer = tracer;
    let status = tracer.try_stop(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
    let keep = Dir(dir.0.join("out"));
    fs::create_dir_all(&keep.0).unwrap();
    let events = keep.0.join("events.jsonl");
    fs::copy(&tracer.output, &events).unwrap();
    drop(tracer);

    // JSON.
    let json: Value = serde_json::from_str(&report(&[&events], &["--format", "json"])).unwrap();
    assert_eq!(json["chain"]["verdict"], "intact", "{}", json["chain"]);
    let id = format!("uid:{uid}");
    let cred = json["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no {id} in {json:#}"));
    assert_eq!(cred["shared"], true, "{cred:#}");
    assert_eq!(cred["user"], user.name.as_str());
    // What each executor did under this credential.
    let ex: Vec<&Value> = cred["executors"].as_array().unwrap().iter().collect();
    assert_eq!(ex.len(), 2, "{ex:#?}");
    let mut roots: Vec<(&str, &str)> = ex
        .iter()
        .map(|p| {
            let x = &json["executors"][p["executor"].as_u64().unwrap() as usize];
            (
                x["root_kind"].as_str().unwrap(),
                x["root"].as_str().unwrap(),
            )
        })
        .collect();
    roots.sort();
    assert_eq!(roots[0].0, "ci");
    assert_eq!(roots[0].1, "GitLab runner");
    assert_eq!(roots[1].0, "cron");
    assert!(roots[1].1.starts_with("cron: sh -c /bin/true"), "{roots:?}");
    // Each, as the user: sh, true and bash exec'd; bash connected once (the
    // launcher and setpriv ran as root: another credential).
    for x in &ex {
        assert_eq!(
            (x["execs"].as_u64(), x["connects"].as_u64()),
            (Some(3), Some(1)),
            "{x:#}"
        );
        assert_eq!(x["destinations"], 1);
        assert_eq!(
            x["top_destinations"][0]["destination"],
            format!("127.0.0.1:{}", listener.port).as_str()
        );
    }
    assert_eq!(
        (cred["execs"].as_u64(), cred["connects"].as_u64()),
        (Some(6), Some(2))
    );

    // Table.
    let table = report(&[&events], &[]);
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{id} ({})", user.name)))
        .unwrap_or_else(|| panic!("no row for {id}:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[2..6], ["SHARED", "2", "6", "2"], "{row}");
    assert!(table.contains("chain: intact"));
    assert!(table.contains("GitLab runner"));

    // HTML, then the browser's reading of it.
    let html = keep.0.join("report.html");
    report(
        &[&events],
        &["--format", "html", "--output", html.to_str().unwrap()],
    );
    let page = fs::read_to_string(&html).unwrap();
    assert!(!page.contains("http://") && !page.contains("https://"));
    let attrs = format!(
        r#"data-credential="{id}" data-shared="true" data-executors="2" data-execs="6" data-connects="2""#
    );
    assert!(page.contains(&attrs), "{attrs} not in the page");
    let chromium = find_tool("chromium").expect("chromium missing: run `cargo xtask setup`");
    let profile = keep.0.join("chromium-profile");
    let url = format!("file://{}", html.display());
    let dom = run_ok(
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--dump-dom", &url]),
        Duration::from_secs(120),
    );
    // The browser parsed the rows as elements with the numbers of the JSON.
    assert!(dom.contains(&attrs), "the browser's DOM lacks {attrs}");
    assert_eq!(
        dom.matches(&format!(r#"<tr class="exec" data-credential="{id}""#))
            .count(),
        2
    );
    for x in &ex {
        let row = format!(
            r#"data-executor="{}" data-execs="{}" data-connects="{}""#,
            x["executor"], x["execs"], x["connects"]
        );
        assert!(dom.contains(&row), "{row}");
    }
    assert!(dom.contains(r#"data-verdict="intact""#));
    assert!(dom.contains("<svg id=\"picture\""));
    let shot = keep.0.join("shot.png");
    run_ok(
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--screenshot={}", shot.display()))
            .args(["--window-size=1280,900", &url]),
        Duration::from_secs(120),
    );
    let png = fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

/// Two pods of two Deployments running under one service account (pods faked
/// as in tests/identity.rs: cgroups shaped as the kubelet makes them, metadata
/// from a stand-in Kubernetes API) are two executors of one shared credential.
#[test]
fn two_deployments_under_one_service_account_share_it() {
    let api = FakeApi::start();
    let node = marker("node");
    let scratch = Dir(scratch_dir());
    let ns = marker("ns");
    let names = [marker("web"), marker("batch")];
    let mut cgroups = Vec::new();
    for name in &names {
        let (uid, cid) = (test_uuid(), test_container_id());
        api.add_pod(pod_json(&node, &ns, name, &uid, "deployer", &cid, "app:1"));
        let u = uid.replace('-', "_");
        cgroups.push(TestCgroup::new(&format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/cri-containerd-{cid}.scope"
        )));
    }
    let kubeconfig = api.kubeconfig(&scratch.0);
    let listener = LoopbackListener::start();
    let mut tracer = Tracer::start_with_env(
        &["--node-name", &node, "--lineage", "ids", "--no-socket"],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    for cg in &cgroups {
        // The pod's init: a shell that runs `true` and a bash that connects.
        let job = format!(
            "/bin/true {}; /bin/bash -c 'exec 3<>/dev/tcp/127.0.0.1/{}'; exit 0",
            marker("pod"),
            listener.port
        );
        run_ok(
            Command::new("sh")
                .arg("-c")
                .arg(format!("{}exec /bin/sh -c \"$0\"", cg.enter()))
                .arg(job),
            Duration::from_secs(30),
        );
    }
    tracer.wait_for(2, |e| {
        e["kind"] == "connect" && e["action"]["destination"]["port"] == listener.port
    });
    let status = tracer.try_stop(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "{status}");
    let events = scratch.0.join("events.jsonl");
    fs::copy(&tracer.output, &events).unwrap();
    drop(tracer);

    let json: Value = serde_json::from_str(&report(&[&events], &["--format", "json"])).unwrap();
    let id = format!("sa:{ns}/deployer");
    let cred = json["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no {id} in {:#}", json["credentials"]));
    assert_eq!(cred["shared"], true, "{cred:#}");
    assert_eq!(cred["kind"], "service_account");
    let mut workloads = Vec::new();
    for p in cred["executors"].as_array().unwrap() {
        // Each pod: its sh, true and bash; bash connected once.
        assert_eq!(
            (p["execs"].as_u64(), p["connects"].as_u64()),
            (Some(3), Some(1)),
            "{p:#}"
        );
        let x = &json["executors"][p["executor"].as_u64().unwrap() as usize];
        workloads.push(x["workload"].as_str().unwrap().to_owned());
    }
    workloads.sort();
    let mut want: Vec<String> = names
        .iter()
        .map(|n| format!("{ns}/Deployment/{n}"))
        .collect();
    want.sort();
    assert_eq!(workloads, want);

    let table = report(&[&events], &[]);
    let row = table
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("no row for {id}:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..5], ["SHARED", "2", "6", "2"], "{row}");

    let html = scratch.0.join("report.html");
    report(
        &[&events],
        &["--format", "html", "--output", html.to_str().unwrap()],
    );
    let page = fs::read_to_string(&html).unwrap();
    let attrs = format!(
        r#"data-credential="{id}" data-shared="true" data-executors="2" data-execs="6" data-connects="2""#
    );
    assert!(page.contains(&attrs), "{attrs} not in the page");
}
