//! Conversations (Embassy CommunicationRequest) and their messages
//! (Communication). Creating either emits its event.

use crate::outbox::{Seq, append, next_id};
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::care::{Conversation, Message};
use polyclinic_core::event::{EventKind, NewEvent};
use polyclinic_core::{ConversationId, MessageId, TenantId};
use serde_json::json;

/// Stores a new conversation (its id is drawn here) with its opening
/// message; emits `ConversationCreated`.
pub async fn create(
    conn: &mut Conn,
    tenant: TenantId,
    mut c: Conversation,
    now: Timestamp,
) -> StoreResult<Conversation> {
    c.id = ConversationId(next_id(conn, Seq::Entity).await?);
    c.created_at = now;
    sqlx::query(
        "INSERT INTO conversations (tenant_id, id, healthcare_service_id, patient_id, created_at, doc) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.get())
    .bind(c.id.get())
    .bind(c.healthcare_service_id.get())
    .bind(c.patient_id.get())
    .bind(secs(now))
    .bind(serde_json::to_string(&c)?)
    .execute(&mut *conn)
    .await?;
    let data = json!({"conversation_id": c.id.to_string(), "healthcare_service_id": c.healthcare_service_id.to_string(),
                      "patient_id": c.patient_id.to_string()});
    append(conn, tenant, now, &[NewEvent::new(EventKind::ConversationCreated, "conversation", c.id, data)]).await?;
    Ok(c)
}

/// Reads a conversation.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: ConversationId) -> StoreResult<Option<Conversation>> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM conversations WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.get())
        .bind(id.get())
        .fetch_optional(&mut *conn)
        .await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// Stores a message (its id is drawn here); emits `MessageCreated`.
pub async fn add_message(conn: &mut Conn, tenant: TenantId, mut m: Message, now: Timestamp) -> StoreResult<Message> {
    m.id = MessageId(next_id(conn, Seq::Entity).await?);
    m.sent_at = now;
    sqlx::query("INSERT INTO conversation_messages (tenant_id, id, conversation_id, created_at, doc) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant.get())
        .bind(m.id.get())
        .bind(m.conversation_id.get())
        .bind(secs(now))
        .bind(serde_json::to_string(&m)?)
        .execute(&mut *conn)
        .await?;
    let data = json!({"message_id": m.id.to_string(), "conversation_id": m.conversation_id.to_string()});
    append(conn, tenant, now, &[NewEvent::new(EventKind::MessageCreated, "message", m.id, data)]).await?;
    Ok(m)
}

/// Reads a message.
pub async fn message(conn: &mut Conn, tenant: TenantId, id: MessageId) -> StoreResult<Option<Message>> {
    let doc: Option<String> =
        sqlx::query_scalar("SELECT doc FROM conversation_messages WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.get())
            .bind(id.get())
            .fetch_optional(&mut *conn)
            .await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}
