//! A job as Redis keeps it: [`Record`], the `j` field of the job's hash in
//! MessagePack, which the Lua library reads and writes as a table with
//! these keys (prelude.lua). Times are integer µs since the epoch, so they
//! are exact both in Rust and in Lua's doubles (to the year 2255).

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use zipgate_api::{JobSnapshot, JobState, Pacing, Principal, UserId};

use crate::jobs::job::Job;
use crate::jobs::{JobFault, StuckState};

/// Field names are short: every call moves the record both ways.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Record {
    pub id: String,
    pub name: String,
    pub ctx: String,
    /// The dialect that made it, and its owner (`owner_key`).
    pub tag: String,
    pub own: String,
    pub c: i64,
    pub alen: Option<u64>,
    /// Entries in the archive, files it covers, skipped files and folders.
    pub et: u64,
    pub fc: u64,
    pub fs: u64,
    pub fos: u64,
    /// Files in the archive (fewer than `fc` when some were skipped).
    pub fia: u64,
    pub st: JobState,
    pub r: Option<i64>,
    pub x: Option<i64>,
    pub ds: Option<i64>,
    pub f: Option<i64>,
    pub polls: u32,
    pub s0: u32,
    pub s1: u32,
    pub ed: u64,
    pub fd: u64,
    pub bs: u64,
    pub dl: u32,
    pub ad: u32,
    pub ack: bool,
    pub err: Option<String>,
    /// When its retention started.
    pub sa: Option<i64>,
    /// Its archive is being built; when the build ended.
    pub bld: bool,
    pub bat: Option<i64>,
    /// Pacing: `i`mmediate, after `pn` `p`olls, or after `pd` µs (`d`).
    pub pk: String,
    pub pn: u32,
    pub pd: Option<i64>,
    /// Download window, single use, retention.
    pub win: Option<i64>,
    pub su: bool,
    pub ret: i64,
    /// A fault that changes how it advances: `f`ail with `fmsg`, stuck
    /// `q`ueued or `r`unning; empty for none (or one that acts at download).
    pub fk: String,
    pub fmsg: Option<String>,
    /// The create's number (never reused, not even after a reset) and the
    /// archive's revision (a build or a cut makes a new one).
    pub seq: u64,
    pub rev: u64,
}

/// chrono's last instant in µs (8,210,266,876,799,999,999) rounded down to
/// a double, as Lua holds it (`MAXT` in prelude.lua): from here on, "never".
const END_OF_TIME: i64 = 8_210_266_876_799_998_976;

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A duration in µs, at most the end of time: any longer one means
/// "never" all the same (deadlines saturate there), and Lua could not hand
/// back a number past 2^63 as an integer (cmsgpack would write a float).
fn duration_micros(d: Duration) -> i64 {
    d.num_microseconds().unwrap_or(i64::MAX).min(END_OF_TIME)
}

