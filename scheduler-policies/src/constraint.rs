//! Placement constraints with Marathon's semantics, on any agent attribute.
//!
//! | operator   | value            | an agent is allowed when...                                   |
//! |------------|------------------|---------------------------------------------------------------|
//! | `UNIQUE`   | -                | no task of the job runs on an agent with the same value       |
//! | `CLUSTER`  | value (optional) | its value equals `value`; without one, equals the value the   |
//! |            |                  | job's tasks already use (the first placement pins it)         |
//! | `GROUP_BY` | count (optional) | its value has the fewest tasks of the job among ALL values of |
//! |            |                  | the attribute present on the job's eligible agents            |
//! | `LIKE`     | regex            | its value fully matches the regex                             |
//! | `UNLIKE`   | regex            | its value does not fully match (a missing attribute passes)   |
//! | `MAX_PER`  | n                | fewer than n tasks of the job run on agents with its value    |
//! | `IS`       | value            | its value equals `value`                                      |
//! | `MATCH`    | tag query        | its attributes satisfy the query (`ocean_spec::tag_query`);   |
//! |            |                  | the attribute is `tags`: the query names the attributes       |
//!
//! As in Marathon, an agent without the attribute fails every operator but
//! `UNLIKE`. Counting uses the job's running tasks plus the placements made
//! earlier in the same plan.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A constraint operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Operator {
    /// One task per attribute value.
    Unique,
    /// All tasks on one attribute value.
    Cluster,
    /// Balance tasks over all values of the attribute.
    GroupBy,
    /// Value fully matches a regex.
    Like,
    /// Value does not fully match a regex.
    Unlike,
    /// At most n tasks per attribute value.
    MaxPer,
    /// Value equals.
    Is,
    /// The agent's attributes satisfy a tag query (`idc.c3 !status.problem`).
    Match,
}

impl Operator {
    /// All operators, in declaration order.
    pub const ALL: [Operator; 8] = [
        Operator::Unique,
        Operator::Cluster,
        Operator::GroupBy,
        Operator::Like,
        Operator::Unlike,
        Operator::MaxPer,
        Operator::Is,
        Operator::Match,
    ];

    /// The spelling used in job specs (`GROUP_BY`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Unique => "UNIQUE",
            Operator::Cluster => "CLUSTER",
            Operator::GroupBy => "GROUP_BY",
            Operator::Like => "LIKE",
            Operator::Unlike => "UNLIKE",
            Operator::MaxPer => "MAX_PER",
            Operator::Is => "IS",
            Operator::Match => "MATCH",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operator {
    type Err = ConstraintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operator::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ConstraintError::UnknownOperator(s.to_string()))
    }
}

/// Why a constraint is malformed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConstraintError {
    /// The operator is not one of [`Operator::ALL`].
    #[error("unknown constraint operator {0:?}; expected one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS, MATCH")]
    UnknownOperator(String),
    /// A constraint array must be `[attribute, OPERATOR]` or
    /// `[attribute, OPERATOR, value]`.
    #[error("a constraint has 2 or 3 fields ([attribute, OPERATOR, value]), got {0}")]
    Arity(usize),
    /// The attribute name is empty.
    #[error("constraint attribute is empty")]
    EmptyAttribute,
    /// The operator needs a value.
    #[error("{attribute}:{operator} needs a value")]
    MissingValue {
        /// Attribute of the constraint.
        attribute: String,
        /// Operator of the constraint.
        operator: Operator,
    },
    /// `UNIQUE` takes no value.
    #[error("{attribute}:UNIQUE takes no value")]
    UnexpectedValue {
        /// Attribute of the constraint.
        attribute: String,
    },
    /// `MAX_PER` and `GROUP_BY` take a positive integer.
    #[error("{attribute}:{operator} needs a positive integer, got {value:?}")]
    NotACount {
        /// Attribute of the constraint.
        attribute: String,
        /// Operator of the constraint.
        operator: Operator,
        /// The offending value.
        value: String,
    },
    /// `LIKE` and `UNLIKE` take a valid regular expression.
    #[error("{attribute}:{operator} has an invalid regular expression {value:?}: {reason}")]
    BadRegex {
        /// Attribute of the constraint.
        attribute: String,
        /// Operator of the constraint.
        operator: Operator,
        /// The offending pattern.
        value: String,
        /// The regex engine's message.
        reason: String,
    },
    /// `MATCH` takes a valid tag query.
    #[error("{attribute}:MATCH has an invalid tag query {value:?}: {reason}")]
    BadQuery {
        /// Attribute of the constraint.
        attribute: String,
        /// The offending query.
        value: String,
        /// What the parser said, with the position.
        reason: String,
    },
}

