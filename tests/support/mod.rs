//! Helpers shared by the integration tests. Each test binary includes this
//! module and uses what it needs.
#![allow(dead_code, unreachable_pub)]

pub mod records;