pub(super) fn time_of(micros: i64) -> DateTime<Utc> {
    if micros >= END_OF_TIME {
        return DateTime::<Utc>::MAX_UTC;
    }
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The key part that names an owner: `a` or `u:` and the user id.
pub(super) fn owner_key(owner: &Principal) -> String {
    match owner {
        Principal::Anonymous => "a".to_owned(),
        Principal::User(UserId(id)) => format!("u:{id}"),
    }
}

fn owner_of(key: &str) -> Option<Principal> {
    match key {
        "a" => Some(Principal::Anonymous),
        _ => key
            .strip_prefix("u:")
            .map(|id| Principal::User(UserId(id.to_owned()))),
    }
}

/// Times a record keeps, as the registry would keep them: whole µs.
pub(super) fn to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

impl Record {
    /// A new job's record (seq and rev are given by Redis).
    pub fn of(job: &Job) -> Record {
        let s = &job.snapshot;
        let rules = &job.spec;
        let (pk, pn, pd) = match rules.pacing {
            Pacing::Immediate => ("i", 0, None),
            Pacing::AfterPolls(n) => ("p", n, None),
            Pacing::AfterDuration(d) => ("d", 0, Some(duration_micros(d))),
        };
        let (fk, fmsg) = match &rules.fault {
            Some(JobFault::Fail(message)) => ("f", Some(message.clone())),
            Some(JobFault::Stuck(StuckState::Queued)) => ("q", None),
            Some(JobFault::Stuck(StuckState::Running)) => ("r", None),
            _ => ("", None),
        };
        Record {
            id: s.id.clone(),
            name: s.name.clone(),
            ctx: s.context.clone(),
            tag: s.owner_tag.to_owned(),
            own: owner_key(&s.owner),
            c: micros(s.created_at),
            alen: s.archive_len,
            et: s.entries_total,
            fc: s.file_count,
            fs: s.files_skipped,
            fos: s.folders_skipped,
            fia: job.entry_is_file.iter().filter(|f| **f).count() as u64,
            st: s.state,
            r: s.ready_at.map(micros),
            x: s.expires_at.map(micros),
            ds: s.download_started_at.map(micros),
            f: s.finished_at.map(micros),
            polls: s.polls,
            s0: s.steps.0,
            s1: s.steps.1,
            ed: s.entries_done,
            fd: s.files_done,
            bs: s.bytes_sent,
            dl: s.downloads,
            ad: s.active_downloads,
            ack: s.acknowledged,
            err: s.error.clone(),
            sa: job.settled_at.map(micros),
            bld: rules.building.is_some(),
            bat: rules.built_at.map(micros),
            pk: pk.to_owned(),
            pn,
            pd,
            win: rules.download_window.map(duration_micros),
            su: rules.single_use,
            ret: duration_micros(rules.retention),
            fk: fk.to_owned(),
            fmsg,
            seq: 0,
            rev: 0,
        }
    }

    /// The snapshot, for a job of one of `tags` (the dialects mounted here).
    pub fn snapshot(&self, tags: &[&'static str]) -> Option<JobSnapshot> {
        let owner_tag = *tags.iter().find(|t| **t == self.tag)?;
        let mut s = JobSnapshot::new(
            self.id.clone(),
            owner_tag,
            owner_of(&self.own)?,
            time_of(self.c),
        );
        s.name = self.name.clone();
        s.context = self.ctx.clone();
        s.archive_len = self.alen;
        s.state = self.st;
        s.ready_at = self.r.map(time_of);
        s.expires_at = self.x.map(time_of);
        s.download_started_at = self.ds.map(time_of);
        s.finished_at = self.f.map(time_of);
        s.polls = self.polls;
        s.steps = (self.s0, self.s1);
        s.entries_total = self.et;
        s.entries_done = self.ed;
        s.file_count = self.fc;
        s.files_done = self.fd;
        s.files_skipped = self.fs;
        s.folders_skipped = self.fos;
        s.bytes_sent = self.bs;
        s.downloads = self.dl;
        s.active_downloads = self.ad;
        s.acknowledged = self.ack;
        s.error = self.err.clone();
        Some(s)
    }

    pub fn pack(&self) -> Vec<u8> {
        // Maps keyed by name: Lua reads them as tables.
        rmp_serde::to_vec_named(self).expect("a record always serializes")
    }

    pub fn unpack(bytes: &[u8]) -> Option<Record> {
        rmp_serde::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_time_comes_back_as_itself() {
        assert_eq!(
            time_of(micros(DateTime::<Utc>::MAX_UTC)),
            DateTime::<Utc>::MAX_UTC
        );
        // Exactly a double, the largest not past the end.
        assert_eq!(END_OF_TIME as f64 as i64, END_OF_TIME);
        assert!(END_OF_TIME <= micros(DateTime::<Utc>::MAX_UTC));
        assert!(((END_OF_TIME as f64) + 1024.0) as i128 > micros(DateTime::<Utc>::MAX_UTC) as i128);
        // What Lua's MAXT holds after a saturating add.
        assert_eq!(time_of(END_OF_TIME), DateTime::<Utc>::MAX_UTC);
        let now = Utc::now();
        assert_eq!(time_of(micros(now)), to_micros(now));
    }

    #[test]
    fn a_record_round_trips_through_messagepack() {
        let record = Record {
            id: "job".into(),
            st: JobState::Downloading,
            err: Some(String::new()),
            x: Some(END_OF_TIME),
            bld: true,
            ..Record::default()
        };
        assert_eq!(Record::unpack(&record.pack()), Some(record));
    }
}
