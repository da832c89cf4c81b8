//! Security tests: secrets, job caps, the journal, cancellation, settings,
//! connection limits.

use http::{Method, StatusCode};
use zipgate::api::rng::SplitMix64;
use zipgate::Server;

use super::common::*;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
const M1: u64 = 0xBF58_476D_1CE4_E5B9;
const M2: u64 = 0x94D0_49BB_1331_11EB;
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn inverse(a: u64) -> u64 {
    // Newton's iteration for a multiplicative inverse modulo 2^64.
    let mut x = a;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

fn unshift(y: u64, s: u32) -> u64 {
    let mut x = y;
    for _ in 0..(64 / s + 1) {
        x = y ^ (x >> s);
    }
    x
}

/// The old inverse: every SplitMix64 output gives back the state behind it.
fn unmix(z: u64) -> u64 {
    let z = unshift(z, 31).wrapping_mul(inverse(M2));
    let z = unshift(z, 27).wrapping_mul(inverse(M1));
    unshift(z, 30).wrapping_sub(GAMMA)
}

/// The old code's generator, which still makes the cosmetic ids.
type Old = SplitMix64;

/// A Box download id as the old code drew it from one generator output.
fn old_box_id(output: u64) -> String {
    let mut rng = Old::new(output);
    let mut id = String::new();
    rng.append(&mut id, b"0123456789", 2);
    rng.append(&mut id, BASE64URL, 21);
    id.push_str("==");
    rng.append(&mut id, BASE64URL, 54);
    id.push('=');
    id
}

/// The server generator's state behind a GUID that the old code made with
/// `SplitMix64::new(output).guid()`, if the GUID came from SplitMix64.
fn state_behind_guid(guid: &str) -> Option<u64> {
    let hex: String = guid.chars().filter(|c| *c != '-').collect();
    let a = u64::from_str_radix(&hex[..16], 16).ok()?;
    let b = u64::from_str_radix(&hex[16..], 16).ok()?;
    // Four bits of `a` were overwritten by the version nibble: try them all.
    (0..16u64).find_map(|nibble| {
        let full = (a & !0xF000) | (nibble << 12);
        let output = unmix(full).wrapping_sub(GAMMA);
        let second = Old::new(output.wrapping_add(GAMMA)).next_u64();
        let masked = (second & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        (masked == b).then(|| unmix(output))
    })
}

#[test]
fn the_old_inverse_predicts_the_old_generator() {
    // Without this, the HTTP test below could pass because the attack is wrong.
    let mut server = Old::new(0x1234_5678_9abc_def0);
    let guid = Old::new(server.next_u64()).guid();
    let state = state_behind_guid(&guid).expect("a SplitMix64 GUID inverts");
    let next_download = old_box_id(server.next_u64());
    assert_eq!(old_box_id(Old::new(state).next_u64()), next_download);
}

fn download_id(reply: &Reply) -> String {
    let url = reply.json()["download_url"].as_str().unwrap().to_owned();
    url.rsplit('/').nth(1).unwrap().to_owned()
}

async fn box_create(server: &zipgate::ServerHandle) -> Reply {
    let reply = box_create_as_alice(
        server,
        r#"{"items":[{"type":"file","id":"12345"}],"download_file_name":"x"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.json());
    reply
}

/// #15.3: what any user sees (operation GUIDs) must not predict another
/// user's next download URL, and a fresh server's first URL is not a constant.
#[tokio::test]
async fn download_urls_are_not_predictable_from_what_users_see() {
    let a = Server::builder()
        .setting("onlyoffice", "pacing", "immediate")
        .spawn()
        .await
        .unwrap();
    let b = Server::builder().spawn().await.unwrap();
    let (first_a, first_b) = (box_create(&a).await, box_create(&b).await);
    assert_ne!(
        download_id(&first_a),
        download_id(&first_b),
        "two unseeded servers handed out the same first download URL"
    );

    for _ in 0..50 {
        let op = send(
            &a,
            Method::PUT,
            "/api/2.0/files/fileops/bulkdownload",
            &[
                ("authorization", "Bearer alice-token"),
                ("content-type", "application/json"),
            ],
            r#"{"fileIds":[12345]}"#,
        )
        .await;
        assert_eq!(
            op.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&op.body)
        );
        let guid = op.json()["response"][0]["id"]
            .as_str()
            .expect("an operation id")
            .to_owned();
        let next = download_id(&box_create(&a).await);
        if let Some(state) = state_behind_guid(&guid) {
            let mut rng = Old::new(state);
            let predicted: Vec<String> = (0..8).map(|_| old_box_id(rng.next_u64())).collect();
            assert!(
                !predicted.contains(&next),
                "the next download URL was predicted from operation {guid}"
            );
        }
    }
}

async fn json_call(
    server: &zipgate::ServerHandle,
    method: Method,
    path: &str,
    token: &str,
    body: &str,
) -> Reply {
    let auth = format!("Bearer {token}");
    send(
        server,
        method,
        path,
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ],
        body.to_owned(),
    )
    .await
}

/// #15.5: bob's flood of creates is refused with each vendor's rate-limit
/// answer once he holds his share; alice's pending jobs survive it.
#[tokio::test]
async fn one_users_job_flood_does_not_evict_another_users_pending_jobs() {
    let server = Server::builder()
        .max_jobs(8)
        .max_jobs_per_user(4)
        .setting("oracle", "pacing", "polls:100")
        .setting("itslearning", "pacing", "polls:100")
        .spawn()
        .await
        .unwrap();
    let oracle = json_call(
        &server,
        Method::POST,
        "/documents/api/1.2/folders/FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D/_download",
        "alice-token",
        r#"{"idList":"DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813"}"#,
    )
    .await;
    assert_eq!(oracle.status, StatusCode::OK, "{:?}", oracle.json());
    let oracle_job = oracle.json()["Location"].as_str().unwrap().to_owned();
    let oracle_job = &oracle_job[oracle_job.find("/documents/").unwrap()..];
    let its = json_call(
        &server,
        Method::POST,
        "/restapi/personal/yourfiles/files/zip/v1",
        "alice-token",
        r#"{"FileIds":[12345]}"#,
    )
    .await;
    assert_eq!(its.status, StatusCode::OK);
    let its_job = format!(
        "/restapi/personal/yourfiles/files/zip/{}/v1",
        its.json()["JobId"]
    );

    let flood = r#"{"items":[{"type":"file","id":"34325"}]}"#;
    let mut refused = None;
    for _ in 0..40 {
        let reply = json_call(
            &server,
            Method::POST,
            "/2.0/zip_downloads",
            "bob-token",
            flood,
        )
        .await;
        if reply.status != StatusCode::ACCEPTED {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("bob's flood was never refused");
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json()["code"], "rate_limit_exceeded");
    assert_eq!(refused.header("retry-after"), Some("1"));

    // Each vendor's own answer for bob past his share.
    let oracle_refused = json_call(
        &server,
        Method::POST,
        "/documents/api/1.2/folders/FE7DA518D17AA5E46E282D9A1B02AE3398E71823807D/_download",
        "bob-token",
        r#"{"idList":"DC9AEA3E7F3AA1C07FCE4E46B7AC2B4F52F010D5A813"}"#,
    )
    .await;
    assert_eq!(oracle_refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(oracle_refused.json()["errorKey"], "!csTooManyRequests");
    let its_refused = json_call(
        &server,
        Method::POST,
        "/restapi/personal/yourfiles/files/zip/v1",
        "bob-token",
        r#"{"FileIds":[34325]}"#,
    )
    .await;
    assert_eq!(its_refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(its_refused.json()["Message"].is_string());

    for path in [oracle_job, its_job.as_str()] {
        let poll = json_call(&server, Method::GET, path, "alice-token", "").await;
        assert_eq!(
            poll.status,
            StatusCode::OK,
            "alice's job {path} was evicted: {}",
            String::from_utf8_lossy(&poll.body)
        );
    }
}

/// #15.7: a flood of big unauthenticated requests pins at most
/// `--journal-bytes`, and a listing streams instead of being built whole.
#[tokio::test]
async fn the_journal_is_capped_by_bytes_and_listings_stream() {
    let server = Server::builder()
        .journal_bytes(256 * 1024)
        .spawn()
        .await
        .unwrap();
    let padding = "x".repeat(16 * 1024);
    let body = "b".repeat(60 * 1024);
    for _ in 0..100 {
        let reply = send(
            &server,
            Method::POST,
            "/2.0/zip_downloads",
            &[
                ("x-padding", padding.as_str()),
                ("content-type", "application/json"),
            ],
            body.clone(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let listing = send(&server, Method::GET, "/_zipgate/requests", &[], "").await;
    assert_eq!(listing.status, StatusCode::OK);
    assert_eq!(listing.header("content-length"), None, "a listing streams");
    let requests = listing.json()["requests"].as_array().unwrap().clone();
    assert!(
        (1..=4).contains(&requests.len()),
        "{} entries of ~77 KiB kept under a 256 KiB cap",
        requests.len()
    );
    assert_eq!(requests.last().unwrap()["id"], 100, "the newest stays");
    assert!(listing.body.len() < 400 * 1024, "{}", listing.body.len());

    // Paging still works over the streamed pages.
    let page = send(
        &server,
        Method::GET,
        &format!("/_zipgate/requests?after={}&limit=1", requests[0]["id"]),
        &[],
        "",
    )
    .await;
    let page = page.json()["requests"].as_array().unwrap().clone();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], requests[1]["id"]);
}

/// A listing of more entries than one page is valid JSON with every entry.
#[tokio::test]
async fn a_listing_of_many_pages_is_whole() {
    let server = Server::builder().spawn().await.unwrap();
    for _ in 0..150 {
        send(&server, Method::GET, "/2.0/zip_downloads/x/status", &[], "").await;
    }
    let listing = send(&server, Method::GET, "/_zipgate/requests", &[], "").await;
    let ids: Vec<u64> = listing.json()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=150).collect::<Vec<_>>());
    let limited = send(&server, Method::GET, "/_zipgate/requests?limit=70", &[], "").await;
    assert_eq!(limited.json()["requests"].as_array().unwrap().len(), 70);
}

/// #15.10: credentials in query strings and log-in bodies are redacted like
/// `Authorization`, and shown with `reveal=true`.
#[tokio::test]
async fn the_journal_redacts_credentials_in_queries_and_bodies() {
    let server = Server::builder().spawn().await.unwrap();
    send(
        &server,
        Method::GET,
        "/restapi/personal/yourfiles/files/zip/v1?access_token=alice-token&x=1",
        &[],
        "",
    )
    .await;
    send(
        &server,
        Method::POST,
        "/api/2.0/authentication",
        &[("content-type", "application/json")],
        r#"{"userName":"alice@example.com","password":"alice-password"}"#,
    )
    .await;
    send(
        &server,
        Method::POST,
        "/api/2.0/authentication",
        &[("content-type", "application/x-www-form-urlencoded")],
        "userName=alice%40example.com&password=alice-password",
    )
    .await;
    let hidden = send(&server, Method::GET, "/_zipgate/requests", &[], "").await;
    let text = String::from_utf8_lossy(&hidden.body);
    assert!(!text.contains("alice-token"), "{text}");
    assert!(!text.contains("alice-password"), "{text}");
    assert!(text.contains("alice@example.com"), "{text}");
    let shown = send(
        &server,
        Method::GET,
        "/_zipgate/requests?reveal=true",
        &[],
        "",
    )
    .await;
    let text = String::from_utf8_lossy(&shown.body);
    assert!(text.contains("access_token=alice-token"), "{text}");
    assert!(text.contains("alice-password"), "{text}");
}

/// 64 GiB of generated content: a CRC pass over it takes far longer than
/// any test waits, so only a pass that stops can pass these tests.
const HUGE: &str = r#"{"nodes":[
    {"id":"huge","name":"huge.bin","content":{"generate":{"size":68719476736,"seed":1,"kind":"random"}}},
    {"id":"small","name":"small.txt","content":{"text":"small"}}]}"#;

async fn health(server: &zipgate::ServerHandle) -> serde_json::Value {
    send(server, Method::GET, "/_zipgate/health", &[], "")
        .await
        .json()
}

/// Waits up to `secs` for `check` on the health answer.
async fn health_until(
    server: &zipgate::ServerHandle,
    secs: u64,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let health = health(server).await;
        if check(&health) || std::time::Instant::now() > deadline {
            return health;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// #15.8: a client that leaves during a big stored entry's CRC pass (before
/// the first byte) stops the engine thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crc_pass_stops_when_the_client_leaves() {
    let server = Server::builder()
        .fixtures_json(HUGE)
        .unwrap()
        .warm_crcs(false)
        .spawn()
        .await
        .unwrap();
    let addr = server.addr();
    let body = r#"{"items":[{"id":"huge"}],"compression":"store"}"#;
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /_zipgate/zip HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut socket, request.as_bytes())
        .await
        .unwrap();
    let busy = health_until(&server, 5, |h| h["active_streams"] == 1).await;
    assert_eq!(busy["active_streams"], 1, "the download never started");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(socket);
    let after = health_until(&server, 3, |h| h["active_streams"] == 0).await;
    assert_eq!(
        after["active_streams"], 0,
        "the engine thread kept computing the CRC after the client left"
    );
}

/// #15.8: replacing the tree stops the background CRC warmer on the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_tree_stops_the_crc_warmer() {
    let server = Server::builder()
        .fixtures_json(HUGE)
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let warming = health_until(&server, 3, |h| h["crc_warmers"] == 1).await;
    assert_eq!(warming["crc_warmers"], 1);
    let reply = send(
        &server,
        Method::PUT,
        "/_zipgate/fixtures",
        &[("content-type", "application/json")],
        r#"{"nodes":[{"id":"a","name":"a.txt","content":{"text":"a"}}]}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let after = health_until(&server, 3, |h| h["crc_warmers"] == 0).await;
    assert_eq!(
        after["crc_warmers"], 0,
        "the warmer went on reading the replaced tree"
    );
}
