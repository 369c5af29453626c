//! Rate-limiting a log line that can repeat in a tight loop (an accept error, a failed
//! reconcile): the first occurrence is logged, then at most one line per interval, which
//! says how many were left out in between.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Counts one occurrence; `Some(left out since the last line)` when it is to be logged.
    pub fn hit(&mut self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    fn hit_at(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_one_per_interval_with_the_count_left_out() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.hit_at(start), Some(0));
        for i in 1..1000 {
            assert_eq!(t.hit_at(start + Duration::from_millis(i)), None);
        }
        assert_eq!(t.hit_at(start + Duration::from_secs(11)), Some(999));
        assert_eq!(t.hit_at(start + Duration::from_secs(12)), None);
    }
}
