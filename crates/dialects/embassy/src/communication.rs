//! CommunicationRequest (a conversation) and Communication (a message in it).

use super::Path;
use super::appointments::{Lookup, PatientKey, find_patient, lookup, patient_key};
use super::patients::{name_json, national_id, national_id_country, parse_names, parse_telecom};
use super::systems::*;
use super::{Caller, EmbassyError, FhirJson, Prefer, fhir, respond};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use polyclinic_core::care::{Conversation, ConversationParty, ConversationStatus, Message};
use polyclinic_core::patient::{
    ContactSystem, HumanName, Identifier, NameUse, RelatedKind, RelatedPerson, pick_name, preferred_contact, systems,
};
use polyclinic_core::service::HealthcareService;
use polyclinic_core::text::Phone;
use polyclinic_core::{ConversationId, HealthcareServiceId, MessageId, PatientId, PractitionerId};
use polyclinic_http::AppState;
use polyclinic_store::conversations;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The patient-response-enabled extension.
const EXT_RESPONSE: &str = "https://schema.visibacare.com/fhir/StructureDefinition/patient-response-enabled-extension";
/// Identifier system of communication requests in `basedOn` (the spec leaves it open).
pub const REQUEST_SYSTEM: &str = "http://schema.visibacare.com/identifier/communicationrequest/visibaid";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/CommunicationRequest", post(create_request))
        .route("/CommunicationRequest/{id}", get(read_request))
        .route("/Communication", post(create_message))
        .route("/Communication/{id}", get(read_message))
}

fn err(code: &'static str, message: impl Into<String>) -> EmbassyError {
    EmbassyError::unprocessable(code, message)
}

/// A party as a request names it.
#[derive(Debug, Clone, PartialEq)]
enum Party {
    Patient(PatientId),
    Practitioner(PractitionerId),
    Service(HealthcareServiceId),
    /// A contained representative (by contained id).
    Representative,
    /// A contained patient (by contained id).
    ContainedPatient,
}

/// What the contained resources of a request say.
struct Contained {
    representative: Option<(String, RelatedPerson)>,
    patient: Option<(String, PatientId)>,
}

