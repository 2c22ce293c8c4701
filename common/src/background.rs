//! Background work a process owns: every task is spawned on a tracker under a
//! cancellation token, so shutdown can stop it in a known order and know when it ended.
//!
//! Constructors never spawn. A component that needs a task hands back what to run and
//! the service's builder starts it here: as plain background (stopped last, by
//! cancellation), or in a [`TaskGroup`] that one step of the shutdown stops and waits
//! for (the click flusher, the change relay, the stats appliers), so each step sees the
//! work of the one before it finished.

use std::future::Future;
use std::time::Duration;

pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The root of a process's background work. Cloning shares it.
#[derive(Clone, Default, Debug)]
pub struct Background {
    tracker: TaskTracker,
    token: CancellationToken,
}

/// Runs `task` until it ends or `token` fires, whichever is first.
async fn until_cancelled<F: Future<Output = ()>>(token: CancellationToken, task: F) {
    tokio::select! {
        _ = token.cancelled() => {}
        _ = task => {}
    }
}

impl Background {
    pub fn new() -> Background {
        Background::default()
    }

    /// Runs `task` until it ends or shutdown cancels it. For work that holds nothing
    /// worth finishing (reporters, subscriptions, reloads, probes).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker
            .spawn(until_cancelled(self.token.clone(), task));
    }

    /// A group of tasks that one step of shutdown stops and waits for.
    pub fn group(&self) -> TaskGroup {
        TaskGroup {
            root: self.tracker.clone(),
            tracker: TaskTracker::new(),
            token: self.token.child_token(),
        }
    }

    /// Cancels every task still running and waits up to `deadline` for all of them
    /// to end. False when some did not end in time.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        let ended = tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok();
        if !ended {
            tracing::warn!(
                left = self.tracker.len(),
                "background tasks still running at shutdown"
            );
        }
        ended
    }
}

/// Tasks stopped together by one step of shutdown. Cancelling the root cancels them
/// too; the root's shutdown waits for them as for its own.
#[derive(Clone, Debug)]
pub struct TaskGroup {
    root: TaskTracker,
    tracker: TaskTracker,
    token: CancellationToken,
}

impl TaskGroup {
    /// Runs `task` until it ends or the group is stopped.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = until_cancelled(self.token.clone(), task);
        self.root.spawn(self.tracker.track_future(task));
    }

    /// Runs the task `make` builds from the group's token: a task that finishes what
    /// it holds once the token fires (a last flush), instead of being cut short.
    pub fn spawn_graceful<F, Fut>(&self, make: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let task = make(self.token.clone());
        self.root.spawn(self.tracker.track_future(task));
    }

    /// Signals the group and waits up to `deadline` for its tasks to end. False when
    /// some did not end in time (they are cancelled with the root later).
    pub async fn stop(&self, deadline: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_group_finishes_its_last_work_before_stop_returns() {
        let background = Background::new();
        let group = background.group();
        let flushed = Arc::new(AtomicU32::new(0));
        let seen = flushed.clone();
        group.spawn_graceful(|token| async move {
            token.cancelled().await;
            // The last flush takes a while; stop must wait for it.
            tokio::time::sleep(Duration::from_secs(2)).await;
            seen.fetch_add(1, Ordering::SeqCst);
        });
        let ticks = Arc::new(AtomicU32::new(0));
        let counter = ticks.clone();
        background.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(group.stop(Duration::from_secs(5)).await);
        assert_eq!(flushed.load(Ordering::SeqCst), 1);
        // The plain task kept going through the group's stop, and ends with the root.
        assert!(ticks.load(Ordering::SeqCst) >= 10);
        assert!(background.shutdown(Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_group_is_reported_and_then_cancelled_by_the_root() {
        let background = Background::new();
        let group = background.group();
        group.spawn_graceful(|_ignores_its_token| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        assert!(!group.stop(Duration::from_secs(1)).await);
        // The root cannot cancel a task that ignores its token either: it says so.
        assert!(!background.shutdown(Duration::from_secs(1)).await);
        let plain = background.group();
        plain.spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
        assert!(plain.stop(Duration::from_millis(10)).await);
    }
}
