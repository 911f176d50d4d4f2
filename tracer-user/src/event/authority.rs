//! `executor.authority`: what the executor may do, as the kernel held it at
//! the moment of the action (capability sets, no_new_privs, seccomp mode, user
//! namespace), from the probes' [`TaskInfo`], never from /proc.
use std::{borrow::Cow, sync::LazyLock};

use serde::{
    Serialize, Serializer,
    ser::{SerializeMap as _, SerializeStruct as _},
};
use tracer_common::{
    AUTH_CAPS, AUTH_NNP_KNOWN, AUTH_NO_NEW_PRIVS, AUTH_SECCOMP_KNOWN, AUTH_SECCOMP_SHIFT,
    AUTH_USERNS, AUTH_USERNS_MAP_LARGE, AUTH_USERNS_UID, AUTH_USERNS_UNMAPPED, TaskInfo,
};

/// Capability names by number (linux/capability.h); a number past the end
/// (a newer kernel) is written `CAP_<n>`.
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The name of capability `n`.
pub fn cap_name(n: u32) -> Cow<'static, str> {
    match CAP_NAMES.get(n as usize) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("CAP_{n}")),
    }
}

/// Every capability the running kernel has (bits 0..=`cap_last_cap`): what
/// `"all"` stands for. Read once from /proc/sys/kernel/cap_last_cap (the
/// kernel's, in every namespace); if unreadable, the 41 capabilities of 5.9+.
pub static RUNNING_KERNEL_CAPS: LazyLock<u64> = LazyLock::new(|| {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(CAP_NAMES.len() as u32 - 1);
    full_set(last)
});

/// Bits 0..=`last`.
pub fn full_set(last: u32) -> u64 {
    if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority {
    /// Null when the kernel's record has none (a member missing on this
    /// kernel, or the credentials unreadable).
    pub capabilities: Option<Capabilities>,
    pub no_new_privs: Option<bool>,
    pub seccomp: Option<Seccomp>,
    pub user_namespace: Option<UserNamespace>,
}

/// The capability sets, one bit per capability number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    pub bounding: u64,
    /// Every capability of the running kernel ([`RUNNING_KERNEL_CAPS`]):
    /// a set equal to it is written `"all"`, a bounding set equal to it not at all.
    pub all: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    None,
    Strict,
    Filter,
    /// SECCOMP_MODE_DEAD (5.17+): seccomp is killing the task (strict mode's
    /// forbidden syscall, or a filter's kill action); seen on its exit.
    Killed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserNamespace {
    pub inum: u32,
    /// 0: the host's (initial) user namespace.
    pub level: u32,
    /// Who created it, as a host uid.
    pub owner_uid: u32,
    pub uid: NsUid,
}

/// The executor's uid as its user namespace sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsUid {
    Mapped(u32),
    /// The namespace maps no uid onto it (the kernel shows the overflow uid).
    Unmapped,
    /// The namespace's map has more ranges than the kernel keeps inline; not read.
    NotRead,
    Unknown,
}

impl Authority {
    /// From the probes' record; `all` is [`RUNNING_KERNEL_CAPS`].
    pub fn from_task(t: &TaskInfo, all: u64) -> Authority {
        let a = t.authority;
        let capabilities = (a & AUTH_CAPS != 0).then_some(Capabilities {
            effective: t.cap_effective,
            permitted: t.cap_permitted,
            inheritable: t.cap_inheritable,
            ambient: t.cap_ambient,
            bounding: t.cap_bset,
            all,
        });
        let seccomp =
            (a & AUTH_SECCOMP_KNOWN != 0).then_some(match (a >> AUTH_SECCOMP_SHIFT) & 3 {
                0 => Seccomp::None,
                1 => Seccomp::Strict,
                2 => Seccomp::Filter,
                _ => Seccomp::Killed,
            });
        let user_namespace = (a & AUTH_USERNS != 0).then_some(UserNamespace {
            inum: t.userns_inum,
            level: t.userns_level,
            owner_uid: t.userns_owner,
            uid: if a & AUTH_USERNS_UID != 0 {
                NsUid::Mapped(t.userns_uid)
            } else if a & AUTH_USERNS_UNMAPPED != 0 {
                NsUid::Unmapped
            } else if a & AUTH_USERNS_MAP_LARGE != 0 {
                NsUid::NotRead
            } else {
                NsUid::Unknown
            },
        });
        Authority {
            capabilities,
            no_new_privs: (a & AUTH_NNP_KNOWN != 0).then_some(a & AUTH_NO_NEW_PRIVS != 0),
            seccomp,
            user_namespace,
        }
    }

