//! When an unanswered copy is given up: its timeout after the whole body was handed to it,
//! staggered so that copies which started together do not all end in one timer tick.
//!
//! A dead mirror holds every copy until its timeout, so a burst of requests fills the in-flight
//! cap within milliseconds and that cohort times out together. Ending a copy closes its
//! connection, about 20 µs of the proxy thread over loopback (the kernel runs the FIN and the
//! peer's side inline); 1,024 of them in one tick stalled production requests for some 20 ms,
//! and the cohort refilled as densely. Spread over a quarter of a second, they end in 26 groups
//! of about 40, 10 ms apart (the coarse timer's resolution, below), under a millisecond each.
//!
//! The deadline is a timer of Pingora's coarse wheel (10 ms buckets, fired by its own thread),
//! not a tokio sleep. Almost every copy is answered long before its deadline, and registering a
//! tokio timer earlier than any other wakes the runtime's driver (an eventfd write, one more
//! system call for every mirrored request); the wheel's registration is a map insert, and a
//! cancelled copy's bucket fires later with nobody listening. A bucket stays in the wheel until
//! it fires, one per 10 ms of the window, so timeouts above [`COARSE_UP_TO`] use tokio's timer.

use std::time::Duration;

use tokio::sync::watch;

use super::exchange::State;

/// The widest spread of a cohort's deadlines.
const MAX_STAGGER: Duration = Duration::from_millis(256);
/// Offsets within the spread: one per millisecond at the widest.
const STAGGER_STEPS: u32 = 256;
/// The longest deadline kept on the coarse wheel: at most 6,000 buckets per proxy thread (about
/// 100 bytes each) wait there however many copies are cancelled.
const COARSE_UP_TO: Duration = Duration::from_secs(60);

/// A copy's deadline, counted from the end of its body: `timeout`, plus up to a twentieth of it
/// (at most [`MAX_STAGGER`]) set by the copy's admission ordinal, so consecutive copies are
/// spread evenly. Never earlier than `timeout`: an answer that would arrive in time still counts.
pub(super) fn staggered(timeout: Duration, ordinal: u32) -> Duration {
    let width = (timeout / 20).min(MAX_STAGGER);
    timeout + width * (ordinal % STAGGER_STEPS) / STAGGER_STEPS
}

/// Resolves `after` the body is complete; never while it is still streaming (the byte budget
/// bounds that phase instead).
pub(super) async fn deadline(state: &mut watch::Receiver<State>, after: Duration) {
    if state.wait_for(|s| *s == State::BodyComplete).await.is_err() {
        std::future::pending::<()>().await;
    }
    if after <= COARSE_UP_TO {
        pingora_timeout::fast_timeout::fast_sleep(after).await;
    } else {
        tokio::time::sleep(after).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_deadline_is_never_before_the_timeout_and_at_most_a_twentieth_after() {
        for timeout_ms in [1, 50, 200, 2_000, 10_000, 60_000] {
            let timeout = Duration::from_millis(timeout_ms);
            let most = timeout + (timeout / 20).min(MAX_STAGGER);
            for ordinal in (0..1_000).chain([u32::MAX - 1, u32::MAX]) {
                let d = staggered(timeout, ordinal);
                assert!(d >= timeout && d <= most, "{timeout:?} #{ordinal}: {d:?}");
            }
        }
    }

    #[test]
    fn a_cohort_of_copies_ends_spread_over_a_quarter_second() {
        // 1,024 copies admitted back to back against a dead mirror, 10 s timeout.
        let timeout = Duration::from_secs(10);
        let mut per_ms: BTreeMap<u128, u32> = BTreeMap::new();
        for ordinal in 5_000..6_024 {
            *per_ms
                .entry((staggered(timeout, ordinal) - timeout).as_millis())
                .or_default() += 1;
        }
        assert_eq!(
            per_ms.len(),
            256,
            "one offset per millisecond of the spread"
        );
        assert!(per_ms.values().all(|&n| n == 4), "{per_ms:?}");
        assert_eq!(per_ms.keys().next_back(), Some(&255));
    }

    #[test]
    fn short_timeouts_are_stretched_by_little() {
        let timeout = Duration::from_millis(100);
        let latest = (0..STAGGER_STEPS)
            .map(|o| staggered(timeout, o))
            .max()
            .unwrap_or_default();
        assert!(latest < Duration::from_millis(105), "{latest:?}");
    }

    #[tokio::test]
    async fn the_deadline_counts_from_the_end_of_the_body() {
        let (tx, mut rx) = watch::channel(State::Streaming);
        let after = Duration::from_millis(50);
        let streaming =
            tokio::time::timeout(Duration::from_millis(200), deadline(&mut rx, after)).await;
        assert!(streaming.is_err(), "no deadline while the body streams");
        tx.send_replace(State::BodyComplete);
        let complete = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), deadline(&mut rx, after))
            .await
            .expect("the deadline passes once the body is complete");
        assert!(complete.elapsed() >= after);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_beyond_the_coarse_window_use_tokio_timers() {
        // Paused, tokio's clock jumps to its next timer: only a tokio sleep can end here. A long
        // deadline must not sit in the coarse wheel, whose buckets live until they fire.
        let (_tx, mut rx) = watch::channel(State::BodyComplete);
        let long = COARSE_UP_TO + Duration::from_secs(1);
        tokio::time::timeout(Duration::from_secs(3600), deadline(&mut rx, long))
            .await
            .expect("a deadline beyond the coarse window is a tokio timer");
        let (_tx, mut rx) = watch::channel(State::BodyComplete);
        let coarse = tokio::time::timeout(COARSE_UP_TO, deadline(&mut rx, COARSE_UP_TO)).await;
        assert!(
            coarse.is_err(),
            "a deadline within the window is on the coarse wheel"
        );
    }
}
