//! The store queue: complete files waiting for a store worker, earliest
//! deadline first. Unbounded on purpose: a backlog must never drop a file,
//! and each entry is a few hundred bytes while the files themselves stay on
//! the docks.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

struct Entry<T> {
    /// Smaller is more urgent (an estimate of the deadline, in ms).
    key: i64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.key, self.seq) == (other.key, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse, so the smallest key pops first.
        (other.key, other.seq).cmp(&(self.key, self.seq))
    }
}

pub struct DeadlineQueue<T> {
    heap: Mutex<(BinaryHeap<Entry<T>>, u64)>,
    notify: Notify,
}

impl<T> Default for DeadlineQueue<T> {
    fn default() -> Self {
        DeadlineQueue { heap: Mutex::new((BinaryHeap::new(), 0)), notify: Notify::new() }
    }
}

impl<T> DeadlineQueue<T> {
    pub fn push(&self, key: i64, item: T) {
        let mut g = self.heap.lock().unwrap();
        let seq = g.1;
        g.1 += 1;
        g.0.push(Entry { key, seq, item });
        drop(g);
        self.notify.notify_one();
    }

    pub fn len(&self) -> usize {
        self.heap.lock().unwrap().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn try_pop(&self) -> Option<T> {
        self.heap.lock().unwrap().0.pop().map(|e| e.item)
    }

    /// The most urgent item; waits for one. `None` once `stop` is cancelled.
    pub async fn pop(&self, stop: &CancellationToken) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            if let Some(item) = self.try_pop() {
                // Others may be waiting and more items may be queued.
                if !self.is_empty() {
                    self.notify.notify_one();
                }
                return Some(item);
            }
            tokio::select! {
                _ = notified => {}
                _ = stop.cancelled() => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn earliest_deadline_first_then_arrival_order() {
        let q = DeadlineQueue::default();
        q.push(30, "c");
        q.push(10, "a1");
        q.push(20, "b");
        q.push(10, "a2");
        let stop = CancellationToken::new();
        let mut out = Vec::new();
        for _ in 0..4 {
            out.push(q.pop(&stop).await.unwrap());
        }
        assert_eq!(out, ["a1", "a2", "b", "c"]);
    }

    #[tokio::test]
    async fn waiting_workers_wake_on_push_and_on_stop() {
        let q = std::sync::Arc::new(DeadlineQueue::default());
        let stop = CancellationToken::new();
        let (q2, s2) = (q.clone(), stop.clone());
        let waiter = tokio::spawn(async move { q2.pop(&s2).await });
        tokio::task::yield_now().await;
        q.push(1, 7);
        assert_eq!(waiter.await.unwrap(), Some(7));
        let (q3, s3) = (q.clone(), stop.clone());
        let waiter = tokio::spawn(async move { q3.pop(&s3).await });
        stop.cancel();
        assert_eq!(waiter.await.unwrap(), None);
    }
}
