//! Placement constraints in Marathon's array form.
//!
//! On the wire a constraint is `[attribute, OPERATOR]` or
//! `[attribute, OPERATOR, value]`, e.g. `["hostname", "UNIQUE"]` or
//! `["rack", "GROUP_BY", "3"]`. In Rust it is the typed [`Constraint`];
//! the custom serde impls convert between the two, so error paths point
//! into the array (`constraints[2][1]` is the operator of the third one).

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::validate::Collector;

/// How a constraint restricts placement on the agents' `attribute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConstraintOperator {
    /// Every task on a different value of the attribute (no value).
    Unique,
    /// All tasks on agents whose attribute equals the value (value required).
    Cluster,
    /// Spread tasks evenly over the attribute's values; the optional value is
    /// the expected number of distinct values.
    GroupBy,
    /// Only agents whose attribute matches the regex value (whole match).
    Like,
    /// Only agents whose attribute does not match the regex value.
    Unlike,
    /// At most value (a positive integer) tasks per attribute value.
    MaxPer,
    /// Only agents whose attribute equals the value exactly.
    Is,
    /// Only agents whose tags satisfy the tag query in the value
    /// (`["tags", "MATCH", "idc.c3 !status.problem"]`, see
    /// [`crate::tag_query`]); the attribute is always `tags`.
    Match,
}

impl ConstraintOperator {
    /// All operators, in the order they are listed in error messages.
    pub const ALL: [ConstraintOperator; 8] = [
        ConstraintOperator::Unique,
        ConstraintOperator::Cluster,
        ConstraintOperator::GroupBy,
        ConstraintOperator::Like,
        ConstraintOperator::Unlike,
        ConstraintOperator::MaxPer,
        ConstraintOperator::Is,
        ConstraintOperator::Match,
    ];

    /// The wire name, e.g. `GROUP_BY`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConstraintOperator::Unique => "UNIQUE",
            ConstraintOperator::Cluster => "CLUSTER",
            ConstraintOperator::GroupBy => "GROUP_BY",
            ConstraintOperator::Like => "LIKE",
            ConstraintOperator::Unlike => "UNLIKE",
            ConstraintOperator::MaxPer => "MAX_PER",
            ConstraintOperator::Is => "IS",
            ConstraintOperator::Match => "MATCH",
        }
    }

    /// Parses a wire name (exact, upper case).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }

    fn expected_list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for ConstraintOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ConstraintOperator {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ConstraintOperator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        ConstraintOperator::from_name(&name).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown operator '{name}'; expected one of {}",
                ConstraintOperator::expected_list()
            ))
        })
    }
}

/// One placement constraint; serialized as `[attribute, OPERATOR(, value)?]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Constraint {
    /// Agent attribute the constraint is about, e.g. `hostname` or `idc`.
    pub attribute: String,
    /// How the attribute restricts placement.
    pub operator: ConstraintOperator,
    /// The operator's argument, if any (always a string; integers given in
    /// the spec are converted).
    pub value: Option<String>,
}

impl Serialize for Constraint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = if self.value.is_some() { 3 } else { 2 };
        let mut seq = serializer.serialize_seq(Some(len))?;
        seq.serialize_element(&self.attribute)?;
        seq.serialize_element(&self.operator)?;
        if let Some(value) = &self.value {
            seq.serialize_element(value)?;
        }
        seq.end()
    }
}

const SHAPE: &str = "a constraint must be [attribute, OPERATOR] or [attribute, OPERATOR, value]";

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ConstraintVisitor)
    }
}

struct ConstraintVisitor;

impl<'de> Visitor<'de> for ConstraintVisitor {
    type Value = Constraint;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array [attribute, OPERATOR] or [attribute, OPERATOR, value]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Constraint, A::Error> {
        let attribute: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom(format!("{SHAPE}; got an empty array")))?;
        let operator: ConstraintOperator = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom(format!("{SHAPE}; the operator is missing")))?;
        let value = seq.next_element::<StringOrInteger>()?.map(|v| v.0);
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format!(
                "{SHAPE}; got more than 3 elements"
            )));
        }
        Ok(Constraint {
            attribute,
            operator,
            value,
        })
    }
}

/// A constraint value: a string, or an integer taken as its decimal string
/// (so YAML's `[rack, MAX_PER, 2]` works).
struct StringOrInteger(String);

