//! Settings that overflowed panicked (#15.9): a duration too large for
//! chrono's `Duration` panicked at start, and one that fit but pushed an
//! expiry past `DateTime<Utc>`'s range panicked every create (an empty
//! reply while health said ok). Every duration and size is now range-checked
//! at start, and the binary says which setting and what range.

use std::time::Duration;

use chrono::{DateTime, Utc};
use http::{Method, StatusCode};
use zipgate::server::Config;
use zipgate::{Server, StartError};

use super::common::*;

/// The longest duration a dialect setting takes: 100 years of 365.25 days.
const LONGEST: &str = "3155760000";

/// Runs `zipgate serve` with `args` until it exits; its status and stderr.
fn start(args: &[&str]) -> (Option<std::process::ExitStatus>, String) {
    super::common::start_refused(args, &[])
}

/// The binary exits at once, non-zero (not a panic's 101), with a
/// `zipgate: …` line naming `needle`.
fn assert_refused(args: &[&str], needle: &str) -> String {
    let (status, stderr) = start(args);
    let status = status.unwrap_or_else(|| panic!("{args:?} started: {stderr}"));
    assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    let line = stderr
        .lines()
        .find(|line| line.starts_with("zipgate: ") && line.contains(needle))
        .unwrap_or_else(|| panic!("{args:?}: no `zipgate: …{needle}…` line in {stderr}"));
    line.to_owned()
}

#[test]
fn the_binary_refuses_overflowing_dialect_durations_at_start() {
    // One panicked at start, the other started and then panicked every Box create.
    for setting in [
        "onlyoffice.archive_ttl=10000000000000000",
        "box.url_ttl=9000000000000",
    ] {
        let key = setting.split('=').next().unwrap();
        let line = assert_refused(&["--set", setting], key);
        assert!(line.contains(LONGEST), "names the range: {line}");
    }
}

#[tokio::test]
async fn every_duration_and_size_setting_is_range_checked() {
    let cases = [
        ("box", "url_ttl", "9000000000000"),
        ("box", "url_ttl", "-1"),
        ("box", "status_retention", "10000000000000000"),
        ("box", "max_bytes", "18446744073709551615"),
        ("box", "max_files", "99999999999"),
        ("box", "max_concurrent_downloads", "99999999999"),
        ("onlyoffice", "archive_ttl", "10000000000000000"),
        ("onlyoffice", "archive_ttl", "-5"),
        ("onlyoffice", "pacing", "seconds:10000000000000000"),
        ("onlyoffice", "pacing", "seconds:-5"),
        ("oracle", "package_ttl", "9000000000000"),
        ("oracle", "pacing", "seconds:9000000000000"),
        ("itslearning", "download_ttl", "9223372036854775807"),
        ("itslearning", "pacing", "seconds:3155760001"),
    ];
    for (dialect, key, value) in cases {
        // On a task of its own, so a panic comes back as a JoinError naming
        // the setting instead of ending the test at the first case.
        let started = tokio::spawn(Server::builder().setting(dialect, key, value).spawn()).await;
        match started {
            Ok(Err(StartError::Settings(message))) => {
                assert!(
                    message.contains(&format!("{dialect}.{key}")),
                    "{dialect}.{key}={value}: {message}"
                );
                assert!(message.contains(value), "{message}");
            }
            Ok(Err(other)) => panic!("{dialect}.{key}={value}: {other}"),
            Ok(Ok(_)) => panic!("{dialect}.{key}={value} was accepted"),
            Err(panic) => panic!("{dialect}.{key}={value} panicked: {panic}"),
        }
    }
}

#[test]
fn the_longest_box_url_ttl_answers_a_create_with_a_sane_expiry() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = Server::builder()
            .setting("box", "url_ttl", LONGEST)
            .setting("box", "status_retention", LONGEST)
            .spawn()
            .await
            .unwrap();
        // The control plane moves the clock as far as it goes (about 292 years).
        let advanced = send(
            &server,
            Method::POST,
            "/_zipgate/clock/advance",
            &[("content-type", "application/json")],
            r#"{"seconds":1e300}"#.to_owned(),
        )
        .await;
        assert_eq!(
            advanced.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&advanced.body)
        );
        let now: DateTime<Utc> = advanced.json()["now"].as_str().unwrap().parse().unwrap();
        let created =
            box_create_as_alice(&server, r#"{"items":[{"type":"folder","id":"1003"}]}"#).await;
        assert_eq!(
            created.status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
        let expires: DateTime<Utc> = created.json()["expires_at"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let ttl = (expires - now).num_seconds();
        assert!(
            (3_155_759_990..=3_155_760_000).contains(&ttl),
            "expires_at {expires} is not 100 years after {now}"
        );
        // Its status and download answer too (the expiry is checked on each).
        let download_url = created.json()["download_url"].as_str().unwrap().to_owned();
        let path = &download_url[download_url.find("/2.0/").unwrap()..];
        let download = send(
            &server,
            Method::GET,
            path,
            &[("authorization", "Bearer alice-token")],
            String::new(),
        )
        .await;
        assert_eq!(
            download.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&download.body)
        );
        let health = get(&server, "/_zipgate/health").await;
        assert_eq!(health.status, StatusCode::OK);
    });
}

#[test]
fn cli_timeouts_and_body_size_refuse_nan_negative_infinite_and_huge() {
    for flag in [
        "--shutdown-grace",
        "--header-timeout",
        "--body-timeout",
        "--send-timeout",
    ] {
        for value in ["NaN", "-1", "inf", "-inf", "1e300", "86401"] {
            let arg = format!("{flag}={value}");
            let line = assert_refused(&[&arg], flag);
            assert!(line.contains("86400"), "names the range: {line}");
        }
    }
    // A zero wait would drop every connection: refused, except the grace
    // period, where zero means "cut at once".
    for flag in ["--header-timeout", "--body-timeout", "--send-timeout"] {
        assert_refused(&[&format!("{flag}=0")], flag);
    }
    let line = assert_refused(&["--max-body", "1073741825"], "--max-body");
    assert!(line.contains("1073741824"), "names the range: {line}");
}

#[tokio::test]
async fn an_in_process_server_refuses_out_of_range_timeouts_and_body_size() {
    let cases: [(&str, Config); 4] = [
        (
            "header_timeout",
            Config {
                header_timeout: Duration::MAX,
                ..Config::default()
            },
        ),
        (
            "send_timeout",
            Config {
                send_timeout: Duration::ZERO,
                ..Config::default()
            },
        ),
        (
            "shutdown_grace",
            Config {
                shutdown_grace: Duration::from_secs(86_401),
                ..Config::default()
            },
        ),
        (
            "max_body_bytes",
            Config {
                max_body_bytes: usize::MAX,
                ..Config::default()
            },
        ),
    ];
    for (field, config) in cases {
        match Server::builder().config(config).spawn().await {
            Err(StartError::Settings(message)) => {
                assert!(message.contains(field), "{field}: {message}")
            }
            Err(other) => panic!("{field}: {other}"),
            Ok(_) => panic!("{field} out of range was accepted"),
        }
    }
}