async fn read_contained(body: &Value, state: &AppState, caller: &Caller) -> Result<Contained, EmbassyError> {
    let mut out = Contained { representative: None, patient: None };
    let items: HashMap<String, &Value> = body
        .get("contained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c.get("id")?.as_str()?.to_owned(), c)))
        .collect();
    for (id, c) in &items {
        if c.get("resourceType").and_then(Value::as_str) != Some("Patient") {
            continue;
        }
        let key = c
            .get("identifier")
            .and_then(Value::as_array)
            .and_then(|ids| {
                ids.iter().find_map(|i| {
                    let cc = national_id_country(i.get("system")?.as_str()?, &caller.tenant)?;
                    let v = national_id(&cc, i.get("value")?.as_str()?)?;
                    Some(Identifier { system: format!("{}{cc}", systems::NATIONAL_ID_PREFIX), value: v })
                })
            })
            .ok_or_else(|| {
                err("InvalidContainedPatient", "the contained patient needs a valid national identification number")
            })?;
        let patient = find_patient(state, caller.tenant.id, &PatientKey::Identifier(key))
            .await
            .map_err(|_| err("ContainedPatientNotFound", "the contained patient was not found on the customer"))?;
        out.patient = patient.id.map(|p| (id.clone(), p));
    }
    for (id, c) in &items {
        if c.get("resourceType").and_then(Value::as_str) != Some("RelatedPerson") {
            continue;
        }
        let names = parse_names(c.get("name"));
        let name = pick_name(&names).cloned().unwrap_or_default();
        if !name.has_both() {
            return Err(err("InvalidName", "the representative needs a given name and a family name"));
        }
        let points = parse_telecom(c.get("telecom"));
        let phone =
            [ContactSystem::Phone, ContactSystem::Sms].iter().find_map(|s| preferred_contact(&points, *s)).cloned();
        let mut telecom = Vec::new();
        match phone {
            None => return Err(err("PhoneRequired", "the representative needs a phone number")),
            Some(mut p) => {
                p.system = ContactSystem::Phone;
                p.value = Phone::parse(&p.value)
                    .map_err(|_| err("InvalidPhone", format!("`{}` is not a valid phone number", p.value)))?
                    .into();
                telecom.push(p);
            }
        }
        if let Some(e) = preferred_contact(&points, ContactSystem::Email) {
            telecom.push(e.clone());
        }
        let nid = c.get("identifier").and_then(Value::as_array).and_then(|ids| ids.first()).cloned();
        let identifiers = match nid {
            None => {
                return Err(err(
                    "NationalIdentityNumberRequired",
                    "the representative needs a national identification number",
                ));
            }
            Some(i) => {
                let system = i.get("system").and_then(Value::as_str).unwrap_or("");
                if !system.eq_ignore_ascii_case(RELATED_NATIONAL_ID) {
                    return Err(err(
                        "InvalidRepresentative",
                        format!("identifier system `{system}` is not supported for representatives"),
                    ));
                }
                let cc = caller.tenant.country.to_ascii_lowercase();
                let v = national_id(&cc, i.get("value").and_then(Value::as_str).unwrap_or("")).ok_or_else(|| {
                    err("InvalidRepresentative", "the representative's national identification number is not valid")
                })?;
                vec![Identifier { system: format!("{}{cc}", systems::NATIONAL_ID_PREFIX), value: v }]
            }
        };
        let patient_ref =
            c.pointer("/patient/reference").and_then(Value::as_str).map(|r| r.trim_start_matches('#').to_owned());
        let represented = match (&patient_ref, &out.patient) {
            (Some(r), Some((pid, id))) if r == pid => Some(*id),
            _ => {
                return Err(err("ContainedPatientNotFound", "the representative must reference the contained patient"));
            }
        };
        let rp = RelatedPerson {
            kind: RelatedKind::Representative,
            names: vec![HumanName { use_: Some(NameUse::Official), ..name }],
            telecom,
            identifiers,
            language: None,
            country: None,
            patient: represented,
        };
        out.representative = Some((id.clone(), rp));
    }
    Ok(out)
}

/// Reads a reference: logical (`type` + `identifier`) or literal (`#id`).
fn party(
    v: &Value,
    lookup: &Lookup,
    contained: &Contained,
    caller: &Caller,
    invalid: &'static str,
) -> Result<(Party, Option<PatientKey>), EmbassyError> {
    if let Some(r) = v.get("reference").and_then(Value::as_str) {
        let id = r.trim_start_matches('#');
        if contained.representative.as_ref().is_some_and(|(cid, _)| cid == id) {
            return Ok((Party::Representative, None));
        }
        if contained.patient.as_ref().is_some_and(|(cid, _)| cid == id) {
            return Ok((Party::ContainedPatient, None));
        }
        return Err(err(
            "AllParticipantsWithContainedReferenceMustHaveContainedResource",
            format!("no contained resource with id {id}"),
        ));
    }
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    let system = v.pointer("/identifier/system").and_then(Value::as_str).unwrap_or("");
    let value = v.pointer("/identifier/value").and_then(Value::as_str).unwrap_or("");
    match kind {
        "Patient" => {
            let key = patient_key(system, value, &caller.tenant).map_err(|e| err("InvalidPatient", e.message))?;
            Ok((Party::Patient(PatientId(0)), Some(key)))
        }
        "Practitioner" => {
            let id =
                lookup.practitioner(system, value).map_err(|e| err("InvalidPractitioner", e.message))?.ok_or_else(
                    || err("PractitionerNotFound", format!("practitioner {value} was not found on the customer")),
                )?;
            Ok((Party::Practitioner(id), None))
        }
        "HealthcareService" => {
            if system != SERVICE_VISIBA && system != SERVICE_VISIBA_ALT {
                return Err(err(
                    "InvalidHealthcareService",
                    format!("the healthcare service must be identified with {SERVICE_VISIBA}"),
                ));
            }
            let id = value
                .parse::<i64>()
                .map_err(|_| err("InvalidHealthcareService", format!("`{value}` is not a healthcare service id")))?;
            Ok((Party::Service(HealthcareServiceId(id)), None))
        }
        _ => Err(err(
            invalid,
            format!("`{kind}` cannot take part here; use a Patient, a Practitioner, or a contained RelatedPerson"),
        )),
    }
}

async fn resolve_patient(
    state: &AppState,
    caller: &Caller,
    p: (Party, Option<PatientKey>),
) -> Result<Party, EmbassyError> {
    match p {
        (Party::Patient(_), Some(key)) => {
            let found = find_patient(state, caller.tenant.id, &key).await?;
            Ok(Party::Patient(found.id.unwrap_or(PatientId(0))))
        }
        (other, _) => Ok(other),
    }
}

fn payload_text(body: &Value) -> Result<String, EmbassyError> {
    let payload = body.get("payload").and_then(Value::as_array).filter(|p| p.len() == 1);
    payload
        .and_then(|p| p[0].pointer("/content/contentString").or_else(|| p[0].get("contentString")))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty() && s.chars().count() <= 10_000)
        .map(str::to_owned)
        .ok_or_else(|| err("InvalidPayload", "exactly one payload with a non-empty contentString is required"))
}

