use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use super::*;

fn fast() -> PasswordHasher {
    PasswordHasher::new(ScryptParams::INSECURE_FAST).unwrap()
}

#[tokio::test]
async fn hash_then_verify() {
    let h = fast();
    let phc = h.hash(&Password::new("Tr0ub4dor&3")).await.unwrap();
    assert!(phc.starts_with("$scrypt$ln=4,r=8,p=1$"), "{phc}");
    assert!(
        h.verify(&Password::new("Tr0ub4dor&3"), Some(&phc))
            .await
            .unwrap()
    );
    assert!(
        !h.verify(&Password::new("tr0ub4dor&3"), Some(&phc))
            .await
            .unwrap()
    );
    let again = h.hash(&Password::new("Tr0ub4dor&3")).await.unwrap();
    assert_ne!(phc, again, "salts are random");
}

#[tokio::test]
async fn known_answer_from_passlib() {
    // https://passlib.readthedocs.io/en/stable/lib/passlib.hash.scrypt.html
    let phc =
        "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
    let h = fast();
    assert!(
        h.verify(&Password::new("password"), Some(phc))
            .await
            .unwrap()
    );
    assert!(
        !h.verify(&Password::new("passwore"), Some(phc))
            .await
            .unwrap()
    );
    assert!(
        h.needs_rehash(phc),
        "ln=16,p=1 differs from the configured ln=4"
    );
}

#[tokio::test]
async fn unknown_user_and_garbage_never_match() {
    let h = fast();
    assert!(!h.verify(&Password::new(""), None).await.unwrap());
    for stored in [
        "",
        "!unusable",
        "pbkdf2_sha256$1000000$salt$hash",
        "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA",
    ] {
        assert!(
            !h.verify(&Password::new("x"), Some(stored)).await.unwrap(),
            "{stored}"
        );
        assert!(h.needs_rehash(stored), "{stored}");
    }
}

#[tokio::test]
async fn needs_rehash_when_parameters_change() {
    let weak = fast();
    let strong = PasswordHasher::new(ScryptParams {
        log_n: 6,
        r: 8,
        p: 1,
    })
    .unwrap();
    let phc = weak
        .hash(&Password::new("a long passphrase"))
        .await
        .unwrap();
    assert!(!weak.needs_rehash(&phc));
    assert!(strong.needs_rehash(&phc));
    // The old hash still verifies under the new configuration: upgrade happens on login.
    assert!(
        strong
            .verify(&Password::new("a long passphrase"), Some(&phc))
            .await
            .unwrap()
    );
}

#[test]
fn invalid_parameters_are_refused() {
    assert!(matches!(
        PasswordHasher::new(ScryptParams {
            log_n: 10,
            r: 0,
            p: 1
        }),
        Err(PasswordError::InvalidParams)
    ));
    assert_eq!(ScryptParams::PRODUCTION.memory_bytes(), 32 << 20);
}

/// 32 hashes at once never run more than the semaphore's width at a time, and a
/// ticker on the same runtime keeps ticking while they run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_and_runtime_stays_responsive() {
    let width = 2;
    // Heavier than INSECURE_FAST so the hashes overlap for a measurable time.
    let h = PasswordHasher::with_concurrency(
        ScryptParams {
            log_n: 12,
            r: 8,
            p: 1,
        },
        width,
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let ticks = Arc::new(AtomicU64::new(0));
    let max_gap = Arc::new(AtomicU64::new(0));
    let ticker = {
        let (stop, ticks, max_gap) = (stop.clone(), ticks.clone(), max_gap.clone());
        tokio::spawn(async move {
            let mut last = tokio::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let now = tokio::time::Instant::now();
                let gap = u64::try_from((now - last).as_millis()).unwrap_or(u64::MAX);
                max_gap.fetch_max(gap, Ordering::Relaxed);
                ticks.fetch_add(1, Ordering::Relaxed);
                last = now;
            }
        })
    };

    let started = std::time::Instant::now();
    let jobs: Vec<_> = (0..32)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move { h.hash(&Password::new(format!("pw-{i}"))).await })
        })
        .collect();
    for j in jobs {
        j.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    ticker.await.unwrap();

    let stats = h.stats();
    assert_eq!(stats.running, 0);
    assert_eq!(stats.completed, 32);
    assert!(stats.peak_running <= width, "{stats:?}");
    assert!(stats.peak_running >= 1, "{stats:?}");
    // The ticker ran throughout: on a blocked runtime it would have stalled for the
    // whole duration of the hashes.
    let gap = Duration::from_millis(max_gap.load(Ordering::Relaxed));
    assert!(ticks.load(Ordering::Relaxed) > 0);
    assert!(
        gap < elapsed / 2,
        "ticker stalled for {gap:?} during {elapsed:?} of hashing"
    );
}

