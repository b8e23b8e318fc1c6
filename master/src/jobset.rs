//! Who a job went to and who has returned, compactly: the ids sorted in one buffer, and a
//! bit per id.
//!
//! The master keeps the minions of its recent jobs (up to 200,000 entries) to check each
//! return against its job. As two `HashSet<String>`s that was ~90 bytes per minion and job:
//! with 10,000 minions connected, the master grew by ~1.8 MB per job until the cap, ~18 MB
//! past the rest of its memory. Here it is the id's bytes, four for its end, and a bit.

/// A job's minions (sorted, each once) and which of them returned.
#[derive(Debug, Default)]
pub struct JobMinions {
    /// The ids, sorted, one after another.
    text: String,
    /// Where each id ends in `text`.
    ends: Vec<u32>,
    /// A bit per id: returned.
    returned: Vec<u64>,
    returned_count: usize,
}

impl JobMinions {
    /// The minions `ids` (repeats counted once), none returned yet.
    pub fn new<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> JobMinions {
        let mut ids: Vec<S> = ids.into_iter().collect();
        ids.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        ids.dedup_by(|a, b| a.as_ref() == b.as_ref());
        let mut text = String::with_capacity(ids.iter().map(|id| id.as_ref().len()).sum());
        let mut ends = Vec::with_capacity(ids.len());
        for id in &ids {
            // Ids are bounded (a target, a key file name): a job's are far under 4 GiB. A
            // corrupt job cache's past that is cut there, never wrapped.
            let Ok(end) = u32::try_from(text.len() + id.as_ref().len()) else { break };
            text.push_str(id.as_ref());
            ends.push(end);
        }
        let returned = vec![0; ends.len().div_ceil(64)];
        JobMinions { text, ends, returned, returned_count: 0 }
    }

    /// How many minions the job went to.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn id(&self, at: usize) -> &str {
        let start = if at == 0 { 0 } else { self.ends[at - 1] as usize };
        &self.text[start..self.ends[at] as usize]
    }

    fn position(&self, id: &str) -> Option<usize> {
        let (mut low, mut high) = (0, self.ends.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.id(mid).cmp(id) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Whether the job went to `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    /// Whether `id` (one of the job's minions) has returned.
    pub fn has_returned(&self, id: &str) -> bool {
        self.position(id).is_some_and(|at| self.returned[at / 64] & (1 << (at % 64)) != 0)
    }

    /// Marks `id` returned: false if it had already, or is not one of the job's minions.
    pub fn mark_returned(&mut self, id: &str) -> bool {
        let Some(at) = self.position(id) else { return false };
        let (word, bit) = (at / 64, 1u64 << (at % 64));
        if self.returned[word] & bit != 0 {
            return false;
        }
        self.returned[word] |= bit;
        self.returned_count += 1;
        true
    }

    /// Forgets that `id` returned (its return could not be stored).
    pub fn unmark_returned(&mut self, id: &str) {
        if let Some(at) = self.position(id) {
            let (word, bit) = (at / 64, 1u64 << (at % 64));
            if self.returned[word] & bit != 0 {
                self.returned[word] &= !bit;
                self.returned_count -= 1;
            }
        }
    }

    /// How many of the minions have returned.
    pub fn returned_count(&self) -> usize {
        self.returned_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_id_and_keeps_a_bit_for_each() {
        let ids: Vec<String> = (0..1000).rev().map(|n| format!("m{n}")).collect();
        let mut job = JobMinions::new(ids.iter().chain(&ids[..10]));
        assert_eq!(job.len(), 1000);
        for id in &ids {
            assert!(job.contains(id), "{id}");
            assert!(!job.has_returned(id));
        }
        for absent in ["", "m", "m1000", "m-1", "z", "m00"] {
            assert!(!job.contains(absent), "{absent}");
            assert!(!job.mark_returned(absent));
        }
        assert!(job.mark_returned("m999"));
        assert!(!job.mark_returned("m999"), "twice");
        assert!(job.mark_returned("m0"));
        assert!(job.has_returned("m999") && job.has_returned("m0") && !job.has_returned("m1"));
        assert_eq!(job.returned_count(), 2);
        job.unmark_returned("m999");
        job.unmark_returned("m999");
        job.unmark_returned("nobody");
        assert_eq!(job.returned_count(), 1);
        assert!(!job.has_returned("m999"));
        assert!(job.mark_returned("m999"));
        // Ids that are prefixes of one another, and multi-byte ones.
        let job = JobMinions::new(["a", "ab", "abc", "é", "éé", "b"]);
        for id in ["a", "ab", "abc", "é", "éé", "b"] {
            assert!(job.contains(id), "{id}");
        }
        assert!(!job.contains("abcd") && !job.contains("ée"));
        let empty = JobMinions::new(Vec::<String>::new());
        assert!(empty.is_empty() && !empty.contains("a"));
    }
}
