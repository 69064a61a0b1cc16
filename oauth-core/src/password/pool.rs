//! The threads that run the KDF: as many as the hasher's width, at the lowest
//! scheduling priority.
//!
//! A KDF run is minutes of CPU per hundred logins; everything else the server does
//! is microseconds. On their own low-priority threads the hashes still take every
//! idle cycle — logins saturate the CPUs — but the moment the async runtime has a
//! request to serve, the scheduler runs it first, so introspection latency does not
//! grow by a scheduling quantum while logins run. Their count is also the bound on
//! concurrent runs, and so on the memory the KDF holds. The queues in front of them
//! are bounded too: past the bound a job is refused at once instead of waiting, so a
//! login flood costs neither unbounded memory nor unbounded latency.
//!
//! Two lanes share the threads. [`Lane::SignIn`] (password checks, and everything
//! but the hashing of client secrets) is served first; [`Lane::Secrets`] (a client
//! secret hashed for the application pages) may hold at most `width − 1` threads
//! (one when the width is one), so one thread is always free for a sign-in, and a
//! waiting sign-in always goes before a waiting secret. Each lane has its own queue
//! bound: a flood of secrets can fill its own queue, never the sign-ins'.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Which share of the threads a job runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// Sign-ins and every other password check: served first, on any thread.
    SignIn,
    /// Client secrets: at most `width − 1` threads (at least one).
    Secrets,
}

#[derive(Default)]
struct Queues {
    sign_in: VecDeque<Job>,
    secrets: VecDeque<Job>,
    /// Secret jobs running now.
    secrets_running: usize,
    /// The pool was dropped: threads exit once the queues are empty.
    closed: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
    /// The most jobs that may wait in each lane.
    bound: usize,
    /// The most secret jobs that may run at once.
    secrets_width: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next job for a free thread (a sign-in first; a secret only while fewer
    /// than `secrets_width` run), or `None` once the pool is closed and drained.
    fn next(&self) -> Option<(Job, Lane)> {
        let mut q = self.lock();
        loop {
            if let Some(job) = q.sign_in.pop_front() {
                return Some((job, Lane::SignIn));
            }
            if q.secrets_running < self.secrets_width
                && let Some(job) = q.secrets.pop_front()
            {
                q.secrets_running += 1;
                return Some((job, Lane::Secrets));
            }
            if q.closed && q.sign_in.is_empty() && q.secrets.is_empty() {
                return None;
            }
            q = self.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Threads exit once the pool is dropped and the queues are empty.
pub(super) struct KdfPool {
    shared: Arc<Shared>,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// `queue` jobs are already waiting in the job's lane.
    Full,
}

impl KdfPool {
    /// `width` threads, and at most `queue` jobs waiting in each lane.
    pub(super) fn new(width: usize, queue: usize) -> std::io::Result<Self> {
        let width = width.max(1);
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
            bound: queue.max(1),
            secrets_width: width.saturating_sub(1).max(1),
        });
        for i in 0..width {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("oauth-kdf-{i}"))
                .spawn(move || {
                    lower_priority();
                    while let Some((job, lane)) = shared.next() {
                        // A panicking job must not take its thread with it.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                        if lane == Lane::Secrets {
                            shared.lock().secrets_running -= 1;
                            // A thread waiting with secrets queued may take one now.
                            shared.ready.notify_all();
                        }
                    }
                })?;
        }
        Ok(Self { shared })
    }

    /// Queues a job in `lane` without waiting: refused when that lane's queue is full.
    pub(super) fn submit(&self, lane: Lane, job: Job) -> Result<(), Refused> {
        let mut q = self.shared.lock();
        let queue = match lane {
            Lane::SignIn => &mut q.sign_in,
            Lane::Secrets => &mut q.secrets,
        };
        if queue.len() >= self.shared.bound {
            return Err(Refused::Full);
        }
        queue.push_back(job);
        drop(q);
        // Every idle thread re-checks: one that may not take a secret must not
        // swallow the wake-up a sign-in needs.
        self.shared.ready.notify_all();
        Ok(())
    }
}

impl Drop for KdfPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// Lowers the calling thread to the lowest priority of its scheduling policy (nice
/// 19 under Linux's default policy). Best effort: lowering needs no privilege, and a
/// platform that refuses leaves the thread at normal priority.
fn lower_priority() {
    #[cfg(unix)]
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::debug!(error = ?e, "KDF thread stays at normal priority");
    }
}