/// The KDF threads run at the lowest priority (nice 19), so the runtime goes first.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn kdf_threads_run_at_the_lowest_priority() {
    let h = PasswordHasher::with_concurrency(ScryptParams::INSECURE_FAST, 2).unwrap();
    h.hash(&Password::new("warm the pool up")).await.unwrap();
    // Other tests in this process start pools too; a thread of theirs may be named
    // but not yet lowered. Read again for a moment before judging.
    let read = || {
        let mut nice = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim().starts_with("oauth-kdf") {
                let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
                    continue; // the thread ended meanwhile
                };
                // Fields after the parenthesised name; nice is field 19 of stat.
                let rest = &stat[stat.rfind(')').unwrap() + 2..];
                nice.push(rest.split(' ').nth(16).unwrap().parse::<i32>().unwrap());
            }
        }
        nice
    };
    let mut nice = read();
    // A thread just spawned names itself when it first runs: on a busy machine
    // the second of the pool may not have yet.
    for _ in 0..300 {
        if nice.len() >= 2 && nice.iter().all(|&n| n == 19) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        nice = read();
    }
    assert!(nice.len() >= 2, "{nice:?}");
    assert!(nice.iter().all(|&n| n == 19), "{nice:?}");
}

/// Polls `fut` once, so whatever it does before its first await has happened.
async fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) {
    tokio::select! {
        biased;
        _ = fut => panic!("finished on its first poll"),
        () = std::future::ready(()) => {}
    }
}

/// With one thread and room for one waiting job, a third call is refused at once
/// with `Overloaded` (and counted), while the running and the queued job finish; once
/// the queue drains, calls are accepted again.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_refuses_at_once() {
    let h = PasswordHasher::with_limits(ScryptParams::INSECURE_FAST, 1, 1).unwrap();
    // A "slow KDF": the one thread is held until the test lets go.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let mut running = Box::pin(h.run(pool::Lane::SignIn, move || held.recv().is_ok()));
    poll_once(&mut running).await;
    while h.stats().running == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let queued_password = Password::new("queued");
    let mut queued = Box::pin(h.hash(&queued_password));
    poll_once(&mut queued).await;

    let started = std::time::Instant::now();
    let refused = h.hash(&Password::new("one too many")).await;
    assert!(
        matches!(refused, Err(PasswordError::Overloaded)),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(
        refused.unwrap_err().retry_after(),
        Some(Duration::from_secs(1))
    );
    let stats = h.stats();
    assert_eq!((stats.queue_bound, stats.refused), (1, 1));

    release.send(()).unwrap();
    assert!(running.await.unwrap());
    assert!(queued.await.is_ok());
    assert!(h.hash(&Password::new("after the burst")).await.is_ok());
    assert_eq!(PasswordHasher::default_queue(2), 64);
    assert_eq!(PasswordHasher::default_queue(16), 128);
}

