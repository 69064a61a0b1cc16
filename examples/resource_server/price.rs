//! Prices as DRF's `DecimalField(max_digits=14, decimal_places=2, min_value=0)`:
//! parsed exactly (no floating point anywhere) into whole cents.

use serde_json::Value;

const MAX_DIGITS: usize = 14;
const DECIMAL_PLACES: usize = 2;

pub const INVALID: &str = "A valid number is required.";

/// A non-negative amount in cents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(pub i64);

impl Price {
    /// Parses a JSON string or number as DRF would, with DRF's messages.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let text = match value {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return Err(INVALID.into()),
        };
        if text.len() > 1000 {
            return Err("String value too large.".into());
        }
        let d = Decimal::parse(&text).ok_or_else(|| INVALID.to_owned())?;
        // DRF's validate_precision, on Python's Decimal.as_tuple().
        let (total, whole, places) = if d.exponent >= 0 {
            let total = d.digits.len() + d.exponent.unsigned_abs() as usize;
            (total, total, 0)
        } else {
            let places = d.exponent.unsigned_abs() as usize;
            if d.digits.len() > places {
                (d.digits.len(), d.digits.len() - places, places)
            } else {
                (places, 0, places)
            }
        };
        if total > MAX_DIGITS {
            return Err(format!(
                "Ensure that there are no more than {MAX_DIGITS} digits in total."
            ));
        }
        if places > DECIMAL_PLACES {
            return Err(format!(
                "Ensure that there are no more than {DECIMAL_PLACES} decimal places."
            ));
        }
        if whole > MAX_DIGITS - DECIMAL_PLACES {
            return Err(format!(
                "Ensure that there are no more than {} digits before the decimal point.",
                MAX_DIGITS - DECIMAL_PLACES
            ));
        }
        // At most 14 digits with at most 2 places: the value in cents fits an i64.
        let shift = u32::try_from(d.exponent + 2).map_err(|_| INVALID.to_owned())?;
        let mut cents: i64 = d.digits.parse().map_err(|_| INVALID.to_owned())?;
        cents = cents
            .checked_mul(10_i64.pow(shift))
            .ok_or_else(|| INVALID.to_owned())?;
        if d.negative && cents != 0 {
            return Err("Ensure this value is greater than or equal to 0.".into());
        }
        Ok(Self(cents))
    }

    /// `"12.50"`.
    pub fn to_text(self) -> String {
        format!("{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// A decimal as Python's `Decimal.as_tuple()` sees it: significant digits (leading
/// zeros dropped, at least one digit) and a base-10 exponent.
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    fn parse(s: &str) -> Option<Self> {
        let (negative, rest) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
            || exp.unsigned_abs() > 1000
        {
            return None;
        }
        let all = format!("{int}{frac}");
        let trimmed = all.trim_start_matches('0');
        let digits = if trimmed.is_empty() { "0" } else { trimmed };
        Some(Self {
            negative,
            digits: digits.to_owned(),
            exponent: exp - i64::try_from(frac.len()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(v: Value) -> Result<String, String> {
        Price::parse(&v).map(Price::to_text)
    }

    #[test]
    fn exact_two_places() {
        assert_eq!(text(json!("12.5")), Ok("12.50".into()));
        assert_eq!(text(json!("10")), Ok("10.00".into()));
        assert_eq!(text(json!(" 0.05 ")), Ok("0.05".into()));
        assert_eq!(text(json!("007.10")), Ok("7.10".into()));
        assert_eq!(text(json!(12.5)), Ok("12.50".into()));
        assert_eq!(text(json!(3)), Ok("3.00".into()));
        assert_eq!(text(json!("1e2")), Ok("100.00".into()));
        assert_eq!(text(json!("-0")), Ok("0.00".into()));
        assert_eq!(text(json!("999999999999.99")), Ok("999999999999.99".into()));
    }

    #[test]
    fn drf_messages() {
        let places = "Ensure that there are no more than 2 decimal places.";
        assert_eq!(text(json!("1.234")), Err(places.into()));
        assert_eq!(
            text(json!("1.500")),
            Err(places.into()),
            "DRF counts trailing zeros"
        );
        assert_eq!(
            text(json!("123456789012345")),
            Err("Ensure that there are no more than 14 digits in total.".into())
        );
        assert_eq!(
            text(json!("1234567890123.45")),
            Err("Ensure that there are no more than 14 digits in total.".into())
        );
        assert_eq!(
            text(json!("1234567890123.5")),
            Err("Ensure that there are no more than 12 digits before the decimal point.".into())
        );
        assert_eq!(
            text(json!("1234567890123")),
            Err("Ensure that there are no more than 12 digits before the decimal point.".into())
        );
        for bad in [
            json!("abc"),
            json!(""),
            json!("1.2.3"),
            json!("NaN"),
            json!("inf"),
            json!(true),
            json!([1]),
            json!("1e"),
            json!("."),
        ] {
            assert_eq!(text(bad.clone()), Err(INVALID.into()), "{bad}");
        }
        assert_eq!(
            text(json!("-1")),
            Err("Ensure this value is greater than or equal to 0.".into())
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::Price;

    /// The largest price: 12 digits before the point, 2 after.
    const MAX_CENTS: i64 = 99_999_999_999_999;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Printing a valid price and parsing the text gives the price back, from a
        /// JSON string and, where a double holds it exactly, from a JSON number too.
        #[test]
        fn print_then_parse_is_identity(cents in 0..=MAX_CENTS) {
            let price = Price(cents);
            let text = price.to_text();
            prop_assert_eq!(Price::parse(&Value::String(text.clone())), Ok(price));
            prop_assert_eq!(Price::parse(&json!(format!(" {text} "))), Ok(price));
            if cents % 100 == 0 {
                prop_assert_eq!(Price::parse(&json!(cents / 100)), Ok(price));
            }
        }

        /// Any string or number: a price within bounds that prints back to a text
        /// that parses to itself, or one of DRF's messages — never a panic.
        #[test]
        fn anything_parses_or_is_refused(
            value in prop_oneof![
                any::<String>().prop_map(Value::String),
                "[ +-]?[0-9]{0,16}(\\.[0-9]{0,4})?([eE][+-]?[0-9]{1,5})? ?".prop_map(Value::String),
                "[0-9.eE+-]{0,2048}".prop_map(Value::String),
                any::<f64>().prop_map(|f| json!(f)),
                any::<i64>().prop_map(|n| json!(n)),
                any::<u64>().prop_map(|n| json!(n)),
            ],
        ) {
            match Price::parse(&value) {
                Ok(price) => {
                    prop_assert!((0..=MAX_CENTS).contains(&price.0), "{value}: {price:?}");
                    prop_assert_eq!(Price::parse(&json!(price.to_text())), Ok(price));
                }
                Err(message) => prop_assert!(!message.is_empty()),
            }
        }
    }
}
