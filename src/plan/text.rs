//! The fixed text form of requests that fingerprints hash.
//!
//! A receipt stores a fingerprint of its request, so that the same key with a different
//! request is refused ([`LifecycleError::KeyReused`](crate::lifecycle::LifecycleError)). The
//! fingerprint is 64-bit FNV-1a ([`fnv`]) of the text below, written by this module's own code
//! (never by `Debug`, whose output may change between Rust or crate versions): a request
//! stored by one version is recognised by the next. The forms are pinned by test vectors.
//!
//! - A text value (an id, a code) is written `"…"` with `\` and `"` escaped by a `\`; other
//!   characters as they are. An optional one is `Some("…")` or `None`.
//! - An acting party: `Buyer(UserId("bob"))`, `Merchant`, `System`.
//! - An order step: `step=<step>|by=<acting party>|<detail>`; the detail is empty for pay,
//!   cancel and complete, and for a refund
//!   `RefundRequest { kind: Merchant|Buyer, units: None|Some([RefundUnits { line: 0, quantity: 1 }, …]), shipping: true|false }`.
//! - A lock: `order=<id>|user=<id>|channel=<id>|kind=New|Returning|member=<optional text>|`,
//!   then `seg=<id>|` per segment, `cur=<code>|ship=<amount>|`, when the shipping fee is split
//!   per shop `parcel=<len>:<shop>|fee=<amount>|` per parcel, per line
//!   `line=<sku>:<unit price>:<quantity>:<optional shop>:<on sale>:` with `<category>,` per
//!   category and `|`; then `best|` or `sel=<offer>|` per chosen offer (`Coupon(CouponId("…"))`,
//!   `Code(PromoCode("…"))`, `Promotion(TemplateId("…"))`); then `code=<code>|` per typed code.
//!   Amounts are written as [`Money`](crate::money::Money)'s `Display` (`12.50 CNY`).
//!
//! These forms equal what Rust's `Debug` printed for the same values when fingerprints were
//! first stored (for ids of printable characters), so receipts written before keep matching.

use std::fmt::Write as _;

use super::ids::fnv;
use crate::cart::CustomerKind;
use crate::checkout::OfferId;
use crate::lifecycle::{Actor, RefundKind, RefundRequest};

/// Text being built for a fingerprint.
#[derive(Debug, Default)]
pub(crate) struct Text(pub(crate) String);

impl Text {
    /// Appends raw text.
    pub(crate) fn raw(&mut self, s: &str) -> &mut Text {
        self.0.push_str(s);
        self
    }

    /// Appends a text value, quoted.
    pub(crate) fn quoted(&mut self, s: &str) -> &mut Text {
        self.0.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                self.0.push('\\');
            }
            self.0.push(c);
        }
        self.0.push('"');
        self
    }

    /// Appends `Kind("…")`.
    pub(crate) fn named(&mut self, kind: &str, s: &str) -> &mut Text {
        self.raw(kind).raw("(").quoted(s).raw(")")
    }

    /// Appends an optional text value: `Some("…")` or `None`.
    pub(crate) fn optional(&mut self, s: Option<&str>) -> &mut Text {
        match s {
            Some(s) => self.named("Some", s),
            None => self.raw("None"),
        }
    }

    /// Appends anything with a `Display`.
    pub(crate) fn show(&mut self, v: impl std::fmt::Display) -> &mut Text {
        let _ = write!(self.0, "{v}");
        self
    }

    /// Appends an acting party.
    pub(crate) fn actor(&mut self, by: &Actor) -> &mut Text {
        match by {
            Actor::Buyer(u) => self.raw("Buyer(").named("UserId", u.as_str()).raw(")"),
            Actor::Merchant => self.raw("Merchant"),
            Actor::System => self.raw("System"),
        }
    }

    /// Appends a customer kind.
    pub(crate) fn customer(&mut self, kind: CustomerKind) -> &mut Text {
        self.raw(match kind {
            CustomerKind::New => "New",
            CustomerKind::Returning => "Returning",
        })
    }

    /// Appends an offer's id.
    pub(crate) fn offer(&mut self, offer: &OfferId) -> &mut Text {
        match offer {
            OfferId::Coupon(c) => self.raw("Coupon(").named("CouponId", c.as_str()),
            OfferId::Code(c) => self.raw("Code(").named("PromoCode", c.as_str()),
            OfferId::Promotion(t) => self.raw("Promotion(").named("TemplateId", t.as_str()),
        }
        .raw(")")
    }

    /// Appends a refund request.
    pub(crate) fn refund(&mut self, r: &RefundRequest) -> &mut Text {
        self.raw("RefundRequest { kind: ").raw(match r.kind {
            RefundKind::Merchant => "Merchant",
            RefundKind::Buyer => "Buyer",
        });
        self.raw(", units: ");
        match &r.units {
            None => self.raw("None"),
            Some(units) => {
                self.raw("Some([");
                for (i, u) in units.iter().enumerate() {
                    if i > 0 {
                        self.raw(", ");
                    }
                    self.raw("RefundUnits { line: ")
                        .show(u.line)
                        .raw(", quantity: ")
                        .show(u.quantity)
                        .raw(" }");
                }
                self.raw("])")
            }
        };
        self.raw(", shipping: ").show(r.shipping).raw(" }")
    }

    /// The fingerprint of the text.
    pub(crate) fn fingerprint(&self) -> u64 {
        fnv(&[&self.0], 0)
    }
}

