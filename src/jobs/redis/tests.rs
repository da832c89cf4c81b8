//! The Redis backend against the in-memory registry: the same operations on
//! both, the same answers (the Lua state machine is a second copy of
//! `job.rs`, and this is what keeps the two equal). Needs `redis-server`
//! (Debian's package; `tests/run` installs it): each test starts its own on
//! a free loopback port.

use std::sync::{Arc, RwLock};

use chrono::{Duration, TimeZone, Utc};
use zipgate_api::{Error, JobSnapshot, JobState, Pacing, Principal, SelectedItem, UserId};

use super::{texts, Op, RedisJobs, RESPONSE_TIMEOUT};
use crate::clock::{Clock, ManualClock};
use crate::events::Events;
use crate::jobs::{
    Admission, Claimed, JobBackend, JobFault, JobLimits, JobRegistry, JobSpec, StuckState,
};
use crate::packing::{build_archive, CompressionPolicy};
use crate::planner::{self, PlanOptions};
use crate::store::Tree;
use crate::zip::{Archive, Cancelled, ChunkSink, NoProgress};

#[path = "../../../tests/common/redis.rs"]
mod redis_server;
use redis_server::RedisServer;

const TAGS: [&str; 2] = ["one", "two"];

fn tree() -> Tree {
    tree_with("alpha\n")
}

fn archive(tree: &Tree) -> Arc<Archive> {
    archive_of(tree, "root")
}

struct Pair {
    _redis: RedisServer,
    clock: Arc<ManualClock>,
    memory: JobRegistry,
    shared: RedisJobs,
    archive: Arc<Archive>,
    tree: Arc<Tree>,
}

fn connect(redis: &RedisServer, clock: Arc<dyn Clock>, tree: &Arc<Tree>) -> RedisJobs {
    connect_with(redis, clock, tree, JobLimits::default())
}

fn connect_with(
    redis: &RedisServer,
    clock: Arc<dyn Clock>,
    tree: &Arc<Tree>,
    limits: JobLimits,
) -> RedisJobs {
    RedisJobs::connect(
        &redis.url(),
        "test",
        limits,
        clock,
        Events::default(),
        TAGS.to_vec(),
        Arc::new(RwLock::new(tree.clone())),
    )
    .unwrap()
}

fn pair() -> Pair {
    pair_with(JobLimits::default())
}

fn pair_with(limits: JobLimits) -> Pair {
    let redis = RedisServer::start();
    // On a whole microsecond: Redis keeps µs, the registry nanoseconds.
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    ));
    let tree = Arc::new(tree());
    let shared = connect_with(&redis, clock.clone(), &tree, limits);
    Pair {
        memory: JobRegistry::with_limits(clock.clone(), limits),
        archive: archive(&tree),
        _redis: redis,
        clock,
        shared,
        tree,
    }
}