/// One placement constraint: `[attribute, OPERATOR, value]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Constraint {
    /// Agent attribute (`hostname`, `idc`, `rack`...).
    pub attribute: String,
    /// The operator.
    pub operator: Operator,
    /// The operator's argument, when it takes one.
    pub value: Option<String>,
}

impl Constraint {
    /// Builds a constraint without validating it (see [`Constraint::validate`]).
    pub fn new(attribute: impl Into<String>, operator: Operator, value: Option<&str>) -> Self {
        Self {
            attribute: attribute.into(),
            operator,
            value: value.map(str::to_string),
        }
    }

    /// Parses a job spec's `[attr, OP]` or `[attr, OP, value]` array and
    /// validates it.
    pub fn from_parts<S: AsRef<str>>(parts: &[S]) -> Result<Self, ConstraintError> {
        let (attribute, op, value) = match parts {
            [a, o] => (a.as_ref(), o.as_ref(), None),
            [a, o, v] => (a.as_ref(), o.as_ref(), Some(v.as_ref())),
            _ => return Err(ConstraintError::Arity(parts.len())),
        };
        let c = Constraint::new(attribute, op.parse()?, value);
        c.validate()?;
        Ok(c)
    }

    /// Checks the value against the operator (regexes compile, counts are
    /// positive integers). The planner reports an invalid constraint as the
    /// reason its job waits; the master should reject it at the edge.
    pub fn validate(&self) -> Result<(), ConstraintError> {
        self.validate_shape()?;
        match self.operator {
            Operator::Like | Operator::Unlike => self.regex().map(|_| ()),
            Operator::Match => self.query().map(|_| ()),
            _ => Ok(()),
        }
    }

    /// [`Constraint::validate`] without compiling regexes (the planner
    /// compiles each distinct pattern once and reports errors itself).
    pub(crate) fn validate_shape(&self) -> Result<(), ConstraintError> {
        if self.attribute.is_empty() {
            return Err(ConstraintError::EmptyAttribute);
        }
        let missing = || ConstraintError::MissingValue {
            attribute: self.attribute.clone(),
            operator: self.operator,
        };
        match self.operator {
            Operator::Unique => match &self.value {
                Some(_) => Err(ConstraintError::UnexpectedValue {
                    attribute: self.attribute.clone(),
                }),
                None => Ok(()),
            },
            Operator::Cluster => Ok(()),
            Operator::Is => self.value.as_ref().map(|_| ()).ok_or_else(missing),
            Operator::GroupBy => match &self.value {
                None => Ok(()),
                Some(_) => self.count().map(|_| ()),
            },
            Operator::MaxPer => match &self.value {
                None => Err(missing()),
                Some(_) => self.count().map(|_| ()),
            },
            Operator::Like | Operator::Unlike | Operator::Match => match &self.value {
                None => Err(missing()),
                Some(_) => Ok(()),
            },
        }
    }

    /// `attribute:OPERATOR` or `attribute:OPERATOR:value`, as shown in
    /// explanations.
    pub fn label(&self) -> String {
        match &self.value {
            Some(v) => format!("{}:{}:{}", self.attribute, self.operator, v),
            None => format!("{}:{}", self.attribute, self.operator),
        }
    }