fn eligible(lookup: &Lookup, id: PractitionerId) -> Result<(), EmbassyError> {
    if lookup.catalog.practitioners.iter().any(|p| p.id == id && p.communication_privileges) {
        Ok(())
    } else {
        Err(err(
            "PractitionerNotEligble",
            "the practitioner does not have the privileges to take part in conversations",
        ))
    }
}

async fn create_request(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    prefer: Prefer,
    FhirJson(body): FhirJson,
) -> Result<Response, EmbassyError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("CommunicationRequest") {
        return Err(EmbassyError::invalid("InvalidFhirResource", "the body must be a CommunicationRequest resource"));
    }
    let status = body.get("status").and_then(Value::as_str).unwrap_or("");
    if status != "active" && status != "completed" {
        return Err(err(
            "InvalidCommunicationRequestStatus",
            "the status must be active (or completed for a practitioner's request)",
        ));
    }
    let lookup = lookup(&state, &caller).await?;
    let contained = read_contained(&body, &state, &caller).await?;
    let requester = body.get("requester").ok_or_else(|| err("InvalidRequester", "a requester is required"))?;
    let requester =
        resolve_patient(&state, &caller, party(requester, &lookup, &contained, &caller, "InvalidRequester")?).await?;
    let sender = body.get("sender").ok_or_else(|| err("InvalidSender", "a sender is required"))?;
    let sender =
        resolve_patient(&state, &caller, party(sender, &lookup, &contained, &caller, "InvalidSender")?).await?;
    if matches!(requester, Party::Service(_) | Party::ContainedPatient) {
        return Err(err(
            "InvalidRequester",
            "the requester must be a patient, a practitioner or a contained representative",
        ));
    }
    if matches!(sender, Party::Service(_) | Party::ContainedPatient) {
        return Err(err("InvalidSender", "the sender must be a patient, a practitioner or a contained representative"));
    }
    if sender != requester {
        return Err(err("SenderNotRequester", "the sender must be the requester"));
    }
    let subject = body.get("subject").ok_or_else(|| err("InvalidSubject", "a subject is required"))?;
    let subject =
        resolve_patient(&state, &caller, party(subject, &lookup, &contained, &caller, "InvalidSubject")?).await?;
    let patient_id = match &subject {
        Party::Patient(id) => *id,
        Party::ContainedPatient => contained
            .patient
            .as_ref()
            .map(|(_, id)| *id)
            .ok_or_else(|| err("InvalidSubject", "the subject is not contained"))?,
        _ => return Err(err("InvalidSubject", "the subject must be a patient")),
    };
    let mut recipients = Vec::new();
    for r in body.get("recipient").and_then(Value::as_array).into_iter().flatten() {
        let p = party(r, &lookup, &contained, &caller, "InvalidRecipient")?;
        recipients.push(resolve_patient(&state, &caller, p).await?);
    }
    let services: Vec<HealthcareServiceId> =
        recipients.iter().filter_map(|r| if let Party::Service(s) = r { Some(*s) } else { None }).collect();
    if services.len() != 1 {
        return Err(err(
            "ExactlyOneHealthcareServiceRequired",
            "exactly one healthcare service must be among the recipients",
        ));
    }
    let service: HealthcareService =
        lookup.catalog.healthcare_services.iter().find(|s| s.id == services[0]).cloned().ok_or_else(|| {
            err(
                "HealthcareServiceNotFound",
                format!("healthcare service {} was not found on the customer", services[0]),
            )
        })?;
    if !service.allows_conversations {
        return Err(err("HealthcareServiceNotSuppported", "the healthcare service does not take conversations"));
    }
    let patients: Vec<&PatientId> =
        recipients.iter().filter_map(|r| if let Party::Patient(p) = r { Some(p) } else { None }).collect();
    if patients.len() > 1 || (contained.patient.is_some() && !patients.is_empty() && *patients[0] != patient_id) {
        return Err(err("MultiplePatientsNotSupported", "a conversation can have only one patient"));
    }
    let in_recipients = |p: &Party| match p {
        Party::ContainedPatient => {
            recipients.contains(&Party::Representative) || recipients.contains(&Party::ContainedPatient)
        }
        other => recipients.contains(other),
    };
    if !in_recipients(&subject) {
        return Err(err("SubjectNotRecipient", "the subject must be among the recipients"));
    }
    if !in_recipients(&requester) {
        return Err(err("RequesterNotRecipient", "the requester must be among the recipients"));
    }
    if !in_recipients(&sender) {
        return Err(err("SenderNotRecipient", "the sender must be among the recipients"));
    }
    let practitioners: Vec<PractitionerId> =
        recipients.iter().filter_map(|r| if let Party::Practitioner(p) = r { Some(*p) } else { None }).collect();
    let by_patient = matches!(requester, Party::Patient(_) | Party::Representative);
    if by_patient && !practitioners.is_empty() {
        return Err(err(
            "PatientRequesterWithPractitionerRecipientsNotSupported",
            "a patient's request goes to the healthcare service only",
        ));
    }
    for p in &practitioners {
        eligible(&lookup, *p)?;
    }
    if let Party::Practitioner(p) = requester {
        eligible(&lookup, p)?;
        if !service.has_practitioner(p) {
            return Err(err("PractitionerNotEligble", "the practitioner does not practise on the healthcare service"));
        }
    }
    if status == "completed" && by_patient {
        return Err(err("InvalidCommunicationRequestStatus", "only a practitioner's request may be created completed"));
    }
    let response = body.get("extension").and_then(Value::as_array).map(|exts| {
        exts.iter().filter(|e| e.get("url").and_then(Value::as_str) == Some(EXT_RESPONSE)).collect::<Vec<_>>()
    });
    let patient_can_reply = match response.as_deref() {
        Some([one]) => one
            .get("valueBoolean")
            .and_then(Value::as_bool)
            .ok_or_else(|| err("InvalidPatientResponseEnabledExtensionCode", "the extension needs a valueBoolean"))?,
        _ => {
            return Err(err(
                "InvalidPatientResponseEnabledExtensionCode",
                "exactly one patient-response-enabled extension is required",
            ));
        }
    };
    if by_patient && !patient_can_reply {
        return Err(err(
            "InvalidPatientResponseEnabledExtensionCode",
            "a patient's own request must let the patient respond",
        ));
    }
    let codes = body.get("reasonCode").and_then(Value::as_array).cloned().unwrap_or_default();
    if codes.len() > 1
        || codes.first().and_then(|c| c.get("coding")).and_then(Value::as_array).is_some_and(|c| c.len() > 1)
    {
        return Err(err("MultipleReasonCodesNotSupported", "at most one reason code"));
    }
    let reason_code = match codes.first().and_then(|c| c.pointer("/coding/0")) {
        None => None,
        Some(coding) => {
            let system = coding.get("system").and_then(Value::as_str).unwrap_or("");
            let expected = format!("HealthcareService.{}.ReasonCode", service.id);
            if !system.ends_with(&format!("/CodeSystem/{expected}")) {
                return Err(err(
                    "UnsupportedReasonCode",
                    format!("reason codes must use the code system …/CodeSystem/{expected}"),
                ));
            }
            let code = match coding.get("code") {
                Some(Value::Number(n)) if n.is_i64() => n.to_string(),
                Some(Value::String(s)) if s.parse::<i64>().is_ok() => s.clone(),
                _ => return Err(err("InvalidReasonCode", "the reason code must be an integer")),
            };
            if !service.reason_codes.iter().any(|r| r.code == code) {
                return Err(err(
                    "ReasonCodeNotFound",
                    format!("reason code {code} is not offered by the healthcare service"),
                ));
            }
            Some(code)
        }
    };
    let text = payload_text(&body)?;
    let initiator = match requester {
        Party::Practitioner(p) => ConversationParty::Practitioner(p),
        Party::Representative => ConversationParty::Representative(Box::new(
            contained.representative.as_ref().map(|r| r.1.clone()).unwrap_or_else(empty_rep),
        )),
        _ => ConversationParty::Patient(patient_id),
    };
    let conversation = Conversation {
        id: ConversationId(0),
        healthcare_service_id: service.id,
        patient_id,
        initiator,
        subject: text,
        reason_code,
        patient_can_reply,
        practitioners,
        representative: contained.representative.map(|r| Box::new(r.1)),
        status: if status == "completed" { ConversationStatus::Completed } else { ConversationStatus::Active },
        created_at: state.now(),
    };
    let created =
        state.scheduling.start_conversation(&caller.tenant, conversation, state.now()).await.map_err(scheduling)?;
    let location = format!("{}/embassy/CommunicationRequest/{}", state.public_url, created.id);
    Ok(respond(
        prefer,
        StatusCode::OK,
        request_resource(&created, &state),
        Some(location),
        "CommunicationRequest created",
    ))
}

