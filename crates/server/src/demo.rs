//! The demo seed (`polyclinic serve --demo`) and the curl lines printed for it.

use polyclinic_store::seed::SeedDoc;

/// The demo seed document: two tenants with practitioners, healthcare
/// services, a facility with addresses, a waiting room and a care location,
/// and credentials for every dialect.
pub const DEMO_SEED: &str = include_str!("demo-seed.json");

/// Parses the embedded demo seed.
pub fn seed_doc() -> anyhow::Result<SeedDoc> {
    Ok(serde_json::from_str(DEMO_SEED)?)
}

/// One ready-to-paste curl line per mounted dialect, with the demo's
/// credentials. A dialect that is not mounted prints nothing: every line
/// printed answers 2xx.
pub fn curl_lines(base: &str) -> Vec<(&'static str, String)> {
    let all = [
        (
            "embassy",
            format!("curl -s -H 'X-Visiba-Care-API-Key: demo-embassy-key-acme' '{base}/embassy/HealthcareService'"),
        ),
        ("naboto", format!("curl -s -H 'Authorization: Bearer demo-naboto-token-acme' '{base}/naboto/metadata'")),
        (
            "docplanner",
            format!(
                "curl -s -u demo-docplanner-acme:demo-docplanner-secret -d 'grant_type=client_credentials&scope=integration' '{base}/oauth/v2/token'"
            ),
        ),
        ("solo", format!("curl -s -H 'Api-Key: demo-solo-key-acme' '{base}/qapi/v1/waiting-rooms'")),
        ("fhir", format!("curl -s -H 'Authorization: Bearer demo-fhir-token-acme' '{base}/fhir/metadata'")),
    ];
    all.into_iter().filter(|(name, _)| crate::MOUNTED_DIALECTS.iter().any(|d| d.as_str() == *name)).collect()
}
