//! Embassy's identifier systems and extension URLs.

/// Practitioner HSA id (Swedish users).
pub const PRACTITIONER_HSA: &str = "http://schema.visibacare.com/identifier/practitioner/hsaid";
/// Practitioner Visiba id.
pub const PRACTITIONER_VISIBA: &str = "http://schema.visibacare.com/identifier/practitioner/visibaid";
/// Practitioner e-mail.
pub const PRACTITIONER_EMAIL: &str = "http://schema.visibacare.com/identifier/practitioner/email";
/// National identity numbers with a country: `.../nationalidentificationnumber/{cc}`.
pub const NATIONAL_ID_PREFIX: &str = "http://schema.visibacare.com/identifier/nationalidentificationnumber/";
/// Patient national id, validated in the customer's country.
pub const PATIENT_NATIONAL_ID: &str = "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber";
/// Patient Visiba id.
pub const PATIENT_VISIBA: &str = "http://schema.visibacare.com/identifier/patient/visibaid";
/// Patient phone number (unique when the customer uses phone as identifier).
pub const PATIENT_PHONE: &str = "http://schema.visibacare.com/identifier/patient/phonenumber";
/// Related person national id.
pub const RELATED_NATIONAL_ID: &str =
    "http://schema.visibacare.com/identifier/relatedperson/nationalidentificationnumber";
/// Related person Visiba id.
pub const RELATED_VISIBA: &str = "http://schema.visibacare.com/identifier/relatedperson/visibaid";
/// Related person phone number (the spec labels this row "Email").
pub const RELATED_PHONE: &str = "http://schema.visibacare.com/identifier/relatedperson/phonenumber";
/// Healthcare service Visiba id, as the spec spells it.
pub const SERVICE_VISIBA: &str = "http://schema.visibacare.com/identifier/healthcaresservice/visibaid";
/// The same with the ordinary spelling, also accepted.
pub const SERVICE_VISIBA_ALT: &str = "http://schema.visibacare.com/identifier/healthcareservice/visibaid";
/// Appointment type code system.
pub const APPOINTMENT_TYPE: &str = "http://schema.visibacare.com/codesystem/appointment/appointmenttype";
/// Related person relationship code system.
pub const RELATIONSHIP: &str = "http://schema.visibacare.com/codesystem/relatedperson/relationship";
/// v3 participation types.
pub const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// Participant id extension.
pub const EXT_PARTICIPANT_ID: &str =
    "https://schema.visibacare.com/fhir/StructureDefinition/appointment-participant-id-extension";
/// Appointment ticket extension.
pub const EXT_TICKET: &str = "https://schema.visibacare.com/fhir/StructureDefinition/appointment-ticket-extension";
/// List price extension.
pub const EXT_LIST_PRICE: &str = "https://schema.visibacare.com/fhir/StructureDefinition/list-price-extension";
/// Patient contact consent extension.
pub const EXT_CONSENT: &str = "https://schema.visibacare.com/fhir/StructureDefinition/patient-consent-extension";
/// FHIR language value set (related person communication language).
pub const LANGUAGES: &str = "http://hl7.org/fhir/ValueSet/languages";
