//! `webhookd users ...`: create users, list them, revoke and rotate tokens,
//! grant or withdraw the right to publish events over HTTP.
//! Output goes to stdout for people and scripts; tokens are printed only here,
//! once, on a line of their own so they can be captured with `tail -n1`.

use anyhow::{bail, Context};
use clap::Subcommand;
use sqlx::PgPool;
use webhookd_store::users::{self, User, UserSummary};

const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Create a user and print its API token (shown once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// The CRM's id for this user (the `user_id` its events carry);
        /// defaults to the next free id.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        id: Option<i64>,
        /// Admins see and change every user's webhooks.
        #[arg(long)]
        admin: bool,
        /// May publish events with `POST /api/v1/events` (admins always may).
        #[arg(long)]
        publisher: bool,
    },
    /// List users with their number of active tokens.
    List,
    /// Revoke every token of a user.
    Revoke {
        /// The user's id.
        #[arg(long)]
        id: i64,
    },
    /// Revoke every token of a user and print a new one (shown once).
    Rotate {
        /// The user's id.
        #[arg(long)]
        id: i64,
    },
    /// Let an existing user publish events with `POST /api/v1/events`.
    GrantPublisher {
        /// The user's id.
        #[arg(long)]
        id: i64,
    },
    /// Withdraw the right to publish events over HTTP (admins keep it).
    RevokePublisher {
        /// The user's id.
        #[arg(long)]
        id: i64,
    },
}

pub(crate) async fn run(cmd: UsersCommand, pool: &PgPool) -> anyhow::Result<()> {
    match cmd {
        UsersCommand::Create {
            name,
            id,
            admin,
            publisher,
        } => create_user(pool, &name, id, admin, publisher).await,
        UsersCommand::List => list_users(pool).await,
        UsersCommand::Revoke { id } => revoke_tokens(pool, id).await,
        UsersCommand::Rotate { id } => rotate_token(pool, id).await,
        UsersCommand::GrantPublisher { id } => set_publisher(pool, id, true).await,
        UsersCommand::RevokePublisher { id } => set_publisher(pool, id, false).await,
    }
}

async fn create_user(
    pool: &PgPool,
    name: &str,
    id: Option<i64>,
    admin: bool,
    publisher: bool,
) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        bail!("--name must be 1 to {MAX_NAME_CHARS} characters");
    }
    let (user, token) = users::create_user_with(pool, name, id, admin, publisher)
        .await
        .context("creating the user")?;
    println!("Created {}.", describe(&user));
    print_token(&token);
    Ok(())
}

async fn list_users(pool: &PgPool) -> anyhow::Result<()> {
    let users = users::list_users(pool).await.context("listing users")?;
    if users.is_empty() {
        println!("No users yet: create one with `webhookd users create --name NAME`.");
        return Ok(());
    }
    print!("{}", format_table(&users));
    Ok(())
}

async fn revoke_tokens(pool: &PgPool, id: i64) -> anyhow::Result<()> {
    let user = find_user(pool, id).await?;
    let revoked = users::revoke_tokens(pool, id)
        .await
        .context("revoking tokens")?;
    println!("Revoked {revoked} token(s) of {}.", describe(&user));
    Ok(())
}

async fn rotate_token(pool: &PgPool, id: i64) -> anyhow::Result<()> {
    let user = find_user(pool, id).await?;
    let (token, revoked) = users::rotate_token(pool, id)
        .await
        .context("rotating the token")?;
    println!("Revoked {revoked} token(s) of {}.", describe(&user));
    print_token(&token);
    Ok(())
}

async fn set_publisher(pool: &PgPool, id: i64, can_publish: bool) -> anyhow::Result<()> {
    let Some(user) = users::set_publisher(pool, id, can_publish)
        .await
        .context("changing the user's publisher right")?
    else {
        bail!("no user with id {id} (see `webhookd users list`)");
    };
    let verb = if can_publish { "may" } else { "may no longer" };
    println!(
        "{} {verb} publish events over HTTP.",
        capitalise(&describe(&user))
    );
    if !can_publish && user.is_admin {
        println!("It is an admin: admins always may.");
    }
    Ok(())
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

async fn find_user(pool: &PgPool, id: i64) -> anyhow::Result<User> {
    match users::find_user(pool, id)
        .await
        .context("looking up the user")?
    {
        Some(user) => Ok(user),
        None => bail!("no user with id {id} (see `webhookd users list`)"),
    }
}

fn describe(user: &User) -> String {
    let role = match (user.is_admin, user.can_publish) {
        (true, _) => "admin",
        (false, true) => "publisher",
        (false, false) => "user",
    };
    format!("{role} {} \"{}\"", user.id, user.name)
}

fn print_token(token: &str) {
    println!("API token (store it now, it is not shown again):");
    println!("{token}");
}

fn format_table(users: &[UserSummary]) -> String {
    let header = ["ID", "NAME", "ADMIN", "PUBLISHER", "TOKENS", "CREATED"].map(str::to_owned);
    let rows: Vec<[String; 6]> = users
        .iter()
        .map(|u| {
            [
                u.id.to_string(),
                u.name.clone(),
                if u.is_admin { "yes" } else { "no" }.to_owned(),
                // Admins may publish whatever the flag says.
                if u.is_admin || u.can_publish {
                    "yes"
                } else {
                    "no"
                }
                .to_owned(),
                u.active_tokens.to_string(),
                u.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            ]
        })
        .collect();
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn the_user_table_aligns_columns_by_characters() {
        let created = Utc
            .with_ymd_and_hms(2024, 2, 20, 13, 5, 0)
            .single()
            .expect("valid date");
        let users = [
            UserSummary {
                id: 7,
                name: "Анна".into(),
                is_admin: true,
                can_publish: false,
                created_at: created,
                active_tokens: 1,
            },
            UserSummary {
                id: 1042,
                name: "bob".into(),
                is_admin: false,
                can_publish: false,
                created_at: created,
                active_tokens: 0,
            },
            UserSummary {
                id: 12,
                name: "crm".into(),
                is_admin: false,
                can_publish: true,
                created_at: created,
                active_tokens: 2,
            },
        ];
        let table = format_table(&users);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "ID    NAME  ADMIN  PUBLISHER  TOKENS  CREATED");
        assert_eq!(
            lines[1],
            "7     Анна  yes    yes        1       2024-02-20 13:05 UTC"
        );
        assert_eq!(
            lines[2],
            "1042  bob   no     no         0       2024-02-20 13:05 UTC"
        );
        assert_eq!(
            lines[3],
            "12    crm   no     yes        2       2024-02-20 13:05 UTC"
        );
    }
}
