use super::*;
use serde_json::{Value, json};

fn service(v: Value) -> ServiceMeta {
    let s: Service = serde_json::from_value(v).unwrap();
    service_meta(&s).unwrap()
}

fn slice(v: Value) -> SliceMeta {
    let s: EndpointSlice = serde_json::from_value(v).unwrap();
    slice_meta(&s, None).unwrap()
}

fn svc_json(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
        "spec": spec})
}

fn slice_json(ns: &str, name: &str, service: &str, endpoints: Value, ports: Value) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns,
            "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": ports})
}

fn pod_ep(ip: &str, ns: &str, pod: &str) -> Value {
    json!({"addresses": [ip], "targetRef": {"kind": "Pod", "namespace": ns, "name": pod,
        "uid": format!("uid-{pod}")}})
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn map() -> ServiceMap {
    ServiceMap::new(Duration::from_secs(300), ServiceLimits::default())
}

/// What a lookup names, as text: (service, port name, pod).
fn names(d: &Destination) -> (Option<&str>, Option<&str>, Option<&str>) {
    (
        d.service.as_ref().map(|s| &*s.key),
        d.service.as_ref().and_then(|s| s.port_name.as_deref()),
        d.pod.as_ref().map(|p| &*p.key),
    )
}

/// Service objects -> what the index keeps of them.
#[test]
fn services_parse() {
    // (spec, ips, headless, ports as (name, port, protocol))
    type Case = (
        Value,
        Vec<&'static str>,
        bool,
        Vec<(Option<&'static str>, u16, &'static str)>,
    );
    let cases: Vec<Case> = vec![
        (
            json!({"clusterIP": "10.96.3.7", "ports": [{"name": "https", "port": 443}]}),
            vec!["10.96.3.7"],
            false,
            vec![(Some("https"), 443, "TCP")],
        ),
        // Dual stack: clusterIPs wins over clusterIP, both families.
        (
            json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::a"],
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                          {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
            vec!["10.96.0.10", "fd00::a"],
            false,
            vec![(Some("dns"), 53, "UDP"), (Some("dns-tcp"), 53, "TCP")],
        ),
        // Headless: no address, found through its endpoints.
        (
            json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]}),
            vec![],
            true,
            vec![(None, 5432, "TCP")],
        ),
        // ExternalName: nothing to index.
        (
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            vec![],
            false,
            vec![],
        ),
        // Garbage address and out-of-range port are skipped, the rest kept.
        (
            json!({"clusterIP": "10.96.9.9", "clusterIPs": ["nonsense", "10.96.9.9"],
                "ports": [{"port": 70000}, {"port": 80, "name": ""}]}),
            vec!["10.96.9.9"],
            false,
            vec![(None, 80, "TCP")],
        ),
    ];
    for (spec, ips, headless, ports) in cases {
        let m = service(svc_json("shop", "cart", spec.clone()));
        assert_eq!(&*m.key, "shop/cart");
        let want: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
        assert_eq!(m.ips, want, "{spec}");
        assert_eq!(m.headless, headless, "{spec}");
        let got: Vec<(Option<&str>, u16, &str)> = m
            .ports
            .iter()
            .map(|p| (p.name.as_deref(), p.port, &*p.protocol))
            .collect();
        assert_eq!(got, ports, "{spec}");
    }
    let nameless: Service = serde_json::from_value(json!({"metadata": {}})).unwrap();
    assert!(service_meta(&nameless).is_none());
}

