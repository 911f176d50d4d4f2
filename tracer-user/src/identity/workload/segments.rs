//! The grammar of single path segments: container ids, pod UIDs, unit and
//! session names, Kubernetes slices, and the runtimes they name.

const CONTAINER_ID_LEN: usize = 64;
/// systemd's `UNIT_NAME_MAX` (256) less the NUL.
pub(super) const UNIT_NAME_MAX: usize = 255;
/// logind session ids are short; bounds what we accept.
const SESSION_ID_MAX: usize = 32;
/// Unit types whose cgroups hold processes (slices are handled apart).
pub(super) const PROCESS_UNIT_SUFFIXES: [&str; 5] =
    [".service", ".scope", ".socket", ".mount", ".swap"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    /// The tier directory or slice component; guaranteed pods have none.
    pub(super) fn from_tier(s: &str) -> Option<Self> {
        match s {
            "burstable" => Some(Self::Burstable),
            "besteffort" => Some(Self::BestEffort),
            _ => None,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Guaranteed => "guaranteed",
            Self::Burstable => "burstable",
            Self::BestEffort => "besteffort",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
}

impl Runtime {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Containerd => "containerd",
            Self::CriO => "cri-o",
            Self::Docker => "docker",
            Self::Podman => "podman",
        }
    }
}

/// What a `<prefix>-<id>` leaf holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leaf {
    Container(Runtime),
    /// The runtime's monitor process, a sibling of the container.
    Conmon,
}

pub(super) fn leaf_kind(prefix: &str) -> Option<Leaf> {
    match prefix {
        "cri-containerd" => Some(Leaf::Container(Runtime::Containerd)),
        "crio" => Some(Leaf::Container(Runtime::CriO)),
        "docker" => Some(Leaf::Container(Runtime::Docker)),
        "libpod" => Some(Leaf::Container(Runtime::Podman)),
        "crio-conmon" | "libpod-conmon" => Some(Leaf::Conmon),
        _ => None,
    }
}

pub(super) enum KubeSlice {
    Root,
    Qos(Qos),
    Pod(Qos, String),
}

/// `[prefix-]kubepods[-<qos>][-pod<uid_>].slice`; systemd slice names spell
/// out their ancestry with `-`, hence the escaped UID.
pub(super) fn kube_slice(seg: &str) -> Option<KubeSlice> {
    let stem = seg.strip_suffix(".slice")?;
    let mut parts = stem.split('-');
    loop {
        match parts.next()? {
            "kubepods" => break,
            "" => return None,
            _ => {}
        }
    }
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Some(KubeSlice::Root),
        (Some(one), None, _) => match Qos::from_tier(one) {
            Some(q) => Some(KubeSlice::Qos(q)),
            None => Some(KubeSlice::Pod(Qos::Guaranteed, pod_part(one, b'_')?)),
        },
        (Some(tier), Some(pod), None) => {
            Some(KubeSlice::Pod(Qos::from_tier(tier)?, pod_part(pod, b'_')?))
        }
        _ => None,
    }
}

pub(super) fn pod_part(s: &str, sep: u8) -> Option<String> {
    pod_uid(s.strip_prefix("pod")?, sep)
}

/// A UUID with `sep` between groups, or a static pod's 32-hex hash; normalised.
fn pod_uid(raw: &str, sep: u8) -> Option<String> {
    let b = raw.as_bytes();
    let valid = match b.len() {
        36 => b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == sep,
            _ => c.is_ascii_hexdigit(),
        }),
        32 => b.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    };
    valid.then(|| {
        b.iter()
            .map(|&c| {
                if c == sep {
                    '-'
                } else {
                    char::from(c.to_ascii_lowercase())
                }
            })
            .collect()
    })
}

pub(super) fn is_container_id(s: &str) -> bool {
    s.len() == CONTAINER_ID_LEN && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// `<prefix>-<id>[.scope]` -> (leaf, id, is a scope unit).
pub(super) fn prefixed_leaf(seg: &str) -> Option<(Leaf, &str, bool)> {
    let (name, scoped) = match seg.strip_suffix(".scope") {
        Some(name) => (name, true),
        None => (seg, false),
    };
    let (prefix, id) = name.rsplit_once('-')?;
    if !is_container_id(id) {
        return None;
    }
    Some((leaf_kind(prefix)?, id, scoped))
}

/// Canonical decimal as systemd and logind print it: no sign, no leading zeros.
pub(super) fn decimal(s: &str) -> Option<u32> {
    let canonical = !s.is_empty()
        && s.bytes().all(|c| c.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

/// A uid as used in `user-<uid>.slice`; `(uid_t)-1` is "no uid".
pub(super) fn uid(s: &str) -> Option<u32> {
    decimal(s).filter(|&u| u != u32::MAX)
}

pub(super) fn session_name(seg: &str) -> Option<&str> {
    let id = seg.strip_prefix("session-")?.strip_suffix(".scope")?;
    let valid = !id.is_empty()
        && id.len() <= SESSION_ID_MAX
        && id.bytes().all(|c| c.is_ascii_alphanumeric());
    valid.then_some(id)
}

pub(super) fn is_unit_name(seg: &str, suffixes: &[&str]) -> bool {
    seg.len() <= UNIT_NAME_MAX
        && seg.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b':' | b'-' | b'_' | b'.' | b'\\' | b'@')
        })
        && suffixes.iter().any(|suffix| {
            seg.strip_suffix(suffix)
                .is_some_and(|stem| !stem.is_empty())
        })
}
