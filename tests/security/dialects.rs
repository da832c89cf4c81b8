//! Security tests: dialects.

#[allow(unused_imports)]
use super::common;
