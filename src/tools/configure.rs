//! `configure_time_tracking`: read or partially update the user's settings.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Hints, Progress, Tool};
use crate::context::Context;
use crate::domain::{Settings, SettingsPatch, UserId};
use crate::error::{Error, Result};
use crate::mail::MailQuery;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Settings to change; null (or a null field) leaves them as they are. Returns all settings.
    #[serde(default)]
    pub settings: Option<SettingsPatch>,
}

/// `configure_time_tracking` in the tool table.
pub struct ConfigureTimeTracking;

impl Tool for ConfigureTimeTracking {
    const NAME: &'static str = "configure_time_tracking";
    const DESCRIPTION: &'static str = "Read the user's time tracking settings (settings null) or change some of them; returns all settings.";
    const HINTS: Hints = Hints {
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: false,
    };
    type Args = Args;
    type Output = Settings;

    fn run<'a>(
        ctx: &'a Context,
        user: &'a UserId,
        args: Args,
        _: &'a dyn Progress,
    ) -> impl Future<Output = Result<Settings>> + Send + 'a {
        run(ctx, user, args)
    }
}

pub async fn run(ctx: &Context, user: &UserId, args: Args) -> Result<Settings> {
    let current = ctx.store.settings(user).await?;
    let Some(patch) = args.settings else {
        return super::pipeline::with_learning(ctx, user, current).await;
    };
    // A query that cannot be read would break every later scan: refuse it now.
    if let Some(query) = patch
        .default_query
        .as_deref()
        .filter(|q| !q.trim().is_empty())
    {
        let check = MailQuery {
            query: Some(query.to_owned()),
            timezone: current.timezone,
            ..MailQuery::default()
        };
        check
            .validate()
            .map_err(|e| Error::invalid("settings.default_query", e.to_string()))?;
    }
    patch.within_limit()?;
    let updated = current.apply(patch)?;
    if updated != current {
        ctx.store.save_settings(user, &updated).await?;
    }
    // Shown with what the reviews taught under the settings as they now are (a reset
    // by `learned_since` shows at once).
    super::pipeline::with_learning(ctx, user, updated).await
}
