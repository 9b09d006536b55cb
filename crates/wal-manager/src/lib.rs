//! The log managers of `failwal` (under construction).
#![deny(missing_docs)]
