//! Tenants with new delivery work, as this node's commands commit it.
//!
//! A command that appends events to the outbox, queues deliveries, or
//! records or lets go of a batch's attempts notes its tenant ([`note`]);
//! once the command has committed, [`crate::Store::write`] adds the noted
//! tenants to the store's set of tenants with new work, and wakes the
//! delivery engine ([`crate::Store::commits`]). The engine's pass after a
//! commit then visits only the tenants it takes from that set
//! ([`crate::Store::take_tenants_with_new_work`]), not every tenant. What no
//! command of this node noted (a retry coming due, a lease running out,
//! another node's events on a shared PostgreSQL) is found by the engine's
//! slower sweep of every tenant, its backstop.
//!
//! A note is lost only with its command: a rolled-back command notes
//! nothing, and a tenant taken by a pass that then fails is visited again
//! by the next sweep.

use polyclinic_core::TenantId;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The tenants the running command gave new delivery work.
pub(crate) type Noted = Arc<Mutex<Vec<TenantId>>>;

tokio::task_local! {
    static NOTED: Noted;
}

/// Runs a command's future noting the tenants it gives new work into
/// `noted`.
pub(crate) async fn noting<F: std::future::Future>(noted: Noted, f: F) -> F::Output {
    NOTED.scope(noted, f).await
}

/// Notes, inside a command of [`crate::Store::write`], that `tenant` has new
/// delivery work once the command commits. Outside one (a store function
/// run on a bare connection) nothing is noted: the engine's sweep finds the
/// work.
pub(crate) fn note(tenant: TenantId) {
    let _ = NOTED.try_with(|n| {
        let mut n = n.lock().unwrap_or_else(|p| p.into_inner());
        if !n.contains(&tenant) {
            n.push(tenant);
        }
    });
}

/// The tenants with new work committed on this node and not yet taken by
/// the engine.
#[derive(Debug, Default)]
pub(crate) struct Pending(Mutex<BTreeSet<TenantId>>);

impl Pending {
    /// Adds what a committed command noted.
    pub(crate) fn committed(&self, noted: &Noted) {
        let noted = std::mem::take(&mut *noted.lock().unwrap_or_else(|p| p.into_inner()));
        if noted.is_empty() {
            return;
        }
        let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
        pending.extend(noted);
    }

    /// Takes every tenant noted so far, in id order.
    pub(crate) fn take(&self) -> Vec<TenantId> {
        let taken = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
        taken.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_notes_its_tenants_once_and_they_are_taken_once() {
        let noted: Noted = Arc::default();
        noting(noted.clone(), async {
            note(TenantId(7));
            note(TenantId(3));
            note(TenantId(7));
        })
        .await;
        // Outside a command nothing is noted (and nothing panics).
        note(TenantId(9));
        let pending = Pending::default();
        pending.committed(&noted);
        assert!(noted.lock().unwrap().is_empty(), "taken from the command's notes");
        assert_eq!(pending.take(), vec![TenantId(3), TenantId(7)]);
        assert_eq!(pending.take(), Vec::<TenantId>::new(), "taken once");
    }
}