fn empty_rep() -> RelatedPerson {
    RelatedPerson {
        kind: RelatedKind::Representative,
        names: vec![],
        telecom: vec![],
        identifiers: vec![],
        language: None,
        country: None,
        patient: None,
    }
}

fn logical(kind: &str, system: &str, value: impl ToString) -> Value {
    json!({"type": kind, "identifier": {"system": system, "value": value.to_string()}})
}

fn representative_json(rp: &RelatedPerson) -> Value {
    let mut r = json!({"resourceType": "RelatedPerson", "id": "representative"});
    r["identifier"] =
        Value::Array(rp.identifiers.iter().map(|i| json!({"system": RELATED_NATIONAL_ID, "value": i.value})).collect());
    if let Some(p) = rp.patient {
        r["patient"] = json!({"reference": format!("#p{p}"), "type": "Patient"});
    }
    r["relationship"] = json!([{"coding": [{"system": RELATIONSHIP, "code": "Representative"}]}]);
    if let Some(n) = pick_name(&rp.names) {
        r["name"] = json!([name_json(n)]);
    }
    r["telecom"] = Value::Array(rp.telecom.iter().map(|c| json!({"system": if c.system == ContactSystem::Email { "email" } else { "phone" }, "value": c.value})).collect());
    r
}

/// The CommunicationRequest resource.
fn request_resource(c: &Conversation, state: &AppState) -> Value {
    let mut r = json!({"resourceType": "CommunicationRequest", "id": c.id.to_string()});
    let patient_ref = match &c.representative {
        Some(rp) => {
            r["contained"] =
                json!([representative_json(rp), {"resourceType": "Patient", "id": format!("p{}", c.patient_id)}]);
            json!({"reference": format!("#p{}", c.patient_id), "type": "Patient"})
        }
        None => logical("Patient", PATIENT_VISIBA, c.patient_id),
    };
    r["extension"] = json!([{"url": EXT_RESPONSE, "valueBoolean": c.patient_can_reply}]);
    r["status"] = json!(match c.status {
        ConversationStatus::Active => "active",
        ConversationStatus::Completed => "completed",
    });
    r["subject"] = patient_ref.clone();
    let mut recipients = vec![logical("HealthcareService", SERVICE_VISIBA, c.healthcare_service_id)];
    recipients.extend(c.practitioners.iter().map(|p| logical("Practitioner", PRACTITIONER_VISIBA, p)));
    recipients.push(if c.representative.is_some() {
        json!({"reference": "#representative", "type": "RelatedPerson"})
    } else {
        patient_ref
    });
    r["payload"] = json!([{"content": {"contentString": c.subject}}]);
    r["authoredOn"] = json!(c.created_at.to_string());
    let party = match &c.initiator {
        ConversationParty::Practitioner(p) => logical("Practitioner", PRACTITIONER_VISIBA, p),
        ConversationParty::Representative(_) => json!({"reference": "#representative", "type": "RelatedPerson"}),
        _ => logical("Patient", PATIENT_VISIBA, c.patient_id),
    };
    r["requester"] = party.clone();
    r["recipient"] = Value::Array(recipients);
    r["sender"] = party;
    if let Some(code) = &c.reason_code {
        r["reasonCode"] = json!([{"coding": [{"system": format!("{}/embassy/CodeSystem/HealthcareService.{}.ReasonCode", state.public_url, c.healthcare_service_id), "code": code}]}]);
    }
    r
}

