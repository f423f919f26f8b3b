//! Group commit: store jobs hand their work here item by item, and
//! whichever job finds no group running leads one: it takes every item
//! waiting (up to a limit) and does them together, then the next group,
//! until none is waiting. While one group runs, the next gathers, so a dock
//! of small files pays a few journal commits per group instead of several
//! per file, and a lone file pays what it did before.
//!
//! Two stages use it: the archive's commit of staged copies
//! ([`crate::store::Archive::persist_all`]: fsyncs, renames, directory
//! fsyncs) and the index rows of the files stored (one transaction).

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Staged copies made durable together at most.
pub const MAX_COPIES: usize = 256;
/// Stored files indexed in one transaction at most.
pub const MAX_ROWS: usize = 256;

type Waiter<I, O> = (I, oneshot::Sender<O>);

pub struct Batcher<I, O> {
    state: Mutex<State<I, O>>,
    max: usize,
}

struct State<I, O> {
    waiting: Vec<Waiter<I, O>>,
    leading: bool,
}

/// Gives up the lead if the leader stops early (a panic), so that the next
/// job to arrive leads. (Store jobs are never cancelled: they run to the
/// end, or the process ends.)
struct Lead<'a, I, O> {
    batcher: &'a Batcher<I, O>,
    active: bool,
}

impl<I, O> Drop for Lead<'_, I, O> {
    fn drop(&mut self) {
        if self.active {
            self.batcher.state.lock().unwrap_or_else(|p| p.into_inner()).leading = false;
        }
    }
}

impl<I, O> Batcher<I, O> {
    pub fn new(max: usize) -> Self {
        Batcher { state: Mutex::new(State { waiting: Vec::new(), leading: false }), max: max.max(1) }
    }

    /// Do `item` in the next group. `work` does a whole group and returns
    /// one output per item, in order; `None` if it returned too few (a
    /// failure the caller reports as its own).
    pub async fn submit<F, Fut>(&self, item: I, work: F) -> Option<O>
    where
        F: Fn(Vec<I>) -> Fut,
        Fut: Future<Output = Vec<O>>,
    {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut s = self.state.lock().unwrap();
            s.waiting.push((item, tx));
            !std::mem::replace(&mut s.leading, true)
        };
        if lead {
            let mut lead = Lead { batcher: self, active: true };
            loop {
                let group: Vec<Waiter<I, O>> = {
                    let mut s = self.state.lock().unwrap();
                    if s.waiting.is_empty() {
                        // Under the same lock as the pushes: a job that
                        // arrives after this leads itself.
                        s.leading = false;
                        lead.active = false;
                        break;
                    }
                    let n = s.waiting.len().min(self.max);
                    s.waiting.drain(..n).collect()
                };
                let (items, replies): (Vec<I>, Vec<_>) = group.into_iter().unzip();
                for (reply, out) in replies.into_iter().zip(work(items).await) {
                    let _ = reply.send(out);
                }
            }
        }
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_items_are_done_in_groups_each_answered_once() {
        let b = Arc::new(Batcher::<u32, u32>::new(8));
        let groups = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..100u32 {
            let (b, groups) = (b.clone(), groups.clone());
            tasks.push(tokio::spawn(async move {
                b.submit(i, |items: Vec<u32>| {
                    let groups = groups.clone();
                    async move {
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        groups.lock().unwrap().push(items.len());
                        items.iter().map(|x| x * 10).collect()
                    }
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), Some(i as u32 * 10), "each item gets its own answer");
        }
        let groups = groups.lock().unwrap();
        assert_eq!(groups.iter().sum::<usize>(), 100);
        assert!(groups.iter().all(|&n| n <= 8), "no group above the limit: {groups:?}");
        assert!(groups.len() < 100, "items were grouped: {groups:?}");
    }

    #[tokio::test]
    async fn a_short_answer_fails_only_the_items_left_without_one() {
        let b = Batcher::<u32, u32>::new(8);
        assert_eq!(b.submit(1, |_items| async { Vec::new() }).await, None);
        // The lead was given up: the next item is done.
        assert_eq!(b.submit(2, |items: Vec<u32>| async move { items }).await, Some(2));
    }
}
