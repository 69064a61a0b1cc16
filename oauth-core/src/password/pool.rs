//! The threads that run the KDF: as many as the hasher's width, at the lowest
//! scheduling priority.
//!
//! A KDF run is minutes of CPU per hundred logins; everything else the server does
//! is microseconds. On their own low-priority threads the hashes still take every
//! idle cycle — logins saturate the CPUs — but the moment the async runtime has a
//! request to serve, the scheduler runs it first, so introspection latency does not
//! grow by a scheduling quantum while logins run. Their count is also the bound on
//! concurrent runs, and so on the memory the KDF holds. The queue in front of them
//! is bounded too: past the bound a job is refused at once instead of waiting, so a
//! login flood costs neither unbounded memory nor unbounded latency.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads exit once the pool (its job sender) is dropped and the queue is empty.
pub(super) struct KdfPool {
    jobs: mpsc::SyncSender<Job>,
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// `queue` jobs are already waiting.
    Full,
    /// Every thread has gone.
    Gone,
}

impl KdfPool {
    /// `width` threads, and at most `queue` jobs waiting for one of them.
    pub(super) fn new(width: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(queue);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..width {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("oauth-kdf-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match job {
                            // A panicking job must not take its thread with it.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                            }
                            Err(_) => break,
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Queues a job without waiting: refused when the queue is full or every thread
    /// has gone.
    pub(super) fn submit(&self, job: Job) -> Result<(), Refused> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Refused::Full,
            mpsc::TrySendError::Disconnected(_) => Refused::Gone,
        })
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
