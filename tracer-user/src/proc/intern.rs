//! One shared copy of equal binaries and argv lists. A host runs many copies of
//! the same command (workers, pause containers, shells in a loop); each table
//! entry pointing at one copy keeps a large table small.
use std::{collections::HashSet, sync::Arc};

use crate::{
    event::{CredentialEnv, LoaderEnv},
    filehash::FileVersion,
};

#[derive(Default)]
pub struct Interner {
    strs: HashSet<Arc<str>>,
    argvs: HashSet<Arc<[String]>>,
    files: HashSet<Arc<FileVersion>>,
    envs: HashSet<Arc<LoaderEnv>>,
    credentials: HashSet<Arc<CredentialEnv>>,
    /// Entries after the last purge, so purges run only when the sets grew.
    size_at_purge: usize,
}

impl Interner {
    /// The shared copy equal to `s`; `s` itself becomes it if there is none.
    pub fn str(&mut self, s: &Arc<str>) -> Arc<str> {
        if let Some(a) = self.strs.get(&**s) {
            return a.clone();
        }
        self.strs.insert(s.clone());
        s.clone()
    }

    /// The shared copy equal to `argv`; `argv` itself becomes it if there is none.
    pub fn argv(&mut self, argv: &Arc<[String]>) -> Arc<[String]> {
        if let Some(a) = self.argvs.get(&**argv) {
            return a.clone();
        }
        self.argvs.insert(argv.clone());
        argv.clone()
    }

    /// The shared copy equal to `file`; `file` itself becomes it if there is none.
    pub fn file(&mut self, file: &Arc<FileVersion>) -> Arc<FileVersion> {
        if let Some(a) = self.files.get(&**file) {
            return a.clone();
        }
        self.files.insert(file.clone());
        file.clone()
    }

    /// The shared copy equal to `env`; `env` itself becomes it if there is none.
    pub fn env(&mut self, env: &Arc<LoaderEnv>) -> Arc<LoaderEnv> {
        if let Some(a) = self.envs.get(&**env) {
            return a.clone();
        }
        self.envs.insert(env.clone());
        env.clone()
    }

    /// The shared copy equal to `c`; `c` itself becomes it if there is none.
    pub fn credentials(&mut self, c: &Arc<CredentialEnv>) -> Arc<CredentialEnv> {
        if let Some(a) = self.credentials.get(&**c) {
            return a.clone();
        }
        self.credentials.insert(c.clone());
        c.clone()
    }

    pub fn len(&self) -> usize {
        self.strs.len()
            + self.argvs.len()
            + self.files.len()
            + self.envs.len()
            + self.credentials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget values nothing else holds any more, once the sets have grown by
    /// half since the last time (so the cost stays proportional to new entries).
    pub fn purge(&mut self) {
        if self.len() < 1024 || self.len() < self.size_at_purge + self.size_at_purge / 2 {
            return;
        }
        self.strs.retain(|a| Arc::strong_count(a) > 1);
        self.argvs.retain(|a| Arc::strong_count(a) > 1);
        self.files.retain(|a| Arc::strong_count(a) > 1);
        self.envs.retain(|a| Arc::strong_count(a) > 1);
        self.credentials.retain(|a| Arc::strong_count(a) > 1);
        self.size_at_purge = self.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy_until_unused() {
        let mut i = Interner::default();
        let argv = |a: &[&str]| -> Arc<[String]> { a.iter().map(|s| s.to_string()).collect() };
        let s = |v: &str| -> Arc<str> { Arc::from(v) };
        let a = i.argv(&argv(&["sleep", "3600"]));
        let b = i.argv(&argv(&["sleep", "3600"]));
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.argv(&argv(&["sleep", "60"]));
        assert!(!Arc::ptr_eq(&a, &c));
        let bin = i.str(&s("/usr/bin/sleep"));
        assert!(Arc::ptr_eq(&bin, &i.str(&s("/usr/bin/sleep"))));
        // Past the threshold, values only the interner holds go.
        let kept: Vec<_> = (0..600)
            .map(|n| i.str(&s(&format!("/bin/kept{n}"))))
            .collect();
        for n in 0..600 {
            i.str(&s(&format!("/bin/dropped{n}")));
        }
        drop(c);
        i.purge();
        assert_eq!(i.len(), 600 + 2, "kept, a/b and bin");
        assert!(Arc::ptr_eq(&kept[0], &i.str(&s("/bin/kept0"))));
        assert!(Arc::ptr_eq(&a, &i.argv(&argv(&["sleep", "3600"]))));
    }
}
