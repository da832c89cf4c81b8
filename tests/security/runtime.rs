//! Security tests: runtime.

#[allow(unused_imports)]
use super::common;
