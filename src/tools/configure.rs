//! `configure_time_tracking`: read or partially update the user's settings.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::context::Context;
use crate::domain::{Settings, SettingsPatch, UserId};
use crate::error::Result;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    pub settings: Option<SettingsPatch>,
}

pub async fn run(ctx: &Context, user: &UserId, args: Args) -> Result<Settings> {
    let current = ctx.store.settings(user).await?;
    let Some(patch) = args.settings else {
        return Ok(current);
    };
    let updated = current.apply(patch)?;
    if updated != current {
        ctx.store.save_settings(user, &updated).await?;
    }
    Ok(updated)
}