    /// Root with every capability, nothing restricting it, on the host: what
    /// most processes of a host are.
    pub fn is_unrestricted_root(&self) -> bool {
        self.capabilities
            .is_some_and(|c| c.effective == c.all && c.bounding == c.all)
            && self.no_new_privs == Some(false)
            && self.seccomp == Some(Seccomp::None)
            && self.user_namespace.is_some_and(|n| n.level == 0)
    }
}

impl Serialize for Authority {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Authority", 4)?;
        st.serialize_field("capabilities", &self.capabilities)?;
        st.serialize_field("no_new_privs", &self.no_new_privs)?;
        st.serialize_field("seccomp", &self.seccomp)?;
        st.serialize_field("user_namespace", &self.user_namespace)?;
        st.end()
    }
}

/// A set as written: `"all"`; `{"all_except": [...]}` when it lacks fewer of
/// the running kernel's capabilities than it holds (a root that dropped one:
/// a few bytes, not forty names on every event); else its capabilities'
/// names in number order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSet {
    pub bits: u64,
    pub all: u64,
}

impl Serialize for CapSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.bits == self.all && self.all != 0 {
            return s.serialize_str("all");
        }
        let missing = self.all & !self.bits;
        if self.bits & !self.all == 0 && missing.count_ones() < self.bits.count_ones() {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry("all_except", &CapNames(missing))?;
            return m.end();
        }
        CapNames(self.bits).serialize(s)
    }
}

/// The names of a set's capabilities, in number order.
struct CapNames(u64);

impl Serialize for CapNames {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bits = self.0;
        s.collect_seq((0..64u32).filter(|n| bits & (1u64 << n) != 0).map(cap_name))
    }
}

impl Capabilities {
    pub fn set(&self, bits: u64) -> CapSet {
        CapSet {
            bits,
            all: self.all,
        }
    }

    /// The bounding set is written only when it lacks something.
    pub fn bounding_is_full(&self) -> bool {
        self.bounding & self.all == self.all
    }
}

impl Serialize for Capabilities {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Capabilities", 5)?;
        st.serialize_field("effective", &self.set(self.effective))?;
        st.serialize_field("permitted", &self.set(self.permitted))?;
        if self.inheritable != 0 {
            st.serialize_field("inheritable", &self.set(self.inheritable))?;
        } else {
            st.skip_field("inheritable")?;
        }
        if self.ambient != 0 {
            st.serialize_field("ambient", &self.set(self.ambient))?;
        } else {
            st.skip_field("ambient")?;
        }
        if !self.bounding_is_full() {
            st.serialize_field("bounding", &self.set(self.bounding))?;
        } else {
            st.skip_field("bounding")?;
        }
        st.end()
    }
}

impl NsUid {
    pub fn mapped(self) -> Option<u32> {
        match self {
            NsUid::Mapped(u) => Some(u),
            _ => None,
        }
    }

    /// Why there is no uid, as written in `uid_missing`.
    pub fn missing(self) -> Option<&'static str> {
        match self {
            NsUid::Mapped(_) => None,
            NsUid::Unmapped => Some("unmapped"),
            NsUid::NotRead => Some("map_not_read"),
            NsUid::Unknown => Some("unknown"),
        }
    }
}

impl Serialize for UserNamespace {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("UserNamespace", 6)?;
        st.serialize_field("host", &(self.level == 0))?;
        st.serialize_field("inum", &self.inum)?;
        // The host's namespace: owned by no one, every uid its own.
        if self.level != 0 {
            st.serialize_field("level", &self.level)?;
            st.serialize_field("owner_uid", &self.owner_uid)?;
            st.serialize_field("uid", &self.uid.mapped())?;
            if let Some(why) = self.uid.missing() {
                st.serialize_field("uid_missing", why)?;
            }
        }
        st.end()
    }
}

