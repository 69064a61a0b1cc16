//! The threads that run the KDF: as many as the hasher's width, at the lowest
//! scheduling priority.
//!
//! A KDF run is minutes of CPU per hundred logins; everything else the server does
//! is microseconds. On their own low-priority threads the hashes still take every
//! idle cycle — logins saturate the CPUs — but the moment the async runtime has a
//! request to serve, the scheduler runs it first, so introspection latency does not
//! grow by a scheduling quantum while logins run. Their count is also the bound on
//! concurrent runs, and so on the memory the KDF holds.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads exit once the pool (its job sender) is dropped and the queue is empty.
pub(super) struct KdfPool {
    jobs: mpsc::Sender<Job>,
}

impl KdfPool {
    pub(super) fn new(width: usize) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
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

    /// Queues a job; `Err` only when every thread has gone.
    pub(super) fn submit(&self, job: Job) -> Result<(), ()> {
        self.jobs.send(job).map_err(|_| ())
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
