//! The per-worker decision cache: verdicts by (token entry, rule set, item).
//!
//! Keys are hashed with foldhash under a per-map random seed and compared in full on a hit, so
//! a collision can only cost a miss. A token entry's id is new each time a token is verified
//! afresh (a token-cache eviction, expiry or key rotation re-verifies it), and a rule set's id
//! is new at every load, so a verdict can never outlive the token entry or the rules it was
//! made under. Bounded: when full it starts over.

use std::collections::HashMap;
use std::hash::BuildHasher;

use super::{Item, ItemKind, Verdict};

/// Longest item name (with its target) whose verdict is kept, bytes.
pub(crate) const MAX_NAME: usize = 256;

/// Verdicts kept per worker before the cache starts over.
pub(crate) const CAPACITY: usize = 64 * 1024;

struct Entry {
    caller: u64,
    set: u64,
    kind: Option<ItemKind>,
    target: Box<str>,
    name: Box<str>,
    verdict: Verdict,
}

/// One worker's verdicts.
pub struct Decisions {
    map: HashMap<u64, Entry, foldhash::fast::RandomState>,
    capacity: usize,
    /// Lookups answered here, and those that evaluated rules.
    pub hits: u64,
    pub misses: u64,
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions::with_capacity(CAPACITY)
    }
}

impl Decisions {
    pub fn with_capacity(capacity: usize) -> Self {
        Decisions {
            map: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            capacity: capacity.max(1),
            hits: 0,
            misses: 0,
        }
    }

    fn key(&self, caller: u64, set: u64, item: Option<Item<'_>>) -> u64 {
        let (kind, target, name) =
            item.map_or((None, "", ""), |i| (Some(i.kind), i.target, i.name));
        self.map
            .hasher()
            .hash_one((caller, set, kind, target, name))
    }

    /// The cached verdict, if any. Allocation-free.
    pub(crate) fn get(
        &mut self,
        caller: u64,
        set: u64,
        item: Option<Item<'_>>,
    ) -> Option<&Verdict> {
        let k = self.key(caller, set, item);
        let found = self.map.get(&k).filter(|e| {
            let (kind, target, name) =
                item.map_or((None, "", ""), |i| (Some(i.kind), i.target, i.name));
            e.caller == caller
                && e.set == set
                && e.kind == kind
                && &*e.target == target
                && &*e.name == name
        });
        match found {
            Some(e) => {
                self.hits += 1;
                Some(&e.verdict)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub(crate) fn put(&mut self, caller: u64, set: u64, item: Option<Item<'_>>, verdict: Verdict) {
        // Names are the client's: long ones are decided every time rather than kept, so the
        // cache's memory stays bounded by `capacity × MAX_NAME`.
        if item.is_some_and(|i| i.name.len() + i.target.len() > MAX_NAME) {
            return;
        }
        if self.map.len() >= self.capacity {
            self.map.clear();
        }
        let k = self.key(caller, set, item);
        let (kind, target, name) =
            item.map_or((None, "", ""), |i| (Some(i.kind), i.target, i.name));
        self.map.insert(
            k,
            Entry {
                caller,
                set,
                kind,
                target: target.into(),
                name: name.into(),
                verdict,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
    }
}