/// A user's process on the host, for tests: no capabilities, no restriction.
#[cfg(test)]
pub(crate) fn sample_authority(uid: u32) -> Authority {
    const ALL: u64 = (1 << 41) - 1;
    Authority {
        capabilities: Some(Capabilities {
            effective: 0,
            permitted: 0,
            inheritable: 0,
            ambient: 0,
            bounding: ALL,
            all: ALL,
        }),
        no_new_privs: Some(false),
        seccomp: Some(Seccomp::None),
        user_namespace: Some(UserNamespace {
            inum: 4026531837,
            level: 0,
            owner_uid: 0,
            uid: NsUid::Mapped(uid),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ALL: u64 = (1 << 41) - 1;

    fn task(f: impl FnOnce(&mut TaskInfo)) -> TaskInfo {
        let mut t = TaskInfo {
            cap_effective: ALL,
            cap_permitted: ALL,
            cap_bset: ALL,
            userns_inum: 4026531837,
            authority: AUTH_CAPS | AUTH_NNP_KNOWN | AUTH_SECCOMP_KNOWN | AUTH_USERNS,
            ..TaskInfo::default()
        };
        f(&mut t);
        t
    }

    #[test]
    fn authority_as_written() {
        const NET_RAW: u64 = 1 << 13;
        const FILTER: u32 = 2 << AUTH_SECCOMP_SHIFT;
        let cases: Vec<(&str, TaskInfo, serde_json::Value)> = vec![
            (
                "root with everything, on the host",
                task(|_| {}),
                json!({"capabilities":{"effective":"all","permitted":"all"},
                    "no_new_privs":false,"seccomp":"none",
                    "user_namespace":{"host":true,"inum":4026531837u32}}),
            ),
            (
                "an unprivileged user with one ambient capability",
                task(|t| {
                    t.cap_effective = NET_RAW;
                    t.cap_permitted = NET_RAW;
                    t.cap_inheritable = NET_RAW;
                    t.cap_ambient = NET_RAW;
                }),
                json!({"capabilities":{"effective":["CAP_NET_RAW"],"permitted":["CAP_NET_RAW"],
                        "inheritable":["CAP_NET_RAW"],"ambient":["CAP_NET_RAW"]},
                    "no_new_privs":false,"seccomp":"none",
                    "user_namespace":{"host":true,"inum":4026531837u32}}),
            ),
            (
                "root without CAP_NET_RAW in its bounding set",
                task(|t| {
                    t.cap_effective = ALL & !NET_RAW;
                    t.cap_permitted = ALL & !NET_RAW;
                    t.cap_bset = ALL & !NET_RAW;
                }),
                {
                    let but = json!({"all_except": ["CAP_NET_RAW"]});
                    json!({"capabilities":{"effective":but,"permitted":but,"bounding":but},
                        "no_new_privs":false,"seccomp":"none",
                        "user_namespace":{"host":true,"inum":4026531837u32}})
                },
            ),
            (
                "half the capabilities or fewer: their names",
                task(|t| {
                    t.cap_effective = (1 << 20) - 1;
                    t.cap_permitted = (1 << 20) - 1;
                }),
                {
                    let names: Vec<String> = (0..20).map(|n| cap_name(n).into_owned()).collect();
                    json!({"capabilities":{"effective":names,"permitted":names},
                        "no_new_privs":false,"seccomp":"none",
                        "user_namespace":{"host":true,"inum":4026531837u32}})
                },
            ),
            (
                "no capabilities, no_new_privs, a seccomp filter, bits a newer kernel has",
                task(|t| {
                    t.cap_effective = 0;
                    t.cap_permitted = 0;
                    t.cap_bset = ALL | (1 << 41) | (1 << 63);
                    t.authority |= AUTH_NO_NEW_PRIVS | FILTER;
                }),
                json!({"capabilities":{"effective":[],"permitted":[]},
                    "no_new_privs":true,"seccomp":"filter",
                    "user_namespace":{"host":true,"inum":4026531837u32}}),
            ),
            (
                "strict mode",
                task(|t| t.authority |= 1 << AUTH_SECCOMP_SHIFT),
                json!({"capabilities":{"effective":"all","permitted":"all"},
                    "no_new_privs":false,"seccomp":"strict",
                    "user_namespace":{"host":true,"inum":4026531837u32}}),
            ),
            (
                "SECCOMP_MODE_DEAD: being killed by seccomp",
                task(|t| t.authority |= 3 << AUTH_SECCOMP_SHIFT),
                json!({"capabilities":{"effective":"all","permitted":"all"},
                    "no_new_privs":false,"seccomp":"killed",
                    "user_namespace":{"host":true,"inum":4026531837u32}}),
            ),
            (
                "root of a user namespace a user made",
                task(|t| {
                    t.userns_inum = 4026532000;
                    t.userns_level = 1;
                    t.userns_owner = 65534;
                    t.userns_uid = 0;
                    t.authority |= AUTH_USERNS_UID;
                }),
                json!({"capabilities":{"effective":"all","permitted":"all"},
                    "no_new_privs":false,"seccomp":"none",
                    "user_namespace":{"host":false,"inum":4026532000u32,"level":1,
                        "owner_uid":65534,"uid":0}}),
            ),
            (
                "unmapped in a nested namespace",
                task(|t| {
                    t.userns_inum = 9;
                    t.userns_level = 2;
                    t.authority |= AUTH_USERNS_UNMAPPED;
                }),
                json!({"capabilities":{"effective":"all","permitted":"all"},
                    "no_new_privs":false,"seccomp":"none",
                    "user_namespace":{"host":false,"inum":9,"level":2,"owner_uid":0,
                        "uid":null,"uid_missing":"unmapped"}}),
            ),
            (
                "a map too large to read",
                task(|t| {
                    t.userns_level = 1;
                    t.authority |= AUTH_USERNS_MAP_LARGE;
                }),
                json!({"capabilities":{"effective":"all","permitted":"all"},
                    "no_new_privs":false,"seccomp":"none",
                    "user_namespace":{"host":false,"inum":4026531837u32,"level":1,"owner_uid":0,
                        "uid":null,"uid_missing":"map_not_read"}}),
            ),
            (
                "nothing read (members missing on this kernel)",
                task(|t| t.authority = 0),
                json!({"capabilities":null,"no_new_privs":null,"seccomp":null,
                    "user_namespace":null}),
            ),
        ];
        for (what, t, want) in cases {
            let got = serde_json::to_value(Authority::from_task(&t, ALL)).unwrap();
            assert_eq!(got, want, "{what}");
        }
        // "all" is the running kernel's full set: on an older kernel with
        // fewer capabilities, the same bits are "all" too.
        let t = task(|t| {
            t.cap_effective = full_set(37);
            t.cap_permitted = full_set(37);
            t.cap_bset = full_set(37);
        });
        let v = serde_json::to_value(Authority::from_task(&t, full_set(37))).unwrap();
        assert_eq!(v["capabilities"]["effective"], "all");
        assert!(v["capabilities"].get("bounding").is_none());
    }

    #[test]
    fn names_and_sets() {
        assert_eq!(cap_name(0), "CAP_CHOWN");
        assert_eq!(cap_name(21), "CAP_SYS_ADMIN");
        assert_eq!(cap_name(40), "CAP_CHECKPOINT_RESTORE");
        assert_eq!(cap_name(41), "CAP_41");
        assert_eq!(full_set(40), ALL);
        assert_eq!(full_set(63), u64::MAX);
        assert_eq!(full_set(99), u64::MAX);
        assert_eq!(full_set(0), 1);
        assert!(*RUNNING_KERNEL_CAPS & 1 != 0);
        assert!(Authority::from_task(&task(|_| {}), ALL).is_unrestricted_root());
        assert!(
            !Authority::from_task(&task(|t| t.cap_bset = 1), ALL).is_unrestricted_root(),
            "a smaller bounding set"
        );
    }
}
