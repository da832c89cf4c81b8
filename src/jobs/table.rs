//! Where jobs live: generational slots, the id map, the creation order and
//! the per-owner index.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use zipgate_api::{JobSnapshot, Principal};

use super::job::Job;

/// The jobs in slots, found by id, with their creation order so the cap and
/// the retention sweep cost O(1) per create instead of a scan of every job,
/// and an index by owner so a dialect's questions about one user's jobs do
/// not scan everyone's. Lists hold slot keys, not ids: a create copies its
/// id once, and the cap looks through the oldest jobs without hashing.
#[derive(Default)]
pub(super) struct Table {
    pub(super) slots: Vec<Slot>,
    pub(super) free: Vec<u32>,
    pub(super) by_id: HashMap<Box<str>, Key>,
    /// Keys oldest first; may hold keys of removed jobs (skipped, compacted on sweeps).
    pub(super) order: VecDeque<Key>,
    /// By principal, then by owner tag (a handful of dialects).
    pub(super) owners: HashMap<Principal, Vec<(&'static str, OwnerJobs)>>,
    pub(super) swept_at: Option<DateTime<Utc>>,
    /// Jobs inserted so far: each slot's job knows its place among all.
    pub(super) inserted: u64,
}

/// A job's slot and the slot's generation at the time, so a key left
/// behind in a list never finds the slot's next job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Key {
    pub(super) slot: u32,
    pub(super) generation: u32,
}

#[derive(Default)]
pub(super) struct Slot {
    pub(super) generation: u32,
    pub(super) job: Option<Job>,
    /// When its job was inserted, counted over every job.
    pub(super) inserted: u64,
}

/// Removes `key` from an oldest-first list: O(1) when it is the oldest, the
/// usual case (the cap drops the oldest job).
pub(super) fn remove_key(keys: &mut VecDeque<Key>, key: Key) {
    if keys.front() == Some(&key) {
        keys.pop_front();
    } else if let Some(at) = keys.iter().position(|other| *other == key) {
        keys.remove(at);
    }
}

#[derive(Default)]
pub(super) struct OwnerJobs {
    /// Keys oldest first; may hold keys of removed jobs (compacted on sweeps).
    pub(super) order: VecDeque<Key>,
    /// Keys of jobs not yet acknowledged, oldest first.
    pub(super) open: VecDeque<Key>,
    /// Downloads of these jobs in progress.
    pub(super) downloading: usize,
}

/// Creation-order entries the cap looks through, per job it drops, for
/// settled jobs to drop first.
pub(super) const EVICTION_WINDOW_PER_JOB: usize = 4;

impl Table {
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn job(&self, key: Key) -> Option<&Job> {
        let slot = self.slots.get(key.slot as usize)?;
        (slot.generation == key.generation).then_some(slot.job.as_ref())?
    }

