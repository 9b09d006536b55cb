//! Helpers shared by the integration tests. Each test binary includes this
//! module and uses what it needs.
#![allow(dead_code, unreachable_pub)]
// A script interpreter is one long match over commands, and test scripts
// speak in signed offsets; these lints would only push the code around.
#![allow(
    clippy::too_many_lines,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::unused_self
)]

pub mod datadriven;
pub mod durability;
pub mod failover;
pub mod fuzzing;
pub mod records;
pub mod segments;