/// A little generator of its own, so a failing sequence replays exactly.
struct Draws(u64);
impl Draws {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn owner(n: u64) -> Principal {
    match n {
        0 => Principal::Anonymous,
        n => Principal::User(UserId(format!("user{n}"))),
    }
}

fn spec(id: &str, archive: &Arc<Archive>, draws: &mut Draws) -> JobSpec {
    spec_in(id, archive, draws, false)
}

/// With `coarse`, every duration is whole seconds, so deadlines fall on
/// the clock's steps and each `>` against `>=` is put to the test.
fn spec_in(id: &str, archive: &Arc<Archive>, draws: &mut Draws, coarse: bool) -> JobSpec {
    let unit = if coarse { 1_000 } else { 1 };
    let pacing = match draws.below(3) {
        0 => Pacing::Immediate,
        1 => Pacing::AfterPolls(1 + draws.below(3) as u32),
        _ => Pacing::AfterDuration(Duration::seconds(1 + draws.below(20) as i64)),
    };
    let fault = match draws.below(8) {
        0 => Some(JobFault::Fail(format!("told to fail {id}"))),
        1 => Some(JobFault::Stuck(StuckState::Queued)),
        2 => Some(JobFault::Stuck(StuckState::Running)),
        _ => None,
    };
    JobSpec {
        id: id.to_owned(),
        name: format!("{id}.zip"),
        context: format!("ctx-{id}"),
        owner_tag: TAGS[draws.below(2) as usize],
        owner: owner(draws.below(3)),
        archive: archive.clone(),
        file_count: 3,
        files_skipped: draws.below(2),
        folders_skipped: 0,
        pacing,
        // Now and then (on whole seconds) a window or a retention past the
        // end of time: "never", as saturating_add makes it in Rust and
        // sat() in Lua.
        download_window: match draws.below(12) {
            0 if coarse => Some(Duration::MAX),
            1..=3 => None,
            _ => Some(Duration::milliseconds(
                1_000 + (draws.below(40_000) / unit * unit) as i64,
            )),
        },
        single_use: draws.below(2) == 0,
        retention: match draws.below(12) {
            0 if coarse => Duration::MAX,
            _ => Duration::seconds(1 + draws.below(60) as i64),
        },
        fault,
        sources: None,
        building: None,
    }
}

fn show(job: &Option<JobSnapshot>) -> String {
    format!("{job:?}")
}

fn show_all(jobs: &[JobSnapshot]) -> String {
    format!("{jobs:?}")
}

fn show_result(result: &Result<JobSnapshot, Error>) -> String {
    format!("{result:?}")
}

fn show_claim(result: &Result<Claimed, Error>) -> String {
    match result {
        Ok(claimed) => format!("Ok({:?}, len {:?})", claimed.job, claimed.archive.len()),
        Err(error) => format!("Err({error:?})"),
    }
}

#[test]
fn random_operations_leave_both_backends_showing_the_same_jobs() {
    differential(
        &pair(),
        &[
            (0x9e37_79b9_7f4a_7c15u64, false),
            (42, true),
            (7_777_777, false),
            (5, true),
        ],
    );
}

#[test]
fn random_operations_under_tight_caps_evict_and_refuse_alike() {
    let limits = JobLimits {
        max_jobs: 12,
        max_jobs_per_principal: 5,
    };
    differential(
        &pair_with(limits),
        &[(11, false), (12, true), (13, false), (14, true)],
    );
}

/// Random operations from each seed on both backends of `p`, comparing
/// every answer and, after each, every job.
fn differential(p: &Pair, seeds: &[(u64, bool)]) {
    let backends: [&dyn JobBackend; 2] = [&p.memory, &p.shared];
    for &(seed, coarse) in seeds {
        p.memory.clear();
        p.shared.clear().unwrap();
        let mut draws = Draws(seed);
        let mut ids: Vec<String> = Vec::new();
        // Downloads held open: (in-memory claim, Redis claim).
        let mut held: Vec<(Claimed, Claimed)> = Vec::new();
        for step in 0..600 {
            let pick = |draws: &mut Draws, ids: &[String]| -> String {
                if ids.is_empty() || draws.below(10) == 0 {
                    "nobody".to_owned()
                } else {
                    ids[draws.below(ids.len() as u64) as usize].clone()
                }
            };
            let op = draws.below(15);
            let context = format!("seed {seed} step {step} op {op}");
            match op {
                0 | 1 => {
                    let id = format!("job{}", draws.below(40));
                    let state = draws.0;
                    let made: Vec<String> = backends
                        .iter()
                        .map(|b| {
                            let mut same = Draws(state);
                            show_result(&b.create(spec_in(&id, &p.archive, &mut same, coarse)))
                        })
                        .collect();
                    spec_in(&id, &p.archive, &mut draws, coarse);
                    assert_eq!(made[0], made[1], "{context}: create");
                    // What a cap evicted, or a sweep reclaimed, is gone alike.
                    let held = |b: &dyn JobBackend| {
                        let mut ids: Vec<String> =
                            b.list().unwrap().into_iter().map(|j| j.id).collect();
                        ids.sort();
                        ids
                    };
                    assert_eq!(held(backends[0]), held(backends[1]), "{context}: held");
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                2 => {
                    let id = pick(&mut draws, &ids);
                    // Half the polls say whose job they expect (a dialect's).
                    let tag = TAGS[draws.below(2) as usize];
                    if draws.below(2) == 0 {
                        assert_eq!(
                            show(&JobBackend::look_owned(&p.memory, tag, &id, true).unwrap()),
                            show(&p.shared.look_owned(tag, &id, true).unwrap()),
                            "{context}: poll of {tag}'s"
                        );
                    } else {
                        assert_eq!(
                            show(&p.memory.poll(&id)),
                            show(&p.shared.poll(&id).unwrap()),
                            "{context}: poll"
                        );
                    }
                }
                3 => {
                    let id = pick(&mut draws, &ids);
                    assert_eq!(
                        show(&p.memory.get(&id)),
                        show(&p.shared.get(&id).unwrap()),
                        "{context}: get"
                    );
                }
                4 => {
                    let id = pick(&mut draws, &ids);
                    assert_eq!(
                        show_result(&p.memory.cancel(&id)),
                        show_result(&p.shared.cancel(&id)),
                        "{context}: cancel"
                    );
                }
                5 => {
                    let id = pick(&mut draws, &ids);
                    assert_eq!(
                        show_result(&p.memory.fail(&id, "gave up")),
                        show_result(&p.shared.fail(&id, "gave up")),
                        "{context}: fail"
                    );
                }
                6 => {
                    let id = pick(&mut draws, &ids);
                    p.memory.acknowledge(&id);
                    p.shared.acknowledge(&id).unwrap();
                    assert_eq!(
                        show(&p.memory.get(&id)),
                        show(&p.shared.get(&id).unwrap()),
                        "{context}: acknowledge"
                    );
                }
                7 => {
                    let id = pick(&mut draws, &ids);
                    assert_eq!(
                        show(&p.memory.remove(&id)),
                        show(&p.shared.remove(&id).unwrap()),
                        "{context}: remove"
                    );
                }
                8 | 9 => {
                    let id = pick(&mut draws, &ids);
                    let admission = Admission {
                        owner_tag: (draws.below(4) > 0).then_some(TAGS[draws.below(2) as usize]),
                        max_per_owner: (draws.below(3) == 0).then_some(1 + draws.below(2) as usize),
                    };
                    let a = JobBackend::begin_download(&p.memory, &id, admission);
                    let b = p.shared.begin_download(&id, admission);
                    assert_eq!(show_claim(&a), show_claim(&b), "{context}: claim");
                    if let (Ok(a), Ok(b)) = (a, b) {
                        held.push((a, b));
                    }
                }
                10 => {
                    // A download held open ends: progress, then complete or not.
                    if !held.is_empty() {
                        let (a, b) = held.remove(draws.below(held.len() as u64) as usize);
                        let complete = draws.below(3) > 0;
                        let entries = a.archive.entries().len();
                        for ticket in [&a.ticket, &b.ticket] {
                            for index in 0..entries {
                                ticket.entry_done(index);
                            }
                            ticket.bytes_sent(1234);
                            ticket.finished(complete);
                        }
                        let id = a.job.id.clone();
                        assert_eq!(
                            show(&p.memory.get(&id)),
                            show(&p.shared.get(&id).unwrap()),
                            "{context}: finish"
                        );
                    }
                }
                11 => {
                    let id = pick(&mut draws, &ids);
                    let admission = Admission::default();
                    let a = p.memory.peek_download(&id, admission).map(|peek| peek.job);
                    let b = p.shared.peek_download(&id, admission).map(|peek| peek.job);
                    assert_eq!(show_result(&a), show_result(&b), "{context}: peek");
                }
                12 => {
                    let tag = TAGS[draws.below(2) as usize];
                    let who = owner(draws.below(3));
                    assert_eq!(
                        show_all(&p.memory.list_of(tag, &who)),
                        show_all(&p.shared.list_of(tag, &who).unwrap()),
                        "{context}: list_of"
                    );
                    assert_eq!(
                        show_all(&p.memory.open_of(tag, &who)),
                        show_all(&p.shared.open_of(tag, &who).unwrap()),
                        "{context}: open_of"
                    );
                    // A client's poll of all its operations, in one step.
                    assert_eq!(
                        show_all(&JobBackend::open_of_polled(&p.memory, tag, &who).unwrap()),
                        show_all(&p.shared.open_of_polled(tag, &who).unwrap()),
                        "{context}: open_of_polled"
                    );
                    let ready = |job: &JobSnapshot| job.state == JobState::Ready;
                    assert_eq!(
                        show(&p.memory.newest_of(tag, &who, ready)),
                        show(&p.shared.newest_of(tag, &who, &ready).unwrap()),
                        "{context}: newest_of"
                    );
                }
                13 => {
                    let by = match coarse {
                        true => 1_000 * draws.below(15) as i64,
                        false => draws.below(15_000) as i64,
                    };
                    p.clock.advance(Duration::milliseconds(by));
                }
                _ => {
                    assert_eq!(
                        show_all(&p.memory.list()),
                        show_all(&p.shared.list().unwrap()),
                        "{context}: list"
                    );
                    assert_eq!(
                        p.memory.counts(),
                        p.shared.counts().unwrap(),
                        "{context}: counts"
                    );
                }
            }
        }
        for (a, b) in held {
            drop(a);
            drop(b);
        }
        assert_eq!(
            show_all(&p.memory.list()),
            show_all(&p.shared.list().unwrap()),
            "seed {seed}: at the end"
        );
    }
}

#[test]
fn of_concurrent_claims_of_a_single_use_job_exactly_one_wins() {
    let p = pair();
    // A second replica on the same Redis: half the claims go through it.
    let other = connect(&p._redis, p.clock.clone(), &p.tree);
    let mut draws = Draws(1);
    let mut made = spec("once", &p.archive, &mut draws);
    made.pacing = Pacing::Immediate;
    made.single_use = true;
    made.fault = None;
    made.download_window = None;
    p.shared.create(made).unwrap();
    let wins: usize = std::thread::scope(|scope| {
        let claims: Vec<_> = (0..20)
            .map(|n| {
                let replica = if n % 2 == 0 { &p.shared } else { &other };
                scope.spawn(move || replica.begin_download("once", Admission::default()).is_ok())
            })
            .collect();
        claims.into_iter().map(|c| c.join().unwrap() as usize).sum()
    });
    assert_eq!(wins, 1);
}

struct Collect(Vec<u8>);
impl ChunkSink for Collect {
    fn send(&mut self, chunk: bytes::Bytes) -> Result<(), Cancelled> {
        self.0.extend_from_slice(&chunk);
        Ok(())
    }
}

fn bytes_of(archive: &Archive) -> Vec<u8> {
    let mut sink = Collect(Vec::new());
    archive.stream(0, &mut sink, &NoProgress).unwrap();
    sink.0
}

#[test]
fn a_job_made_on_one_replica_is_downloaded_whole_from_another() {
    let p = pair();
    // Its own tree, parsed again, as another process would.
    let elsewhere = Arc::new(tree());
    let other = connect(&p._redis, p.clock.clone(), &elsewhere);
    let mut draws = Draws(3);
    let mut made = spec("moved", &p.archive, &mut draws);
    made.pacing = Pacing::Immediate;
    made.fault = None;
    made.download_window = None;
    made.single_use = true;
    p.shared.create(made).unwrap();
    let claimed = other.begin_download("moved", Admission::default()).unwrap();
    assert!(!Arc::ptr_eq(&claimed.archive, &p.archive));
    assert_eq!(claimed.archive.len(), p.archive.len());
    assert!(bytes_of(&claimed.archive) == bytes_of(&p.archive));
    assert_eq!(
        p.shared.get("moved").unwrap().unwrap().state,
        JobState::Downloading
    );
    claimed.ticket.bytes_sent(claimed.archive.len().unwrap());
    claimed.ticket.finished(true);
    let done = p.shared.get("moved").unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.files_done, 3);
    assert_eq!(done.bytes_sent, p.archive.len().unwrap());
    // Single use: the next claim, on either replica, is refused.
    assert!(matches!(
        p.shared.begin_download("moved", Admission::default()),
        Err(Error::Gone(_))
    ));
}

/// Waits up to a second for `done`: what a message on the bus takes.
fn within_a_second(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !done() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

#[test]
fn a_cancel_on_one_replica_cuts_the_downloads_of_every_replica() {
    let p = pair();
    let other = connect(&p._redis, p.clock.clone(), &p.tree);
    let mut draws = Draws(5);
    let mut made = spec("held", &p.archive, &mut draws);
    made.pacing = Pacing::Immediate;
    made.fault = None;
    made.download_window = None;
    made.single_use = false;
    p.shared.create(made).unwrap();
    let here = p
        .shared
        .begin_download("held", Admission::default())
        .unwrap();
    let there = other.begin_download("held", Admission::default()).unwrap();
    assert_eq!(other.get("held").unwrap().unwrap().active_downloads, 2);
    // A download of another job by the same id on the other replica,
    // which the cancel must not touch.
    let mut later = spec("kept", &p.archive, &mut Draws(6));
    later.pacing = Pacing::Immediate;
    later.fault = None;
    later.download_window = None;
    p.shared.create(later).unwrap();
    let kept = other.begin_download("kept", Admission::default()).unwrap();
    p.shared.cancel("held").unwrap();
    // Cut where it was cancelled at once, on the other replica by the bus.
    assert!(here.stop.is_cancelled());
    assert!(within_a_second(|| there.stop.is_cancelled()));
    assert!(!kept.stop.is_cancelled());
    assert_eq!(
        other.get("held").unwrap().unwrap().state,
        JobState::Cancelled
    );
}

#[test]
fn sequences_and_leases_are_shared_and_a_reset_restarts_only_sequences() {
    let p = pair();
    let other = connect(&p._redis, p.clock.clone(), &p.tree);
    let numbers: Vec<u64> = (0..6)
        .map(|n| {
            let replica = if n % 2 == 0 { &p.shared } else { &other };
            replica.next_in_sequence("one", "job_id").unwrap()
        })
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
    let first = p.shared.lease("cosmetic", 1024);
    let second = other.lease("cosmetic", 1024);
    assert_eq!(second, first + 1024);
    p.shared.clear().unwrap();
    assert_eq!(other.next_in_sequence("one", "job_id").unwrap(), 1);
    assert_eq!(p.shared.lease("cosmetic", 1), second + 1024);
}

#[test]
fn a_job_built_ahead_becomes_ready_alike_and_a_cancel_stops_its_build() {
    use crate::jobs::Building;
    use std::sync::atomic::Ordering;
    let p = pair();
    let backends: [&dyn JobBackend; 2] = [&p.memory, &p.shared];
    let mut flags = Vec::new();
    for (n, backend) in backends.iter().enumerate() {
        for id in ["built", "dropped"] {
            let mut draws = Draws(11);
            let mut made = spec(id, &p.archive, &mut draws);
            made.pacing = Pacing::AfterPolls(2);
            made.fault = None;
            let (building, stopped) = Building::new();
            made.building = Some(building);
            backend.create(made).unwrap();
            flags.push((n, id, stopped));
        }
    }
    let both = |f: &dyn Fn(&dyn JobBackend) -> String| -> (String, String) {
        (f(backends[0]), f(backends[1]))
    };
    for _ in 0..3 {
        let (a, b) = both(&|b| show(&b.poll("built").unwrap()));
        assert_eq!(a, b);
        assert!(a.contains("state: Running"), "{a}");
    }
    p.clock.advance(Duration::seconds(2));
    for backend in backends {
        let built = build_archive(
            &planner::plan(
                &p.tree,
                &Principal::Anonymous,
                &[SelectedItem {
                    id: "root".into(),
                    expected_kind: None,
                    name: None,
                }],
                &mut PlanOptions::default(),
            )
            .unwrap(),
            &CompressionPolicy::default(),
            None,
        );
        backend.finish_build("built", &p.archive, Ok(built));
    }
    let (a, b) = both(&|b| show(&b.get("built").unwrap()));
    assert_eq!(a, b);
    assert!(a.contains("state: Ready"), "{a}");
    // Cancelled while building: the build is told to stop, on both.
    let (a, b) = both(&|b| show_result(&b.cancel("dropped")));
    assert_eq!(a, b);
    for (n, _, stopped) in flags.iter().filter(|(_, id, _)| *id == "dropped") {
        assert!(stopped.load(Ordering::Relaxed), "backend {n}");
    }
    // A build on one replica is stopped by a cancel on another.
    let other = connect(&p._redis, p.clock.clone(), &p.tree);
    let mut made = spec("elsewhere", &p.archive, &mut Draws(12));
    made.pacing = Pacing::AfterPolls(2);
    made.fault = None;
    let (building, stopped) = Building::new();
    made.building = Some(building);
    p.shared.create(made).unwrap();
    other.cancel("elsewhere").unwrap();
    assert!(within_a_second(|| stopped.load(Ordering::Relaxed)));
    // A build that ends after the cancel changes nothing.
    for backend in backends {
        backend.finish_build("dropped", &p.archive, Err("too late".into()));
    }
    let (a, b) = both(&|b| show(&b.get("dropped").unwrap()));
    assert_eq!(a, b);
    assert!(a.contains("state: Cancelled"), "{a}");
}

#[test]
fn each_operation_calls_its_own_function() {
    // `fcall` finds a function by the operation's discriminant.
    for (index, (op, name, _)) in super::OPS.iter().enumerate() {
        assert_eq!(*op as usize, index, "{name}");
    }
}

fn tree_with(a_text: &str) -> Tree {
    let fixture = serde_json::json!({
        "nodes": [{"id": "root", "name": "Root", "children": [
            {"id": "a", "name": "a.txt", "content": {"text": a_text}},
            {"id": "b", "name": "b.dat", "content": {"generate": {"size": 5000, "seed": 2}}},
            {"id": "sub", "name": "Sub", "children": [
                {"id": "c", "name": "c.txt", "content": {"text": "gamma"}}
            ]}
        ]}]
    });
    crate::store::fixture::parse(&fixture.to_string(), None).unwrap()
}

fn archive_of(tree: &Tree, id: &str) -> Arc<Archive> {
    let plan = planner::plan(
        tree,
        &Principal::Anonymous,
        &[SelectedItem {
            id: id.into(),
            expected_kind: None,
            name: None,
        }],
        &mut PlanOptions::default(),
    )
    .unwrap();
    Arc::new(build_archive(&plan, &CompressionPolicy::default(), None))
}

fn ready_now(id: &str, archive: &Arc<Archive>, single_use: bool) -> JobSpec {
    let mut made = spec(id, archive, &mut Draws(17));
    made.pacing = Pacing::Immediate;
    made.fault = None;
    made.download_window = None;
    made.single_use = single_use;
    made.owner = Principal::Anonymous;
    made.owner_tag = TAGS[0];
    made
}

#[test]
fn a_claim_that_cannot_go_on_here_is_given_back() {
    let p = pair();
    // A replica whose a.txt differs: the plan's fingerprint refuses it.
    let elsewhere = Arc::new(tree_with("not what was planned"));
    let other = connect(&p._redis, p.clock.clone(), &elsewhere);
    p.shared
        .create(ready_now("lost", &p.archive, true))
        .unwrap();
    let capped = Admission {
        owner_tag: None,
        max_per_owner: Some(1),
    };
    assert!(matches!(
        other.begin_download("lost", capped),
        Err(Error::Unavailable(_))
    ));
    // Not left downloading: an interrupted download, as a cut one.
    let job = p.shared.get("lost").unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.as_deref(), Some("download interrupted"));
    assert_eq!(job.active_downloads, 0);
    // And the owner's one download slot is free again.
    p.shared
        .create(ready_now("next", &p.archive, true))
        .unwrap();
    assert!(p.shared.begin_download("next", capped).is_ok());
}

#[test]
fn after_a_reset_no_replica_serves_an_archive_from_before_it() {
    let p = pair();
    let other = connect(&p._redis, p.clock.clone(), &p.tree);
    p.shared
        .create(ready_now("same", &p.archive, false))
        .unwrap();
    let first = other.begin_download("same", Admission::default()).unwrap();
    assert_eq!(first.archive.len(), p.archive.len());
    drop(first);
    p.shared.clear().unwrap();
    // The same id again, of another archive: the other replica's cached
    // one (by the job's number) must not come back.
    let smaller = archive_of(&p.tree, "a");
    assert_ne!(smaller.len(), p.archive.len());
    p.shared.create(ready_now("same", &smaller, false)).unwrap();
    let second = other.begin_download("same", Admission::default()).unwrap();
    assert_eq!(second.archive.len(), smaller.len());
}

/// One replica on `redis`, on a still clock, and an archive of the tree.
fn alone(redis: &RedisServer) -> (RedisJobs, Arc<Archive>) {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    ));
    let tree = Arc::new(tree());
    (connect(redis, clock, &tree), archive_of(&tree, "root"))
}

