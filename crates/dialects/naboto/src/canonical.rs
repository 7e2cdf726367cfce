//! The IG's canonical URLs, which appear in three spellings across its
//! versions and prose (NOTES of IG 0.1.4): every spelling is accepted on
//! input, and an answer uses the spelling the client used for the same
//! kind of URL, else the first.

/// The base of a canonical URL, in the IG's three spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Base {
    /// `http://fhir.naboto.com/4.0.1/NabotoProfiles` (IG 0.1.1 output, the examples).
    #[default]
    Published,
    /// `http://fhir.naboto.com` (IG 0.1.4 source).
    Source,
    /// `http://hl7.at/fhir/NABOTO/R4` (the API guide's prose).
    Guide,
}

impl Base {
    const ALL: [Base; 3] = [Base::Published, Base::Source, Base::Guide];

    fn prefix(self) -> &'static str {
        match self {
            Base::Published => "http://fhir.naboto.com/4.0.1/NabotoProfiles",
            Base::Source => "http://fhir.naboto.com",
            Base::Guide => "http://hl7.at/fhir/NABOTO/R4",
        }
    }

    /// `{base}/StructureDefinition/{name}`.
    pub fn structure_definition(self, name: &str) -> String {
        format!("{}/StructureDefinition/{name}", self.prefix())
    }

    /// `{base}/CodeSystem/{name}`.
    pub fn code_system(self, name: &str) -> String {
        format!("{}/CodeSystem/{name}", self.prefix())
    }

    /// The spelling in which `url` is `{base}/{kind}/{name}`, if it is one.
    pub fn of(url: &str, kind: &str, name: &str) -> Option<Base> {
        Base::ALL.into_iter().find(|b| url == format!("{}/{kind}/{name}", b.prefix()))
    }
}

/// The profile of a NabotoPatient.
pub const PATIENT_PROFILE: &str = "naboto-patient";
/// The profile of a NabotoAppointment.
pub const APPOINTMENT_PROFILE: &str = "naboto-appointment";
/// The participant extension that makes an appointment a video call.
pub const VIRTUAL_SERVICE: &str = "virtual-service-contact-detail";
/// The appointment's note extension.
pub const NOTE: &str = "naboto-note";
/// The CodeSystem of video channels.
pub const CHANNEL_TYPE: &str = "naboto-vidcall-channel-type";

/// Which spelling the client used, per kind of URL; the answer's spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spellings {
    pub profile: Base,
    pub virtual_service: Base,
    pub note: Base,
    pub channel: Base,
}

/// The first spelling of `name` among `urls` (a resource's `meta.profile`),
/// else the first spelling.
pub fn profile_spelling<'a>(urls: impl IntoIterator<Item = &'a str>, name: &str) -> Base {
    urls.into_iter().find_map(|u| Base::of(u, "StructureDefinition", name)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_is_recognised_and_rendered_back() {
        for (url, base) in [
            (
                "http://fhir.naboto.com/4.0.1/NabotoProfiles/StructureDefinition/virtual-service-contact-detail",
                Base::Published,
            ),
            ("http://fhir.naboto.com/StructureDefinition/virtual-service-contact-detail", Base::Source),
            ("http://hl7.at/fhir/NABOTO/R4/StructureDefinition/virtual-service-contact-detail", Base::Guide),
        ] {
            assert_eq!(Base::of(url, "StructureDefinition", VIRTUAL_SERVICE), Some(base));
            assert_eq!(base.structure_definition(VIRTUAL_SERVICE), url);
        }
        assert_eq!(Base::of("http://example.org/StructureDefinition/naboto-note", "StructureDefinition", NOTE), None);
        assert_eq!(profile_spelling([], PATIENT_PROFILE), Base::Published);
    }
}
