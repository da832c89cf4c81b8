//! Security tests: control.

#[allow(unused_imports)]
use super::common;
