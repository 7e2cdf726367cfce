//! Conversations between a clinic and its patients (Embassy's
//! CommunicationRequest and Communication): started and written to through
//! here, so that every dialect's messages land in one place and wake the
//! delivery engine (`ConversationCreated`, `MessageCreated`).

use crate::Scheduling;
use crate::error::SchedulingResult;
use jiff::Timestamp;
use polyclinic_core::care::{Conversation, Message};
use polyclinic_core::tenant::Tenant;
use polyclinic_store::conversations;

impl Scheduling {
    /// Starts a conversation.
    pub async fn start_conversation(
        &self,
        tenant: &Tenant,
        conversation: Conversation,
        now: Timestamp,
    ) -> SchedulingResult<Conversation> {
        let tid = tenant.id;
        self.commit(move |c| Box::pin(async move { Ok(Ok(conversations::create(c, tid, conversation, now).await?)) }))
            .await
    }

    /// Adds a message to a conversation.
    pub async fn add_message(&self, tenant: &Tenant, message: Message, now: Timestamp) -> SchedulingResult<Message> {
        let tid = tenant.id;
        self.commit(move |c| Box::pin(async move { Ok(Ok(conversations::add_message(c, tid, message, now).await?)) }))
            .await
    }
}