/// The text of an order step: who acted and what was asked.
pub(crate) fn step(step: &str, by: &Actor, refund: Option<&RefundRequest>) -> Text {
    let mut t = Text::default();
    t.raw("step=").raw(step).raw("|by=").actor(by).raw("|");
    if let Some(r) = refund {
        t.refund(r);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{CouponId, TemplateId, UserId};
    use crate::lifecycle::RefundUnits;
    use crate::rule::PromoCode;

    #[test]
    fn step_texts_are_pinned() {
        let bob = Actor::Buyer(UserId::new("bob").unwrap());
        let r = RefundRequest {
            kind: RefundKind::Merchant,
            units: Some(vec![
                RefundUnits {
                    line: 0,
                    quantity: 1,
                },
                RefundUnits {
                    line: 2,
                    quantity: 3,
                },
            ]),
            shipping: false,
        };
        let t = step("refund", &bob, Some(&r));
        assert_eq!(
            t.0,
            "step=refund|by=Buyer(UserId(\"bob\"))|RefundRequest { kind: Merchant, units: \
             Some([RefundUnits { line: 0, quantity: 1 }, RefundUnits { line: 2, quantity: 3 }]), \
             shipping: false }"
        );
        assert_eq!(t.fingerprint(), FP_REFUND);
        let whole = RefundRequest::whole(RefundKind::Buyer);
        assert_eq!(
            step("refund", &Actor::System, Some(&whole)).0,
            "step=refund|by=System|RefundRequest { kind: Buyer, units: None, shipping: true }"
        );
        assert_eq!(
            step("pay", &Actor::Merchant, None).0,
            "step=pay|by=Merchant|"
        );
        assert_eq!(step("pay", &Actor::Merchant, None).fingerprint(), FP_PAY);
    }

    /// The forms equal the `Debug` text fingerprints hashed before they were written here, so
    /// stored receipts keep matching.
    #[test]
    fn texts_equal_the_debug_form_receipts_were_stored_with() {
        let by = Actor::Buyer(UserId::new("a \"quoted\" \\ name").unwrap());
        let mut t = Text::default();
        t.actor(&by);
        assert_eq!(t.0, format!("{by:?}"));
        let r = RefundRequest {
            kind: RefundKind::Buyer,
            units: Some(vec![]),
            shipping: true,
        };
        assert_eq!(Text::default().refund(&r).0, format!("{r:?}"));
        for o in [
            OfferId::Coupon(CouponId::new("t/k").unwrap()),
            OfferId::Code(PromoCode::new("SAVE-10").unwrap()),
            OfferId::Promotion(TemplateId::new("p").unwrap()),
        ] {
            assert_eq!(Text::default().offer(&o).0, format!("{o:?}"));
        }
        for k in [CustomerKind::New, CustomerKind::Returning] {
            assert_eq!(Text::default().customer(k).0, format!("{k:?}"));
        }
        let s = Some("gold");
        assert_eq!(Text::default().optional(s).0, format!("{s:?}"));
        assert_eq!(Text::default().optional(None).0, "None");
    }

    const FP_REFUND: u64 = 16_842_630_261_894_164_169;
    const FP_PAY: u64 = 11_857_242_997_223_980_141;
}
