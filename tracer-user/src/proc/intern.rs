//! One shared copy of equal binaries and argv lists. A host runs many copies of
//! the same command (workers, pause containers, shells in a loop); each table
//! entry pointing at one copy keeps a large table small.
use std::{collections::HashSet, sync::Arc};

#[derive(Default)]
pub struct Interner {
    strs: HashSet<Arc<str>>,
    argvs: HashSet<Arc<[String]>>,
    /// Entries after the last purge, so purges run only when the sets grew.
    size_at_purge: usize,
}

impl Interner {
    pub fn str(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strs.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strs.insert(a.clone());
        a
    }

    pub fn argv(&mut self, argv: Vec<String>) -> Arc<[String]> {
        if let Some(a) = self.argvs.get(argv.as_slice()) {
            return a.clone();
        }
        let a: Arc<[String]> = Arc::from(argv);
        self.argvs.insert(a.clone());
        a
    }

    pub fn len(&self) -> usize {
        self.strs.len() + self.argvs.len()
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
        self.size_at_purge = self.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy_until_unused() {
        let mut i = Interner::default();
        let a = i.argv(vec!["sleep".into(), "3600".into()]);
        let b = i.argv(vec!["sleep".into(), "3600".into()]);
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.argv(vec!["sleep".into(), "60".into()]);
        assert!(!Arc::ptr_eq(&a, &c));
        let s = i.str("/usr/bin/sleep");
        assert!(Arc::ptr_eq(&s, &i.str("/usr/bin/sleep")));
        // Past the threshold, values only the interner holds go.
        let kept: Vec<_> = (0..600).map(|n| i.str(&format!("/bin/kept{n}"))).collect();
        for n in 0..600 {
            i.str(&format!("/bin/dropped{n}"));
        }
        drop(c);
        i.purge();
        assert_eq!(i.len(), 600 + 2, "kept, a/b and s");
        assert!(Arc::ptr_eq(&kept[0], &i.str("/bin/kept0")));
        assert!(Arc::ptr_eq(
            &a,
            &i.argv(vec!["sleep".into(), "3600".into()])
        ));
    }
}
