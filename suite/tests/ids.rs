//! Properties of identifiers.

use coupons::id::Channel;
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_text_is_accepted_or_rejected_without_panic(s in "\\PC{0,200}") {
        if let Ok(id) = Channel::new(&s) {
            prop_assert_eq!(id.as_str(), s.as_str());
        }
    }
}
