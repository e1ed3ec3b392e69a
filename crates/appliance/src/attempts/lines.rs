//! Which boot attempt a line of the machine's logs belongs to: the newest attempt that had
//! begun when the line arrived (a line between two boots is the earlier boot's: its system was
//! running, or dying). A line from before the oldest attempt belongs to none. Pure.

use std::time::SystemTime;

use crate::attempts::fold::Attempt;

/// The index in `attempts` (newest first) of the attempt a line that arrived `at` belongs to.
pub fn attempt_of(attempts: &[Attempt], at: SystemTime) -> Option<usize> {
    attempts.iter().position(|a| a.started <= at)
}

/// `lines` (any order) grouped by attempt: one list per attempt of `attempts` (newest first),
/// each in the order given.
pub fn group_by_attempt<'a, T>(
    attempts: &[Attempt],
    lines: &'a [T],
    at: impl Fn(&T) -> SystemTime,
) -> Vec<Vec<&'a T>> {
    let mut groups: Vec<Vec<&T>> = attempts.iter().map(|_| Vec::new()).collect();
    for line in lines {
        if let Some(group) = attempt_of(attempts, at(line)).and_then(|i| groups.get_mut(i)) {
            group.push(line);
        }
    }
    groups
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::time::Duration;

    use flakeboot_catalogue::{BootEvent, BootStage, Outcome};

    use super::*;
    use crate::attempts::attempts;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn dhcp(secs: u64) -> BootEvent {
        let mut e = BootEvent::new(BootStage::Dhcp, Outcome::Ok, "router offer");
        e.at = at(secs);
        e
    }

    #[test]
    fn lines_belong_to_the_boot_under_way_when_they_came() {
        // Two boots an hour apart.
        let list = attempts(&[dhcp(100), dhcp(3700)]);
        assert_eq!(list.len(), 2);
        assert_eq!(attempt_of(&list, at(50)), None, "before any boot");
        assert_eq!(attempt_of(&list, at(100)), Some(1));
        assert_eq!(
            attempt_of(&list, at(2000)),
            Some(1),
            "the first system running"
        );
        assert_eq!(attempt_of(&list, at(3700)), Some(0));
        assert_eq!(attempt_of(&list, at(9000)), Some(0));
        let lines = [at(50), at(200), at(3800), at(300)];
        let groups = group_by_attempt(&list, &lines, |t| *t);
        assert_eq!(groups, vec![vec![&at(3800)], vec![&at(200), &at(300)]]);
        assert!(group_by_attempt(&[], &lines, |t| *t).is_empty());
    }
}