impl<'de> Deserialize<'de> for StringOrInteger {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StringOrInteger;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringOrInteger, E> {
                Ok(StringOrInteger(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StringOrInteger, E> {
                Ok(StringOrInteger(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StringOrInteger, E> {
                Ok(StringOrInteger(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Longest attribute name and value accepted.
const MAX_ATTRIBUTE_LEN: usize = 128;
const MAX_VALUE_LEN: usize = 1024;

impl Constraint {
    /// Checks the operator/value rules; `path` is e.g. `constraints[0]`.
    pub(crate) fn check(&self, path: &str, errors: &mut Collector) {
        let attr_ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/');
        if self.attribute.is_empty()
            || self.attribute.len() > MAX_ATTRIBUTE_LEN
            || !self.attribute.bytes().all(attr_ok)
        {
            errors.push(
                format!("{path}[0]"),
                format!(
                    "attribute must be 1-{MAX_ATTRIBUTE_LEN} characters of A-Z, a-z, 0-9, '_', '.', '-', '/'; got '{}'",
                    self.attribute
                ),
            );
        }
        let op = self.operator;
        let value_path = format!("{path}[2]");
        let value = match (&self.value, op) {
            (Some(_), ConstraintOperator::Unique) => {
                errors.push(value_path, "UNIQUE takes no value");
                return;
            }
            (None, ConstraintOperator::Unique | ConstraintOperator::GroupBy) => return,
            (None, _) => {
                errors.push(
                    path,
                    format!("operator {op} requires a value: [attribute, {op}, value]"),
                );
                return;
            }
            (Some(value), _) => value,
        };
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            errors.push(
                value_path,
                format!("value must be 1-{MAX_VALUE_LEN} characters"),
            );
            return;
        }
        match op {
            ConstraintOperator::GroupBy | ConstraintOperator::MaxPer => {
                let digits = value.bytes().all(|b| b.is_ascii_digit());
                if !(digits && matches!(value.parse::<u32>(), Ok(n) if n > 0)) {
                    errors.push(
                        value_path,
                        format!("{op} value must be a positive integer; got '{value}'"),
                    );
                }
            }
            ConstraintOperator::Like | ConstraintOperator::Unlike => {
                if let Err(e) = regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(1 << 20)
                    .build()
                {
                    let detail = e.to_string().replace('\n', " ");
                    errors.push(
                        value_path,
                        format!("{op} value must be a valid regular expression: {detail}"),
                    );
                }
            }
            ConstraintOperator::Match => {
                if self.attribute != "tags" {
                    errors.push(
                        format!("{path}[0]"),
                        format!(
                            "MATCH is about the agent's tags: the attribute must be 'tags'; got '{}'",
                            self.attribute
                        ),
                    );
                }
                if let Err(e) = crate::tag_query::TagQuery::parse_field(value, &value_path) {
                    errors.push(e.field, e.reason);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Constraint, String> {
        let mut de = serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            format!("{path}: {}", e.into_inner())
        })
    }

    #[test]
    fn array_form_round_trips() {
        for json in [
            r#"["hostname","UNIQUE"]"#,
            r#"["rack","GROUP_BY","3"]"#,
            r#"["idc","LIKE","c[0-9]+"]"#,
        ] {
            let c = parse(json).expect("valid");
            assert_eq!(serde_json::to_string(&c).expect("serializes"), json);
        }
    }

    #[test]
    fn integer_values_become_strings() {
        let c = parse(r#"["hostname","MAX_PER",2]"#).expect("valid");
        assert_eq!(c.value.as_deref(), Some("2"));
    }

    #[test]
    fn unknown_operator_is_pointed_at() {
        let e = parse(r#"["hostname","FOO"]"#).expect_err("invalid");
        assert!(
            e.starts_with("[1]: unknown operator 'FOO'; expected one of UNIQUE, CLUSTER, GROUP_BY"),
            "{e}"
        );
    }

    #[test]
    fn wrong_shapes() {
        assert!(parse("[]").expect_err("empty").contains("empty array"));
        assert!(parse(r#"["a"]"#)
            .expect_err("short")
            .contains("operator is missing"));
        assert!(parse(r#"["a","IS","b","c"]"#)
            .expect_err("long")
            .contains("more than 3"));
        assert!(parse(r#""hostname""#).is_err());
    }

    fn check(json: &str) -> Vec<(String, String)> {
        let c = parse(json).expect("parses");
        let mut errors = Collector::default();
        c.check("constraints[0]", &mut errors);
        errors
            .into_vec()
            .into_iter()
            .map(|e| (e.field, e.reason))
            .collect()
    }

    #[test]
    fn operator_value_rules() {
        assert!(check(r#"["hostname","UNIQUE"]"#).is_empty());
        assert!(check(r#"["rack","GROUP_BY"]"#).is_empty());
        assert!(check(r#"["rack","GROUP_BY","2"]"#).is_empty());
        assert!(check(r#"["hostname","MAX_PER","1"]"#).is_empty());
        assert!(check(r#"["idc","LIKE","c3|c4"]"#).is_empty());
        assert!(check(r#"["idc","IS","c3"]"#).is_empty());
        assert!(check(r#"["idc","CLUSTER","c3"]"#).is_empty());

        let fields = |json| check(json).into_iter().map(|e| e.0).collect::<Vec<_>>();
        assert_eq!(
            fields(r#"["hostname","UNIQUE","x"]"#),
            ["constraints[0][2]"]
        );
        assert_eq!(fields(r#"["idc","CLUSTER"]"#), ["constraints[0]"]);
        assert_eq!(fields(r#"["idc","IS"]"#), ["constraints[0]"]);
        assert_eq!(fields(r#"["idc","LIKE"]"#), ["constraints[0]"]);
        assert_eq!(fields(r#"["idc","MAX_PER"]"#), ["constraints[0]"]);
        assert_eq!(fields(r#"["idc","MAX_PER","0"]"#), ["constraints[0][2]"]);
        assert_eq!(fields(r#"["idc","GROUP_BY","x"]"#), ["constraints[0][2]"]);
        assert_eq!(fields(r#"["idc","LIKE","("]"#), ["constraints[0][2]"]);
        assert_eq!(fields(r#"["idc","UNLIKE","[a-"]"#), ["constraints[0][2]"]);
        assert_eq!(fields(r#"["","IS","x"]"#), ["constraints[0][0]"]);
        assert_eq!(fields(r#"["idc","IS",""]"#), ["constraints[0][2]"]);
        assert!(check(r#"["tags","MATCH","idc.c3,c4 !status.problem"]"#).is_empty());
        assert_eq!(fields(r#"["idc","MATCH","idc.c3"]"#), ["constraints[0][0]"]);
        let bad = check(r#"["tags","MATCH","idc.c3 rack.r1"]"#);
        assert_eq!(bad[0].0, "constraints[0][2]");
        assert!(bad[0].1.contains("position 8"), "{}", bad[0].1);
    }
}
