//! [`Pending`]: the background jobs (commands, mails) one alert started, to wait for or let go.

use tokio::task::JoinHandle;

use super::AlertError;

/// The background work started by one call; dropping it lets the work go on unobserved.
#[derive(Debug, Default)]
pub struct Pending {
    tasks: Vec<JoinHandle<Result<(), AlertError>>>,
}

impl Pending {
    /// How many background jobs (command runs, mails) were started.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether nothing was started.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for every job and returns their outcomes (already logged), in start order.
    pub async fn wait(self) -> Vec<Result<(), AlertError>> {
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            out.push(match t.await {
                Ok(r) => r,
                Err(source) => Err(AlertError::Task { source }),
            });
        }
        out
    }

    pub(super) fn push(&mut self, t: JoinHandle<Result<(), AlertError>>) {
        self.tasks.push(t);
    }
}