    /// The positive integer value of `MAX_PER` / `GROUP_BY`.
    pub(crate) fn count(&self) -> Result<u32, ConstraintError> {
        let v = self.value.as_deref().unwrap_or("");
        match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConstraintError::NotACount {
                attribute: self.attribute.clone(),
                operator: self.operator,
                value: v.to_string(),
            }),
        }
    }

    /// The anchored (full-match) regex of `LIKE` / `UNLIKE`.
    pub(crate) fn regex(&self) -> Result<regex::Regex, ConstraintError> {
        let v = self.value.as_deref().unwrap_or("");
        regex::Regex::new(&format!("^(?:{v})$")).map_err(|e| ConstraintError::BadRegex {
            attribute: self.attribute.clone(),
            operator: self.operator,
            value: v.to_string(),
            reason: e.to_string(),
        })
    }

    /// The tag query of `MATCH`.
    pub(crate) fn query(&self) -> Result<ocean_spec::tag_query::TagQuery, ConstraintError> {
        let v = self.value.as_deref().unwrap_or("");
        ocean_spec::tag_query::TagQuery::parse_field(v, "value").map_err(|e| {
            ConstraintError::BadQuery {
                attribute: self.attribute.clone(),
                value: v.to_string(),
                reason: e.reason,
            }
        })
    }

    /// True for operators whose verdict depends on where the job's tasks
    /// already are (evaluated per placement, not once per job).
    pub fn is_dynamic(&self) -> bool {
        match self.operator {
            Operator::Unique | Operator::GroupBy | Operator::MaxPer => true,
            Operator::Cluster => self.value.is_none(),
            Operator::Like | Operator::Unlike | Operator::Is | Operator::Match => false,
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_marathon_arrays() {
        let c = Constraint::from_parts(&["hostname", "UNIQUE"]).unwrap();
        assert_eq!(c, Constraint::new("hostname", Operator::Unique, None));
        let c = Constraint::from_parts(&["rack", "max_per", "2"]).unwrap();
        assert_eq!(c.operator, Operator::MaxPer);
        assert_eq!(c.count().unwrap(), 2);
        assert_eq!(c.label(), "rack:MAX_PER:2");
    }

    #[test]
    fn rejects_malformed_constraints() {
        assert!(matches!(
            Constraint::from_parts(&["a"]),
            Err(ConstraintError::Arity(1))
        ));
        assert!(matches!(
            Constraint::from_parts(&["a", "NEAR"]),
            Err(ConstraintError::UnknownOperator(_))
        ));
        assert!(matches!(
            Constraint::from_parts(&["a", "MAX_PER", "0"]),
            Err(ConstraintError::NotACount { .. })
        ));
        assert!(matches!(
            Constraint::from_parts(&["a", "LIKE", "("]),
            Err(ConstraintError::BadRegex { .. })
        ));
        assert!(matches!(
            Constraint::from_parts(&["a", "IS"]),
            Err(ConstraintError::MissingValue { .. })
        ));
        assert!(matches!(
            Constraint::from_parts(&["a", "UNIQUE", "x"]),
            Err(ConstraintError::UnexpectedValue { .. })
        ));
        assert!(matches!(
            Constraint::from_parts(&["", "UNIQUE"]),
            Err(ConstraintError::EmptyAttribute)
        ));
    }

    #[test]
    fn like_is_a_full_match() {
        let c = Constraint::new("hostname", Operator::Like, Some("web[0-9]"));
        let re = c.regex().unwrap();
        assert!(re.is_match("web1"));
        assert!(!re.is_match("web12"));
        assert!(!re.is_match("xweb1"));
        // Alternation stays inside the anchors.
        let c = Constraint::new("idc", Operator::Like, Some("c3|lg"));
        let re = c.regex().unwrap();
        assert!(re.is_match("lg"));
        assert!(!re.is_match("c3x"));
    }

    #[test]
    fn match_takes_a_tag_query() {
        let c = Constraint::from_parts(&["tags", "MATCH", "idc.c3 !status.problem"]).unwrap();
        assert!(!c.is_dynamic());
        assert!(matches!(
            Constraint::from_parts(&["tags", "MATCH", "idc.c*"]),
            Err(ConstraintError::BadQuery { .. })
        ));
        assert!(matches!(
            Constraint::from_parts(&["tags", "MATCH"]),
            Err(ConstraintError::MissingValue { .. })
        ));
    }

    #[test]
    fn dynamic_operators() {
        assert!(Constraint::new("h", Operator::Unique, None).is_dynamic());
        assert!(Constraint::new("h", Operator::Cluster, None).is_dynamic());
        assert!(!Constraint::new("h", Operator::Cluster, Some("x")).is_dynamic());
        assert!(!Constraint::new("h", Operator::Like, Some("x")).is_dynamic());
    }
}
