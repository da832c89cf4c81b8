//! Security hardening (issue #15): one test per point of the adversarial
//! review, over real HTTP where HTTP can reach it. Each module owns one area.

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod control;
mod dialects;
mod runtime;
mod settings;