async fn read_request(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    let not_found = || {
        EmbassyError::not_found(
            "CommunicationRequestNotFound",
            format!("communication request with id {id} was not found on the customer"),
        )
    };
    let n = id.parse::<ConversationId>().map_err(|_| not_found())?;
    let tenant = caller.tenant.id;
    let c = state
        .store
        .read(move |c| Box::pin(async move { conversations::get(c, tenant, n).await }))
        .await?
        .ok_or_else(not_found)?;
    Ok(fhir(StatusCode::OK, request_resource(&c, &state)))
}

async fn create_message(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    prefer: Prefer,
    FhirJson(body): FhirJson,
) -> Result<Response, EmbassyError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Communication") {
        return Err(EmbassyError::invalid("InvalidFhirResource", "the body must be a Communication resource"));
    }
    if body.get("status").and_then(Value::as_str) != Some("completed") {
        return Err(err("InvalidCommunicationStatus", "the status must be completed"));
    }
    let text = payload_text(&body)?;
    let based_on = body.get("basedOn").and_then(Value::as_array).filter(|b| b.len() == 1).map(|b| &b[0]);
    let based_on = based_on
        .filter(|b| {
            b.get("type").and_then(Value::as_str) == Some("CommunicationRequest") && b.get("identifier").is_some()
        })
        .ok_or_else(|| err("InvalidBasedOn", "exactly one logical reference to a CommunicationRequest is required"))?;
    let request_id = based_on
        .pointer("/identifier/value")
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<ConversationId>().ok())
        .ok_or_else(|| err("InvalidCommunicationRequest", "the communication request reference is malformed"))?;
    let tenant = caller.tenant.id;
    let conversation = state
        .store
        .read(move |c| Box::pin(async move { conversations::get(c, tenant, request_id).await }))
        .await?
        .ok_or_else(|| {
            err(
                "CommunicationRequestNotFound",
                format!("communication request {request_id} was not found on the customer"),
            )
        })?;
    if conversation.status != ConversationStatus::Active {
        return Err(err("CommunicationRequestNotActive", "the conversation is completed; no further messages"));
    }
    let lookup = lookup(&state, &caller).await?;
    let contained = read_contained(&body, &state, &caller).await?;
    let sender = body.get("sender").ok_or_else(|| err("InvalidSender", "a sender is required"))?;
    let sender =
        resolve_patient(&state, &caller, party(sender, &lookup, &contained, &caller, "InvalidSender")?).await?;
    let party = match sender {
        Party::Practitioner(p) => {
            eligible(&lookup, p)?;
            let member = conversation.practitioners.contains(&p)
                || lookup
                    .catalog
                    .healthcare_services
                    .iter()
                    .any(|s| s.id == conversation.healthcare_service_id && s.has_practitioner(p));
            if !member {
                return Err(err("SenderNotRecipient", "the practitioner is not among the conversation's recipients"));
            }
            ConversationParty::Practitioner(p)
        }
        Party::Patient(p) => {
            if p != conversation.patient_id || conversation.representative.is_some() {
                return Err(err("SenderNotRecipient", "the patient is not among the conversation's recipients"));
            }
            if !conversation.patient_can_reply {
                return Err(err("PatientResponseNotEnabled", "the patient may not respond in this conversation"));
            }
            ConversationParty::Patient(p)
        }
        Party::Representative => {
            let rp = contained.representative.map(|r| r.1).unwrap_or_else(empty_rep);
            let same = conversation.representative.as_ref().is_some_and(|known| known.identifiers == rp.identifiers);
            if !same {
                return Err(err("SenderNotRecipient", "the representative is not among the conversation's recipients"));
            }
            ConversationParty::Representative(Box::new(rp))
        }
        _ => {
            return Err(err(
                "InvalidSender",
                "the sender must be a patient, a practitioner or a contained representative",
            ));
        }
    };
    let message =
        Message { id: MessageId(0), conversation_id: conversation.id, sender: party, text, sent_at: state.now() };
    let created = state.scheduling.add_message(&caller.tenant, message, state.now()).await.map_err(scheduling)?;
    let location = format!("{}/embassy/Communication/{}", state.public_url, created.id);
    Ok(respond(
        prefer,
        StatusCode::OK,
        message_resource(&created, &conversation),
        Some(location),
        "Communication created",
    ))
}