/// Waits until `n` KDF runs execute (or fails after 5 s).
async fn until_running(h: &PasswordHasher, n: usize) {
    for _ in 0..5000 {
        if h.stats().running >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never reached {n} running: {:?}", h.stats());
}

/// Issue 19, hole 7: client secrets never take the last thread. With width 2, a
/// secret hash holding one thread and another waiting, a sign-in's verification
/// still runs at once on the second thread; secrets' own queue, full, refuses
/// secrets while sign-ins are still accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secrets_leave_a_thread_to_sign_ins() {
    let h = PasswordHasher::with_limits(ScryptParams::INSECURE_FAST, 2, 2).unwrap();
    let phc = h.hash(&Password::new("pw")).await.unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Arc::new(std::sync::Mutex::new(held));
    // Three "slow secrets": one runs, two wait (the lane's queue holds two).
    let mut secrets = Vec::new();
    for i in 0..3 {
        let held = Arc::clone(&held);
        let mut job = Box::pin(h.run(pool::Lane::Secrets, move || {
            held.lock().unwrap().recv().is_ok()
        }));
        poll_once(&mut job).await;
        secrets.push(job);
        if i == 0 {
            until_running(&h, 1).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.stats().running, 1, "a second secret took the last thread");
    let refused = h.hash_client_secret(&Password::new("one too many")).await;
    assert!(
        matches!(refused, Err(PasswordError::Overloaded)),
        "{refused:?}"
    );

    let started = std::time::Instant::now();
    let ok = tokio::time::timeout(
        Duration::from_secs(5),
        h.verify(&Password::new("pw"), Some(&phc)),
    )
    .await
    .expect("the sign-in waited behind the secrets");
    assert!(ok.unwrap());
    eprintln!(
        "sign-in verified in {:?} with secrets holding the pool",
        started.elapsed()
    );
    for _ in 0..3 {
        release.send(()).unwrap();
    }
    for job in secrets {
        assert!(job.await.unwrap());
    }
    assert_eq!(h.stats().peak_secrets, 1, "{:?}", h.stats());
}

/// With width 1, a secret waits behind every sign-in queued before the thread
/// comes free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_thread_secrets_wait_behind_sign_ins() {
    let h = PasswordHasher::with_limits(ScryptParams::INSECURE_FAST, 1, 8).unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let mut first = Box::pin(h.run(pool::Lane::SignIn, move || held.recv().is_ok()));
    poll_once(&mut first).await;
    until_running(&h, 1).await;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let job = |lane, name: &'static str| {
        let order = Arc::clone(&order);
        h.run(lane, move || order.lock().unwrap().push(name))
    };
    // The secret is queued first, the sign-ins after it.
    let mut secret = Box::pin(job(pool::Lane::Secrets, "secret"));
    poll_once(&mut secret).await;
    let mut a = Box::pin(job(pool::Lane::SignIn, "sign-in a"));
    poll_once(&mut a).await;
    let mut b = Box::pin(job(pool::Lane::SignIn, "sign-in b"));
    poll_once(&mut b).await;
    release.send(()).unwrap();
    assert!(first.await.unwrap());
    secret.await.unwrap();
    a.await.unwrap();
    b.await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["sign-in a", "sign-in b", "secret"]);
}

/// Issue 19: timing must not tell an imported account (Django's PBKDF2, not yet
/// rehashed) from an unknown email. Once the hasher knows such a hash is present,
/// the unknown-email check costs what that hash's check costs.
#[cfg(feature = "django")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_emails_cost_as_much_as_the_slowest_legacy_hash() {
    use base64::Engine as _;
    let h = PasswordHasher::with_concurrency(ScryptParams::INSECURE_FAST, 1).unwrap();
    let iterations = 600_000;
    let stored = format!(
        "pbkdf2_sha256${iterations}$importedsalt${}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let wrong = Password::new("not the password");
    // Median times of the unknown-email check and of the imported hash's check,
    // measured alternately.
    let medians = |h: PasswordHasher| {
        let (stored, wrong) = (stored.clone(), wrong.clone());
        async move {
            let (mut unknown, mut legacy) = (Vec::new(), Vec::new());
            for _ in 0..7 {
                let t = std::time::Instant::now();
                assert!(!h.verify(&wrong, None).await.unwrap());
                unknown.push(t.elapsed());
                let t = std::time::Instant::now();
                assert!(!h.verify(&wrong, Some(&stored)).await.unwrap());
                legacy.push(t.elapsed());
            }
            unknown.sort();
            legacy.sort();
            (unknown[3], legacy[3])
        }
    };
    let (unknown, legacy) = medians(h.clone()).await;
    eprintln!("before: unknown email {unknown:?}, imported pbkdf2 ({iterations}) {legacy:?}");
    assert!(unknown * 2 < legacy, "{unknown:?} vs {legacy:?}");
    assert_eq!(h.unknown_user_check(), "scrypt");

    // Scrypt hashes and garbage teach nothing; the legacy one does.
    let scrypt = h.hash(&Password::new("pw")).await.unwrap();
    h.learn_legacy_hashes([scrypt.as_str(), "!unusable", "md5$x$y"])
        .await;
    assert_eq!(h.unknown_user_check(), "scrypt");
    let cheaper = stored.replace(&format!("${iterations}$"), "$1000$");
    h.learn_legacy_hashes([cheaper.as_str(), stored.as_str()])
        .await;
    assert_eq!(h.unknown_user_check(), "pbkdf2_sha256");

    let (unknown, legacy) = medians(h.clone()).await;
    let gap = unknown.abs_diff(legacy).as_secs_f64() / legacy.as_secs_f64();
    eprintln!(
        "after: unknown email {unknown:?}, imported pbkdf2 ({iterations}) {legacy:?}, gap {:.1} %",
        gap * 100.0
    );
    assert!(gap < 0.3, "{unknown:?} vs {legacy:?}");

    // A fresh hasher (the next start-up) with no legacy hash left: scrypt alone.
    let next = PasswordHasher::with_concurrency(ScryptParams::INSECURE_FAST, 1).unwrap();
    next.learn_legacy_hashes(Vec::<String>::new()).await;
    assert_eq!(next.unknown_user_check(), "scrypt");
}
