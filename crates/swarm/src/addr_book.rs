//! Where peers listen, for the endpoint's address lookup (no outside discovery is used).
//!
//! Peers the operator configured (static peers) are kept for the node's life, with the
//! addresses the operator gave.
//! Peers a listing named (the tracker, a relayed document, local discovery) are remembered
//! with the addresses of their latest listing only, and at most [`MAX_REMEMBERED`] of them:
//! past that the oldest is forgotten. Without the bound a long-running node's lookup grew
//! with every peer any tracker ever listed to it, each with every address it ever named.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use iroh::address_lookup::MemoryLookup;
use iroh::{EndpointAddr, EndpointId};

/// Listed peers whose addresses are remembered at once, at most.
pub(crate) const MAX_REMEMBERED: usize = 4096;

#[derive(Debug, Clone)]
pub(crate) struct AddrBook {
    lookup: MemoryLookup,
    state: std::sync::Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// The operator's peers: never forgotten.
    pinned: HashSet<EndpointId>,
    /// Listed peers, oldest first, and the same ids as a set.
    order: VecDeque<EndpointId>,
    remembered: HashSet<EndpointId>,
}

impl AddrBook {
    pub(crate) fn new(lookup: MemoryLookup) -> Self {
        Self {
            lookup,
            state: Default::default(),
        }
    }

    /// An operator's peer: its addresses are added to what is known, and kept.
    pub(crate) fn pin(&self, addr: EndpointAddr) {
        let mut state = self.lock();
        state.pinned.insert(addr.id);
        if state.remembered.remove(&addr.id) {
            state.order.retain(|id| *id != addr.id);
        }
        self.lookup.add_endpoint_info(addr);
    }

    /// A listed peer: its addresses replace what a listing said before (an operator's peer
    /// keeps the operator's), and the oldest listed peer is forgotten past
    /// [`MAX_REMEMBERED`].
    pub(crate) fn remember(&self, addr: EndpointAddr) {
        let mut state = self.lock();
        if state.pinned.contains(&addr.id) {
            return;
        }
        let id = addr.id;
        self.lookup.set_endpoint_info(addr);
        if state.remembered.insert(id) {
            state.order.push_back(id);
        }
        while state.order.len() > MAX_REMEMBERED {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            state.remembered.remove(&oldest);
            self.lookup.remove_endpoint_info(oldest);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> EndpointAddr {
        let id = iroh::SecretKey::generate().public();
        EndpointAddr::from_parts(id, [iroh::TransportAddr::Ip(([127, 0, 0, 1], port).into())])
    }

    fn known(lookup: &MemoryLookup, id: EndpointId) -> Vec<iroh::TransportAddr> {
        lookup
            .get_endpoint_info(id)
            .map(|info| info.data.addrs().cloned().collect())
            .unwrap_or_default()
    }

    #[test]
    fn listed_peers_are_bounded_and_the_operators_are_kept() {
        let lookup = MemoryLookup::new();
        let book = AddrBook::new(lookup.clone());
        let operators = addr(1);
        book.pin(operators.clone());
        let first = addr(2);
        book.remember(first.clone());
        let mut last = first.clone();
        for i in 0..MAX_REMEMBERED {
            last = addr(3 + (i % 1000) as u16);
            book.remember(last.clone());
        }
        assert!(
            known(&lookup, first.id).is_empty(),
            "the oldest listed peer is still in the lookup"
        );
        assert!(!known(&lookup, last.id).is_empty());
        assert!(
            !known(&lookup, operators.id).is_empty(),
            "the operator's peer was forgotten"
        );
        assert_eq!(book.lock().order.len(), MAX_REMEMBERED);

        // A new listing replaces a listed peer's addresses; an operator's peer keeps its own.
        let moved = EndpointAddr::from_parts(
            last.id,
            [iroh::TransportAddr::Ip(([127, 0, 0, 2], 9).into())],
        );
        book.remember(moved.clone());
        assert_eq!(
            known(&lookup, last.id),
            moved.addrs.iter().cloned().collect::<Vec<_>>()
        );
        let more = EndpointAddr::from_parts(
            operators.id,
            [iroh::TransportAddr::Ip(([127, 0, 0, 3], 9).into())],
        );
        book.remember(more);
        assert_eq!(
            known(&lookup, operators.id),
            operators.addrs.iter().cloned().collect::<Vec<_>>()
        );
    }
}