/// EndpointSlices: pod targets only, every address, the owning Service.
#[test]
fn slices_parse() {
    let s = slice(slice_json(
        "shop",
        "cart-abcde",
        "cart",
        json!([
            pod_ep("10.244.1.9", "shop", "cart-1"),
            {"addresses": ["10.244.1.10", "10.244.1.11"],
             "targetRef": {"kind": "Pod", "name": "cart-2"}},
            {"addresses": ["192.168.0.5"], "targetRef": {"kind": "Node", "name": "node-1"}},
            {"addresses": ["192.168.0.6"]},
            {"addresses": ["not-an-ip"], "targetRef": {"kind": "Pod", "name": "cart-3"}},
            // Another namespace's pod: never named from this one's slice.
            {"addresses": ["10.244.9.9"], "targetRef": {"kind": "Pod", "namespace": "payments", "name": "api-0"}}
        ]),
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
    ));
    assert_eq!(s.service.as_deref(), Some("shop/cart"));
    let got: Vec<(String, &str, Option<&str>)> = s
        .endpoints
        .iter()
        .map(|(a, p)| (a.to_string(), &*p.key, p.uid.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("10.244.1.9".into(), "shop/cart-1", Some("uid-cart-1")),
            ("10.244.1.10".into(), "shop/cart-2", None),
            ("10.244.1.11".into(), "shop/cart-2", None),
        ]
    );
    assert_eq!(s.ports[0].name.as_deref(), Some("http"));
    // On a node: pod UIDs only for its own endpoints (and those of no node).
    let v = slice_json(
        "shop",
        "cart-n",
        "cart",
        json!([
            {"addresses": ["10.244.1.1"], "nodeName": "node-1",
             "targetRef": {"kind": "Pod", "name": "here", "uid": "u-here"}},
            {"addresses": ["10.244.2.1"], "nodeName": "node-2",
             "targetRef": {"kind": "Pod", "name": "there", "uid": "u-there"}},
            {"addresses": ["10.244.3.1"],
             "targetRef": {"kind": "Pod", "name": "nowhere", "uid": "u-nowhere"}}
        ]),
        json!([]),
    );
    let s: EndpointSlice = serde_json::from_value(v).unwrap();
    let meta = slice_meta(&s, Some("node-1")).unwrap();
    let uids: Vec<(&str, Option<&str>)> = meta
        .endpoints
        .iter()
        .map(|(_, p)| (&*p.key, p.uid.as_deref()))
        .collect();
    assert_eq!(
        uids,
        [
            ("shop/here", Some("u-here")),
            ("shop/there", None),
            ("shop/nowhere", Some("u-nowhere"))
        ]
    );
    // No owner label: still names its pods.
    let mut v = slice_json(
        "shop",
        "x",
        "",
        json!([pod_ep("10.244.2.1", "shop", "p")]),
        json!([]),
    );
    v["metadata"]["labels"] = json!({});
    assert_eq!(slice(v).service, None);
}

