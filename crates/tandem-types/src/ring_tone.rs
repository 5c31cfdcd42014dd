//! The `ringTone` codes Twilio accepts for `<Dial ringTone>`. Their sounds
//! (frequencies, cadences, sources) are tandem-media's `tones` table.

use std::fmt;
use std::str::FromStr;

use crate::UnknownValue;

macro_rules! ring_tones {
    ($( $(#[$attr:meta])* $variant:ident = $code:literal, $country:literal; )*) => {
        /// A `ringTone` code. The default, `us`, is what Tandem plays when
        /// no `ringTone` is given and no early media arrives.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub enum RingTone {
            $( #[doc = $country] $(#[$attr])* $variant, )*
        }

        impl RingTone {
            /// Every code, in Twilio's documented order.
            pub const ALL: &'static [RingTone] = &[$(RingTone::$variant),*];

            /// The code as Twilio writes it (`us-old`, `uk`, ...).
            pub fn code(self) -> &'static str {
                match self { $(RingTone::$variant => $code,)* }
            }

            /// The country's name in English.
            pub fn country(self) -> &'static str {
                match self { $(RingTone::$variant => $country,)* }
            }
        }

        impl FromStr for RingTone {
            type Err = UnknownValue;
            /// Parses a code, ignoring ASCII case.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $( if s.eq_ignore_ascii_case($code) { return Ok(RingTone::$variant); } )*
                Err(UnknownValue { what: "ringTone" })
            }
        }
    };
}

impl RingTone {
    /// Position in [`RingTone::ALL`] (a dense index for per-tone tables).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RingTone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

ring_tones! {
    At = "at", "Austria";
    Au = "au", "Australia";
    Bg = "bg", "Bulgaria";
    Br = "br", "Brazil";
    Be = "be", "Belgium";
    Ch = "ch", "Switzerland";
    Cl = "cl", "Chile";
    Cn = "cn", "China";
    Cz = "cz", "Czech Republic";
    De = "de", "Germany";
    Dk = "dk", "Denmark";
    Ee = "ee", "Estonia";
    Es = "es", "Spain";
    Fi = "fi", "Finland";
    Fr = "fr", "France";
    Gr = "gr", "Greece";
    Hu = "hu", "Hungary";
    Il = "il", "Israel";
    In = "in", "India";
    It = "it", "Italy";
    Lt = "lt", "Lithuania";
    Jp = "jp", "Japan";
    Mx = "mx", "Mexico";
    My = "my", "Malaysia";
    Nl = "nl", "Netherlands";
    No = "no", "Norway";
    Nz = "nz", "New Zealand";
    Ph = "ph", "Philippines";
    Pl = "pl", "Poland";
    Pt = "pt", "Portugal";
    Ru = "ru", "Russia";
    Se = "se", "Sweden";
    Sg = "sg", "Singapore";
    Th = "th", "Thailand";
    Uk = "uk", "United Kingdom";
    #[default]
    Us = "us", "United States";
    UsOld = "us-old", "United States (pre-precise tone plan)";
    Tw = "tw", "Taiwan";
    Ve = "ve", "Venezuela";
    Za = "za", "South Africa";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_codes_round_trip() {
        assert_eq!(RingTone::ALL.len(), 40);
        for (i, t) in RingTone::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(t.code().parse(), Ok(*t));
            assert_eq!(t.code().to_uppercase().parse::<RingTone>(), Ok(*t));
        }
        assert_eq!(RingTone::default(), RingTone::Us);
        assert_eq!("us-old".parse(), Ok(RingTone::UsOld));
        assert!("xx".parse::<RingTone>().is_err());
    }
}
