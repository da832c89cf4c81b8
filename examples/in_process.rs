//! zipgate inside a Rust test program: seed fixtures, make the next Box
//! create fail with a 429, drive the API with an HTTP client, check the zip
//! and what the journal recorded.
//!
//! Run it with `cargo run --example in_process`.

use std::io::{Cursor, Read};

use serde_json::{json, Value};
use zipgate::faults::FaultRule;
use zipgate::journal::Filter;
use zipgate::Server;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder()
        .fixtures(json!({
            "users": [{"id": "ann", "token": "ann-token"}],
            "nodes": [{"id": "reports", "name": "Reports", "ids": {"box": "100"}, "children": [
                {"id": "q1", "name": "q1.csv", "ids": {"box": "101"},
                 "content": {"text": "region,total\nnorth,12\n"}}
            ]}]
        }))
        .seed(7)
        .bind("127.0.0.1:0")
        .spawn()
        .await?;
    server.add_fault(
        FaultRule::on("POST", "/2.0/zip_downloads")
            .times(1)
            .status(429),
    )?;

    let client = reqwest::Client::new();
    let create = || {
        client
            .post(format!("{}/2.0/zip_downloads", server.url()))
            .bearer_auth("ann-token")
            .json(&json!({"items": [{"type": "folder", "id": "100"}], "download_file_name": "reports"}))
            .send()
    };
    let limited = create().await?;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    let body: Value = limited.json().await?;
    assert_eq!(body["code"], "rate_limit_exceeded");

    let created: Value = create().await?.error_for_status()?.json().await?;
    let download_url = created["download_url"].as_str().ok_or("no download_url")?;
    let archive = client
        .get(download_url)
        .bearer_auth("ann-token")
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let mut zip = zip::ZipArchive::new(Cursor::new(archive))?;
    let mut csv = String::new();
    zip.by_name("Reports/q1.csv")?.read_to_string(&mut csv)?;
    assert_eq!(csv, "region,total\nnorth,12\n");

    let posts = server.requests(&Filter {
        method: Some("POST".into()),
        ..Filter::default()
    });
    let statuses: Vec<Option<u16>> = posts.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(429), Some(202)]);
    println!(
        "a 429, then a zip with {} entries from {}",
        zip.len(),
        server.url()
    );
    Ok(())
}