/// Lookups: ClusterIP (either family), port names by port and protocol,
/// pod IPs, headless Services through their endpoints, unknown addresses.
#[test]
fn lookups() {
    let mut m = map();
    m.upsert_service(service(svc_json(
        "shop",
        "cart",
        json!({"clusterIP": "10.96.3.7", "clusterIPs": ["10.96.3.7", "fd00::37"],
            "ports": [{"name": "https", "port": 443}, {"name": "metrics", "port": 9090, "protocol": "UDP"}]}),
    )));
    m.upsert_service(service(svc_json(
        "data",
        "pg",
        json!({"clusterIP": "None", "ports": [{"name": "sql", "port": 5432}]}),
    )));
    m.upsert_slice(slice(slice_json(
        "shop",
        "cart-1",
        "cart",
        json!([pod_ep("10.244.1.9", "shop", "cart-a")]),
        json!([{"name": "https", "port": 8443}]),
    )));
    m.upsert_slice(slice(slice_json(
        "data",
        "pg-1",
        "pg",
        json!([pod_ep("10.244.3.3", "data", "pg-0")]),
        json!([{"name": "sql", "port": 5432}]),
    )));
    type Case = (
        &'static str,
        u16,
        &'static str,
        (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
        ),
    );
    let cases: &[Case] = &[
        (
            "10.96.3.7",
            443,
            "tcp",
            (Some("shop/cart"), Some("https"), None),
        ),
        (
            "fd00::37",
            443,
            "tcp",
            (Some("shop/cart"), Some("https"), None),
        ),
        // Not a listed port: still the Service's address, no port name.
        ("10.96.3.7", 80, "tcp", (Some("shop/cart"), None, None)),
        // The port is listed for UDP only.
        ("10.96.3.7", 9090, "tcp", (Some("shop/cart"), None, None)),
        (
            "10.96.3.7",
            9090,
            "udp",
            (Some("shop/cart"), Some("metrics"), None),
        ),
        // v4-mapped as the kernel may report it.
        (
            "::ffff:10.96.3.7",
            443,
            "tcp",
            (Some("shop/cart"), Some("https"), None),
        ),
        // A pod of a Service with a ClusterIP: the pod, not the Service.
        ("10.244.1.9", 8443, "tcp", (None, None, Some("shop/cart-a"))),
        // A pod of a headless Service: both, the port named by the slice.
        (
            "10.244.3.3",
            5432,
            "tcp",
            (Some("data/pg"), Some("sql"), Some("data/pg-0")),
        ),
        (
            "10.244.3.3",
            22,
            "tcp",
            (Some("data/pg"), None, Some("data/pg-0")),
        ),
        ("10.1.1.1", 443, "tcp", (None, None, None)),
    ];
    for (addr, port, proto, want) in cases {
        let d = m.lookup(ip(addr), *port, proto);
        assert_eq!(names(&d), *want, "{addr}:{port}/{proto}");
    }
    let d = m.lookup(ip("10.244.1.9"), 8443, "tcp");
    assert_eq!(d.pod.unwrap().uid.as_deref(), Some("uid-cart-a"));
}

/// Slice updates move addresses; deletes keep them for the grace period,
/// but a live holder of the same address wins at once (IP reuse).
#[test]
fn updates_deletes_and_reuse() {
    let mut m = ServiceMap::new(Duration::from_millis(100), ServiceLimits::default());
    let s1 = |eps: Value| slice(slice_json("shop", "cart-1", "cart", eps, json!([])));
    m.upsert_slice(s1(json!([
        pod_ep("10.244.1.9", "shop", "a"),
        pod_ep("10.244.1.10", "shop", "b")
    ])));
    let pod = |m: &ServiceMap, a: &str| m.lookup(ip(a), 80, "tcp").pod.map(|p| p.key.to_string());
    assert_eq!(pod(&m, "10.244.1.10").as_deref(), Some("shop/b"));
    // b goes away, c arrives: b's address is no longer named.
    m.upsert_slice(s1(json!([
        pod_ep("10.244.1.9", "shop", "a"),
        pod_ep("10.244.1.11", "shop", "c")
    ])));
    assert_eq!(pod(&m, "10.244.1.10"), None);
    assert_eq!(pod(&m, "10.244.1.11").as_deref(), Some("shop/c"));
    let bytes_one = m.bytes();

    // The slice is deleted: still named during the grace period.
    let t0 = Instant::now();
    m.delete_slice("shop/cart-1", t0);
    assert_eq!(pod(&m, "10.244.1.9").as_deref(), Some("shop/a"));
    // Another slice now lists a's old address for a new pod: the live one wins.
    m.upsert_slice(slice(slice_json(
        "other",
        "web-1",
        "web",
        json!([pod_ep("10.244.1.9", "other", "web-x")]),
        json!([]),
    )));
    assert_eq!(pod(&m, "10.244.1.9").as_deref(), Some("other/web-x"));
    m.evict(t0 + Duration::from_millis(50));
    assert_eq!(pod(&m, "10.244.1.11").as_deref(), Some("shop/c"));
    m.evict(t0 + Duration::from_millis(150));
    assert_eq!(pod(&m, "10.244.1.11"), None, "gone after the grace");
    assert_eq!(m.len(), 1);
    assert!(m.bytes() > 0 && m.bytes() < bytes_one + 200);

    // Services likewise: a deleted one loses its IP to a new one.
    let svc = |name: &str| service(svc_json("shop", name, json!({"clusterIP": "10.96.0.5"})));
    m.upsert_service(svc("old"));
    m.delete_service("shop/old", t0);
    let svc_of = |m: &ServiceMap| {
        m.lookup(ip("10.96.0.5"), 80, "tcp")
            .service
            .map(|s| s.key.to_string())
    };
    assert_eq!(svc_of(&m).as_deref(), Some("shop/old"));
    m.upsert_service(svc("new"));
    assert_eq!(svc_of(&m).as_deref(), Some("shop/new"));
    // An update that moves the IP away unindexes the old one.
    m.upsert_service(service(svc_json(
        "shop",
        "new",
        json!({"clusterIP": "10.96.0.6"}),
    )));
    assert_eq!(svc_of(&m).as_deref(), Some("shop/old"));
    m.evict(t0 + Duration::from_secs(1));
    assert_eq!(svc_of(&m), None);
    // A relist that does not name an object marks it deleted.
    let listed: HashSet<Key> = HashSet::new();
    m.reconcile_services(&listed, t0 + Duration::from_secs(1));
    m.evict(t0 + Duration::from_secs(2));
    assert_eq!(m.lookup(ip("10.96.0.6"), 80, "tcp").service, None);
}