fn message_resource(m: &Message, c: &Conversation) -> Value {
    let mut r = json!({"resourceType": "Communication", "id": m.id.to_string()});
    let sender = match &m.sender {
        ConversationParty::Practitioner(p) => logical("Practitioner", PRACTITIONER_VISIBA, p),
        ConversationParty::Representative(rp) => {
            r["contained"] =
                json!([representative_json(rp), {"resourceType": "Patient", "id": format!("p{}", c.patient_id)}]);
            json!({"reference": "#representative", "type": "RelatedPerson"})
        }
        _ => logical("Patient", PATIENT_VISIBA, c.patient_id),
    };
    r["basedOn"] = json!([logical("CommunicationRequest", REQUEST_SYSTEM, m.conversation_id)]);
    r["status"] = json!("completed");
    r["sent"] = json!(m.sent_at.to_string());
    r["sender"] = sender;
    r["payload"] = json!([{"content": {"contentString": m.text}}]);
    r
}

async fn read_message(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    let not_found = || {
        EmbassyError::not_found(
            "CommunicationNotFound",
            format!("communication with id {id} was not found on the customer"),
        )
    };
    let n = id.parse::<MessageId>().map_err(|_| not_found())?;
    let tenant = caller.tenant.id;
    let (m, c) = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let Some(m) = conversations::message(c, tenant, n).await? else { return Ok(None) };
                Ok(conversations::get(c, tenant, m.conversation_id).await?.map(|conv| (m, conv)))
            })
        })
        .await?
        .ok_or_else(not_found)?;
    Ok(fhir(StatusCode::OK, message_resource(&m, &c)))
}

/// A refused conversation write: only a store failure can refuse one.
fn scheduling(e: polyclinic_scheduling::SchedulingError) -> EmbassyError {
    match e {
        polyclinic_scheduling::SchedulingError::Store(e) => e.into(),
        other => EmbassyError::from(polyclinic_store::StoreError::Corrupt(other.to_string())),
    }
}
