//! Shared helpers of the Naboto tests (as `dp.rs` is for Docplanner): FHIR
//! requests with the `acme` tenant's bearer token, the one check of an
//! OperationOutcome error, and the IG's published examples (NabotoPatient and
//! NabotoAppointment of IG 0.1.1, copied verbatim). Every body `expect` and
//! `expect_error` see is checked against the FHIR R4 JSON schema
//! (`fhir_schema.rs`).

use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use reqwest::Method;
use serde_json::Value;

/// The `acme` tenant's Naboto token.
pub const TOKEN: &str = "nab-acme-1";

/// A server with the `acme` tenant, its test clock at 2022-01-01 (before the
/// IG example's appointment).
pub async fn setup(engine: Engine) -> TestApp {
    let app = spawn_app(engine).await;
    app.seed(&acme_seed("acme")).await;
    app.set_clock("2022-01-01T12:00:00Z").await;
    app
}

/// A request to `/naboto{path}` with `token`.
pub async fn call(app: &TestApp, token: &str, method: Method, path: &str, body: Option<&Value>) -> reqwest::Response {
    let mut r = app.client.request(method, app.url(&format!("/naboto{path}"))).bearer_auth(token);
    if let Some(b) = body {
        r = r.header("content-type", "application/fhir+json").json(b);
    }
    r.send().await.unwrap()
}

/// A FHIR JSON request to `/naboto{path}` with the `acme` token.
pub async fn send(app: &TestApp, method: Method, path: &str, body: &Value) -> reqwest::Response {
    call(app, TOKEN, method, path, Some(body)).await
}

/// A GET of `/naboto{path}` with the `acme` token.
pub async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    call(app, TOKEN, Method::GET, path, None).await
}

/// Asserts a 2xx `status` with FHIR JSON and answers the body.
pub async fn expect(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert!(ct.starts_with("application/fhir+json"), "FHIR JSON: {ct}");
    crate::fhir_schema::check(&body);
    body
}

/// Asserts a Naboto error: `status`, an OperationOutcome whose
/// `issue[0].details.coding[0].code` is `code`, with a human message.
pub async fn expect_error(r: reqwest::Response, status: u16, code: &str) -> String {
    let got = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!((got, body["issue"][0]["details"]["coding"][0]["code"].as_str()), (status, Some(code)), "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    crate::fhir_schema::check(&body);
    let m = body["issue"][0]["diagnostics"].as_str().unwrap_or("").to_owned();
    assert!(!m.is_empty(), "a human message: {body}");
    m
}

/// The IG's NabotoPatientExample, as published.
pub fn example_patient() -> Value {
    serde_json::from_str(EXAMPLE_PATIENT).unwrap()
}

/// The IG's NabotoAppointmentExample, as published.
pub fn example_appointment() -> Value {
    serde_json::from_str(EXAMPLE_APPOINTMENT).unwrap()
}

/// The example patient as a create: without its `id`.
pub fn new_patient() -> Value {
    let mut p = example_patient();
    p.as_object_mut().unwrap().remove("id");
    p
}

/// Creates the example patient; answers its id.
pub async fn create_patient(app: &TestApp) -> String {
    let body = expect(send(app, Method::POST, "/patient", &new_patient()).await, 201).await;
    body["id"].as_str().unwrap().to_owned()
}

/// The id of the tenant's practitioner Ann, read through Embassy.
pub async fn ann(app: &TestApp) -> String {
    let r = app.embassy(Method::GET, "/Practitioner").send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    body["entry"][0]["resource"]["id"].as_str().unwrap().to_owned()
}

/// The example appointment as a create for `patient` with `practitioner`:
/// without its `id`, its actors this tenant's.
pub fn new_appointment(patient: &str, practitioner: &str) -> Value {
    let mut a = example_appointment();
    a.as_object_mut().unwrap().remove("id");
    a["participant"][0]["actor"]["reference"] = Value::from(format!("Practitioner/{practitioner}"));
    a["participant"][1]["actor"]["reference"] = Value::from(format!("Patient/{patient}"));
    a
}

const EXAMPLE_PATIENT: &str = r#"{
  "resourceType": "Patient",
  "id": "NabotoPatientExample",
  "meta": {
    "profile": [
      "http://fhir.naboto.com/4.0.1/NabotoProfiles/StructureDefinition/naboto-patient"
    ]
  },
  "text": {
    "status": "generated",
    "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><b>Max Mustermann </b> (no stated gender) 1970-01-01 ( Social Security Number: 1111241261 (OFFICIAL))</div>"
  },
  "identifier": [
    {
      "use": "official",
      "type": {
        "coding": [
          {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": "SS",
            "display": "Social Security Number"
          }
        ]
      },
      "system": "urn:oid:1.2.40.0.10.1.4.3.1",
      "value": "1111241261",
      "assigner": {
        "display": "Dachverband der österreichischen Sozialversicherungsträger"
      }
    },
    {
      "use": "official",
      "type": {
        "coding": [
          {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": "PI",
            "display": "Patient internal identifier"
          }
        ]
      },
      "system": "https://third-party-system/Patients",
      "value": "0815",
      "assigner": {
        "display": "Ein GDA in Österreich"
      }
    }
  ],
  "active": true,
  "name": [
    {
      "use": "usual",
      "family": "Mustermann",
      "given": [
        "Max"
      ],
      "prefix": [
        "DI"
      ]
    }
  ],
  "telecom": [
    {
      "system": "email",
      "value": "notarealemail@naboto.com",
      "use": "home"
    },
    {
      "system": "sms",
      "value": "+436641234567890",
      "use": "mobile"
    }
  ],
  "gender": "male",
  "birthDate": "1970-01-01",
  "address": [
    {
      "use": "home",
      "type": "both",
      "line": [
        "Landstrasse 1 Stock 9 Tür 42"
      ],
      "_line": [
        {
          "extension": [
            {
              "url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-streetName",
              "valueString": "Landstrasse"
            },
            {
              "url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-houseNumber",
              "valueString": "1"
            },
            {
              "url": "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-additionalLocator",
              "valueString": "Stock 9 Tür 42"
            },
            {
              "url": "http://fhir.naboto.com/4.0.1/NabotoProfiles/StructureDefinition/at-core-ext-address-additionalInformation",
              "valueString": "Lift vorhanden"
            }
          ]
        }
      ],
      "city": "Linz",
      "state": "Oberösterreich",
      "postalCode": "4020",
      "country": "AUT"
    }
  ]
}"#;