/// Past the byte bound, deleted objects go first; then a new object that
/// cannot fit is left out. Every drop is counted, bytes follow.
#[test]
fn stays_within_its_byte_bound() {
    let svc = |i: u32| {
        service(svc_json(
            "ns",
            &format!("svc-{i:03}"),
            json!({"clusterIP": format!("10.96.0.{i}"), "ports": [{"name": "http", "port": 80}]}),
        ))
    };
    let one = svc(1).cost();
    let mut m = ServiceMap::new(Duration::from_secs(300), ServiceLimits { bytes: 3 * one });
    for i in 1..=3 {
        m.upsert_service(svc(i));
    }
    assert_eq!((m.len(), m.dropped, m.bytes()), (3, 0, 3 * one));
    m.upsert_service(svc(4));
    assert_eq!(
        m.dropped, 1,
        "no room, nothing deleted: the new one is left out"
    );
    assert!(m.lookup(ip("10.96.0.4"), 80, "tcp").service.is_none());
    assert!(m.lookup(ip("10.96.0.1"), 80, "tcp").service.is_some());
    m.delete_service("ns/svc-002", Instant::now());
    m.upsert_service(svc(4));
    assert_eq!(m.dropped, 2, "the deleted one made room");
    assert!(m.lookup(ip("10.96.0.4"), 80, "tcp").service.is_some());
    assert!(m.lookup(ip("10.96.0.2"), 80, "tcp").service.is_none());
    assert!(m.bytes() <= 3 * one);
    // Updating a held object never counts as growth of the whole.
    m.upsert_service(svc(4));
    assert_eq!((m.len(), m.dropped, m.bytes()), (3, 2, 3 * one));
    // A slice far larger than the bound is left out whole.
    let eps: Vec<Value> = (0..1000)
        .map(|i| {
            pod_ep(
                &format!("10.244.{}.{}", i / 200, i % 200),
                "ns",
                &format!("p{i}"),
            )
        })
        .collect();
    m.upsert_slice(slice(slice_json(
        "ns",
        "big",
        "svc-001",
        json!(eps),
        json!([]),
    )));
    assert_eq!(m.dropped, 3);
    assert!(m.lookup(ip("10.244.0.1"), 80, "tcp").pod.is_none());
    assert!(m.bytes() <= 3 * one);
}

