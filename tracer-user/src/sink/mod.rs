//! Where events go. Sinks serialize the event model; they never look anything up.
pub mod json;
