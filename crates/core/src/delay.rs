//! Delay estimation: when the visits of one practitioner's day will really
//! start, from how far the earlier ones have got. Pure: the scheduler feeds
//! it the day's visits and "now".
//!
//! A visit that has begun (arrived, checked in, or in one of the in-progress
//! states) and is not finished holds the practitioner until its end, or
//! until now when it runs over. A visit yet to begin starts at its own start
//! or when the practitioner is free, whichever is later, and then holds the
//! practitioner for its own length. Finished, cancelled and missed visits
//! hold nothing.

use crate::AppointmentId;
use crate::schedule::Interval;
use crate::status::AppointmentStatus;
use jiff::Timestamp;

/// One visit of the day, as the estimate needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Visit {
    pub id: AppointmentId,
    pub interval: Interval,
    pub status: AppointmentStatus,
}

/// Whether a visit in `status` has begun and is not over.
fn under_way(status: AppointmentStatus) -> bool {
    use AppointmentStatus as S;
    matches!(
        status,
        S::Arrived
            | S::CheckedIn
            | S::IntakeReady
            | S::IntakeInProgress
            | S::ExamReady
            | S::ExamInProgress
            | S::DischargeReady
            | S::DischargeInProgress
    )
}

/// Whether a visit in `status` is still to begin.
fn to_come(status: AppointmentStatus) -> bool {
    use AppointmentStatus as S;
    matches!(status, S::Proposed | S::Pending | S::Booked)
}

/// The expected start of each visit yet to begin, in start order, for one
/// practitioner's `visits` of a day (any order) at `now`.
pub fn expected_starts(visits: &[Visit], now: Timestamp) -> Vec<(AppointmentId, Timestamp)> {
    let mut day: Vec<&Visit> = visits.iter().collect();
    day.sort_by_key(|v| (v.interval.start, v.id));
    let mut free: Option<Timestamp> = None;
    let mut out = Vec::new();
    for v in day {
        let length = v.interval.end.duration_since(v.interval.start);
        if under_way(v.status) {
            let until = v.interval.end.max(now);
            free = Some(free.map_or(until, |f| f.max(until)));
        } else if to_come(v.status) {
            let start = free.map_or(v.interval.start, |f| f.max(v.interval.start));
            out.push((v.id, start));
            free = start.checked_add(length).ok();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn visit(id: i64, start: &str, end: &str, status: AppointmentStatus) -> Visit {
        Visit { id: AppointmentId(id), interval: Interval { start: t(start), end: t(end) }, status }
    }

    #[test]
    fn a_visit_running_over_pushes_the_next_ones_back() {
        let day = [
            visit(1, "2030-01-01T09:00:00Z", "2030-01-01T09:30:00Z", AppointmentStatus::Arrived),
            visit(2, "2030-01-01T09:30:00Z", "2030-01-01T10:00:00Z", AppointmentStatus::Booked),
            visit(3, "2030-01-01T10:00:00Z", "2030-01-01T10:30:00Z", AppointmentStatus::Booked),
            visit(4, "2030-01-01T12:00:00Z", "2030-01-01T12:30:00Z", AppointmentStatus::Booked),
        ];
        let got = expected_starts(&day, t("2030-01-01T09:50:00Z"));
        assert_eq!(
            got,
            [
                (AppointmentId(2), t("2030-01-01T09:50:00Z")),
                (AppointmentId(3), t("2030-01-01T10:20:00Z")),
                (AppointmentId(4), t("2030-01-01T12:00:00Z")),
            ]
        );
    }

    #[test]
    fn finished_and_cancelled_visits_hold_nothing() {
        let day = [
            visit(1, "2030-01-01T09:00:00Z", "2030-01-01T09:30:00Z", AppointmentStatus::Completed),
            visit(2, "2030-01-01T09:30:00Z", "2030-01-01T10:00:00Z", AppointmentStatus::Cancelled),
            visit(3, "2030-01-01T10:00:00Z", "2030-01-01T10:30:00Z", AppointmentStatus::Booked),
        ];
        assert_eq!(expected_starts(&day, t("2030-01-01T11:00:00Z")), [(AppointmentId(3), t("2030-01-01T10:00:00Z"))]);
    }

    proptest! {
        #[test]
        fn no_visit_is_expected_before_its_start_and_the_order_is_kept(
            lengths in proptest::collection::vec((0i64..120, 1i64..90, 0u8..4), 1..12),
            now_offset in 0i64..600,
        ) {
            let base = t("2030-01-01T08:00:00Z");
            let mut at = base;
            let statuses = [AppointmentStatus::Booked, AppointmentStatus::Arrived, AppointmentStatus::Completed, AppointmentStatus::Cancelled];
            let day: Vec<Visit> = lengths.iter().enumerate().map(|(i, (gap, len, s))| {
                let start = at + jiff::SignedDuration::from_mins(*gap);
                let end = start + jiff::SignedDuration::from_mins(*len);
                at = end;
                Visit { id: AppointmentId(i as i64 + 1), interval: Interval { start, end }, status: statuses[*s as usize] }
            }).collect();
            let got = expected_starts(&day, base + jiff::SignedDuration::from_mins(now_offset));
            for (id, expected) in &got {
                let v = day.iter().find(|v| v.id == *id).unwrap();
                prop_assert!(*expected >= v.interval.start);
            }
            for pair in got.windows(2) {
                prop_assert!(pair[0].1 <= pair[1].1);
            }
        }
    }
}
