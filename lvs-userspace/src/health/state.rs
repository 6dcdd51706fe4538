//! The soft/hard state machine of one checked target.
//!
//! A target has a *hard* state, [`HardState::Up`] or [`HardState::Down`], which is what the data
//! plane acts on, and may be *soft-failing*: hard up, but with one or more failed checks that
//! have not yet reached `failure_count`. Pure logic: no clock, no I/O.

/// The state the data plane acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HardState {
    /// The real takes traffic.
    Up,
    /// The real takes no new traffic.
    Down,
}

impl std::fmt::Display for HardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HardState::Up => "up",
            HardState::Down => "down",
        })
    }
}

/// A change of hard state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state before; `None` when the state was still unknown.
    pub from: Option<HardState>,
    /// The new state.
    pub to: HardState,
}

/// The per-target state machine.
///
/// * From unknown (no initial state), the first result decides the hard state immediately.
/// * Hard up goes down after `failure_count` consecutive failures (soft-failing before).
/// * Hard down comes up after `success_count` consecutive successes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachine {
    hard: Option<HardState>,
    failures: u32,
    successes: u32,
    failure_count: u32,
    success_count: u32,
}

impl StateMachine {
    /// A machine starting in `initial` (`None`: unknown). Counts of 0 are treated as 1.
    pub fn new(initial: Option<HardState>, failure_count: u32, success_count: u32) -> Self {
        StateMachine {
            hard: initial,
            failures: 0,
            successes: 0,
            failure_count: failure_count.max(1),
            success_count: success_count.max(1),
        }
    }

    /// The current hard state (`None` until the first result when started unknown).
    pub fn hard(&self) -> Option<HardState> {
        self.hard
    }

    /// Hard up with failed checks that have not yet taken it down.
    pub fn is_soft_failing(&self) -> bool {
        self.hard == Some(HardState::Up) && self.failures > 0
    }

    /// Consecutive failed checks so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Consecutive successful checks so far.
    pub fn consecutive_successes(&self) -> u32 {
        self.successes
    }

    /// Records one check result; returns the transition when the hard state changed.
    pub fn record(&mut self, ok: bool) -> Option<Transition> {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
        }
        let to = match self.hard {
            None if ok => HardState::Up,
            None => HardState::Down,
            Some(HardState::Up) if !ok && self.failures >= self.failure_count => HardState::Down,
            Some(HardState::Down) if ok && self.successes >= self.success_count => HardState::Up,
            Some(_) => return None,
        };
        self.set(to)
    }

    /// Forces the hard state down at once (maintenance, `checktype = off`).
    pub fn force_down(&mut self) -> Option<Transition> {
        self.successes = 0;
        self.failures = self.failure_count;
        if self.hard == Some(HardState::Down) {
            return None;
        }
        self.set(HardState::Down)
    }

    fn set(&mut self, to: HardState) -> Option<Transition> {
        let from = self.hard;
        self.hard = Some(to);
        if to == HardState::Down {
            // Coming back needs `success_count` fresh successes.
            self.successes = 0;
        } else {
            self.failures = 0;
        }
        (from != Some(to)).then_some(Transition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Option<HardState> = Some(HardState::Up);
    const DOWN: Option<HardState> = Some(HardState::Down);

    #[test]
    fn unknown_first_result_decides_immediately() {
        let mut m = StateMachine::new(None, 3, 2);
        assert_eq!(
            m.record(false),
            Some(Transition {
                from: None,
                to: HardState::Down
            })
        );
        let mut m = StateMachine::new(None, 3, 2);
        assert_eq!(
            m.record(true),
            Some(Transition {
                from: None,
                to: HardState::Up
            })
        );
        assert_eq!(m.hard(), UP);
    }

    #[test]
    fn soft_then_hard_down_after_three_failures() {
        let mut m = StateMachine::new(UP, 3, 2);
        assert_eq!(m.record(false), None);
        assert!(m.is_soft_failing());
        assert_eq!(m.record(false), None);
        assert!(m.is_soft_failing());
        assert_eq!(m.hard(), UP);
        assert_eq!(
            m.record(false),
            Some(Transition {
                from: UP,
                to: HardState::Down
            })
        );
        assert!(!m.is_soft_failing());
        assert_eq!(m.record(false), None);
        assert_eq!(m.hard(), DOWN);
    }

    #[test]
    fn success_resets_soft_failures() {
        let mut m = StateMachine::new(UP, 3, 2);
        m.record(false);
        m.record(false);
        assert_eq!(m.record(true), None);
        assert!(!m.is_soft_failing());
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(false), None);
        assert_eq!(m.hard(), UP, "the count restarted after the success");
        assert!(m.record(false).is_some());
    }

    #[test]
    fn up_after_two_successes_and_a_failure_restarts_the_count() {
        let mut m = StateMachine::new(DOWN, 3, 2);
        assert_eq!(m.record(true), None);
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(true), None);
        assert_eq!(m.hard(), DOWN);
        assert_eq!(
            m.record(true),
            Some(Transition {
                from: DOWN,
                to: HardState::Up
            })
        );
        assert_eq!(m.record(true), None);
    }

    #[test]
    fn full_cycle_with_counts_three_and_two() {
        let mut m = StateMachine::new(None, 3, 2);
        let results = [true, false, false, false, true, true, false, true];
        let got: Vec<_> = results
            .iter()
            .map(|&ok| m.record(ok).map(|t| t.to))
            .collect();
        assert_eq!(
            got,
            vec![
                Some(HardState::Up),
                None,
                None,
                Some(HardState::Down),
                None,
                Some(HardState::Up),
                None,
                None
            ]
        );
    }

    #[test]
    fn force_down_is_immediate_and_needs_successes_to_recover() {
        let mut m = StateMachine::new(UP, 3, 2);
        assert_eq!(
            m.force_down(),
            Some(Transition {
                from: UP,
                to: HardState::Down
            })
        );
        assert_eq!(m.force_down(), None);
        assert_eq!(m.record(true), None);
        assert!(m.record(true).is_some());
    }

    #[test]
    fn zero_counts_behave_as_one() {
        let mut m = StateMachine::new(UP, 0, 0);
        assert!(m.record(false).is_some());
        assert!(m.record(true).is_some());
    }
}
