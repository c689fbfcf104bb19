//! `ocean acl`: the first admin token, tokens and policies
//! (`/v1/acl/...`). A new token's secret is printed once, to stdout, and
//! never again: the masters keep only its hash.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{Body, Client, Method};
use crate::cmd_client::{print_json, s};

/// `ocean acl ...`.
#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Make the first admin token (works once per cluster).
    Bootstrap,
    /// Tokens: create, list, delete.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Policies: create (or replace), list, delete.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `ocean acl token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token bound to policies; prints its secret once.
    Create {
        /// Its name (a label: lowercase letters, digits, '-').
        name: String,
        /// Policies it is bound to (comma-separated or repeated).
        #[arg(long = "policy", required = true, value_delimiter = ',')]
        policies: Vec<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Delete a token by its accessor; it stops working at once.
    Delete {
        /// The token's accessor (from `ocean acl token list`).
        accessor: String,
    },
}

/// `ocean acl policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy.
    Create {
        /// Its name (a label).
        name: String,
        /// A rule NODE=RIGHT (repeatable): a right (read, write, operate,
        /// admin) on a service-tree node and its subtree; `=admin` alone
        /// is the root.
        #[arg(long = "rule", required = true)]
        rules: Vec<String>,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List policies.
    List,
    /// Delete a policy; tokens bound to it lose its rules at once.
    Delete {
        /// The policy's name.
        name: String,
    },
}

/// `NODE=RIGHT` as the API's rule; the error names the flag.
fn parse_rule(r: &str) -> anyhow::Result<Value> {
    let (node, rights) = r
        .rsplit_once('=')
        .ok_or_else(|| anyhow::anyhow!("--rule '{r}': expected NODE=RIGHT, e.g. pdl.demo=read"))?;
    Ok(json!({"node": node.trim(), "rights": rights.trim()}))
}

/// Runs `ocean acl ...`.
pub async fn acl(c: &Client, cmd: AclCommand) -> anyhow::Result<()> {
    match cmd {
        AclCommand::Bootstrap => {
            let v = c
                .request(Method::POST, "/v1/acl/bootstrap", Body::None)
                .await?;
            print_created(c, &v);
        }
        AclCommand::Token(TokenCommand::Create { name, policies }) => {
            let body = json!({"name": name, "policies": policies});
            let v = c
                .request(Method::POST, "/v1/acl/tokens", Body::Json(body))
                .await?;
            print_created(c, &v);
        }
        AclCommand::Token(TokenCommand::List) => {
            let v = c.request(Method::GET, "/v1/acl/tokens", Body::None).await?;
            if c.json {
                print_json(&v);
            } else {
                println!("{:<18} {:<24} POLICIES", "ACCESSOR", "NAME");
                for t in v["tokens"].as_array().into_iter().flatten() {
                    let policies: Vec<&str> = t["policies"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!(
                        "{:<18} {:<24} {}",
                        s(t, "accessor"),
                        s(t, "name"),
                        policies.join(",")
                    );
                }
            }
        }
        AclCommand::Token(TokenCommand::Delete { accessor }) => {
            let path = format!("/v1/acl/tokens/{}", crate::cmd_client::urlencode(&accessor));
            print_json(&c.request(Method::DELETE, &path, Body::None).await?);
        }
        AclCommand::Policy(PolicyCommand::Create {
            name,
            rules,
            description,
        }) => {
            let rules = rules
                .iter()
                .map(|r| parse_rule(r))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let body = json!({"name": name, "description": description, "rules": rules});
            print_json(
                &c.request(Method::POST, "/v1/acl/policies", Body::Json(body))
                    .await?,
            );
        }
        AclCommand::Policy(PolicyCommand::List) => {
            print_json(
                &c.request(Method::GET, "/v1/acl/policies", Body::None)
                    .await?,
            );
        }
        AclCommand::Policy(PolicyCommand::Delete { name }) => {
            let path = format!("/v1/acl/policies/{}", crate::cmd_client::urlencode(&name));
            print_json(&c.request(Method::DELETE, &path, Body::None).await?);
        }
    }
    Ok(())
}

/// A new token: JSON as the API answered, or the secret with a warning
/// that it is shown only now.
fn print_created(c: &Client, v: &Value) {
    if c.json {
        print_json(v);
        return;
    }
    println!("accessor: {}", s(v, "accessor"));
    println!("name:     {}", s(v, "name"));
    println!("secret:   {}", s(v, "secret"));
    eprintln!("keep the secret now: it is not shown again (export OCEAN_TOKEN=<secret>)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_node_equals_right() {
        assert_eq!(
            parse_rule("pdl.demo=read").unwrap(),
            json!({"node": "pdl.demo", "rights": "read"})
        );
        assert_eq!(
            parse_rule("=admin").unwrap(),
            json!({"node": "", "rights": "admin"})
        );
        assert!(parse_rule("pdl.demo").is_err());
    }
}
