//! Who an action belongs to beyond the raw ids: user and group names, cgroup paths.
pub mod cgroup;
pub mod users;