/// Through the identity resolver: names as the event carries them, and the
/// pod's SPIFFE ID only when the node's pod cache holds the very pod the
/// endpoint names (by UID, namespace and name).
#[test]
fn destinations_with_spiffe_ids() {
    use crate::identity::{kube, resolve::IdentityResolver, spiffe::Registry};
    let index = ServiceIndex::new(Duration::from_secs(300), ServiceLimits::default());
    {
        let mut m = index.map.write().unwrap();
        m.upsert_service(service(svc_json(
            "shop",
            "cart",
            json!({"clusterIP": "10.96.3.7", "ports": [{"name": "https", "port": 443}]}),
        )));
        m.upsert_slice(slice(slice_json(
            "shop",
            "cart-1",
            "cart",
            json!([
                pod_ep("10.244.1.9", "shop", "local"),
                pod_ep("10.244.1.10", "shop", "remote"),
                pod_ep("10.244.1.11", "shop", "renamed")
            ]),
            json!([]),
        )));
    }
    let pods = kube::PodIndex::new(Duration::from_secs(300));
    let pod = |name: &str, uid: &str| {
        let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "uid": uid},
            "spec": {"serviceAccountName": "cart-sa", "containers": []}
        }))
        .unwrap();
        kube::pod_meta(&p, kube::POD_LABELS_MAX_BYTES).unwrap()
    };
    {
        let mut c = pods.cache.write().unwrap();
        c.upsert(pod("local", "uid-local"));
        // Same UID as the endpoint says, another name: not trusted.
        c.upsert(pod("other", "uid-renamed"));
    }
    let registry = Registry::new("example.org", true).unwrap();
    let r = IdentityResolver::new(Some(pods), registry).with_services(Some(index));
    let (svc, none) = r.destination("10.96.3.7", 443, "tcp");
    let svc = svc.unwrap();
    assert_eq!(
        (
            svc.namespace.as_str(),
            svc.name.as_str(),
            svc.port_name.as_deref()
        ),
        ("shop", "cart", Some("https"))
    );
    assert!(none.is_none());
    let spiffe = |ip: &str| {
        let (_, p) = r.destination(ip, 8080, "tcp");
        p.map(|p| (p.name.clone(), p.spiffe_id.clone()))
    };
    assert_eq!(
        spiffe("10.244.1.9"),
        Some((
            "local".into(),
            Some("spiffe://example.org/ns/shop/sa/cart-sa".into())
        ))
    );
    assert_eq!(spiffe("10.244.1.10"), Some(("remote".into(), None)));
    assert_eq!(spiffe("10.244.1.11"), Some(("renamed".into(), None)));
    assert_eq!(r.destination("not an ip", 1, "tcp"), (None, None));
    // Outside a cluster: nothing.
    let bare = IdentityResolver::new(None, Registry::new("example.org", true).unwrap());
    assert_eq!(bare.destination("10.96.3.7", 443, "tcp"), (None, None));
}

/// A hand-written slice (no controller label) listing an address a managed
/// slice holds does not take it over, whichever was written last; it names
/// addresses nobody else holds.
#[test]
fn managed_slices_win_addresses() {
    let mut m = map();
    let managed = |name: &str, eps: Value| {
        let mut v = slice_json("shop", name, "cart", eps, json!([]));
        v["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] =
            json!("endpointslice-controller.k8s.io");
        slice(v)
    };
    m.upsert_slice(managed(
        "cart-1",
        json!([pod_ep("10.244.1.9", "shop", "cart-0")]),
    ));
    m.upsert_slice(slice(slice_json(
        "shop",
        "hand",
        "cart",
        json!([
            pod_ep("10.244.1.9", "shop", "fake"),
            pod_ep("10.244.1.50", "shop", "extra")
        ]),
        json!([]),
    )));
    let pod = |m: &ServiceMap, a: &str| m.lookup(ip(a), 80, "tcp").pod.map(|p| p.key.to_string());
    assert_eq!(pod(&m, "10.244.1.9").as_deref(), Some("shop/cart-0"));
    assert_eq!(pod(&m, "10.244.1.50").as_deref(), Some("shop/extra"));
    // The managed slice deleted: the live hand-written one names the address.
    m.delete_slice("shop/cart-1", Instant::now());
    assert_eq!(pod(&m, "10.244.1.9").as_deref(), Some("shop/fake"));
}