#[test]
fn jobs_go_on_after_redis_restarts_without_its_functions() {
    let mut redis = RedisServer::start();
    let (jobs, archive) = alone(&redis);
    jobs.create(ready_now("before", &archive, false)).unwrap();
    // No persistence: the restart forgets the jobs and the functions.
    redis.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let made = loop {
        // The first calls may fail while the connection is made again.
        match jobs.create(ready_now("after", &archive, false)) {
            Ok(job) => break job,
            Err(error) if std::time::Instant::now() < deadline => {
                assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(error) => panic!("still failing: {error:?}"),
        }
    };
    assert_eq!(made.state, JobState::Ready);
    assert!(jobs.get("before").unwrap().is_none());
    assert!(jobs.begin_download("after", Admission::default()).is_ok());
}

#[test]
fn a_namespace_that_would_reach_other_keys_is_refused() {
    let redis = RedisServer::start();
    let tree = Arc::new(tree());
    for bad in ["{a}", "zip*", "a?", "[ab]", "a\\b", "", "with space"] {
        let error = RedisJobs::connect(
            &redis.url(),
            bad,
            JobLimits::default(),
            Arc::new(ManualClock::new(Utc::now())),
            Events::default(),
            TAGS.to_vec(),
            Arc::new(RwLock::new(tree.clone())),
        )
        .err()
        .unwrap_or_else(|| panic!("{bad:?} was taken"));
        assert!(error.contains("namespace"), "{error}");
    }
}

#[test]
fn a_hung_redis_costs_one_timeout_then_calls_fail_at_once_until_it_answers() {
    let redis = RedisServer::start();
    let (jobs, archive) = alone(&redis);
    jobs.create(ready_now("before", &archive, false)).unwrap();
    redis.pause();
    let started = std::time::Instant::now();
    assert!(matches!(jobs.get("before"), Err(Error::Unavailable(_))));
    let first = started.elapsed();
    assert!(first >= RESPONSE_TIMEOUT / 2, "{first:?}");
    // The breaker is open: the next calls do not wait on Redis at all.
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert!(matches!(jobs.get("before"), Err(Error::Unavailable(_))));
        assert!(matches!(jobs.list(), Err(Error::Unavailable(_))));
    }
    assert!(
        started.elapsed() < RESPONSE_TIMEOUT / 2,
        "{:?}",
        started.elapsed()
    );
    redis.resume();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match jobs.get("before") {
            Ok(found) => {
                assert_eq!(found.unwrap().id, "before");
                break;
            }
            Err(error) => {
                assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
                assert!(
                    std::time::Instant::now() < deadline,
                    "Redis never answered again"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

#[test]
fn after_redis_restarts_the_bus_is_heard_again() {
    let mut p = pair();
    let other = connect(&p._redis, p.clock.clone(), &p.tree);
    p._redis.restart();
    // Both listeners subscribe again by themselves; and neither replica's
    // first call after the restart fails on the connection Redis closed.
    let listeners = || {
        p.shared
            .command::<(String, u64)>(
                redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(format!("{}bus", p.shared.inner.prefix))
                    .clone(),
                true,
            )
            .map_or(0, |(_, n)| n)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while listeners() < 2 {
        assert!(std::time::Instant::now() < deadline, "not subscribed again");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let archive = archive_of(&p.tree, "root");
    p.shared
        .create(ready_now("again", &archive, false))
        .unwrap();
    let there = other.begin_download("again", Admission::default()).unwrap();
    p.shared.cancel("again").unwrap();
    assert!(within_a_second(|| there.stop.is_cancelled()));
}

#[test]
fn the_caps_refuse_and_evict_alike_in_both_backends() {
    let redis = RedisServer::start();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
    ));
    let tree = Arc::new(tree());
    let archive = archive(&tree);
    let limits = JobLimits {
        max_jobs: 10,
        max_jobs_per_principal: 3,
    };
    let memory = JobRegistry::with_limits(clock.clone(), limits);
    let shared = connect_with(&redis, clock.clone(), &tree, limits);
    let backends: [&dyn JobBackend; 2] = [&memory, &shared];
    // A job of `who` (both tags in turn: the cap is over every dialect),
    // pending for 100 polls or, with `window`, ready now for that long.
    let of = |id: &str, who: u64, window: Option<i64>| {
        let mut made = ready_now(id, &archive, false);
        made.owner = owner(who);
        made.owner_tag = TAGS[id.len() % 2];
        match window {
            Some(seconds) => made.download_window = Some(Duration::seconds(seconds)),
            None => made.pacing = Pacing::AfterPolls(100),
        }
        made
    };
    let alike = |what: &str, step: &dyn Fn(&dyn JobBackend) -> String| {
        let (a, b) = (step(backends[0]), step(backends[1]));
        assert_eq!(a, b, "{what}");
        let jobs = (show_all(&memory.list()), show_all(&shared.list().unwrap()));
        assert_eq!(jobs.0, jobs.1, "{what}: the jobs held");
    };
    let create = |id: String, who: u64, window: Option<i64>| {
        let of = &of;
        move |b: &dyn JobBackend| show_result(&b.create(of(&id, who, window)))
    };
    alike("alice's first", &create("alice-1".to_owned(), 1, None));
    for n in 0..3 {
        alike("bob's three", &create(format!("bob-{n}"), 2, None));
    }
    for n in 3..6 {
        // Refused, and nobody else's job goes.
        alike("bob past his cap", &create(format!("bob-{n}"), 2, None));
    }
    alike("bob cancels one", &|b| show_result(&b.cancel("bob-1")));
    alike("which makes room", &create("bob-next".to_owned(), 2, None));
    // Carol's jobs expire unobserved, and then make room.
    for n in 0..3 {
        alike("carol's three", &create(format!("carol-{n}"), 3, Some(30)));
    }
    alike(
        "carol past her cap",
        &create("carol-3".to_owned(), 3, Some(30)),
    );
    clock.advance(Duration::seconds(31));
    alike(
        "carol after her window",
        &create("carol-4".to_owned(), 3, Some(30)),
    );
    // The global cap: settled jobs among the oldest first, then the oldest.
    alike("dave cancels nothing", &|b| {
        show_result(&b.cancel("nothing"))
    });
    for n in 0..8 {
        alike("many principals", &create(format!("p{n}"), 10 + n, None));
    }
    alike("one more settled", &|b| show_result(&b.cancel("p2")));
    for n in 8..12 {
        alike(
            "past the global cap",
            &create(format!("p{n}"), 10 + n, None),
        );
    }
    assert_eq!(memory.len(), 10);
    assert_eq!(shared.len().unwrap(), 10);
}

#[test]
fn the_downloads_of_a_replica_that_died_end_as_interrupted() {
    let p = pair();
    let survivor = connect(&p._redis, p.clock.clone(), &p.tree);
    let archive = archive_of(&p.tree, "root");
    p.shared
        .create(ready_now("orphaned", &archive, true))
        .unwrap();
    p.shared.create(ready_now("next", &archive, true)).unwrap();
    let one_at_once = Admission {
        owner_tag: None,
        max_per_owner: Some(1),
    };
    let claimed = p.shared.begin_download("orphaned", one_at_once).unwrap();
    assert!(matches!(
        survivor.begin_download("next", one_at_once),
        Err(Error::TooManyDownloads { limit: 1 })
    ));
    // Killed mid-download: no ticket ends, no heartbeat follows.
    for replica in [&p.shared, &survivor] {
        replica.set_lease(std::time::Duration::from_millis(200));
    }
    p.shared.fall_silent();
    std::mem::forget(claimed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let job = survivor.get("orphaned").unwrap().unwrap();
        if job.state == JobState::Failed {
            assert_eq!(job.error.as_deref(), Some("download interrupted"));
            assert_eq!(job.active_downloads, 0);
            break;
        }
        assert_eq!(job.state, JobState::Downloading);
        assert!(std::time::Instant::now() < deadline, "never reaped");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The owner's one download at once is free again.
    survivor.begin_download("next", one_at_once).unwrap();
}

#[test]
fn a_claim_whose_answer_was_lost_is_ended_at_the_next_heartbeat() {
    let p = pair();
    let archive = archive_of(&p.tree, "root");
    p.shared.create(ready_now("lost", &archive, true)).unwrap();
    // The claim as claim.lua makes it, its answer never read here.
    let key = p.shared.claim_key();
    p.shared
        .script(
            Op::Claim,
            texts([
                "lost".into(),
                String::new(),
                String::new(),
                "0".into(),
                String::new(),
                String::new(),
                p.shared.inner.listener_id.clone(),
                key.clone(),
            ]),
        )
        .unwrap();
    assert_eq!(
        p.shared.get("lost").unwrap().unwrap().state,
        JobState::Downloading
    );
    p.shared.inner.unanswered.lock().unwrap().push(key);
    p.shared.set_lease(std::time::Duration::from_secs(10));
    let job = p.shared.get("lost").unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.as_deref(), Some("download interrupted"));
    assert_eq!(job.active_downloads, 0);
}

#[test]
fn a_download_the_reaper_ended_is_not_counted_down_again_when_it_ends() {
    let p = pair();
    let survivor = connect(&p._redis, p.clock.clone(), &p.tree);
    let archive = archive_of(&p.tree, "root");
    for id in ["slow", "first", "second"] {
        p.shared.create(ready_now(id, &archive, true)).unwrap();
    }
    let one_at_once = Admission {
        owner_tag: None,
        max_per_owner: Some(1),
    };
    let slow = p.shared.begin_download("slow", one_at_once).unwrap();
    // Its replica misses its lease (stalled, say) and the survivor ends
    // its download; the owner starts another there.
    for replica in [&p.shared, &survivor] {
        replica.set_lease(std::time::Duration::from_millis(200));
    }
    p.shared.fall_silent();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let _first = loop {
        match survivor.begin_download("first", one_at_once) {
            Ok(claimed) => break claimed,
            Err(Error::TooManyDownloads { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(error) => panic!("{error:?}"),
        }
    };
    // The stalled replica's download ends after all: the owner's one
    // download at once is still the survivor's, not free twice over.
    slow.ticket.finished(true);
    assert!(matches!(
        survivor.begin_download("second", one_at_once),
        Err(Error::TooManyDownloads { limit: 1 })
    ));
    let job = survivor.get("slow").unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.active_downloads, 0);
}

#[test]
fn a_record_gone_by_its_ttl_frees_its_place_under_the_cap() {
    let limits = JobLimits {
        max_jobs: 3,
        max_jobs_per_principal: 3,
    };
    let p = pair_with(limits);
    let archive = archive_of(&p.tree, "root");
    for id in ["j0", "j1", "j2"] {
        let mut pending = ready_now(id, &archive, false);
        pending.pacing = Pacing::AfterPolls(100);
        p.shared.create(pending).unwrap();
    }
    // Redis drops j0's record on its own (the TTL backstop), unswept.
    let _: () = p
        .shared
        .command(redis::cmd("DEL").arg(p.shared.key("job:j0")).clone(), false)
        .unwrap();
    let mut next = ready_now("j3", &archive, false);
    next.pacing = Pacing::AfterPolls(100);
    p.shared.create(next).unwrap();
    let held: Vec<String> = p.shared.list().unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(
        held,
        ["j1", "j2", "j3"],
        "no pending job evicted for a gone one"
    );
}

#[test]
fn fault_rules_counted_in_redis_fire_as_one_book_would() {
    let p = pair();
    let other = connect(&p._redis, p.clock.clone(), &p.tree);
    crate::faults::assert_books_fire_as_one([Arc::new(p.shared.clone()), Arc::new(other)]);
}

#[test]
fn control_changes_missed_while_unsubscribed_are_caught_up_in_order() {
    let p = pair();
    let other = connect(&p._redis, p.clock.clone(), &p.tree);
    let seen: [Arc<std::sync::Mutex<Vec<String>>>; 2] = Default::default();
    for (replica, log) in [&p.shared, &other].into_iter().zip(&seen) {
        let log = log.clone();
        replica.on_control(Box::new(move |change| {
            log.lock().unwrap().push(change.to_owned())
        }));
    }
    assert!(p.shared.broadcast("one").unwrap());
    // Every subscription dropped (both replicas'), then two changes made
    // before either listener subscribes again.
    let _: redis::Value = p
        .shared
        .command(
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .clone(),
            false,
        )
        .unwrap();
    p.shared.broadcast("two").unwrap();
    p.shared.broadcast("three").unwrap();
    let all = ["one", "two", "three"].map(str::to_owned).to_vec();
    // The replica that made them applied them itself, in order.
    assert_eq!(*seen[0].lock().unwrap(), all);
    // The other catches up once subscribed again; then a new change comes
    // once to each.
    assert!(within_a_second(|| *seen[1].lock().unwrap() == all));
    other.broadcast("four").unwrap();
    for log in &seen {
        assert_eq!(log.lock().unwrap().last().map(String::as_str), Some("four"));
        assert_eq!(log.lock().unwrap().len(), 4);
    }
}

#[test]
fn a_control_hook_that_calls_redis_itself_does_not_stall_the_store() {
    let p = pair();
    let other = connect(&p._redis, p.clock.clone(), &p.tree);
    let counted: Arc<std::sync::Mutex<Vec<usize>>> = Arc::default();
    // As the live feed's fault list does: the hook reads the store.
    let reader = other.clone();
    let log = counted.clone();
    other.on_control(Box::new(move |_| {
        log.lock().unwrap().push(reader.len().unwrap());
    }));
    p.shared.on_control(Box::new(|_| {}));
    let archive = archive_of(&p.tree, "root");
    p.shared.create(ready_now("one", &archive, false)).unwrap();
    let started = std::time::Instant::now();
    assert!(p.shared.broadcast("count").unwrap());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(*counted.lock().unwrap(), [1]);
    // And the store goes on answering.
    assert_eq!(other.len().unwrap(), 1);
}

#[test]
fn a_reset_elsewhere_stops_the_builds_and_drops_the_archives_held_here() {
    use crate::jobs::Building;
    use std::sync::atomic::Ordering;
    let p = pair();
    let mut made = ready_now("built", &p.archive, false);
    made.pacing = Pacing::AfterPolls(2);
    let (building, stopped) = Building::new();
    made.building = Some(building);
    p.shared.create(made).unwrap();
    assert!(p.shared.cached("built").is_some());
    p.shared.forget_local();
    assert!(stopped.load(Ordering::Relaxed));
    assert!(p.shared.cached("built").is_none());
}