const EXAMPLE_APPOINTMENT: &str = r#"{
  "resourceType": "Appointment",
  "id": "NabotoAppointmentExample",
  "meta": {
    "profile": [
      "http://fhir.naboto.com/4.0.1/NabotoProfiles/StructureDefinition/naboto-appointment"
    ]
  },
  "text": {
    "status": "extensions",
    "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p><b>Generated Narrative</b></p><div style=\"display: inline-block; background-color: #d9e0e7; padding: 6px; margin: 4px; border: 1px solid #8da1b4; border-radius: 5px; line-height: 60%\"><p style=\"margin-bottom: 0px\">Resource \"NabotoAppointmentExample\" </p><p style=\"margin-bottom: 0px\">Profile: <a href=\"StructureDefinition-naboto-appointment.html\">Naboto Appointment Profile</a></p></div><blockquote><p><b>NabotoNote</b></p><p><b>value</b>: Is this treatment covered by my insurance? (By https://naboto.com/patient/12345 @Jan 1, 2022, 9:00:00 AM)</p></blockquote><blockquote><p><b>NabotoNote</b></p><p><b>value</b>: Patient asked for discrete treatment (By https://naboto.com/practitioner/987654321 @Jan 1, 2022, 10:15:00 AM)</p></blockquote><p><b>identifier</b>: id: 11223344</p><p><b>status</b>: booked</p><p><b>start</b>: Feb 2, 2022, 12:00:00 PM</p><p><b>end</b>: Feb 2, 2022, 1:00:00 PM</p><p><b>created</b>: 2022-01-01 11:11:11+0000</p><blockquote><p><b>participant</b></p><blockquote><p><b>VirtualServiceContactDetail</b></p><p><b>value</b>: Visit-e (Details: http://fhir.naboto.com/4.0.1/NabotoProfiles/CodeSystem/naboto-vidcall-channel-type code visit-e = 'Visit-e', stated as 'null')</p><p><b>value</b>: <a href=\"https://patient.visit-e.at/abcdefghijklmn\">https://patient.visit-e.at/abcdefghijklmn</a></p><p><b>value</b>: abcdefghijklmn</p></blockquote><p><b>type</b>: primary performer <span style=\"background: LightGoldenRodYellow; margin: 4px; border: 1px solid khaki\"> (<a href=\"http://terminology.hl7.org/3.1.0/CodeSystem-v3-ParticipationType.html\">ParticipationType</a>#PPRF)</span></p><p><b>actor</b>: <a href=\"https://naboto.com/practitioner/987654321\">https://naboto.com/practitioner/987654321: Naboto Practitioner 987654321</a></p><p><b>required</b>: required</p><p><b>status</b>: accepted</p></blockquote><blockquote><p><b>participant</b></p><blockquote><p><b>VirtualServiceContactDetail</b></p><p><b>value</b>: Visit-e (Details: http://fhir.naboto.com/4.0.1/NabotoProfiles/CodeSystem/naboto-vidcall-channel-type code visit-e = 'Visit-e', stated as 'null')</p><p><b>value</b>: <a href=\"https://patient.visit-e.at/1234567890\">https://patient.visit-e.at/1234567890</a></p><p><b>value</b>: 1234567890</p></blockquote><p><b>type</b>: subject <span style=\"background: LightGoldenRodYellow; margin: 4px; border: 1px solid khaki\"> (<a href=\"http://terminology.hl7.org/3.1.0/CodeSystem-v3-ParticipationType.html\">ParticipationType</a>#SBJ)</span></p><p><b>actor</b>: <a href=\"https://naboto.com/patients/1337\">https://naboto.com/patients/1337: Naboto Patient 1337</a></p><p><b>status</b>: accepted</p></blockquote></div>"
  },
  "extension": [
    {
      "extension": [
        {
          "url": "note",
          "valueAnnotation": {
            "authorReference": {
              "reference": "https://naboto.com/patient/12345",
              "type": "Patient",
              "display": "Naboto Patient 12345"
            },
            "time": "2022-01-01T08:00:00.000Z",
            "text": "Is this treatment covered by my insurance?"
          }
        }
      ],
      "url": "http://fhir.naboto.com/4.0.1/NabotoProfiles/StructureDefinition/naboto-note"
    },
    {
      "extension": [
        {
          "url": "note",
          "valueAnnotation": {
            "authorReference": {
              "reference": "https://naboto.com/practitioner/987654321",
              "type": "Practitioner",
              "display": "Naboto Practitioner 987654321"
            },
            "time": "2022-01-01T09:15:00.000Z",
            "text": "Patient asked for discrete treatment"
          }
        }
      ],
      "url": "http://fhir.naboto.com/4.0.1/NabotoProfiles/StructureDefinition/naboto-note"
    }
  ],
  "identifier": [
    {
      "system": "https://third-party-system/appointment",
      "value": "11223344"
    }
  ],
  "status": "booked",
  "start": "2022-02-02T11:00:00Z",
  "end": "2022-02-02T12:00:00Z",
  "created": "2022-01-01T11:11:11.111Z",
  "participant": [
    {
      "extension": [
        {
          "extension": [
            {
              "url": "channelType",
              "valueCoding": {
                "system": "http://fhir.naboto.com/4.0.1/NabotoProfiles/CodeSystem/naboto-vidcall-channel-type",
                "code": "visit-e"
              }
            },
            {
              "url": "address",
              "valueUrl": "https://patient.visit-e.at/abcdefghijklmn"
            },
            {
              "url": "sessionKey",
              "valueString": "abcdefghijklmn"
            }
          ],
          "url": "http://fhir.naboto.com/4.0.1/NabotoProfiles/StructureDefinition/virtual-service-contact-detail"
        }
      ],
      "type": [
        {
          "coding": [
            {
              "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
              "code": "PPRF"
            }
          ]
        }
      ],
      "actor": {
        "reference": "https://naboto.com/practitioner/987654321",
        "type": "Practitioner",
        "display": "Naboto Practitioner 987654321"
      },
      "required": "required",
      "status": "accepted"
    },
    {
      "extension": [
        {
          "extension": [
            {
              "url": "channelType",
              "valueCoding": {
                "system": "http://fhir.naboto.com/4.0.1/NabotoProfiles/CodeSystem/naboto-vidcall-channel-type",
                "code": "visit-e"
              }
            },
            {
              "url": "address",
              "valueUrl": "https://patient.visit-e.at/1234567890"
            },
            {
              "url": "sessionKey",
              "valueString": "1234567890"
            }
          ],
          "url": "http://fhir.naboto.com/4.0.1/NabotoProfiles/StructureDefinition/virtual-service-contact-detail"
        }
      ],
      "type": [
        {
          "coding": [
            {
              "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
              "code": "SBJ"
            }
          ]
        }
      ],
      "actor": {
        "reference": "https://naboto.com/patients/1337",
        "type": "Patient",
        "display": "Naboto Patient 1337"
      },
      "status": "accepted"
    }
  ]
}"#;
