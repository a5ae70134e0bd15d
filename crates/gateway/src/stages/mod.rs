//! Pipeline stages that have their own module: each is called once from `pipeline::inference`.

pub mod messages;
pub mod residency;