    pub(super) fn job_mut(&mut self, key: Key) -> Option<&mut Job> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        (slot.generation == key.generation).then_some(slot.job.as_mut())?
    }

    pub(super) fn key_of(&self, id: &str) -> Option<Key> {
        self.by_id.get(id).copied()
    }

    pub(super) fn get(&self, id: &str) -> Option<&Job> {
        self.job(self.key_of(id)?)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Job> {
        self.job_mut(self.key_of(id)?)
    }

    pub(super) fn jobs_mut(&mut self) -> impl Iterator<Item = &mut Job> {
        self.slots.iter_mut().filter_map(|slot| slot.job.as_mut())
    }

    pub(super) fn owner_jobs(&self, owner_tag: &str, owner: &Principal) -> Option<&OwnerJobs> {
        let tags = self.owners.get(owner)?;
        tags.iter()
            .find(|(tag, _)| *tag == owner_tag)
            .map(|(_, jobs)| jobs)
    }

    pub(super) fn owner_jobs_mut(
        &mut self,
        owner_tag: &str,
        owner: &Principal,
    ) -> Option<&mut OwnerJobs> {
        let tags = self.owners.get_mut(owner)?;
        tags.iter_mut()
            .find(|(tag, _)| *tag == owner_tag)
            .map(|(_, jobs)| jobs)
    }

    /// The owner's entry, made when missing (the principal is copied only then).
    pub(super) fn owner_entry(
        &mut self,
        owner_tag: &'static str,
        owner: &Principal,
    ) -> &mut OwnerJobs {
        if !self.owners.contains_key(owner) {
            self.owners.insert(owner.clone(), Vec::new());
        }
        let tags = self.owners.get_mut(owner).expect("inserted above");
        let at = match tags.iter().position(|(tag, _)| *tag == owner_tag) {
            Some(at) => at,
            None => {
                tags.push((owner_tag, OwnerJobs::default()));
                tags.len() - 1
            }
        };
        &mut tags[at].1
    }

    /// Forgets the owner's entry once it has no jobs and no downloads.
    pub(super) fn drop_owner_if_idle(&mut self, owner_tag: &str, owner: &Principal) {
        if let Some(tags) = self.owners.get_mut(owner) {
            tags.retain(|(tag, jobs)| {
                *tag != owner_tag || !jobs.order.is_empty() || jobs.downloading > 0
            });
            if tags.is_empty() {
                self.owners.remove(owner);
            }
        }
    }

    /// Files a new job under its id, in creation order and in its owner's lists.
    pub(super) fn insert(&mut self, job: Job) -> Key {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 jobs")
            }
        };
        let key = Key {
            slot,
            generation: self.slots[slot as usize].generation,
        };
        let (owner_tag, owner) = (job.snapshot.owner_tag, job.snapshot.owner.clone());
        self.by_id.insert(job.snapshot.id.as_str().into(), key);
        self.inserted += 1;
        self.slots[slot as usize].job = Some(job);
        self.slots[slot as usize].inserted = self.inserted;
        self.order.push_back(key);
        let lists = self.owner_entry(owner_tag, &owner);
        lists.order.push_back(key);
        lists.open.push_back(key);
        key
    }

    /// Forgets jobs past their retention, at most once per clock second.
    pub(super) fn sweep_if_due(&mut self, now: DateTime<Utc>) {
        let due = self
            .swept_at
            .is_none_or(|at| now < at || now - at >= Duration::seconds(1));
        if due {
            self.sweep(now);
        }
    }

    pub(super) fn sweep(&mut self, now: DateTime<Utc>) {
        let reclaimable: Vec<Key> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.job.as_ref().is_some_and(|job| job.reclaimable(now)))
            .map(|(at, slot)| Key {
                slot: at as u32,
                generation: slot.generation,
            })
            .collect();
        // Their keys leave the lists in one pass (compact), not one scan each.
        for key in reclaimable {
            self.take(key);
        }
        self.compact();
        self.swept_at = Some(now);
    }

    /// Drops keys of removed jobs from every list.
    pub(super) fn compact(&mut self) {
        let slots = &self.slots;
        let live = |key: &Key| {
            slots
                .get(key.slot as usize)
                .is_some_and(|slot| slot.generation == key.generation && slot.job.is_some())
        };
        self.order.retain(live);
        self.owners.retain(|_, tags| {
            tags.retain_mut(|(_, jobs)| {
                jobs.order.retain(live);
                jobs.open.retain(live);
                !jobs.order.is_empty() || jobs.downloading > 0
            });
            !tags.is_empty()
        });
    }

    /// Snapshots of the live jobs among `keys`, in that order, advanced to `now`.
    pub(super) fn snapshots(&mut self, keys: &[Key], now: DateTime<Utc>) -> Vec<JobSnapshot> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(job) = self.job_mut(*key).filter(|job| !job.reclaimable(now)) {
                job.advance(now, false);
                out.push(job.snapshot.clone());
            }
        }
        out
    }

    /// Drops `count` jobs: settled ones among the oldest first, then the
    /// oldest. Done in batches so the look through the oldest jobs is paid
    /// once per batch, not on every create at the cap.
    /// Removes `count` jobs and hands them back, to be dropped after the lock.
    /// The window counts jobs, not the keys removed jobs left in the order
    /// (as a shared store's sorted set holds none: both pick alike).
    pub(super) fn evict(&mut self, count: usize) -> Vec<Job> {
        let settled: Vec<Key> = self
            .order
            .iter()
            .filter(|key| self.job(**key).is_some())
            .take(count * EVICTION_WINDOW_PER_JOB)
            .filter(|key| self.job(**key).is_some_and(|j| j.settled_at.is_some()))
            .take(count)
            .copied()
            .collect();
        let mut evicted: Vec<Job> = settled
            .into_iter()
            .filter_map(|key| self.forget_key(key))
            .collect();
        while evicted.len() < count {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            evicted.extend(self.forget_key(key));
        }
        evicted
    }

    /// Live jobs of one principal, over every owner tag.
    pub(super) fn principal_len(&self, owner: &Principal) -> usize {
        self.owners.get(owner).map_or(0, |tags| {
            tags.iter().map(|(_, jobs)| jobs.order.len()).sum()
        })
    }

    /// Drops up to `count` of one principal's settled jobs among its oldest
    /// (a bounded window per owner tag, so a refused create costs the same
    /// however many jobs the principal holds); its pending jobs stay.
    pub(super) fn evict_settled_of(
        &mut self,
        owner: &Principal,
        count: usize,
        now: DateTime<Utc>,
    ) -> Vec<Job> {
        let window = count.saturating_mul(EVICTION_WINDOW_PER_JOB).max(64);
        // The principal's `window` oldest over every tag (each tag's oldest
        // `window` hold them all), oldest first: as a shared store's sorted
        // set of the principal's jobs gives them.
        let mut candidates: Vec<Key> = self.owners.get(owner).map_or_else(Vec::new, |tags| {
            tags.iter()
                .flat_map(|(_, jobs)| jobs.order.iter().take(window))
                .copied()
                .collect()
        });
        candidates.sort_by_key(|key| self.slots[key.slot as usize].inserted);
        candidates.truncate(window);
        let mut settled = Vec::with_capacity(count);
        for key in candidates {
            if let Some(job) = self.job_mut(key) {
                // A job past its download window has expired whether or not
                // anyone looked at it since: bring it up to `now` first.
                job.advance(now, false);
                if job.settled_at.is_some() {
                    settled.push(key);
                    if settled.len() == count {
                        break;
                    }
                }
            }
        }
        settled
            .into_iter()
            .filter_map(|key| self.forget_key(key))
            .collect()
    }

    pub(super) fn forget(&mut self, id: &str) -> Option<Job> {
        self.forget_key(self.key_of(id)?)
    }

    /// Removes a job from its slot and the id map; its keys stay in the
    /// lists until they are compacted.
    pub(super) fn take(&mut self, key: Key) -> Option<Job> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let job = slot.job.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.slot);
        self.by_id.remove(job.snapshot.id.as_str());
        Some(job)
    }

    /// Removes a job and its place in its owner's index (the global order is
    /// compacted lazily).
    pub(super) fn forget_key(&mut self, key: Key) -> Option<Job> {
        let job = self.take(key)?;
        let (owner_tag, owner) = (job.snapshot.owner_tag, &job.snapshot.owner);
        if let Some(lists) = self.owner_jobs_mut(owner_tag, owner) {
            remove_key(&mut lists.order, key);
            remove_key(&mut lists.open, key);
        }
        self.drop_owner_if_idle(owner_tag, owner);
        Some(job)
    }
}
